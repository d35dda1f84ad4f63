"""`nexus waiver add | list | remove`: accepted exceptions, reported as waived (not counted) until they expire."""

from __future__ import annotations

import getpass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nexus.cli.common import EXIT_FAILED, EXIT_USAGE, fail, print_json

if TYPE_CHECKING:
    from nexus.waivers import Waiver, WaiverStore

waiver_app = typer.Typer(no_args_is_help=True, help="Waivers: accepted exceptions, reported as waived and not "
                                                    "counted until they expire.")


def _store() -> WaiverStore:
    from nexus.runtime import current
    from nexus.waivers import WaiverStore

    return WaiverStore(current().redis)


def parse_expiry(text: str) -> datetime:
    """``2027-01-31`` (valid through that day: expires at the next midnight UTC) or an ISO date-time (UTC if naive)."""
    from nexus.errors import InvalidInput

    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--expires {text!r} is not a date (YYYY-MM-DD) or an ISO date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def _run(action: Any) -> Any:
    """Run a store call: bad input -> exit 2, Redis unreachable -> exit 1, each with one line."""
    from nexus.errors import InvalidInput

    try:
        return action()
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    except _redis_errors() as exc:
        fail(f"cannot reach Redis ({type(exc).__name__}): {exc}", EXIT_FAILED)


def _describe(w: Waiver) -> str:
    scope = f" ({w.system})" if w.system else ""
    return f"{w.id}  {w.subject}  {w.field}{scope}  until {w.to_dict()['expires_at']}  {w.reason}"


@waiver_app.command("add")
def add(
    subject: Annotated[str | None, typer.Option(help="Email or serial number the waiver covers (required).")] = None,
    field: Annotated[str | None, typer.Option(help="Discrepancy field, e.g. job_title, device_owner (required).")]
    = None,
    reason: Annotated[str | None, typer.Option(help="Why the exception is accepted (required).")] = None,
    expires: Annotated[str | None, typer.Option(help="Last day it applies (YYYY-MM-DD, UTC) or an ISO date-time.")]
    = None,
    days: Annotated[int | None, typer.Option(help="Or: applies for this many days from now (1-365).")] = None,
    system: Annotated[str | None, typer.Option(help="Only discrepancies involving this system (id or name).")]
    = None,
    by: Annotated[str | None, typer.Option(help="Who accepted it (default: the OS user).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the waiver as JSON.")] = False,
) -> None:
    """Waive one subject's field (optionally for one system) until an expiry at most 365 days away."""
    from nexus.errors import InvalidInput
    from nexus.waivers import MAX_DAYS

    missing = [name for name, value in (("--subject", subject), ("--field", field), ("--reason", reason))
               if value is None]
    if missing:
        fail(f"missing {', '.join(missing)}", EXIT_USAGE)
    if (expires is None) == (days is None):
        fail("give exactly one of --expires DATE or --days N", EXIT_USAGE)
    if days is not None and not 1 <= days <= MAX_DAYS:
        fail(f"--days must be between 1 and {MAX_DAYS}", EXIT_USAGE)
    store = _store()
    try:
        expiry: datetime | float = (parse_expiry(expires) if expires is not None
                                    else store.clock() + (days or 0) * 86400.0)
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    waiver: Waiver = _run(lambda: store.add(str(subject), str(field), str(reason), expiry, system,
                                            created_by=by or _os_user()))
    if json_out:
        print_json(waiver.to_dict(store.clock()))
    else:
        print(f"added {_describe(waiver)}")


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


@waiver_app.command("list")
def list_waivers(
    include_expired: Annotated[bool, typer.Option("--all", help="Include waivers expired in the last 30 days.")]
    = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
) -> None:
    """Waivers, soonest expiry first (active ones only unless --all)."""
    store = _store()
    waivers: list[Waiver] = _run(lambda: store.list(include_expired=include_expired))
    now = store.clock()
    if json_out:
        print_json({"waivers": [w.to_dict(now) for w in waivers]})
        return
    if not waivers:
        print("no waivers" if include_expired else "no active waivers")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for col in ("id", "subject", "field", "system", "expires (UTC)", "status", "by", "reason"):
        table.add_column(col)
    for w in waivers:
        d = w.to_dict(now)
        table.add_row(w.id, escape(w.subject), w.field, w.system or "any", d["expires_at"], d["status"],
                      escape(w.created_by or ""), escape(w.reason))
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


@waiver_app.command("remove")
def remove(waiver_id: Annotated[str, typer.Argument(metavar="ID", help="The waiver id (w-...).")]) -> None:
    """Delete a waiver: its discrepancies count again from the next report."""
    store = _store()
    waiver: Waiver = _run(lambda: store.remove(waiver_id))
    print(f"removed {_describe(waiver)}")
