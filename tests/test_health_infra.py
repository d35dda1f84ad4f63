"""`nexus health` and MCP `check_system_health` report Nexus's own infrastructure (Redis, the broker, the workers
answering a ping, the depth of every queue) next to the systems; with Redis or the broker down the CLI exits 1 and
nothing claims 100 %."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from nexus.sim.stack import SimulatorStack
from nexus.testing.cluster import Cluster, repoint_celery_app
from nexus.testing.redis_server import free_port, redis_server_fixture
from workers.routing import ALL_QUEUES

redis_url = redis_server_fixture(scope="module")
pytestmark = pytest.mark.integration

INFRASTRUCTURE = {"Redis", "Broker", "Workers", "Queues"}


@pytest.fixture(scope="module")
def stack() -> Iterator[SimulatorStack]:
    with SimulatorStack(people=20, seed=4, port=0, ldap_mode="mock") as s:
        yield s


def sim_env(stack: SimulatorStack, redis: str) -> dict[str, str]:
    """The simulators' settings (AD excluded: an in-process directory is unreachable from the CLI process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "REDIS_", "AD_"))}
    env.update({k: v for k, v in stack.env().items() if not k.startswith("AD_")})
    env.update(REDIS_URL=redis, COLUMNS="200", NEXUS_HTTP_TIMEOUT_S="3")
    return env


def nexus(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nexus.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=90, check=False)


def test_health_with_redis_down_exits_1_and_does_not_claim_100(stack: SimulatorStack, tmp_path: Path) -> None:
    env = sim_env(stack, f"redis://127.0.0.1:{free_port()}/0")
    proc = nexus(env, "health", "--json", cwd=tmp_path)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    doc = json.loads(proc.stdout)
    infra = doc["infrastructure"]
    assert set(infra) == INFRASTRUCTURE
    assert infra["Redis"]["available"] is False and infra["Redis"]["error"]
    assert infra["Broker"]["available"] is False and infra["Broker"]["error"]
    assert doc["systems"]["Workday"]["available"] is True  # the systems themselves answer
    assert doc["summary"]["infrastructure_ok"] is False
    assert doc["summary"]["availability_percentage"] == 0
    assert "Redis" in doc["summary"]["reason"]
    table = nexus(env, "health", cwd=tmp_path)
    assert table.returncode == 1
    assert "Redis" in table.stdout and "Broker" in table.stdout


def test_health_shows_queue_depths_and_no_worker(stack: SimulatorStack, redis_url: str, tmp_path: Path) -> None:
    from kombu import Connection

    with Connection(redis_url) as conn:
        queue = conn.SimpleQueue("ad")
        for i in range(3):
            queue.put({"n": i})
        queue.close()
    proc = nexus(sim_env(stack, redis_url), "health", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    infra = json.loads(proc.stdout)["infrastructure"]
    assert infra["Redis"]["available"] is True and infra["Broker"]["available"] is True
    assert infra["Workers"] == {"available": False, "count": 0, "names": [],
                                "error": "no worker answered a ping within 1 s"}
    depth = infra["Queues"]["depth"]
    assert set(depth) == set(ALL_QUEUES)
    assert depth["ad"] == 3 and depth["workday"] == 0


def test_health_counts_the_workers_that_answer(rig: Cluster, tmp_path: Path) -> None:
    env = {**os.environ, **rig.env, "COLUMNS": "200"}
    proc = nexus(env, "health", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    workers = doc["infrastructure"]["Workers"]
    assert workers["available"] is True and workers["count"] >= 2, workers
    assert doc["summary"]["infrastructure_ok"] is True


@pytest.fixture()
def dead_redis_process(stack: SimulatorStack) -> Iterator[None]:
    """This process pointed at the simulators with Redis (stores and broker) on a closed port."""
    from nexus import runtime
    from nexus.settings import Settings, get_settings
    from workers.app import celery_app
    from workers.config import celery_config

    values: dict[str, Any] = {k: v for k, v in stack.env().items() if not k.startswith("AD_")}
    settings = Settings(_env_file=None, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", **values)
    previous = runtime.install(runtime.Runtime(settings))
    celery_app.conf.update(celery_config(settings))
    repoint_celery_app()
    try:
        yield
    finally:
        mine = runtime.install(previous)
        if mine is not None:
            mine.close()
        celery_app.conf.update(celery_config(get_settings()))
        repoint_celery_app()


def test_mcp_check_system_health_does_not_claim_100_with_redis_down(dead_redis_process: None) -> None:
    from nexus.mcp.server import build_server

    async def body() -> Any:
        async with Client(build_server()) as client:
            return (await client.call_tool("check_system_health", {})).data

    health = anyio.run(body)
    assert set(health) == {"timestamp", "systems", "infrastructure", "summary"}
    assert health["infrastructure"]["Redis"]["available"] is False
    assert health["systems"]["Workday"]["available"] is True
    assert health["summary"]["availability_percentage"] == 0
    assert health["summary"]["infrastructure_ok"] is False
