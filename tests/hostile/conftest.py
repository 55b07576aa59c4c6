"""The hostile-input suite: each test attacks a real server process while a bystander
(``bystander.py``) PINGs it every 10 ms, then shows the error the attacker got, that the
server and model are intact, and how long the bystander waited (printed; asserted only
against a generous bound)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import ServerProcess

from .bystander import Bystander

pytestmark = pytest.mark.integration

BystanderFactory = Callable[..., Bystander]


@pytest.fixture
def bystander() -> Iterator[BystanderFactory]:
    """``with bystander(server) as b: ...; b.check()``."""
    made: list[Bystander] = []

    def make(server: ServerProcess, *, password: str | None = None,
             interval: float = 0.01) -> Bystander:
        watcher = Bystander(server.port, password=password, interval=interval)
        made.append(watcher)
        return watcher

    yield make
    for watcher in made:
        watcher.__exit__()
