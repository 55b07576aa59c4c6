from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import crc16, keyslot


def test_crc16_is_xmodem() -> None:
    assert crc16(b"123456789") == 0x31C3
    assert crc16(b"") == 0


def test_keyslot_vectors() -> None:
    assert keyslot(b"foo") == 12182
    assert keyslot(b"bar") == 5061
    assert keyslot(b"") == 0
    assert keyslot(b"123456789") == 0x31C3 % 16384


def test_hash_tag_selects_the_hashed_part() -> None:
    assert keyslot(b"{user1000}.following") == keyslot(b"{user1000}.followers")
    assert keyslot(b"{user1000}.following") == keyslot(b"user1000")
    assert keyslot(b"foo{bar}{zap}") == keyslot(b"bar")
    assert keyslot(b"foo{{bar}}zap") == keyslot(b"{bar")


def test_empty_or_unclosed_tag_hashes_the_whole_key() -> None:
    assert keyslot(b"foo{}{bar}") == crc16(b"foo{}{bar}") % 16384
    assert keyslot(b"foo{}{bar}") != keyslot(b"bar")
    assert keyslot(b"foo{bar") == crc16(b"foo{bar") % 16384
    assert keyslot(b"foo}bar{") == crc16(b"foo}bar{") % 16384


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=20).filter(lambda b: b"}" not in b and b), st.binary(max_size=20))
def test_keys_sharing_a_tag_share_a_slot(tag: bytes, suffix: bytes) -> None:
    assert keyslot(b"{" + tag + b"}" + suffix) == crc16(tag) % 16384
