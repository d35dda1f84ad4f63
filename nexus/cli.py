"""The `nexus` console script (typer). Exit codes: 0 finished, 1 the audit or a service failed, 2 bad input or usage,
124 `--wait` timed out. `--json` prints one JSON document on stdout; progress and logs go to stderr."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

import nexus.cli_diff  # noqa: F401  (registers `nexus audit diff` on audit_app)
from nexus.cli_audit import audit_app
from nexus.cli_common import EXIT_USAGE, fail, print_json
from nexus.cli_waiver import waiver_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Nexus: identity and device drift audits.")
app.add_typer(audit_app, name="audit")
app.add_typer(waiver_app, name="waiver")


def load_env_file(path: Path) -> None:
    """Load KEY=VALUE lines into the environment (before settings are read); the file's values win."""
    from dotenv import dotenv_values

    for key, value in dotenv_values(path).items():
        if value is not None:
            os.environ[key] = value
    from nexus.settings import get_settings

    get_settings.cache_clear()


@app.callback()
def main_options(
    env_file: Annotated[Path | None, typer.Option("--env-file", help="Read settings from this file (e.g. the one "
                                                  "`nexus sim` writes).", envvar="NEXUS_ENV_FILE")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
) -> None:
    from nexus.logs import setup_logging

    if env_file is not None:
        if not env_file.is_file():
            fail(f"env file {env_file} does not exist", EXIT_USAGE)
        load_env_file(env_file)
    setup_logging(log_level.upper())


@app.command()
def sim(
    host: Annotated[str, typer.Option(help="Loopback address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port of every simulator and of /_sim (0: a free port).")] = 8400,
    ldap_port: Annotated[int, typer.Option(help="LDAP port for AD (0: a free port).")] = 0,
    people: Annotated[int, typer.Option(min=10, max=100_000, help="Size of the synthetic organisation.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the organisation (same seed, same org).")] = 7,
    env_file: Annotated[Path, typer.Option("--env-file", help="Where to write the settings that point clients at "
                                           "the simulators (written once all accept).")] = Path(".env.sim"),
    truth: Annotated[Path | None, typer.Option(help="Write the planted-drift ground truth (JSON) here.")] = None,
    latency_ms: Annotated[str, typer.Option(help="Added latency: `30` for all or `workday=30,entra=50`.")] = "",
    token_lifetime: Annotated[float, typer.Option(help="Access-token lifetime in seconds.")] = 3599.0,
    ldap: Annotated[str, typer.Option(help="AD directory: slapd, mock (in-process only) or auto.")] = "auto",
) -> None:
    """Serve every simulator, write the env file and the ground truth, run until interrupted."""
    import signal
    import sys
    import threading

    from nexus.sim.stack import SimulatorStack, parse_latency

    if host not in ("127.0.0.1", "localhost", "::1"):
        fail("simulators only serve loopback addresses (127.0.0.1, localhost, ::1)", EXIT_USAGE)
    if ldap not in ("slapd", "mock", "auto"):
        fail("--ldap must be slapd, mock or auto", EXIT_USAGE)
    try:
        latency = parse_latency(latency_ms)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    stack = SimulatorStack(people=people, seed=seed, host=host, port=port, ldap_port=ldap_port, latency_ms=latency,
                           token_lifetime_s=token_lifetime, ldap_mode=ldap)
    try:
        stack.start()
    except OSError as exc:
        fail(f"cannot start the simulators: {exc}", 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if truth is not None:
            stack.write_truth(truth)
        stack.write_env_file(env_file)
        print(f"nexus sim: {people} people (seed {seed}) at {stack.url}, AD at {stack.ldap_url}; "
              f"env file {env_file}" + (f", truth {truth}" if truth else ""), file=sys.stderr, flush=True)
        stop.wait()
    finally:
        stack.stop()


@app.command()
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


@app.command()
def mcp(
    transport: Annotated[str, typer.Option(help="stdio (for a local assistant) or http (streamable HTTP).")] = "stdio",
    host: Annotated[str, typer.Option(help="HTTP bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8765,
) -> None:
    """The MCP server (fastmcp): audit tools for an AI assistant. Logs go to stderr."""
    if transport not in ("stdio", "http"):
        fail("--transport must be stdio or http", EXIT_USAGE)
    from nexus.mcp_server import run_mcp

    run_mcp(transport=transport, host=host, port=port)


@app.command()
def beat(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Celery beat with the weekly fleet audit (celery-redbeat: replicas never double-run it)."""
    from workers.beat import run_beat

    run_beat(loglevel=loglevel)


@app.command()
def flower(
    address: Annotated[str | None, typer.Option(help="Bind address (default NEXUS_FLOWER_ADDRESS: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default NEXUS_FLOWER_PORT: 5555).")] = None,
) -> None:
    """Flower, the Celery dashboard, with basic auth (NEXUS_FLOWER_USER / NEXUS_FLOWER_PASSWORD; when no password
    is set, one is generated for this run and printed to stderr)."""
    from workers.flower import run_flower

    try:
        run_flower(address=address, port=port)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


@app.command()
def health(json_out: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False) -> None:
    """Ping every system (seed format) and show each circuit breaker's state."""
    from nexus.health import check_system_health

    report = check_system_health()
    if json_out:
        print_json(report)
    else:
        from nexus.cli_common import print_health

        print_health(report)


@app.command()
def demo(
    people: Annotated[int, typer.Option(min=10, max=5000, help="Size of the demo organisation.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the demo organisation.")] = 7,
    down: Annotated[str, typer.Option(help="System to take down during the demo.")] = "workday",
    out: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("reports/demo-report.json"),
) -> None:
    """Everything in one process: no Redis, no servers. Audits a small org while one system is down."""
    from nexus.demo import run_demo

    raise typer.Exit(run_demo(people=people, seed=seed, down=down, out=out))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
