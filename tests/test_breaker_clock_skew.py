"""Issue 13, item 4 ("One clock"): workers whose wall clocks disagree still agree on the shared breaker and budget.

Two worker processes share a real, private redis-server. One host's clock is ten minutes ahead, the other's ten
minutes behind: each process replaces ``time.time`` with its skewed reading BEFORE it imports Nexus, so every wall
clock read in it (default arguments included) is that host's. Neither injects a clock, as in production: the
breaker's and the budget's scripts then read Redis's ``TIME``.

Before Redis's clock, ``opened_at`` was the opening host's clock: when the host ahead tripped the circuit, the host
behind saw it OPEN for twenty minutes ("opens again in 1201 s") and never ran a trial; when the host behind tripped
it, the host ahead ran a trial at once, long before the reset timeout. A budget's refill time written by the host
ahead froze the refill for the host behind, which then ran out of budget while pacing well under it.

The reset timeout is one second of Redis's clock, so the one real wait here is about a second.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import queue
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import redis

from nexus.testing.redis_server import redis_server_fixture
from nexus.testing.waiting import wait_until

# Nothing from ``clients`` at module level: the host processes import this module first, then skew their clock, and
# only then import Nexus.

redis_url = redis_server_fixture(scope="module")

SKEW_S = 600.0
RESET_S = 1.0
FAIL_MAX = 5
WAIT_S = 20.0


def _skew_wall_clock(skew_s: float) -> None:
    """This process's host clock is ``skew_s`` off: ``time.time`` says so from now on."""
    real_time = time.time

    def skewed() -> float:
        return real_time() + skew_s

    time.time = skewed


def _host_main(url: str, ns: str, skew_s: float, commands: Any, results: Any) -> None:
    """One worker host: runs the test's commands against its own breaker and budget, one at a time."""
    _skew_wall_clock(skew_s)
    from clients.breaker import TrialInProgressError, get_breaker
    from clients.ratelimit import TokenBucket
    from nexus.budgets import Budget
    from nexus.errors import BreakerOpenError, BudgetExceededError, TransientError
    from nexus.policy import BreakerPolicy

    client = redis.Redis.from_url(url, decode_responses=True)
    policy = BreakerPolicy(fail_max=FAIL_MAX, reset_timeout_s=RESET_S)
    listener = _event_pusher(client, f"{ns}:events")
    breaker = get_breaker("workday", redis=url, policy=policy, namespace=ns, listeners=[listener])

    def dead() -> str:
        raise TransientError("HTTP 503: Service Unavailable", system="workday", status=503)

    def recovered(hold: bool) -> str:
        client.incr(f"{ns}:trials")
        if hold:  # the trial stays in flight until the test has looked at the other host
            client.blpop([f"{ns}:release"], timeout=WAIT_S)
        return "ok"

    def attempt(fn: Callable[[], str]) -> list[Any]:
        try:
            return ["ok", breaker.call(fn)]
        except TrialInProgressError as exc:
            return ["busy", exc.retry_in_s]
        except BreakerOpenError as exc:
            return ["open", exc.retry_in_s]
        except TransientError:
            return ["failed", None]

    def pace(limit: int, window_s: float, calls: int) -> list[Any]:
        bucket = TokenBucket(Budget("lansweeper", limit, window_s), client, max_wait_s=1.0, namespace=ns)
        done = 0
        try:
            for _ in range(calls):
                bucket.acquire()
                done += 1
        except BudgetExceededError as exc:
            return [done, exc.retry_after]
        return [done, None]

    while True:
        command, *args = commands.get(timeout=WAIT_S * 3)
        try:
            if command == "stop":
                return
            if command == "time":
                results.put(time.time())
            elif command == "fail":
                results.put(attempt(dead))
            elif command == "try":
                results.put(attempt(functools.partial(recovered, bool(args[0]))))
            elif command == "snapshot":
                results.put(breaker.snapshot().to_dict())
            elif command == "pace":
                results.put(pace(*args))
            else:
                results.put(["error", f"unknown command {command!r}"])
        except Exception:
            results.put(["error", traceback.format_exc()])


def _event_pusher(client: redis.Redis, key: str) -> Any:
    """A listener that pushes every transition it fires onto ``key`` (fleet-wide, in order)."""
    import pybreaker

    class Pusher(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: pybreaker.CircuitBreaker, old: Any, new: Any) -> None:
            client.rpush(key, f"{old.name if old else None}->{new.name}")

    return Pusher()


class _Host:
    """The test's handle on one host process."""

    def __init__(self, ctx: Any, url: str, ns: str, skew_s: float) -> None:
        self.skew_s = skew_s
        self.commands = ctx.Queue()
        self.results = ctx.Queue()
        self.proc = ctx.Process(target=_host_main, args=(url, ns, skew_s, self.commands, self.results), daemon=True)
        self.proc.start()

    def send(self, *command: Any) -> None:
        self.commands.put(command)

    def reply(self, timeout: float = WAIT_S) -> Any:
        try:
            answer = self.results.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"host {self.skew_s:+g}s did not answer in {timeout:g}s")
        if isinstance(answer, list) and answer and answer[0] == "error":
            pytest.fail(f"host {self.skew_s:+g}s failed:\n{answer[1]}")
        return answer

    def ask(self, *command: Any, timeout: float = WAIT_S) -> Any:
        self.send(*command)
        return self.reply(timeout)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.send("stop")
            self.proc.join(timeout=WAIT_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=WAIT_S)


