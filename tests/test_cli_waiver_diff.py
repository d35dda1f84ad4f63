"""`nexus waiver add|list|remove` and `nexus audit diff A B`: in-process (CliRunner + fakeredis) for the shapes and
exit codes, and through real subprocesses against a private redis-server for the wiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from typer.testing import CliRunner

from nexus import runtime
from nexus.audits.spec import AuditRequest
from nexus.audits.store import AuditStore
from nexus.cli import app
from nexus.settings import get_settings
from nexus.testing.clock import FakeClock
from nexus.testing.redis_server import free_port, redis_server_fixture

redis_url = redis_server_fixture(scope="module")

CLI = [sys.executable, "-m", "nexus.cli"]


def disc(subject: str, field: str, a: str, va: Any, b: str, vb: Any, severity: str = "medium") -> dict[str, Any]:
    return {"subject": subject, "field": field, "system_a": a, "value_a": va, "system_b": b, "value_b": vb,
            "severity": severity}


TITLE = disc("ann@corp.example", "job_title", "Workday", "Engineer", "ActiveDirectory", "Intern")
DEPT = disc("bob@corp.example", "department", "Workday", "Sales", "Entra", "Ops", "high")
ENABLED = disc("cy@corp.example", "account_enabled", "Workday", "terminated", "ActiveDirectory", "enabled", "critical")


def fleet_audit(store: AuditStore, items: list[dict[str, Any]], *, finish: bool = True) -> str:
    request = AuditRequest.fleet()
    store.create(request)
    if finish:
        store.finish(request.audit_id, {"audit_id": request.audit_id, "kind": "fleet", "systems_failed": [],
                                        "discrepancy_count": len(items), "discrepancies": items})
    return request.audit_id


def ticking() -> FakeClock:
    """A minute passes between any two readings (audits are created and finished in order)."""
    return FakeClock(1_770_000_060.0, step=60)


@pytest.fixture()
def fake() -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis()
    previous = runtime.install(runtime.Runtime(get_settings(), redis_client=client))
    yield client
    runtime.install(previous)


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected ONE line on stderr, got: {stderr!r}"
    assert lines[0].startswith("nexus: error: "), lines[0]
    return lines[0]


# -- waiver, in-process -----------------------------------------------------------------------------------------------
def test_waiver_add_list_remove_json(runner: CliRunner, fake: fakeredis.FakeRedis) -> None:
    added = invoke(runner, "waiver", "add", "--subject", "ann@corp.example", "--field", "job_title", "--reason",
                   "HR approved the title", "--days", "30", "--system", "ad", "--by", "alice", "--json")
    assert added.exit_code == 0, added.output
    w = json.loads(added.stdout)
    assert set(w) == {"id", "subject", "field", "system", "reason", "expires_at", "created_at", "created_by", "status"}
    assert (w["subject"], w["field"], w["system"], w["created_by"], w["status"]) == (
        "ann@corp.example", "job_title", "ActiveDirectory", "alice", "active")

    dated = invoke(runner, "waiver", "add", "--subject", "SER-001", "--field", "last_sync", "--reason", "in repair",
                   "--expires", _in_days(10))
    assert dated.exit_code == 0, dated.output
    assert dated.stdout.startswith("added w-") and "SER-001  last_sync  until " in dated.stdout

    listed = invoke(runner, "waiver", "list", "--json")
    assert listed.exit_code == 0
    ids = [x["id"] for x in json.loads(listed.stdout)["waivers"]]
    assert len(ids) == 2 and w["id"] in ids
    table = invoke(runner, "waiver", "list")
    assert table.exit_code == 0 and "ann@corp.example" in table.stdout and "HR approved" in table.stdout

    removed = invoke(runner, "waiver", "remove", w["id"])
    assert removed.exit_code == 0 and removed.stdout.startswith(f"removed {w['id']}")
    assert [x["id"] for x in json.loads(invoke(runner, "waiver", "list", "--json").stdout)["waivers"]] == [
        i for i in ids if i != w["id"]]


def test_waiver_list_all_shows_expired(runner: CliRunner, fake: fakeredis.FakeRedis) -> None:
    from nexus.waivers import WaiverStore

    two_days_ago = time.time() - 2 * 86400
    store = WaiverStore(fake, clock=lambda: two_days_ago)  # written two days ago, expired a day ago
    expired = store.add("ann@corp.example", "manager", "acting manager", two_days_ago + 86400)
    assert json.loads(invoke(runner, "waiver", "list", "--json").stdout) == {"waivers": []}
    assert invoke(runner, "waiver", "list").stdout.strip() == "no active waivers"
    everything = json.loads(invoke(runner, "waiver", "list", "--all", "--json").stdout)["waivers"]
    assert [(x["id"], x["status"]) for x in everything] == [(expired.id, "expired")]


def _in_days(days: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


@pytest.mark.parametrize(("args", "message"), [
    (["--field", "job_title", "--reason", "r", "--days", "3"], "missing --subject"),
    (["--subject", "ann@corp.example", "--days", "3"], "missing --field, --reason"),
    (["--subject", "ann@corp.example", "--field", "job_title", "--reason", "r"], "exactly one of --expires"),
    (["--subject", "ann@corp.example", "--field", "job_title", "--reason", "r", "--days", "3", "--expires",
      "2030-01-01"], "exactly one of --expires"),
    (["--subject", "ann@corp.example", "--field", "job_title", "--reason", "r", "--days", "400"],
     "--days must be between 1 and 365"),
    (["--subject", "ann@corp.example", "--field", "job_title", "--reason", "r", "--expires", "next week"],
     "is not a date"),
    (["--subject", "ann@corp.example", "--field", "job_title", "--reason", "r", "--expires", "2020-01-01"],
     "is not in the future"),
    (["--subject", "ann@corp.example", "--field", "salary", "--reason", "r", "--days", "3"], "unknown field"),
    (["--subject", "x y", "--field", "job_title", "--reason", "r", "--days", "3"], "neither an email"),
    (["--subject", "ann@corp.example", "--field", "job_title", "--reason", " ", "--days", "3"], "reason is required"),
    (["--subject", "ann@corp.example", "--field", "job_title", "--reason", "r", "--days", "3", "--system", "sap"],
     "unknown system"),
])
def test_waiver_add_bad_input_exits_2(runner: CliRunner, fake: fakeredis.FakeRedis, args: list[str],
                                      message: str) -> None:
    result = invoke(runner, "waiver", "add", *args)
    assert result.exit_code == 2
    assert message in one_error_line(result.stderr)
    assert result.stdout == ""
    assert fake.hlen("nexus:waivers") == 0


def test_waiver_remove_unknown_or_malformed_id_exits_2(runner: CliRunner, fake: fakeredis.FakeRedis) -> None:
    unknown = invoke(runner, "waiver", "remove", "w-0123456789")
    assert unknown.exit_code == 2 and "no waiver with id w-0123456789" in one_error_line(unknown.stderr)
    malformed = invoke(runner, "waiver", "remove", "42")
    assert malformed.exit_code == 2 and "is not a waiver id" in one_error_line(malformed.stderr)


# -- audit diff, in-process -------------------------------------------------------------------------------------------
def test_audit_diff_json_and_table(runner: CliRunner, fake: fakeredis.FakeRedis) -> None:
    store = AuditStore(fake, clock=ticking())
    a = fleet_audit(store, [TITLE, DEPT])
    b = fleet_audit(store, [dict(TITLE, value_b="Senior Intern"), ENABLED])

    result = invoke(runner, "audit", "diff", a, b, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"a", "b", "counts", "new", "resolved", "persisting", "unknown"}
    assert (doc["a"], doc["b"]) == (a, b)
    assert doc["counts"] == {"new": 1, "resolved": 1, "persisting": 1, "unknown": 0}
    assert [d["subject"] for d in doc["new"]] == ["cy@corp.example"]
    assert [d["subject"] for d in doc["resolved"]] == ["bob@corp.example"]
    assert doc["persisting"][0]["changed_from"] == {"value_a": "Engineer", "value_b": "Intern"}

    table = invoke(runner, "audit", "diff", a, b)
    assert table.exit_code == 0
    assert "1 new, 1 resolved, 1 persisting, 0 unknown" in table.stdout
    assert "cy@corp.example" in table.stdout and "was Engineer / Intern" in table.stdout

    reversed_ = invoke(runner, "audit", "diff", b, a, "--json")
    assert reversed_.exit_code == 0 and "is newer than" in reversed_.stderr
    assert json.loads(reversed_.stdout)["counts"] == {"new": 1, "resolved": 1, "persisting": 1, "unknown": 0}


def test_audit_diff_bad_ids_exit_2_and_unfinished_exit_1(runner: CliRunner, fake: fakeredis.FakeRedis) -> None:
    store = AuditStore(fake, clock=ticking())
    done = fleet_audit(store, [TITLE])
    running = fleet_audit(store, [], finish=False)

    malformed = invoke(runner, "audit", "diff", "nope", done)
    assert malformed.exit_code == 2 and "is not an audit id" in one_error_line(malformed.stderr)
    unknown = invoke(runner, "audit", "diff", done, "0" * 32)
    assert unknown.exit_code == 2 and "no audit with id" in one_error_line(unknown.stderr)
    pending = invoke(runner, "audit", "diff", done, running)
    assert pending.exit_code == 1 and "is queued; no report to compare" in one_error_line(pending.stderr)
    missing_arg = invoke(runner, "audit", "diff", done)
    assert missing_arg.exit_code == 2


# -- through real processes and a real Redis --------------------------------------------------------------------------
def run_cli(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": url, "COLUMNS": "200"}
    env.pop("NEXUS_ENV_FILE", None)
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_waiver_and_diff_subprocess_against_redis(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    added = run_cli(redis_url, "waiver", "add", "--subject", "bob@corp.example", "--field", "department",
                    "--reason", "reorg in progress", "--days", "14", "--json", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    waiver_id = json.loads(added.stdout)["id"]

    # What the fleet builder sees through the same Redis.
    from nexus.waivers import WaiverStore

    active, waived = WaiverStore(client).apply([TITLE, DEPT])
    assert [d["subject"] for d in active] == ["ann@corp.example"]
    assert waived[0]["waiver"]["id"] == waiver_id

    store = AuditStore(client, clock=ticking())
    a, b = fleet_audit(store, [TITLE, DEPT]), fleet_audit(store, [DEPT, ENABLED])
    diffed = run_cli(redis_url, "audit", "diff", a, b, "--json", cwd=tmp_path)
    assert diffed.returncode == 0, diffed.stderr
    assert json.loads(diffed.stdout)["counts"] == {"new": 1, "resolved": 1, "persisting": 1, "unknown": 0}

    removed = run_cli(redis_url, "waiver", "remove", waiver_id, cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(run_cli(redis_url, "waiver", "list", "--json", cwd=tmp_path).stdout) == {"waivers": []}


def test_redis_unreachable_exits_1(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli(dead, "waiver", "list", cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot reach Redis" in one_error_line(result.stderr)
