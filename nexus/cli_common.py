"""Small helpers shared by the CLI modules: exit codes, one-line errors on stderr, JSON on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 124


def fail(message: str, code: int) -> NoReturn:
    print(f"nexus: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


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