@pytest.fixture
def ns() -> str:
    return f"skew:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def hosts(redis_url: str, ns: str) -> Iterator[dict[str, _Host]]:
    """Two hosts, one ten minutes ahead and one ten minutes behind (checked: their clocks say so)."""
    ctx = mp.get_context("spawn")
    pair = {"ahead": _Host(ctx, redis_url, ns, +SKEW_S), "behind": _Host(ctx, redis_url, ns, -SKEW_S)}
    try:
        readings = {name: host.ask("time", timeout=WAIT_S * 2) for name, host in pair.items()}  # spawn imports first
        assert readings["ahead"] - readings["behind"] == pytest.approx(2 * SKEW_S, abs=5.0)
        yield pair
    finally:
        for host in pair.values():
            host.stop()
    assert [host.proc.exitcode for host in pair.values()] == [0, 0]


def _events(client: redis.Redis, ns: str) -> list[str]:
    return [str(e) for e in client.lrange(f"{ns}:events", 0, -1)]


@pytest.mark.parametrize("tripper", ["ahead", "behind"])
def test_skewed_hosts_agree_on_open_half_open_and_one_trial(
    hosts: dict[str, _Host], redis_url: str, ns: str, tripper: str
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    opener = hosts[tripper]
    other = hosts["behind" if tripper == "ahead" else "ahead"]

    outcomes = [opener.ask("fail") for _ in range(FAIL_MAX)]
    tripped_at = time.monotonic()
    assert [o[0] for o in outcomes] == ["failed"] * FAIL_MAX
    assert _events(client, ns) == ["closed->open"]

    # Both hosts see it OPEN, and both say it opens again within the reset timeout (Redis's clock, not their own).
    for host in (other, opener):
        verdict, retry_in = host.ask("try", False)
        assert verdict == "open", (host.skew_s, verdict, retry_in)
        assert 0.0 < retry_in <= RESET_S, (host.skew_s, retry_in)
        snap = host.ask("snapshot")
        assert snap["state"] == "open"
        assert 0.0 <= snap["retry_in_s"] <= RESET_S, (host.skew_s, snap)
    opened_at = datetime.fromisoformat(snap["opened_at"]).timestamp()
    redis_now = float(client.time()[0])
    assert abs(redis_now - opened_at) < 5.0, "opened_at is Redis's time, not the opening host's"
    assert client.get(f"{ns}:trials") is None

    # Redis's reset timeout passes: the other host wins the one trial; the opener is told a trial is deciding.
    time.sleep(max(0.0, tripped_at + RESET_S + 0.1 - time.monotonic()))
    other.send("try", True)
    wait_until(lambda: client.get(f"{ns}:trials") == "1", WAIT_S, 0.005, what="the trial to start")
    verdict, lease_left = opener.ask("try", False)
    assert verdict == "busy", (verdict, lease_left)
    assert 0.0 < lease_left <= 30.0
    assert opener.ask("snapshot")["state"] == "half_open"
    client.rpush(f"{ns}:release", "go")
    assert other.reply() == ["ok", "ok"]

    assert client.get(f"{ns}:trials") == "1"
    assert _events(client, ns) == ["closed->open", "open->half-open", "half-open->closed"]
    assert {host.ask("snapshot")["state"] for host in (opener, other)} == {"closed"}


def test_a_skewed_host_is_not_starved_of_a_shared_budget(hosts: dict[str, _Host], redis_url: str, ns: str) -> None:
    """20 requests per 2 s (a bucket of 10 that refills at 5/s). The host ahead takes one token; the host behind
    then paces 16 requests, about 1.4 s of budget, each wait well under its 1 s limit. With each host's own clock the
    refill time the host ahead wrote lay ten minutes in the future of the host behind: no refill, and its seventh
    wait was over the limit."""
    assert hosts["ahead"].ask("pace", 20, 2.0, 1) == [1, None]
    started = time.monotonic()
    done, refused_for = hosts["behind"].ask("pace", 20, 2.0, 16)
    assert (done, refused_for) == (16, None)
    assert time.monotonic() - started == pytest.approx(1.4, abs=0.6)  # paced at the budget's rate, no faster


def test_without_a_clock_the_scripts_read_the_stores_time() -> None:
    """fakeredis (unit tests, the embedded demo) runs ``redis.call('TIME')`` in Lua too: there it is the one
    process's clock. An injected clock still wins (tests drive time with it)."""
    import fakeredis

    from clients.breaker.storage import RedisBreakerStorage, StoredState

    store = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    storage = RedisBreakerStorage("workday", store)
    assert storage.force("open") == "closed"
    snap = storage.read_at(None)
    assert snap is not None and snap.state == "open" and snap.opened_at_ms is not None
    seconds, micros = store.time()
    assert abs(seconds * 1000 + micros // 1000 - snap.opened_at_ms) < 5_000
    admission = storage.admit(None, 60_000)
    assert admission is not None and admission.verdict == "open"
    assert 55_000 < admission.retry_in_ms <= 60_000

    storage.force("open", 1_700_000_000_000)
    assert storage.read() == ("open", 0, 1_700_000_000_000)
    assert storage.read_at(1_700_000_030_000) == StoredState("open", 0, 1_700_000_000_000,
                                                                        1_700_000_030_000)
    admission = storage.admit(1_700_000_030_000, 60_000)
    assert admission is not None and (admission.verdict, admission.retry_in_ms) == ("open", 30_000)
    admission = storage.admit(None, 60_000)  # Redis's clock: long past 2023
    assert admission is not None and admission.verdict == "trial" and admission.moved
