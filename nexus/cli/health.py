"""`nexus health`: ping every configured system, show each circuit breaker's state and Nexus's own infrastructure
(Redis, the broker, the workers, the queues); a table, or JSON with ``--json``.

Exit codes: 0 the check ran (systems may be down: the report says which), 1 Redis or the broker is unreachable (no
audit can run), 2 nothing is configured or the settings are invalid (one line; nothing is contacted).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nexus.cli.common import EXIT_FAILED, EXIT_USAGE, fail, print_json


def health(json_out: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False) -> None:
    """Ping every configured system (seed format), show each circuit breaker's state, Redis, the broker, the
    workers and the queues. Exit 1 when Redis or the broker is down; 2 when nothing is configured."""
    from nexus.errors import InvalidInput
    from nexus.health import check_system_health

    try:
        report = check_system_health()
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    if json_out:
        print_json(report)
    else:
        print_health(report)
    if not report["summary"]["infrastructure_ok"]:
        raise typer.Exit(EXIT_FAILED)


def print_health(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"System health at {report['timestamp']}")
    for col in ("System", "Available", "Response ms", "Breaker", "Error"):
        table.add_column(col)
    for name, info in report["systems"].items():
        breaker = (info.get("breaker") or {}).get("state", "")
        table.add_row(name, "yes" if info["available"] else "NO", str(info.get("response_time_ms", "")), breaker,
                      info.get("error", ""))
    infra = Table(title="Nexus infrastructure")
    for col in ("Component", "Available", "Response ms", "Detail"):
        infra.add_column(col)
    for name, info in report["infrastructure"].items():
        infra.add_row(name, "yes" if info["available"] else "NO", str(info.get("response_time_ms", "")),
                      info.get("error") or _detail(name, info))
    console = Console()
    console.print(table)
    console.print(infra)
    s = report["summary"]
    line = f"{s['available_systems']}/{s['total_systems']} available ({s['availability_percentage']}%)"
    console.print(line if s["infrastructure_ok"] else f"{line}: {s['reason']}")


def _detail(name: str, info: dict[str, Any]) -> str:
    if name == "Workers":
        return f"{info.get('count', 0)} answered: {', '.join(info.get('names', []))}"
    if name == "Queues":
        return " ".join(f"{queue}={depth}" for queue, depth in info.get("depth", {}).items())
    return ""
