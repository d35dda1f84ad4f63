"""Retries and breaker accounting per REQUEST in the fetch tasks (issue 10, item 5; the seed's contract).

The fetch task (``tasks.fetch.run_fetch``) runs against the Workday simulator on a real socket, with the worker's
runtime on fakeredis (breaker included, same Lua as production) and an injected sleep: nothing waits for real.

* Every second request failing with 503: a 100-person bulk fetch (4 parts of 25) reads all 100 people, each failed
  request waits 2 s once and succeeds on its second attempt, and the breaker never opens.
* A dead system: requests 1-5 each try 3 times (2 s, 4 s), the 5th opens the circuit (``[resilience]`` lines), and
  request 6 fails fast without reaching the system.
* The task itself retries (countdown) only for what a request cannot wait out: another audit's half-open trial, or
  our own request budget.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest

from clients import breaker as breaker_mod
from clients.breaker import trial_wait_budget_s
from clients.workday import WorkdayClient
from nexus import runtime
from nexus.sim.org_model import Org
from nexus.sim.workday import WorkdaySim
from nexus.systems import System
from nexus.testing.breakers import Transitions
from nexus.testing.sims import SimHarness
from tests._org_factory_wd import make_org, system_fixtures

_names = itertools.count()


class Retry(Exception):
    def __init__(self, countdown: float) -> None:
        super().__init__(countdown)
        self.countdown = countdown


def task(retries: int = 0, task_id: str = "t") -> Any:
    def retry(*, countdown: float, exc: BaseException, max_retries: int) -> Exception:
        return Retry(countdown)

    return SimpleNamespace(request=SimpleNamespace(retries=retries, id=task_id), retry=retry)


@pytest.fixture(scope="module")
def org() -> Org:
    return make_org(120, seed=7)


harness, sim, _client = system_fixtures(WorkdaySim, WorkdayClient)


@pytest.fixture()
def transitions() -> Transitions:
    return Transitions()


@pytest.fixture()
def rt(sim: SimHarness, transitions: Transitions) -> Iterator[runtime.Runtime]:
    """A worker's runtime against the simulator: fakeredis stores, the breaker on an in-memory Redis."""
    breaker_mod.clear_registry()
    settings = sim.settings(NEXUS_BREAKER_REDIS_URL=f"memory://per-request-{next(_names)}", NEXUS_RATE_BUDGETS="")
    r = runtime.Runtime(settings, redis_client=fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    r.breaker(System.WORKDAY).add_listener(transitions)
    previous = runtime.install(r)
    yield r
    runtime.install(previous)
    r.close()
    breaker_mod.clear_registry()


def _fetch(emails: list[str], slept: list[float], retries: int = 0, audit: str = "bulk-1") -> dict[str, Any]:
    from tasks.fetch import run_fetch

    return run_fetch(task(retries, f"{audit}-{emails[0]}"), System.WORKDAY, audit, "people", emails,
                     sleep=slept.append)


def test_a_system_failing_every_second_request_still_answers_a_100_person_bulk_audit(
    sim: SimHarness, org: Org, rt: runtime.Runtime, transitions: Transitions
) -> None:
    emails = [w.email for w in org.workday[:100]]
    sim.fault("flaky", fail_every=2)
    slept: list[float] = []
    parts = [_fetch(emails[i:i + 25], slept) for i in range(0, 100, 25)]
    assert [p["ok"] for p in parts] == [True] * 4, [p.get("error") for p in parts]
    found = {email: rec for p in parts for email, rec in p["data"].items()}
    assert sorted(found) == sorted(emails)
    assert all([r["email"] for r in recs] == [email] for email, recs in found.items())
    sent = sim.requests()["total"]
    assert len(slept) == sent // 2  # every failed request waited once...
    assert set(slept) == {2.0}  # ... the seed's first backoff, and succeeded on its second attempt
    assert transitions.arrows == []  # the breaker never opened
    assert rt.breaker(System.WORKDAY).snapshot().state == "closed"


def test_five_failed_requests_open_the_circuit_and_the_sixth_fails_fast(
    sim: SimHarness, org: Org, rt: runtime.Runtime, transitions: Transitions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nexus.resilience")
    sim.fault("down")
    slept: list[float] = []
    markers = [_fetch([w.email], slept, audit=f"user-{i}") for i, w in enumerate(org.workday[:5])]
    assert all(not m["ok"] and m["error"]["type"] == "TransientError" for m in markers)
    assert [m["error"]["attempts"] for m in markers] == [3] * 5
    assert slept == [2.0, 4.0] * 5  # requests 1-5: each tries 3 times
    assert sim.requests()["total"] == 15
    assert transitions.arrows == ["closed->open"]

    sixth = _fetch([org.workday[5].email], slept, audit="user-6")
    assert sixth["error"]["type"] == "BreakerOpenError" and sixth["error"]["attempts"] == 0
    assert sim.requests()["total"] == 15  # failed fast: nothing sent, no retry
    lines = [r.getMessage() for r in caplog.records if r.name == "nexus.resilience"]
    assert any(line.startswith("[resilience] [Workday] Retry attempt 1/3 after TransientError") for line in lines)
    assert any(line.startswith("[resilience] [Workday] Retry attempt 2/3 after TransientError") for line in lines)
    assert "[resilience] [Workday] Circuit CLOSED -> OPEN (5 consecutive failures)" in lines


def test_a_failed_request_among_good_ones_does_not_count_them_all(
    sim: SimHarness, org: Org, rt: runtime.Runtime
) -> None:
    """A part is many requests: one failed request is ONE breaker failure, not one per person."""
    sim.fault("down")
    slept: list[float] = []
    marker = _fetch([w.email for w in org.workday[:25]], slept)
    assert marker["ok"] is False and marker["error"]["attempts"] == 3
    assert rt.breaker(System.WORKDAY).snapshot().failures == 1


def test_another_audits_trial_sends_the_part_back_with_a_countdown(
    sim: SimHarness, org: Org, rt: runtime.Runtime
) -> None:
    breaker = rt.breaker(System.WORKDAY)
    breaker.open()
    breaker.half_open()
    slept: list[float] = []
    emails = [w.email for w in org.workday[:3]]

    def other_audits_trial() -> None:
        with breaker_mod.unit_of_work("another-audit:workday"), breaker.calling():
            with pytest.raises(Retry) as info:
                _fetch(emails, slept)  # runs in its own unit
            lease = breaker.policy.trial_ttl_s
            assert lease - 5 < info.value.countdown <= lease  # what is left of the trial's lease, not 2 s
            assert sim.requests()["total"] == 0

    contextvars.Context().run(other_audits_trial)
    assert breaker.snapshot().state == "closed"  # the other audit's trial succeeded
    part = _fetch(emails, slept, retries=1)
    assert part["ok"] is True and all(part["data"].values())
    assert slept == []


def test_our_own_budget_wait_is_a_countdown_not_a_sleeping_retry(
    sim: SimHarness, org: Org, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus.errors import BudgetExceededError

    client = rt.client(System.WORKDAY)

    class Spent:
        def acquire(self) -> float:
            raise BudgetExceededError("Workday request budget is used up", system="workday", status=None,
                                      retry_after=42.0)

    monkeypatch.setattr(client, "rate_limiter", Spent())
    slept: list[float] = []
    with pytest.raises(Retry) as info:
        _fetch([org.workday[0].email], slept)
    assert info.value.countdown == 42.0 and slept == []
    assert rt.breaker(System.WORKDAY).snapshot().failures == 0  # nothing was sent: neutral


def test_a_malformed_answer_counts_once_against_the_breaker(sim: SimHarness, org: Org, rt: runtime.Runtime) -> None:
    """The body is parsed after its request returned: the bad answer is still one failed request."""
    sim.fault("malformed")
    slept: list[float] = []
    marker = _fetch([org.workday[0].email], slept)
    assert marker["error"]["type"] == "MalformedResponseError" and marker["error"]["attempts"] == 1
    assert slept == []  # never retried: the same request would get the same body
    assert rt.breaker(System.WORKDAY).snapshot().failures == 1


def test_a_half_open_trial_is_one_request_not_retried(sim: SimHarness, org: Org, rt: runtime.Runtime,
                                                      transitions: Transitions) -> None:
    breaker = rt.breaker(System.WORKDAY)
    breaker.open()
    breaker.half_open()  # the reset timeout has passed: the next request is the trial
    sim.fault("down")
    slept: list[float] = []
    marker = _fetch([org.workday[0].email], slept)
    assert marker["error"]["type"] == "TransientError" and marker["error"]["attempts"] == 1
    assert slept == [] and sim.requests()["total"] == 1  # one test request; its failure re-opens at once
    assert breaker.snapshot().state == "open"
    assert transitions.arrows[-1] == "half-open->open"


def _hold_trial(breaker: Any, unit: str) -> None:
    """Another caller's unit wins the half-open trial and is still running it (its slot is held)."""
    breaker.open()
    breaker.half_open()
    admission = breaker.storage.admit(breaker._now_ms(), int(breaker.reset_timeout * 1000), unit)
    assert admission is not None and admission.verdict == "trial"


def test_waiting_for_another_callers_trial_uses_no_attempts_and_is_bounded(
    sim: SimHarness, org: Org, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus.errors import BudgetExceededError

    breaker = rt.breaker(System.WORKDAY)
    _hold_trial(breaker, "another-audit:workday:part-0")
    slept: list[float] = []
    emails = [org.workday[0].email]
    for retries in (0, 1):  # two runs wait for the other trial
        with pytest.raises(Retry):
            _fetch(emails, slept, retries=retries)
    breaker.close()  # the other trial decided
    client = rt.client(System.WORKDAY)

    class Spent:
        def acquire(self) -> float:
            raise BudgetExceededError("budget used up", system="workday", status=None, retry_after=5.0)

    monkeypatch.setattr(client, "rate_limiter", Spent())
    with pytest.raises(Retry):  # run 3 is failure attempt 1 of 3, not the last attempt
        _fetch(emails, slept, retries=2)
    monkeypatch.undo()
    part = _fetch(emails, slept, retries=3)
    assert part["ok"] is True and all(part["data"].values())
    assert sim.requests()["total"] >= 1 and slept == []


def test_a_trial_that_never_ends_gives_up_after_a_few_leases_with_a_clear_marker(
    sim: SimHarness, org: Org, rt: runtime.Runtime
) -> None:
    breaker = rt.breaker(System.WORKDAY)
    _hold_trial(breaker, "another-audit:workday:part-0")
    slept: list[float] = []
    emails = [org.workday[0].email]
    waited = 0.0
    retries = 0
    marker: dict[str, Any] | None = None
    while marker is None and retries < 20:
        try:
            marker = _fetch(emails, slept, retries=retries)
        except Retry as again:
            waited += again.countdown
            retries += 1
    assert marker is not None and marker["ok"] is False
    assert marker["error"]["type"] == "TrialInProgressError"
    assert "gave up waiting" in marker["error"]["message"]
    # Workday's whole report may take NEXUS_WORKDAY_REPORT_TIMEOUT_S in one request: the waiters give the trial that
    # long plus a lease, not only three leases
    lease = breaker.policy.trial_ttl_s
    budget = trial_wait_budget_s(lease, rt.settings.longest_request_s("workday"))
    assert budget >= rt.settings.workday_report_timeout_s + lease
    assert budget - lease <= waited <= budget
    assert sim.requests()["total"] == 0


def test_a_long_retry_after_is_a_countdown_and_the_answers_read_so_far_are_kept(
    sim: SimHarness, org: Org, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.fetch as fetch_mod
    from nexus.audits.memo import PartialAnswers

    real = fetch_mod.run_lookup

    def lookup(system: System, client: Any, op: str, subjects: list[str], memo: dict[str, Any]) -> Any:
        class Tap(dict[str, Any]):
            def __setitem__(self, key: str, value: Any) -> None:
                memo[key] = value
                super().__setitem__(key, value)
                if len(memo) == 1:  # the first person is read: Workday starts throttling, for a minute
                    sim.fault("throttle", retry_after=60)

        return real(system, client, op, subjects, Tap(memo))

    monkeypatch.setattr(fetch_mod, "run_lookup", lookup)
    emails = [w.email for w in org.workday[:3]]
    slept: list[float] = []
    with pytest.raises(Retry) as info:
        _fetch(emails, slept)
    assert info.value.countdown == 60.0 and slept == []  # no worker slot sleeps a minute
    kept = PartialAnswers(rt.redis).load(f"bulk-1-{emails[0]}")
    assert list(kept) == [f"people:{emails[0]}"]
    sim.clear_faults()
    monkeypatch.setattr(fetch_mod, "run_lookup", real)
    part = _fetch(emails, slept, retries=1)
    assert part["ok"] is True and sorted(part["data"]) == sorted(emails) and all(part["data"].values())


def test_a_short_retry_after_is_still_waited_in_process(sim: SimHarness, org: Org, rt: runtime.Runtime) -> None:
    sim.fault("throttle", retry_after=3)
    slept: list[float] = []
    marker = _fetch([org.workday[0].email], slept)
    assert slept == [3.0, 3.0] and marker["error"]["type"] == "ThrottledError"


def test_each_part_of_an_audit_is_its_own_unit(
    sim: SimHarness, org: Org, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Part 1 of a bulk audit holds the half-open trial; part 2 of the same audit is not admitted to it."""
    import tasks.fetch as fetch_mod

    breaker = rt.breaker(System.WORKDAY)
    breaker.open()
    breaker.half_open()
    real = fetch_mod.run_lookup
    second: list[Any] = []

    def part_one(system: System, client: Any, op: str, subjects: list[str], memo: dict[str, Any]) -> Any:
        with breaker.calling():  # part 1's first request: the trial, still in flight
            def part_two() -> None:
                try:
                    second.append(_fetch([org.workday[5].email], [], audit="bulk-1"))
                except Retry as again:
                    second.append(again)

            monkeypatch.setattr(fetch_mod, "run_lookup", real)
            contextvars.Context().run(part_two)  # another worker's part of the same audit
        return real(system, client, op, subjects, memo)

    monkeypatch.setattr(fetch_mod, "run_lookup", part_one)
    part = _fetch([org.workday[0].email], [], audit="bulk-1")
    assert part["ok"] is True
    assert len(second) == 1 and isinstance(second[0], Retry), second  # refused: another unit's trial


def test_a_malformed_answer_is_settled_inside_its_unit(
    sim: SimHarness, org: Org, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch, transitions: Transitions
) -> None:
    """The part holds the half-open trial; its answer found malformed after the request is the trial's failure:
    the circuit re-opens (it is neither refused as "another trial" nor left half-open)."""
    import tasks.fetch as fetch_mod
    from clients.breaker import current_unit
    from nexus.errors import MalformedResponseError

    breaker = rt.breaker(System.WORKDAY)
    breaker.open()
    breaker.half_open()

    def lookup(system: System, client: Any, op: str, subjects: list[str], memo: dict[str, Any]) -> Any:
        admission = breaker.storage.admit(breaker._now_ms(), int(breaker.reset_timeout * 1000), current_unit())
        assert admission is not None and admission.verdict == "trial"  # a request of this part is the trial
        raise MalformedResponseError("Workday answered without 'data'", system="workday")

    monkeypatch.setattr(fetch_mod, "run_lookup", lookup)
    marker = _fetch([org.workday[0].email], [])
    assert marker["error"]["type"] == "MalformedResponseError"
    assert breaker.snapshot().state == "open"
    assert transitions.arrows[-1] == "half-open->open"
