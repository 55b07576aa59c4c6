"""Redis Cluster key hashing: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384."""

from __future__ import annotations

from typing import Final

__all__ = ["crc16", "keyslot"]

NUM_SLOTS: Final = 16384
_POLY: Final = 0x1021


def _table() -> tuple[int, ...]:
    rows = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) if crc & 0x8000 else crc << 1
        rows.append(crc & 0xFFFF)
    return tuple(rows)


_TABLE: Final = _table()


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection, no final xor."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc


def keyslot(key: bytes) -> int:
    """The cluster slot of `key`.

    If the key holds a `{` followed later by a `}` with at least one byte between them, only
    the bytes between the first `{` and the first `}` after it are hashed.
    """
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc16(key) & (NUM_SLOTS - 1)
