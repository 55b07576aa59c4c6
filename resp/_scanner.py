"""Checks the header of a multibulk request as it arrives, with Redis's wording.

hiredis parses complete requests fast but enforces no limits and words its errors its
own way. This scanner walks only the ``*<count>`` and ``$<len>`` lines of the one
request still incomplete (skipping bulk bodies without reading them), so an oversized
length is refused as soon as its header arrives, and a malformed request gets the error
text redis-server sends.
"""

from __future__ import annotations

from ._limits import ReaderLimits

# Redis: an unauthenticated client may send at most 10 arguments of at most 16 KiB.
UNAUTHENTICATED_MAX_ARGS = 10
UNAUTHENTICATED_MAX_BULK = 16 * 1024


def parse_length(text: bytes) -> int | None:
    """Redis string2ll: optional '-', digits, no '+', no leading zeros, fits in 64 bits."""
    digits = text[1:] if text[:1] == b"-" else text
    if not digits or not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30):
        return None
    value = int(text)
    if not -(2**63) <= value < 2**63:
        return None
    return value


class HeaderScanner:
    """Incremental check of one multibulk request's length lines.

    ``scan(buf)`` is called with the request's bytes so far (always from its first
    byte, growing); it resumes where it stopped and returns an error message, or None
    when everything seen so far is acceptable.
    """

    __slots__ = ("_args_left", "_limits", "_pos", "authenticated")

    def __init__(self, limits: ReaderLimits, *, authenticated: bool = True) -> None:
        self._limits = limits
        self._pos = 0
        self._args_left: int | None = None
        self.authenticated = authenticated

    @property
    def request_end(self) -> int | None:
        """Where the request ends once every argument has been seen, else None."""
        return self._pos if self._args_left == 0 else None

    def scan(self, buf: bytes | bytearray) -> str | None:
        limits = self._limits
        while True:
            if self._args_left == 0:
                return None
            if (self._args_left is not None and self._pos < len(buf)
                    and buf[self._pos] != 0x24):  # '$'
                return f"expected '$', got '{chr(buf[self._pos])}'"
            end = buf.find(b"\r", self._pos)
            if end < 0:
                if len(buf) - self._pos > limits.max_inline_size:
                    return ("too big mbulk count string" if self._args_left is None
                            else "too big bulk count string")
                return None
            if end + 1 >= len(buf):
                return None
            line = bytes(buf[self._pos + 1 : end])
            if self._args_left is None:
                count = parse_length(line)
                if count is None or count > 2**31 - 1 or count > limits.max_multibulk_length:
                    return "invalid multibulk length"
                if not self.authenticated and count > UNAUTHENTICATED_MAX_ARGS:
                    return "unauthenticated multibulk length"
                self._args_left = max(count, 0)
                self._pos = end + 2
                continue
            length = parse_length(line)
            if length is None or length < 0 or length > limits.max_bulk_length:
                return "invalid bulk length"
            if not self.authenticated and length > UNAUTHENTICATED_MAX_BULK:
                return "unauthenticated bulk length"
            next_pos = end + 2 + length + 2
            self._args_left -= 1
            if next_pos > len(buf):
                # The body is still arriving; the next header cannot be inspected yet.
                self._pos = next_pos
                return None
            self._pos = next_pos
