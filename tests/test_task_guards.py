"""Chord bodies and snapshot tasks always end their audit: a remediation that cannot be published, a countdown retry
the broker refuses, and a submit whose plan is sent without subscribing the submitter to the result backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import kombu.exceptions
import pytest
import redis
from celery import Celery

from nexus import runtime
from nexus.audits.spec import AuditRequest
from nexus.audits.submit import submit_audit
from nexus.errors import AuditNotFound, RedisRefused, ServiceUnavailable
from nexus.fleet.job import RetryIn, SnapshotJob
from nexus.registry import SPECS
from nexus.settings import get_settings
from nexus.systems import System


@pytest.fixture()
def rt() -> Iterator[runtime.Runtime]:
    installed = runtime.Runtime(get_settings(), redis_client=fakeredis.FakeRedis())
    previous = runtime.install(installed)
    try:
        yield installed
    finally:
        runtime.install(previous)


def _refused(*_: Any, **__: Any) -> None:
    raise kombu.exceptions.OperationalError("broker refused the publish")


def test_fleet_comparison_enqueues_remediation_through_the_guard(rt: runtime.Runtime,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.fleet
    import tasks.guards

    store = rt.audit_store()
    request = AuditRequest.fleet()
    store.create(request)
    store.finish_once(request.audit_id, {"discrepancy_count": 0})
    seen: dict[str, Any] = {}

    def fake_conclude(ctx: Any, audit_id: str, *, enqueue_remediation: Any) -> dict[str, Any]:
        enqueue_remediation(audit_id)  # what finish_report does after storing the report
        seen["called"] = True
        return {"audit_id": audit_id}

    monkeypatch.setattr(tasks.fleet, "conclude", fake_conclude)
    monkeypatch.setattr(tasks.guards, "publish_remediation", _refused)
    tasks.fleet.compare_fleet.run([], request.audit_id)  # must not raise: the report is already stored
    assert seen["called"]
    section = (store.report(request.audit_id) or {})["remediation"]
    assert section["status"] == "failed"
    assert "not enqueued" in section["error"]["message"]


def test_a_countdown_retry_the_broker_refuses_ends_the_snapshot_failed(rt: runtime.Runtime,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.fleet

    request = AuditRequest.fleet()
    rt.audit_store().create(request)
    monkeypatch.setattr(SnapshotJob, "run", lambda self: RetryIn(5.0))

    class _Task:
        class request:
            retries = 0

        def retry(self, **_: Any) -> Exception:
            raise kombu.exceptions.OperationalError("broker refused the retry")

    marker = tasks.fleet.run_snapshot(_Task(), System.INTUNE, request.audit_id)
    assert marker["ok"] is False and marker["system"] == "intune"
    assert "broker refused the retry" in marker["error"]["message"]
    snaps = rt.snapshot_store()
    for stream in SPECS[System.INTUNE].stream_names:
        assert snaps.state(request.audit_id, stream).status == "failed"


def test_submit_does_not_subscribe_the_submitter_to_the_result_backend() -> None:
    app = Celery("submitter", broker="memory://", backend="cache+memory://", set_as_current=False)
    calls: list[Any] = []
    app.backend.on_task_call = lambda *a, **k: calls.append(a)
    store = runtime.Runtime(get_settings(), redis_client=fakeredis.FakeRedis()).audit_store()
    audit_id = submit_audit(store, AuditRequest.user("ada@example.com"), bulk_max_emails=10,
                            send_task=app.send_task)
    assert store.meta(audit_id)["kind"] == "user"
    assert calls == []


def test_a_write_redis_refuses_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    store = runtime.Runtime(get_settings(), redis_client=fakeredis.FakeRedis()).audit_store()

    def oom(*_: Any, **__: Any) -> None:
        raise redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'.")

    monkeypatch.setattr(store, "create", oom)
    with pytest.raises(RedisRefused, match=r"^Redis refused the write: out of memory$"):
        submit_audit(store, AuditRequest.user("ada@example.com"), bulk_max_emails=10, send_task=_refused)


def test_a_plan_the_broker_refuses_for_memory_leaves_no_audit_behind() -> None:
    store = runtime.Runtime(get_settings(), redis_client=fakeredis.FakeRedis()).audit_store()
    request = AuditRequest.user("ada@example.com")

    def oom(*_: Any, **__: Any) -> None:
        raise redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'.")

    with pytest.raises(ServiceUnavailable, match="out of memory"):
        submit_audit(store, request, bulk_max_emails=10, send_task=oom)
    with pytest.raises(AuditNotFound):
        store.meta(request.audit_id)


def test_a_closed_runtime_builds_no_client_of_its_own() -> None:
    from nexus.settings import Settings

    configured = Settings(_env_file=None, HELIX_USERNAME="svc", HELIX_PASSWORD="pw",
                          HELIX_BASE_URL="http://127.0.0.1:9")
    live = runtime.Runtime(configured, redis_client=fakeredis.FakeRedis())
    previous = runtime.install(live)
    try:
        stale = runtime.Runtime(configured, redis_client=fakeredis.FakeRedis())
        stale.close()
        assert stale.client(System.HELIX) is live.client(System.HELIX)
        assert stale._clients == {}
    finally:
        runtime.install(previous)
        live.close()
