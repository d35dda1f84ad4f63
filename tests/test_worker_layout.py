"""The default worker layout gives every system queue a consumer of its own (issue 10, item 7).

A slow system fills the pool of every worker that consumes its queue; with ``nexus worker`` on every queue (the old
default) a slow Workday held AD and Entra results. Checked here: the layout itself, the supervisor that runs it
(restarts, usage errors, stop), and a real ``nexus worker`` whose started workers are asked for their queues
(``celery inspect active_queues``). The latency effect is measured by benchmarks/bench_isolation.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus.testing.clock import FakeClock
from nexus.testing.procs import alive, children_of
from nexus.testing.redis_server import redis_server
from nexus.testing.supervisor_rig import FakeProc, SupervisorRig
from workers.routing import ALL_QUEUES, SYSTEM_QUEUES, default_layout
from workers.supervisor import Supervisor, child_hostname

ROOT = Path(__file__).resolve().parents[1]


def test_default_layout_gives_each_system_queue_its_own_worker() -> None:
    groups = default_layout()
    consumed = [q for g in groups for q in g.queues]
    assert sorted(consumed) == sorted(ALL_QUEUES)  # every queue, each once
    for queue in SYSTEM_QUEUES:
        (group,) = [g for g in groups if queue in g.queues]
        assert group.queues == (queue,), group
    assert len({g.name for g in groups}) == len(groups)


def test_child_hostnames() -> None:
    assert child_hostname("", "workday") == "workday@%h"
    assert child_hostname("w1@%h", "ad") == "w1-ad@%h"
    assert child_hostname("w1", "ad") == "w1-ad"


def _supervisor(names: list[str]) -> tuple[Supervisor, list[FakeProc], FakeClock]:
    rig = SupervisorRig(names).start_all()
    return rig.sup, rig.spawned, rig.clock


def test_supervisor_restarts_a_dead_worker_with_a_growing_delay() -> None:
    sup, spawned, clock = _supervisor(["workday", "ad"])
    spawned[0].returncode = 1  # workday's worker dies
    assert sup.step() and len(spawned) == 2  # not at once
    clock.advance(1.0)
    assert sup.step() and len(spawned) == 3 and sup.children[0].proc is spawned[2]
    spawned[2].returncode = 1  # dies again soon after its start: the next delay is longer
    sup.step()
    clock.advance(1.0)
    sup.step()
    assert len(spawned) == 3
    clock.advance(1.0)
    sup.step()
    assert len(spawned) == 4 and sup.children[1].proc is spawned[1]  # ad's worker untouched


def test_supervisor_stops_the_group_on_a_usage_error_and_on_a_signal() -> None:
    sup, spawned, _ = _supervisor(["workday", "ad"])
    spawned[0].returncode = 2
    assert not sup.step()
    assert sup.exit_code == 2 and spawned[1].signals == [signal.SIGTERM]
    sup, spawned, _ = _supervisor(["workday", "ad"])
    spawned[1].send_signal = spawned[1].signals.append  # type: ignore[assignment]  # ad takes its time
    sup.stop(signal.SIGINT)  # Ctrl-C: a warm shutdown
    assert [p.signals for p in spawned] == [[signal.SIGTERM], [signal.SIGTERM]]
    assert sup.step()  # ad's worker still finishing its tasks
    sup.stop(signal.SIGINT)  # a second Ctrl-C: a cold shutdown of what is left
    assert spawned[1].signals == [signal.SIGTERM, signal.SIGQUIT]
    spawned[1].returncode = 0
    assert not sup.step() and sup.exit_code == 0


@pytest.fixture()
def group_worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    with redis_server() as url:
        env = {**os.environ, "REDIS_URL": url, "NEXUS_METRICS_PORT": "0", "PYTHONUNBUFFERED": "1"}
        env.pop("NEXUS_ENV_FILE", None)
        log_path = tmp_path / "group.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "worker", "--concurrency", "1",
                                     "--hostname", "t@%h"], cwd=ROOT, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc, url, log_path
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.mark.integration
def test_nexus_worker_starts_one_consumer_per_system_queue(
        group_worker: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    from celery import Celery

    proc, url, log_path = group_worker
    app = Celery("probe", broker=url)
    expected = len(default_layout())
    try:
        deadline = time.monotonic() + 90
        queues: dict[str, list[str]] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            replies = app.control.inspect(timeout=1.0).active_queues() or {}
            queues = {node: sorted(q["name"] for q in qs) for node, qs in replies.items()}
            if len(queues) >= expected:
                break
        assert len(queues) == expected, (queues, log_path.read_text()[-3000:])
        for queue in SYSTEM_QUEUES:
            consumers = [node for node, names in queues.items() if queue in names]
            assert len(consumers) == 1 and queues[consumers[0]] == [queue], (queue, queues)
            assert consumers[0].startswith(f"t-{queue}@"), consumers
        assert sorted(q for names in queues.values() for q in names) == sorted(ALL_QUEUES)
        mains = children_of([proc.pid])
        assert len(mains) == expected
    finally:
        app.close()
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(60) == 0, log_path.read_text()[-3000:]
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in mains) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in mains)
