"""Sans-I/O RESP codec: request reader and reply encoder (RESP2 and RESP3).

Imports nothing from the rest of the project and does no I/O.
"""

from ._encoder import Protocol, encode, encode_both, format_double, write
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._inline import split_inline
from ._limits import ReaderLimits
from ._reader import NEED_DATA, NeedData, RequestReader
from ._types import (
    NULL_ARRAY,
    OK,
    PONG,
    QUEUED,
    Encoded,
    ErrorReply,
    Map,
    NullArray,
    Push,
    Reply,
    Set,
    SimpleString,
    Verbatim,
)

__all__ = [
    "NEED_DATA",
    "NULL_ARRAY",
    "OK",
    "PONG",
    "QUEUED",
    "Encoded",
    "ErrorReply",
    "LocalProtocolError",
    "Map",
    "NeedData",
    "NullArray",
    "Protocol",
    "ProtocolError",
    "Push",
    "ReaderLimits",
    "RemoteProtocolError",
    "Reply",
    "RequestReader",
    "Set",
    "SimpleString",
    "Verbatim",
    "encode",
    "encode_both",
    "format_double",
    "split_inline",
    "write",
]
