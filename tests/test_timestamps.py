"""Every moment Nexus prints is ISO 8601 with its time zone: JSON log lines, the audit views of ``nexus audit
status|list --json`` (the facade) and MCP, and the per-system progress inside them. In-process, on fakeredis."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
from typer.testing import CliRunner

from nexus import runtime
from nexus.audits.spec import AuditRequest
from nexus.audits.store import AuditStore, iso_time
from nexus.cli import app
from nexus.facade import Nexus
from nexus.logs import JsonFormatter
from nexus.settings import get_settings
from nexus.testing.clock import FakeClock

T0 = 1_770_000_060.25  # 2026-02-02T02:41:00.250Z


def _moment(text: Any) -> datetime:
    assert isinstance(text, str), f"not an ISO string: {text!r}"
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None and moment.utcoffset() is not None, f"no time zone in {text!r}"
    return moment


def test_iso_time_is_utc_with_milliseconds() -> None:
    assert iso_time(T0) == "2026-02-02T02:41:00.250Z"
    assert _moment(iso_time(T0)).timestamp() == T0


def test_json_log_lines_carry_an_iso_utc_timestamp() -> None:
    record = logging.LogRecord("nexus.test", logging.INFO, __file__, 1, "hello", None, None)
    record.created = T0
    doc = json.loads(JsonFormatter([]).format(record))
    assert doc["ts"] == "2026-02-02T02:41:00.250Z"
    assert _moment(doc["ts"]).astimezone(UTC) == datetime.fromtimestamp(T0, UTC)


@pytest.fixture()
def store() -> Iterator[AuditStore]:
    client = fakeredis.FakeRedis()
    previous = runtime.install(runtime.Runtime(get_settings(), redis_client=client))
    try:
        yield AuditStore(client, clock=FakeClock(T0, step=1.5))
    finally:
        runtime.install(previous)


def _audit(store: AuditStore) -> str:
    request = AuditRequest.user("ann@corp.example")
    store.create(request)
    store.set_system_progress(request.audit_id, "workday", {"status": "ok", "attempt": 1, "at": T0 + 2})
    return request.audit_id


def test_views_carry_iso_timestamps_under_the_contracts_names(store: AuditStore) -> None:
    audit_id = _audit(store)
    nexus = Nexus(store=store)
    view = nexus.get(audit_id)
    assert view["created_at"] == "2026-02-02T02:41:00.250Z"
    assert _moment(view["updated_at"]) >= _moment(view["created_at"])
    assert _moment(view["progress"]["systems"]["workday"]["at"]).timestamp() == T0 + 2
    listed = nexus.list(10)
    assert [(a["audit_id"], a["created_at"]) for a in listed] == [(audit_id, view["created_at"])]
    _moment(listed[0]["updated_at"])
    assert store.meta(audit_id)["created_at"] == T0  # internal arithmetic keeps the epoch


def test_cli_json_status_and_list_print_iso_timestamps(store: AuditStore) -> None:
    audit_id = _audit(store)
    runner = CliRunner()
    status = runner.invoke(app, ["audit", "status", audit_id, "--json"])
    assert status.exit_code == 0, status.output
    doc = json.loads(status.stdout)
    assert doc["created_at"] == "2026-02-02T02:41:00.250Z"
    _moment(doc["updated_at"])
    listed = runner.invoke(app, ["audit", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [a["created_at"] for a in json.loads(listed.stdout)["audits"]] == [doc["created_at"]]
    text = runner.invoke(app, ["audit", "list"])
    assert text.exit_code == 0, text.output
    assert f"{audit_id}  2026-02-02 02:41:00Z" in text.stdout
