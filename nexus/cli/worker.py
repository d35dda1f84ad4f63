"""`nexus worker`: Celery workers, refused where the working directory would shadow Nexus's ``tasks``/``clients``/
``workers`` packages (see :mod:`nexus.cli.shadow`).

With ``--queues``, one Celery worker on those queues (a thin wrapper over `celery worker`). Without, the default
layout (:func:`workers.routing.default_layout`): a supervised group of one worker per system queue plus one for
``compare`` and ``audit``, so a slow system never holds the others' fetches (see :mod:`workers.supervisor`).
``--concurrency`` is per worker; each worker of the group gets its own ``/metrics`` port (the base port + its
index) and the node name ``<group>@%h`` (``<name>-<group>@<host>`` from ``--hostname name@host``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nexus.cli.common import EXIT_USAGE, fail
from nexus.cli.shadow import shadowing_problem

POOLS = ("prefork", "threads", "solo")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check_options(pool: str, loglevel: str) -> None:
    if pool not in POOLS:
        fail(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}", EXIT_USAGE)
    if loglevel.upper() not in LOG_LEVELS:
        fail(f"unknown log level {loglevel!r}; choose one of {', '.join(LOG_LEVELS)}", EXIT_USAGE)


def worker(
    ctx: typer.Context,
    queues: Annotated[str, typer.Option(help="Comma-separated queues for ONE worker (default: a group of workers, "
                                        "one per system queue plus one for compare and audit).")] = "",
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Pool processes per worker.")] = 2,
    loglevel: Annotated[str, typer.Option("--loglevel", "--log-level",
                                          help="Celery log level: DEBUG, INFO, WARNING, ERROR, CRITICAL.")] = "INFO",
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    hostname: Annotated[str, typer.Option(help="Worker node name (%h is the host).")] = "",
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", min=0, max=65535,
                                                     help="Prometheus /metrics port of this worker (0: none; "
                                                     "default NEXUS_METRICS_PORT; a group uses this port + "
                                                     "the worker's index).")] = None,
    events: Annotated[bool, typer.Option("--events", help="Send task events from the start (Flower enables them "
                                         "at runtime anyway; off by default: they cost Redis round trips).")] = False,
) -> None:
    """Celery workers: one per system queue plus one for compare/audit by default, or one on --queues."""
    _check_options(pool, loglevel)
    problem = shadowing_problem()  # before importing workers/tasks: they could come from the working directory
    if problem is not None:
        fail(problem, EXIT_USAGE)
    from workers.routing import ALL_QUEUES

    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(chosen) - set(ALL_QUEUES))
    if unknown:
        fail(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(ALL_QUEUES)}", EXIT_USAGE)
    options = [f"--concurrency={concurrency}", f"--loglevel={loglevel.upper()}", f"--pool={pool}"]
    if events:
        options.append("--events")
    if not chosen:
        raise typer.Exit(_run_group(ctx, options, hostname, metrics_port))
    from workers.app import celery_app

    argv = ["worker", f"--queues={','.join(chosen)}", *options]
    argv = [("--task-events" if a == "--events" else a) for a in argv]
    if hostname:
        argv.append(f"--hostname={hostname}")
    if metrics_port is not None:
        argv.append(f"--metrics-port={metrics_port}")
    raise typer.Exit(run_celery(celery_app, argv))


def run_celery(celery_app: Any, argv: list[str]) -> int:
    """Celery's ``app.start(argv)``, keeping the exit code: Celery 5.7's ``start``/``worker_main`` drop what its click
    command returns, so a worker that stopped on "Unrecoverable error" (1) would exit 0 and ``Restart=on-failure``
    (systemd, Kubernetes, the group's supervisor) would take it for a clean stop."""
    import click
    from celery.bin.celery import celery as celery_command

    celery_command.params[0].default = celery_app
    try:
        code = celery_command.main(args=argv, standalone_mode=False)
    except click.exceptions.Exit as exc:  # not caught by click itself outside ``invoke``
        code = exc.exit_code
    finally:
        celery_command.params[0].default = None
    return code if isinstance(code, int) else 0


def _run_group(ctx: typer.Context, options: list[str], hostname: str, metrics_port: int | None) -> int:
    from nexus.settings import get_settings
    from workers.routing import default_layout
    from workers.supervisor import Child, Supervisor, child_env, child_hostname, worker_command

    base_port = get_settings().metrics_port if metrics_port is None else metrics_port
    root = ctx.parent.params if ctx.parent is not None else {}
    children = []
    for index, group in enumerate(default_layout()):
        argv = worker_command(group.queues, [*options, f"--hostname={child_hostname(hostname, group.name)}",
                                             f"--metrics-port={base_port + index if base_port else 0}"])
        if root.get("log_level"):
            argv[3:3] = ["--log-level", str(root["log_level"])]  # the root option goes before `worker`
        children.append(Child(group.name, argv))
    return Supervisor(children, env=child_env()).run()
