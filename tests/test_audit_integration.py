"""Distributed audits end to end: real Redis, real Celery worker processes, every simulator over real sockets.

The reports are checked against the simulator's ground truth: every planted drift is found, no noise is reported.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import Any

import pytest

from nexus.drift.fields import DEVICE_FIELDS, PERSON_FIELDS, POLICY
from nexus.testing.cluster import Cluster

pytestmark = pytest.mark.integration

WAIT = 90.0


def _key(d: dict[str, Any]) -> tuple[str, str, frozenset[str], str]:
    systems = frozenset({d["system_a"], d["system_b"]} - {POLICY})
    return (d["subject"].lower(), d["field"], systems, d["severity"])


def _truth_keys(truth: dict[str, Any], subjects: set[str], fields: tuple[str, ...]) -> set[tuple[Any, ...]]:
    lowered = {s.lower() for s in subjects}
    # an account matching two workers is reported by either worker's audit too
    return {(e["subject"].lower(), e["field"], frozenset(e["systems"]), e["severity"])
            for e in truth["drift"] if e["field"] in fields
            and {w.lower() for w in (e["subject"], *e.get("workers", ()))} & lowered}


def _noise_keys(truth: dict[str, Any], subjects: set[str]) -> set[tuple[str, str]]:
    lowered = {s.lower() for s in subjects}
    return {(n["subject"].lower(), n["field"]) for n in truth["noise"] if n["subject"].lower() in lowered}


def _sample_people(cluster: Cluster, n_clean: int = 8, seed: int = 3) -> list[str]:
    truth = cluster.truth
    drifted = sorted({e["subject"] for e in truth["drift"] if e["field"] in PERSON_FIELDS})
    noisy = sorted({n["subject"] for n in truth["noise"] if "@" in n["subject"]})
    assert cluster.stack.org is not None
    everyone = [w.email for w in cluster.stack.org.workday]
    clean = sorted(set(everyone) - set(drifted) - set(noisy))
    rng = random.Random(seed)
    return sorted(set(drifted) | set(rng.sample(noisy, min(12, len(noisy)))) | set(rng.sample(clean, n_clean)))


def test_bulk_audit_matches_ground_truth_exactly(rig: Cluster) -> None:
    nx = rig.nexus()
    emails = _sample_people(rig)
    view = nx.wait(nx.submit(nx.request_for(emails=emails)), timeout=WAIT)
    assert view["status"] == "done", view
    report = view["report"]
    assert report["people"] == len(emails)
    assert report["systems_failed"] == []
    got = {_key(d) for e in report["entries"] for d in e["discrepancies"]}
    expected = _truth_keys(rig.truth, set(emails), PERSON_FIELDS)
    assert got == expected, {"missed": expected - got, "extra": got - expected}
    reported_pairs = {(k[0], k[1]) for k in got}
    assert not (_noise_keys(rig.truth, set(emails)) & reported_pairs)
    assert report["discrepancy_count"] == len(got)
    assert sum(report["summary"]["by_severity"].values()) == len(got)


def test_single_user_audit_report_shape_and_truth(rig: Cluster) -> None:
    nx = rig.nexus()
    subject = next(e["subject"] for e in rig.truth["drift"] if e["field"] == "job_title")
    view = nx.wait(nx.submit(nx.request_for(email=subject)), timeout=WAIT)
    report = view["report"]
    for key in ("email", "systems_checked", "systems_available", "systems_failed", "workday_found", "ad_found",
                "entra_found", "discrepancy_count", "discrepancies", "errors"):
        assert key in report
    assert report["systems_checked"] == ["Workday", "ActiveDirectory", "Entra"]
    assert report["workday_found"] is True
    got = {_key(dict(d, subject=d.get("subject", subject))) for d in report["discrepancies"]}
    assert got == _truth_keys(rig.truth, {subject}, PERSON_FIELDS)
    for d in report["discrepancies"]:
        assert set(d) >= {"field", "system_a", "value_a", "system_b", "value_b", "severity"}


def test_audits_by_upns_that_are_not_workday_emails_find_the_worker_and_the_real_orphans(rig: Cluster) -> None:
    """Workday's lookup by a UPN it does not hold finds no one: the accounts' employee ids bring the worker in
    (stage 2), so nothing is called orphaned that the fleet audit would correlate; a planted orphan still is."""
    org = rig.stack.org
    assert org is not None
    workers = {w.employee_id: w for w in org.workday}
    by_upn = {u.upn.lower(): workers[u.employee_id] for u in org.ad
              if u.enabled and u.employee_id in workers and u.upn.lower() != workers[u.employee_id].email.lower()}
    orphans = sorted(e["subject"] for e in rig.truth["drift"] if e["field"] == "orphaned_account"
                     and e["systems"] == ["ActiveDirectory"])
    assert by_upn and orphans
    upns = sorted(by_upn)[:4]
    nx = rig.nexus()
    view = nx.wait(nx.submit(nx.request_for(emails=[*upns, orphans[0]])), timeout=WAIT)
    assert view["status"] == "done", view
    report = view["report"]
    assert report["systems_failed"] == []
    for entry in report["entries"]:
        got = {_key(dict(d, subject=d.get("subject") or entry["email"])) for d in entry["discrepancies"]}
        if entry["email"] in by_upn:
            assert entry["workday_found"] is True, entry
            expected = _truth_keys(rig.truth, {by_upn[entry["email"]].email}, PERSON_FIELDS)
        else:
            expected = _truth_keys(rig.truth, {entry["email"]}, PERSON_FIELDS)
            assert any(k[1] == "orphaned_account" for k in expected)
        assert got == expected, (entry["email"], {"missed": expected - got, "extra": got - expected})


def test_device_audits_match_ground_truth(rig: Cluster) -> None:
    nx = rig.nexus()
    truth = rig.truth
    by_field: dict[str, list[str]] = defaultdict(list)
    for e in truth["drift"]:
        if e["field"] in DEVICE_FIELDS:
            by_field[e["field"]].append(e["subject"])
    serials = {subjects[0] for subjects in by_field.values()}  # one of each device drift kind
    noisy = sorted({n["subject"] for n in truth["noise"] if n["field"] == "device_owner"})
    serials |= set(noisy[:2])
    assert rig.stack.org is not None
    clean = sorted({d.serial for d in rig.stack.org.intune} - {e["subject"] for e in truth["drift"]} - set(noisy))
    serials |= set(clean[:2])
    ids = {serial: nx.submit(nx.request_for(serial=serial)) for serial in sorted(serials)}
    for serial, audit_id in ids.items():
        view = nx.wait(audit_id, timeout=WAIT)
        assert view["status"] == "done", view
        report = view["report"]
        assert report["systems_failed"] == [], report["errors"]
        got = {_key(dict(d, subject=d.get("subject") or serial)) for d in report["discrepancies"]}
        expected = _truth_keys(truth, {serial}, DEVICE_FIELDS)
        assert got == expected, (serial, {"missed": expected - got, "extra": got - expected})


def test_workday_down_audits_complete_with_ad_and_entra_compared(rig: Cluster) -> None:
    rig.fault("workday", "down")
    nx = rig.nexus()
    truth = rig.truth
    # A person whose AD title differs from Workday, so AD and Entra disagree with each other too.
    subject = next(e["subject"] for e in truth["drift"] if e["field"] == "job_title"
                   and "ActiveDirectory" in e["systems"])
    emails = [subject, *sorted({e["subject"] for e in truth["drift"] if e["field"] == "department"})[:4]]
    view = nx.wait(nx.submit(nx.request_for(emails=emails)), timeout=WAIT)
    assert view["status"] == "done"
    report = view["report"]
    assert report["systems_failed"] == ["Workday"]
    for entry in report["entries"]:
        assert entry["workday_found"] is None
        assert entry["systems_failed"] == ["Workday"]
        assert entry["systems_available"] == ["ActiveDirectory", "Entra"]
        assert entry["errors"]["Workday"]["type"] in ("TransientError", "BreakerOpenError", "CircuitOpenError")
        assert entry["errors"]["Workday"]["message"]
        assert entry["ad_found"] is True and entry["entra_found"] is True
    first = next(e for e in report["entries"] if e["email"] == subject)
    titles = [d for d in first["discrepancies"] if d["field"] == "job_title"]
    assert titles and {titles[0]["system_a"], titles[0]["system_b"]} == {"ActiveDirectory", "Entra"}


def test_flaky_system_is_retried_and_the_audit_succeeds(rig: Cluster) -> None:
    rig.fault("entra", "flaky", fail_every=2)
    nx = rig.nexus()
    subjects = sorted({e["subject"] for e in rig.truth["drift"] if e["field"] == "job_title"})[:3]
    views = [nx.wait(nx.submit(nx.request_for(email=s)), timeout=WAIT) for s in subjects]
    for view in views:
        assert view["status"] == "done"
        assert view["report"]["systems_failed"] == []
        assert view["report"]["entra_found"] is True
    logs = rig.worker_logs()
    # each request is retried on its own (the seed's contract): "(waiting 0.25s)" before its second attempt
    retries = re.findall(r"\[resilience\] \[Entra\] Retry attempt (\d)/3 .*(?:countdown|waiting) ([0-9.]+)s", logs)
    assert retries, "expected Entra retries in the worker logs"
    assert {float(c) for n, c in retries if n == "1"} == {0.25}  # first countdown: the configured base


def test_shared_breaker_bounds_requests_to_a_dead_system(rig: Cluster) -> None:
    """Two worker processes, one dead system: the breaker opens for both, later fetches fail fast, after the reset
    timeout exactly one trial goes out, and recovery closes the breaker for both workers."""
    import time

    from clients.breaker import breaker_state

    rig.fault("helix", "down")
    nx = rig.nexus()
    assert rig.stack.org is not None
    serials = [d.serial for d in rig.stack.org.helix_assets[:12]]
    ids = [nx.submit(nx.request_for(serial=s)) for s in serials]
    views = [nx.wait(i, timeout=WAIT) for i in ids]
    assert all(v["status"] == "done" for v in views)
    assert all("Helix" in v["report"]["systems_failed"] for v in views)
    reached = rig.requests().get("helix", {}).get("total", 0)
    # Each request is tried 3 times and counts once (the seed's contract): 5 failed requests open the breaker, and
    # the fetches already in flight on the other 3 pool slots (2 workers x 2) stop at their next attempt.
    fail_max, max_attempts, in_flight = 5, 3, 3
    assert reached <= (fail_max + in_flight) * max_attempts, reached
    kinds = [v["report"]["errors"]["Helix"]["kind"] for v in views]
    assert "breaker_open" in kinds  # later fetches failed fast
    assert breaker_state("helix")["state"] == "open"

    # After the reset timeout: one trial per reset period; it fails (still down), the breaker opens again. The
    # other audits wait for a trial in progress (its lease) instead of failing at once, so the window may span a
    # second reset period and so a second trial. A trial is one unit of work (one fetch: the asset and its tickets,
    # 2 requests at most), never two audits at once.
    rig.reset_requests()
    time.sleep(3.2)
    started = time.monotonic()
    ids = [nx.submit(nx.request_for(serial=s)) for s in serials[:4]]
    for i in ids:
        nx.wait(i, timeout=WAIT)
    periods = 1 + int((time.monotonic() - started) / 3.0)  # NEXUS_BREAKER_RESET_TIMEOUT_S of the rig
    assert 1 <= rig.requests().get("helix", {}).get("total", 0) <= 2 * periods
    assert breaker_state("helix")["state"] == "open"

    # Recovery: one successful trial closes it for every worker.
    rig.clear_faults()
    time.sleep(3.2)
    views = [nx.wait(nx.submit(nx.request_for(serial=s)), timeout=WAIT) for s in serials[:4]]
    assert all(v["report"]["systems_failed"] == [] for v in views)
    assert breaker_state("helix")["state"] == "closed"


def test_throttle_retry_after_is_honoured(rig: Cluster) -> None:
    import threading
    import time

    rig.fault("intune", "throttle", retry_after=1)
    nx = rig.nexus()
    assert rig.stack.org is not None
    serial = rig.stack.org.intune[5].serial
    started = time.monotonic()
    audit_id = nx.submit(nx.request_for(serial=serial))
    threading.Timer(0.6, rig.clear_faults).start()  # the system recovers while the task waits its Retry-After
    view = nx.wait(audit_id, timeout=WAIT)
    elapsed = time.monotonic() - started
    assert view["status"] == "done"
    assert view["report"]["intune_found"] is True
    assert elapsed >= 1.0
    assert re.search(r"\[resilience\] \[Intune\] Retry attempt 1/3 after ThrottledError.*(?:countdown|waiting) 1\.0s",
                     rig.worker_logs())


def test_expired_token_is_renewed_mid_audit(rig: Cluster) -> None:
    import httpx

    nx = rig.nexus()
    subject = rig.truth["drift"][0]["subject"] if "@" in rig.truth["drift"][0]["subject"] else \
        next(e["subject"] for e in rig.truth["drift"] if "@" in e["subject"])
    assert nx.wait(nx.submit(nx.request_for(email=subject)), timeout=WAIT)["status"] == "done"
    httpx.delete(f"{rig.sim_url}/_sim/tokens").raise_for_status()  # every issued token is now expired
    rig.reset_requests()
    view = nx.wait(nx.submit(nx.request_for(email=subject)), timeout=WAIT)
    assert view["status"] == "done"
    assert view["report"]["systems_failed"] == []
    paths = rig.requests()
    assert any("token" in p for p in paths["workday"]["paths"]), paths["workday"]
    assert any("token" in p for p in paths["entra"]["paths"]), paths["entra"]
