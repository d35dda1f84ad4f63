"""`nexus audit submit --wait` and `nexus audit result` as a machine reads them: the exit-code table (0, 1, 2, 3, 4,
124, 130), `--fail-on` / `--require-all` gates and their precedence (1, then 4, then 3), an audit lost with Redis,
and Redis refusing writes (CLI and MCP say so in one line).

In process (CliRunner) against a fake facade for the codes, and against a real redis-server started with
``--maxmemory 1 --maxmemory-policy noeviction`` for the out-of-memory refusal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import redis
from fastmcp import Client
from fastmcp.exceptions import ToolError
from typer.testing import CliRunner

from nexus import runtime
from nexus.audits.spec import AuditRequest
from nexus.audits.store import AuditStore
from nexus.cli import app
from nexus.cli import audit as audit_cli
from nexus.errors import AuditLost, ServiceUnavailable, WaitTimeout
from nexus.facade import Nexus, lost
from nexus.mcp.server import build_server
from nexus.settings import Settings, get_settings
from nexus.testing.redis_server import redis_server

AUDIT_ID = "ab" * 16


def disc(severity: str, **extra: Any) -> dict[str, Any]:
    return {"field": "job_title", "system_a": "Workday", "value_a": "a", "system_b": "Entra", "value_b": "b",
            "severity": severity, **extra}


def user_view(*, status: str = "done", failed: tuple[str, ...] = (), discrepancies: list[dict[str, Any]] | None = None,
              error: str = "") -> dict[str, Any]:
    items = discrepancies or []
    systems = ["Workday", "ActiveDirectory", "Entra"]
    report = {"audit_id": AUDIT_ID, "kind": "user", "email": "ann@corp.example", "systems_checked": systems,
              "systems_available": [s for s in systems if s not in failed], "systems_failed": list(failed),
              "discrepancy_count": len(items), "discrepancies": items,
              "errors": {s: {"type": "AuthError", "kind": "auth", "message": "refused"} for s in failed}}
    view: dict[str, Any] = {"audit_id": AUDIT_ID, "kind": "user", "status": status, "description": "user",
                            "created_at": 0.0, "updated_at": 0.0, "progress": {"total": 1, "done": 1, "systems": {}},
                            "report": report}
    if error:
        view["error"] = error
    return view


class FakeNexus:
    """The facade's surface the audit commands use; ``wait`` answers ``outcome`` (a view, or raises it)."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.waited: list[dict[str, Any]] = []
        self.submitted: list[AuditRequest] = []

    def request_for(self, **subject: Any) -> AuditRequest:
        return Nexus.request_for(self, **subject)  # type: ignore[arg-type]

    @property
    def settings(self) -> Any:
        return get_settings()

    def submit(self, request: AuditRequest) -> str:
        self.submitted.append(request)
        return AUDIT_ID

    def wait(self, audit_id: str, timeout: float, **options: Any) -> dict[str, Any]:
        self.waited.append({"audit_id": audit_id, "timeout": timeout, **options})
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return dict(self.outcome)

    def get(self, audit_id: str, *, include_report: bool = True) -> dict[str, Any]:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return dict(self.outcome)


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def use(monkeypatch: pytest.MonkeyPatch, outcome: Any) -> FakeNexus:
    fake = FakeNexus(outcome)
    monkeypatch.setattr(audit_cli, "_facade", lambda: fake)
    return fake


def submit(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, ["audit", "submit", "--email", "ann@corp.example", "--wait", "--json", *args],
                         env={"COLUMNS": "200"})


def last_line(stderr: str) -> str:
    return [line for line in stderr.splitlines() if line.strip()][-1]


# -- the table -------------------------------------------------------------------------------------------------------
GATES: list[tuple[str, dict[str, Any], list[str], int]] = [
    ("clean", {}, ["--fail-on", "low", "--require-all"], 0),
    ("partial, no gate", {"failed": ("Entra",)}, [], 0),
    ("drift, no gate", {"discrepancies": [disc("critical")]}, [], 0),
    ("drift below the gate", {"discrepancies": [disc("medium")]}, ["--fail-on", "high"], 0),
    ("drift at the gate", {"discrepancies": [disc("high")]}, ["--fail-on", "high"], 3),
    ("drift above the gate", {"discrepancies": [disc("critical")]}, ["--fail-on", "HIGH"], 3),
    ("waived drift never counts", {"discrepancies": [disc("critical", waiver={"id": "w1"})]}, ["--fail-on", "low"], 0),
    ("a system failed", {"failed": ("Entra",)}, ["--require-all"], 4),
    ("4 before 3", {"failed": ("Entra",), "discrepancies": [disc("critical")]},
     ["--fail-on", "low", "--require-all"], 4),
    ("1 before 4 and 3", {"status": "failed", "failed": ("Workday", "ActiveDirectory", "Entra"),
                          "error": "no system could be read: Workday: AuthError: refused"},
     ["--fail-on", "low", "--require-all"], 1),
]


