"""Redis's glob patterns, compiled once and matched in time about linear in the name.

The syntax is Redis 7's (learned from its documentation and from redis-server's answers to
``KEYS`` and ``PUBSUB CHANNELS``), over bytes and case-sensitive:

    *        any run of bytes, the empty one too (``**`` is one star)
    ?        any one byte
    [abc]    one of the bytes listed; ``[^abc]`` one of those not listed
    [a-z]    a range, either way round (``[z-a]`` is ``[a-z]``); bytes 128-255 order
             below 0, as C's signed char does (``[a-\\xff]`` holds 0xff and 0 through a)
    \\x       the byte x itself, in a set too; a ``\\`` that ends the pattern is itself
    [...     a set the pattern ends before ``]`` closes at the end of the pattern; ``[]``
             is the empty set (it matches nothing, ``[^]`` any byte); ``-`` and ``]``
             right after a byte make a range (``[a-]`` is the range ``]``..``a``)

The empty name matches only the empty pattern (Redis's matcher stops at once when the
name is empty; only ``KEYS *`` lists an empty key, by a shortcut that skips matching).
Redis gives up on a pattern with more than 1000 stars before its end (it recurses once
per star): such a pattern matches nothing there, and nothing here.

How: a pattern is split on its stars into star-free segments. The first must match at
the start of the name, the last at its end, and each one between at its leftmost place
after the one before (the leftmost place never loses a match). A segment is literal
bytes (found with ``bytes.find``), or bytes under a mask for its ``?`` and set positions
(compared as one integer) plus a table per set, found by its longest literal run. So
``a*a*a*...b`` costs one pass over the name, not one per way of placing the stars.

A pattern is parsed lazily, as far as a name needs: a name of n bytes needs at most the
pattern's first n + 1 bytes' worth of segments (a pattern longer than the name cannot
match it). Compiling costs one step per special character, done once per pattern, so a
huge pattern costs its subscriber little and an event nothing more than its name's length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from operator import methodcaller

__all__ = ["MAX_STARS", "Glob", "compile_glob", "glob_matches"]

MAX_STARS = 1000  # Redis's recursion limit: more stars before the end match nothing

# One token: a star run, a set (to its ``]`` or the pattern's end), or text: literal
# bytes, ``?`` and escapes (a ``\`` that ends the pattern is literal).
_TOKENS = re.compile(rb"""
      (?P<stars>\*+)
    | \[(?P<negate>\^?)(?P<members>(?:\\.|[^\]\\]-.|[^\]])*)\]?
    | (?P<text>(?=[^*\[])[^*\[\\]*(?:\\.?[^*\[\\]*)*)
""", re.DOTALL | re.VERBOSE)
_DROP_BACKSLASHES = methodcaller("replace", b"\\", b"")
_ESCAPED_QUESTION = methodcaller("replace", b"\\?", b"x")
_MEMBERS = re.compile(rb"\\(.)|(.)-(.)|(.)", re.DOTALL)  # escaped byte, range, byte
_WILD = bytes(0 if byte == ord("?") else 0xFF for byte in range(256))  # text -> mask
_ABSENT = b"\x00"
_SPECIAL = re.compile(rb"[*?[\\]")
_STAR = ord("*")


@dataclass(frozen=True, slots=True)
class _Text:
    """Text with wild positions: ``mask`` is 0xFF where ``value`` must match, 0 for ``?``."""

    value: bytes
    mask: bytes


@dataclass(frozen=True, slots=True)
class _Set:
    """One byte of a set: ``table[byte]`` is 1 for its members."""

    table: bytes


#: A piece of a segment: literal bytes, text with ``?``, or a set.
Piece = bytes | _Text | _Set


def _signed(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


def _set_of(members: bytes, negate: bool) -> _Set:
    """The set ``[members]`` (``[^members]``); short ones are kept, as a pattern tends to
    repeat its sets."""
    return _cached_set(members, negate) if len(members) <= 64 else _make_set(members, negate)


@lru_cache(maxsize=1024)
def _cached_set(members: bytes, negate: bool) -> _Set:
    return _make_set(members, negate)


def _make_set(members: bytes, negate: bool) -> _Set:
    flags = bytearray(256)
    if b"\\" not in members and b"-" not in members:
        for byte in set(members):
            flags[byte] = 1
    else:
        for escaped, low, high, single in set(_MEMBERS.findall(members)):
            if low:
                first, last = sorted((_signed(low[0]), _signed(high[0])))
                for member in range(first, last + 1):
                    flags[member & 0xFF] = 1
            else:
                flags[(escaped or single)[0]] = 1
    return _Set(bytes(1 - flag for flag in flags) if negate else bytes(flags))


def _text_piece(text: bytes) -> bytes | _Text:
    plain, shape = text, text
    if b"\\" in text:
        # Escaped backslashes first (left to right, as they pair), then each ``\`` left
        # escapes the byte after it: an escaped ``?`` is literal, so its shape is ``x``.
        parts = text.split(b"\\\\")
        plain = b"\\".join(map(_DROP_BACKSLASHES, parts))
        shape = b"x".join(map(_DROP_BACKSLASHES, map(_ESCAPED_QUESTION, parts)))
        if parts[-1].endswith(b"\\"):  # a last ``\`` escapes nothing: it is itself
            plain, shape = plain + b"\\", shape + b"x"
    if b"?" not in shape:
        return plain
    return _Text(plain, shape.translate(_WILD))


#: A star-free part of a pattern, as a plain tuple (the garbage collector stops tracking
#: those): ``(size, literal, mask, value, classes, anchor)``. ``literal`` is the segment
#: when it is literal bytes only; else the name's ``size`` bytes there, as an integer
#: under ``mask``, equal ``value``, and each set's table in ``classes`` (by offset) holds
#: its byte. ``anchor`` is the longest literal run ``(offset, bytes)``, to search by.
Segment = tuple[int, bytes | None, int, int, tuple[tuple[int, bytes], ...],
                tuple[int, bytes] | None]
_EMPTY: Segment = (0, b"", 0, 0, (), None)


def _segment(pieces: list[Piece]) -> Segment:
    if not pieces:
        return _EMPTY
    if len(pieces) == 1 and isinstance(pieces[0], bytes):
        return (len(pieces[0]), pieces[0], 0, 0, (), None)
    values, masks = bytearray(), bytearray()
    classes: list[tuple[int, bytes]] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            values += piece
            masks += b"\xff" * len(piece)
        elif isinstance(piece, _Text):
            values += piece.value
            masks += piece.mask
        else:
            classes.append((len(values), piece.table))
            values += _ABSENT
            masks += _ABSENT
    mask = int.from_bytes(masks, "big")
    longest = max(masks.split(_ABSENT), key=len)  # the first place it starts at:
    offset = masks.find(longest)  # a longer run would be the longest
    anchor = (offset, bytes(values[offset:offset + len(longest)])) if longest else None
    return (len(values), None, mask, int.from_bytes(values, "big") & mask, tuple(classes),
            anchor)


def _at(segment: Segment, name: bytes, start: int) -> bool:
    """``segment`` matches ``name`` at ``start`` (the caller checked the length)."""
    size, literal, mask, value, classes, _ = segment
    if literal is not None:
        return name.startswith(literal, start)
    if int.from_bytes(name[start:start + size], "big") & mask != value:
        return False
    return all(table[name[start + offset]] for offset, table in classes)


def _find(segment: Segment, name: bytes, start: int, end: int) -> int:
    """Where ``segment`` first matches inside ``name[start:end]``, or -1."""
    size, literal, _, _, classes, anchor = segment
    if literal is not None:
        return name.find(literal, start, end)
    last = end - size
    if anchor is None:
        if not classes:
            return start if start <= last else -1
        return next((place for place in range(start, last + 1)
                     if _at(segment, name, place)), -1)
    offset, run = anchor
    stop = last + offset + len(run)
    found = name.find(run, start + offset, stop)
    while found >= 0 and not _at(segment, name, found - offset):
        found = name.find(run, found + 1, stop)
    return found - offset if found >= 0 else -1


# What a Glob's ``matches`` does: its kind of test.
_LAZY, _EXACT, _PREFIX, _ANY, _NEVER, _WHOLE, _GENERAL = range(7)


class Glob:
    """One pattern: ``glob.matches(name)``. ``prefix`` is literal bytes every matching
    name starts with (to index patterns by): the pattern up to its first special byte.
    A Glob is one object the garbage collector tracks (its compiled form is tuples of
    plain values), so many thousands of patterns do not lengthen its full collections."""

    __slots__ = ("_first", "_kind", "_last", "_literal", "_middle", "_parsed", "_size",
                 "_tokens", "pattern", "prefix")

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        special = _SPECIAL.search(pattern)
        self.prefix = pattern if special is None else pattern[:special.start()]
        self._literal = self.prefix
        self._first = self._last = _EMPTY
        self._middle: tuple[Segment, ...] = ()
        self._tokens: Iterator[re.Match[bytes]] | None = None
        self._parsed: list[list[Piece]] | None = None  # the segments read so far
        self._size = 0  # bytes a name needs for them (once compiled: all of it)
        if special is None:
            self._kind = _EXACT
        elif special.start() == len(pattern) - 1 and pattern[-1] == _STAR:
            # ``prefix*``; ``*`` alone matches any name but the empty one.
            self._kind = _PREFIX if self.prefix else _ANY
        else:
            self._kind = _LAZY

    @property
    def compiled(self) -> bool:
        """False while the pattern is parsed lazily (its next match may parse more)."""
        return self._kind != _LAZY

    def matches(self, name: bytes) -> bool:
        kind = self._kind
        if kind == _PREFIX:
            return name.startswith(self._literal)
        if kind == _GENERAL:
            return self._general(name)
        if kind == _EXACT:
            return name == self._literal
        if kind == _WHOLE:
            return len(name) == self._size and _at(self._first, name, 0)
        if kind == _ANY:
            return bool(name)
        if kind == _NEVER:
            return False
        return self._lazy(name)

    def _lazy(self, name: bytes) -> bool:
        """Parse as far as ``name`` needs, then match once the pattern is compiled."""
        if self._parsed is None:
            pattern = self.pattern
            if (b"[" not in pattern and b"\\" not in pattern
                    and pattern.count(b"*") <= MAX_STARS + 1):
                self._compile_plain()
                return self.matches(name)
            self._tokens = _TOKENS.finditer(self.pattern)
            self._parsed = [[]]
        while self._kind == _LAZY:
            if self._size > len(name):
                return False
            self._read_token()
        return self.matches(name)

    def _read_token(self) -> None:
        """Parse one more token; at the end, compile."""
        assert self._tokens is not None and self._parsed is not None
        token = next(self._tokens, None)
        if token is None:
            self._compile(self._parsed)
            return
        kind = token.lastgroup
        if kind == "stars":
            if len(self._parsed) > MAX_STARS + 1:  # that many stars before this one
                self._done(_NEVER)
                return
            self._parsed.append([])
        elif kind == "text":
            piece = _text_piece(token.group())
            self._parsed[-1].append(piece)
            self._size += len(piece if isinstance(piece, bytes) else piece.value)
        else:
            self._parsed[-1].append(_set_of(token.group("members"),
                                            bool(token.group("negate"))))
            self._size += 1

    def _compile_plain(self) -> None:
        """A pattern of bytes, ``?`` and ``*`` only: split on its stars at once."""
        parts = self.pattern.split(b"*")
        stars_before_end = len(parts) - 1 - parts[1:].count(b"")
        if stars_before_end > MAX_STARS:
            self._done(_NEVER)
            return
        kept = [parts[0], *filter(None, parts[1:-1])] + parts[-1:] * (len(parts) > 1)
        self._size = sum(map(len, parts))
        self._compile([[_text_piece(part)] if part else [] for part in kept])

    def _compile(self, parsed: list[list[Piece]]) -> None:
        segments = [_segment(part) for part in parsed]
        first, last, stars = segments[0], segments[-1], len(segments) - 1
        if stars - (last[0] == 0) > MAX_STARS:
            self._done(_NEVER)
            return
        self._first, self._last, self._middle = first, last, tuple(segments[1:-1])
        literal = first[1]
        if literal is not None and (stars == 0 or (stars == 1 and last[0] == 0)):
            self._literal = literal  # ``literal`` or ``literal*``
            kind = _EXACT if stars == 0 else _PREFIX if literal else _ANY
        else:
            kind = _WHOLE if stars == 0 else _GENERAL
        self._done(kind)

    def _done(self, kind: int) -> None:
        self._kind = kind
        self._tokens, self._parsed = None, None

    def _general(self, name: bytes) -> bool:
        size = len(name)
        if size < self._size:
            return False
        first, last = self._first, self._last
        if first[0] and not _at(first, name, 0):
            return False
        end = size - last[0]
        if last[0] and not _at(last, name, end):
            return False
        place = first[0]
        for segment in self._middle:
            found = _find(segment, name, place, end)
            if found < 0:
                return False
            place = found + segment[0]
        return True

    def __repr__(self) -> str:
        return f"Glob({self.pattern[:40]!r}{'...' if len(self.pattern) > 40 else ''})"


def compile_glob(pattern: bytes) -> Glob:
    """The pattern's matcher, shared by the callers of the same short pattern (ACL
    channel rules, CONFIG GET...); a long one is compiled afresh (lazily: as far as the
    names it meets need), so the cache holds at most 4096 short patterns."""
    return _cached_glob(pattern) if len(pattern) <= 1024 else Glob(pattern)


@lru_cache(maxsize=4096)
def _cached_glob(pattern: bytes) -> Glob:
    return Glob(pattern)


def glob_matches(pattern: bytes, name: bytes) -> bool:
    return compile_glob(pattern).matches(name)
