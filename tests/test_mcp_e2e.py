"""The MCP server end to end, as an assistant would use it: ``nexus mcp`` as a subprocess, driven by the official
``mcp`` SDK client over stdio and over streamable HTTP (bearer token), against real Redis, real Celery worker
processes and every simulator (the ``rig`` fixture).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from nexus.testing.cluster import ROOT, Cluster
from nexus.testing.redis_server import free_port
from tests._mcp_fixtures import (
    TOOL_NAMES,
    USER_REPORT_KEYS,
    VIEW_KEYS,
    assert_input_schemas,
    discrepancy_keys,
    drifted_person,
    truth_keys,
)

pytestmark = pytest.mark.integration

NEXUS_MCP = [sys.executable, "-m", "nexus.cli", "mcp"]
POLL_TIMEOUT = 30.0
TOKEN = "e2e-" + "7f3a9c" * 6


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict)
    assert json.loads(result.content[0].text) == data
    return data


async def poll(session: ClientSession, audit_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        view = structured(await session.call_tool("get_audit", {"audit_id": audit_id}))
        if view["finished"]:
            return view
        assert time.monotonic() < deadline, view
        await anyio.sleep(0.1)


async def exercise(session: ClientSession, rig: Cluster, max_emails: int) -> str:
    """What an assistant does: list tools, enqueue, poll to completion, read the report, make a mistake."""
    await session.initialize()
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == TOOL_NAMES
    assert_input_schemas({name: t.input_schema for name, t in tools.items()}, max_emails)

    subject = drifted_person(rig.truth)
    queued = structured(await session.call_tool("audit_user_drift", {"email": subject}))
    assert set(queued) == VIEW_KEYS and queued["kind"] == "user"
    view = await poll(session, queued["audit_id"])
    assert view["status"] == "done", view
    report = view["report"]
    assert set(report) >= USER_REPORT_KEYS and report["systems_failed"] == []
    assert discrepancy_keys(report, subject) == truth_keys(rig.truth, subject)

    listed = structured(await session.call_tool("list_audits", {"limit": 5}))
    assert queued["audit_id"] in {a["audit_id"] for a in listed["audits"]}

    bad = await session.call_tool("audit_user_drift", {"email": "*)(mail=*"})
    assert bad.is_error
    message = bad.content[0].text  # type: ignore[union-attr]
    assert "is not a valid email address" in message and "\n" not in message
    return str(queued["audit_id"])


def test_stdio_server_with_the_official_sdk_client(rig: Cluster) -> None:
    before = len(rig.nexus().list(1000))
    with tempfile.TemporaryDirectory(prefix="nexus-mcp-") as tmp:
        errlog_path = Path(tmp) / "stderr.log"
        params = StdioServerParameters(command=NEXUS_MCP[0], args=NEXUS_MCP[1:], cwd=str(ROOT),
                                       env={**rig.env, "PYTHONUNBUFFERED": "1"})

        async def body() -> str:
            with open(errlog_path, "w") as errlog:
                async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                    return await exercise(session, rig, max_emails=100_000)

        audit_id = anyio.run(body)
        stderr = errlog_path.read_text()
    # Logs went to stderr (stdout carried only the protocol, or the session above would have broken).
    assert "serving on stdio" in stderr and "enqueued a user audit" in stderr, stderr[-2000:]
    assert len(rig.nexus().list(1000)) == before + 1  # the bad input enqueued nothing
    assert rig.nexus().get(audit_id)["status"] == "done"


@contextlib.contextmanager
def http_server(rig: Cluster, port: int, token: str) -> Iterator[Path]:
    """``nexus mcp --transport http`` in its own process group; yields its log (stdout and stderr apart)."""
    with tempfile.TemporaryDirectory(prefix="nexus-mcp-http-") as tmp:
        out, err = Path(tmp) / "stdout.log", Path(tmp) / "stderr.log"
        env = {**os.environ, **rig.env, "NEXUS_MCP_TOKEN": token, "PYTHONUNBUFFERED": "1"}
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen([*NEXUS_MCP, "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
                                    cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None, err.read_text()
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                assert time.monotonic() < deadline, err.read_text()
                time.sleep(0.05)
            yield err
            assert out.read_text() == "", "nothing but the protocol may reach stdout"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "e2e", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_http_server_requires_the_bearer_token(rig: Cluster) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with http_server(rig, port, TOKEN) as stderr_log:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Bearer {TOKEN}x"},
                        {"Authorization": f"Basic {TOKEN}"}):
            response = httpx.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10)
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")

        async def body() -> str:
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http, \
                    streamable_http_client(url, http_client=http) as (read, write), \
                    ClientSession(read, write) as session:
                return await exercise(session, rig, max_emails=100_000)

        audit_id = anyio.run(body)
        assert "bearer token required" in stderr_log.read_text()
    assert rig.nexus().get(audit_id)["status"] == "done"
