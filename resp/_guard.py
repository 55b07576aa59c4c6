"""What hiredis may be given: bytes the guard vouches for.

hiredis checks no limit and reads RESP3 types where a request must hold ``$`` bulks. Two
of its habits matter to a server. It allocates an aggregate's slots from the header, before
the elements arrive (a lone ``*2147483647`` costs seconds to free; ``>200000000`` builds a
1.5 GB push list), and it returns a simple string (``+``), a big number (``(``) or a
verbatim string (``=``) as the same ``bytes`` as a bulk string, so a request read by it
cannot say how it was framed.

The guard objects to

* any byte of ``+ ( = % ~ > |`` (the "markers"): those types and the aggregates other than
  ``*``;
* a ``*`` followed by at least as many digits as the largest count allowed has (before
  authentication: two digits).

In bytes it does not object to, every value hiredis returns as ``bytes`` was a ``$`` bulk
string with a canonical length (hiredis itself refuses ``$04``, ``$+4`` and ``$-0``), so
its wire size is its canonical size, and every aggregate hiredis allocates is smaller than
the limit. Payload bytes can only make the guard object more, never less: a false alarm
costs speed (the scanner reads the bytes instead), never correctness.
"""

from __future__ import annotations

from typing import Final

MARKERS: Final = b"+(=%~>|"
# One ``translate`` that deletes these says, by the length left, whether a read starting
# with '*' holds any other '*' or any marker.
STAR_AND_MARKERS: Final = b"*" + MARKERS
# Digits become '0', markers '!' (and a '!' itself something else).
_TABLE: Final = bytes.maketrans(b"0123456789" + MARKERS + b"!",
                                b"0" * 10 + b"!" * len(MARKERS) + b"?")


def long_count(max_count: int) -> bytes:
    """The pattern of a count line with as many digits as ``max_count`` has, after
    ``_TABLE``: such a count may be over the limit, and it is for the scanner to say."""
    return b"*" + b"0" * len(str(max_count))


def clean_from(data: bytes, long: bytes) -> int:
    """Where in ``data`` the guard stops objecting: 0 when it does not object at all.
    One ``translate`` and two ``rfind`` over the read."""
    guarded = data.translate(_TABLE)
    return max(guarded.rfind(b"!"), guarded.rfind(long)) + 1
