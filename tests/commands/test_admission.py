"""The one admission test (``CommandTable.admitted``) that both request paths call: it may
decline what Redis's checks would run (they then decide, in ``dispatch``), but it never
admits a request that those checks would refuse, queue in MULTI, or send elsewhere."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterwatch.commands import CommandContext
from clusterwatch.commands.connection import log_in
from tests.commands.test_handlers import make_ctx

_CTX = make_ctx()
_TABLE = _CTX.table
_NAMES = sorted(_TABLE.commands)
_SUBS = sorted({sub for subs in _TABLE.subcommands.values() for sub in subs})
_RULES = ["+@all", "-@all", "+ping", "-ping", "+@read", "-@dangerous", "+cluster|info",
          "-cluster", "+health", "-cluster|nodes", "+multi", "+exec", "+echo", "-echo"]


def _cased(name: bytes, how: int) -> bytes:
    return (name, name.upper(), name.capitalize())[how]


requests = st.builds(
    lambda name, sub, extra, how, how_sub: [
        _cased(name, how), *([_cased(sub, how_sub)] if sub is not None else []), *extra],
    st.sampled_from(_NAMES),
    st.none() | st.sampled_from(_SUBS),
    st.lists(st.sampled_from([b"a", b"1", b"ready", b"info", b"x" * 40]), max_size=4),
    st.integers(0, 2), st.integers(0, 2))


@st.composite
def sessions(draw: st.DrawFn) -> CommandContext:
    ctx = make_ctx()
    state = draw(st.sampled_from(["everything", "user", "nobody"]))
    if state == "user":
        rules = draw(st.lists(st.sampled_from(_RULES), max_size=6))
        log_in(ctx.session, ctx.server.acl.setuser("someone", ["on", "nopass", *rules]))
    elif state == "nobody":
        log_in(ctx.session, None)
    if draw(st.booleans()):
        ctx.session.multi = []
    return ctx


@settings(max_examples=600, deadline=None)
@given(ctx=sessions(), argv=requests)
def test_what_the_admission_test_admits_the_full_checks_run(
        ctx: CommandContext, argv: list[bytes]) -> None:
    spec = _TABLE.admitted(ctx.session, argv)
    if spec is None:
        return
    queued_before = None if ctx.session.multi is None else list(ctx.session.multi)
    assert _TABLE._admit(ctx, argv) is spec
    assert ctx.session.multi == queued_before  # nothing was queued
    assert not ctx.session.multi_dirty


def test_the_admission_test_admits_the_common_case_and_declines_the_rest() -> None:
    ctx = make_ctx()
    assert _TABLE.admitted(ctx.session, [b"PING"]) is _TABLE.commands[b"ping"]
    assert _TABLE.admitted(ctx.session, [b"cluster", b"info"]) is not None
    assert _TABLE.admitted(ctx.session, [b"ECHO"]) is None  # arity
    assert _TABLE.admitted(ctx.session, [b"NOSUCH"]) is None
    ctx.session.multi = []
    assert _TABLE.admitted(ctx.session, [b"PING"]) is None  # queued by dispatch
    ctx.session.multi = None
    log_in(ctx.session, ctx.server.acl.setuser("pinger", ["on", "nopass", "+ping"]))
    assert _TABLE.admitted(ctx.session, [b"PING"]) is not None
    assert _TABLE.admitted(ctx.session, [b"ECHO", b"a"]) is None  # not allowed
