"""Shared by STATUS, HEALTH and CLUSTER STATUS: option parsing and JSON documents as replies.

Options follow Redis's parsing: keywords in any order and any case, each at most once; an
unknown or repeated keyword, or one without its value, is ``ERR syntax error``. An
``ApiError`` from a status view becomes ``ERR <its one-line message>``.

A source API's JSON document becomes a reply value key for key: an object is a ``Map``
(RESP3 map, RESP2 flat array), an array a list, ``true``/``false`` a boolean (RESP2 ``:1``/
``:0``), a fraction a double (RESP2 bulk string), ``null`` a null. ``FORMAT JSON`` instead
returns the document itself as one bulk string.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from clusterwatch.cluster import ApiError
from clusterwatch.resp import Encoded, Map, Reply, encode_both

from ._args import text
from ._errors import CommandError, syntax_error
from ._spec import Arg, ArgType, CommandContext

_ENCODER: Final = msgspec.json.Encoder()
# Replies cached per command and options; a few dozen option combinations at most.
_CACHE_ENTRIES: Final = 64


def api_error(exc: ApiError) -> CommandError:
    """A status view's refusal as an ``ERR`` reply with its one-line message."""
    return CommandError(exc.message)


def to_reply(value: Any) -> Reply:
    """A JSON value (dicts, lists, scalars) as a reply value; objects become maps."""
    kind = type(value)
    if kind is dict:
        return Map([(key, to_reply(item)) for key, item in value.items()])
    if kind is list or kind is tuple:
        return [to_reply(item) for item in value]
    return value  # type: ignore[no-any-return]


def json_bulk(doc: Any) -> bytes:
    """The document as compact JSON, for ``FORMAT JSON``."""
    return _ENCODER.encode(doc)


def options(args: Sequence[bytes], names: Mapping[bytes, str]) -> dict[str, bytes]:
    """Keyword/value pairs: ``names`` maps each lower-case keyword to its option name."""
    found: dict[str, bytes] = {}
    if len(args) % 2:
        raise syntax_error()
    for i in range(0, len(args), 2):
        name = names.get(args[i].lower())
        if name is None or name in found:
            raise syntax_error()
        found[name] = args[i + 1]
    return found


def wants_json(found: Mapping[str, bytes]) -> bool:
    """True for ``FORMAT JSON``; any other format is an error."""
    raw = found.get("format")
    if raw is None:
        return False
    if raw.lower() != b"json":
        raise CommandError(f"unknown format '{text(raw)[:64]}', the only format is JSON")
    return True


def cached_by_identity(ctx: CommandContext, name: str, key: object, source: object,
                       build: Callable[[], Reply]) -> Encoded:
    """The reply for ``source`` (a view's shared answer), rendered once while the view keeps
    returning the same object for ``key``."""
    cache: dict[object, tuple[object, Encoded]] | None = ctx.server.reply_cache.get(name)
    if cache is None:
        cache = ctx.server.reply_cache[name] = {}
    hit = cache.get(key)
    if hit is not None and hit[0] is source:
        return hit[1]
    if len(cache) >= _CACHE_ENTRIES:
        cache.clear()
    reply = encode_both(build())
    cache[key] = (source, reply)
    return reply


# --- COMMAND DOCS building blocks -----------------------------------------------------------


def token_value(token: str, value: Arg) -> Arg:
    """``[TOKEN value]``: a block of the keyword and its value, so both redis-cli's hints and
    HELP print the keyword."""
    return Arg(name=token.lower(), type=ArgType.BLOCK, optional=True,
               args=(Arg(name=token.lower(), type=ArgType.PURE_TOKEN, token=token), value))


FORMAT_JSON: Final = token_value("FORMAT", Arg(name="json", type=ArgType.PURE_TOKEN,
                                               token="JSON"))
TIMEOUT: Final = Arg(name="seconds", type=ArgType.INTEGER, token="TIMEOUT", optional=True)
MAXAGE: Final = Arg(name="ms", type=ArgType.INTEGER, token="MAXAGE", optional=True)
