"""One audit, one findings policy: the first judging task pins it, every later part reads the pinned one."""

from __future__ import annotations

from pathlib import Path

import fakeredis

from nexus.audits.policy_pin import audit_policy
from nexus.audits.spec import AuditRequest
from nexus.audits.store import AuditStore
from nexus.findings_policy import DEFAULT_POLICY, load_policy
from nexus.settings import Settings


def test_a_policy_edited_mid_audit_does_not_reach_its_later_parts(tmp_path: Path) -> None:
    store = AuditStore(fakeredis.FakeRedis(), ttl_s=600)
    request = AuditRequest.bulk(["a@corp.example", "b@corp.example"], 10)
    store.create(request)
    file = tmp_path / "policy.toml"
    file.write_text("[thresholds]\ndormant_after_days = 60\n")
    settings = Settings(_env_file=None, NEXUS_POLICY_FILE=str(file))
    first = audit_policy(store, request.audit_id, settings)
    assert first.thresholds.dormant_after_days == 60
    file.write_text("[thresholds]\ndormant_after_days = 10\n")  # edited while the audit runs
    assert load_policy(str(file)).thresholds.dormant_after_days == 10
    later = audit_policy(store, request.audit_id, settings)
    assert later.thresholds.dormant_after_days == 60 and later.hash == first.hash
    other = AuditRequest.user("c@corp.example")
    store.create(other)  # a new audit takes the policy as it is now
    assert audit_policy(store, other.audit_id, settings).thresholds.dormant_after_days == 10


def test_a_worker_with_another_policy_file_grades_by_the_pinned_one(tmp_path: Path) -> None:
    store = AuditStore(fakeredis.FakeRedis(), ttl_s=600)
    request = AuditRequest.user("a@corp.example")
    store.create(request)
    assert audit_policy(store, request.audit_id, Settings(_env_file=None)) == DEFAULT_POLICY
    file = tmp_path / "p.toml"
    file.write_text("[kinds]\njob_title = false\n")
    assert audit_policy(store, request.audit_id, Settings(_env_file=None, NEXUS_POLICY_FILE=str(file))) == \
        DEFAULT_POLICY


def test_nothing_is_pinned_for_an_audit_that_is_gone() -> None:
    store = AuditStore(fakeredis.FakeRedis(), ttl_s=600)
    assert store.pin_policy("0" * 32, DEFAULT_POLICY.model_dump_json()) is None
    assert list(store.r.scan_iter("nexus:audit:*")) == []
    assert audit_policy(store, "0" * 32, Settings(_env_file=None)) == DEFAULT_POLICY
