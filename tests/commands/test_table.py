"""The command table: lookup, arity, Redis's error texts, and COMMAND INFO/DOCS rendering."""

from __future__ import annotations

import time
from typing import Any

import pytest

from clusterwatch.commands import (
    CommandContext,
    CommandError,
    CommandSpec,
    CommandTable,
    Flag,
    Group,
    Session,
    build_table,
)
from clusterwatch.resp import ErrorReply, Map, Set, SimpleString, encode
from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig


@pytest.fixture(scope="module")
def table() -> CommandTable:
    return build_table(perf_ns=time.perf_counter_ns)


@pytest.fixture
def ctx() -> CommandContext:
    app = Server(ServerConfig())
    return CommandContext(session=Session(id=7, allowed=app.table.catalog.everything),
                          server=app, table=app.table)


def resolve_error(table: CommandTable, argv: list[bytes]) -> str:
    with pytest.raises(CommandError) as info:
        table.resolve(argv)
    return f"{info.value.prefix} {info.value.message}"


# --- arity -------------------------------------------------------------------------------


def _spec(arity: int) -> CommandSpec:
    return CommandSpec(name="x", arity=arity, summary="s", group=Group.SERVER)


@pytest.mark.parametrize(
    ("arity", "ok", "bad"),
    [
        (1, [1], [0, 2, 3]),
        (2, [2], [1, 3]),
        (4, [4], [3, 5]),
        (-1, [1, 2, 50], [0]),
        (-2, [2, 3, 10], [0, 1]),
        (-3, [3, 4], [1, 2]),
    ],
)
def test_arity_sign_rule(arity: int, ok: list[int], bad: list[int]) -> None:
    spec = _spec(arity)
    assert [spec.arity_ok(n) for n in ok] == [True] * len(ok)
    assert [spec.arity_ok(n) for n in bad] == [False] * len(bad)


@pytest.mark.parametrize(
    ("argv", "full_name"),
    [
        ([b"ECHO", b"a"], "echo"),
        ([b"INFO"], "info"),
        ([b"INFO", b"a", b"b", b"c"], "info"),
        ([b"AUTH", b"p"], "auth"),
        ([b"AUTH", b"u", b"p"], "auth"),
        ([b"CLIENT", b"SETNAME", b"n"], "client|setname"),
        ([b"CONFIG", b"GET", b"a", b"b"], "config|get"),
        ([b"MULTI"], "multi"),
    ],
)
def test_arity_accepts(table: CommandTable, argv: list[bytes], full_name: str) -> None:
    assert table.resolve(argv).full_name == full_name


@pytest.mark.parametrize(
    ("argv", "full_name"),
    [
        ([b"ECHO"], "echo"),
        ([b"ECHO", b"a", b"b"], "echo"),
        ([b"AUTH"], "auth"),
        ([b"SELECT"], "select"),
        ([b"DBSIZE", b"x"], "dbsize"),
        ([b"MULTI", b"x"], "multi"),
        ([b"CLIENT", b"SETNAME"], "client|setname"),
        ([b"CLIENT", b"SETNAME", b"a", b"b"], "client|setname"),
        ([b"client", b"getname", b"x"], "client|getname"),
        ([b"CLIENT", b"KILL"], "client|kill"),
        ([b"CONFIG", b"GET"], "config|get"),
        ([b"COMMAND", b"COUNT", b"x"], "command|count"),
        ([b"CLIENT"], "client"),
        ([b"config"], "config"),
    ],
)
def test_arity_errors_name_the_full_command(table: CommandTable, argv: list[bytes],
                                            full_name: str) -> None:
    assert resolve_error(table, argv) == (
        f"ERR wrong number of arguments for '{full_name}' command")


# --- lookup ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "full_name"),
    [
        ([b"ping"], "ping"),
        ([b"PING"], "ping"),
        ([b"pInG"], "ping"),
        ([b"cLiEnT", b"sEtNaMe", b"x"], "client|setname"),
        ([b"CLIENT", b"setname", b"x"], "client|setname"),
        ([b"client", b"SETNAME", b"x"], "client|setname"),
        ([b"Command", b"Docs"], "command|docs"),
    ],
)
def test_lookup_is_case_insensitive(table: CommandTable, argv: list[bytes],
                                    full_name: str) -> None:
    assert table.resolve(argv).full_name == full_name


def test_mixed_case_dispatch_runs_the_command(ctx: CommandContext) -> None:
    assert ctx.table.dispatch(ctx, [b"cLiEnT", b"sEtNaMe", b"x"]) == SimpleString("OK")
    assert ctx.session.name == "x"
    assert encode(ctx.table.dispatch(ctx, [b"ClIeNt", b"GeTnAmE"]), 2) == b"$1\r\nx\r\n"


