"""A Celery worker's Prometheus endpoint: ``GET http://<NEXUS_METRICS_HOST>:<port>/metrics``, multiprocess-safe.

The prefork pool runs tasks in child processes, so the metrics live in prometheus-client's multiprocess mode: each
child writes its counters and histograms to files in ``PROMETHEUS_MULTIPROC_DIR`` and the worker's MAIN process,
which runs no tasks, merges them per scrape from a small threaded HTTP server. The shared breaker state is read
from Redis at scrape time (:class:`nexus.metrics.BreakerStateCollector`).

:func:`install` (``workers.app`` calls it when the app is built, so pool children inherit what it sets up) puts the
metrics' breaker listener on every breaker of the process (:func:`nexus.metrics.install`: transitions are counted
by the process that made them) and connects the lifecycle handlers, on Celery signals:

* ``celeryd_init``, main process, before the pool forks: the port is ``celery worker --metrics-port N``, else
  ``NEXUS_METRICS_PORT`` (default 9808; 0 disables everything here). The directory is ``PROMETHEUS_MULTIPROC_DIR``
  when set (its ``*.db`` files are from an earlier run and are removed, as prometheus-client requires), otherwise
  a fresh temporary directory. It is exported to the environment so the children inherit it, and prometheus-client
  is switched to multiprocess values even if it was imported before the variable existed.
* ``worker_ready``: the HTTP server thread starts (after the pool has forked, so no child inherits a server).
  A port already in use is logged and the worker carries on without metrics.
* ``worker_process_shutdown``, in a pool child as it exits: ``mark_process_dead(pid)`` (drops live-gauge files;
  counters and histograms of dead children are kept, so totals never go backwards).
* ``worker_shutdown``: the server stops; a temporary directory this worker created is removed.

One directory and one port per worker: two workers on one host sharing a directory would each report the other's
counts too. The embedded worker (``nexus demo``) sends neither ``celeryd_init`` nor ``worker_ready``: no server.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from celery import Celery, signals
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from nexus import metrics

log = logging.getLogger("nexus.metrics")

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint (a daemon thread)."""

    httpd: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class _WorkerMetrics:
    """What this worker's main process set up (and must undo)."""

    host: str
    port: int
    directory: Path
    owned: bool
    server: MetricsServer | None = None


_state: _WorkerMetrics | None = None


def prepare_multiprocess_dir(configured: str = "") -> tuple[Path, bool]:
    """Choose, clean and export this worker's multiprocess directory; returns (path, created_here)."""
    if configured:
        path, owned = Path(configured), False
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path, owned = Path(tempfile.mkdtemp(prefix="nexus-metrics-")), True
    os.environ[ENV_DIR] = str(path)
    _use_multiprocess_values()
    return path, owned


def _use_multiprocess_values() -> None:
    """prometheus-client picks its value class once, at import; switch it if it was imported before the directory
    was exported, and drop metrics already built with in-memory values."""
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:
        values.ValueClass = values.get_value_class()
    metrics.use_metrics(None)


class _CurrentProcessCollector:
    """Single-process fallback: whatever :func:`nexus.metrics.current` holds at scrape time."""

    def collect(self) -> Iterator[Metric]:
        yield from metrics.current().registry.collect()

    def describe(self) -> Iterator[Metric]:
        return iter(())


def build_registry(multiproc_dir: str | Path | None = None, *, breakers: Collector | None = None) -> CollectorRegistry:
    """The registry a scrape reads: every process's files (or this process's metrics) plus the breaker state."""
    registry = CollectorRegistry()
    if multiproc_dir:
        MultiProcessCollector(registry, path=str(multiproc_dir))
    else:
        registry.register(_CurrentProcessCollector())
    registry.register(breakers if breakers is not None else metrics.BreakerStateCollector())
    return registry


def serve_metrics(registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve ``registry`` on ``host:port`` (0 picks a free port) from a daemon thread."""
    httpd, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(httpd, thread)


def resolve_port(options: Mapping[str, Any] | None, settings_port: int) -> int:
    """``--metrics-port`` wins over ``NEXUS_METRICS_PORT``."""
    flag = (options or {}).get("metrics_port")
    return int(flag) if flag is not None else int(settings_port)


# -- Celery signal handlers ------------------------------------------------------------------------------------------


def on_celeryd_init(sender: Any = None, options: Mapping[str, Any] | None = None, **_: Any) -> None:
    global _state
    try:
        from nexus.settings import Settings

        settings = Settings()  # fresh: `nexus worker` may have set the environment after the first read
        port = resolve_port(options, settings.metrics_port)
        if port <= 0:
            log.info("metrics endpoint disabled (NEXUS_METRICS_PORT=0)")
            return
        directory, owned = prepare_multiprocess_dir(settings.prometheus_multiproc_dir)
        _state = _WorkerMetrics(host=settings.metrics_host, port=port, directory=directory, owned=owned)
    except Exception:
        log.warning("metrics set-up failed; the worker runs without metrics", exc_info=True)


def on_worker_ready(**_: Any) -> None:
    state = _state
    if state is None or state.server is not None:
        return
    try:
        state.server = serve_metrics(build_registry(state.directory), host=state.host, port=state.port)
        log.info("metrics on http://%s:%d/metrics (multiprocess dir %s)", state.host, state.port, state.directory)
    except Exception as exc:
        log.warning("metrics endpoint not started on %s:%d: %s", state.host, state.port, exc)


def on_process_shutdown(pid: int | None = None, **_: Any) -> None:
    state = _state
    if state is None or pid is None:
        return
    try:
        mark_process_dead(pid, str(state.directory))
    except Exception as exc:
        log.debug("metrics: mark_process_dead(%s) failed: %s", pid, exc)


def on_worker_shutdown(**_: Any) -> None:
    global _state
    state, _state = _state, None
    if state is None:
        return
    if state.server is not None:
        try:
            state.server.stop()
        except Exception as exc:
            log.debug("metrics: server stop failed: %s", exc)
    if state.owned:
        shutil.rmtree(state.directory, ignore_errors=True)


def install(app: Celery) -> None:
    """Count breaker transitions, add ``celery worker --metrics-port`` and connect the handlers (idempotent)."""
    import click

    metrics.install()  # the breakers' transition listener (clients.breaker.install_listener), inherited by the pool

    worker_options = app.user_options["worker"]
    if not any("--metrics-port" in getattr(o, "opts", ()) for o in worker_options):
        worker_options.add(click.Option(
            ["--metrics-port"], type=int, default=None,
            help="Port of this worker's Prometheus /metrics endpoint (overrides NEXUS_METRICS_PORT; 0 disables).",
        ))
    signals.celeryd_init.connect(on_celeryd_init, weak=False, dispatch_uid="nexus.metrics.init")
    signals.worker_ready.connect(on_worker_ready, weak=False, dispatch_uid="nexus.metrics.ready")
    signals.worker_process_shutdown.connect(on_process_shutdown, weak=False, dispatch_uid="nexus.metrics.child_exit")
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False, dispatch_uid="nexus.metrics.shutdown")


__all__ = [
    "ENV_DIR",
    "MetricsServer",
    "build_registry",
    "install",
    "prepare_multiprocess_dir",
    "resolve_port",
    "serve_metrics",
]
