"""The shared breaker on a real, private redis-server, across separate processes (spawned, not forked).

The processes share a fake clock kept in Redis (``<ns>:clock``), so "after the reset timeout" is one SET, not a
sleep. Listeners push every state change they fire onto ``<ns>:events``: the test counts transitions fleet-wide.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import time
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import pybreaker
import pytest
import redis

from clients import breaker as breaker_mod
from clients.breaker import NexusBreaker, breaker_state, get_breaker, reset_breaker
from nexus.errors import BreakerOpenError, CircuitOpenError, TransientError
from nexus.policy import BreakerPolicy
from nexus.testing.redis_server import free_port, redis_server, redis_server_fixture
from nexus.testing.waiting import wait_until

redis_url = redis_server_fixture(scope="module")

PROCESSES = 4
CALLS_PER_PROCESS = 10
FAIL_MAX = 5
RESET_S = 60.0
T0 = 1_700_000_000.0
WAIT_S = 15.0


class _EventPusher(pybreaker.CircuitBreakerListener):
    def __init__(self, client: redis.Redis, key: str, tag: str) -> None:
        self.client, self.key, self.tag = client, key, tag

    def state_change(self, cb: pybreaker.CircuitBreaker, old: Any, new: Any) -> None:
        self.client.rpush(self.key, f"{old.name if old else None}->{new.name}|{self.tag}")


def _build(url: str, ns: str, tag: str) -> tuple[redis.Redis, NexusBreaker]:
    client = redis.Redis.from_url(url)

    def clock() -> float:
        return float(client.get(f"{ns}:clock") or T0)

    breaker = get_breaker(
        "workday",
        redis=url,
        policy=BreakerPolicy(fail_max=FAIL_MAX, reset_timeout_s=RESET_S),
        clock=clock,
        namespace=ns,
        listeners=[_EventPusher(client, f"{ns}:events", tag)],
    )
    return client, breaker


def _fleet_member(url: str, ns: str, idx: int, barrier: Any, results: Any) -> None:
    """One worker process: hammer a dead Workday, then try once after the reset timeout."""
    client, breaker = _build(url, ns, f"p{idx}")

    def dead_workday() -> NoReturn:
        client.incr(f"{ns}:sent")
        time.sleep(0.002)  # a request in flight, so the processes really overlap
        raise TransientError("HTTP 503: Service Unavailable", system="workday", status=503)

    def recovered_workday() -> str:
        client.incr(f"{ns}:trials")
        client.blpop([f"{ns}:release"], timeout=WAIT_S)  # hold the trial open until the test has looked around
        return "ok"

    barrier.wait(WAIT_S)
    fast_failed = 0
    for _ in range(CALLS_PER_PROCESS):
        try:
            breaker.call(dead_workday)
        except BreakerOpenError:
            fast_failed += 1
        except TransientError:
            pass
    results.put(("phase1", idx, breaker.snapshot().state, fast_failed))

    barrier.wait(WAIT_S)  # the test moves the shared clock past the reset timeout
    barrier.wait(WAIT_S)
    try:
        outcome = breaker.call(recovered_workday)
    except CircuitOpenError:
        outcome = "fast-fail"
    results.put(("phase2", idx, outcome, None))

    barrier.wait(WAIT_S)
    results.put(("phase3", idx, breaker.snapshot().state, None))


def _transitions(client: redis.Redis, ns: str) -> list[str]:
    """The transitions fired fleet-wide, in order, without the tag of the process that fired them."""
    raw: list[Any] = client.lrange(f"{ns}:events", 0, -1)
    return [(e.decode() if isinstance(e, bytes) else str(e)).split("|")[0] for e in raw]


def _collect(results: Any, phase: str, n: int) -> list[tuple[str, int, Any, Any]]:
    out: list[tuple[str, int, Any, Any]] = []
    deadline = time.monotonic() + WAIT_S
    while len(out) < n:
        try:
            item = results.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"only {len(out)}/{n} processes reported {phase}")
        assert item[0] == phase, item
        out.append(item)
    return out


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    breaker_mod.clear_registry()
    yield
    breaker_mod.clear_registry()


@pytest.fixture
def ns() -> str:
    return f"test:{uuid.uuid4().hex[:8]}"


def test_fleet_trips_once_and_admits_one_trial(redis_url: str, ns: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set(f"{ns}:clock", T0)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_fleet_member, args=(redis_url, ns, i, barrier, results), daemon=True)
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        barrier.wait(WAIT_S * 2)  # spawned interpreters import the modules first
        phase1 = _collect(results, "phase1", PROCESSES)

        # Exactly one process observed CLOSED -> OPEN; every process now sees OPEN.
        events = _transitions(client, ns)
        assert events == ["closed->open"], events
        assert {state for _, _, state, _ in phase1} == {"open"}
        sent = int(client.get(f"{ns}:sent") or 0)
        # 5 failures trip it; at most one call per other process was already in flight when it tripped.
        assert FAIL_MAX <= sent <= FAIL_MAX + PROCESSES - 1
        assert sum(ff for _, _, _, ff in phase1) == PROCESSES * CALLS_PER_PROCESS - sent

        state_key = f"{ns}:workday:state"
        assert 0 < client.pttl(state_key) <= BreakerPolicy(reset_timeout_s=RESET_S).key_ttl_s * 1000

        client.set(f"{ns}:clock", T0 + RESET_S + 1)
        barrier.wait(WAIT_S)
        barrier.wait(WAIT_S)

        # All four try at once: one is the trial (held open), the other three fail fast.
        phase2 = _collect(results, "phase2", PROCESSES - 1)
        assert {outcome for _, _, outcome, _ in phase2} == {"fast-fail"}
        # the admitted trial may not have started yet
        wait_until(lambda: client.get(f"{ns}:trials") is not None, WAIT_S, 0.005, what="the trial to start")
        assert client.get(f"{ns}:trials") == "1"
        assert client.hget(state_key, "state") == "half_open"
        trial_ttl = client.pttl(f"{ns}:workday:trial")
        assert 0 < trial_ttl <= BreakerPolicy(reset_timeout_s=RESET_S).trial_ttl_s * 1000
        client.rpush(f"{ns}:release", "go")
        (last,) = _collect(results, "phase2", 1)
        assert last[2] == "ok"

        barrier.wait(WAIT_S)
        phase3 = _collect(results, "phase3", PROCESSES)
        assert {state for _, _, state, _ in phase3} == {"closed"}
        transitions = _transitions(client, ns)
        assert transitions == ["closed->open", "open->half-open", "half-open->closed"]
        assert client.get(f"{ns}:trials") == "1"
        assert client.exists(f"{ns}:workday:trial") == 0
    finally:
        for p in procs:
            p.join(timeout=WAIT_S)
        for p in procs:
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * PROCESSES


def test_systems_do_not_share_state(redis_url: str, ns: str) -> None:
    policy = BreakerPolicy(fail_max=2, reset_timeout_s=RESET_S)
    workday = get_breaker("Workday", redis=redis_url, policy=policy, namespace=ns)
    entra = get_breaker("Entra", redis=redis_url, policy=policy, namespace=ns)
    for _ in range(2):
        with pytest.raises(TransientError):
            workday.call(_raise_transient)
    assert workday.snapshot().state == "open"
    assert entra.snapshot().state == "closed"
    assert entra.call(lambda: "ok") == "ok"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert sorted(client.keys(f"{ns}:*")) == [f"{ns}:workday:state"]
    # The default namespace is a different state again.
    assert breaker_state("Workday", redis=redis_url)["state"] == "closed"


def test_reset_breaker_is_seen_by_other_processes_clients(redis_url: str, ns: str) -> None:
    policy = BreakerPolicy(fail_max=1, reset_timeout_s=RESET_S)
    a = get_breaker("helix", redis=redis_url, policy=policy)
    with pytest.raises(TransientError):
        a.call(_raise_transient)
    other_client = redis.Redis.from_url(redis_url)  # as another process would: its own connection and breaker
    from clients.breaker import RedisBreakerStorage

    b = NexusBreaker("helix", RedisBreakerStorage("helix", other_client), policy=policy)
    with pytest.raises(CircuitOpenError):
        b.call(lambda: "never")
    reset_breaker("helix", redis=redis_url)
    assert b.call(lambda: "ok") == "ok"


def test_real_clock_short_reset_timeout(redis_url: str, ns: str) -> None:
    b = get_breaker("fedex", redis=redis_url, policy=BreakerPolicy(fail_max=1, reset_timeout_s=0.3), namespace=ns)
    with pytest.raises(TransientError):
        b.call(_raise_transient)
    with pytest.raises(CircuitOpenError):
        b.call(lambda: "too soon")
    time.sleep(0.35)  # the one real wait in this module
    assert b.call(lambda: "ok") == "ok"
    assert b.snapshot().state == "closed"


@pytest.mark.integration  # a real redis-server, then killed
def test_redis_down_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nexus.resilience")
    policy = BreakerPolicy(fail_max=2, reset_timeout_s=RESET_S)
    with redis_server() as url:
        b = get_breaker("intune", redis=url, policy=policy)
        with pytest.raises(TransientError):
            b.call(_raise_transient)
        assert b.snapshot().failures == 1
    # The server is gone (killed on leaving the block). Calls go through as if CLOSED; nothing crashes.
    sent = 0

    def counted() -> NoReturn:
        nonlocal sent
        sent += 1
        raise TransientError("HTTP 503", system="intune", status=503)

    started = time.perf_counter()
    for _ in range(10):
        with pytest.raises(TransientError):
            b.call(counted)
    assert b.call(lambda: "ok") == "ok"
    assert time.perf_counter() - started < 2.0
    assert sent == 10
    warnings = [r for r in caplog.records if "Breaker store unavailable" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert warnings[0].getMessage().startswith("[resilience] [Intune] Breaker store unavailable (ConnectionError")
    state = breaker_state("intune", redis=url)
    assert (state["state"], state["storage_ok"]) == ("closed", False)

    # A breaker first built while Redis is down also works (fails open).
    dead = get_breaker("entra", redis=f"redis://127.0.0.1:{free_port()}/0", policy=policy)
    assert dead.call(lambda: "ok") == "ok"


def _raise_transient() -> NoReturn:
    raise TransientError("HTTP 503: Service Unavailable", status=503)
