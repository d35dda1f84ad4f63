"""`nexus sim`: every simulator on loopback, the env file that points clients at them, and the ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nexus.cli.common import EXIT_USAGE, fail

if TYPE_CHECKING:
    from nexus.sim.org_import import ImportedOrg

IN_PROCESS_AD_WARNING = (
    "nexus sim: warning: slapd is not installed (or --ldap mock): AD is an in-process directory that workers and "
    "other nexus commands cannot reach, so every audit reports ActiveDirectory failed; install slapd "
    "(apt-get install slapd ldap-utils) and restart nexus sim")


def sim(
    host: Annotated[str, typer.Option(help="Loopback address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port of every simulator and of /_sim (0: a free port).")] = 8400,
    ldap_port: Annotated[int, typer.Option(help="LDAP port for AD (0: a free port).")] = 0,
    people: Annotated[int | None, typer.Option(min=10, max=100_000, help="Size of the synthetic organisation "
                                               "[default: 200].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the organisation (same seed, same org) [default: 7]."
                                             )] = None,
    env_file: Annotated[Path, typer.Option("--env-file", help="Where to write the settings that point clients at "
                                           "the simulators (written once all accept).")] = Path(".env.sim"),
    truth: Annotated[Path | None, typer.Option(help="Write the planted-drift ground truth (JSON) here.")] = None,
    latency_ms: Annotated[str, typer.Option(help="Added latency: `30` for all or `workday=30,entra=50`.")] = "",
    token_lifetime: Annotated[float, typer.Option(help="Access-token lifetime in seconds.")] = 3599.0,
    ldap: Annotated[str, typer.Option(help="AD directory: slapd, mock (in-process only: workers cannot reach it), "
                                      "auto (slapd when installed) or samba (a real Samba AD DC on 127.0.0.1:636, "
                                      "LDAPS; apt-get install samba).")] = "auto",
    org: Annotated[Path | None, typer.Option("--org", help="Serve the organisation exported in this directory "
                                             "(workday.json, ad.ldif, entra.json, intune.json, lansweeper.json, "
                                             "helix.json, fedex.json) instead of generating one.")] = None,
    exported_at: Annotated[str | None, typer.Option("--exported-at", help="With --org: when the export was taken "
                                                    "(ISO 8601); its dates are moved forward by the days since, so "
                                                    "ages are as they were at the export [default: now].")] = None,
) -> None:
    """Serve every simulator, write the env file and the ground truth, run until interrupted.

    Credentials derive from --seed: a restart with the same seed accepts what running workers hold (with --org:
    those of the default seed)."""
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
    imported = _imported_org(org, exported_at, people=people, seed=seed, truth=truth)
    stack = SimulatorStack(people=people or 200, seed=seed if seed is not None else 7, host=host, port=port,
                           ldap_port=ldap_port, latency_ms=latency, token_lifetime_s=token_lifetime, ldap_mode=ldap,
                           org=imported.org if imported is not None else None)
    if imported is not None:
        for line in imported.notes:
            print(f"nexus sim: note: {line}", file=sys.stderr, flush=True)
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
        what = (f"{len(imported.org.workday)} workers from {org} ({', '.join(imported.files)})" if imported
                else f"{stack.people} people (seed {stack.seed})")
        print(f"nexus sim: {what} at {stack.url}, AD at {stack.ldap_url}; "
              f"env file {env_file}" + (f", truth {truth}" if truth else ""), file=sys.stderr, flush=True)
        stop.wait()
    finally:
        stack.stop()


def _imported_org(org: Path | None, exported_at: str | None, *, people: int | None, seed: int | None,
                  truth: Path | None) -> ImportedOrg | None:
    """The organisation of ``--org`` (None without it); a usage error or an unreadable export exits 2."""
    from nexus.sim.org_import import OrgImportError, load_org, parse_exported_at

    if org is None:
        if exported_at is not None:
            fail("--exported-at only applies to --org", EXIT_USAGE)
        return None
    for given, option, why in ((truth, "--truth", "an imported organisation has no planted drift to write"),
                               (people, "--people", "the export decides who is in it"),
                               (seed, "--seed", "nothing is generated")):
        if given is not None:
            fail(f"{option} cannot be used with --org: {why}", EXIT_USAGE)
    try:
        when = parse_exported_at(exported_at) if exported_at is not None else None
        return load_org(org, exported_at=when)
    except (OrgImportError, ValueError) as exc:
        fail(f"--org: {exc}", EXIT_USAGE)
