"""ACL users and rules without a server: Redis's syntax, its compact rule form, and the
semantics of rules applied in order (hypothesis against a naive model)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterwatch.commands import build_table
from clusterwatch.commands._access import AccessControl, AclFileError
from clusterwatch.commands._acl_user import AclRuleError, CommandCatalog, apply_rules, new_user

TABLE = build_table(perf_ns=time.perf_counter_ns)
CATALOG: CommandCatalog = TABLE.catalog


def describe(*rules: str) -> str:
    return apply_rules(new_user("t"), rules, CATALOG).describe()


@pytest.mark.parametrize(("rules", "line"), [
    # Each of these was checked against redis-server 7.0.15's ACL LIST.
    (("-ping",), "user t off resetchannels -@all"),
    (("+@all", "-ping", "+ping"), "user t off resetchannels +@all"),
    (("+@all", "-ping", "-ping"), "user t off resetchannels +@all -ping"),
    (("+config", "-config|get"), "user t off resetchannels -@all +config -config|get"),
    (("+config|get", "-config"), "user t off resetchannels -@all"),
    (("+@all", "-@admin", "+@admin"), "user t off resetchannels +@all"),
    (("-@admin", "+@admin"), "user t off resetchannels -@all +@admin"),
    (("+@read", "-@read"), "user t off resetchannels -@all"),
    (("+client|list", "+client"), "user t off resetchannels -@all +client"),
    (("+ping", "+ping", "-ping", "+echo"), "user t off resetchannels -@all +echo"),
    (("on", ">pw", "+@all", "-@admin", "+config|get"),
     "user t on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 "
     "resetchannels +@all -@admin +config|get"),
    (("on", ">a", "nopass"), "user t on nopass resetchannels -@all"),
    (("%R~x", "~y", "&c"), "user t off %R~x ~y resetchannels &c -@all"),
    (("on", "+@all", "reset"), "user t off sanitize-payload resetchannels -@all"),
    (("allkeys", "allchannels", "allcommands"), "user t off ~* &* +@all"),
])
def test_compact_rule_form_matches_redis(rules: tuple[str, ...], line: str) -> None:
    assert describe(*rules) == line


@pytest.mark.parametrize(("rule", "reason"), [
    ("+foo", "Unknown command or category name in ACL"),
    ("+config|nosuch", "Unknown command or category name in ACL"),
    ("-@nosuch", "Unknown command or category name in ACL"),
    ("blah", "Syntax error"),
    ("#abc", "The password hash must be exactly 64 characters and contain only lowercase "
             "hexadecimal characters"),
    ("<nope", "The password you are trying to remove from the user does not exist"),
    ("(+ping)", "Selectors are not supported by clusterwatch"),
])
def test_bad_rules_name_the_rule_and_change_nothing(rule: str, reason: str) -> None:
    acl = AccessControl(CATALOG)
    acl.setuser("u", ["on", ">pw", "+ping"])
    before = acl.users["u"].describe()
    with pytest.raises(AclRuleError) as caught:
        acl.setuser("u", ["+echo", rule])
    assert str(caught.value) == f"Error in ACL SETUSER modifier '{rule}': {reason}"
    assert acl.users["u"].describe() == before


def test_categories_select_commands_by_flag_and_group() -> None:
    allowed = apply_rules(new_user("m"), ["+@all", "-@publish", "-@admin"], CATALOG).allowed
    assert {"cluster|info", "status|services", "health", "bus|info", "ping"} <= allowed
    assert not {"bus|publish", "config|get", "acl|setuser", "client|kill"} & allowed
    publisher = apply_rules(new_user("p"), ["+@publish", "+@connection", "-@admin"], CATALOG)
    assert "bus|publish" in publisher.allowed and "hello" in publisher.allowed
    assert not {"cluster|info", "client|kill", "info"} & publisher.allowed


def test_authentication_needs_an_enabled_user_and_its_password() -> None:
    acl = AccessControl(CATALOG, requirepass="secret")
    assert acl.default_login() is None
    assert acl.authenticate("default", "secret") is acl.users["default"]
    assert acl.authenticate("default", "nope") is None
    acl.setuser("bob", [">pw", "+ping"])
    assert acl.authenticate("bob", "pw") is None  # off
    acl.setuser("bob", ["on"])
    assert acl.authenticate("bob", "pw") is not None
    assert acl.authenticate("nobody", "pw") is None


def test_acl_file_errors_are_redis_words_with_the_line() -> None:
    acl = AccessControl(CATALOG)
    suffix = ". WARNING: ACL errors detected, no change to the previously active ACL rules " \
             "was performed"
    with pytest.raises(AclFileError) as caught:
        acl.parse_file("user alice on >a +@all ~*\nuser bob on >b +foo\n", "/x/users.acl")
    assert str(caught.value) == ("/x/users.acl:2: Error in applying operation '+foo': "
                                 "Unknown command or category name in ACL" + suffix)
    with pytest.raises(AclFileError, match="Duplicate user 'alice' found on line 2"):
        acl.parse_file("user alice on\nuser alice off\n", "f")
    with pytest.raises(AclFileError, match=r"^f:2 should start with user keyword"):
        acl.parse_file("\n# a comment is not Redis syntax\n", "f")


def test_acl_file_round_trips_and_keeps_a_default_user() -> None:
    acl = AccessControl(CATALOG, requirepass="pw")
    example = Path(__file__).resolve().parents[2] / "docs" / "users.acl.example"
    users = acl.parse_file(example.read_text(), "example")
    acl.replace(users)
    again = acl.parse_file(acl.file_text(), "saved")
    assert [u.describe() for u in again.values()] == [u.describe() for u in users.values()]
    alone = acl.parse_file("user alice on >a +ping\n", "f")
    assert alone["default"].check_password("pw") and not alone["default"].nopass


_NAMES = ["ping", "echo", "config", "config|get", "client|list", "client", "cluster|info",
          "bus|publish", "acl", "@admin", "@connection", "@status", "@publish", "@slow",
          "@fast", "@read", "@write", "@dangerous", "@all"]
_RULES = st.lists(st.builds(lambda sign, name: sign + name, st.sampled_from("+-"),
                            st.sampled_from(_NAMES)), max_size=12)


def _naive(rules: list[str]) -> frozenset[str]:
    allowed: set[str] = set()
    for rule in rules:
        name = rule[1:]
        members = CATALOG.everything if name == "@all" else CATALOG.target(name)
        if rule[0] == "+":
            allowed |= members
        else:
            allowed -= members
    return frozenset(allowed)


@settings(max_examples=300, deadline=None)
@given(_RULES)
def test_compact_form_means_what_the_rules_meant(rules: list[str]) -> None:
    user = apply_rules(new_user("t"), rules, CATALOG)
    assert user.allowed == _naive(rules)
    reread = apply_rules(new_user("t"), user.describe().split()[2:], CATALOG)
    assert reread.allowed == user.allowed
    assert reread.describe() == user.describe()
