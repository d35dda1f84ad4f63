"""The findings policy file (nexus.findings_policy, `nexus policy check`, NEXUS_POLICY_FILE): defaults that are
today's behaviour, one clear error with the line, and a policy that moves a threshold, re-grades a kind or turns one
off, in the engine, in history and end to end through real workers."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import fakeredis
import pytest

from nexus.drift import audit_devices
from nexus.drift.engine import audit_people
from nexus.findings_policy import DEFAULT_POLICY, PolicyError, load_policy, parse_policy
from nexus.history import HistoryStore
from nexus.systems import DEVICE_SYSTEMS, USER_SYSTEMS
from nexus.testing.cluster import Cluster
from tests._drift_fixtures import EMP_DN, NOW, clean_devices, clean_people, days_ago, with_

ROOT = Path(__file__).resolve().parents[1]


# -- the file ---------------------------------------------------------------------------------------------------------
def test_the_defaults_are_todays_behaviour() -> None:
    effective = DEFAULT_POLICY.effective()
    assert effective["thresholds"] == {"stale_after_days": 30, "return_overdue_days": 14, "dormant_after_days": 45,
                                       "unmanaged_seen_within_days": 14}
    assert all(effective["kinds"].values()) and effective["severities"] == {}
    assert {"Administrator", "Guest", "krbtgt", "svc-*", "svc_*"} <= set(effective["exclusions"]["accounts"])
    assert DEFAULT_POLICY.stamp() == {"hash": DEFAULT_POLICY.hash, "default": True, "changed": {}}
    assert parse_policy("").hash == DEFAULT_POLICY.hash  # an empty file is the defaults
    assert load_policy(None) is DEFAULT_POLICY and load_policy("") is DEFAULT_POLICY


def test_a_policy_records_what_differs_and_hashes_its_content() -> None:
    policy = parse_policy('[thresholds]\nstale_after_days = 10\n[kinds]\ndisplay_name = false\n'
                          '[severities]\njob_title = "low"\n')
    assert policy.stamp()["changed"] == {"thresholds": {"stale_after_days": 10}, "kinds": {"display_name": False},
                                         "severities": {"job_title": "low"}}
    assert policy.kinds_off == ["display_name"] and policy.hash != DEFAULT_POLICY.hash
    same = parse_policy('[severities]\njob_title = "low"\n[kinds]\ndisplay_name = false\n'
                        '[thresholds]\nstale_after_days = 10\n')
    assert same.hash == policy.hash  # content, not layout


@pytest.mark.parametrize(("text", "message"), [
    ("[thresholds\nstale_after_days = 1\n", "not valid TOML"),
    ("[thresholds]\n\nstale_after_days = 0\n", "line 3: thresholds.stale_after_days: Input should be greater"),
    ('[kinds]\norphans = true\n', "line 2: kinds.orphans: unknown kind; known: account_enabled"),
    ('[severities]\n# x\njob_title = "urgent"\n', "line 3: severities.job_title: Input should be"),
    ("[thresholds]\nstale_days = 3\n", "line 2: thresholds.stale_days: Extra inputs are not permitted"),
    ("colour = 1\n", "line 1: colour: Extra inputs are not permitted"),
    ('[workday.fields]\nemployee = "Emp"\n', "workday.fields: Value error, NEXUS_WORKDAY_FIELDS: unknown role"),
])
def test_a_bad_policy_is_one_clear_error_with_the_line(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.toml")
    assert str(caught.value).startswith("p.toml:") and message in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[thresholds]\nstale_after_days = 10\n")
    assert load_policy(path).thresholds.stale_after_days == 10
    path.write_text("[thresholds]\nstale_after_days = 120\n")
    assert load_policy(path).thresholds.stale_after_days == 120
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "missing.toml")


# -- the engine and history -------------------------------------------------------------------------------------------
def test_a_moved_threshold_a_regraded_kind_and_a_kind_turned_off() -> None:
    intune, lansweeper, helix = clean_devices()
    intune = [replace(intune[0], last_seen=days_ago(20))]
    people = [r for recs in clean_people() for r in recs]

    def fields(policy_text: str) -> dict[str, str]:
        result = audit_devices(intune, lansweeper, helix, [], [], people, DEVICE_SYSTEMS, NOW,
                               policy=parse_policy(policy_text))
        return {d.field: d.severity for d in result.discrepancies}

    assert fields("") == {}  # 20 days is within the default 30
    assert fields("[thresholds]\nstale_after_days = 10\n") == {"last_sync": "medium"}
    assert fields('[thresholds]\nstale_after_days = 10\n[severities]\nlast_sync = "high"\n') == {"last_sync": "high"}
    assert fields("[thresholds]\nstale_after_days = 10\n[kinds]\nlast_sync = false\n") == {}

    workday, ad_, entra_ = clean_people()
    ad_ = with_(ad_, EMP_DN, title="Somebody Else")
    found = audit_people(workday, ad_, entra_, USER_SYSTEMS, policy=parse_policy("[kinds]\njob_title = false\n"))
    assert found.discrepancies == []


def test_history_never_resolves_a_kind_the_policy_turned_off() -> None:
    store = HistoryStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), ttl_s=3600)
    finding = {"subject": "jane.doe@corp.example", "field": "job_title", "system_a": "Workday", "value_a": "A",
               "system_b": "ActiveDirectory", "value_b": "B", "severity": "medium"}
    store.annotate_full("a1", [finding], NOW)
    second = store.annotate_full("a2", [], NOW, not_looked_for=["job_title"])
    assert second.resolved == []
    assert [u["reason"] for u in second.unknown] == ["not looked for: the findings policy turns job_title off"]
    third = store.annotate_full("a3", [], NOW)
    assert [r["field"] for r in third.resolved] == ["job_title"]  # looked for again, and gone: resolved


def test_entra_dormancy_not_looked_for_leaves_ad_dormancy_judged() -> None:
    """``dormant_account@Entra`` (ENTRA_SIGN_IN_ACTIVITY=false) keeps the Entra finding unknown, not the AD one."""
    from nexus.drift.fields import scoped

    store = HistoryStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), ttl_s=3600)
    found = [{"subject": f"{who}@corp.example", "field": "dormant_account", "system_a": system,
              "value_a": "2026-01-01T00:00:00Z", "system_b": "Policy", "value_b": "within 45 days",
              "severity": "medium"}
             for who, system in (("ada", "Entra"), ("alan", "ActiveDirectory"))]
    store.annotate_full("a1", found, NOW)
    why = "Entra sign-ins are not read"
    second = store.annotate_full("a2", [], NOW, not_looked_for={scoped("dormant_account", "Entra"): why})
    assert [(r["subject"], r["system_a"]) for r in second.resolved] == [("alan@corp.example", "ActiveDirectory")]
    assert [(u["subject"], u["reason"]) for u in second.unknown] == [("ada@corp.example", f"not looked for: {why}")]
    assert second.unknown[0]["since"] == second.resolved[0]["since"]  # the Entra finding keeps its since


def test_the_comparer_says_entra_dormancy_is_not_judged_without_sign_ins() -> None:
    from nexus.fleet.assess import Assessment, SystemStatus
    from nexus.fleet.compare import FleetComparer
    from nexus.fleet.store import SnapshotStore
    from nexus.systems import System

    systems = {s: SystemStatus(s, "ok") for s in (System.WORKDAY, System.AD, System.ENTRA)}
    store = SnapshotStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), ttl_s=60)
    off = FleetComparer(store, Assessment({}, systems), NOW, entra_sign_ins=False)
    assert list(off.not_judged) == ["dormant_account@Entra"] and "ENTRA_SIGN_IN_ACTIVITY=false" in \
        off.not_judged["dormant_account@Entra"]
    assert off.engine_policy.is_on("dormant_account")  # AD dormancy is still judged
    quiet = FleetComparer(store, Assessment({}, systems), NOW, entra_sign_ins=False,
                          policy=parse_policy("[kinds]\ndormant_account = false\n"))
    assert quiet.not_judged == {}  # turned off by the policy: that is its own reason
    assert FleetComparer(store, Assessment({}, systems), NOW).not_judged == {}


# -- the command ------------------------------------------------------------------------------------------------------
def _nexus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    return subprocess.run([sys.executable, "-m", "nexus.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**base, **(env or {})}, check=False)


def test_policy_check_prints_the_effective_policy_or_exits_2_with_the_line(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[thresholds]\ndormant_after_days = 60\n")
    done = _nexus("policy", "check", str(good))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["thresholds"]["dormant_after_days"] == 60 and shown["hash"] == load_policy(good).hash
    assert shown["source"] == str(good)

    bad = tmp_path / "bad.toml"
    bad.write_text("[thresholds]\ndormant_after_days = -1\n")
    done = _nexus("policy", "check", str(bad))
    assert done.returncode == 2 and f"{bad}: line 2: thresholds.dormant_after_days" in done.stderr
    assert done.stdout == ""

    defaults = _nexus("policy", "check")
    assert defaults.returncode == 0 and json.loads(defaults.stdout)["source"] == "defaults"
    # the environment's policy: `policy check` reads it; any other command refuses to start on a bad one
    assert json.loads(_nexus("policy", "check", env={"NEXUS_POLICY_FILE": str(good)}).stdout)["source"] == str(good)
    refused = _nexus("health", env={"NEXUS_POLICY_FILE": str(bad)})
    assert refused.returncode == 2 and "thresholds.dormant_after_days" in refused.stderr


# -- end to end ---------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_workers_apply_the_policy_and_every_report_records_it(rig: Cluster) -> None:
    nx = rig.nexus()
    subject = next(e["subject"] for e in rig.truth["drift"] if e["field"] == "job_title")
    before = nx.wait(nx.submit(nx.request_for(email=subject)), timeout=90)["report"]
    assert "job_title" in {d["field"] for d in before["discrepancies"]}
    assert before["policy"] == {"hash": DEFAULT_POLICY.hash, "default": True, "changed": {}}
    with rig.policy('[kinds]\njob_title = false\n[severities]\ndepartment = "low"\n'):
        after = nx.wait(nx.submit(nx.request_for(email=subject)), timeout=90)["report"]
    assert "job_title" not in {d["field"] for d in after["discrepancies"]}
    assert all(d["severity"] == "low" for d in after["discrepancies"] if d["field"] == "department")
    assert after["policy"]["changed"] == {"kinds": {"job_title": False}, "severities": {"department": "low"}}
    assert after["policy"]["hash"] != before["policy"]["hash"]


def test_history_never_resolves_what_a_changed_policy_stopped_reporting() -> None:
    store = HistoryStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), ttl_s=3600)
    stale = {"subject": "5CG1234XYZ", "field": "last_sync", "system_a": "Intune", "value_a": "2026-01-01T00:00:00Z",
             "system_b": "Policy", "value_b": "within 30 days", "severity": "medium"}
    store.annotate_full("a1", [stale], NOW, policy_hash=DEFAULT_POLICY.hash)
    wider = parse_policy("[thresholds]\nstale_after_days = 400\n")
    second = store.annotate_full("a2", [], NOW, policy_hash=wider.hash)  # the finding is gone: the bar moved
    assert second.resolved == []
    assert second.unknown[0]["reason"] == f"not re-judged: the findings policy changed ({DEFAULT_POLICY.hash} -> " \
                                          f"{wider.hash})"
    third = store.annotate_full("a3", [], NOW, policy_hash=wider.hash)  # same policy again: now it is resolved
    assert [r["field"] for r in third.resolved] == ["last_sync"]


@pytest.mark.parametrize("status", ["stale", "degraded"])
def test_accounts_of_no_worker_are_not_judged_from_an_incomplete_workday(status: str) -> None:
    """A stale or shrunken Workday lacks the recent hires: every one of them would look orphaned."""
    from nexus.fleet.assess import Assessment, SystemStatus
    from nexus.fleet.compare import FleetComparer
    from nexus.fleet.store import SnapshotStore
    from nexus.systems import System

    systems = {System.WORKDAY: SystemStatus(System.WORKDAY, status), System.AD: SystemStatus(System.AD, "ok")}
    store = SnapshotStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), ttl_s=60)
    comparer = FleetComparer(store, Assessment({}, systems), NOW)
    assert "Workday was " + status in comparer.not_judged["orphaned_account"]
    assert not comparer.engine_policy.is_on("orphaned_account") and comparer.policy is DEFAULT_POLICY
    fresh = FleetComparer(store, Assessment({}, {**systems, System.WORKDAY: SystemStatus(System.WORKDAY, "ok")}), NOW)
    assert fresh.not_judged == {} and fresh.engine_policy is DEFAULT_POLICY
