"""Prometheus metrics: the hooks on a registry, multiprocess merging, the worker endpoint, and a real scrape.

The integration test runs audits against a dead system on real worker processes (prefork pools), then scrapes each
worker's ``/metrics`` over HTTP: the retries, the breaker's single CLOSED -> OPEN transition across the fleet, the
shared breaker state, the finished audits and the discrepancies by severity must all be there, and no secret.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from nexus import metrics
from nexus.metrics import BreakerStateCollector, NexusMetrics
from nexus.testing.cluster import ROOT, Cluster
from workers import metrics_server

# -- helpers ---------------------------------------------------------------------------------------------------------


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, dict(s.labels), s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def total(texts: list[str], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``, over several scrapes."""
    return sum(value for text in texts for n, got, value in samples(text)
               if n == name and all(got.get(k) == v for k, v in labels.items()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def registry() -> Iterator[CollectorRegistry]:
    """A private registry installed as this process's metrics for the test (breaker transitions included, as the
    worker installs them)."""
    reg = CollectorRegistry()
    metrics.use_metrics(NexusMetrics(reg))
    metrics.install()
    yield reg
    metrics.use_metrics(None)


# -- the hooks -------------------------------------------------------------------------------------------------------


def test_fetch_hooks_count_attempts_retries_and_countdowns(registry: CollectorRegistry) -> None:
    metrics.fetch_attempt("entra", "retry")
    metrics.fetch_attempt("entra", "retry")
    metrics.fetch_attempt("Entra", "failed")  # a display name is counted under the id
    metrics.fetch_attempt("workday", "ok")
    metrics.fetch_retry("entra", "transient", 0.25)
    metrics.fetch_retry("entra", "throttled", 5.0)

    value = registry.get_sample_value
    assert value("nexus_fetch_attempts_total", {"system": "entra", "outcome": "retry"}) == 2
    assert value("nexus_fetch_attempts_total", {"system": "entra", "outcome": "failed"}) == 1
    assert value("nexus_fetch_attempts_total", {"system": "workday", "outcome": "ok"}) == 1
    assert value("nexus_fetch_retries_total", {"system": "entra", "error_kind": "throttled"}) == 1
    assert value("nexus_fetch_retries_total", {"system": "entra", "error_kind": "throttled"}) == 1
    assert value("nexus_fetch_retry_countdown_seconds_count", {"system": "entra"}) == 2
    assert value("nexus_fetch_retry_countdown_seconds_sum", {"system": "entra"}) == 5.25
    assert value("nexus_fetch_retry_countdown_seconds_bucket", {"system": "entra", "le": "0.25"}) == 1


def test_breaker_and_audit_hooks(registry: CollectorRegistry) -> None:
    metrics.breaker_transition("ActiveDirectory", "closed", "open")
    metrics.breaker_transition("ad", "open", "half_open")
    metrics.audit_finished("bulk", "done", 42.0, ["critical", "high", "high", "LOW"])
    metrics.audit_finished("user", "done", 1.5, iter(()))
    metrics.audit_failed("fleet", 0.2)

    value = registry.get_sample_value
    assert value("nexus_breaker_transitions_total", {"system": "ad", "from": "closed", "to": "open"}) == 1
    assert value("nexus_breaker_transitions_total", {"system": "ad", "from": "open", "to": "half_open"}) == 1
    assert value("nexus_audits_finished_total", {"kind": "bulk", "status": "done"}) == 1
    assert value("nexus_audits_finished_total", {"kind": "user", "status": "done"}) == 1
    assert value("nexus_audits_finished_total", {"kind": "fleet", "status": "failed"}) == 1
    assert value("nexus_audit_duration_seconds_sum", {"kind": "bulk"}) == 42.0
    assert value("nexus_audit_duration_seconds_count", {"kind": "fleet"}) == 1
    assert value("nexus_discrepancies_total", {"severity": "critical"}) == 1
    assert value("nexus_discrepancies_total", {"severity": "high"}) == 2
    assert value("nexus_discrepancies_total", {"severity": "low"}) == 1


def test_a_clock_skewed_duration_is_never_negative(registry: CollectorRegistry) -> None:
    metrics.audit_finished("user", "done", -3.0, [])
    assert registry.get_sample_value("nexus_audit_duration_seconds_sum", {"kind": "user"}) == 0.0


class _Broken(NexusMetrics):
    def __init__(self) -> None:
        super().__init__(CollectorRegistry())

    def fetch_attempt(self, system: str, outcome: str) -> None:
        raise RuntimeError("disk full")

    def audit_finished(self, kind: str, status: str, duration_s: float, severities: Iterable[str]) -> None:
        raise OSError("mmap failed")


def test_hooks_never_raise_and_log_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    metrics.use_metrics(_Broken())
    try:
        with caplog.at_level(logging.DEBUG, logger="nexus.metrics"):
            metrics.fetch_attempt("entra", "ok")
            metrics.audit_failed("user", 1.0)
            metrics.fetch_retry("entra", "transient", "not a number")  # type: ignore[arg-type]
    finally:
        metrics.use_metrics(None)
    debug = [r for r in caplog.records if r.name == "nexus.metrics"]
    assert len(debug) == 3
    assert all(r.levelno == logging.DEBUG for r in debug)


def test_the_fetch_task_calls_the_hooks_per_outcome(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tasks/fetch.py's run_fetch with our request budget used up: a retry with its countdown, then a final failure
    (a request's own retries happen inside the lookup; the task retries only for what they cannot wait out)."""
    from types import SimpleNamespace

    import fakeredis

    from nexus import runtime
    from nexus.errors import BudgetExceededError
    from nexus.settings import get_settings
    from nexus.systems import System
    from tasks import fetch

    class _Retry(Exception):
        pass

    def dead(*_: Any) -> Any:
        raise BudgetExceededError("budget used up", system="entra", status=None, retry_after=5.0)

    class _PassThrough:
        def call(self, func: Any) -> Any:
            return func()

    class _Runtime(runtime.Runtime):
        def client(self, system: System) -> Any:
            return object()

        def breaker(self, system: System) -> Any:
            return _PassThrough()

    monkeypatch.setattr(fetch, "run_lookup", dead)

    def task(retries: int) -> Any:
        def retry(**_: Any) -> Exception:
            return _Retry()
        return SimpleNamespace(request=SimpleNamespace(retries=retries, id="t1"), retry=retry)

    previous = runtime.install(_Runtime(get_settings(), redis_client=fakeredis.FakeRedis()))
    try:
        with pytest.raises(_Retry):
            fetch.run_fetch(task(0), System.ENTRA, "a1", "people", ["x@example.com"])
        marker = fetch.run_fetch(task(2), System.ENTRA, "a1", "people", ["x@example.com"])
    finally:
        runtime.install(previous)
    assert marker["ok"] is False

    value = registry.get_sample_value
    assert value("nexus_fetch_attempts_total", {"system": "entra", "outcome": "retry"}) == 1
    assert value("nexus_fetch_attempts_total", {"system": "entra", "outcome": "failed"}) == 1
    assert value("nexus_fetch_retries_total", {"system": "entra", "error_kind": "throttled"}) == 1
    assert value("nexus_fetch_retry_countdown_seconds_count", {"system": "entra"}) == 1


def test_an_audit_that_fails_is_counted_as_failed(registry: CollectorRegistry) -> None:
    import time

    import fakeredis

    from nexus import runtime
    from nexus.settings import get_settings
    from tasks.audit import plan_audit

    rt = runtime.Runtime(get_settings(), redis_client=fakeredis.FakeRedis())
    previous = runtime.install(rt)
    try:
        store = rt.audit_store()
        store.r.hset(store.key("a-bad"), mapping={"id": "a-bad", "kind": "bogus", "status": "queued",
                                                  "created_at": time.time() - 5, "updated_at": time.time()})
        plan_audit.run("a-bad")
        assert store.meta("a-bad")["status"] == "failed"
    finally:
        runtime.install(previous)
    assert registry.get_sample_value("nexus_audits_finished_total", {"kind": "bogus", "status": "failed"}) == 1
    assert (registry.get_sample_value("nexus_audit_duration_seconds_sum", {"kind": "bogus"}) or 0) >= 5


# -- breaker state at scrape time ------------------------------------------------------------------------------------


def test_breaker_state_collector_maps_states_and_reports_an_unreadable_store() -> None:
    states = {"workday": {"state": "closed", "failures": 2, "storage_ok": True},
              "entra": {"state": "open", "failures": 5, "storage_ok": True},
              "helix": {"state": "half_open", "failures": 5, "storage_ok": True}}
    reg = CollectorRegistry()
    reg.register(BreakerStateCollector(["workday", "entra", "helix"], read=states.__getitem__))
    assert reg.get_sample_value("nexus_breaker_state", {"system": "workday"}) == 0
    assert reg.get_sample_value("nexus_breaker_state", {"system": "helix"}) == 1
    assert reg.get_sample_value("nexus_breaker_state", {"system": "entra"}) == 2
    assert reg.get_sample_value("nexus_breaker_failures", {"system": "workday"}) == 2
    assert reg.get_sample_value("nexus_breaker_store_up") == 1

    def unreadable(system: str) -> dict[str, Any]:
        if system == "ad":
            raise ConnectionError("redis down")
        return {"state": "closed", "failures": 0, "storage_ok": system != "fedex"}

    reg = CollectorRegistry()
    reg.register(BreakerStateCollector(["workday", "ad", "fedex"], read=unreadable))
    assert reg.get_sample_value("nexus_breaker_state", {"system": "workday"}) == 0
    assert reg.get_sample_value("nexus_breaker_state", {"system": "ad"}) is None  # no stale value
    assert reg.get_sample_value("nexus_breaker_state", {"system": "fedex"}) is None
    assert reg.get_sample_value("nexus_breaker_store_up") == 0


def test_breaker_state_comes_from_the_shared_store_and_transitions_are_counted(registry: CollectorRegistry) -> None:
    from clients.breaker import breaker_state, clear_registry, get_breaker

    url = "memory://test-metrics"
    try:
        reg = CollectorRegistry()
        reg.register(BreakerStateCollector(["helix"], read=lambda s: breaker_state(s, redis=url)))
        assert reg.get_sample_value("nexus_breaker_state", {"system": "helix"}) == 0
        get_breaker("helix", redis=url).open()
        assert reg.get_sample_value("nexus_breaker_state", {"system": "helix"}) == 2
        get_breaker("helix", redis=url).close()
        assert reg.get_sample_value("nexus_breaker_state", {"system": "helix"}) == 0
    finally:
        clear_registry()
    value = registry.get_sample_value
    assert value("nexus_breaker_transitions_total", {"system": "helix", "from": "closed", "to": "open"}) == 1
    assert value("nexus_breaker_transitions_total", {"system": "helix", "from": "open", "to": "closed"}) == 1


# -- exposure --------------------------------------------------------------------------------------------------------


def test_resolve_port_prefers_the_flag() -> None:
    assert metrics_server.resolve_port({"metrics_port": 9811}, 9808) == 9811
    assert metrics_server.resolve_port({"metrics_port": 0}, 9808) == 0
    assert metrics_server.resolve_port({"metrics_port": None}, 9808) == 9808
    assert metrics_server.resolve_port(None, 0) == 0


def test_install_adds_the_worker_flag_once_and_connects_the_signals() -> None:
    from celery import signals

    from workers.app import celery_app

    metrics_server.install(celery_app)  # a second time: idempotent
    flags = [o for o in celery_app.user_options["worker"] if "--metrics-port" in getattr(o, "opts", ())]
    assert len(flags) == 1
    receivers = {signal: [r[0][0] for r in signal.receivers] for signal in
                 (signals.celeryd_init, signals.worker_ready, signals.worker_process_shutdown,
                  signals.worker_shutdown)}
    assert all(any(str(key).startswith("nexus.metrics") for key in keys) for keys in receivers.values()), receivers
    # The embedded worker (`nexus demo`, an in-thread WorkController) sends worker_init but neither celeryd_init nor
    # worker_ready: hooked there, the demo opens no port.
    assert not any(str(r[0][0]).startswith("nexus.metrics") for r in signals.worker_init.receivers)


def test_single_process_endpoint_serves_the_current_metrics(registry: CollectorRegistry) -> None:
    reg = metrics_server.build_registry(None, breakers=BreakerStateCollector(
        ["entra"], read=lambda s: {"state": "open", "failures": 3, "storage_ok": True}))
    server = metrics_server.serve_metrics(reg, host="127.0.0.1", port=0)
    try:
        metrics.fetch_attempt("entra", "breaker_open")
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    finally:
        server.stop()
    assert total([text], "nexus_fetch_attempts_total", system="entra", outcome="breaker_open") == 1
    assert total([text], "nexus_breaker_state", system="entra") == 2


# Run in a fresh interpreter: switching prometheus-client to multiprocess values is process-wide.
_MULTIPROCESS_SCRIPT = textwrap.dedent("""
    import json, multiprocessing, os, sys
    import httpx
    from nexus import metrics
    from workers import metrics_server as ms

    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = int(sys.argv[1])
    os.environ["NEXUS_METRICS_PORT"] = "9"  # overridden by the flag below
    os.environ["NEXUS_METRICS_HOST"] = "127.0.0.1"
    metrics.fetch_attempt("workday", "ok")  # built BEFORE the switch: must be rebuilt with file-backed values
    ms.on_celeryd_init(options={"metrics_port": port})
    state = ms._state
    directory = state.directory

    def child(n):
        metrics.fetch_attempt("entra", "retry")
        metrics.fetch_retry("entra", "transient", 0.5 * n)
        if n == 1:
            metrics.breaker_transition("entra", "closed", "open")
        metrics.audit_finished("user", "done", 2.0, ["critical", "medium"])
        ms.on_process_shutdown(pid=os.getpid())

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=child, args=(n,)) for n in (1, 2, 3)]
    for p in procs: p.start()
    for p in procs: p.join()
    # a live gauge file of a child that died: mark_process_dead removes it
    dead_gauge = directory / f"gauge_livesum_{procs[0].pid}.db"
    dead_gauge.write_bytes(b"")
    ms.on_process_shutdown(pid=procs[0].pid)
    ms.on_worker_ready()
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    ms.on_worker_shutdown()
    print(json.dumps({"text": text, "dir": str(directory), "dir_exists_after": directory.exists(),
                      "dead_gauge_left": dead_gauge.exists(), "owned": state.owned,
                      "env_dir": os.environ.get("PROMETHEUS_MULTIPROC_DIR")}))
""")


@pytest.mark.integration  # child processes and the metrics endpoint
def test_multiprocess_children_are_merged_by_the_main_process_endpoint() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["NEXUS_BREAKER_REDIS_URL"] = "memory://"
    port = free_port()
    proc = subprocess.run([sys.executable, "-c", _MULTIPROCESS_SCRIPT, str(port)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    text = out["text"]
    assert out["owned"] is True and out["env_dir"] == out["dir"]
    assert out["dir_exists_after"] is False  # the temporary directory is removed at shutdown
    assert out["dead_gauge_left"] is False
    assert total([text], "nexus_fetch_attempts_total", system="entra", outcome="retry") == 3
    assert total([text], "nexus_fetch_retries_total", system="entra", error_kind="transient") == 3
    assert total([text], "nexus_fetch_retry_countdown_seconds_sum", system="entra") == 3.0
    assert total([text], "nexus_breaker_transitions_total", system="entra") == 1
    assert total([text], "nexus_audits_finished_total", kind="user", status="done") == 3
    assert total([text], "nexus_discrepancies_total", severity="critical") == 3
    # the pre-switch, in-memory count of the main process is not in the files
    assert total([text], "nexus_fetch_attempts_total", system="workday") == 0
    assert total([text], "nexus_breaker_state", system="entra") == 0  # the shared store (fake): closed
    assert total([text], "nexus_breaker_store_up") == 1


def test_a_configured_directory_is_used_and_cleaned_of_a_previous_run(tmp_path: Path) -> None:
    stale = tmp_path / "counter_12345.db"
    stale.write_bytes(b"old")
    keep = tmp_path / "notes.txt"
    keep.write_text("not ours")
    script = textwrap.dedent("""
        import sys
        from workers import metrics_server as ms
        path, owned = ms.prepare_multiprocess_dir(sys.argv[1])
        from prometheus_client import values
        print(owned, values.ValueClass is not values.MutexValue)
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True"]
    assert not stale.exists() and keep.exists()


# -- the test: real workers, a dead system, a scrape over HTTP -----------------------------------------------

WAIT = 90.0
SECRET_NAMES = ("SECRET", "PASSWORD", "TOKEN")


@pytest.fixture(scope="module")
def metrics_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, list[int], Path]]:
    """Two workers, each with its own /metrics port: w1 with a configured multiprocess dir, w2 with a temporary one.

    The breaker trips after 3 failures (one fetch's attempts) and stays open for the whole test.
    """
    explicit_dir = tmp_path_factory.mktemp("prom-w1")
    extra = {"NEXUS_METRICS_HOST": "127.0.0.1", "NEXUS_BREAKER_FAIL_MAX": "3", "NEXUS_BREAKER_RESET_TIMEOUT_S": "300"}
    with Cluster.start(people=60, seed=11, workers=0, extra_env=extra) as cluster:
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            cluster.env["NEXUS_METRICS_PORT"] = str(port)
            if i == 0:
                cluster.env["PROMETHEUS_MULTIPROC_DIR"] = str(explicit_dir)
            else:
                cluster.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            cluster.spawn_worker(f"w{i + 1}", concurrency=2)
        cluster.wait_ready(2)
        yield cluster, ports, explicit_dir


def _scrape(ports: list[int]) -> list[str]:
    return [httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text for port in ports]


@pytest.mark.integration
def test_scrape_after_audits_with_a_dead_system_shows_retries_and_one_breaker_transition(
    metrics_cluster: tuple[Cluster, list[int], Path],
) -> None:
    from clients.breaker import breaker_state

    cluster, ports, explicit_dir = metrics_cluster
    cluster.fault("entra", "down")
    nx = cluster.nexus()
    truth = cluster.truth
    # People whose drift is between Workday and AD, so Entra being down does not hide it.
    critical = next(e["subject"] for e in truth["drift"]
                    if e["field"] == "account_enabled" and "ActiveDirectory" in e["systems"])
    medium = next(e["subject"] for e in truth["drift"]
                  if e["field"] == "job_title" and "ActiveDirectory" in e["systems"])

    audits = 0
    while breaker_state("entra")["state"] != "open":  # the first audit's three failed attempts trip it (fail_max 3)
        assert audits < 6, "the breaker never opened"
        view = nx.wait(nx.submit(nx.request_for(email=critical)), timeout=WAIT)
        audits += 1
        assert view["status"] == "done" and view["report"]["systems_failed"] == ["Entra"]
    last = nx.wait(nx.submit(nx.request_for(email=medium)), timeout=WAIT)  # fails fast on the open breaker
    audits += 1
    assert last["status"] == "done"
    assert last["report"]["errors"]["Entra"]["kind"] == "breaker_open"

    texts = _scrape(ports)
    retries = total(texts, "nexus_fetch_retries_total", system="entra")
    assert retries > 0, texts  # the check: the dead system's retries are in the scrape
    got = {
        "retries transient": total(texts, "nexus_fetch_retries_total", system="entra", error_kind="transient"),
        "countdowns observed": total(texts, "nexus_fetch_retry_countdown_seconds_count", system="entra"),
        "attempts retry": total(texts, "nexus_fetch_attempts_total", system="entra", outcome="retry"),
        "attempts failed": total(texts, "nexus_fetch_attempts_total", system="entra", outcome="failed"),
        "attempts breaker_open": total(texts, "nexus_fetch_attempts_total", system="entra", outcome="breaker_open"),
        "workday ok": total(texts, "nexus_fetch_attempts_total", system="workday", outcome="ok"),
        # One transition across the fleet, whichever pool child of whichever worker made it.
        "closed->open": total(texts, "nexus_breaker_transitions_total", system="entra",
                              **{"from": "closed", "to": "open"}),
        "transitions": total(texts, "nexus_breaker_transitions_total", system="entra"),
        "audits done": total(texts, "nexus_audits_finished_total", kind="user", status="done"),
        "durations observed": total(texts, "nexus_audit_duration_seconds_count", kind="user"),
        "critical found": min(1.0, total(texts, "nexus_discrepancies_total", severity="critical")),
        "medium found": min(1.0, total(texts, "nexus_discrepancies_total", severity="medium")),
    }
    expected = {
        "retries transient": retries, "countdowns observed": retries, "attempts retry": retries,
        "attempts failed": audits - 1, "attempts breaker_open": 1, "workday ok": audits,
        "closed->open": 1, "transitions": 1, "audits done": audits, "durations observed": audits,
        "critical found": 1, "medium found": 1,
    }
    assert got == expected, texts
    # Every worker reads the same shared state.
    for text in texts:
        assert total([text], "nexus_breaker_state", system="entra") == 2, text
        assert total([text], "nexus_breaker_state", system="workday") == 0, text
        assert total([text], "nexus_breaker_store_up") == 1, text
    # w1 uses the configured directory, w2 a temporary one of its own; no secret appears anywhere in a scrape.
    w1, w2 = cluster.workers
    assert f"multiprocess dir {explicit_dir})" in w1.log()
    assert "multiprocess dir /" in w2.log() and str(explicit_dir) not in w2.log()
    secrets = [v for k, v in cluster.env.items() if any(s in k for s in SECRET_NAMES) and len(v) >= 6]
    assert secrets
    for text in texts:
        for secret in secrets:
            assert secret not in text
        assert "redis://" not in text
