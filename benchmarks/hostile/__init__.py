"""Hostile-input cases for ``benchmarks/hostile_bench.py``: one module per area, each
registering its cases with ``@case``. A case attacks one server (clusterwatch, and
redis-server where Redis has the same input) while the bench's bystander PINGs it.

    @case("preauth-huge-count", redis=True, password="pw")
    def preauth_huge_count(target: Target) -> None:
        ...send the attack to target.port, return when it is over...

The attack runs in the bench's main thread; it should end by itself within seconds (read
the reply it expects, or give up after a timeout), and leave nothing running.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """The server under attack."""

    kind: str  # "clusterwatch" or "redis"
    host: str
    port: int
    pid: int
    password: str | None
    http_port: int | None = None  # clusterwatch's, when its args hold HTTP_PORT

    @property
    def is_redis(self) -> bool:
        return self.kind == "redis"


Attack = Callable[[Target], None]
# In a case's clusterwatch_args, replaced by a free port, then given as Target.http_port.
HTTP_PORT = "{http_port}"


@dataclass(frozen=True)
class Case:
    name: str
    attack: Attack
    doc: str
    redis: bool  # also run against redis-server with the same input
    password: str | None
    clusterwatch_args: tuple[str, ...] = ()
    redis_args: tuple[str, ...] = ()
    setup: Attack | None = None  # runs before the bystander starts (seed a model...)
    tags: tuple[str, ...] = field(default=())


CASES: dict[str, Case] = {}


def case(name: str, *, redis: bool = True, password: str | None = None,
         clusterwatch_args: tuple[str, ...] = (), redis_args: tuple[str, ...] = (),
         setup: Attack | None = None) -> Callable[[Attack], Attack]:
    def register(attack: Attack) -> Attack:
        if name in CASES:
            raise ValueError(f"hostile case {name!r} registered twice")
        CASES[name] = Case(name, attack, (attack.__doc__ or "").strip().split("\n")[0],
                           redis, password, clusterwatch_args, redis_args, setup)
        return attack
    return register


def load_all() -> dict[str, Case]:
    """Import every module of this package, so that each registers its cases."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return CASES