def test_lookup_name(table: CommandTable) -> None:
    assert table.lookup_name("CLIENT|SetName").full_name == "client|setname"  # type: ignore[union-attr]
    assert table.lookup_name("ping").name == "ping"  # type: ignore[union-attr]
    assert table.lookup_name("nosuch") is None
    assert table.lookup_name("client|nosuch") is None


# --- unknown command / subcommand --------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        ([b"foo"], "ERR unknown command 'foo', with args beginning with: "),
        ([b"foo", b"a", b"b"], "ERR unknown command 'foo', with args beginning with: 'a' 'b' "),
        ([b"FOO", b""], "ERR unknown command 'FOO', with args beginning with: '' "),
        ([b"x" * 200], f"ERR unknown command '{'x' * 128}', with args beginning with: "),
        ([b"foo", b"a" * 200],
         f"ERR unknown command 'foo', with args beginning with: '{'a' * 128}' "),
        # Arguments are listed while the list is under 128 bytes: 32 of "'a' " fill it.
        ([b"foo", *[b"a"] * 100],
         "ERR unknown command 'foo', with args beginning with: " + "'a' " * 32),
        # Each argument is cut to what is left of the 128.
        ([b"foo", b"b" * 120, b"c" * 50],
         f"ERR unknown command 'foo', with args beginning with: '{'b' * 120}' '{'c' * 5}' "),
    ],
)
def test_unknown_command_text(table: CommandTable, argv: list[bytes], text: str) -> None:
    assert resolve_error(table, argv) == text


def test_unknown_command_text_has_no_line_breaks_on_the_wire(ctx: CommandContext) -> None:
    reply = ctx.table.dispatch(ctx, [b"EVAL", b"return\r\n1", b"0"])
    wire = encode(reply, 2)
    assert wire == b"-ERR unknown command 'EVAL', with args beginning with: 'return  1' '0' \r\n"


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        ([b"CLIENT", b"xyz"], "ERR unknown subcommand 'xyz'. Try CLIENT HELP."),
        ([b"client", b"XYZ", b"1"], "ERR unknown subcommand 'XYZ'. Try CLIENT HELP."),
        ([b"CONFIG", b"FOO"], "ERR unknown subcommand 'FOO'. Try CONFIG HELP."),
        ([b"command", b"nope"], "ERR unknown subcommand 'nope'. Try COMMAND HELP."),
        ([b"SLOWLOG", b"x" * 200], f"ERR unknown subcommand '{'x' * 128}'. Try SLOWLOG HELP."),
    ],
)
def test_unknown_subcommand_text(table: CommandTable, argv: list[bytes], text: str) -> None:
    assert resolve_error(table, argv) == text


def test_command_without_subcommands_ignores_subcommand_lookup(table: CommandTable) -> None:
    # COMMAND itself runs with no subcommand (arity -1), as Redis does.
    assert table.resolve([b"COMMAND"]).full_name == "command"
    assert table.resolve([b"PING", b"CLIENT"]).full_name == "ping"


def test_duplicate_and_upper_case_names_are_refused() -> None:
    spec = _spec(1)
    with pytest.raises(ValueError, match="twice"):
        CommandTable([spec, spec], perf_ns=time.perf_counter_ns)
    upper = CommandSpec(name="X", arity=1, summary="s", group=Group.SERVER)
    with pytest.raises(ValueError, match="lower case"):
        CommandTable([upper], perf_ns=time.perf_counter_ns)


# --- HELP --------------------------------------------------------------------------------


def test_every_container_answers_help(ctx: CommandContext) -> None:
    containers = [spec for spec in ctx.table.all_specs() if spec.subcommands]
    assert {"client", "config", "command", "slowlog", "latency"} <= {c.name for c in containers}
    for container in containers:
        reply = ctx.table.dispatch(ctx, [container.name.upper().encode(), b"HELP"])
        assert isinstance(reply, list), (container.name, reply)
        assert all(type(line) is SimpleString for line in reply)
        lines = [line.text for line in reply]  # type: ignore[union-attr]
        assert lines[0].startswith(f"{container.name.upper()} <subcommand>")
        words = {line.split()[0] for line in lines[1:] if not line.startswith(" ")}
        expected = {sub.name.upper() for sub in container.subcommands}
        assert words == expected, container.name


# --- COMMAND COUNT / INFO / DOCS ---------------------------------------------------------


def test_command_count_is_the_number_of_top_level_commands(ctx: CommandContext) -> None:
    count = ctx.table.dispatch(ctx, [b"COMMAND", b"COUNT"])
    everything = ctx.table.dispatch(ctx, [b"COMMAND"])
    assert isinstance(count, int)
    assert count == len(everything)  # type: ignore[arg-type]
    names = [entry[0] for entry in everything]  # type: ignore[index, union-attr]
    assert "|" not in "".join(names)  # type: ignore[arg-type]
    assert len(set(names)) == count
    listed = ctx.table.dispatch(ctx, [b"COMMAND", b"LIST"])
    assert sorted(listed) == sorted(names)  # type: ignore[arg-type]


