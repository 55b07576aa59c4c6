"""Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT, READONLY."""

from __future__ import annotations

from collections.abc import Sequence

from clusterwatch.resp import OK, PONG, Map, Reply, SimpleString, Verbatim

from ._acl_log import AclLogEntry
from ._acl_user import User
from ._args import parse_int, text, upper
from ._errors import WRONGPASS, CommandError, syntax_error, wrong_arity
from ._session import Session, client_info_line
from ._spec import Arg, ArgType, CommandContext, CommandSpec, Flag, Group
from ._subscriptions import SUBSCRIBED_MODE_COMMANDS

_CONN = Group.CONNECTION


def ping(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    if len(argv) > 2:  # arity is -1, but Redis's handler refuses more than one argument
        raise wrong_arity("ping")
    if ctx.session.resp2_subscribed:
        return [b"pong", argv[1] if len(argv) == 2 else b""]
    if len(argv) == 2:
        return argv[1]
    return PONG


def echo(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return argv[1]


def _authenticate(ctx: CommandContext, name: str, password: str) -> None:
    acl = ctx.server.acl
    user = acl.authenticate(name, password)
    if user is None:
        now_ms = ctx.server.now_ms()
        acl.log.add(AclLogEntry(reason="auth", context="toplevel", object="AUTH",
                                username=name, updated_ms=now_ms,
                                client_info=client_info_line(ctx.session, now_ms)))
        raise WRONGPASS
    log_in(ctx.session, user)


def log_in(session: Session, user: User | None) -> None:
    """Make ``user`` the client's user, or leave it unauthenticated (None)."""
    session.user = user.name if user is not None else "default"
    session.authenticated = user is not None
    allowed = user.allowed if user is not None else frozenset()
    session.resp2_subscribed = session.protocol == 2 and bool(
        session.channels or session.patterns)
    if session.resp2_subscribed:
        allowed = allowed & SUBSCRIBED_MODE_COMMANDS
    session.allowed = allowed


def refresh_permissions(ctx: CommandContext) -> None:
    """Recompute what the client may run after its user, protocol or subscriptions changed."""
    session = ctx.session
    if session.authenticated:
        log_in(session, ctx.server.acl.users.get(session.user))


def auth(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    if len(argv) > 3:
        raise syntax_error()
    if len(argv) == 2 and ctx.server.acl.default.nopass:
        raise CommandError(
            "AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    user = text(argv[1]) if len(argv) == 3 else "default"
    _authenticate(ctx, user, text(argv[-1]))
    return OK


def _valid_name(raw: bytes) -> bool:
    return all(33 <= byte <= 126 for byte in raw)


def _set_name(session: Session, raw: bytes) -> None:
    if not _valid_name(raw):
        raise CommandError("Client names cannot contain spaces, newlines or special characters.")
    session.name = raw.decode()


def hello(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    session = ctx.session
    protocol = session.protocol
    index = 1
    if len(argv) >= 2:
        try:
            requested = parse_int(argv[1])
        except CommandError:
            raise CommandError("Protocol version is not an integer or out of range") from None
        if requested not in (2, 3):
            raise CommandError("unsupported protocol version", "NOPROTO")
        protocol = 2 if requested == 2 else 3
        index = 2
    credentials: tuple[str, str] | None = None
    name: bytes | None = None
    while index < len(argv):
        option = upper(argv[index])
        remaining = len(argv) - index - 1
        if option == "AUTH" and remaining >= 2:
            credentials = (text(argv[index + 1]), text(argv[index + 2]))
            index += 3
        elif option == "SETNAME" and remaining >= 1:
            name = argv[index + 1]
            index += 2
        else:
            raise CommandError(f"Syntax error in HELLO option '{text(argv[index])}'")
    if credentials is not None:
        _authenticate(ctx, *credentials)
    elif not session.authenticated:
        raise CommandError(
            "HELLO must be called with the client already authenticated, otherwise the "
            "HELLO AUTH <user> <pass> option can be used to authenticate the client "
            "and select the RESP protocol version at the same time",
            "NOAUTH",
        )
    if name is not None:
        _set_name(session, name)
    session.protocol = protocol
    refresh_permissions(ctx)
    identity = ctx.server.identity
    return Map([
        ("server", "redis"),
        ("version", identity.redis_compat_version),
        ("proto", protocol),
        ("id", session.id),
        ("mode", "standalone"),
        ("role", "master"),
        ("modules", []),
    ])


def select(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    index = parse_int(argv[1])
    if index != 0:
        raise CommandError("DB index is out of range")
    return OK


def quit_(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    ctx.session.close_after_reply = True
    return OK


def reset(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    session = ctx.session
    session.protocol = 2
    session.name = ""
    session.multi = None
    session.multi_dirty = False
    session.readonly = False
    session.db = 0
    ctx.server.subscriptions.drop(session)
    log_in(session, ctx.server.acl.default_login())
    return SimpleString("RESET")


def readonly(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    ctx.session.readonly = True
    return OK


def readwrite(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    ctx.session.readonly = False
    return OK


# --- CLIENT -------------------------------------------------------------------------------


def client_id(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return ctx.session.id


def client_setname(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    _set_name(ctx.session, argv[2])
    return OK


def client_getname(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return ctx.session.name or None


def client_setinfo(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    attribute = upper(argv[2])
    if attribute not in ("LIB-NAME", "LIB-VER"):
        raise CommandError(f"Unrecognized option '{text(argv[2])}'")
    if not _valid_name(argv[3]):
        raise CommandError(f"{attribute} cannot contain spaces, newlines or special characters.")
    if attribute == "LIB-NAME":
        ctx.session.lib_name = argv[3].decode()
    else:
        ctx.session.lib_ver = argv[3].decode()
    return OK


def client_info(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    session = next(s for s in ctx.server.sessions() if s.id == ctx.session.id)
    return Verbatim(client_info_line(session, ctx.server.now_ms()) + "\n")


def client_list(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    ids: set[int] | None = None
    args = list(argv[2:])
    while args:
        option = upper(args.pop(0))
        if option == "TYPE" and args:
            kind = upper(args.pop(0))
            if kind not in ("NORMAL", "MASTER", "REPLICA", "SLAVE", "PUBSUB"):
                raise CommandError(f"Unknown client type '{kind.lower()}'")
            if kind != "NORMAL":
                ids = set()
        elif option == "ID" and args:
            wanted = {parse_int(raw, error=CommandError("Invalid client ID")) for raw in args}
            ids = wanted if ids is None else ids & wanted
            args = []
        else:
            raise syntax_error()
    now = ctx.server.now_ms()
    lines = [
        client_info_line(session, now) + "\n"
        for session in sorted(ctx.server.sessions(), key=lambda s: s.id)
        if ids is None or session.id in ids
    ]
    return Verbatim("".join(lines))


def client_kill(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    if len(argv) == 3:  # old form: CLIENT KILL addr:port
        wanted = text(argv[2])
        for session in ctx.server.sessions():
            if session.addr == wanted:
                ctx.server.kill_session(session.id)
                if session.id == ctx.session.id:
                    ctx.session.close_after_reply = True
                return OK
        raise CommandError("No such client")
    filters = argv[2:]
    if len(filters) % 2:
        raise syntax_error()
    skip_me = True
    checks: list[tuple[str, str]] = []
    for raw_option, raw_value in zip(filters[::2], filters[1::2], strict=True):
        option, value = upper(raw_option), text(raw_value)
        if option == "SKIPME":
            if value.lower() not in ("yes", "no"):
                raise syntax_error()
            skip_me = value.lower() == "yes"
        elif option == "ID":
            parse_int(raw_value, error=CommandError("client-id should be greater than 0"))
            checks.append((option, value))
        elif option in ("ADDR", "LADDR", "USER", "TYPE"):
            checks.append((option, value))
        else:
            raise syntax_error()
    killed = 0
    for session in list(ctx.server.sessions()):
        if skip_me and session.id == ctx.session.id:
            continue
        if (all(_matches(session, option, value) for option, value in checks)
                and ctx.server.kill_session(session.id)):
            killed += 1
            if session.id == ctx.session.id:
                ctx.session.close_after_reply = True
    return killed


def _matches(session: Session, option: str, value: str) -> bool:
    if option == "ID":
        return str(session.id) == value
    if option == "ADDR":
        return session.addr == value
    if option == "LADDR":
        return session.laddr == value
    if option == "USER":
        return session.user == value
    return value.lower() == "normal"


def _client(name: str, arity: int, summary: str, handler: object, *, args: tuple[Arg, ...] = (),
            flags: Flag = Flag.NONE, since: str = "2.4.0") -> CommandSpec:
    return CommandSpec(
        name=name, container="client", arity=arity, summary=summary, group=_CONN,
        since=since, args=args, flags=flags | Flag.NOSCRIPT | Flag.LOADING | Flag.STALE,
        handler=handler,  # type: ignore[arg-type]
    )


_STRING = ArgType.STRING

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="ping", arity=-1, group=_CONN, summary="Returns the server's liveliness response.",
        flags=Flag.FAST, handler=ping,
        args=(Arg(name="message", type=_STRING, optional=True),),
    ),
    CommandSpec(
        name="echo", arity=2, group=_CONN, summary="Returns the given string.",
        flags=Flag.FAST | Flag.LOADING | Flag.STALE, handler=echo,
        args=(Arg(name="message", type=_STRING),),
    ),
    CommandSpec(
        name="hello", arity=-1, group=_CONN, since="6.0.0",
        summary="Handshakes with the server, optionally switching the protocol version.",
        flags=Flag.NOSCRIPT | Flag.LOADING | Flag.STALE | Flag.FAST | Flag.NO_AUTH
        | Flag.ALLOW_BUSY,
        handler=hello,
        args=(Arg(name="arguments", type=ArgType.BLOCK, optional=True, args=(
            Arg(name="protover", type=ArgType.INTEGER),
            Arg(name="username-password", type=ArgType.BLOCK, token="AUTH", optional=True, args=(
                Arg(name="username", type=_STRING), Arg(name="password", type=_STRING))),
            Arg(name="clientname", type=_STRING, token="SETNAME", optional=True),
        )),),
    ),
    CommandSpec(
        name="auth", arity=-2, group=_CONN, summary="Authenticates the connection.",
        flags=Flag.NOSCRIPT | Flag.LOADING | Flag.STALE | Flag.FAST | Flag.NO_AUTH
        | Flag.ALLOW_BUSY,
        handler=auth,
        args=(Arg(name="username", type=_STRING, optional=True),
              Arg(name="password", type=_STRING)),
    ),
    CommandSpec(
        name="select", arity=2, group=_CONN, summary="Changes the selected database (only 0).",
        flags=Flag.LOADING | Flag.STALE | Flag.FAST, handler=select,
        args=(Arg(name="index", type=ArgType.INTEGER),),
    ),
    CommandSpec(
        name="quit", arity=-1, group=_CONN, summary="Closes the connection.",
        flags=Flag.ALLOW_BUSY | Flag.NOSCRIPT | Flag.LOADING | Flag.STALE | Flag.FAST
        | Flag.NO_AUTH, handler=quit_,
    ),
    CommandSpec(
        name="reset", arity=1, group=_CONN, since="6.2.0", summary="Resets the connection.",
        flags=Flag.NOSCRIPT | Flag.LOADING | Flag.STALE | Flag.FAST | Flag.NO_AUTH
        | Flag.ALLOW_BUSY,
        handler=reset,
    ),
    CommandSpec(
        name="readonly", arity=1, group=Group.CLUSTER, since="3.0.0",
        summary="Enables read-only queries for a connection to a replica.",
        flags=Flag.LOADING | Flag.STALE | Flag.FAST, handler=readonly,
    ),
    CommandSpec(
        name="readwrite", arity=1, group=Group.CLUSTER, since="3.0.0",
        summary="Enables read-write queries for a connection.",
        flags=Flag.LOADING | Flag.STALE | Flag.FAST, handler=readwrite,
    ),
    CommandSpec(
        name="client", arity=-2, group=_CONN, summary="A container for client connection commands.",
        since="2.4.0",
        subcommands=(
            _client("id", 2, "Returns the unique client ID of the connection.", client_id,
                    since="5.0.0"),
            _client("setname", 3, "Sets the connection name.", client_setname,
                    args=(Arg(name="connection-name", type=_STRING),), since="2.6.9"),
            _client("getname", 2, "Returns the name of the connection.", client_getname,
                    since="2.6.9"),
            _client("setinfo", 4, "Sets information specific to the client or connection.",
                    client_setinfo, since="7.2.0", args=(Arg(name="attr", type=ArgType.ONEOF,
                    args=(Arg(name="libname", type=_STRING, token="LIB-NAME"),
                          Arg(name="libver", type=_STRING, token="LIB-VER"))),)),
            _client("info", 2, "Returns information about the connection.", client_info,
                    since="6.2.0"),
            _client("list", -2, "Lists open connections.", client_list, flags=Flag.ADMIN,
                    args=(Arg(name="client-type", type=ArgType.ONEOF, token="TYPE",
                              optional=True, args=(
                                  Arg(name="normal", type=ArgType.PURE_TOKEN, token="NORMAL"),
                                  Arg(name="master", type=ArgType.PURE_TOKEN, token="MASTER"),
                                  Arg(name="replica", type=ArgType.PURE_TOKEN, token="REPLICA"),
                                  Arg(name="pubsub", type=ArgType.PURE_TOKEN, token="PUBSUB"))),
                          Arg(name="client-id", type=ArgType.INTEGER, token="ID",
                              optional=True, multiple=True))),
            _client("kill", -3, "Terminates open connections.", client_kill, flags=Flag.ADMIN,
                    args=(Arg(name="filter", type=ArgType.ONEOF, args=(
                        Arg(name="old-format", type=_STRING),
                        Arg(name="client-id", type=ArgType.INTEGER, token="ID", optional=True),
                        Arg(name="ip:port", type=_STRING, token="ADDR", optional=True),
                        Arg(name="ip:port", type=_STRING, token="LADDR", optional=True),
                        Arg(name="username", type=_STRING, token="USER", optional=True),
                        Arg(name="yes/no", type=_STRING, token="SKIPME", optional=True),
                    )),)),
        ),
    ),
)
