"""`Frame` holds exactly the join of its header, parts and trailer after any patches."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cluster.frame import Frame

_bytes = st.binary(max_size=12)


@given(head=_bytes, parts=st.lists(_bytes, max_size=12), tail=_bytes,
       patches=st.lists(st.tuples(_bytes, st.dictionaries(st.integers(0, 11), _bytes),
                                  _bytes), max_size=6))
def test_patches_equal_a_join(head: bytes, parts: list[bytes], tail: bytes,
                              patches: list[tuple[bytes, dict[int, bytes], bytes]]) -> None:
    frame = Frame()
    frame.fill(head, parts, tail)
    assert frame.data == b"".join((head, *parts, tail))
    for new_head, changes, new_tail in patches:
        todo = sorted((i, part) for i, part in changes.items() if i < len(parts))
        for i, part in todo:
            parts[i] = part
        frame.patch(new_head, todo, new_tail)
        assert frame.data == b"".join((new_head, *parts, new_tail))
        assert frame.parts() == parts
        assert [frame.part(i) for i in range(len(frame))] == parts


def test_empty() -> None:
    frame = Frame()
    assert frame.data == b"" and frame.parts() == []
    frame.patch(b"*0\r\n", [])
    assert frame.data == b"*0\r\n"
