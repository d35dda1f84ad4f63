"""Request budgets: the Redis token bucket (fake clock and sleep, fakeredis running the Lua), its settings, and the
clients' hook."""

from __future__ import annotations

import logging
from typing import Any

import fakeredis
import httpx
import pytest

from clients.ratelimit import NO_LIMIT, TokenBucket, clear_limiters, limiter_for
from nexus.budgets import Budget, parse_budgets
from nexus.errors import BudgetExceededError
from nexus.settings import DEFAULT_RATE_BUDGETS, Settings
from nexus.testing.clock import FakeClock


def bucket(budget: Budget, redis: Any, t: FakeClock, **kwargs: Any) -> TokenBucket:
    """A bucket on ``t``: a clock that only moves when the bucket sleeps (or the test says so)."""
    return TokenBucket(budget, redis, clock=t, sleep=t.sleep, **kwargs)


@pytest.fixture()
def redis() -> Any:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


# -- budgets and their arithmetic ------------------------------------------------------------------------------------
def test_default_budgets_are_the_published_limits() -> None:
    budgets = parse_budgets(DEFAULT_RATE_BUDGETS)
    assert {name: (b.limit, b.window_s) for name, b in budgets.items()} == {
        "lansweeper": (150, 60.0), "entra": (1750, 10.0), "intune": (2000, 20.0), "fedex": (1400, 10.0),
    }
    assert "workday" not in budgets and "helix" not in budgets and "ad" not in budgets
    assert Settings(_env_file=None).rate_budgets == DEFAULT_RATE_BUDGETS


@pytest.mark.parametrize("spec", ["lansweeper=150/60s", "lansweeper=150/1m", "LANSWEEPER = 150/min",
                                  "Lansweeper=150/60"])
def test_budget_spellings(spec: str) -> None:
    assert parse_budgets(spec) == {"lansweeper": Budget("lansweeper", 150, 60.0)}


def test_budgets_off_and_per_system_off() -> None:
    assert parse_budgets("") == {} and parse_budgets("off") == {}
    assert set(parse_budgets(DEFAULT_RATE_BUDGETS + ",fedex=off")) == {"lansweeper", "entra", "intune"}
    assert parse_budgets("ActiveDirectory=10/2s")["ad"].window_s == 2.0


