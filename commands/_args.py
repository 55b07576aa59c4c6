"""Argument parsing helpers with Redis's error wording."""

from __future__ import annotations

from collections.abc import Sequence

from ._errors import CommandError, not_a_float, not_an_integer

_INT64 = 2**63


def parse_int(raw: bytes, *, error: CommandError | None = None) -> int:
    text = raw.strip()
    digits = text[1:] if text.startswith(b"-") else text
    if text != raw or not digits.isdigit():
        raise error or not_an_integer()
    if len(digits) > 19:  # past int64 (and int() refuses 4300 digits or more)
        raise error or not_an_integer()
    if len(digits) > 1 and digits.startswith(b"0"):
        raise error or not_an_integer()
    value = int(text)
    if not -_INT64 <= value < _INT64:
        raise error or not_an_integer()
    return value


def parse_float(raw: bytes) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise not_a_float() from None
    if value != value:
        raise not_a_float()
    return value


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def upper(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").upper()


def pairs(args: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    if len(args) % 2:
        raise CommandError("syntax error")
    return list(zip(args[::2], args[1::2], strict=True))
