"""The server as handlers see it: a read-mostly view, which the server implements.

Handlers never touch sockets. Anything that needs the process or the other
connections (CLIENT KILL, INFO memory) goes through ``ServerView``; a handler gets it,
with its connection's ``Session`` and the command table, in its ``CommandContext``
(``_spec.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from clusterwatch.cluster import (
        ClusterModel,
        ClusterStatusView,
        HealthTracker,
        Outcome,
        Publisher,
        SelfCheck,
        SelfCounters,
        ServiceStatusView,
    )

    from ._access import AccessControl
    from ._deferred import Deferred
    from ._session import Session
    from ._stats import Stats
    from ._subscriptions import Subscriptions


class MemoryStats(NamedTuple):
    """The process's memory, sampled at each housekeeping tick (as Redis's cron samples
    its RSS), so INFO reads it without a system call."""

    rss_bytes: int
    peak_rss_bytes: int
    total_system_memory: int


class CpuTimes(NamedTuple):
    """CPU seconds used so far, read when asked (INFO's cpu section)."""

    sys: float
    user: float
    sys_main_thread: float
    user_main_thread: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerIdentity:
    """Facts fixed for the life of the process."""

    version: str
    redis_compat_version: str
    run_id: str
    tcp_port: int
    unix_socket: str
    executable: str
    config_file: str
    event_loop: str
    os: str
    arch_bits: int
    python_version: str
    started_ms: int


class BusError(Exception):
    """Why the bus cannot take a publish (``ServerView.bus_publish`` raises it, or its
    ``Deferred`` resolves to it); the command layer answers it as an error reply.
    ``retry``: the same messages may be sent again later (Redis's ``TRYAGAIN``)."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry


class JournalEntry(Protocol):
    """One model transition, as BUS JOURNAL lists it."""

    @property
    def index(self) -> int: ...

    @property
    def time_ms(self) -> int: ...

    @property
    def channel(self) -> str: ...

    @property
    def message(self) -> str: ...


class ServerView(Protocol):
    """The server as handlers see it."""

    identity: ServerIdentity
    stats: Stats
    #: The cluster model the bus feeds; handlers read it (after ``model.refresh(now)``).
    model: ClusterModel
    #: This server's own stable node id (CLUSTER MYID): 40 lowercase hex digits.
    myid: str
    #: Messages handed to the bus so far, whatever their outcome. With ``model.version``
    #: it keys replies whose text also counts stale messages (CLUSTER INFO).
    bus_received: int
    #: Rendered replies the command layer keeps between calls, keyed by its own names;
    #: each entry carries the key it was built for, and the server never clears it.
    reply_cache: dict[str, Any]
    #: The seed status APIs' views of the model: Zeebe/Kubernetes health (it remembers
    #: that READY was reached), Puppet's services, ksqlDB's cluster status.
    health: HealthTracker
    services: ServiceStatusView
    cluster_status: ClusterStatusView
    #: clusterwatch's own checks (listening, bus, eventLoop), re-judged at 10 Hz.
    self_checks: dict[str, SelfCheck]
    #: Clients waiting for a blocked reply (BUS PUBLISH on the stream bus, the WAITs).
    blocked_clients: int
    #: The ACL users, their log, and the default user ``requirepass`` sets.
    acl: AccessControl
    #: Who listens to which of clusterwatch's pub/sub channels.
    subscriptions: Subscriptions

    def self_counters(self) -> SelfCounters:
        """clusterwatch's own figures for Curity's node status document (STATUS NODE)."""
        ...

    def bus_publish(self, messages: Sequence[bytes], *, wait: bool = True,
                    publisher: Publisher | None = None
                    ) -> list[Outcome] | Deferred[list[Outcome] | BusError]:
        """Hand raw JSON node messages to the bus, published as ``publisher``; one outcome
        per message.

        The memory bus answers at once. The Redis-stream bus answers later, once this
        instance has read back and applied what it appended, or with the ``BusError`` to
        answer instead; it raises ``BusError`` when it cannot append
        at all, and inside EXEC (``wait=False``).
        """
        ...

    @property
    def bus_name(self) -> str:
        """The bus implementation: ``memory`` (embedded) or ``redis-stream``."""
        ...

    def bus_info(self) -> Sequence[tuple[str, str | int]]:
        """The bus's own fields for BUS INFO and INFO cluster (address, stream, lag...)."""
        ...

    def wait_until(self, check: Callable[[], Any | None], timeout_ms: int,
                   on_timeout: Callable[[], Any], key: Hashable | None = None
                   ) -> Deferred[Any]:
        """Block until ``check()`` returns an answer (re-run whenever the model or the
        server's own checks may have changed), or answer ``on_timeout()`` after
        ``timeout_ms``. Waits with the same ``key`` ask the same question and share one
        check."""
        ...

    def forget_node(self, node_id: str) -> bool:
        """CLUSTER FORGET: forget a monitored node at the model's time, publish the change;
        False if the node is unknown."""
        ...

    def model_now_ms(self) -> int:
        """The model's clock: the wall clock on the memory bus, the bus's own clock (its
        entries' stream ids) on the Redis-stream bus."""
        ...

    def now_ms(self) -> int: ...

    def now_us(self) -> int: ...

    def sessions(self) -> Iterable[Session]: ...

    def kill_session(self, session_id: int) -> bool: ...

    @property
    def pid(self) -> int: ...

    def memory_stats(self) -> MemoryStats: ...

    def cpu_times(self) -> CpuTimes: ...

    def config_values(self) -> Mapping[str, str]: ...

    def journal(self, since: int | None, count: int) -> Sequence[JournalEntry]:
        """Up to ``count`` transitions after model index ``since`` (the newest without it);
        raises ``CommandError`` (``GONE``) when the journal no longer reaches back."""
        ...

    def acl_load(self) -> None:
        """Replace the users with those of the ACL file; raises ``CommandError``."""
        ...

    def acl_save(self) -> None:
        """Write the users to the ACL file; raises ``CommandError``."""
        ...

    @property
    def max_clients(self) -> int: ...

    @property
    def connected_clients(self) -> int: ...

    @property
    def recent_max_buffers(self) -> tuple[int, int]:
        """The largest input and output buffers among the clients, sampled once a second
        (Redis's client_recent_max_input_buffer / _output_buffer)."""
        ...

    def instantaneous(self) -> tuple[float, float, float]:
        """(ops per second, input kbps, output kbps) over the last samples."""
        ...