@pytest.mark.parametrize("spec", ["lansweeper", "nosuch=1/1s", "lansweeper=150/60x", "lansweeper=1/60s"])
def test_bad_budgets_are_refused_at_settings_load(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_budgets(spec)
    with pytest.raises(ValueError):
        Settings(_env_file=None, NEXUS_RATE_BUDGETS=spec)


def test_no_window_ever_sees_more_than_the_limit() -> None:
    for budget in parse_budgets(DEFAULT_RATE_BUDGETS).values():
        assert budget.burst >= 1
        assert budget.burst + budget.rate * budget.window_s == pytest.approx(budget.limit)
    lansweeper = Budget("lansweeper", 150, 60.0)
    assert (lansweeper.burst, lansweeper.rate) == (3, pytest.approx(147 / 60))


# -- the bucket ------------------------------------------------------------------------------------------------------
def test_burst_then_paced_at_the_rate(redis: Any) -> None:
    t = FakeClock()
    b = bucket(Budget("lansweeper", 150, 60.0), redis, t)
    waits = [b.acquire() for _ in range(10)]
    assert waits[:3] == [0.0, 0.0, 0.0]  # the burst
    step = 60 / 147
    assert waits[3:] == pytest.approx([step] * 7)
    assert t.now - 1_700_000_000.0 == pytest.approx(7 * step)


def test_idle_time_refills_up_to_the_burst_only(redis: Any) -> None:
    t = FakeClock()
    b = bucket(Budget("x", 20, 10.0), redis, t)  # burst 2, 1.8 tokens/s
    for _ in range(2):
        assert b.acquire() == 0.0
    t.now += 3600  # an hour idle: still only a burst's worth
    assert [b.acquire() for _ in range(3)] == [0.0, 0.0, pytest.approx(1 / 1.8)]


def test_two_clients_share_one_budget(redis: Any) -> None:
    """Two workers (two buckets, one Redis key): the second sees the first one's reservations."""
    t = FakeClock()
    budget = Budget("lansweeper", 150, 60.0)
    first, second = bucket(budget, redis, t), bucket(budget, redis, t)
    assert [first.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    waits = [second.reserve(), first.reserve(), second.reserve()]
    step = 60 / 147
    assert waits == pytest.approx([step, 2 * step, 3 * step])  # reservations queue up, first come first served
    other = bucket(Budget("intune", 2000, 20.0), redis, t)
    assert other.reserve() == 0.0  # another system's budget is its own


def test_without_a_clock_the_refill_time_is_the_stores(redis: Any) -> None:
    """Production passes no clock: the script reads Redis's TIME (fakeredis runs it too, on this process's clock)."""
    slept: list[float] = []
    b = TokenBucket(Budget("lansweeper", 150, 60.0), redis, sleep=slept.append)
    assert [b.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.acquire() == pytest.approx(60 / 147, rel=0.05)  # the burst is spent; paced at the rate
    seconds, micros = redis.time()
    assert float(redis.hget(b.key, "ts")) == pytest.approx(seconds + micros / 1e6, abs=5.0)


def test_max_wait_raises_throttled_and_reserves_nothing(redis: Any) -> None:
    t = FakeClock()
    b = bucket(Budget("fedex", 4, 10.0), redis, t, max_wait_s=4.0)  # burst 1, 0.3 tokens/s
    assert b.reserve() == 0.0
    assert b.reserve() == pytest.approx(1 / 0.3)
    with pytest.raises(BudgetExceededError) as caught:
        b.acquire()  # the next slot is 6.7 s away, more than the 4 s a caller may wait
    err = caught.value
    assert t.slept == []
    assert err.system == "fedex" and err.kind == "throttled"
    assert err.retry_after == pytest.approx(2 / 0.3)
    assert "FedEx request budget (4/10s)" in err.message
    t.now += 2 / 0.3  # nothing was reserved by the refused call: its slot is free now
    assert b.reserve() == pytest.approx(0.0, abs=1e-6)


def test_redis_down_means_no_limiting(caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        calls = 0

        def register_script(self, script: str) -> Any:
            def run(**kwargs: Any) -> Any:
                Down.calls += 1
                raise ConnectionError("refused")

            return run

    t = FakeClock()
    b = bucket(Budget("lansweeper", 150, 60.0), Down(), t)
    with caplog.at_level(logging.WARNING, logger="nexus.resilience"):
        assert [b.acquire() for _ in range(20)] == [0.0] * 20
    assert t.slept == []
    assert Down.calls == 1  # then Redis is left alone for a few seconds
    assert len([r for r in caplog.records if "rate budget store unreachable" in r.message]) == 1
    t.now += 10
    b.acquire()
    assert Down.calls == 2


# -- clients call it -------------------------------------------------------------------------------------------------
class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def acquire(self) -> float:
        self.calls += 1
        return 0.0


def test_http_clients_acquire_before_every_request() -> None:
    from clients.lansweeper import LansweeperClient

    seen = {"requests": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["requests"] += 1
        if seen["requests"] == 2:
            return httpx.Response(401, json={"errors": [{"message": "expired"}]})  # one re-authentication
        return httpx.Response(200, json={"data": {"site": {"id": "s", "name": "n"}}})

    settings = Settings(_env_file=None, USE_MOCK=False, LANSWEEPER_TOKEN="t", LANSWEEPER_SITE_ID="s",
                        LANSWEEPER_GRAPHQL_URL="http://lansweeper.test/api/v2/graphql")
    client = LansweeperClient(settings, transport=httpx.MockTransport(handler))
    assert client.rate_limiter is NO_LIMIT  # a client built alone is never paced
    client.rate_limiter = counting = Counting()
    client.health()
    client.health()
    assert seen["requests"] == 3 and counting.calls == 3  # the re-sent request was paced too


def test_ad_client_acquires_before_every_search() -> None:
    from clients.ad import ADClient
    from nexus.sim.base import SimCredentials
    from nexus.sim.ldap_mock import mock_directory
    from tests._ad_fixtures import make_org

    org, creds = make_org(6), SimCredentials()
    directory = mock_directory(org, creds)
    client = ADClient(directory.settings(Settings(_env_file=None)), connection_factory=directory.connection_factory,
                      page_size=2)
    client.rate_limiter = counting = Counting()
    people = list(client.list_users())
    assert len(people) == len(org.ad)
    pages = -(-len(org.ad) // 2)
    assert pages <= counting.calls <= pages + 1  # one per page (a full last page may need one more)
    before = counting.calls
    client.find_user(email=org.ad[0].upn)
    assert counting.calls > before


def test_runtime_clients_get_the_shared_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus import runtime
    from nexus.settings import get_settings
    from nexus.systems import System

    monkeypatch.setenv("NEXUS_RATE_BUDGETS", "lansweeper=150/60s")
    monkeypatch.setenv("NEXUS_BREAKER_REDIS_URL", "memory://ratelimit-test")
    for name, value in {"LANSWEEPER_TOKEN": "t", "LANSWEEPER_SITE_ID": "s", "WORKDAY_CLIENT_ID": "i",  # configured:
                        "WORKDAY_CLIENT_SECRET": "c", "WORKDAY_REFRESH_TOKEN": "r"}.items():  # clients get built
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANSWEEPER_GRAPHQL_URL", "http://127.0.0.1:9/api/v2/graphql")
    monkeypatch.setenv("WORKDAY_BASE_URL", "http://127.0.0.1:9/workday")
    get_settings.cache_clear()
    clear_limiters()
    runtime.reset()
    try:
        assert isinstance(limiter_for("lansweeper"), TokenBucket)
        assert limiter_for("lansweeper") is limiter_for("lansweeper")
        assert limiter_for("workday") is NO_LIMIT
        assert isinstance(runtime.current().client(System.LANSWEEPER).rate_limiter, TokenBucket)
        assert runtime.current().client(System.WORKDAY).rate_limiter is NO_LIMIT
        monkeypatch.setenv("NEXUS_RATE_BUDGETS", "off")
        get_settings.cache_clear()
        assert limiter_for("lansweeper") is NO_LIMIT  # budgets off: no behaviour change at all
    finally:
        runtime.reset()
        monkeypatch.undo()
        get_settings.cache_clear()
        clear_limiters()
