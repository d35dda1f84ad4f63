"""`nexus audit diff A B`: what is new, resolved, persisting (and unknown) from audit A's report to audit B's.

Registered on ``audit_app`` by :mod:`nexus.cli.audit`.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from nexus.cli.common import EXIT_FAILED, EXIT_USAGE, fail, print_json

STATUS_STYLE = {"new": "bold red", "resolved": "green", "persisting": "yellow", "unknown": "dim"}


def _report(audit_id: str) -> dict[str, Any]:
    from nexus.errors import InvalidInput, ServiceUnavailable
    from nexus.facade import Nexus

    try:
        view = Nexus().get(audit_id, include_report=True)
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    except ServiceUnavailable as exc:
        fail(str(exc), EXIT_FAILED)
    if view["status"] != "done" or "report" not in view:
        fail(f"audit {view['audit_id']} is {view['status']}; no report to compare", EXIT_FAILED)
    return view


def diff(
    audit_a: Annotated[str, typer.Argument(metavar="A", help="The earlier audit id.")],
    audit_b: Annotated[str, typer.Argument(metavar="B", help="The later audit id.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Rows shown per status in the table.")] = 50,
) -> None:
    """Compare two finished audits' reports: new, resolved, persisting, and unknown (not re-checked by B)."""
    from nexus.history import diff_reports

    view_a, view_b = _report(audit_a), _report(audit_b)
    if view_a["created_at"] > view_b["created_at"]:
        print(f"note: {view_a['audit_id']} is newer than {view_b['audit_id']}; showing changes from A to B",
              file=sys.stderr)
    changes = diff_reports(view_a["report"], view_b["report"])
    counts = {name: len(items) for name, items in changes.items()}
    if json_out:
        print_json({"a": view_a["audit_id"], "b": view_b["audit_id"], "counts": counts, **changes})
        return
    _print_table(view_a, view_b, changes, limit)


def _print_table(view_a: dict[str, Any], view_b: dict[str, Any], changes: dict[str, list[dict[str, Any]]],
                 limit: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped: do not squeeze the table
    counts = ", ".join(f"{len(items)} {name}" for name, items in changes.items())
    console.print(f"[bold]{view_a['audit_id']} -> {view_b['audit_id']}[/]: {counts}")
    rows = [(name, d) for name, items in changes.items() for d in items[:limit]]
    if not rows:
        console.print("No discrepancies in either report.")
        return
    table = Table()
    for col in ("status", "severity", "subject", "field", "A", "value A", "B", "value B", "note"):
        table.add_column(col)
    for name, d in rows:
        note = d.get("reason", "")
        if d.get("changed_from"):
            before = d["changed_from"]
            note = f"was {before.get('value_a')!s} / {before.get('value_b')!s}"
        table.add_row(f"[{STATUS_STYLE[name]}]{name}[/]", str(d.get("severity", "")), escape(str(d.get("subject", ""))),
                      str(d.get("field", "")), str(d.get("system_a", "")), escape(str(d.get("value_a"))),
                      str(d.get("system_b", "")), escape(str(d.get("value_b"))), escape(note))
    console.print(table)
    hidden = sum(max(0, len(items) - limit) for items in changes.values())
    if hidden:
        console.print(f"... and {hidden} more (use --json for everything)")