def _check_info_entry(entry: Any, *, sub: bool = False) -> None:
    assert isinstance(entry, list) and len(entry) == 10, entry
    name, arity, flags, first, last, step, acl, tips, keyspecs, subs = entry
    assert isinstance(name, str) and name == name.lower() and ("|" in name) == sub
    assert type(arity) is int and arity != 0
    assert isinstance(flags, Set) and all(type(f) is SimpleString for f in flags.members)
    assert (first, last, step) == (0, 0, 0)
    assert isinstance(acl, Set) and acl.members
    assert all(type(c) is SimpleString and c.text.startswith("@") for c in acl.members)
    assert tips == []
    if name == "bus|publish":  # its keys, the node ids, sit inside its arguments
        assert SimpleString("movablekeys") in flags.members
        (spec,) = keyspecs
        assert dict(spec.items)["find_keys"] == Map([("type", "unknown"), ("spec", Map([]))])
    else:
        assert keyspecs == [] and SimpleString("movablekeys") not in flags.members
    assert isinstance(subs, list)
    for inner in subs:
        _check_info_entry(inner, sub=True)
        assert inner[0].startswith(name + "|")


def test_command_info_entries_have_redis_shapes(ctx: CommandContext) -> None:
    everything = ctx.table.dispatch(ctx, [b"COMMAND"])
    assert isinstance(everything, list) and everything
    for entry in everything:
        _check_info_entry(entry)


def test_command_info_by_name(ctx: CommandContext) -> None:
    reply = ctx.table.dispatch(ctx, [b"COMMAND", b"INFO", b"ping", b"nosuch", b"client|setname"])
    assert isinstance(reply, list) and len(reply) == 3
    ping, missing, setname = reply
    assert ping[:6] == ["ping", -1, Set([SimpleString("fast")]), 0, 0, 0]  # type: ignore[index]
    assert missing is None
    assert setname[:2] == ["client|setname", 3]  # type: ignore[index]
    client = ctx.table.dispatch(ctx, [b"COMMAND", b"INFO", b"CLIENT"])[0]  # type: ignore[index]
    assert client[0] == "client"
    assert "client|setname" in [sub[0] for sub in client[9]]


def _check_arg_doc(arg: Any) -> None:
    assert isinstance(arg, Map)
    items = dict(arg.items)
    assert isinstance(items["name"], str) and items["name"]
    assert items["type"] in {"string", "integer", "double", "key", "pattern", "unix-time",
                             "pure-token", "oneof", "block"}
    if "flags" in items:
        flags = items["flags"]
        assert isinstance(flags, Set) and flags.members
        assert {f.text for f in flags.members} <= {"optional", "multiple", "multiple_token"}
        assert all(type(f) is SimpleString for f in flags.members)
    if "token" in items:
        assert isinstance(items["token"], str)
    if items["type"] in ("oneof", "block"):
        assert items["arguments"]
    for inner in items.get("arguments", []):
        _check_arg_doc(inner)


def _check_doc(name: str, doc: Any) -> None:
    assert isinstance(doc, Map), name
    items = dict(doc.items)
    for key in ("summary", "since", "group"):
        assert isinstance(items.get(key), str) and items[key], (name, key)
    assert len(items["since"].split(".")) == 3
    for arg in items.get("arguments", []):
        _check_arg_doc(arg)
    if "subcommands" in items:
        subs = items["subcommands"]
        assert isinstance(subs, Map) and subs.items
        for sub_name, sub_doc in subs.items:
            assert isinstance(sub_name, str) and sub_name.startswith(name + "|")
            _check_doc(sub_name, sub_doc)


def test_command_docs_shape_for_redis_cli(ctx: CommandContext) -> None:
    docs = ctx.table.dispatch(ctx, [b"COMMAND", b"DOCS"])
    assert isinstance(docs, Map)
    names = [name for name, _ in docs.items]
    assert len(names) == ctx.table.dispatch(ctx, [b"COMMAND", b"COUNT"])
    for name, doc in docs.items:
        _check_doc(name, doc)  # type: ignore[arg-type]
    echo = dict(dict(docs.items)["echo"].items)  # type: ignore[union-attr]
    assert echo["group"] == "connection"
    assert [dict(a.items)["name"] for a in echo["arguments"]] == ["message"]


