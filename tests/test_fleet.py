"""Fleet audits on snapshots.

Unit part (fakeredis, fake systems): the snapshot runner's checkpoints, per-page retries and concurrency, the compact
codec, the bulk cost model. Integration part (real Redis, worker processes, every simulator, 2,000 people): the
fleet report equals the simulator's ground truth exactly, and stays honest with a system down, flaky mid-paging or
truncated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from clients.paging import Page
from nexus.drift.fields import PERSON_FIELDS, POLICY
from nexus.errors import AuthError, BudgetExceededError, CircuitOpenError, ListingLost, TransientError
from nexus.fleet import codec
from nexus.fleet.cost import prefer_snapshot, snapshot_requests
from nexus.fleet.runner import SnapshotRunner
from nexus.fleet.sources import Source
from nexus.fleet.store import SnapshotStore
from nexus.models import DeviceRecord, PersonRecord, ReturnTicket, ShipmentRecord
from nexus.policy import RetryPolicy
from nexus.systems import System
from nexus.testing.cluster import Cluster
from tests._fleet_fixtures import WAIT, fleet_cluster, forget_last_good, run_fleet

POLICY3 = RetryPolicy(max_attempts=3, backoff_base_s=0.25)


# -- fakes -----------------------------------------------------------------------------------------------------------
class FakeSystem:
    """``n`` devices in pages of ``size``; ``fails[i]`` lists the errors page i raises on its next attempts."""

    def __init__(self, n: int, size: int, *, fails: dict[int, list[BaseException]] | None = None,
                 with_total: bool = False, delay_s: float = 0.0) -> None:
        self.records = [DeviceRecord("intune", f"k{i}", f"SER{i:05d}", owner=f"u{i % 7}@corp.example")
                        for i in range(n)]
        self.size = size
        self.fails = fails or {}
        self.with_total = with_total
        self.delay_s = delay_s
        self.calls: list[int] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    @property
    def pages(self) -> int:
        return -(-len(self.records) // self.size)

    def page(self, index: int) -> Page[DeviceRecord]:
        with self.lock:
            self.calls.append(index)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            pending = self.fails.get(index)
            error = pending.pop(0) if pending else None
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if error is not None:
                raise error
            items = self.records[index * self.size:(index + 1) * self.size]
            more = (index + 1) * self.size < len(self.records)
            return Page(items, str(index + 1) if more else None, len(self.records) if self.with_total else None)
        finally:
            with self.lock:
                self.active -= 1

    def fetch(self, cursor: str | None) -> Page[DeviceRecord]:
        return self.page(int(cursor or 0))

    def chain(self) -> Source:
        return Source("intune", System.INTUNE, codec.DEVICE, "cursor", self.size, self.fetch)

    def offsets(self, total_pages: int | None = None) -> Source:
        return Source("intune", System.INTUNE, codec.DEVICE, "offset", self.size, self.fetch, self.page,
                      total_pages=total_pages)


def transient(msg: str = "HTTP 503") -> TransientError:
    return TransientError(msg, system="intune", status=503)


@pytest.fixture()
def store() -> SnapshotStore:
    return SnapshotStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), ttl_s=600)


def runner(store: SnapshotStore, source: Source, **kwargs: Any) -> SnapshotRunner:
    kwargs.setdefault("policy", POLICY3)
    return SnapshotRunner(store, "a1", source, **kwargs)


def loaded(store: SnapshotStore, stream: str = "intune") -> list[Any]:
    decoder = codec.Decoder(codec.DEVICE, "intune")
    return [r for blob in store.iter_blobs("a1", stream) for r in decoder.decode(blob)]


# -- the chain -------------------------------------------------------------------------------------------------------
def test_chain_failure_retries_that_page_and_resumes_from_the_checkpoint(store: SnapshotStore) -> None:
    system = FakeSystem(23, 5, fails={2: [transient()]})
    first = runner(store, system.chain()).run()
    assert first.status == "retry" and first.countdown == 0.25  # the policy's first backoff
    assert first.error is not None and first.error["page"] == 2 and first.error["attempts"] == 1
    assert (first.state.next, first.state.cursor, sorted(first.state.pages)) == (2, "2", [0, 1])
    second = runner(store, system.chain()).run()
    assert second.status == "ok"
    assert system.calls == [0, 1, 2, 2, 3, 4]  # pages 0 and 1 were never fetched again
    assert second.state.records == 23 and second.state.page_count == 5
    assert second.state.fetches == 6 and second.state.attempts == {2: 1}
    assert loaded(store) == system.records


def test_a_page_out_of_attempts_makes_the_stream_incomplete(store: SnapshotStore) -> None:
    system = FakeSystem(12, 5, fails={1: [transient(), transient(), transient("HTTP 502")]})
    assert runner(store, system.chain()).run().status == "retry"
    second = runner(store, system.chain()).run()
    assert second.status == "retry" and second.countdown == 0.5
    third = runner(store, system.chain()).run()
    assert third.status == "failed"
    assert third.error is not None
    assert third.error["attempts"] == 3 and third.error["type"] == "TransientError"
    assert third.error["message"].startswith("snapshot incomplete: page 2 failed: HTTP 502")
    assert system.calls == [0, 1, 1, 1]


def test_errors_no_retry_cures_fail_at_once(store: SnapshotStore) -> None:
    system = FakeSystem(12, 5, fails={1: [AuthError("HTTP 401: token refused", system="intune", status=401)]})
    result = runner(store, system.chain()).run()
    assert result.status == "failed" and result.error is not None and result.error["kind"] == "auth"
    assert system.calls == [0, 1]


def test_an_open_breaker_fails_the_stream_without_a_request(store: SnapshotStore) -> None:
    class Open:
        def calling(self, *, count_failure: bool = True) -> Any:
            raise CircuitOpenError("Intune circuit breaker is open", system="intune")

    system = FakeSystem(12, 5)
    result = runner(store, system.chain(), gate=Open()).run()
    assert result.status == "failed" and result.error is not None and result.error["kind"] == "breaker_open"
    assert system.calls == []


def test_another_callers_half_open_trial_makes_the_stream_wait_not_fail(store: SnapshotStore) -> None:
    """A user audit's trial is deciding the circuit: the snapshot comes back after a countdown (the trial closes or
    opens the circuit within its lease) instead of reporting the system failed for the whole fleet audit."""
    from clients.breaker import TrialInProgressError

    class Trial:
        def calling(self, *, count_failure: bool = True) -> Any:
            raise TrialInProgressError("Intune circuit breaker is HALF_OPEN (trial in progress)", retry_in_s=45.0)

    system = FakeSystem(12, 5)
    result = runner(store, system.chain(), gate=Trial()).run()
    assert result.status == "retry" and result.countdown == 45.0  # what is left of the trial's lease
    assert result.error is not None and "trial in progress" in result.error["message"]
    assert system.calls == []
    assert runner(store, system.chain()).run().status == "ok"  # the trial closed the circuit: the stream resumes
    assert loaded(store) == system.records


def test_a_trial_that_never_ends_fails_the_stream_after_a_few_leases_without_using_page_attempts(
    store: SnapshotStore,
) -> None:
    from clients.breaker import TrialInProgressError

    class Trial:
        def calling(self, *, count_failure: bool = True) -> Any:
            raise TrialInProgressError("Intune circuit breaker is HALF_OPEN (trial in progress)", retry_in_s=60.0)

    system = FakeSystem(12, 5)
    waited = 0.0
    for _ in range(10):
        result = runner(store, system.chain(), gate=Trial(), trial_lease_s=60.0).run()
        if result.status != "retry":
            break
        waited += result.countdown
    assert result.status == "failed", result
    assert result.error is not None and "gave up waiting" in result.error["message"]
    assert result.error["kind"] == "breaker_open"
    assert 120.0 <= waited <= 180.0
    assert store.state("a1", "intune").attempts == {}  # waiting is not a failed attempt of any page


def test_waiting_for_a_trial_lasts_at_least_the_systems_longest_request(store: SnapshotStore) -> None:
    """Workday's trial may be the whole RaaS report, one request of up to NEXUS_WORKDAY_REPORT_TIMEOUT_S (300 s)
    that renews its 60 s lease: three leases of waiting would give up on a trial that is about to succeed."""
    from clients.breaker import TrialInProgressError, trial_wait_budget_s

    class Trial:
        def calling(self, *, count_failure: bool = True) -> Any:
            raise TrialInProgressError("Workday circuit breaker is HALF_OPEN (trial in progress)", retry_in_s=60.0)

    assert trial_wait_budget_s(60.0) == 180.0
    assert trial_wait_budget_s(60.0, 30.0) == 180.0
    assert trial_wait_budget_s(60.0, 300.0) == 360.0
    system = FakeSystem(12, 5)
    waited = 0.0
    for _ in range(20):
        result = runner(store, system.chain(), gate=Trial(), trial_lease_s=60.0, longest_request_s=300.0).run()
        if result.status != "retry":
            break
        waited += result.countdown
    assert result.status == "failed", result
    assert 300.0 <= waited <= 360.0


def test_only_the_last_attempt_of_a_page_counts_against_the_breaker(store: SnapshotStore) -> None:
    seen: list[bool] = []

    class Recording:
        def calling(self, *, count_failure: bool = True) -> Any:
            import contextlib

            seen.append(count_failure)
            return contextlib.nullcontext()

    system = FakeSystem(6, 5, fails={0: [transient(), transient()]})
    for _ in range(3):
        runner(store, system.chain(), gate=Recording()).run()
    assert seen == [False, False, True, False]  # page 0: attempts 1, 2, 3 (final); page 1: a first attempt


def test_our_budget_waiting_is_not_a_failed_attempt(store: SnapshotStore) -> None:
    wait = BudgetExceededError("budget", system="intune", status=None, retry_after=7.5)
    system = FakeSystem(12, 5, fails={1: [wait]})
    result = runner(store, system.chain()).run()
    assert result.status == "retry" and result.reason == "budget" and result.countdown == 7.5
    assert result.state.attempts == {}
    assert runner(store, system.chain()).run().status == "ok"


def test_a_lost_listing_restarts_the_stream_once(store: SnapshotStore) -> None:
    """LDAP: the retried task holds a new connection; the checkpointed cookie is refused and the chain restarts."""
    system = FakeSystem(14, 5, fails={1: [transient()]})
    assert runner(store, system.chain()).run().status == "retry"
    state = {"fresh": True}

    def fetch(cursor: str | None) -> Page[DeviceRecord]:
        if cursor is not None and state["fresh"]:
            state["fresh"] = False
            raise ListingLost("new connection")
        return system.fetch(cursor)

    source = Source("intune", System.INTUNE, codec.DEVICE, "cursor", 5, fetch)
    result = runner(store, source).run()
    assert result.status == "ok" and result.state.page_count == 3
    assert loaded(store) == system.records


def test_a_stream_already_decided_is_not_fetched_again(store: SnapshotStore) -> None:
    system = FakeSystem(6, 5)
    assert runner(store, system.chain()).run().status == "ok"
    store.finish("a1", "intune", "ok")
    assert runner(store, system.chain()).run().status == "ok"  # a redelivered task
    assert system.calls == [0, 1]


# -- offsets ---------------------------------------------------------------------------------------------------------
def test_offsets_with_a_total_are_fetched_concurrently_once_each(store: SnapshotStore) -> None:
    system = FakeSystem(98, 5, with_total=True, delay_s=0.01)  # Workday: page 0 says the total
    result = runner(store, system.offsets(), concurrency=4).run()
    assert result.status == "ok" and result.state.total_pages == 20
    assert sorted(system.calls) == list(range(20)) and system.calls[0] == 0
    assert system.max_active == 4
    assert loaded(store) == system.records


def test_offsets_without_a_total_end_at_the_last_page_with_bounded_waste(store: SnapshotStore) -> None:
    system = FakeSystem(33, 5, delay_s=0.005)  # Helix: no total, the last page has no next link
    result = runner(store, system.offsets(), concurrency=4).run()
    assert result.status == "ok" and result.state.end == 6
    assert sorted(result.state.pages) == list(range(7))
    wasted = len(system.calls) - 7
    assert 0 <= wasted <= 1  # speculation runs at half the concurrency: at most 4 // 2 - 1 requests past the end
    assert loaded(store) == system.records


def test_offsets_with_the_last_good_size_as_hint_waste_nothing(store: SnapshotStore) -> None:
    system = FakeSystem(33, 5, delay_s=0.005)
    result = runner(store, system.offsets(), concurrency=4, expected_records=33).run()
    assert result.status == "ok"
    assert sorted(system.calls) == list(range(7))


def test_offsets_retry_only_the_failed_pages(store: SnapshotStore) -> None:
    system = FakeSystem(60, 5, with_total=True, fails={3: [transient()], 7: [transient()]})
    first = runner(store, system.offsets(), concurrency=3).run()
    assert first.status == "retry"
    assert sorted(first.state.pages) == [i for i in range(12) if i not in (3, 7)]
    system.calls.clear()
    assert runner(store, system.offsets(), concurrency=3).run().status == "ok"
    assert sorted(system.calls) == [3, 7]
    assert loaded(store) == system.records


def test_fedex_chunks_are_pages_with_a_known_count(store: SnapshotStore) -> None:
    from nexus.fleet.sources import fedex_source

    class Tracker:
        def __init__(self) -> None:
            self.chunks: list[list[str]] = []

        def track(self, numbers: list[str]) -> dict[str, ShipmentRecord]:
            self.chunks.append(numbers)
            return {n: ShipmentRecord(n, True, True, "DL") for n in numbers}

    numbers = [f"{i:012d}" for i in range(95)]
    tracker = Tracker()
    result = SnapshotRunner(store, "a1", fedex_source(tracker, numbers), policy=POLICY3, concurrency=2).run()
    assert result.status == "ok" and result.state.records == 95
    assert sorted(len(c) for c in tracker.chunks) == [5, 30, 30, 30]


# -- codec and cost --------------------------------------------------------------------------------------------------
def test_codec_round_trips_every_record_kind_and_shares_strings() -> None:
    people = [PersonRecord("ad", f"CN=P{i},DC=corp", employee_id=str(i), email=f"p{i}@corp.example",
                           title="Engineer " + "II", department="R&D", manager_ref="CN=Boss,DC=corp",
                           enabled=i % 2 == 0, aliases=(f"p{i}@example.com",)) for i in range(3)]
    decoder = codec.Decoder(codec.PERSON, "ad")
    back = decoder.decode(codec.encode_page(codec.PERSON, people))
    assert back == people
    assert back[0].title is back[2].title  # one string for a repeated value
    tickets = [ReturnTicket("INC1", "S1", "a@b.c", "123", "Assigned", "2024-01-01T00:00:00+00:00")]
    assert codec.decode_page(codec.TICKET, codec.encode_page(codec.TICKET, tickets)) == tickets
    ships = [ShipmentRecord("123", False, error="TRACKING.NUMBER.NOTFOUND")]
    assert codec.decode_page(codec.SHIPMENT, codec.encode_page(codec.SHIPMENT, ships)) == ships


def test_bulk_audits_switch_to_snapshots_when_cheaper(store: SnapshotStore) -> None:
    assert prefer_snapshot(10_000, "auto", store) is False  # no snapshot size known yet: per person
    assert prefer_snapshot(1, "always", store) is True and prefer_snapshot(10**6, "never", store) is False
    for stream, records in (("workday", 2000), ("ad", 1984), ("entra", 1901)):
        store.set_last_good(stream, audit_id="f", records=records, pages=1, taken_at=0, kept=False, ttl_s=60)
    assert snapshot_requests(store) == 1 + 2 + 20  # Workday: one report; Entra: 100 users a page ($expand cap)
    assert prefer_snapshot(8, "auto", store) is True  # 8 people x 3 requests > 23 requests
    assert prefer_snapshot(7, "auto", store) is False


def test_ldap_listing_pages_on_its_own_connection() -> None:
    from clients.ad import ADClient
    from nexus.fleet.sources import sources_for
    from nexus.settings import Settings
    from nexus.sim.base import SimCredentials
    from nexus.sim.ldap_mock import mock_directory
    from tests._ad_fixtures import make_org

    org, creds = make_org(7), SimCredentials()
    directory = mock_directory(org, creds)
    settings = directory.settings(Settings(_env_file=None))

    def client() -> ADClient:
        return ADClient(settings, connection_factory=directory.connection_factory, page_size=3)

    def ad_source(ad: ADClient) -> Any:
        (only,) = sources_for(System.AD, ad)
        return only

    source = ad_source(client())
    first = source.fetch(None)
    # up to 3 a page: the bind account (an AD user object) is dropped from the page it is on
    assert 2 <= len(first.items) <= 3 and first.next_cursor is not None
    other = ad_source(client())  # a retried task: another process, another connection
    with pytest.raises(ListingLost):
        other.fetch(first.next_cursor)
    rest: list[PersonRecord] = []
    cursor: str | None = first.next_cursor
    while cursor is not None:
        page = source.fetch(cursor)
        rest += page.items
        cursor = page.next_cursor
    assert {r.username for r in [*first.items, *rest]} == {u.sam for u in org.ad}
    with pytest.raises(ListingLost):  # the last page closed the listing's connection
        source.fetch(first.next_cursor)


def test_a_broken_snapshot_task_still_returns_a_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chord header that raises would stop the chord body: a bug becomes a failed system, never a stuck audit."""
    from types import SimpleNamespace

    import tasks.fleet as fleet_tasks
    from nexus import runtime
    from nexus.fleet.job import SnapshotJob
    from nexus.settings import get_settings

    rt = runtime.Runtime(get_settings(), redis_client=fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    previous = runtime.install(rt)
    try:
        def broken(self: SnapshotJob) -> dict[str, Any]:
            raise KeyError("a bug")

        monkeypatch.setattr(SnapshotJob, "_listings", broken)
        task: Any = SimpleNamespace(request=SimpleNamespace(retries=0))
        marker = fleet_tasks.run_snapshot(task, System.HELIX, "a1")
        assert marker["ok"] is False and marker["error"]["type"] == "KeyError"
        snaps = rt.snapshot_store()
        assert {snaps.state("a1", s).status for s in ("helix", "helix_tickets")} == {"failed"}
    finally:
        runtime.install(previous)


# -- integration: 2,000 people, real workers -------------------------------------------------------------------------
def key_of(d: dict[str, Any]) -> tuple[str, str, frozenset[str], str]:
    return (d["subject"].lower(), d["field"], frozenset({d["system_a"], d["system_b"]} - {POLICY}), d["severity"])


def truth_keys(truth: dict[str, Any]) -> set[tuple[str, str, frozenset[str], str]]:
    return {(e["subject"].lower(), e["field"], frozenset(e["systems"]), e["severity"]) for e in truth["drift"]}


@pytest.fixture(scope="module")
def fleet_module(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    yield from fleet_cluster(request)


@pytest.fixture()
def fleet(fleet_module: Cluster) -> Iterator[Cluster]:
    fleet_module.reset()
    yield fleet_module
    fleet_module.reset()


@pytest.mark.integration
def test_fleet_audit_matches_ground_truth_with_progress_per_system(fleet: Cluster) -> None:
    fleet.fault("lansweeper", "slow", delay_ms=120)  # a slow chain, so the running audit can be watched
    seen: list[dict[str, Any]] = []
    view = run_fleet(fleet, on_progress=lambda v: seen.append(v) if v["status"] == "running" else None, poll_s=0.02)
    report = view["report"]
    assert report["kind"] == "fleet" and report["scope"] == "fleet"
    assert report["systems_failed"] == [] and report["errors"] == {}
    assert report["systems_checked"] == ["Workday", "ActiveDirectory", "Entra", "Intune", "Lansweeper", "Helix",
                                         "FedEx"]
    got = {key_of(d) for d in report["discrepancies"]}
    expected = truth_keys(fleet.truth)
    assert got == expected, {"missed": sorted(expected - got)[:10], "extra": sorted(got - expected)[:10]}
    assert report["discrepancy_count"] == len(report["discrepancies"]) == len(expected)
    assert sum(report["summary"]["by_severity"].values()) == len(expected)
    noise = {(n["subject"].lower(), n["field"]) for n in fleet.truth["noise"]}
    assert not noise & {(k[0], k[1]) for k in got}
    for d in report["discrepancies"]:
        assert {"subject", "field", "system_a", "system_b", "value_a", "value_b", "severity"} <= set(d)
    org = fleet.stack.org
    assert org is not None
    rows = report["systems"]
    assert rows["Workday"]["records"] == len(org.workday) and rows["Entra"]["records"] == len(
        [u for u in org.entra if u.user_type == "Member"])  # the Entra client leaves guests out
    assert rows["Lansweeper"]["records"] == len(org.lansweeper) and rows["Helix"]["tickets"] == len(org.helix_tickets)
    assert report["people"] >= len(org.workday) and report["devices"] >= len(org.intune)

    # requests: one per page (plus token requests); Helix's speculative window may overshoot its end a little
    sent = fleet.requests()
    # Workday: ONE report request (no prompt), stored as chunks of 1,000 workers
    assert sent["workday"]["paths"]["/ccx/service/customreport2/acme/ISU_Nexus/Nexus_Workers"] == 1
    assert "/ccx/api/staffing/v6/acme/workers" not in sent["workday"]["paths"]
    assert rows["Workday"]["pages"] == -(-len(org.workday) // 1000) and rows["Workday"]["fetches"] == 1
    assert sent["entra"]["paths"]["/v1.0/users"] == rows["Entra"]["pages"]
    assert sent["intune"]["total"] == rows["Intune"]["pages"]
    assert sent["lansweeper"]["total"] == rows["Lansweeper"]["pages"]
    assert sent["ad"]["paths"]["search"] <= rows["ActiveDirectory"]["pages"] + 1
    assert sent["fedex"]["paths"]["/track/v1/trackingnumbers"] == rows["FedEx"]["pages"] == -(-len(org.fedex) // 30)

    # progress: per system, pages read, visible while the audit ran
    running = [v["progress"]["systems"].get("lansweeper", {}) for v in seen]
    assert any(p.get("status") == "running" and 0 < p.get("pages", 0) < rows["Lansweeper"]["pages"]
               for p in running), running[-5:]
    final = view["progress"]
    assert final["total"] == final["done"] == 7
    assert {name: p["pages"] for name, p in final["systems"].items()} == {
        "workday": rows["Workday"]["pages"], "ad": rows["ActiveDirectory"]["pages"], "entra": rows["Entra"]["pages"],
        "intune": rows["Intune"]["pages"], "lansweeper": rows["Lansweeper"]["pages"],
        "helix": rows["Helix"]["pages"], "fedex": rows["FedEx"]["pages"]}
    assert all(p["status"] == "ok" for p in final["systems"].values())


@pytest.mark.integration
def test_one_system_down_is_reported_failed_and_nothing_else_is_lost(fleet: Cluster) -> None:
    forget_last_good(fleet, System.LANSWEEPER)  # no stand-in: the fallback is on in this cluster
    fleet.fault("lansweeper", "down")
    report = run_fleet(fleet)["report"]
    assert report["systems_failed"] == ["Lansweeper"]
    assert report["systems"]["Lansweeper"]["status"] == "failed"
    error = report["errors"]["Lansweeper"]
    assert error["type"] == "TransientError" and error["attempts"] == 3
    assert "snapshot incomplete: page 1 failed" in error["message"]
    got = {key_of(d) for d in report["discrepancies"]}
    expected = {k for k in truth_keys(fleet.truth) if "Lansweeper" not in k[2]}
    assert got == expected, {"missed": sorted(expected - got)[:10], "extra": sorted(got - expected)[:10]}
    assert fleet.requests()["lansweeper"]["total"] == 3  # three attempts at the first page, nothing more


@pytest.mark.integration
def test_flaky_system_mid_paging_retries_the_page_never_the_chain(fleet: Cluster) -> None:
    fleet.fault("lansweeper", "flaky", fail_every=3)
    report = run_fleet(fleet)["report"]
    assert report["systems_failed"] == []
    assert {key_of(d) for d in report["discrepancies"]} == truth_keys(fleet.truth)
    row = report["systems"]["Lansweeper"]
    assert row["status"] == "ok" and row["failed_attempts"] >= 1 and row["retries"] == row["failed_attempts"]
    sent = fleet.requests()["lansweeper"]["total"]
    assert sent == row["pages"] + row["failed_attempts"], (sent, row)  # each failed page once more, nothing else
    assert "[resilience] [Lansweeper] snapshot lansweeper: page" in fleet.worker_logs()


@pytest.mark.integration
def test_truncated_listing_fails_the_system_instead_of_everyone_missing(fleet: Cluster) -> None:
    forget_last_good(fleet, System.ENTRA)
    fleet.fault("entra", "truncated")  # page 1 answers, its nextLink fails (Directory_ExpiredPageToken)
    report = run_fleet(fleet)["report"]
    assert "Entra" in report["systems_failed"]
    assert "snapshot incomplete: page 2 failed" in report["errors"]["Entra"]["message"]
    assert not [d for d in report["discrepancies"] if "Entra" in (d["system_a"], d["system_b"])]
    missing = [d for d in report["discrepancies"] if d["field"] == "account_exists"]
    assert len(missing) == len([e for e in fleet.truth["drift"]
                                if e["field"] == "account_exists" and "Entra" not in e["systems"]])
    got = {key_of(d) for d in report["discrepancies"] if d["field"] in PERSON_FIELDS}
    expected = {k for k in truth_keys(fleet.truth) if k[1] in PERSON_FIELDS and "Entra" not in k[2]}
    assert got == expected


@pytest.mark.integration
def test_a_long_bulk_list_is_audited_from_snapshots(fleet: Cluster) -> None:
    """After a fleet audit the people systems' sizes are known: 60 people cost more person by person than the
    requests of a people snapshot (one Workday report), so the bulk audit runs on snapshots, with the bulk report's
    shape."""
    if snapshot_requests(SnapshotStore(fleet.redis())) is None:
        run_fleet(fleet)  # this test alone: learn the people systems' sizes first
    fleet.reset_requests()
    truth = fleet.truth
    drifted = sorted({e["subject"] for e in truth["drift"] if e["field"] in PERSON_FIELDS})[:50]
    assert fleet.stack.org is not None
    clean = [w.email for w in fleet.stack.org.workday if w.email not in drifted][:10]
    emails = drifted + clean
    nx = fleet.nexus()
    view = nx.wait(nx.submit(nx.request_for(emails=emails)), timeout=WAIT)
    assert view["status"] == "done"
    report = view["report"]
    assert report["kind"] == "bulk" and report["path"] == "snapshot"
    assert report["people"] == len(emails) and [e["email"] for e in report["entries"]] == emails
    got = {key_of(dict(d, subject=d.get("subject") or e["email"])) for e in report["entries"]
           for d in e["discrepancies"]}
    wanted = {s.lower() for s in emails}
    expected = {k for k in truth_keys(truth) if k[0] in wanted and k[1] in PERSON_FIELDS}
    assert got == expected
    assert all(e["workday_found"] is True for e in report["entries"])
    sent = fleet.requests()
    assert set(sent) <= {"workday", "ad", "entra"}  # no device system was read
    # Workday: the one unprompted report of the snapshot, no per-person lookups
    assert {p: n for p, n in sent["workday"]["paths"].items() if "customreport2" in p} == {
        "/ccx/service/customreport2/acme/ISU_Nexus/Nexus_Workers": 1}
