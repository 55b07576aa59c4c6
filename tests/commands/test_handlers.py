"""Handlers driven through ``CommandTable.dispatch`` with a real ``Server`` as the view.

No sockets: the server object is constructed but never started. CLIENT LIST/INFO read
``Server.connections``, so those tests register a minimal stand-in connection.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from types import SimpleNamespace
from typing import Any

import pytest

from clusterwatch.commands import CommandContext, Session, build_table
from clusterwatch.resp import ErrorReply, Map, Reply, SimpleString, Verbatim, encode
from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig

OK = SimpleString("OK")
PONG = SimpleString("PONG")
QUEUED = SimpleString("QUEUED")


def make_ctx(config: ServerConfig | None = None, *, session_id: int = 7,
             server: Server | None = None) -> CommandContext:
    app = server or Server(config or ServerConfig())
    session = Session(id=session_id, addr="127.0.0.1:50000", laddr="127.0.0.1:7379",
                      authenticated=not app.config.requirepass,
                      allowed=app.table.catalog.everything if not app.config.requirepass
                      else frozenset())
    return CommandContext(session=session, server=app, table=app.table)


def run(ctx: CommandContext, *args: str | bytes) -> Reply:
    argv = [a if isinstance(a, bytes) else a.encode() for a in args]
    return ctx.table.dispatch(ctx, argv)


def as_dict(reply: Reply) -> dict[Any, Any]:
    assert isinstance(reply, Map), reply
    return dict(reply.items)


def text_of(reply: Reply) -> str:
    assert isinstance(reply, Verbatim), reply
    assert reply.fmt == "txt"
    return reply.text.decode()


@pytest.fixture
def ctx() -> CommandContext:
    return make_ctx()


# --- PING / ECHO -------------------------------------------------------------------------


def test_ping(ctx: CommandContext) -> None:
    assert run(ctx, "PING") == PONG
    assert encode(run(ctx, "PING", "hi"), 2) == b"$2\r\nhi\r\n"
    assert run(ctx, "PING", "a", "b") == ErrorReply(
        "ERR", "wrong number of arguments for 'ping' command")


def test_echo_returns_the_argument_as_a_bulk_string(ctx: CommandContext) -> None:
    assert encode(run(ctx, "ECHO", b"a\r\nb"), 3) == b"$4\r\na\r\nb\r\n"


# --- HELLO -------------------------------------------------------------------------------

HELLO_KEYS = ["server", "version", "proto", "id", "mode", "role", "modules"]


def test_hello_3_switches_to_resp3(ctx: CommandContext) -> None:
    reply = run(ctx, "HELLO", "3")
    assert isinstance(reply, Map)
    assert [key for key, _ in reply.items] == HELLO_KEYS
    fields = as_dict(reply)
    assert fields["proto"] == 3 and type(fields["proto"]) is int
    assert fields["id"] == 7
    assert fields["server"] == "redis"
    assert fields["modules"] == []
    assert re.fullmatch(r"\d+\.\d+\.\d+", fields["version"])
    assert ctx.session.protocol == 3
    assert encode(reply, 3).startswith(b"%7\r\n$6\r\nserver\r\n")


def test_hello_2_stays_on_resp2(ctx: CommandContext) -> None:
    run(ctx, "HELLO", "3")
    reply = run(ctx, "HELLO", "2")
    assert as_dict(reply)["proto"] == 2
    assert ctx.session.protocol == 2
    assert encode(reply, 2).startswith(b"*14\r\n$6\r\nserver\r\n")


def test_hello_without_version_reports_the_current_protocol(ctx: CommandContext) -> None:
    assert as_dict(run(ctx, "HELLO"))["proto"] == 2
    run(ctx, "HELLO", "3")
    assert as_dict(run(ctx, "hello"))["proto"] == 3
    assert ctx.session.protocol == 3


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["4"], ErrorReply("NOPROTO", "unsupported protocol version")),
        (["1"], ErrorReply("NOPROTO", "unsupported protocol version")),
        (["abc"], ErrorReply("ERR", "Protocol version is not an integer or out of range")),
        (["3.0"], ErrorReply("ERR", "Protocol version is not an integer or out of range")),
        (["3", "foo"], ErrorReply("ERR", "Syntax error in HELLO option 'foo'")),
        (["3", "AUTH", "u"], ErrorReply("ERR", "Syntax error in HELLO option 'AUTH'")),
        (["3", "SETNAME"], ErrorReply("ERR", "Syntax error in HELLO option 'SETNAME'")),
        (["3", "SETNAME", "a b"], ErrorReply(
            "ERR", "Client names cannot contain spaces, newlines or special characters.")),
    ],
)
def test_hello_errors_leave_the_protocol_alone(ctx: CommandContext, args: list[str],
                                               error: ErrorReply) -> None:
    assert run(ctx, "HELLO", *args) == error
    assert ctx.session.protocol == 2
    assert ctx.session.name == ""


def test_hello_setname(ctx: CommandContext) -> None:
    run(ctx, "HELLO", "3", "SETNAME", "worker-1")
    assert ctx.session.name == "worker-1"
    assert run(ctx, "CLIENT", "GETNAME") == "worker-1"


# --- AUTH --------------------------------------------------------------------------------


def test_auth_without_a_password_configured(ctx: CommandContext) -> None:
    assert run(ctx, "AUTH", "x") == ErrorReply(
        "ERR", "AUTH <password> called without any password configured for the default "
        "user. Are you sure your configuration is correct?")
    # Redis's default user is "nopass": any password works for it, no other user exists.
    assert run(ctx, "AUTH", "default", "x") == OK
    assert run(ctx, "AUTH", "a", "b") == ErrorReply(
        "WRONGPASS", "invalid username-password pair or user is disabled.")
    assert run(ctx, "AUTH", "a", "b", "c") == ErrorReply("ERR", "syntax error")


@pytest.fixture
def locked() -> CommandContext:
    return make_ctx(ServerConfig(requirepass="pw"))


NOAUTH = ErrorReply("NOAUTH", "Authentication required.")
WRONGPASS = ErrorReply("WRONGPASS", "invalid username-password pair or user is disabled.")


def test_requirepass_gates_commands_until_auth(locked: CommandContext) -> None:
    assert locked.session.authenticated is False
    assert run(locked, "PING") == NOAUTH
    assert run(locked, "CLIENT", "ID") == NOAUTH
    assert run(locked, "AUTH", "wrong") == WRONGPASS
    assert locked.session.authenticated is False
    assert run(locked, "PING") == NOAUTH
    assert run(locked, "AUTH", "pw") == OK
    assert locked.session.authenticated is True
    assert run(locked, "PING") == PONG


def test_auth_with_user(locked: CommandContext) -> None:
    assert run(locked, "AUTH", "someone", "pw") == WRONGPASS
    assert run(locked, "AUTH", "default", "pw") == OK
    assert locked.session.authenticated is True


def test_unknown_command_before_auth_is_unknown_not_noauth(locked: CommandContext) -> None:
    assert run(locked, "FOO") == ErrorReply(
        "ERR", "unknown command 'FOO', with args beginning with: ")


def test_hello_before_auth(locked: CommandContext) -> None:
    reply = run(locked, "HELLO", "3")
    assert isinstance(reply, ErrorReply) and reply.prefix == "NOAUTH"
    assert reply.message.startswith("HELLO must be called with the client already authenticated")
    assert locked.session.protocol == 2
    assert run(locked, "HELLO", "3", "AUTH", "default", "wrong") == WRONGPASS
    assert locked.session.protocol == 2
    assert locked.session.authenticated is False
    assert as_dict(run(locked, "HELLO", "3", "AUTH", "default", "pw"))["proto"] == 3
    assert locked.session.protocol == 3
    assert locked.session.authenticated is True


def test_reset_deauthenticates_when_a_password_is_set(locked: CommandContext) -> None:
    run(locked, "AUTH", "pw")
    run(locked, "HELLO", "3", "SETNAME", "n")
    assert run(locked, "RESET") == SimpleString("RESET")
    assert locked.session.authenticated is False
    assert locked.session.protocol == 2
    assert locked.session.name == ""


# --- SELECT / QUIT / RESET / small server commands ---------------------------------------


@pytest.mark.parametrize(
    ("index", "reply"),
    [
        ("0", OK),
        ("1", ErrorReply("ERR", "DB index is out of range")),
        ("15", ErrorReply("ERR", "DB index is out of range")),
        ("-1", ErrorReply("ERR", "DB index is out of range")),
        ("x", ErrorReply("ERR", "value is not an integer or out of range")),
        ("00", ErrorReply("ERR", "value is not an integer or out of range")),
        (" 0", ErrorReply("ERR", "value is not an integer or out of range")),
    ],
)
def test_select(ctx: CommandContext, index: str, reply: Reply) -> None:
    assert run(ctx, "SELECT", index) == reply


def test_quit_asks_to_close_after_the_reply(ctx: CommandContext) -> None:
    assert ctx.session.close_after_reply is False
    assert run(ctx, "QUIT") == OK
    assert ctx.session.close_after_reply is True


def test_reset_clears_connection_state(ctx: CommandContext) -> None:
    run(ctx, "HELLO", "3", "SETNAME", "n")
    run(ctx, "MULTI")
    assert run(ctx, "RESET") == SimpleString("RESET")
    assert (ctx.session.protocol, ctx.session.name, ctx.session.multi) == (2, "", None)
    assert ctx.session.authenticated is True
    assert run(ctx, "EXEC") == ErrorReply("ERR", "EXEC without MULTI")


def test_dbsize_and_time(ctx: CommandContext) -> None:
    assert run(ctx, "DBSIZE") == 0
    seconds, micros = run(ctx, "TIME")  # type: ignore[misc]
    assert seconds.isdigit() and micros.isdigit()  # type: ignore[union-attr]
    assert int(micros) < 1_000_000  # type: ignore[arg-type]
    assert abs(int(seconds) - ctx.server.now_ms() // 1000) <= 2  # type: ignore[arg-type]


# --- CLIENT ------------------------------------------------------------------------------


def attach(ctx: CommandContext) -> None:
    """Register a stand-in connection so ``Server.sessions()`` sees this session."""
    ctx.server.connections[ctx.session.id] = SimpleNamespace(  # type: ignore[attr-defined]
        session=ctx.session, reader=None, transport=None, output_buffered=lambda: 0)


def test_client_id_name_and_setinfo(ctx: CommandContext) -> None:
    assert run(ctx, "CLIENT", "ID") == 7
    assert run(ctx, "CLIENT", "GETNAME") is None
    assert encode(run(ctx, "CLIENT", "GETNAME"), 2) == b"$-1\r\n"
    assert run(ctx, "CLIENT", "SETNAME", "alpha") == OK
    assert run(ctx, "CLIENT", "GETNAME") == "alpha"
    assert run(ctx, "CLIENT", "SETNAME", "a b") == ErrorReply(
        "ERR", "Client names cannot contain spaces, newlines or special characters.")
    assert run(ctx, "CLIENT", "GETNAME") == "alpha"
    assert run(ctx, "CLIENT", "SETINFO", "LIB-NAME", "redis-py") == OK
    assert run(ctx, "CLIENT", "SETINFO", "lib-ver", "8.1.0") == OK
    assert (ctx.session.lib_name, ctx.session.lib_ver) == ("redis-py", "8.1.0")
    assert run(ctx, "CLIENT", "SETINFO", "FOO", "x") == ErrorReply(
        "ERR", "Unrecognized option 'FOO'")


def test_client_info_and_list(ctx: CommandContext) -> None:
    attach(ctx)
    other = make_ctx(session_id=9, server=ctx.server)  # type: ignore[arg-type]
    attach(other)
    run(ctx, "CLIENT", "SETNAME", "me")
    info = text_of(run(ctx, "CLIENT", "INFO"))
    assert info.endswith("\n") and info.count("\n") == 1
    fields = dict(pair.split("=", 1) for pair in info.strip().split(" "))
    assert fields["id"] == "7"
    assert fields["addr"] == "127.0.0.1:50000"
    assert fields["name"] == "me"
    assert fields["cmd"] == "client|info"
    assert fields["resp"] == "2"
    assert fields["db"] == "0"
    listing = text_of(run(ctx, "CLIENT", "LIST"))
    lines = listing.split("\n")
    assert lines[-1] == "" and len(lines) == 3
    assert [line.split(" ")[0] for line in lines[:2]] == ["id=7", "id=9"]
    only = text_of(run(ctx, "CLIENT", "LIST", "ID", "9"))
    assert only.startswith("id=9 ") and only.count("\n") == 1
    assert text_of(run(ctx, "CLIENT", "LIST", "TYPE", "pubsub")) == ""
    assert run(ctx, "CLIENT", "LIST", "TYPE", "bogus") == ErrorReply(
        "ERR", "Unknown client type 'bogus'")


# --- MULTI / EXEC / DISCARD --------------------------------------------------------------


def test_multi_exec(ctx: CommandContext) -> None:
    assert run(ctx, "MULTI") == OK
    assert run(ctx, "PING") == QUEUED
    assert run(ctx, "ECHO", "a") == QUEUED
    assert run(ctx, "SELECT", "1") == QUEUED
    reply = run(ctx, "EXEC")
    assert reply == [PONG, b"a", ErrorReply("ERR", "DB index is out of range")]
    assert ctx.session.multi is None
    assert run(ctx, "EXEC") == ErrorReply("ERR", "EXEC without MULTI")


def test_empty_transaction(ctx: CommandContext) -> None:
    run(ctx, "MULTI")
    assert run(ctx, "EXEC") == []
    assert encode(run(ctx, "MULTI"), 2) + encode(run(ctx, "EXEC"), 2) == b"+OK\r\n*0\r\n"


def test_nested_multi_is_an_error_but_keeps_the_transaction(ctx: CommandContext) -> None:
    run(ctx, "MULTI")
    assert run(ctx, "MULTI") == ErrorReply("ERR", "MULTI calls can not be nested")
    run(ctx, "PING")
    assert run(ctx, "EXEC") == [PONG]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (["FOO"], ErrorReply("ERR", "unknown command 'FOO', with args beginning with: ")),
        (["ECHO"], ErrorReply("ERR", "wrong number of arguments for 'echo' command")),
        (["CLIENT", "nope"], ErrorReply("ERR", "unknown subcommand 'nope'. Try CLIENT HELP.")),
    ],
)
def test_rejected_command_inside_multi_aborts_exec(ctx: CommandContext, bad: list[str],
                                                  error: ErrorReply) -> None:
    run(ctx, "MULTI")
    assert run(ctx, "PING") == QUEUED
    assert run(ctx, *bad) == error
    assert run(ctx, "PING") == QUEUED
    assert run(ctx, "EXEC") == ErrorReply(
        "EXECABORT", "Transaction discarded because of previous errors.")
    assert ctx.session.multi is None
    # The next transaction starts clean.
    run(ctx, "MULTI")
    run(ctx, "PING")
    assert run(ctx, "EXEC") == [PONG]


def test_discard(ctx: CommandContext) -> None:
    assert run(ctx, "DISCARD") == ErrorReply("ERR", "DISCARD without MULTI")
    run(ctx, "MULTI")
    run(ctx, "CLIENT", "SETNAME", "queued-only")
    assert run(ctx, "DISCARD") == OK
    assert ctx.session.multi is None
    assert ctx.session.name == ""
    assert run(ctx, "EXEC") == ErrorReply("ERR", "EXEC without MULTI")


def test_hello_inside_multi_is_queued_and_runs_at_exec(ctx: CommandContext) -> None:
    run(ctx, "MULTI")
    assert run(ctx, "HELLO", "3") == QUEUED
    assert ctx.session.protocol == 2
    (hello,) = run(ctx, "EXEC")  # type: ignore[misc]
    assert as_dict(hello)["proto"] == 3
    assert ctx.session.protocol == 3


# --- CONFIG GET --------------------------------------------------------------------------


def test_config_get_star(ctx: CommandContext) -> None:
    reply = run(ctx, "CONFIG", "GET", "*")
    values = as_dict(reply)
    wire = encode(reply, 2)
    assert wire.startswith(b"*%d\r\n" % (2 * len(values)))
    assert values["databases"] == "1"
    assert values["save"] == ""
    assert values["appendonly"] == "no"
    assert all(isinstance(v, str) for v in values.values())
    assert int(values["maxclients"]) > 0


def test_config_get_patterns(ctx: CommandContext) -> None:
    assert as_dict(run(ctx, "CONFIG", "GET", "save")) == {"save": ""}
    assert as_dict(run(ctx, "CONFIG", "GET", "APPENDONLY")) == {"appendonly": "no"}
    assert as_dict(run(ctx, "CONFIG", "GET", "save", "appendonly")) == {
        "save": "", "appendonly": "no"}
    maxes = as_dict(run(ctx, "CONFIG", "GET", "max*"))
    assert {"maxclients", "maxmemory"} <= set(maxes)
    assert all(name.startswith("max") for name in maxes)
    assert set(as_dict(run(ctx, "CONFIG", "GET", "d?tabases"))) == {"databases"}
    assert as_dict(run(ctx, "CONFIG", "GET", "no-such-*")) == {}


# --- SLOWLOG / LATENCY -------------------------------------------------------------------


def test_slowlog_records_integer_fields() -> None:
    ctx = make_ctx(ServerConfig(slowlog_log_slower_than=0))
    run(ctx, "CLIENT", "SETNAME", "slowpoke")
    run(ctx, "ECHO", "x" * 200)
    entries = run(ctx, "SLOWLOG", "GET")
    assert isinstance(entries, list) and len(entries) >= 2
    for entry in entries:
        assert isinstance(entry, list) and len(entry) == 6
        entry_id, timestamp, duration, args, addr, name = entry
        assert type(entry_id) is int and type(timestamp) is int and type(duration) is int
        assert duration >= 0 and abs(timestamp - ctx.server.now_ms() // 1000) <= 2
        assert isinstance(args, list) and all(isinstance(a, bytes) for a in args)
        assert isinstance(addr, str) and isinstance(name, str)
    newest = entries[0]
    assert newest[3] == [b"ECHO", b"x" * 128 + b"... (72 more bytes)"]
    assert newest[4:] == ["127.0.0.1:50000", "slowpoke"]
    ids = [entry[0] for entry in entries]
    assert ids == sorted(ids, reverse=True)
    assert len(run(ctx, "SLOWLOG", "GET", "1")) == 1  # type: ignore[arg-type]
    length = run(ctx, "SLOWLOG", "LEN")
    assert type(length) is int and length >= len(entries)
    assert run(ctx, "SLOWLOG", "RESET") == OK
    after = run(ctx, "SLOWLOG", "GET")
    assert all(entry[3][0] != b"ECHO" for entry in after)  # type: ignore[index, union-attr]
    assert run(ctx, "SLOWLOG", "GET", "x") == ErrorReply(
        "ERR", "count should be greater than or equal to -1")


def test_slowlog_off_by_default_for_fast_commands(ctx: CommandContext) -> None:
    run(ctx, "PING")
    assert run(ctx, "SLOWLOG", "GET") == []
    assert run(ctx, "SLOWLOG", "LEN") == 0


def test_latency_latest_has_integer_fields() -> None:
    ticks = itertools.count(step=5_000_000)  # every command "takes" 5 ms
    table = build_table(perf_ns=lambda: next(ticks))
    app = Server(ServerConfig(latency_monitor_threshold=1), table=table)
    ctx = make_ctx(server=app)
    assert run(ctx, "PING") == PONG
    latest = run(ctx, "LATENCY", "LATEST")
    assert isinstance(latest, list) and len(latest) == 1
    name, timestamp, last_ms, max_ms = latest[0]  # type: ignore[misc]
    assert name == "command"
    assert type(timestamp) is int and abs(timestamp - app.now_ms() // 1000) <= 2
    assert (last_ms, max_ms) == (5, 5)
    assert encode(latest, 2).startswith(b"*1\r\n*4\r\n$7\r\ncommand\r\n:")


def test_latency_latest_empty_below_threshold(ctx: CommandContext) -> None:
    run(ctx, "PING")
    assert run(ctx, "LATENCY", "LATEST") == []


# --- INFO --------------------------------------------------------------------------------


def sections(text: str) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.split("\r\n"):
        if line.startswith("# "):
            current = result.setdefault(line[2:], {})
        elif line:
            key, _, value = line.partition(":")
            current[key] = value
    return result


def test_info_text_conventions(ctx: CommandContext) -> None:
    text = text_of(run(ctx, "INFO"))
    assert text.startswith("# Server\r\n")
    assert text.endswith("\r\n") and not text.endswith("\r\n\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert "\r" not in text.replace("\r\n", "")
    blocks = text.split("\r\n\r\n")
    assert len(blocks) >= 5
    for block in blocks:
        lines = block.rstrip("\r\n").split("\r\n")
        assert re.fullmatch(r"# [A-Z][A-Za-z]*", lines[0]), lines[0]
        for line in lines[1:]:
            assert re.fullmatch(r"[a-z_0-9]+:[^\r\n]*", line), line
    parsed = sections(text)
    assert {"Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU",
            "Cluster"} <= set(parsed)
    assert "Commandstats" not in parsed
    assert parsed["Persistence"]["loading"] == "0"
    assert parsed["Server"]["redis_version"].count(".") == 2
    assert parsed["Replication"]["role"] == "master"
    assert parsed["Cluster"]["cluster_enabled"] in ("0", "1")


def test_info_section_selection(ctx: CommandContext) -> None:
    cluster = text_of(run(ctx, "INFO", "cluster"))
    assert list(sections(cluster)) == ["Cluster"]
    assert cluster.startswith("# Cluster\r\ncluster_enabled:")
    both = sections(text_of(run(ctx, "INFO", "SERVER", "clients")))
    assert list(both) == ["Server", "Clients"]
    assert text_of(run(ctx, "INFO", "nosuchsection")) == ""


def test_info_cached_parts_render_what_the_sections_say(
        ctx: CommandContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """INFO keeps the server section's fixed lines and the static sections rendered; the
    text must equal a from-scratch render of every section, across clock and identity
    changes."""
    from clusterwatch.commands import info

    server = ctx.server
    cpu = server.cpu_times()
    monkeypatch.setattr(type(server), "cpu_times", lambda self: cpu)

    def scratch(names: list[str]) -> str:
        return "\r\n".join(f"# {info._TITLES[name]}\r\n" + "".join(
            f"{k}:{v}\r\n" for k, v in info.fields(ctx.server, section))
            for name, section, _ in info.SECTIONS if name in names)

    default = [name for name, _, in_default in info.SECTIONS if in_default]
    every = [name for name, _, _ in info.SECTIONS]
    for step, now_us in enumerate((1_700_000_000_000_000, 1_700_000_001_500_000,
                                   1_700_090_000_000_000)):
        monkeypatch.setattr(type(server), "now_us", lambda self, t=now_us: t)
        if step == 2:  # the identity changes once the server listens (its port)
            server.identity = dataclasses.replace(server.identity, tcp_port=7400,
                                                  config_file="/etc/100%s.conf")
        assert info.render(ctx, []) == scratch(default)
        assert info.render(ctx, ["all"]) == scratch(every)
        assert info.render(ctx, ["server", "replication"]) == scratch(["server", "replication"])
        # Fields that change between calls show at once: counters, clients, errors.
        run(ctx, "PING")
        run(ctx, "NOSUCHCOMMAND")
        server.blocked_clients += 1
        assert info.render(ctx, []) == scratch(default)
    assert "tcp_port:7400\r\n" in info.render(ctx, ["server"])
    assert "config_file:/etc/100%s.conf\r\n" in info.render(ctx, ["server"])
    assert "uptime_in_days:" in info.render(ctx, ["server"])


def test_info_fields_read_their_sources(
        ctx: CommandContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each live field shows its own source, so values cannot trade places."""
    from clusterwatch.commands._context import CpuTimes, MemoryStats

    server = ctx.server
    monkeypatch.setattr(type(server), "cpu_times", lambda self: CpuTimes(1.5, 2.25, 0.5, 0.75))
    monkeypatch.setattr(type(server), "memory_stats",
                        lambda self: MemoryStats(3 * 2**20, 5 * 2**20, 2**33))
    monkeypatch.setattr(type(server), "instantaneous", lambda self: (12.9, 1.234, 5.678))
    server.blocked_clients, server.recent_max_buffers = 3, (11, 22)
    for number, name in enumerate(("total_connections_received", "rejected_connections",
                                   "total_net_input_bytes", "total_net_output_bytes",
                                   "total_reads_processed", "total_writes_processed",
                                   "unexpected_error_replies",
                                   "client_output_buffer_disconnects", "protocol_errors"),
                                  start=101):
        setattr(server.stats, name, number)
    parsed = sections(text_of(run(ctx, "INFO", "all")))
    assert {k: v for k, v in parsed["CPU"].items() if "children" not in k} == {
        "used_cpu_sys": "1.500000", "used_cpu_user": "2.250000",
        "used_cpu_sys_main_thread": "0.500000", "used_cpu_user_main_thread": "0.750000"}
    memory = parsed["Memory"]
    assert (memory["used_memory"], memory["used_memory_human"], memory["used_memory_rss"],
            memory["used_memory_peak"], memory["used_memory_peak_human"],
            memory["total_system_memory_human"]) == (
        str(3 * 2**20), "3.00M", str(3 * 2**20), str(5 * 2**20), "5.00M", "8.00G")
    clients = parsed["Clients"]
    assert (clients["blocked_clients"], clients["client_recent_max_input_buffer"],
            clients["client_recent_max_output_buffer"]) == ("3", "11", "22")
    stats = parsed["Stats"]
    assert (stats["instantaneous_ops_per_sec"], stats["instantaneous_input_kbps"],
            stats["instantaneous_output_kbps"]) == ("12", "1.23", "5.68")
    assert [stats[key] for key in (
        "total_connections_received", "rejected_connections", "total_net_input_bytes",
        "total_net_output_bytes", "total_reads_processed", "total_writes_processed",
        "unexpected_error_replies", "client_output_buffer_limit_disconnections",
        "client_query_buffer_limit_disconnections")] == [str(n) for n in range(101, 110)]


