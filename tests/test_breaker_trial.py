"""The half-open trial at fleet scale (issue 10, items 3 and 4).

* A snapshot's or a part's own requests are not refused by the trial their first request won (units of work);
  callers outside the unit still fail fast, and the first outcome decides.
* A trial keeps its slot while it runs (lease renewal), a success from HALF_OPEN always closes (even after the lease
  was lost), and listeners still fire once per transition.
* A lease shorter than the HTTP timeout is refused by the settings.

Breakers run on fakeredis with a FakeClock (as tests/test_resilience.py); the lease renewal runs on a real
redis-server, because the lease is a Redis TTL. The snapshot test runs a real fleet snapshot job against the
Workday simulator (down, then recovered).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import fakeredis
import pytest
from pydantic import ValidationError

from clients import breaker as breaker_mod
from clients.breaker import NexusBreaker, get_breaker
from nexus.errors import BreakerOpenError, TransientError
from nexus.policy import BreakerPolicy
from nexus.settings import Settings
from nexus.testing.breakers import Transitions, make_breaker
from nexus.testing.clock import FakeClock
from nexus.testing.redis_server import redis_server_fixture

redis_url = redis_server_fixture(scope="module")


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    breaker_mod.clear_registry()
    yield
    breaker_mod.clear_registry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def transitions() -> Transitions:
    return Transitions()


@pytest.fixture
def breaker(store: fakeredis.FakeRedis, clock: FakeClock, transitions: Transitions) -> NexusBreaker:
    return make_breaker("workday", store, clock, transitions)


def _fail() -> NoReturn:
    raise TransientError("HTTP 503: Service Unavailable", system="workday", status=503)


def _ok() -> str:
    return "ok"


def trip_and_wait(b: NexusBreaker, clock: FakeClock) -> None:
    for _ in range(5):
        with pytest.raises(TransientError):
            b.call(_fail)
    assert b.snapshot().state == "open"
    clock.advance(61)


# -- item 3: a unit's own requests pass its trial ----------------------------------------------------------------
def test_requests_of_the_trials_unit_are_admitted_and_outsiders_fail_fast(
    breaker: NexusBreaker, clock: FakeClock, transitions: Transitions
) -> None:
    trip_and_wait(breaker, clock)
    with breaker_mod.unit_of_work("audit-1:workday"), breaker.calling():  # the trial: page 1, still in flight
        assert breaker.snapshot().state == "half_open"
        with pytest.raises(BreakerOpenError, match="trial in progress"):
            contextvars.Context().run(breaker.call, _ok)  # another caller, in no unit: fails fast
        with breaker_mod.unit_of_work("audit-2:workday"), pytest.raises(BreakerOpenError):
            breaker.call(_ok)  # another unit: fails fast
        assert breaker.call(_ok) == "ok"  # page 2 of the same snapshot: admitted, and its success closes
        assert breaker.snapshot().state == "closed"
        assert breaker.call(_ok) == "ok"
    assert breaker.snapshot().state == "closed"
    assert transitions.arrows == ["closed->open", "open->half-open", "half-open->closed"]


def test_the_busy_refusal_is_its_own_error(breaker: NexusBreaker, clock: FakeClock) -> None:
    from clients.breaker import TrialInProgressError

    trip_and_wait(breaker, clock)
    with pytest.raises(TransientError), breaker.calling():  # the trial, which fails
        with pytest.raises(TrialInProgressError) as info:
            breaker.call(_ok)
        assert info.value.to_dict()["kind"] == "breaker_open"
        raise TransientError("HTTP 503", system="workday", status=503)
    with pytest.raises(BreakerOpenError) as reopened:
        breaker.call(_ok)  # re-opened: OPEN, not "trial in progress"
    assert not isinstance(reopened.value, TrialInProgressError)


def test_a_failure_in_the_trials_unit_reopens_and_stops_the_unit(
    breaker: NexusBreaker, clock: FakeClock, transitions: Transitions
) -> None:
    trip_and_wait(breaker, clock)
    with breaker_mod.unit_of_work("part-7"):
        with pytest.raises(TransientError), breaker.calling():  # the trial
            with pytest.raises(TransientError):
                breaker.call(_fail)  # a follow-up request of the part fails first: the system is still down
            assert breaker.snapshot().state == "open"
            raise TransientError("HTTP 503", system="workday", status=503)  # the trial's outcome: ignored
        with pytest.raises(BreakerOpenError):
            breaker.call(_ok)  # OPEN again: nothing is sent until the next reset timeout
    assert transitions.arrows == ["closed->open", "open->half-open", "half-open->open"]


def test_concurrent_pages_of_one_unit_close_the_circuit_once(
    breaker: NexusBreaker, clock: FakeClock, transitions: Transitions
) -> None:
    trip_and_wait(breaker, clock)
    gate = breaker_mod.UnitGate(breaker, "audit-3:workday")
    start = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def page() -> None:
        start.wait(5)
        try:
            with gate.calling(count_failure=False):
                time.sleep(0.01)
            result = "ok"
        except BreakerOpenError as exc:
            result = str(exc)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=page) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert outcomes == ["ok"] * 8
    assert breaker.snapshot().state == "closed"
    assert transitions.arrows == ["closed->open", "open->half-open", "half-open->closed"]


# -- item 4: a trial that outlives its lease ----------------------------------------------------------------------
def test_the_first_trial_to_succeed_closes_even_with_a_second_still_running(
    breaker: NexusBreaker, store: fakeredis.FakeRedis, clock: FakeClock, transitions: Transitions
) -> None:
    trip_and_wait(breaker, clock)
    first_done = threading.Event()
    second_in = threading.Event()

    def second_trial() -> None:
        with breaker.calling():
            second_in.set()
            first_done.wait(5)

    with breaker.calling():  # trial 1
        store.delete(breaker.storage.trial_key)  # its lease lost
        t = threading.Thread(target=second_trial)
        t.start()
        assert second_in.wait(5)
    # trial 1 succeeded while trial 2 holds the slot: success from HALF_OPEN closes
    assert breaker.snapshot().state == "closed"
    assert breaker.call(_ok) == "ok"
    first_done.set()
    t.join(5)
    assert breaker.snapshot().state == "closed"
    assert transitions.arrows == ["closed->open", "open->half-open", "half-open->closed"]


def test_a_running_trial_keeps_its_slot_past_the_lease(redis_url: str) -> None:
    """The lease is a real Redis TTL (0.3 s here); a trial running 1.2 s keeps it, nobody else gets a trial."""
    now = [1_700_000_000.0]
    policy = BreakerPolicy(fail_max=1, reset_timeout_s=60.0, trial_ttl_s=0.3)
    b = get_breaker("helix", redis=redis_url, policy=policy, clock=lambda: now[0], namespace="lease-test")
    b.close()
    with pytest.raises(TransientError):
        b.call(_fail)
    now[0] += 61
    refused: list[str] = []
    with b.calling():  # the trial
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            try:
                b.call(_ok)
                refused.append("admitted")  # a second trial: the lease was lost
            except BreakerOpenError:
                refused.append("refused")
            time.sleep(0.1)
        assert b.storage.redis.exists(b.storage.trial_key) == 1
    assert set(refused) == {"refused"}, refused
    assert b.snapshot().state == "closed"
    assert b.leases.holding == []


def test_a_dead_trials_lease_still_expires(redis_url: str) -> None:
    now = [1_700_000_000.0]
    policy = BreakerPolicy(fail_max=1, reset_timeout_s=60.0, trial_ttl_s=0.2)
    b = get_breaker("fedex", redis=redis_url, policy=policy, clock=lambda: now[0], namespace="lease-dead")
    b.close()
    with pytest.raises(TransientError):
        b.call(_fail)
    now[0] += 61
    assert b.storage.admit(int(now[0] * 1000), 60_000) is not None  # a trial admitted, then its process died
    with pytest.raises(BreakerOpenError):
        b.call(_ok)
    time.sleep(0.3)
    assert b.call(_ok) == "ok"  # nobody renewed it: the next caller is the trial
    assert b.snapshot().state == "closed"


# -- the settings refuse a lease shorter than a request ------------------------------------------------------------
def test_a_lease_shorter_than_the_http_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match="NEXUS_HTTP_TIMEOUT_S"):
        Settings(NEXUS_HTTP_TIMEOUT_S=45, NEXUS_BREAKER_RESET_TIMEOUT_S=30)
    ok = Settings(NEXUS_HTTP_TIMEOUT_S=45, NEXUS_BREAKER_RESET_TIMEOUT_S=60)
    assert ok.breaker_trial_lease_s == 60
    for reset in (1.0, 30.0, 90.0):
        s = Settings(NEXUS_BREAKER_RESET_TIMEOUT_S=reset)
        assert s.breaker_trial_lease_s == BreakerPolicy.from_settings(s).trial_ttl_s


# -- item 3 through a real snapshot: Workday down, recovered, then the weekly fleet audit ---------------------------
@pytest.fixture(scope="module")
def workday_sim() -> Iterator[Any]:
    from nexus.sim.workday import WorkdaySim
    from tests._org_factory_wd import make_org, start_sim

    h = start_sim(WorkdaySim, make_org(450, seed=5))
    yield h
    h.stop()


def test_the_first_snapshot_after_a_recovery_is_not_refused_by_its_own_trial(
    workday_sim: Any, clock: FakeClock, transitions: Transitions
) -> None:
    from clients.workday import WorkdayClient
    from nexus.audits.store import AuditStore
    from nexus.fleet.context import FleetContext
    from nexus.fleet.job import SnapshotJob
    from nexus.fleet.store import SnapshotStore
    from nexus.systems import System

    settings = workday_sim.settings(NEXUS_FLEET_PAGE_CONCURRENCY=8)
    client = WorkdayClient(settings, clock=workday_sim.clock)
    server = fakeredis.FakeServer()
    snaps = SnapshotStore(fakeredis.FakeRedis(server=server), ttl_s=600)
    # last week's audit: 450 workers in 5 pages, so this week's pages are fetched concurrently from the start
    snaps.set_last_good("workday", audit_id="last-week", records=450, pages=5, taken_at=clock() - 7 * 86400,
                        kept=True, ttl_s=600)
    breaker = get_breaker("workday", redis=fakeredis.FakeRedis(server=server),
                          policy=BreakerPolicy(fail_max=5, reset_timeout_s=60.0), clock=clock,
                          listeners=[transitions])

    workday_sim.fault("down")
    for _ in range(5):
        with pytest.raises(TransientError):
            breaker.call(client.fetch_page, None)
    assert breaker.snapshot().state == "open"
    workday_sim.clear_faults()  # Workday is back; health shows it, the breaker waits for its reset timeout
    clock.advance(61)

    class Hooks:
        def __getattr__(self, name: str) -> Callable[..., None]:
            return lambda *args, **kwargs: None

    ctx = FleetContext(settings=settings, store=AuditStore(fakeredis.FakeRedis(server=server), ttl_s=600),
                       snaps=snaps, client=lambda system: client, gate=lambda system: breaker, hooks=Hooks())
    marker = SnapshotJob(ctx, "this-week", System.WORKDAY, 1).run()
    assert marker == {"system": "workday", "ok": True}, marker
    assert snaps.state("this-week", "workday").records == 450
    assert breaker.snapshot().state == "closed"
    assert transitions.arrows == ["closed->open", "open->half-open", "half-open->closed"]


def test_the_lease_keeper_renews_only_trials_in_flight_and_then_stops() -> None:
    from clients.breaker import LeaseKeeper

    renewed: list[str] = []
    keeper = LeaseKeeper(renewed.append, 0.01, name="test")
    keeper.hold("u:a")
    keeper.hold("u:a")  # two calls of one unit
    keeper.hold("t1")
    deadline = time.monotonic() + 5
    while not {"u:a", "t1"} <= set(renewed) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert {"u:a", "t1"} <= set(renewed)
    keeper.drop("t1")
    keeper.drop("u:a")
    assert keeper.holding == ["u:a"]
    keeper.drop("u:a")
    assert keeper.holding == []
    thread = keeper._thread
    if thread is not None:
        thread.join(5)
        assert not thread.is_alive()
    renewed.clear()
    time.sleep(0.05)
    assert renewed == []  # nothing held: nothing renewed


# -- a unit's slot is the unit's: one call's neutral outcome does not free it for everyone -------------------------
@pytest.mark.parametrize("neutral", ["budget", "nested_open", "cancelled"])
def test_a_neutral_outcome_of_one_unit_call_keeps_the_units_trial(
    breaker: NexusBreaker, clock: FakeClock, neutral: str
) -> None:
    from clients.breaker import TrialInProgressError
    from nexus.errors import BudgetExceededError

    errors: dict[str, BaseException] = {
        "budget": BudgetExceededError("budget used up", system="workday", status=None, retry_after=30.0),
        "nested_open": BreakerOpenError("AD circuit breaker is OPEN", system="ad"),
        "cancelled": KeyboardInterrupt(),
    }
    trip_and_wait(breaker, clock)
    with breaker_mod.unit_of_work("part-1"):
        with pytest.raises(type(errors[neutral])), breaker.calling():  # the unit's trial: nothing decided
            raise errors[neutral]
        assert breaker.snapshot().state == "half_open"
    with breaker_mod.unit_of_work("part-2"), pytest.raises(TrialInProgressError):
        breaker.call(_ok)  # another unit does not win a second trial
    with breaker_mod.unit_of_work("part-1"):
        assert breaker.call(_ok) == "ok"  # the unit's next request is still its trial, and it closes
    assert breaker.snapshot().state == "closed"


def test_a_neutral_outcome_of_a_lone_trial_gives_its_slot_back(breaker: NexusBreaker, clock: FakeClock) -> None:
    from nexus.errors import BudgetExceededError

    trip_and_wait(breaker, clock)
    with pytest.raises(BudgetExceededError), breaker.calling():  # a trial of its own (no unit)
        raise BudgetExceededError("budget used up", system="workday", status=None, retry_after=30.0)
    with breaker_mod.unit_of_work("part-2"):
        assert breaker.call(_ok) == "ok"  # the slot was given back: the next caller is the trial
    assert breaker.snapshot().state == "closed"


def test_trial_in_progress_says_how_long_the_trial_may_still_hold_the_slot(
    breaker: NexusBreaker, clock: FakeClock
) -> None:
    from clients.breaker import TrialInProgressError

    trip_and_wait(breaker, clock)
    with (
        breaker_mod.unit_of_work("part-1"),
        breaker.calling(),
        breaker_mod.unit_of_work("part-2"),
        pytest.raises(TrialInProgressError) as info,
    ):
        breaker.call(_ok)
    lease = breaker.policy.trial_ttl_s
    assert lease - 5 < info.value.retry_in_s <= lease
    assert info.value.to_dict()["retry_in_s"] == pytest.approx(info.value.retry_in_s, abs=0.01)