@pytest.mark.parametrize(("view", "args", "code"), [(v, a, c) for _, v, a, c in GATES], ids=[g[0] for g in GATES])
def test_submit_wait_exit_code_table(monkeypatch: pytest.MonkeyPatch, runner: CliRunner, view: dict[str, Any],
                                     args: list[str], code: int) -> None:
    fake = use(monkeypatch, user_view(**view))
    result = submit(runner, *args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["audit_id"] == AUDIT_ID  # the view is printed whatever the code
    assert fake.waited[0]["submitted"] is True  # --wait knows it submitted this audit
    if code == 3:
        assert last_line(result.stderr).startswith("nexus: --fail-on ") and "(exit 3)" in result.stderr
    if code == 4:
        assert "--require-all: not every system was read: Entra: AuthError: refused" in result.stderr
    if code == 1:
        assert last_line(result.stderr) == (f"nexus: error: audit {AUDIT_ID} failed: no system could be read: "
                                            "Workday: AuthError: refused")


def test_result_applies_the_same_gates_after_writing_the_report(monkeypatch: pytest.MonkeyPatch,
                                                                runner: CliRunner) -> None:
    use(monkeypatch, user_view(failed=("Entra",), discrepancies=[disc("critical")]))
    result = runner.invoke(app, ["audit", "result", AUDIT_ID, "--fail-on", "critical"])
    assert result.exit_code == 3, result.stderr
    assert json.loads(result.stdout)["discrepancy_count"] == 1
    result = runner.invoke(app, ["audit", "result", AUDIT_ID, "--format", "csv", "--require-all"])
    assert result.exit_code == 4 and result.stdout.startswith("subject,")
    use(monkeypatch, user_view(status="failed", error="no system could be read: Workday: AuthError: refused"))
    result = runner.invoke(app, ["audit", "result", AUDIT_ID])
    assert result.exit_code == 1 and result.stdout == ""
    assert last_line(result.stderr).endswith(f"audit {AUDIT_ID} failed: no system could be read: Workday: "
                                             "AuthError: refused")


@pytest.mark.parametrize(("args", "needle"), [
    (["--fail-on", "severe"], "unknown severity 'severe' for --fail-on; expected one of critical, high, medium, low"),
    (["--no-wait", "--fail-on", "high"], "need --wait"),
    (["--no-wait", "--require-all"], "need --wait"),
], ids=["unknown-severity", "fail-on-without-wait", "require-all-without-wait"])
def test_gate_usage_errors_exit_2_before_anything_is_submitted(monkeypatch: pytest.MonkeyPatch, runner: CliRunner,
                                                               args: list[str], needle: str) -> None:
    fake = use(monkeypatch, user_view())
    result = submit(runner, *args)
    assert result.exit_code == 2
    assert needle in last_line(result.stderr) and len(result.stderr.strip().splitlines()) == 1
    assert fake.submitted == []


@pytest.mark.parametrize(("outcome", "code", "status", "needle"), [
    (lost(AUDIT_ID), 1, "lost", f"audit {AUDIT_ID} was lost: its record is gone from Redis (restarted without its "
                                "data?)"),
    (WaitTimeout("still running after 1s"), 124, "timeout", "still running after 1s"),
    (KeyboardInterrupt(), 130, "interrupted", f"interrupted; audit {AUDIT_ID} keeps running"),
    (ServiceUnavailable("cannot read the audit: Redis unreachable (TimeoutError); still unreachable at the 90s "
                        "deadline"), 1, None, "still unreachable at the 90s deadline"),
], ids=["lost", "timeout", "interrupted", "unreachable-at-the-deadline"])
def test_wait_endings_have_their_own_code_and_one_line(monkeypatch: pytest.MonkeyPatch, runner: CliRunner,
                                                       outcome: BaseException, code: int, status: str | None,
                                                       needle: str) -> None:
    use(monkeypatch, outcome)
    result = submit(runner)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert last_line(result.stderr).startswith("nexus: error: ") and needle in last_line(result.stderr)
    if status is not None:
        assert json.loads(result.stdout)["status"] == status
    assert isinstance(lost(AUDIT_ID), AuditLost)


def test_exit_code_table_is_in_the_help(runner: CliRunner) -> None:
    for args in (["audit", "--help"], ["audit", "submit", "--help"], ["audit", "result", "--help"]):
        text = runner.invoke(app, args, env={"COLUMNS": "120"}).stdout
        for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "124 ", "130 "):
            assert f" {code}" in text, (args, code)
        assert "1 first, then 4, then 3" in text


# -- Redis refusing writes -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_redis() -> Iterator[str]:
    with redis_server(extra_args=("--maxmemory", "1", "--maxmemory-policy", "noeviction")) as url:
        yield url


@pytest.fixture()
def refusing(full_redis: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(full_redis)
    configured = Settings(HELIX_USERNAME="svc", HELIX_PASSWORD="pw",
                          HELIX_BASE_URL="http://127.0.0.1:9")  # one system configured: the refusal is Redis's
    previous = runtime.install(runtime.Runtime(configured, redis_client=client))
    yield client
    runtime.install(previous)
    client.close()


@pytest.mark.integration
def test_cli_submit_on_a_full_redis_says_so_in_one_line(runner: CliRunner, refusing: redis.Redis) -> None:
    result = runner.invoke(app, ["audit", "submit", "--email", "ann@corp.example", "--wait", "--json"])
    assert result.exit_code == 1, (result.stderr, result.exception)
    assert result.stderr.strip() == "nexus: error: Redis refused the write: out of memory"
    assert result.stdout == ""
    assert refusing.dbsize() == 0  # nothing half-written


@pytest.mark.integration
def test_mcp_submit_on_a_full_redis_is_a_tool_error_with_the_reason(refusing: redis.Redis) -> None:
    server = build_server(nexus_factory=lambda: Nexus(store=AuditStore(refusing, ttl_s=600),
                                                        settings=runtime.current().settings))

    async def body() -> str:
        async with Client(server) as client:
            with pytest.raises(ToolError) as caught:
                await client.call_tool("audit_user_drift", {"email": "ann@corp.example"})
            return str(caught.value)

    assert anyio.run(body) == "Redis refused the write: out of memory"
