"""BUS: publish node messages to the model and inspect the bus.

``BUS PUBLISH <json> [<json> ...]`` answers an array with one entry per message, in order:

    +applied                          applied to the model
    +stale: have epoch 3 seq 7        at or below the node's last applied (epoch, seq),
                                      which is shown; counted, not applied
    -ERR invalid message: <field>: <reason>
                                      rejected; the model is unchanged, the reject counted
    +pending: appended as <id>, <why>  the Redis-stream bus only: appended to the stream,
                                      not applied by this instance within the publish
                                      bound; every instance applies it when it reads it

On the Redis-stream bus the reply waits until this instance has read its own entries back
and applied them; a bus it cannot reach is a ``-TRYAGAIN bus unavailable: ...`` error. On
the memory bus a batch larger than the connection's turn can afford is applied in slices
between other clients' requests (``server/bus/memory.py``), and answered after the last.
Either way the handler returns a ``Deferred`` and the client waits, as a blocked client.

Who may publish what (``cluster/publishers.py``): a message's node id is its key. A message
for a node id outside the user's key patterns is answered, in its place,
``-NOPERM this user has no permissions to access one of the keys used as arguments`` (Redis's
words) and logged in ACL LOG (reason ``key``, the node id as object); one for a node bound to
another user ``-NOPERM node <id> is published by another user ...``; both are counted in BUS
INFO's ``rejected_by_reason`` (``key``, ``bound``). A user that may run ``BUS REBIND`` is an
admin: it publishes for any node. ``BUS NODE id`` shows who publishes for a node, ``BUS
REBIND id user`` moves it.

Simple strings and nested errors read the same in RESP2 and RESP3 (redis-cli prints
``1) applied``, ``2) (error) ERR invalid message: epoch: ...``). A batch is applied as one
network read: every message gets the same receive time.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from clusterwatch.cluster import MESSAGE_TYPES, KeyRefusedError, Outcome, Publisher
from clusterwatch.cluster.records import APPLIED as APPLIED_OUTCOME
from clusterwatch.resp import Encoded, ErrorReply, Map, Reply, SimpleString

from ._acl_log import AclLogEntry
from ._args import parse_int, text, upper
from ._context import BusError
from ._deferred import Deferred
from ._errors import CommandError, syntax_error
from ._session import client_info_line
from ._spec import Arg, ArgType, CommandContext, CommandSpec, Flag, Group

APPLIED = SimpleString("applied")
OK = SimpleString("OK")

# Every MessageError code, so BUS INFO has the same shape before and after a reject.
REJECT_REASONS = ("json", "too_large", "version", "unknown_type", "missing_field", "type",
                  "range", "format", "value", "depth", "max_nodes", "forgotten", "no_hello",
                  "key", "bound")
# The refusals of who may publish: Redis's NOPERM, not an invalid message.
_NOPERM_CODES = frozenset({"key", "bound"})


def outcome_reply(outcome: Outcome) -> Reply:
    if outcome.kind == "applied":
        return APPLIED
    if outcome.kind == "stale":
        epoch, seq = outcome.last or (0, 0)
        return SimpleString(f"stale: have epoch {epoch} seq {seq}")
    if outcome.kind == "pending":
        where = f"appended as {outcome.entry}, " if outcome.entry else ""
        return SimpleString(f"pending: {where}{outcome.reason}")
    error = outcome.error
    if error is not None and error.code in _NOPERM_CODES:
        return ErrorReply("NOPERM", error.reason)
    return ErrorReply("ERR", f"invalid message: {error}")


# From this many messages, a reply of nothing but ``applied`` is built as one frame: a
# list of 200k replies takes ~30 ms to build and encode, the frame well under one.
_ONE_FRAME_FROM = 1024


def _bus_error(error: BusError) -> CommandError:
    """The reply to a publish the bus could not take."""
    return CommandError(error.message, "TRYAGAIN" if error.retry else "ERR")


def _publish_reply(result: list[Outcome] | BusError) -> Reply:
    if isinstance(result, BusError):
        refused = _bus_error(result)
        return ErrorReply(refused.prefix, refused.message)
    if len(result) >= _ONE_FRAME_FROM and result.count(APPLIED_OUTCOME) == len(result):
        # Simple strings read the same in RESP2 and RESP3, and so does this array.
        frame = b"*%d\r\n%b" % (len(result), APPLIED.frame * len(result))
        return Encoded(frame, frame)
    return [outcome_reply(outcome) for outcome in result]


def bus_publish(ctx: CommandContext, argv: Sequence[bytes]) -> Reply | Deferred[Reply]:
    try:
        result = ctx.server.bus_publish(argv[2:], wait=not ctx.session.deny_blocking,
                                        publisher=publisher_of(ctx))
    except BusError as exc:
        raise _bus_error(exc) from None
    if isinstance(result, Deferred):
        return ctx.block(result.map(lambda done: _publish_reply(
            done if isinstance(done, BusError) else _logged(ctx, done))))
    return [outcome_reply(outcome) for outcome in _logged(ctx, result)]


class _NodeOnly(msgspec.Struct):
    node: str


_NODE_ONLY = msgspec.json.Decoder(_NodeOnly)


def node_ids(argv: Sequence[bytes]) -> list[bytes]:
    """COMMAND GETKEYS BUS PUBLISH ...: each message's node id (a message with none, or
    not JSON, has no key)."""
    found = []
    for data in argv[2:]:
        try:
            found.append(_NODE_ONLY.decode(data).node.encode())
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
    return found


def publisher_of(ctx: CommandContext) -> Publisher:
    """The session's user as a publisher: its key patterns, and whether it is an admin
    (may run BUS REBIND). One per ACL user object, kept while the user is unchanged (ACL
    SETUSER makes a new one), so its per-node verdicts are kept too."""
    server = ctx.server
    name = ctx.session.user
    user = server.acl.users.get(name)
    cache: dict[object, tuple[object, Publisher]] = server.reply_cache.setdefault(
        "bus|publishers", {})
    hit = cache.get(name)
    if hit is not None and hit[0] is user:
        return hit[1]
    if user is None:  # deleted while connected: it may publish for nothing
        publisher = Publisher(name, may_write=_nothing)
    else:
        publisher = Publisher(name, admin="bus|rebind" in user.allowed,
                              may_write=None if user.all_keys else user.may_write_key)
    cache[name] = (user, publisher)
    return publisher


def _nothing(_node_id: str) -> bool:
    return False


def _logged(ctx: CommandContext, result: list[Outcome]) -> list[Outcome]:
    """Log each message refused for its key in ACL LOG, as Redis logs a key refusal."""
    if result.count(APPLIED_OUTCOME) == len(result):  # the common case, in C
        return result
    for outcome in result:
        error = outcome.error
        if isinstance(error, KeyRefusedError):
            now_ms = ctx.server.now_ms()
            ctx.server.acl.log.add(AclLogEntry(
                reason="key", context="toplevel", object=error.node_id,
                username=ctx.session.user,
                client_info=client_info_line(ctx.session, now_ms), updated_ms=now_ms))
    return result


def bus_node(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    """``BUS NODE id``: a node's bus record: who publishes for it, its (epoch, seq), when
    it was last heard from and its state."""
    server = ctx.server
    node_id = text(argv[2])
    info = server.model.node(node_id)
    if info is None:
        raise CommandError(f"Unknown node {node_id}")
    return Map([
        ("node", node_id),
        ("publisher", server.model.publisher_of(node_id)),
        ("epoch", info.config_epoch),
        ("seq", info.seq),
        ("last_seen_ms", info.last_seen_ms),
        ("state", info.state.value),
    ])


def bus_rebind(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    """``BUS REBIND id user``: the node is published by ``user`` from now on."""
    server = ctx.server
    node_id, user = text(argv[2]), text(argv[3])
    if user not in server.acl.users:
        raise CommandError(f"Unknown user '{user}'")
    if not server.model.rebind(node_id, user):
        raise CommandError(f"Unknown node {node_id}")
    return OK


def bus_info(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    server = ctx.server
    model = server.model
    model.refresh(server.model_now_ms())
    counters = model.counters()
    rejected = dict.fromkeys(REJECT_REASONS, 0)
    rejected.update(counters.rejected)
    received: list[tuple[Reply, Reply]] = [(kind, counters.received.get(kind, 0))
                                           for kind in MESSAGE_TYPES]
    return Map([
        ("bus", server.bus_name),
        ("messages", server.bus_received),
        ("received", Map(received)),
        ("applied", counters.applied),
        ("stale", counters.stale),
        ("rejected", sum(rejected.values())),
        ("rejected_by_reason", Map(list(rejected.items()))),
        ("slot_conflicts", counters.slot_conflicts),
        ("events_dropped", counters.events_dropped),
        ("model_version", model.version),
        ("topology_version", model.topology_version),
        ("nodes", model.node_count),
        ("current_epoch", model.current_epoch),
        ("cluster_state", model.cluster_state),
        ("fail_rule", model.fail_rule),
        ("fail_rule_setting", model.fail_rule_setting),
        *server.bus_info(),
    ])


_JOURNAL_COUNT = 1000


def bus_journal(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    """``BUS JOURNAL [SINCE index] [COUNT n]``: the transitions after ``index`` (oldest
    first), or the newest ones without SINCE; ``-GONE`` when the journal has dropped some
    after ``index``."""
    since: int | None = None
    count = _JOURNAL_COUNT
    args = list(argv[2:])
    while args:
        option = upper(args.pop(0))
        if option == "SINCE" and args:
            since = parse_int(args.pop(0))
        elif option == "COUNT" and args:
            count = parse_int(args.pop(0))
            if count < 0:
                raise CommandError("COUNT must not be negative")
        else:
            raise syntax_error()
    return [Map([("index", entry.index), ("time", entry.time_ms), ("channel", entry.channel),
                 ("message", entry.message)])
            for entry in ctx.server.journal(since, count)]


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="bus", arity=-2, group=Group.BUS, since="0.1.0",
        summary="A container for node-message bus commands.",
        subcommands=(
            CommandSpec(
                name="publish", container="bus", arity=-3, group=Group.BUS, since="0.1.0",
                summary="Applies JSON node messages to the cluster model; one outcome per "
                        "message (applied, stale, or the validation error).",
                complexity="O(N) where N is the number of messages",
                flags=Flag.WRITE | Flag.FAST | Flag.MOVABLEKEYS, acl_categories=("publish",),
                handler=bus_publish, getkeys=node_ids,
                key_note="the node id of each message (a fail_report's sender): the user's "
                         "key patterns decide which nodes it may publish for",
                args=(Arg(name="message", type=ArgType.STRING, multiple=True),),
            ),
            CommandSpec(
                name="node", container="bus", arity=3, group=Group.BUS, since="0.2.0",
                summary="Returns a node's bus record: the user that publishes for it, its "
                        "epoch and seq, when it was last heard from, its state.",
                complexity="O(1)",
                flags=Flag.LOADING | Flag.STALE, acl_categories=("status",),
                handler=bus_node,
                args=(Arg(name="node-id", type=ArgType.STRING),),
            ),
            CommandSpec(
                name="rebind", container="bus", arity=4, group=Group.BUS, since="0.2.0",
                summary="Binds a node to the user that may publish for it from now on.",
                complexity="O(1)",
                flags=Flag.ADMIN, handler=bus_rebind,
                args=(Arg(name="node-id", type=ArgType.STRING),
                      Arg(name="username", type=ArgType.STRING)),
            ),
            CommandSpec(
                name="info", container="bus", arity=2, group=Group.BUS, since="0.1.0",
                summary="Returns message counts by type, rejects by reason, the stale count "
                        "and the model version.",
                complexity="O(1)",
                flags=Flag.LOADING | Flag.STALE, acl_categories=("status",),
                handler=bus_info,
            ),
            CommandSpec(
                name="journal", container="bus", arity=-2, group=Group.BUS, since="0.1.0",
                summary="Returns the model's recent transitions (the pub/sub messages, with "
                        "their model index), after an index or the newest.",
                complexity="O(N) where N is the journal's length",
                flags=Flag.LOADING | Flag.STALE, acl_categories=("status",),
                handler=bus_journal,
                args=(Arg(name="index", type=ArgType.INTEGER, token="SINCE", optional=True),
                      Arg(name="count", type=ArgType.INTEGER, token="COUNT", optional=True)),
            ),
        ),
    ),
)
