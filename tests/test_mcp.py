"""The MCP server in process: ``fastmcp.Client(server)`` against the embedded pipeline (every simulator on loopback,
the real Celery tasks on an in-thread worker, fakeredis). Pins the tool surface, runs audits to completion through
the tools, and checks that every bad input is a one-line ToolError that enqueues nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
import httpx
import pytest
import redis
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from nexus.audits.store import AuditStore
from nexus.facade import Nexus
from nexus.mcp.auth import AnyOfVerifier, SharedTokenVerifier, build_verifier, warn_if_exposed
from nexus.mcp.schema import trim_report
from nexus.mcp.server import build_server
from nexus.settings import Settings
from nexus.sim.stack import SimulatorStack
from nexus.testing.clock import FakeClock
from nexus.testing.redis_server import free_port
from tests._mcp_fixtures import (
    BAD_INPUTS,
    DEVICE_REPORT_KEYS,
    USER_REPORT_KEYS,
    VIEW_KEYS,
    assert_input_schemas,
    discrepancy_keys,
    drifted_device,
    drifted_person,
    patched_env,
    truth_keys,
)

T = TypeVar("T")

MAX_EMAILS = 5
FAST_ENV = {
    "NEXUS_RETRY_BACKOFF_BASE_S": "0.1",
    "NEXUS_RETRY_BACKOFF_MAX_S": "1",
    "NEXUS_BREAKER_RESET_TIMEOUT_S": "2",
    "NEXUS_HTTP_TIMEOUT_S": "3",
    "NEXUS_BULK_CHUNK_SIZE": "2",
    "NEXUS_BULK_MAX_EMAILS": str(MAX_EMAILS),
}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
POLL_TIMEOUT = 30.0


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[SimulatorStack]:
    from workers.embedded import embedded_worker

    with SimulatorStack(people=60, seed=5, port=0) as stack, patched_env({**stack.env(), **FAST_ENV}), \
            embedded_worker(concurrency=4):
        yield stack


@pytest.fixture()
def server(pipeline: SimulatorStack) -> FastMCP:
    return build_server()


def truth(stack: SimulatorStack) -> dict[str, Any]:
    assert stack.org is not None
    return stack.org.truth


async def call(client: Client, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call a tool; its structured content, checked against the text content (the same JSON)."""
    result = await client.call_tool(tool, args or {})
    assert not result.is_error
    data = result.structured_content
    assert isinstance(data, dict)
    assert json.loads(result.content[0].text) == data  # type: ignore[union-attr]
    return data


