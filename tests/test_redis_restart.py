"""Redis SIGKILLed in the middle of audits, then restarted EMPTY on the same port (``--save ""``).

While Redis is down, every door (facade, CLI, MCP) gives a clear error quickly (ServiceUnavailable, exit 1,
ToolError), and a CLI already waiting on an audit keeps retrying within its ``--timeout``, then says the audit was
lost (exit 1) once Redis is back without it. Once Redis is back, new audits
complete without restarting the workers or anything else: the worker processes are the very same, they reconnected
(``broker_connection_retry``, workers/redis_recovery.py). An audit that was in flight is gone with Redis's data: it is
reported as unknown to a caller that never knew it (CLI exit 2), never waited on forever.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import fakeredis
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from nexus.audits.spec import AuditRequest, audit_id_time, new_audit_id
from nexus.audits.store import AuditStore
from nexus.errors import AuditLost, InvalidInput, ServiceUnavailable, WaitTimeout
from nexus.facade import Nexus
from nexus.testing.cluster import Cluster, repoint_celery_app
from nexus.testing.redis_server import REDIS_SERVER, free_port, wait_ready
from nexus.testing.waiting import wait_until

pytestmark = pytest.mark.integration

NEXUS = str(Path(sys.executable).parent / "nexus")
WAIT = 60.0


class RestartableRedis:
    """A redis-server on a FIXED port that a test can SIGKILL and start again (empty: no persistence)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="nexus-restart-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self._dir.name,
                "--save", "", "--appendonly", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_ready(self.proc, self.url, 10.0):
            raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        self._dir.cleanup()


@pytest.fixture(scope="module")
def restartable() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def restart_cluster(restartable: RestartableRedis) -> Iterator[Cluster]:
    with Cluster.start(people=80, seed=17, workers=2, concurrency=2, redis_url=restartable.url) as c:
        yield c


