"""Fair turns: how much work one connection may do before the event loop serves the others.

Work is counted, not timed: a unit is about a microsecond of this server's CPU.

    a request                 1 unit   (a pipelined PING costs ~0.7 us)
    a node message            2 + its size / 64 units   (a bare 80-byte heartbeat ~2 us,
                              a 560-byte status heartbeat ~8 us)

A connection's turn ends once it has spent ``TURN_UNITS`` (8 x 512 PINGs, what a turn held
before work was counted), then it yields and resumes on a later turn of the loop. A
``BUS PUBLISH`` the turn cannot afford is applied by the bus in slices of ``SLICE_UNITS``,
one slice per loop turn, and answered when the last slice is in.

Counts are deterministic and cheap, but a request's unit is a guess for commands that
cost more (INFO ~25 us, CLIENT LIST with thousands of clients, milliseconds). So time is
the backstop: a turn also ends after ``TURN_NS``, checked between commands that are not
a run of the same FAST command (``CommandTable.execute``'s ``deadline_ns``) and between
batches. It only ever ends a turn early; the counts decide in every ordinary case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["SLICE_UNITS", "TURN_NS", "TURN_UNITS", "Turn", "message_units", "one_message_units"]

TURN_UNITS: Final = 4096
SLICE_UNITS: Final = 4096
TURN_NS: Final = 5_000_000
_MESSAGE_UNITS: Final = 2
_BYTES_PER_UNIT: Final = 64


class Turn:
    """The work spent in the current turn of the connection being served. The connection
    resets it when its turn starts; the memory bus adds what a publish costs and asks
    whether the turn can still afford one. ``time_ns`` is the backstop's length (a
    benchmark that drives a connection without an event loop turns it off)."""

    __slots__ = ("spent", "time_ns")

    def __init__(self, time_ns: int = TURN_NS) -> None:
        self.spent = 0
        self.time_ns = time_ns

    def affords(self, units: int) -> bool:
        """A turn with nothing spent affords one turn's work; later work must fit."""
        spent = self.spent
        return units <= TURN_UNITS if not spent else spent + units <= TURN_UNITS


def message_units(messages: Sequence[bytes]) -> int:
    return _MESSAGE_UNITS * len(messages) + sum(map(len, messages)) // _BYTES_PER_UNIT


def one_message_units(message: bytes) -> int:
    return _MESSAGE_UNITS + len(message) // _BYTES_PER_UNIT