def test_command_docs_by_name(ctx: CommandContext) -> None:
    docs = ctx.table.dispatch(ctx, [b"COMMAND", b"DOCS", b"PING", b"nosuch", b"client|kill"])
    assert isinstance(docs, Map)
    assert [name for name, _ in docs.items] == ["ping", "client|kill"]
    ping = dict(docs.items[0][1].items)  # type: ignore[union-attr]
    message = dict(ping["arguments"][0].items)
    assert message["flags"] == Set([SimpleString("optional")])
    client = ctx.table.dispatch(ctx, [b"COMMAND", b"DOCS", b"client"])
    subs = dict(dict(client.items[0][1].items)["subcommands"].items)  # type: ignore[union-attr]
    assert {"client|setname", "client|help"} <= set(subs)


# --- facts written down from Redis 7 (COMMAND INFO of redis-server 7.0.15; SETINFO 7.2) ----

# Flags Redis has that clusterwatch does not model at all.
_NOT_MODELLED = {"skip_slowlog"}

REDIS_FACTS: dict[str, tuple[int, set[str]]] = {
    "ping": (-1, {"fast"}),
    "echo": (2, {"fast", "loading", "stale"}),
    "hello": (-1, {"allow_busy", "fast", "loading", "no_auth", "noscript", "stale"}),
    "auth": (-2, {"allow_busy", "fast", "loading", "no_auth", "noscript", "stale"}),
    "select": (2, {"fast", "loading", "stale"}),
    "quit": (-1, {"allow_busy", "fast", "loading", "no_auth", "noscript", "stale"}),
    "reset": (1, {"allow_busy", "fast", "loading", "no_auth", "noscript", "stale"}),
    "client": (-2, set()),
    "client|setname": (3, {"loading", "noscript", "stale"}),
    "client|getname": (2, {"loading", "noscript", "stale"}),
    "client|id": (2, {"loading", "noscript", "stale"}),
    "client|info": (2, {"loading", "noscript", "stale"}),
    "client|list": (-2, {"admin", "loading", "noscript", "stale"}),
    "client|kill": (-3, {"admin", "loading", "noscript", "stale"}),
    "client|setinfo": (4, {"loading", "noscript", "stale"}),
    "client|help": (2, {"loading", "stale"}),
    "command": (-1, {"loading", "stale"}),
    "command|docs": (-2, {"loading", "stale"}),
    "command|getkeys": (-4, {"loading", "stale"}),
    "command|info": (-2, {"loading", "stale"}),
    "command|count": (2, {"loading", "stale"}),
    "command|list": (-2, {"loading", "stale"}),
    "config": (-2, set()),
    "config|get": (-3, {"admin", "loading", "noscript", "stale"}),
    "config|resetstat": (2, {"admin", "loading", "noscript", "stale"}),
    "info": (-1, {"loading", "stale"}),
    "dbsize": (1, {"fast", "readonly"}),
    "time": (1, {"fast", "loading", "stale"}),
    "slowlog|get": (-2, {"admin", "loading", "stale"}),
    "slowlog|len": (2, {"admin", "loading", "stale"}),
    "slowlog|reset": (2, {"admin", "loading", "stale"}),
    "latency|latest": (2, {"admin", "loading", "noscript", "stale"}),
    "latency|history": (3, {"admin", "loading", "noscript", "stale"}),
    "latency|reset": (-2, {"admin", "loading", "noscript", "stale"}),
    "multi": (1, {"allow_busy", "fast", "loading", "noscript", "stale"}),
    "exec": (1, {"loading", "noscript", "skip_slowlog", "stale"}),
    "discard": (1, {"allow_busy", "fast", "loading", "noscript", "stale"}),
    "readonly": (1, {"fast", "loading", "stale"}),
    "readwrite": (1, {"fast", "loading", "stale"}),
}


@pytest.mark.parametrize(("name", "facts"), REDIS_FACTS.items(), ids=list(REDIS_FACTS))
def test_redis_arity_and_flags(ctx: CommandContext, name: str,
                               facts: tuple[int, set[str]]) -> None:
    arity, flags = facts
    entry = ctx.table.dispatch(ctx, [b"COMMAND", b"INFO", name.encode()])[0]  # type: ignore[index]
    assert entry is not None, f"{name} is not implemented"
    assert entry[0] == name
    assert entry[1] == arity
    assert {f.text for f in entry[2].members} == flags - _NOT_MODELLED


def test_no_auth_commands_are_exactly_the_handshake_ones(table: CommandTable) -> None:
    redis_no_auth = {"hello", "auth", "quit", "reset"}
    ours = {spec.name for spec in table.all_specs()
            if Flag.NO_AUTH in spec.flags and spec.name in REDIS_FACTS}
    assert ours == redis_no_auth


def test_error_replies_carry_prefix_and_message(ctx: CommandContext) -> None:
    reply = ctx.table.dispatch(ctx, [b"HELLO", b"4"])
    assert reply == ErrorReply("NOPROTO", "unsupported protocol version")