def _timed(fn: Callable[[], Any]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        fn()
    except BaseException as exc:  # the error is the result under test
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([NEXUS, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _mcp(calls: list[tuple[str, dict[str, Any]]]) -> list[str | dict[str, Any]]:
    from nexus.mcp.server import build_server

    async def main() -> list[str | dict[str, Any]]:
        out: list[str | dict[str, Any]] = []
        async with Client(build_server()) as client:
            for tool, args in calls:
                try:
                    out.append(dict((await client.call_tool(tool, args)).structured_content or {}))
                except ToolError as exc:
                    out.append(str(exc))
        return out

    return anyio.run(main)


def test_redis_restart_new_audits_work_without_restarting_workers(restartable: RestartableRedis,
                                                                   restart_cluster: Cluster) -> None:
    """The quick version (in ``make test``): killed mid-fetch, clear errors while down, new audits once back."""
    from typer.testing import CliRunner

    from nexus.cli import app

    c = restart_cluster
    nx = c.nexus()
    assert c.stack.org is not None
    people = [w.email for w in c.stack.org.workday[20:24]]
    worker_pids = sorted(w.proc.pid for w in c.workers)
    assert nx.wait(nx.submit(nx.request_for(email=people[0])), timeout=WAIT)["status"] == "done"
    c.fault("entra", "slow", delay_ms=1500)
    audit_id = nx.submit(nx.request_for(email=people[1]))
    wait_until(lambda: nx.get(audit_id)["progress"]["systems"].get("entra", {}).get("status") == "running", 10.0,
               what="fetch_entra to be running")
    restartable.kill()
    try:
        # A wait rides out the outage until its deadline (not longer), then says Redis is unreachable.
        error, elapsed = _timed(lambda: nx.wait(audit_id, timeout=2))
        assert isinstance(error, ServiceUnavailable) and "still unreachable at the 2s deadline" in str(error), error
        assert 2.0 <= elapsed < 3.5, elapsed
        for args in (["audit", "submit", "--email", people[2], "--wait", "--timeout", "5"],
                     ["audit", "status", audit_id]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 1 and "Redis unreachable" in result.output, result.output
    finally:
        c.clear_faults()
        restartable.start()
    # Back without its data: the audit this caller submitted is lost (exit 1), not "unknown" (bad input, exit 2).
    error, _ = _timed(lambda: nx.wait(audit_id, timeout=5, submitted=True))
    assert isinstance(error, AuditLost) and "was lost: its record is gone from Redis" in str(error), error
    view = nx.wait(nx.submit(nx.request_for(email=people[3])), timeout=WAIT)
    assert view["status"] == "done" and view["report"]["systems_failed"] == [], view
    assert sorted(w.proc.pid for w in c.workers) == worker_pids and all(w.proc.poll() is None for w in c.workers)
    assert "Unrecoverable error" not in c.worker_logs()


@pytest.mark.drill
def test_redis_killed_mid_audit_then_restarted_empty(restartable: RestartableRedis,
                                                      restart_cluster: Cluster) -> None:
    """Every door (facade, CLI subprocesses, MCP), a CLI already waiting, the lost audits and their leftovers."""
    c = restart_cluster
    env = {**os.environ, **c.env}
    nx = c.nexus()
    assert c.stack.org is not None
    people = [w.email for w in c.stack.org.workday[:12]]
    worker_pids = sorted(w.proc.pid for w in c.workers)
    assert nx.wait(nx.submit(nx.request_for(email=people[0])), timeout=WAIT)["status"] == "done"

    # Audits in flight: Entra answers after 2 s, so fetches are running when Redis dies.
    c.fault("entra", "slow", delay_ms=2000)
    in_flight = [nx.submit(nx.request_for(emails=people[1:11])), nx.submit(nx.request_for(email=people[11]))]
    waiting = _cli(["audit", "submit", "--email", people[0], "--wait", "--timeout", "30", "--json"], env)
    assert waiting.stderr is not None
    assert "submitted" in waiting.stderr.readline()
    wait_until(lambda: any(s.get("status") == "running" for s in nx.get(in_flight[0])["progress"]["systems"].values()),
               10.0, what="fetches to be running")

    restartable.kill()
    killed_at = time.monotonic()

    # Every door, while Redis is down: a clear error, fast, never a hang.
    for call in (lambda: nx.submit(nx.request_for(email=people[0])), lambda: nx.get(in_flight[0]),
                 lambda: nx.wait(in_flight[1], timeout=3), lambda: nx.list(5)):
        error, elapsed = _timed(call)
        assert isinstance(error, ServiceUnavailable) and "Redis unreachable" in str(error), error
        assert elapsed < 3.0 + 1.5, elapsed  # wait retries the reads until its 3 s deadline, then says why
    submit_cli = _cli(["audit", "submit", "--email", people[0], "--wait", "--timeout", "5"], env)
    status_cli = _cli(["audit", "status", in_flight[0]], env)
    started = time.monotonic()
    for proc in (submit_cli, status_cli):
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 1, err
        assert err.startswith("nexus: error: ") and "Redis unreachable" in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - started < 5.0 + 5.0  # within its --timeout (plus an interpreter start)
    for answer in _mcp([("audit_user_drift", {"email": people[0]}), ("get_audit", {"audit_id": in_flight[0]})]):
        assert isinstance(answer, str) and answer.startswith("Nexus is unavailable"), answer

    # Back, on the same port, with nothing in it.
    c.clear_faults()
    restartable.start()
    outage = time.monotonic() - killed_at

    # The CLI that was waiting rode out the outage (its --timeout is 30 s) and now says its audit was lost: exit 1,
    # not "unknown or expired" (exit 2, bad input): it submitted that audit itself.
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 1, (out, err)
    assert "Redis unreachable" in err and "retrying until the 30s --timeout" in err  # said once, while it retried
    assert err.strip().splitlines()[-1].endswith("was lost: its record is gone from Redis (restarted without its "
                                                 "data?)"), err
    assert json.loads(out)["status"] == "lost"

    # New audits complete without restarting anything: the same worker processes reconnected.
    started = time.monotonic()
    view = nx.wait(nx.submit(nx.request_for(email=people[2])), timeout=WAIT)
    recovered_in = time.monotonic() - started
    assert view["status"] == "done" and view["report"]["systems_failed"] == [], view
    print(f"outage {outage:.1f}s; first audit after the restart done in {recovered_in:.1f}s")
    done = _cli(["audit", "submit", "--email", people[3], "--wait", "--timeout", "60", "--json"], env)
    lost = _cli(["audit", "status", in_flight[0]], env)
    (answer,) = _mcp([("audit_user_drift", {"email": people[4], "wait_s": 30})])
    assert isinstance(answer, dict) and answer["status"] == "done", answer
    out, err = done.communicate(timeout=90)
    assert done.returncode == 0, err[-2000:]
    assert json.loads(out)["status"] == "done"
    assert sorted(w.proc.pid for w in c.workers) == worker_pids
    assert all(w.proc.poll() is None for w in c.workers)
    repoint_celery_app()  # this process's pooled broker connections predate the restart
    c.wait_ready(len(c.workers), timeout=10.0)  # both workers answer on the broker again

    # The audits that were in flight went with Redis's data: reported as lost (their ids are older than Redis's
    # audit data), never waited on, and never "unknown" (bad input); an id that never existed still is.
    for audit_id in in_flight:
        error, elapsed = _timed(functools.partial(nx.wait, audit_id, timeout=5))
        assert isinstance(error, AuditLost) and "was lost" in str(error) and elapsed < 1.0, error
    _, err = lost.communicate(timeout=30)
    assert lost.returncode == 1 and "was lost" in err, err
    error, _ = _timed(functools.partial(nx.get, new_audit_id()))
    assert isinstance(error, InvalidInput) and "no audit with id" in str(error)

    logs = c.worker_logs()
    assert "Connection to broker lost" in logs
    assert "Unrecoverable error" not in logs, logs[-3000:]
    # Nothing that finished late resurrected a lost audit as a half-written record.
    r = c.redis()
    for audit_id in in_flight:
        meta = r.hgetall(f"nexus:audit:{audit_id}")
        assert not meta or b"status" in meta, meta
        leftovers = {key.decode(): r.ttl(key) for key in r.scan_iter(f"nexus:audit:{audit_id}*")}
        assert all(ttl > 0 for ttl in leftovers.values()), f"keys without expiry: {leftovers}"


# -- the facade's part, without servers --------------------------------------------------------------------------------

def _fake_store() -> AuditStore:
    return AuditStore(fakeredis.FakeRedis(), ttl_s=600)


def test_wait_on_an_audit_that_disappears_is_audit_lost_not_bad_input() -> None:
    store = _fake_store()
    nx = Nexus(store=store)
    request = AuditRequest.user("gone@corp.example")
    store.create(request)
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s
        if now[0] > 1.0:
            store.r.flushall()  # what a Redis restart without persistence does

    with pytest.raises(AuditLost, match="was lost: its record is gone from Redis"):
        nx.wait(request.audit_id, timeout=10, clock=lambda: now[0], sleep=sleep)
    assert now[0] < 2.0
    assert issubclass(AuditLost, ServiceUnavailable)  # the CLI's exit 1, MCP's "unavailable"
    with pytest.raises(InvalidInput, match="no audit with id"):  # never existed: the caller's input
        nx.wait("0" * 32, timeout=10, clock=lambda: now[0], sleep=sleep)


def test_wait_never_passes_its_deadline() -> None:
    store = _fake_store()
    nx = Nexus(store=store)
    request = AuditRequest.user("slow@corp.example")
    store.create(request)
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    with pytest.raises(WaitTimeout):
        nx.wait(request.audit_id, timeout=2.5, poll_s=0.7, clock=lambda: now[0], sleep=sleep)
    assert now[0] == pytest.approx(2.5)
    assert max(slept) <= 0.7


@contextlib.contextmanager
def _no_redis() -> Iterator[str]:
    """A URL where nothing listens."""
    yield f"redis://127.0.0.1:{free_port()}/0"


def test_no_redis_at_all_is_service_unavailable_at_once() -> None:
    import redis

    with _no_redis() as url:
        store = AuditStore(redis.Redis.from_url(url, socket_connect_timeout=1), ttl_s=600)
        nx = Nexus(store=store)
        for call in (lambda: nx.submit(nx.request_for(email="a@corp.example")), lambda: nx.get("0" * 32),
                     lambda: nx.list(5)):
            error, elapsed = _timed(call)
            assert isinstance(error, ServiceUnavailable), error
            assert elapsed < 2.0


def test_late_task_writes_never_resurrect_a_lost_audit() -> None:
    """What a fetch or compare task finishing after an empty restart does: nothing (and no key without expiry)."""
    store = _fake_store()
    request = AuditRequest.bulk(["a@corp.example", "b@corp.example"], 10)
    store.create(request)
    store.set_system_progress(request.audit_id, "entra", {"status": "running"})
    assert store.save_part(request.audit_id, 0, [{"email": "a@corp.example"}], done_increment=1) is True
    store.r.flushall()
    store.set_system_progress(request.audit_id, "entra", {"status": "ok"})
    assert store.save_part(request.audit_id, 1, [{"email": "b@corp.example"}], done_increment=1) is False
    assert list(store.r.scan_iter("nexus:audit:*")) == []
    store.r.hset(store.key(request.audit_id), "updated_at", 1.0)  # a fragment, as an older version could leave
    with pytest.raises(AuditLost, match="was lost"):  # a fragment is no audit: lost with Redis's data
        Nexus(store=store).get(request.audit_id)


def test_ids_are_time_ordered_and_carry_their_creation_time() -> None:
    first, second = new_audit_id(1_767_225_600.0), new_audit_id(1_767_225_600.5)
    assert len(first) == 32 and first < second and int(first, 16) and first != new_audit_id(1_767_225_600.0)
    assert audit_id_time(first, now=1_767_225_601.0) == 1_767_225_600.0
    assert audit_id_time("0" * 32) is None  # before any Nexus id: made up
    assert audit_id_time("f" * 32) is None  # in the future: made up
    assert audit_id_time("not an id") is None


def test_status_of_an_audit_redis_lost_is_lost_and_of_one_never_made_unknown() -> None:
    """No wait involved: ``nexus audit status ID`` and MCP ``get_audit`` read through ``get``."""
    server = fakeredis.FakeServer()
    clock = [1_767_225_600.0]
    store = AuditStore(fakeredis.FakeRedis(server=server), ttl_s=600, clock=lambda: clock[0])
    nx = Nexus(store=store)
    before = AuditRequest.user("gone@corp.example")
    before.audit_id = new_audit_id(clock[0])
    store.create(before)
    assert nx.get(before.audit_id)["status"] == "queued"
    fakeredis.FakeRedis(server=server).flushall()  # Redis restarted empty
    clock[0] += 5
    with pytest.raises(AuditLost, match="was lost"):
        nx.get(before.audit_id)  # nothing at all in Redis, and the id is younger than the TTL
    after = AuditRequest.user("new@corp.example")
    after.audit_id = new_audit_id(clock[0])
    store.create(after)  # Redis's audit data begins now
    with pytest.raises(AuditLost):
        nx.get(before.audit_id)
    for never in (new_audit_id(clock[0] + 1), "0123456789abcdef0123456789abcdef"):
        with pytest.raises(InvalidInput, match="unknown or expired"):
            nx.get(never)
    clock[0] += 601
    with pytest.raises(InvalidInput, match="unknown or expired"):
        nx.get(before.audit_id)  # past the TTL it would have expired anyway
