"""Node messages and reply parsers shared by the cluster integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

A, B, C = ("a" * 40, "b" * 40, "c" * 40)
RA, RB, RC = ("1" * 40, "2" * 40, "3" * 40)
MASTERS = (A, B, C)
REPLICAS = (RA, RB, RC)
EPOCH = {A: 1, B: 2, C: 3, RA: 1, RB: 2, RC: 3}
THIRDS = ((0, 5460), (5461, 10922), (10923, 16383))


def message(kind: str, node: str, epoch: int, seq: int, **fields: Any) -> bytes:
    return msgspec.json.encode({"v": 1, "type": kind, "node": node, "epoch": epoch, "seq": seq,
                                **fields})


def three_masters(*, replicas: bool = False, host: str = "10.0.0.1",
                  ports: tuple[int, ...] = (7000, 7001, 7002, 7100, 7101, 7102)) -> list[bytes]:
    """Masters A, B, C (epochs 1..3, slots in thirds) and optionally replicas RA, RB, RC."""
    batch = []
    for i, (node, span) in enumerate(zip(MASTERS, THIRDS, strict=True)):
        batch.append(message("hello", node, i + 1, 1, addr=f"{host}:{ports[i]}"))
        batch.append(message("slots", node, i + 1, 2, ranges=[list(span)]))
        if replicas:
            batch.append(message("hello", REPLICAS[i], i + 1, 1, addr=f"{host}:{ports[3 + i]}",
                                 role="replica", replicaof=node))
    return batch


def info_fields(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in text.split("\r\n") if line and ":" in line)


def node_flags(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode()
    return {line.split(" ")[0]: line.split(" ")[2] for line in text.splitlines()}


def poll(fetch: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 30.0,
         interval: float = 0.02, what: str = "condition") -> T:
    """Fetch until ``done`` holds; fail with the last value after ``timeout`` seconds. The
    deadline is generous: it only bounds a hang, it never decides a pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last value:\n{value}")
        time.sleep(interval)
