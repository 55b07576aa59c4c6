"""Reply values: what a command handler returns, independent of the wire protocol.

Python natives map one to one onto RESP types, so handlers use them directly:
``int`` is an integer, ``bytes``/``str`` a bulk string, ``None`` a null, ``bool`` a
boolean, ``float`` a double, ``list``/``tuple`` an array. The classes below cover the
rest. Only the encoder knows how each renders in RESP2 and RESP3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final, TypeAlias, Union


def _one_line(text: str) -> str:
    """Redis replaces CR and LF with spaces in status and error lines (sdsmapchars)."""
    if "\r" in text or "\n" in text:
        return text.replace("\r", " ").replace("\n", " ")
    return text


class SimpleString:
    """A status reply such as ``+OK``. Its wire form is the same in RESP2 and RESP3,
    so it is rendered once, here."""

    __slots__ = ("frame", "text")

    def __init__(self, text: str) -> None:
        self.text = _one_line(text)
        self.frame = b"+%b\r\n" % self.text.encode()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimpleString) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("simple", self.text))

    def __repr__(self) -> str:
        return f"SimpleString({self.text!r})"


class ErrorReply:
    """An error reply: ``-<PREFIX> <message>``. The prefix is the first word (``ERR``,
    ``NOAUTH``, ``WRONGPASS`` ...); the text never contains CR or LF."""

    __slots__ = ("frame", "message", "prefix")

    def __init__(self, prefix: str, message: str) -> None:
        self.prefix = _one_line(prefix)
        self.message = _one_line(message)
        self.frame = b"-%b\r\n" % self.line.encode()

    @property
    def line(self) -> str:
        return f"{self.prefix} {self.message}" if self.message else self.prefix

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and other.line == self.line

    def __hash__(self) -> int:
        return hash(("error", self.line))

    def __repr__(self) -> str:
        return f"ErrorReply({self.prefix!r}, {self.message!r})"


class Verbatim:
    """A verbatim string (``=txt:...`` in RESP3, a bulk string in RESP2)."""

    __slots__ = ("fmt", "text")

    def __init__(self, text: str | bytes, fmt: str = "txt") -> None:
        if len(fmt) != 3:
            raise ValueError("verbatim format must be exactly three characters")
        self.fmt = fmt
        self.text = text.encode() if isinstance(text, str) else text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verbatim) and (other.fmt, other.text) == (self.fmt, self.text)

    def __hash__(self) -> int:
        return hash(("verbatim", self.fmt, self.text))

    def __repr__(self) -> str:
        return f"Verbatim({self.text!r}, fmt={self.fmt!r})"


class Map:
    """An ordered map (``%`` in RESP3, a flat key/value array in RESP2)."""

    __slots__ = ("items",)

    def __init__(self, items: Mapping[Reply, Reply] | Iterable[tuple[Reply, Reply]]) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self.items: tuple[tuple[Reply, Reply], ...] = tuple(pairs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Map) and other.items == self.items

    def __hash__(self) -> int:
        return hash(("map", self.items))

    def __repr__(self) -> str:
        return f"Map({dict(self.items)!r})"


class Set:
    """A set (``~`` in RESP3, an array in RESP2). Keeps the given order."""

    __slots__ = ("members",)

    def __init__(self, members: Iterable[Reply]) -> None:
        self.members: tuple[Reply, ...] = tuple(members)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Set) and other.members == self.members

    def __hash__(self) -> int:
        return hash(("set", self.members))

    def __repr__(self) -> str:
        return f"Set({list(self.members)!r})"


class Push:
    """An out-of-band message (``>`` in RESP3, an array in RESP2 pub/sub mode)."""

    __slots__ = ("members",)

    def __init__(self, members: Iterable[Reply]) -> None:
        self.members: tuple[Reply, ...] = tuple(members)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Push) and other.members == self.members

    def __hash__(self) -> int:
        return hash(("push", self.members))

    def __repr__(self) -> str:
        return f"Push({list(self.members)!r})"


class NullArray:
    """The null array: ``*-1`` in RESP2 (as Redis answers a timed-out BLPOP), ``_`` in RESP3."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_ARRAY"


NULL_ARRAY: Final = NullArray()


class Encoded:
    """A reply already rendered for both protocols, for replies that are served often
    and change rarely (a cached CLUSTER INFO frame). `Encoded.lazy` renders each protocol's
    bytes on first use, for large replies that most clients read in one protocol only.

    A rendered frame is a plain slot: reading it costs what reading an attribute costs,
    the hot path for every cached reply."""

    __slots__ = ("_build", "resp2", "resp3")

    resp2: bytes
    resp3: bytes
    _build: Callable[[int], bytes]

    def __init__(self, resp2: bytes, resp3: bytes) -> None:
        self.resp2 = resp2
        self.resp3 = resp3

    @classmethod
    def lazy(cls, build: Callable[[int], bytes]) -> Encoded:
        """`build(2)` or `build(3)` renders that protocol's bytes, at most once each."""
        encoded = cls.__new__(cls)
        encoded._build = build
        return encoded

    def __getattr__(self, name: str) -> bytes:
        # Called only for a slot not set yet: a lazy frame's first read.
        if name not in ("resp2", "resp3"):
            raise AttributeError(name)
        build: Callable[[int], bytes] = object.__getattribute__(self, "_build")
        data = build(2 if name == "resp2" else 3)
        setattr(self, name, data)
        return data

    def __repr__(self) -> str:
        return f"Encoded({self.resp2!r})"


Reply: TypeAlias = Union[
    bool,
    int,
    float,
    bytes,
    str,
    SimpleString,
    ErrorReply,
    Verbatim,
    Map,
    Set,
    Push,
    NullArray,
    Encoded,
    "list[Reply]",
    "tuple[Reply, ...]",
    None,
]

OK: Final = SimpleString("OK")
PONG: Final = SimpleString("PONG")
QUEUED: Final = SimpleString("QUEUED")
