"""A run of a request's arguments read by hiredis: the scanner's fast way through a long
request (BUS PUBLISH of 200,000 messages), where a Python loop per argument would cost
five times as much.

hiredis reads ``$<length>\\r\\n<payload>\\r\\n`` at top level as one ``bytes`` value per
``gets``; fed bytes the guard vouches for (``_guard.py``), each value it returns as bytes
was a ``$`` bulk with a canonical length, so the sizes of the values say exactly where the
run ends. It is fed ``CHUNK`` bytes at a time: it moves its unread bytes each time it has
used a kilobyte, which costs the square of what it is given at once.
"""

from __future__ import annotations

from itertools import islice
from typing import Final

import hiredis

CHUNK: Final = 16 * 1024
_INCOMPLETE: Final = object()


def whole_bulks(buf: bytes, pos: int, wanted: int, max_bulk: int) -> tuple[list[bytes], int]:
    """The whole bulk strings at ``buf[pos:]``, at most ``wanted`` of them, each at most
    ``max_bulk`` long, and where the first byte after them is. Stops before anything else:
    a partial bulk, another type, a malformed header, a longer bulk (for the caller to
    read, or to refuse in Redis's words). ``buf[pos:]`` must be vouched for by the guard."""
    parser = hiredis.Reader(notEnoughData=_INCOMPLETE)
    gets = parser.gets
    end = len(buf)
    fed = pos
    found: list[object] = []
    while fed < end and len(found) < wanted:
        parser.feed(buf, fed, min(CHUNK, end - fed))
        fed += CHUNK
        try:
            # The values until hiredis needs more (a stopped ``iter`` stays stopped).
            found += islice(iter(gets, _INCOMPLETE), wanted - len(found))
        except hiredis.ProtocolError:
            break  # somewhere in this chunk
    if set(map(type, found)) - {bytes}:
        del found[next(index for index, value in enumerate(found)
                       if value.__class__ is not bytes):]
    values: list[bytes] = found  # type: ignore[assignment]  # bytes only, checked above
    if not values:
        return values, pos
    lengths = list(map(len, values))
    longest = max(lengths)
    if longest > max_bulk:
        cut = next(index for index, length in enumerate(lengths) if length > max_bulk)
        del values[cut:]
        del lengths[cut:]
        if not values:
            return values, pos
        longest = max(lengths)
    # Each takes '$', its length's digits, CRLF, itself and two bytes: at least one digit
    # each, one more for each length over 9, one more for each over 99...
    pos += sum(lengths) + 6 * len(lengths)
    bound = 9
    while longest > bound:
        pos += sum(map(bound.__lt__, lengths))
        bound = bound * 10 + 9
    return values, pos