async def poll(client: Client, audit_id: str, timeout: float = POLL_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = await call(client, "get_audit", {"audit_id": audit_id})
        if view["finished"]:
            return view
        assert time.monotonic() < deadline, f"audit not finished after {timeout}s: {view}"
        await anyio.sleep(0.1)


def audit_count() -> int:
    return len(Nexus().list(1000))


def requests_total(stack: SimulatorStack) -> int:
    return sum(v["total"] for v in httpx.get(f"{stack.url}/_sim/requests").json().values())


# -- the tool surface ------------------------------------------------------------------------------------------------
def test_tools_are_listed_with_pinned_input_and_output_schemas(server: FastMCP) -> None:
    async def body() -> None:
        async with Client(server) as client:
            tools = {t.name: t for t in await client.list_tools()}
        assert_input_schemas({name: t.input_schema for name, t in tools.items()}, MAX_EMAILS)
        for name in ("audit_user_drift", "audit_device_drift", "audit_bulk_user_drift", "audit_fleet_drift",
                     "get_audit"):
            schema = tools[name].output_schema
            assert schema is not None and set(schema["properties"]) == VIEW_KEYS, name
        for name in ("audit_user_drift", "audit_device_drift", "audit_bulk_user_drift", "audit_fleet_drift"):
            description = tools[name].description or ""
            assert "get_audit" in description and "wait_s" in description, name
            assert tools[name].annotations is not None and tools[name].annotations.read_only_hint is False
        assert tools["get_audit"].annotations.read_only_hint is True
        fleet = tools["audit_fleet_drift"].description or ""
        assert all(kind in fleet for kind in ("orphaned", "ambiguous", "dormant", "unmanaged", "unregistered"))
        assert set(tools["list_audits"].output_schema["properties"]) == {"audits", "count"}

    run(body)


# -- audits through the tools ----------------------------------------------------------------------------------------
def test_user_audit_enqueues_then_polls_to_a_report_matching_the_truth(pipeline: SimulatorStack,
                                                                        server: FastMCP) -> None:
    subject = drifted_person(truth(pipeline))

    async def body() -> None:
        async with Client(server) as client:
            queued = await call(client, "audit_user_drift", {"email": subject})
            assert set(queued) == VIEW_KEYS
            assert HEX32.match(queued["audit_id"])
            assert queued["kind"] == "user" and queued["status"] in ("queued", "running", "done")
            if not queued["finished"]:
                assert queued["report"] is None
                assert f'get_audit(audit_id="{queued["audit_id"]}")' in queued["next_step"]
            view = await poll(client, queued["audit_id"])
        assert view["status"] == "done", view
        report = view["report"]
        assert set(report) >= USER_REPORT_KEYS
        assert report["email"] == subject
        assert report["systems_checked"] == ["Workday", "ActiveDirectory", "Entra"]
        assert report["systems_failed"] == [] and report["workday_found"] is True
        assert discrepancy_keys(report, subject) == truth_keys(truth(pipeline), subject)
        assert report["discrepancy_count"] == len(report["discrepancies"]) > 0
        assert view["progress"]["total"] == 1 and view["progress"]["done"] == 1
        assert view["created_at"].endswith("Z") and view["omitted"] == {}

    run(body)


def test_short_wait_returns_the_report_in_one_call(pipeline: SimulatorStack, server: FastMCP) -> None:
    subject = drifted_person(truth(pipeline), field="department")

    async def body() -> None:
        async with Client(server) as client:
            view = await call(client, "audit_user_drift", {"email": f"  {subject.upper()}  ", "wait_s": 25})
        assert view["finished"] is True and view["status"] == "done", view
        assert view["report"]["discrepancy_count"] >= 1
        assert "report" in view["next_step"]

    run(body)


def test_device_audit_report_shape_and_truth(pipeline: SimulatorStack, server: FastMCP) -> None:
    serial = drifted_device(truth(pipeline))

    async def body() -> None:
        async with Client(server) as client:
            view = await call(client, "audit_device_drift", {"serial": serial, "wait_s": 25})
        assert view["status"] == "done" and view["kind"] == "device", view
        report = view["report"]
        assert set(report) >= DEVICE_REPORT_KEYS
        assert report["serial"] == serial and report["systems_failed"] == []
        assert discrepancy_keys(report, serial) == truth_keys(truth(pipeline), serial, person=False)

    run(body)


def test_bulk_audit_reports_everyone_and_get_audit_trims_entries(pipeline: SimulatorStack, server: FastMCP) -> None:
    t = truth(pipeline)
    assert pipeline.org is not None
    drifted = drifted_person(t)
    clean = sorted({w.email for w in pipeline.org.workday} - {e["subject"] for e in t["drift"]})[:3]
    emails = [*clean, drifted, drifted.upper()]  # the duplicate is audited once

    async def body() -> None:
        async with Client(server) as client:
            queued = await call(client, "audit_bulk_user_drift", {"emails": emails})
            assert queued["kind"] == "bulk" and queued["progress"]["total"] == 4
            full = await poll(client, queued["audit_id"])
            trimmed = await call(client, "get_audit", {"audit_id": queued["audit_id"], "max_entries": 1})
        assert full["status"] == "done", full
        report = full["report"]
        assert report["people"] == 4 and len(report["entries"]) == 4 and full["omitted"] == {}
        assert report["people_with_drift"] >= 1 and report["systems_failed"] == []
        assert trimmed["omitted"] == {"entries": 3} and len(trimmed["report"]["entries"]) == 1
        assert trimmed["report"]["entries"][0]["email"].lower() == drifted.lower()  # drift first
        assert trimmed["report"]["summary"] == report["summary"]
        assert "3 entries left out" in trimmed["next_step"]

    run(body)


def test_fleet_audit_runs_to_a_report_and_is_listed(pipeline: SimulatorStack, server: FastMCP) -> None:
    async def body() -> None:
        async with Client(server) as client:
            queued = await call(client, "audit_fleet_drift")
            assert queued["kind"] == "fleet" and HEX32.match(queued["audit_id"])
            listed = await call(client, "list_audits", {"limit": 3})
            view = await poll(client, queued["audit_id"].upper())
            trimmed = await call(client, "get_audit", {"audit_id": queued["audit_id"], "max_entries": 2})
        assert listed["count"] == len(listed["audits"]) <= 3
        assert listed["audits"][0]["audit_id"] == queued["audit_id"]  # newest first
        assert set(listed["audits"][0]) == {"audit_id", "kind", "status", "description", "created_at", "updated_at"}
        assert view["audit_id"] == queued["audit_id"] and set(view) == VIEW_KEYS
        assert view["status"] == "done", view
        report = view["report"]
        assert report["systems_failed"] == [] and report["discrepancy_count"] == len(report["discrepancies"]) > 2
        assert len(trimmed["report"]["discrepancies"]) == 2
        assert trimmed["omitted"]["discrepancies"] == report["discrepancy_count"] - 2
        assert trimmed["report"]["discrepancy_count"] == report["discrepancy_count"]

    run(body)


def test_check_system_health_reports_every_system(pipeline: SimulatorStack, server: FastMCP) -> None:
    async def body() -> dict[str, Any]:
        async with Client(server) as client:
            return await call(client, "check_system_health")

    health = run(body)
    assert set(health) == {"timestamp", "systems", "infrastructure", "summary"}
    assert health["summary"]["availability_percentage"] == 100
    assert health["summary"]["total_systems"] == len(health["systems"]) >= 6
    assert all(s["available"] and "breaker" in s for s in health["systems"].values())


# -- bad input -------------------------------------------------------------------------------------------------------
MORE_BAD_INPUTS = [
    ("audit_bulk_user_drift", {"emails": [f"p{i}@corp.example" for i in range(MAX_EMAILS + 1)]},
     f"the limit is {MAX_EMAILS}"),
    ("get_audit", {"audit_id": uuid.uuid4().hex}, "no audit with id"),  # well-formed, unknown
]


@pytest.mark.parametrize(("tool", "args", "fragment"), [*BAD_INPUTS, *MORE_BAD_INPUTS],
                         ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None)
def test_bad_input_is_a_one_line_tool_error_and_enqueues_nothing(
    pipeline: SimulatorStack, server: FastMCP, tool: str, args: dict[str, Any], fragment: str
) -> None:
    before_audits, before_requests = audit_count(), requests_total(pipeline)

    async def body() -> None:
        async with Client(server) as client:
            with pytest.raises(ToolError) as caught:
                await client.call_tool(tool, args)
        message = str(caught.value)
        assert fragment in message, message
        assert "\n" not in message and len(message) <= 300
        assert "validation error" not in message and "pydantic" not in message

    run(body)
    assert audit_count() == before_audits
    assert requests_total(pipeline) == before_requests


# -- failures of the backend -----------------------------------------------------------------------------------------
def test_redis_unreachable_is_a_clear_tool_error() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5,
                       retry=Retry(NoBackoff(), 0))  # refuse at once (the default client retries with backoff)
    configured = Settings(HELIX_USERNAME="svc", HELIX_PASSWORD="pw",
                          HELIX_BASE_URL="http://127.0.0.1:9")  # one system configured: Redis is what is missing
    server = build_server(nexus_factory=lambda: Nexus(store=AuditStore(dead), settings=configured))

    async def body() -> list[str]:
        messages = []
        async with Client(server) as client:
            for tool, args in (("audit_user_drift", {"email": "a@corp.example"}),
                               ("get_audit", {"audit_id": uuid.uuid4().hex}), ("list_audits", {})):
                with pytest.raises(ToolError) as caught:
                    await client.call_tool(tool, args)
                messages.append(str(caught.value))
        return messages

    for message in run(body):
        assert message.startswith("Nexus is unavailable:") and "Redis unreachable" in message, message
        assert "\n" not in message


