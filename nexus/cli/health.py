"""`nexus health`: ping every system and show each circuit breaker's state (a table, or JSON with ``--json``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nexus.cli.common import print_json


def health(json_out: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False) -> None:
    """Ping every system (seed format) and show each circuit breaker's state."""
    from nexus.health import check_system_health

    report = check_system_health()
    if json_out:
        print_json(report)
    else:
        print_health(report)


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
    console = Console()
    console.print(table)
    s = report["summary"]
    console.print(f"{s['available_systems']}/{s['total_systems']} available ({s['availability_percentage']}%)")
