"""CLUSTER: Redis-compatible views of the monitored cluster.

clusterwatch observes the cluster and is not a member of it: ``cluster_known_nodes``
counts the monitored nodes, ``cluster_my_epoch`` is 0, and the ``_sent`` message counters
stay 0 (see ``ClusterModel.cluster_info_text``). CLUSTER MYID is this server's own id,
which no monitored node carries.

CLUSTER NODES lists the monitored nodes plus one ``myself`` line for clusterwatch: a
master with no slots and epoch 0 at the address it listens on. redis-cli's cluster tools
(``--cluster check``) need that line to know which node they are talking to and crash
without it; a node with no slots changes neither the slot map nor their consistency
check, so they check the monitored cluster through clusterwatch.

Every read runs the model's failure detection first (O(1) until a deadline is due). The
replies that clients poll (INFO, NODES, SLOTS, SHARDS) are rendered once per model change
into a pre-encoded ``Encoded`` reply, kept in the server's ``reply_cache`` with the key it
was built for, so a repeated request costs a version check.

CLUSTER STATUS (ksqlDB's ``/clusterStatus``) is defined with the other status commands in
``commands/status.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import cast

from clusterwatch.cluster import NetInfo, keyslot
from clusterwatch.resp import OK, Encoded, Map, Reply, Verbatim, encode_both

from ._args import text
from ._errors import CommandError
from ._spec import Arg, ArgType, CommandContext, CommandSpec, Flag, Group
from .status import CLUSTER_STATUS_SPEC
from .waits import cluster_wait

_NO_METADATA = Map(())


def _cached(ctx: CommandContext, name: str, key: object,
            build: Callable[[], Reply]) -> Encoded:
    cache = ctx.server.reply_cache
    entry = cache.get(name)
    if entry is not None and entry[0] == key:
        return entry[1]  # type: ignore[no-any-return]
    reply = encode_both(build())
    cache[name] = (key, reply)
    return reply


def cluster_info(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    server = ctx.server
    model = server.model
    now = server.model_now_ms()
    model.refresh(now)
    # The text changes with every applied message and state transition (the version) and
    # with every stale message (its received counters): the bus counts both. The hot path
    # compares the two without building a key.
    version = model.version
    received = server.bus_received
    entry = server.reply_cache.get("cluster|info")
    if entry is not None and entry[0] == version and entry[1] == received:
        return entry[2]  # type: ignore[no-any-return]
    reply = encode_both(Verbatim(model.cluster_info_text(now)))
    server.reply_cache["cluster|info"] = (version, received, reply)
    return reply


def myself_line(ctx: CommandContext) -> str:
    """clusterwatch's own CLUSTER NODES line: a master without slots (see module doc)."""
    host = ctx.server.config_values().get("bind", "") or "127.0.0.1"
    if host in ("0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    port = ctx.server.identity.tcp_port
    return f"{ctx.server.myid} {host}:{port}@0 myself,master - 0 0 0 connected\n"


def cluster_nodes(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    model = ctx.server.model
    now = ctx.server.model_now_ms()
    model.refresh(now)
    version = model.version
    entry = ctx.server.reply_cache.get("cluster|nodes")
    if entry is not None and entry[0] == version:
        return entry[1]  # type: ignore[no-any-return]
    # Rendered on first use for the protocol asked: a large text that changes with every
    # heartbeat, read by most clients in one protocol only. The text is not kept joined:
    # each protocol's frame is the one copy of it.
    reply = Encoded.lazy(partial(_verbatim, myself_line(ctx).encode(),
                                 model.cluster_nodes_bytes(now)))
    ctx.server.reply_cache["cluster|nodes"] = (version, reply)
    return reply


def _verbatim(head: bytes, body: bytes, protocol: int) -> bytes:
    """`encode(Verbatim(head + body), protocol)` without joining the text first."""
    size = len(head) + len(body)
    if protocol == 3:
        return b"".join((b"=%d\r\ntxt:" % (size + 4), head, body, b"\r\n"))
    return b"".join((b"$%d\r\n" % size, head, body, b"\r\n"))


def _net_info(node: NetInfo) -> list[Reply]:
    return [node.host, node.port, node.id, _NO_METADATA]


def cluster_slots(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    model = ctx.server.model
    now = ctx.server.model_now_ms()
    model.refresh(now)

    def build() -> Reply:
        return [[row.start, row.end, _net_info(row.master),
                 *(_net_info(replica) for replica in row.replicas)]
                for row in model.cluster_slots(now)]

    return _cached(ctx, "cluster|slots", model.topology_version, build)


def cluster_shards(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    model = ctx.server.model
    now = ctx.server.model_now_ms()
    model.refresh(now)

    def build() -> Reply:
        shards: list[Reply] = []
        for shard in model.cluster_shards(now):
            nodes: list[Reply] = [Map([(key, cast(Reply, value)) for key, value in node.items()])
                                  for node in shard["nodes"]]
            slots: list[Reply] = list(shard["slots"])
            shards.append(Map([("slots", slots), ("nodes", nodes)]))
        return shards

    return _cached(ctx, "cluster|shards", model.topology_version, build)


def cluster_myid(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return ctx.server.myid


def cluster_count_failure_reports(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    node_id = text(argv[2])
    count = ctx.server.model.count_failure_reports(node_id, ctx.server.model_now_ms())
    if count is None:
        raise CommandError(f"Unknown node {node_id}")
    return count


def cluster_forget(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    """Redis's CLUSTER FORGET: the node leaves the table (its slot claims withdrawn) and
    its messages are refused for 60 s."""
    node_id = text(argv[2])
    if node_id == ctx.server.myid:
        raise CommandError("I tried hard but I can't forget myself...")
    if not ctx.server.forget_node(node_id):
        raise CommandError(f"Unknown node {node_id}")
    return OK


def cluster_keyslot(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return keyslot(argv[2])


def _sub(name: str, arity: int, summary: str, handler: object, *, since: str = "3.0.0",
         complexity: str = "O(1)", args: tuple[Arg, ...] = (),
         flags: Flag = Flag.NONE) -> CommandSpec:
    return CommandSpec(name=name, container="cluster", arity=arity, summary=summary,
                       group=Group.CLUSTER, since=since, complexity=complexity, args=args,
                       flags=flags | Flag.LOADING | Flag.STALE,
                       handler=handler)  # type: ignore[arg-type]


_PER_NODE = "O(N) where N is the total number of Cluster nodes"

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="cluster", arity=-2, group=Group.CLUSTER, since="3.0.0",
        summary="A container for Redis Cluster commands.",
        subcommands=(
            _sub("info", 2, "Returns information about the state of the monitored cluster.",
                 cluster_info),
            _sub("nodes", 2, "Returns the cluster configuration: one line per monitored node.",
                 cluster_nodes, complexity=_PER_NODE),
            _sub("shards", 2, "Returns the mapping of cluster slots to shards.",
                 cluster_shards, since="7.0.0", complexity=_PER_NODE),
            _sub("slots", 2, "Returns the mapping of cluster slots to nodes.",
                 cluster_slots, complexity=_PER_NODE),
            _sub("myid", 2, "Returns the ID of this clusterwatch server.", cluster_myid),
            _sub("count-failure-reports", 3,
                 "Returns the number of active failure reports active for a node.",
                 cluster_count_failure_reports, flags=Flag.ADMIN,
                 complexity="O(N) where N is the number of failure reports",
                 args=(Arg(name="node-id", type=ArgType.STRING),)),
            _sub("forget", 3, "Removes a node from the monitored nodes; its messages are "
                 "refused for 60 seconds.", cluster_forget, flags=Flag.ADMIN,
                 complexity="O(1)", args=(Arg(name="node-id", type=ArgType.STRING),)),
            _sub("keyslot", 3, "Returns the hash slot for a key.", cluster_keyslot,
                 complexity="O(N) where N is the number of bytes in the key",
                 args=(Arg(name="key", type=ArgType.STRING),)),
            CLUSTER_STATUS_SPEC,
            _sub("wait", 4, "Blocks until the model index passes the given one, or the "
                 "timeout passes; returns the model index (Consul's blocking query).",
                 cluster_wait, since="0.1.0",
                 args=(Arg(name="index", type=ArgType.INTEGER),
                       Arg(name="timeout-ms", type=ArgType.INTEGER))),
        ),
    ),
)
