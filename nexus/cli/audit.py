"""`nexus audit submit | status | result | list | diff` (``diff`` lives in :mod:`nexus.cli.diff`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nexus.cli.common import (
    EXIT_CODES_HELP,
    EXIT_DRIFT,
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    fail,
    note,
    print_json,
)
from nexus.cli.diff import diff

#: Rich help joins lines; a blank line between the rows of the table keeps one row per line.
EXIT_CODES_EPILOG = EXIT_CODES_HELP.replace("\n", "\n\n")

audit_app = typer.Typer(no_args_is_help=True, help="Submit audits and read their status and reports.",
                        epilog=EXIT_CODES_EPILOG)

MAX_EMAILS_FILE_BYTES = 50 * 1024 * 1024


def _facade() -> Any:
    from nexus.facade import Nexus

    return Nexus()


def _read_emails_file(path: Path) -> list[str]:
    if str(path) != "-" and not path.is_file():
        why = "is a directory" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
        fail(f"emails file {path} {why}", EXIT_USAGE)
    try:
        raw = sys.stdin.buffer.read(MAX_EMAILS_FILE_BYTES + 1) if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", EXIT_USAGE)
    if len(raw) > MAX_EMAILS_FILE_BYTES:
        fail(f"emails file is larger than {MAX_EMAILS_FILE_BYTES // (1024 * 1024)} MB", EXIT_USAGE)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text", EXIT_USAGE)
    # One address per line; blank lines and # comments are ignored; a CSV's first column is taken.
    emails = []
    for line in text.splitlines():
        item = line.split(",", 1)[0].strip()
        if item and not item.startswith("#") and item.lower() != "email":
            emails.append(item)
    return emails


def _progress_line(view: dict[str, Any]) -> str:
    p = view["progress"]
    systems = " ".join(f"{name}:{info.get('status')}" for name, info in sorted(p.get("systems", {}).items()))
    return f"{view['status']} {p.get('done', 0)}/{p.get('total', 0)} {systems}"


def _severity(fail_on: str | None) -> str | None:
    from nexus.audits.outcome import SEVERITIES

    if fail_on is None:
        return None
    value = fail_on.strip().lower()
    if value not in SEVERITIES:
        fail(f"unknown severity {fail_on!r} for --fail-on; expected one of {', '.join(SEVERITIES)}", EXIT_USAGE)
    return value


def gate(view: dict[str, Any], *, fail_on: str | None = None, require_all: bool = False) -> tuple[int, str]:
    """The exit code of a finished (or failed) audit and one line saying why. Precedence: 1, then 4, then 3.

    1: the audit failed. 4 (``require_all``): a system was not read (failed for anyone, or stale). 3 (``fail_on``):
    a discrepancy the report counts (waived ones never do) at or above that severity. Else 0, partial or not.
    """
    from nexus.audits.outcome import at_or_above, counted_discrepancies, systems_not_read

    audit_id = view["audit_id"]
    if view["status"] != "done":
        return EXIT_FAILED, f"audit {audit_id} {view['status']}" + (f": {view['error']}" if view.get("error") else "")
    report = view.get("report") or {}
    if require_all and (missing := systems_not_read(report)):
        return EXIT_INCOMPLETE, ("--require-all: not every system was read: "
                                 + "; ".join(f"{system}: {why}" for system, why in missing.items()))
    if fail_on and (hits := at_or_above(counted_discrepancies(report), fail_on)):
        return EXIT_DRIFT, f"--fail-on {fail_on}: {len(hits)} discrepancies at or above {fail_on}"
    return EXIT_OK, ""


def _exit_for(view: dict[str, Any], fail_on: str | None, require_all: bool) -> None:
    code, why = gate(view, fail_on=fail_on, require_all=require_all)
    if code == EXIT_FAILED:
        fail(why, code)
    if code != EXIT_OK:
        note(f"{why} (exit {code})")
        raise typer.Exit(code)


def _wait(nx: Any, audit_id: str, timeout: float, quiet: bool) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TextColumn("{task.fields[systems]}"), console=console,
                  disable=quiet or not console.is_terminal, transient=True) as bar:
        task = bar.add_task(audit_id[:8], total=1, systems="")

        def update(view: dict[str, Any]) -> None:
            p = view["progress"]
            systems = " ".join(f"{k}:{v.get('status')}" for k, v in sorted(p.get("systems", {}).items()))
            bar.update(task, total=max(p.get("total", 0), 1), completed=p.get("done", 0), systems=systems)

        def unreachable(exc: Exception) -> None:
            note(f"{exc}; retrying until the {timeout:g}s --timeout")

        return nx.wait(audit_id, timeout, on_progress=update, submitted=True, on_unreachable=unreachable)


@audit_app.command("submit", epilog=EXIT_CODES_EPILOG)
def submit(
    email: Annotated[str | None, typer.Option(help="Audit one person by email.")] = None,
    device: Annotated[str | None, typer.Option(help="Audit one device by serial number.")] = None,
    emails_file: Annotated[Path | None, typer.Option(help="Audit many people: a file with one email per line "
                                                     "('-' reads stdin).")] = None,
    fleet: Annotated[bool, typer.Option(help="Audit everyone and every device.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the report (progress on stderr).")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait with --wait (exit 124 after).")] = 300.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    fail_on: Annotated[str | None, typer.Option(
        "--fail-on", metavar="SEVERITY", help="With --wait: exit 3 when a discrepancy (not waived) at or above "
        "SEVERITY (critical, high, medium, low) was found.")] = None,
    require_all: Annotated[bool, typer.Option(
        "--require-all", help="With --wait: exit 4 when any system could not be read (failed for anyone, or only "
        "its stale snapshot stood in).")] = False,
) -> None:
    """Enqueue an audit; with --wait, print its report when done (exit codes below)."""
    from nexus.errors import AuditLost, InvalidInput, ServiceUnavailable, WaitTimeout

    severity = _severity(fail_on)
    if (severity or require_all) and not wait:
        fail("--fail-on and --require-all need --wait (or use them with `nexus audit result ID`)", EXIT_USAGE)
    emails = _read_emails_file(emails_file) if emails_file is not None else None
    nx = _facade()
    try:
        request = nx.request_for(email=email, serial=device, emails=emails, fleet=fleet)
        audit_id = nx.submit(request)
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    except ServiceUnavailable as exc:
        fail(str(exc), EXIT_FAILED)
    print(f"submitted {request.describe()}: {audit_id}", file=sys.stderr)
    if not wait:
        if json_out:
            print_json({"audit_id": audit_id, "status": "queued", "kind": request.kind.value})
        else:
            print(audit_id)
        return
    try:
        view = _wait(nx, audit_id, timeout, quiet=False)
    except WaitTimeout as exc:
        if json_out:
            print_json({"audit_id": audit_id, "status": "timeout", "error": str(exc)})
        fail(str(exc), EXIT_TIMEOUT)
    except KeyboardInterrupt:
        if json_out:
            print_json({"audit_id": audit_id, "status": "interrupted"})
        fail(f"interrupted; audit {audit_id} keeps running (nexus audit status {audit_id})", EXIT_INTERRUPTED)
    except AuditLost as exc:
        if json_out:
            print_json({"audit_id": audit_id, "status": "lost", "error": str(exc)})
        fail(str(exc), EXIT_FAILED)
    except ServiceUnavailable as exc:
        fail(str(exc), EXIT_FAILED)
    _print_view(view, json_out)
    _exit_for(view, severity, require_all)


def _print_view(view: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(view)
        return
    from nexus.console import print_report_summary

    print_report_summary(view)


@audit_app.command("status")
def status(
    audit_id: Annotated[str, typer.Argument(help="The audit id.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
) -> None:
    """Status and progress of an audit."""
    view = _get(audit_id, include_report=False)
    if json_out:
        print_json(view)
    else:
        print(f"{view['audit_id']}  {view['description']}  {_progress_line(view)}")
        if view.get("error"):
            print(f"error: {view['error']}")


def _html(report: dict[str, Any]) -> str:
    """The HTML page, with the trend of the fleet audits up to this one (a fleet report) or the latest ones."""
    from nexus.exports_html import to_html
    from nexus.history import HistoryStore
    from nexus.runtime import current

    rt = current()
    history = HistoryStore(rt.redis, ttl_s=rt.settings.report_ttl_s)
    until = str(report["audit_id"]) if report.get("kind") == "fleet" and report.get("audit_id") else None
    trend = history.trend(until=until) if until is None or history.recorded(until)[0] else history.trend()
    return to_html(report, trend)


@audit_app.command("result", epilog=EXIT_CODES_EPILOG)
def result(
    audit_id: Annotated[str, typer.Argument(help="The audit id.")],
    fmt: Annotated[str, typer.Option("--format", help="json, csv, md or html (one self-contained page with the "
                                     "last fleet audits' trend).")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    fail_on: Annotated[str | None, typer.Option(
        "--fail-on", metavar="SEVERITY", help="Exit 3 when a discrepancy (not waived) at or above SEVERITY was "
        "found (the report is written first).")] = None,
    require_all: Annotated[bool, typer.Option(
        "--require-all", help="Exit 4 when any system could not be read (the report is written first).")] = False,
) -> None:
    """The report of a finished audit (exit 1 if it is not finished or it failed; gates as for submit --wait)."""
    from nexus.exports import FORMATS, render

    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", EXIT_USAGE)
    severity = _severity(fail_on)
    view = _get(audit_id, include_report=True)
    if view["status"] == "failed":
        fail(f"audit {audit_id} failed" + (f": {view['error']}" if view.get("error") else ""), EXIT_FAILED)
    if view["status"] != "done" or "report" not in view:
        fail(f"audit {audit_id} is {view['status']}; no report yet", EXIT_FAILED)
    text = _html(view["report"]) if fmt == "html" else render(view["report"], fmt)
    if output is not None:
        from nexus.fileutil import atomic_write

        try:
            atomic_write(output, text)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}", EXIT_FAILED)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    _exit_for(view, severity, require_all)


@audit_app.command("list")
def list_audits(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many (newest first).")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
) -> None:
    """Recent audits, newest first."""
    from nexus.errors import ServiceUnavailable

    try:
        audits = _facade().list(limit)
    except ServiceUnavailable as exc:
        fail(str(exc), EXIT_FAILED)
    if json_out:
        print_json({"audits": audits})
        return
    for a in audits:
        when = str(a["created_at"])[:19].replace("T", " ") + "Z"  # the view's ISO time (UTC), to the second
        print(f"{a['audit_id']}  {when}  {a['status']:<7}  {a['description']}")


def _get(audit_id: str, *, include_report: bool) -> dict[str, Any]:
    from nexus.errors import InvalidInput, ServiceUnavailable

    try:
        return _facade().get(audit_id, include_report=include_report)
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    except ServiceUnavailable as exc:
        fail(str(exc), EXIT_FAILED)


audit_app.command("diff")(diff)
