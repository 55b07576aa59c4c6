"""The server: listeners, the connection registry, counters, periodic housekeeping and
graceful shutdown. It is the composition root and implements ``commands.ServerView``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import platform
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from clusterwatch import __version__
from clusterwatch.cluster import (
    ClusterEvent,
    ClusterModel,
    ClusterStateChanged,
    ClusterStatusView,
    HealthConfig,
    HealthTracker,
    ModelConfig,
    NodeLeft,
    NodeState,
    NodeStateChanged,
    Outcome,
    Publisher,
    RequestStats,
    SelfCheck,
    SelfCounters,
    ServiceStatusView,
    SlotsMoved,
    ThreadPoolStats,
)
from clusterwatch.cluster.health import BUS_FRESH, EVENT_LOOP, LISTENING
from clusterwatch.cluster.ids import derive_id
from clusterwatch.cluster.servicestates import ServiceStates
from clusterwatch.commands import (
    AccessControl,
    AclFileError,
    BusError,
    CommandError,
    CommandTable,
    CpuTimes,
    Deferred,
    MemoryStats,
    ServerIdentity,
    Session,
    Stats,
    Subscriptions,
    build_table,
)

from .aclfile import NO_ACL_FILE, read_acl_file, write_acl_file
from .bus import Bus, MemoryBus
from .bus.redis_stream import RedisStreamBus, StreamSettings
from .config import ConfigError, ServerConfig
from .fdlimit import fit_to_descriptors
from .http import HttpMirror
from .metrics import Metrics
from .process_stats import ProcessStats
from .protocol import RespProtocol, TlsAcceptor
from .tls import TlsContexts, TlsSettingError
from .turns import Turn
from .waits import Waits
from .watch import DELIVERIES_PER_TURN, Fanout, JournalGoneError, Transition, Watch

if TYPE_CHECKING:
    from clusterwatch.agent.simulate import Simulation

log = logging.getLogger("clusterwatch.server")

VERSION = __version__
# The Redis release whose wire behaviour clusterwatch follows (HELLO version, INFO
# redis_version): clients gate features on it.
REDIS_COMPAT_VERSION = "7.0.15"
_CRON_INTERVAL = 0.1
# The housekeeping tick arriving this late means the loop is not serving clients.
_LOOP_LAG_LIMIT_MS = 1000


class Server:
    def __init__(self, config: ServerConfig, *, table: CommandTable | None = None) -> None:
        # max_clients and http_max_clients lowered to what RLIMIT_NOFILE allows, as Redis
        # lowers maxclients (server/fdlimit.py).
        config = fit_to_descriptors(config)
        self.config = config
        self.table = table or build_table(perf_ns=time.perf_counter_ns)
        self.stats = Stats()
        self.stats.configure(slowlog_slower_than_us=config.slowlog_log_slower_than,
                             slowlog_max_len=config.slowlog_max_len,
                             latency_threshold_ms=config.latency_monitor_threshold)
        self.connections: dict[int, RespProtocol] = {}
        self.last_message_ms: int | None = None
        self.self_checks: dict[str, SelfCheck] = {}
        self.recent_max_buffers: tuple[int, int] = (0, 0)
        self.clock_ms = self.now_ms()
        self._next_id = 0
        self._listeners: list[asyncio.Server] = []
        self._cron: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self.port = config.port
        self.tls_port = config.tls_port
        try:
            self.tls = TlsContexts(config)
        except TlsSettingError as exc:
            raise ConfigError(str(exc)) from None
        # Connections to the TLS port still in their handshake (not clients yet).
        self.handshaking: set[asyncio.Transport] = set()
        self.model = ClusterModel(model_config(config))
        self.turn = Turn()  # the work of the connection being served (server/turns.py)
        self.bus: Bus = self._make_bus()
        self._bus_clock = None if isinstance(self.bus, MemoryBus) else self.bus.now_ms
        self.bus_received = 0
        self.waits = Waits()
        self.blocked_clients = 0  # waiting for a Deferred reply (INFO clients)
        self.reply_cache: dict[str, Any] = {}
        self.subscriptions = Subscriptions()
        self.fanout = Fanout(hard_limit=config.pubsub_hard_limit,
                             soft_limit=config.pubsub_soft_limit,
                             soft_seconds=config.pubsub_soft_seconds,
                             clock_ms=lambda: self.clock_ms,
                             on_disconnect=self._pubsub_client_cut,
                             connections=self.connections)
        self.watch = Watch(self.model, journal_size=config.journal_size,
                           deliver=self._deliver)
        self.acl = AccessControl(self.table.catalog, requirepass=config.requirepass)
        self.acl.log.max_len = config.acllog_max_len
        if config.aclfile:
            self.acl.replace(read_acl_file(self.acl, config.aclfile))
        # The seed status APIs' views of the model (STATUS, HEALTH, CLUSTER STATUS, HTTP).
        self.health = HealthTracker(self.model, started_ms=self.clock_ms, config=HealthConfig(
            responsive_grace_ms=config.health_responsive_grace,
            awareness_grace_ms=config.health_awareness_grace))
        self.services = ServiceStatusView(self.model)
        self.cluster_status = ClusterStatusView(self.model)
        self.http = HttpMirror(self)  # the optional HTTP port of the views above
        self.metrics = Metrics(self)  # its /metrics
        self.loop_lag_ms = 0.0  # how late the last housekeeping tick ran
        self.myid = config.myid or derive_id(socket.gethostname(), config.port)
        self._demo: asyncio.Task[None] | None = None
        self._pid = os.getpid()
        self.process = ProcessStats()
        self.identity = ServerIdentity(
            version=VERSION,
            redis_compat_version=REDIS_COMPAT_VERSION,
            run_id=secrets.token_hex(20),
            tcp_port=config.port,
            unix_socket=config.unix_socket,
            executable=sys.argv[0] if sys.argv else "",
            config_file=config.config_file,
            event_loop="",
            os=f"{platform.system()} {platform.release()} {platform.machine()}",
            arch_bits=64 if sys.maxsize > 2**32 else 32,
            python_version=platform.python_version(),
            started_ms=self.clock_ms,
        )

    def _make_bus(self) -> Bus:
        config = self.config
        if config.bus == "memory":
            # A lambda, not the bound method: tests replace ``now_ms`` to drive the clock.
            return MemoryBus(self.model, lambda: self.now_ms(), turn=self.turn,
                             on_applied=self._bus_applied)
        settings = StreamSettings(
            url=config.bus, stream=config.bus_stream, maxlen=config.bus_maxlen,
            retention_ms=config.bus_retention_ms,
            publish_timeout_ms=config.bus_publish_timeout,
            snapshot_interval_ms=config.bus_snapshot_interval,
            wait_replicas=config.bus_wait_replicas,
            tick_ms=min(1000, max(10, config.node_timeout // 10)),
            report_validity_ms=2 * config.node_timeout,
        )
        return RedisStreamBus(self.model, settings, instance=f"{socket.gethostname()}:"
                              f"{os.getpid()}", on_applied=self._bus_applied,
                              max_message_bytes=config.max_message_size)

    def _bus_applied(self, messages: int) -> None:
        """The bus applied, on its own, a batch holding ``messages`` node messages: the
        stream bus's reader, or a slice of a large publish on the memory bus."""
        if messages:
            self.bus_received += messages
            self.last_message_ms = self.clock_ms
        self._model_changed()

    def _model_changed(self) -> None:
        """The model may have changed: log and publish its events, wake the waiters."""
        events = self.model.drain_events()
        self._log_events(events)
        self.watch.model_changed(events, self.clock_ms)
        self.waits.changed()

    def _probe_status(self, probe: str) -> str:
        return self.health.evaluate(self.model_now_ms(), probe,
                                    self_checks=self.self_checks).status

    def _service_states(self) -> ServiceStates:
        return self.services.states(self.model_now_ms())

    def _pubsub_client_cut(self) -> None:
        self.stats.client_output_buffer_disconnects += 1

    def _deliver(self, channel: str, message: str) -> None:
        """Send one of clusterwatch's channel messages to its subscribers."""
        name = channel.encode()
        self.fanout.deliver(name, message.encode(), self.subscriptions.receivers(name))

    def forget_subscriber(self, session: Session) -> None:
        """A subscriber went away: its subscriptions go a slice per loop turn."""
        self.fanout.forget(session.id)
        if not self.subscriptions.drop_some(session, DELIVERIES_PER_TURN):
            asyncio.get_running_loop().call_soon(self.forget_subscriber, session)

    def journal(self, since: int | None, count: int) -> list[Transition]:
        if since is None:
            return self.watch.journal.tail(count)
        try:
            return self.watch.journal.since(since, count)
        except JournalGoneError as exc:
            raise CommandError(
                f"the journal no longer reaches back to index {since} (the oldest kept is "
                f"{exc.oldest}): read the full state again and resume from its index",
                "GONE") from None

    # --- ServerView ------------------------------------------------------------------

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def now_us(self) -> int:
        return time.time_ns() // 1_000

    def sessions(self) -> Iterable[Session]:
        for conn in list(self.connections.values()):
            session = conn.session
            if session is None:
                continue
            session.query_buffer = conn.reader.buffered if conn.reader else 0
            session.output_buffer = conn.output_buffered()
            yield session

    def kill_session(self, session_id: int) -> bool:
        conn = self.connections.get(session_id)
        if conn is None:
            return False
        if conn.session is not None and conn.ctx is not None:
            conn.session.close_after_reply = True
        # Let the current reply go out first when a client kills itself.
        asyncio.get_running_loop().call_soon(conn.close)
        self.connections.pop(session_id, None)
        return True

    @property
    def pid(self) -> int:
        return self._pid

    def memory_stats(self) -> MemoryStats:
        return self.process.memory()

    def cpu_times(self) -> CpuTimes:
        return self.process.cpu_times()

    def config_values(self) -> Mapping[str, str]:
        return self.config.redis_style()

    @property
    def protected(self) -> bool:
        """Protected mode is in force: on, and the default user needs no password."""
        return self.config.protected_mode and self.acl.default.nopass

    def acl_load(self) -> None:
        if not self.config.aclfile:
            raise CommandError(NO_ACL_FILE)
        try:
            self.acl.replace(read_acl_file(self.acl, self.config.aclfile))
        except (OSError, AclFileError) as exc:
            raise CommandError(str(exc)) from None

    def acl_save(self) -> None:
        if not self.config.aclfile:
            raise CommandError(NO_ACL_FILE)
        try:
            write_acl_file(self.acl, self.config.aclfile)
        except OSError as exc:
            raise CommandError(f"There was an error trying to save the ACLs. Please check "
                               f"the server logs for more information ({exc.strerror})") from None

    @property
    def max_clients(self) -> int:
        return self.config.max_clients

    @property
    def connected_clients(self) -> int:
        return len(self.connections)

    def _sample_buffers(self) -> None:
        largest_input = largest_output = 0
        for session in self.sessions():
            largest_input = max(largest_input, session.query_buffer)
            largest_output = max(largest_output, session.output_buffer)
        self.recent_max_buffers = (largest_input, largest_output)

    def instantaneous(self) -> tuple[float, float, float]:
        return self.process.instantaneous()

    @property
    def bus_name(self) -> str:
        return self.bus.name

    def bus_publish(self, messages: Sequence[bytes], *, wait: bool = True,
                    publisher: Publisher | None = None
                    ) -> list[Outcome] | Deferred[list[Outcome] | BusError]:
        result = self.bus.publish(messages, wait=wait, publisher=publisher)
        if isinstance(result, list):  # applied (memory bus) or all rejected
            self.bus_received += len(messages)
            self.last_message_ms = self.clock_ms
            self._model_changed()
        return result

    def wait_until(self, check: Callable[[], Any | None], timeout_ms: int,
                   on_timeout: Callable[[], Any], key: Hashable | None = None
                   ) -> Deferred[Any]:
        return self.waits.add(check, timeout_ms, on_timeout, key)

    def bus_info(self) -> Sequence[tuple[str, str | int]]:
        return self.bus.info()

    def forget_node(self, node_id: str) -> bool:
        forgotten = self.model.forget(node_id, self.model_now_ms())
        if forgotten:
            self._model_changed()
        return forgotten

    def model_now_ms(self) -> int:
        # The memory bus's clock is ``now_ms`` itself: called directly, as every status
        # probe asks for it (and tests replace ``now_ms`` to drive the clock).
        if self._bus_clock is None:
            return self.now_ms()
        return self._bus_clock()

    def next_client_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.identity = _with_loop(self.identity, loop)
        await self.bus.start()
        demo = None
        if self.config.demo:
            from clusterwatch.agent.simulate import demo_simulation

            demo = demo_simulation(node_timeout_ms=self.config.node_timeout)
            if isinstance(self.bus, MemoryBus):
                # The demo cluster is in the model before the first client can ask.
                self.bus_publish(demo.initial(), wait=False)
        listener = await loop.create_server(
            lambda: RespProtocol(self), self.config.bind, self.config.port,
            reuse_address=True, backlog=511,
        )
        self._listeners.append(listener)
        sockets = listener.sockets or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
            self.identity = _replace_identity(self.identity, tcp_port=self.port)
            if not self.config.myid:
                self.myid = derive_id(socket.gethostname(), self.port)
        if self.config.tls_port:
            tls_listener = await loop.create_server(
                lambda: TlsAcceptor(self), self.config.bind, self.config.tls_port,
                reuse_address=True, backlog=511)
            self._listeners.append(tls_listener)
            self.tls_port = (tls_listener.sockets or ())[0].getsockname()[1]
        if self.config.unix_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.config.unix_socket)
            unix = await loop.create_unix_server(lambda: RespProtocol(self),
                                                 self.config.unix_socket)
            os.chmod(self.config.unix_socket, self.config.unix_socket_perm)
            self._listeners.append(unix)
        await self.http.start()
        self._stopping = asyncio.Event()
        # Judge our own checks now, not only at the first tick, so a probe that arrives
        # right after start sees them.
        self.self_checks = self._evaluate_self_checks(0.0)
        self.health.observe(self.model_now_ms(), self.self_checks)
        self._model_changed()
        self.watch.tick(self.clock_ms, self._probe_status)  # it starts from the probes now
        self._cron = loop.create_task(self._housekeeping())
        if demo is not None:
            self._demo = loop.create_task(self._run_demo(demo))
            log.info(f"demo cluster running on the {self.bus.name} bus",
                     extra={"masters": demo.masters, "replicas": demo.replicas_per_master})
        log.info("listening", extra={"bind": self.config.bind, "port": self.port,
                                     "tls_port": self.tls_port,
                                     "unix_socket": self.config.unix_socket,
                                     "event_loop": self.identity.event_loop,
                                     "version": VERSION, "pid": os.getpid()})

    async def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        assert self._stopping is not None
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self._on_signal, signum)
        if self.config.tls_port or self.config.tls_http:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, self.reload_tls)
        await self._stopping.wait()
        await self.shutdown()

    async def _run_demo(self, demo: Simulation) -> None:
        from clusterwatch.agent.simulate import run_local

        if not isinstance(self.bus, MemoryBus):
            while not self.bus.ready:  # the stream bus takes messages once it has replayed
                await asyncio.sleep(0.05)
            self._publish_quietly(demo.initial())
        await run_local(demo, self._publish_quietly)

    def _publish_quietly(self, messages: list[bytes]) -> None:
        """The demo's publisher: a bus outage loses a tick, the next one repeats it."""
        with contextlib.suppress(BusError):
            self.bus_publish(messages)

    def reload_tls(self) -> None:
        """SIGHUP: read the TLS files again. New handshakes use them; established
        connections keep theirs. A bad file keeps the old certificates."""
        try:
            self.tls.reload()
        except TlsSettingError as exc:
            log.error("TLS reload failed, keeping the previous certificates",
                      extra={"error": str(exc)})
            return
        log.info("TLS certificates reloaded", extra={"reloads": self.tls.reloads})

    def _on_signal(self, signum: int) -> None:
        log.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
        self.request_stop()

    def request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def shutdown(self) -> None:
        """Stop accepting, let queued replies drain, then close every connection."""
        await self.http.close()
        for listener in self._listeners:
            listener.close()
        for task in (self._cron, self._demo):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.bus.aclose()
        self.waits.close()
        for transport in list(self.handshaking):
            transport.abort()
        for conn in list(self.connections.values()):
            conn.close()
        deadline = time.monotonic() + self.config.shutdown_timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections.values()):
            conn.abort()
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 1.0)
        if self.config.unix_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.config.unix_socket)
        self.process.close()
        log.info("stopped", extra={"connections_received": self.stats.total_connections_received})

    # --- clusterwatch's own health (HEALTH, STATUS NODE, the HTTP probes) ----------------

    def _evaluate_self_checks(self, loop_lag_ms: float) -> dict[str, SelfCheck]:
        """listening, busFresh, eventLoop: re-judged on every housekeeping tick."""
        now = self.clock_ms
        previous = self.self_checks
        def last_up(name: str, up: bool) -> int | None:
            if up:
                return now
            return previous[name].last_up_ms if name in previous else None

        listening = bool(self._listeners) and not (self._stopping and self._stopping.is_set())
        replayed = self.bus.ready
        bus_trouble = self.bus.self_check()
        if bus_trouble is not None:
            bus = SelfCheck(bus_trouble.status, bus_trouble.reason, last_up(BUS_FRESH, False))
        elif self.last_message_ms is None:
            bus = SelfCheck("UNKNOWN", f"no node message on the {self.bus.name} bus yet")
        else:
            silent_ms = now - self.last_message_ms
            fresh = silent_ms <= self.config.node_timeout
            bus = SelfCheck("UP" if fresh else "DOWN",
                            "" if fresh else f"no node message for {silent_ms // 1000} s",
                            last_up(BUS_FRESH, fresh))
        responsive = loop_lag_ms < _LOOP_LAG_LIMIT_MS
        # A listener serving a model still replaying the bus has not started (STARTUP DOWN).
        serving = listening and replayed
        return {
            LISTENING: SelfCheck("UP" if serving else "DOWN",
                                 "" if serving else "not accepting connections" if not listening
                                 else f"replaying the {self.bus.name} bus",
                                 last_up(LISTENING, serving)),
            BUS_FRESH: bus,
            EVENT_LOOP: SelfCheck("UP" if responsive else "DOWN",
                                  "" if responsive else f"loop lag {loop_lag_ms:.0f} ms",
                                  last_up(EVENT_LOOP, responsive)),
        }

    def self_counters(self) -> SelfCounters:
        """clusterwatch's own figures for Curity's node status document."""
        checks = self.self_checks
        ops, _, _ = self.instantaneous()
        stopping = bool(self._stopping and self._stopping.is_set())
        return SelfCounters(
            stopping=stopping,
            listening=checks.get(LISTENING, SelfCheck("UP")).status == "UP",
            bus_fresh=checks.get(BUS_FRESH, SelfCheck("UP")).status == "UP",
            transaction_id=str(self.model.version),
            requests=RequestStats(active=len(self.connections), max=self.config.max_clients,
                                  total=self.stats.total_commands_processed, per_second=ops),
            thread_pool=ThreadPoolStats(active=1, max=1, queued=0),
        )

    async def _housekeeping(self) -> None:
        """Redis's serverCron, at 10 Hz: the cached clock, failure detection, ops/s
        samples, idle clients, clusterwatch's own health checks."""
        ticks = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(_CRON_INTERVAL)
            self.loop_lag_ms = loop_lag_ms = max(0.0, (loop.time() - started - _CRON_INTERVAL)
                                                 * 1000)
            self.clock_ms = self.now_ms()
            self.process.sample_memory()
            model_now = self.model_now_ms()
            self.model.refresh(model_now)
            self.self_checks = self._evaluate_self_checks(loop_lag_ms)
            # While the bus itself is out, no node is reachable (cluster/liveness.py).
            self.model.set_bus_fresh(self.bus.self_check() is None, model_now)
            self.health.observe(model_now, self.self_checks)
            self._model_changed()
            self.watch.tick(self.clock_ms, self._probe_status)
            self.watch.services_changed(self._service_states, self.clock_ms)
            stats = self.stats
            self.process.sample_rates(stats.total_commands_processed,
                                      stats.total_net_input_bytes, stats.total_net_output_bytes)
            ticks += 1
            if ticks % 10 == 0:
                self._sample_buffers()
                if self.config.timeout:
                    self._close_idle()

    def _close_idle(self) -> None:
        limit_ms = self.config.timeout * 1000
        for conn in list(self.connections.values()):
            session = conn.session
            if session is None or session.multi is not None:
                continue
            if self.clock_ms - session.last_interaction_ms > limit_ms:
                self.stats.idle_disconnects += 1
                log.info("closing idle client", extra={"client": session.id,
                                                       "addr": session.addr})
                conn.close()

    @staticmethod
    def _log_events(events: list[ClusterEvent]) -> None:
        """Log what the model reports: cluster state changes and node failures at warning,
        recoveries at info, routine joins and slot assignment at debug."""
        for event in events:
            if isinstance(event, ClusterStateChanged):
                level = logging.WARNING if event.new == "fail" else logging.INFO
                log.log(level, "cluster state changed",
                        extra={"old": event.old, "new": event.new})
            elif isinstance(event, NodeStateChanged):
                level = logging.WARNING if event.new is NodeState.FAIL else logging.INFO
                log.log(level, "node state changed", extra={
                    "node": event.node, "old": str(event.old), "new": str(event.new)})
            elif isinstance(event, NodeLeft):
                log.info("node left", extra={"node": event.node})
            elif isinstance(event, SlotsMoved) and event.old is not None:
                log.info("slots moved", extra={"start": event.start, "end": event.end,
                                               "old": event.old, "new": event.new or "-"})
            elif log.isEnabledFor(logging.DEBUG):
                log.debug("cluster event", extra={"event": event.kind, **_event_fields(event)})


def model_config(config: ServerConfig) -> ModelConfig:
    """The cluster model's settings from the server's."""
    return ModelConfig(
        node_timeout_ms=config.node_timeout,
        fail_after_ms=config.fail_after or None,
        fail_rule=config.fail_rule,
        max_nodes=config.max_nodes,
        forget_after_ms=config.forget_after,
        require_full_coverage=config.require_full_coverage,
        max_message_bytes=config.max_message_size,
        require_hello=config.require_hello,
    )


def _event_fields(event: ClusterEvent) -> dict[str, object]:
    return {f"event_{key}": value for key, value in dataclasses.asdict(event).items()}


def _replace_identity(identity: ServerIdentity, **changes: object) -> ServerIdentity:
    return dataclasses.replace(identity, **changes)  # type: ignore[arg-type]


def _with_loop(identity: ServerIdentity, loop: asyncio.AbstractEventLoop) -> ServerIdentity:
    name = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
    return _replace_identity(identity, event_loop=name)
