"""With no configuration at all, `nexus health` and `nexus audit submit` say "not configured" (naming the missing
settings) instead of dialling the production vendor URLs with empty credentials, and touch no Redis at all.
A system that is not configured gets a health row saying so and is never pinged."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from nexus.errors import InvalidInput
from nexus.health import check_system_health
from nexus.settings import Settings
from nexus.systems import HEALTH_SYSTEMS, System
from nexus.testing.redis_server import redis_server_fixture

redis_url = redis_server_fixture(scope="module")

VENDOR_PREFIXES = ("NEXUS_", "WORKDAY_", "AZURE_", "GRAPH_", "AD_", "LANSWEEPER_", "HELIX_", "FEDEX_", "REDIS_",
                   "USE_MOCK", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                   "all_proxy", "no_proxy")


class CountingProxy:
    """A TCP listener standing in for an HTTPS proxy: counts the connections that try to go anywhere."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def proxy() -> Iterator[CountingProxy]:
    p = CountingProxy()
    try:
        yield p
    finally:
        p.close()


def bare_env(redis_url: str, proxy: CountingProxy) -> dict[str, str]:
    """No Nexus setting at all, except a private Redis (to prove nothing is written there) and a proxy that would
    see any HTTP(S) request to a vendor."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(VENDOR_PREFIXES)}
    env.update(REDIS_URL=redis_url, HTTPS_PROXY=f"http://127.0.0.1:{proxy.port}",
               HTTP_PROXY=f"http://127.0.0.1:{proxy.port}")
    return env


def connections_received(r: redis.Redis) -> int:
    return int(r.info("stats")["total_connections_received"])


@pytest.mark.parametrize("args", [["health"], ["health", "--json"], ["audit", "submit", "--email", "a.b@example.com"]],
                         ids=["health", "health-json", "submit"])
def test_no_configuration_says_not_configured_and_touches_nothing(
        tmp_path: Path, redis_url: str, proxy: CountingProxy, args: list[str]) -> None:
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    before = connections_received(r)
    proc = subprocess.run([sys.executable, "-m", "nexus.cli", *args], cwd=tmp_path, env=bare_env(redis_url, proxy),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("nexus: error: not configured: set "), line
    for name in ("WORKDAY_CLIENT_ID", "AZURE_CLIENT_SECRET", "AD_BIND_DN", "LANSWEEPER_TOKEN", "HELIX_USERNAME",
                 "FEDEX_CLIENT_ID"):
        assert name in line, line
    assert "nexus sim" in line
    assert proc.stdout == ""
    assert proxy.accepted == 0, "an HTTP(S) request left for a vendor"
    assert r.dbsize() == 0
    assert connections_received(r) == before, "nexus connected to Redis"  # ours is pooled: no new connection


# -- in process: a partly configured environment ----------------------------------------------------------------
def healthy_infrastructure() -> dict[str, Any]:
    return {"Redis": {"available": True, "response_time_ms": 0}, "Broker": {"available": True, "response_time_ms": 0},
            "Workers": {"available": True, "count": 1, "names": ["w1"]},
            "Queues": {"available": True, "depth": {}}}


class FakeClient:
    def health(self) -> None:
        return None


def test_unconfigured_systems_get_a_row_and_are_never_pinged() -> None:
    settings = Settings(_env_file=None, WORKDAY_BASE_URL="http://127.0.0.1:1/workday", WORKDAY_CLIENT_ID="i",
                        WORKDAY_CLIENT_SECRET="s-123456", WORKDAY_REFRESH_TOKEN="r-123456")
    pinged: list[System] = []

    def factory(system: System) -> FakeClient:
        pinged.append(system)
        return FakeClient()

    report = check_system_health(client_factory=factory, settings=settings, infrastructure=healthy_infrastructure,
                                 breaker=lambda system: {"state": "closed"})
    assert pinged == [System.WORKDAY]
    assert sorted(report["systems"]) == sorted(s.display for s in HEALTH_SYSTEMS)
    assert report["systems"]["Workday"]["available"] is True
    ad = report["systems"]["ActiveDirectory"]
    assert ad["available"] is False and ad["configured"] is False
    assert ad["error"] == "not configured: set AD_BIND_DN, AD_BIND_PASSWORD"
    assert report["summary"]["available_systems"] == 1
    assert report["summary"]["unavailable_systems"] == len(HEALTH_SYSTEMS) - 1


def test_nothing_configured_is_invalid_input_before_any_probe() -> None:
    def never(*_: object) -> Any:
        raise AssertionError("probed although nothing is configured")

    with pytest.raises(InvalidInput, match=r"^not configured: set WORKDAY_CLIENT_ID"):
        check_system_health(client_factory=never, settings=Settings(_env_file=None), infrastructure=never,
                            breaker=never)


def test_mcp_check_system_health_with_nothing_configured_is_a_tool_error() -> None:
    import anyio
    from fastmcp import Client
    from fastmcp.exceptions import ToolError

    from nexus import runtime
    from nexus.mcp.server import build_server

    empty = Settings(_env_file=None, REDIS_URL="redis://127.0.0.1:1/0")
    previous = runtime.install(runtime.Runtime(empty))

    async def body() -> None:
        async with Client(build_server(settings=empty)) as client:
            with pytest.raises(ToolError, match=r"^not configured: set WORKDAY_CLIENT_ID.*nexus sim"):
                await client.call_tool("check_system_health", {})

    try:
        anyio.run(body)
    finally:
        # put back only a runtime somebody installed: one built on demand, pinned now, would freeze its settings
        # for every later test (nexus.testing.cluster restores the same way)
        keep = previous if previous is not None and previous.pinned else None
        mine = runtime.install(keep)
        if mine is not None:
            mine.close()
        if previous is not None and keep is None:
            previous.close()


def test_an_audit_never_dials_a_system_that_is_not_configured(proxy: CountingProxy) -> None:
    """Workday configured, the rest not: an AD fetch fails at once with the settings to set; nothing is sent (the
    proxy every request would go through counts none) and the breaker does not count it."""
    import fakeredis

    from nexus import runtime
    from nexus.errors import SystemNotConfigured, counts_against_breaker, is_retryable

    settings = Settings(_env_file=None, WORKDAY_BASE_URL="http://127.0.0.1:1/workday", WORKDAY_CLIENT_ID="i",
                        WORKDAY_CLIENT_SECRET="s-123456", WORKDAY_REFRESH_TOKEN="r-123456")
    rt = runtime.Runtime(settings, redis_client=fakeredis.FakeRedis())
    try:
        assert rt.client(System.WORKDAY) is rt.client(System.WORKDAY)
        for system in System:
            if system is System.WORKDAY:
                continue
            with pytest.raises(SystemNotConfigured, match=f"^{system.display} is not configured: set ") as caught:
                rt.client(system)
            assert caught.value.system == system.value
            assert not is_retryable(caught.value) and not counts_against_breaker(caught.value)
    finally:
        rt.close()
    assert proxy.accepted == 0
