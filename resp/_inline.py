"""Inline requests (``PING\\r\\n``), split into arguments the way Redis's sdssplitargs does:
whitespace separates arguments; double quotes allow ``\\n \\r \\t \\b \\a \\\\ \\" \\xHH``;
single quotes allow ``\\'``; a closing quote must be followed by whitespace or the end."""

from __future__ import annotations

_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_SPACE = frozenset(b" \n\r\t\v\f")
_HEX = frozenset(b"0123456789abcdefABCDEF")


class UnbalancedQuotesError(ValueError):
    pass


def split_inline(line: bytes) -> list[bytes]:
    """Split one inline request line (without its line ending) into arguments.

    Raises:
        UnbalancedQuotesError: a quote is not closed, or is followed by a non-space.
    """
    if b'"' not in line and b"'" not in line:
        return line.split()
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_double = in_single = False
        while True:
            if in_double:
                if i >= n:
                    raise UnbalancedQuotesError
                c = line[i]
                if (c == 0x5C and i + 3 < n and line[i + 1] == ord("x")
                        and line[i + 2] in _HEX and line[i + 3] in _HEX):
                    current.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    current += _ESCAPES.get(line[i], bytes([line[i]]))
                elif c == ord('"'):
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise UnbalancedQuotesError
                    i += 1
                    break
                else:
                    current.append(c)
            elif in_single:
                if i >= n:
                    raise UnbalancedQuotesError
                c = line[i]
                if c == 0x5C and i + 1 < n and line[i + 1] == ord("'"):
                    i += 1
                    current.append(ord("'"))
                elif c == ord("'"):
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise UnbalancedQuotesError
                    i += 1
                    break
                else:
                    current.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in _SPACE:
                    break
                if c == ord('"'):
                    in_double = True
                elif c == ord("'"):
                    in_single = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))
