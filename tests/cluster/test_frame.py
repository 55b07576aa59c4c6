"""`Frame` holds exactly the join of its header, parts and trailer after any patches, staged
or not, and a snapshot renders what the frame was when it was taken."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clusterwatch.cluster.frame import Frame

_bytes = st.binary(max_size=12)
_step = st.tuples(st.sampled_from(("patch", "stage", "flush")), _bytes,
                  st.dictionaries(st.integers(0, 11), _bytes), _bytes)


@given(head=_bytes, parts=st.lists(_bytes, max_size=12), tail=_bytes,
       steps=st.lists(_step, max_size=8))
def test_frames_equal_a_join(head: bytes, parts: list[bytes], tail: bytes,
                             steps: list[tuple[str, bytes, dict[int, bytes], bytes]]) -> None:
    frame = Frame()
    frame.fill(head, parts, tail)
    assert frame.data == b"".join((head, *parts, tail))
    snapshots = [(frame.snapshot(), frame.data)]
    for op, new_head, changes, new_tail in steps:
        todo = sorted((i, part) for i, part in changes.items() if i < len(parts))
        if op == "flush":
            frame.flush()
        else:
            for i, part in todo:
                parts[i] = part
            head, tail = new_head, new_tail
            if op == "patch":
                frame.patch(head, todo, tail)
            else:
                frame.stage(head, todo, tail)
        expected = b"".join((head, *parts, tail))
        snapshots.append((frame.snapshot(), expected))
        assert frame.parts() == parts
        if not frame.dirty:
            assert frame.data == expected
            assert [frame.part(i) for i in range(len(frame))] == parts
    assert frame.flush() == b"".join((head, *parts, tail))
    for snapshot, data in snapshots:
        assert snapshot.render() == data


def test_empty() -> None:
    frame = Frame()
    assert frame.data == b"" and frame.parts() == []
    frame.patch(b"*0\r\n", [])
    assert frame.data == b"*0\r\n"
