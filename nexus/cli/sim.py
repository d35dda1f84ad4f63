"""`nexus sim`: every simulator on loopback, the env file that points clients at them, and the ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nexus.cli.common import EXIT_USAGE, fail

IN_PROCESS_AD_WARNING = (
    "nexus sim: warning: slapd is not installed (or --ldap mock): AD is an in-process directory that workers and "
    "other nexus commands cannot reach, so every audit reports ActiveDirectory failed; install slapd "
    "(apt-get install slapd ldap-utils) and restart nexus sim")


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
    ldap: Annotated[str, typer.Option(help="AD directory: slapd, mock (in-process only: workers cannot reach it), "
                                      "auto (slapd when installed) or samba (a real Samba AD DC on 127.0.0.1:636, "
                                      "LDAPS; apt-get install samba).")] = "auto",
) -> None:
    """Serve every simulator, write the env file and the ground truth, run until interrupted.

    Credentials derive from --seed: a restart with the same seed accepts what running workers hold."""
    import signal
    import sys
    import threading

    from nexus.sim.stack import SimulatorStack, parse_latency

    if host not in ("127.0.0.1", "localhost", "::1"):
        fail("simulators only serve loopback addresses (127.0.0.1, localhost, ::1)", EXIT_USAGE)
    if ldap not in ("slapd", "mock", "auto", "samba"):
        fail("--ldap must be slapd, mock, auto or samba", EXIT_USAGE)
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
        if stack.ad_in_process:
            print(IN_PROCESS_AD_WARNING, file=sys.stderr, flush=True)
        stack.write_env_file(env_file)
        print(f"nexus sim: {people} people (seed {seed}) at {stack.url}, AD at {stack.ldap_url}; "
              f"env file {env_file}" + (f", truth {truth}" if truth else ""), file=sys.stderr, flush=True)
        stop.wait()
    finally:
        stack.stop()
