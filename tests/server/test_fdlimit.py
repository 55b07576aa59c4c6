"""max-clients against RLIMIT_NOFILE, decided as redis-server 7.0.15 decides it: under
``prlimit --nofile=1024:1024 redis-server --maxclients 10000`` it logs the three lines
checked below and CONFIG GET maxclients says 992; with a hard limit of 4096, 4064; with a
hard limit of 20000 it raises its own limit to 10032 and says so; with 20 descriptors it
exits. The HTTP port's connections take their share of the same descriptors."""

from __future__ import annotations

import resource

import pytest

from clusterwatch.server.config import ConfigError
from clusterwatch.server.fdlimit import RESERVED_FDS, Budget, plan
from clusterwatch.server.httpconn import MAX_LINGERING


class Limits:
    """RLIMIT_NOFILE of a process that may raise its soft limit up to the hard one, and
    its hard one only when ``privileged``."""

    def __init__(self, soft: int, hard: int, *, privileged: bool = False) -> None:
        self.soft, self.hard, self.privileged = soft, hard, privileged

    def get(self) -> tuple[int, int]:
        return self.soft, self.hard

    def set(self, limits: tuple[int, int]) -> None:
        soft, hard = limits
        if hard > self.hard and not self.privileged:
            raise ValueError("not allowed to raise maximum limit")
        self.soft, self.hard = soft, hard


def fit(limits: Limits, max_clients: int = 10_000, http: int = 0) -> Budget:
    return plan(max_clients, http, get=limits.get, set_limits=limits.set)


def test_enough_descriptors_change_nothing() -> None:
    limits = Limits(20_000, 20_000)
    assert fit(limits) == Budget(10_000, 0)
    assert limits.get() == (20_000, 20_000)


def test_the_soft_limit_is_raised_up_to_what_is_needed() -> None:
    limits = Limits(1024, 20_000)
    budget = fit(limits)
    assert (budget.max_clients, budget.warnings) == (10_000, ())
    assert budget.notices == ("Increased maximum number of open files to 10032 (it was "
                              "originally set to 1024).",)
    assert limits.get() == (10_032, 20_000)


def test_a_privileged_process_raises_the_hard_limit_too() -> None:
    limits = Limits(1024, 1024, privileged=True)
    assert fit(limits).max_clients == 10_000
    assert limits.get() == (10_032, 10_032)


def test_a_short_hard_limit_lowers_maxclients_in_redis_words() -> None:
    limits = Limits(1024, 1024)
    budget = fit(limits)
    assert budget.max_clients == 1024 - RESERVED_FDS == 992
    assert budget.warnings == (
        "You requested maxclients of 10000 requiring at least 10032 max file descriptors.",
        "Server can't set maximum open files to 10032 because of OS error: Operation not "
        "permitted.",
        "Current maximum open files is 1024. maxclients has been reduced to 992 to "
        "compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
    )


def test_the_soft_limit_goes_up_to_the_hard_one_before_clients_are_lowered() -> None:
    limits = Limits(1024, 4096)
    assert fit(limits).max_clients == 4064
    assert limits.get() == (4096, 4096)


def test_http_and_resp_share_what_is_left_in_proportion() -> None:
    budget = fit(Limits(1024, 1024), http=1000)
    reserved = RESERVED_FDS + MAX_LINGERING
    assert budget.max_clients + budget.http_max_clients == 1024 - reserved
    assert (budget.max_clients, budget.http_max_clients) == (888, 88)
    assert budget.warnings[0] == ("You requested maxclients of 10000 and http-max-clients of "
                                  "1000 requiring at least 11048 max file descriptors.")
    assert budget.warnings[2].startswith("Current maximum open files is 1024. maxclients has "
                                         "been reduced to 888 and http-max-clients has been "
                                         "reduced to 88 to compensate")


def test_each_kind_keeps_its_proportion_and_at_least_one() -> None:
    budget = fit(Limits(1024, 1024), max_clients=10_000, http=10)
    assert (budget.max_clients, budget.http_max_clients) == (1024 - 48 - 1, 1)
    budget = fit(Limits(600, 600), max_clients=500, http=100)
    assert (budget.max_clients, budget.http_max_clients) == (460, 92)  # 552 as 5 : 1


def test_an_unlimited_hard_limit_is_raised_to_the_need() -> None:
    limits = Limits(1024, resource.RLIM_INFINITY)
    assert fit(limits, http=1000).max_clients == 10_000
    assert limits.get() == (11_048, resource.RLIM_INFINITY)


def test_too_few_descriptors_for_one_client_stop_the_start() -> None:
    with pytest.raises(ConfigError, match=r"^Your current 'ulimit -n' of 20 is not enough for "
                       r"the server to start. Please increase your open file limit to at "
                       r"least 10032. Exiting.$"):
        fit(Limits(20, 20))
    with pytest.raises(ConfigError, match="of 49 is not enough"):
        fit(Limits(49, 49), http=1000)
    assert fit(Limits(50, 50), http=1000) == Budget(
        1, 1, warnings=fit(Limits(50, 50), http=1000).warnings)
