"""`nexus worker`: a Celery worker (a thin wrapper over `celery worker`), refused where the working directory would
shadow Nexus's ``tasks``/``clients``/``workers`` packages (see :mod:`nexus.cli.shadow`)."""

from __future__ import annotations

from typing import Annotated

import typer

from nexus.cli.common import EXIT_USAGE, fail
from nexus.cli.shadow import shadowing_problem


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues (default: every system, compare, audit).")] = "",
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Worker processes.")] = 2,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    hostname: Annotated[str, typer.Option(help="Worker node name (%h is the host).")] = "",
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", min=0, max=65535,
                                                     help="Prometheus /metrics port of this worker (0: none; "
                                                     "default NEXUS_METRICS_PORT).")] = None,
    events: Annotated[bool, typer.Option("--events", help="Send task events from the start (Flower enables them "
                                         "at runtime anyway; off by default: they cost Redis round trips).")] = False,
) -> None:
    """A Celery worker (a thin wrapper over `celery worker`)."""
    problem = shadowing_problem()  # before importing workers/tasks: they could come from the working directory
    if problem is not None:
        fail(problem, EXIT_USAGE)
    from workers.app import celery_app
    from workers.routing import ALL_QUEUES

    chosen = [q.strip() for q in queues.split(",") if q.strip()] or list(ALL_QUEUES)
    unknown = sorted(set(chosen) - set(ALL_QUEUES))
    if unknown:
        fail(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(ALL_QUEUES)}", EXIT_USAGE)
    argv = ["worker", f"--queues={','.join(chosen)}", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
            f"--pool={pool}"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    if metrics_port is not None:
        argv.append(f"--metrics-port={metrics_port}")
    if events:
        argv.append("--task-events")
    celery_app.worker_main(argv)