class _StuckNexus:
    """A facade whose audit never finishes (and whose reads can blow up): for the wait and masking tests."""

    def __init__(self, explode: bool = False) -> None:
        self.gets = 0
        self.explode = explode

    def request_for(self, **subject: Any) -> Any:
        return Nexus.request_for(self, **subject)  # type: ignore[arg-type]

    @property
    def settings(self) -> Settings:
        return Settings()

    def submit(self, request: Any) -> str:
        return str(request.audit_id)

    def get(self, audit_id: str, include_report: bool = True) -> dict[str, Any]:
        self.gets += 1
        if self.explode:
            raise RuntimeError("redis://:hunter2@10.0.0.5:6379 exploded")
        return {"audit_id": audit_id, "kind": "user", "status": "running", "description": "user audit",
                "created_at": 0.0, "updated_at": 0.0, "progress": {"total": 1, "done": 0, "systems": {}}}


def test_short_wait_is_bounded_and_never_sleeps_for_real() -> None:
    clock = FakeClock(0.0)
    slept = clock.slept
    stuck = _StuckNexus()
    server = build_server(nexus_factory=lambda: stuck, clock=clock, sleep=clock.asleep,  # type: ignore[arg-type,return-value]
                          poll_s=0.25)

    async def body() -> dict[str, Any]:
        async with Client(server) as client:
            return await call(client, "audit_user_drift", {"email": "a@corp.example", "wait_s": 2})

    started = time.monotonic()
    view = run(body)
    assert time.monotonic() - started < 5
    assert view["status"] == "running" and view["finished"] is False and view["report"] is None
    assert sum(slept) == pytest.approx(2.0) and max(slept) <= 0.25
    assert stuck.gets == len(slept) + 1