def test_info_all_includes_commandstats(ctx: CommandContext) -> None:
    run(ctx, "PING")
    run(ctx, "PING")
    text = text_of(run(ctx, "INFO", "all"))
    parsed = sections(text)
    assert "Commandstats" in parsed
    assert re.match(r"calls=2,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=0,"
                    r"failed_calls=0$", parsed["Commandstats"]["cmdstat_ping"])
    assert "cmdstat_ping:calls=" in text
    assert list(sections(text_of(run(ctx, "INFO", "commandstats")))) == ["Commandstats"]


def _stat(ctx: CommandContext, section: str, key: str) -> str:
    return sections(text_of(run(ctx, "INFO", section)))[section.capitalize()].get(key, "")


def test_commandstats_and_errorstats_counts(ctx: CommandContext) -> None:
    run(ctx, "ECHO")  # wrong arity: rejected
    run(ctx, "ECHO", "a")
    run(ctx, "SELECT", "1")  # handler error: failed
    run(ctx, "FOO")  # unknown: no cmdstat, one ERR
    run(ctx, "HELLO", "9")  # NOPROTO
    assert _stat(ctx, "commandstats", "cmdstat_echo").startswith("calls=1,")
    assert "rejected_calls=1,failed_calls=0" in _stat(ctx, "commandstats", "cmdstat_echo")
    assert "calls=1," in _stat(ctx, "commandstats", "cmdstat_select")
    assert "failed_calls=1" in _stat(ctx, "commandstats", "cmdstat_select")
    assert "failed_calls=1" in _stat(ctx, "commandstats", "cmdstat_hello")
    assert "cmdstat_foo" not in text_of(run(ctx, "INFO", "commandstats"))
    assert _stat(ctx, "errorstats", "errorstat_ERR") == "count=3"
    assert _stat(ctx, "errorstats", "errorstat_NOPROTO") == "count=1"
    assert _stat(ctx, "stats", "total_error_replies") == "4"


def test_noauth_counts_as_rejected_and_as_an_error(locked: CommandContext) -> None:
    run(locked, "PING")
    run(locked, "AUTH", "pw")
    assert "rejected_calls=1" in _stat(locked, "commandstats", "cmdstat_ping")
    assert _stat(locked, "errorstats", "errorstat_NOAUTH") == "count=1"


def test_config_resetstat_clears_counters(ctx: CommandContext) -> None:
    run(ctx, "FOO")
    run(ctx, "PING")
    assert run(ctx, "CONFIG", "RESETSTAT") == OK
    assert "cmdstat_ping" not in text_of(run(ctx, "INFO", "commandstats"))
    assert _stat(ctx, "errorstats", "errorstat_ERR") == ""



def test_total_commands_processed_counts_executed_commands_only(ctx: CommandContext) -> None:
    before = int(_stat(ctx, "stats", "total_commands_processed"))
    for _ in range(3):
        run(ctx, "PING")
    run(ctx, "FOO")  # unknown: never executed
    run(ctx, "ECHO")  # wrong arity: never executed
    after = int(_stat(ctx, "stats", "total_commands_processed"))
    assert after - before == 4  # three PINGs and the first INFO (counted once it ran)
