"""Human-readable report summaries for the terminal (stdout), shared by `nexus audit` and `nexus demo`.

Below both front ends (the demo must not import the CLI package), so it lives here rather than in `nexus.cli`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from nexus.exports import discrepancies_of, text_of

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def print_report_summary(view: dict[str, Any], console: Console | None = None, limit: int = 25) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # piped or captured: do not squeeze the table into 80 columns
    report = view.get("report") or {}
    console.print(f"[bold]Audit {view['audit_id']}[/] {view.get('description', '')}: {view['status']}")
    if view.get("error"):
        console.print(f"[red]error:[/] {view['error']}")
    if not report:
        return
    failed = report.get("systems_failed") or []
    console.print(f"systems checked: {', '.join(report.get('systems_checked', []))}")
    console.print(f"systems failed:  {', '.join(failed) if failed else 'none'}")
    for system, error in (report.get("errors") or {}).items():
        console.print(f"  [red]{system}[/]: {error.get('type')}: {error.get('message')}")
    found = [(k[:-6], v) for k, v in report.items() if k.endswith("_found")]
    if found:
        console.print("found: " + ", ".join(f"{k}={'n/a (failed)' if v is None else text_of(v)}" for k, v in found))
    summary = report.get("summary")
    if summary:
        console.print("by severity: " + ", ".join(f"{k} {v}" for k, v in summary["by_severity"].items()))
    items = discrepancies_of(report)
    console.print(f"[bold]{len(items)} discrepancies[/]")
    if items:
        table = Table(show_lines=False)
        for col in ("severity", "subject", "field", "A", "value A", "B", "value B"):
            table.add_column(col)
        for d in items[:limit]:
            style = SEVERITY_STYLE.get(d["severity"], "")
            table.add_row(f"[{style}]{d['severity']}[/]", str(d.get("subject", "")), d["field"], d["system_a"],
                          text_of(d["value_a"]), d["system_b"], text_of(d["value_b"]))
        console.print(table)
        if len(items) > limit:
            console.print(f"... and {len(items) - limit} more (nexus audit result {view['audit_id']} --format md)")