def test_internal_errors_are_masked() -> None:
    server = build_server(nexus_factory=lambda: _StuckNexus(explode=True))  # type: ignore[arg-type,return-value]

    async def body() -> str:
        async with Client(server) as client:
            with pytest.raises(ToolError) as caught:
                await client.call_tool("get_audit", {"audit_id": uuid.uuid4().hex})
        return str(caught.value)

    message = run(body)
    assert "hunter2" not in message and "get_audit" in message


def test_trim_report_keeps_what_matters_first_in_order() -> None:
    entries: list[dict[str, Any]] = [
        {"email": f"p{i}", "discrepancy_count": 1 if i in (3, 1) else 0, "discrepancies": []} for i in range(5)]
    severities = ["low", "critical", "medium", "high", "critical"]
    discrepancies = [{"field": f"f{i}", "severity": sev} for i, sev in enumerate(severities)]
    report: dict[str, Any] = {"people": 5, "entries": entries, "discrepancies": discrepancies,
              "systems_checked": ["A", "B", "C", "D"]}
    trimmed, omitted = trim_report(report, 3)
    assert omitted == {"entries": 2, "discrepancies": 2}
    assert [e["email"] for e in trimmed["entries"]] == ["p0", "p1", "p3"]
    assert [d["field"] for d in trimmed["discrepancies"]] == ["f1", "f3", "f4"]
    assert trimmed["people"] == 5 and trimmed["systems_checked"] == ["A", "B", "C", "D"]  # names: never cut
    assert len(report["entries"]) == 5  # the original is left alone
    assert trim_report(report, 5) == (report, {})
    assert trim_report({"email": "a"}, 0) == ({"email": "a"}, {})


# -- HTTP authentication (unit level; the end-to-end HTTP test is in test_mcp_e2e.py) --------------------------------
def test_shared_token_verifier_accepts_only_the_token() -> None:
    verifier = SharedTokenVerifier("s3cret-token")

    async def body() -> list[bool]:
        return [await verifier.verify_token(t) is not None for t in ("s3cret-token", "s3cret-tokeN", "", "s3cret")]

    assert run(body) == [True, False, False, False]
    with pytest.raises(ValueError):
        SharedTokenVerifier("")


def test_build_verifier_from_settings_token_and_jwt() -> None:
    from fastmcp.server.auth.providers.jwt import RSAKeyPair

    assert build_verifier(Settings(NEXUS_MCP_TOKEN="")) is None
    assert isinstance(build_verifier(Settings(NEXUS_MCP_TOKEN="abc123")), SharedTokenVerifier)
    keys = RSAKeyPair.generate()
    verifier = build_verifier(Settings(NEXUS_MCP_TOKEN="abc123", NEXUS_MCP_JWT_PUBLIC_KEY=keys.public_key,
                                       NEXUS_MCP_JWT_ISSUER="https://idp.corp.example",
                                       NEXUS_MCP_JWT_AUDIENCE="nexus"))
    assert isinstance(verifier, AnyOfVerifier)
    good = keys.create_token(issuer="https://idp.corp.example", audience="nexus")
    wrong_audience = keys.create_token(issuer="https://idp.corp.example", audience="other")

    async def body() -> list[bool]:
        return [await verifier.verify_token(t) is not None for t in (good, wrong_audience, "abc123", "nope")]

    assert run(body) == [True, False, True, False]


def test_serving_a_public_address_without_auth_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="nexus.mcp"):
        assert warn_if_exposed("0.0.0.0", None) is True
        assert warn_if_exposed("127.0.0.1", None) is False
        assert warn_if_exposed("0.0.0.0", SharedTokenVerifier("t0ken1")) is False
    assert len(caplog.records) == 1 and "WITHOUT authentication" in caplog.records[0].getMessage()
