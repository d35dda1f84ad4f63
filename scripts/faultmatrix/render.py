"""The published table: :data:`~.matrix.EXPECTED` (or observed outcomes) as the Markdown section of
``docs/reliability.md``, between its markers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .matrix import (
    AUDIT_KIND,
    EXPECTED,
    FAULT_LABELS,
    MATRIX_PEOPLE,
    MATRIX_SEED,
    NOTES,
    RIG_CONCURRENCY,
    RIG_ENV,
    RIG_WORKERS,
    Cell,
    Fault,
    Outcome,
    all_cells,
)

START_MARKER = "<!-- fault-matrix:start -->"
END_MARKER = "<!-- fault-matrix:end -->"


def _fmt_waits(waits: Sequence[float]) -> str:
    return ", ".join(f"{w:g}" for w in waits) if waits else "-"


def _fmt_breaker(state: str, failures: int) -> str:
    if state == "closed":
        return "closed" + (f" ({failures} failure{'s' if failures != 1 else ''})" if failures else "")
    return f"closed → {state}"


def _fmt_error(o: Outcome, status: int | None = None) -> str:
    if not o.error:
        return "-"
    return f"`{o.error}` ({o.kind}{f', HTTP {status}' if status else ''})"


def _fmt_result(o: Outcome) -> str:
    if not o.completed:
        return "audit did NOT complete"
    return "failed, in `systems_failed`" if o.failed else "read"


def _fmt_notes(cell: Cell, o: Outcome) -> str:
    parts: list[str] = []
    if o.next_error:
        parts.append(f"next audit: `{o.next_error}`, {o.next_requests} requests")
    if o.fleet is not None:
        f = o.fleet
        what = f"`{f.error}` ({f.kind})" + (f" on page {f.page + 1}" if f.page is not None else "")
        parts.append(f"fleet audit: {'failed' if f.failed else 'read'}, {what} after {f.attempts} "
                     f"attempt{'s' if f.attempts != 1 else ''}, {f.requests} requests, breaker "
                     f"{_fmt_breaker(f.breaker, f.breaker_failures)}")
    elif cell[1] is Fault.TRUNCATED:
        parts.append("fleet audit: n/a (FedEx has no listing)")
    if cell in NOTES:
        parts.append(NOTES[cell])
    return "; ".join(parts)


def render_table(outcomes: Mapping[Cell, Outcome]) -> str:
    """The Markdown table, one row per cell, in :func:`all_cells` order (cells missing from ``outcomes`` are left
    out)."""
    head = ("| System | Fault | Audit | System in report | Error in `errors` | Attempts | Waits (s) | Requests "
            "| Breaker | Notes |")
    rule = "|---|---|---|---|---|---|---|---|---|---|"
    rows = [head, rule]
    for cell in all_cells():
        if cell not in outcomes:
            continue
        system, fault = cell
        o = outcomes[cell]
        rows.append(
            f"| {system.display} | {FAULT_LABELS[fault]} | {AUDIT_KIND[system]} | {_fmt_result(o)} | "
            f"{_fmt_error(o, o.status)} | {o.attempts} | {_fmt_waits(o.waits)} | {o.requests} | "
            f"{_fmt_breaker(o.breaker, o.breaker_failures)} | {_fmt_notes(cell, o)} |"
        )
    return "\n".join(rows)


GENERAL_NOTES: tuple[str, ...] = (
    "**Attempts** are request attempts, as the seed specifies: each request a fetch sends is tried up to 3 times "
    "with backoff (the waits are the worker's `[resilience] ... Retry attempt` lines), and the column shows the "
    "failure marker's `attempts` in the report's `errors` (those of the request that failed), or, when the system "
    "was read, the most attempts one of its requests needed. The fetch task itself is retried by a Celery "
    "countdown only for what a request cannot wait out (another audit's half-open trial, our own request budget).",
    "**Requests** are what reached the system in the simulator's request log during the audit, auth requests "
    "included (the worker holds a token from a warm-up audit, so a re-authentication shows as one more request).",
    "**Breaker**: each system's breaker is closed with no failures before its cell. Every failed REQUEST (after "
    "all its attempts) that says the system is unhealthy (transient or malformed) counts once; throttling, an "
    "expired token and a success prove the system is alive and reset the count. One audit of one subject is one "
    "failed request here, so with `NEXUS_BREAKER_FAIL_MAX=3` the breaker records one failure and stays closed; "
    "consecutive failed requests open it (`tests/test_resilience_requests.py`: requests 1-5 retry 3 times, the "
    "5th opens it, the 6th fails fast without sending anything).",
    "**Truncated paging**: an audit's per-subject lookups never page, so the audit itself is unaffected. The fault "
    "is exercised by a fleet audit (`tasks/fleet.py`), which pages every system's listing through its client's "
    "`fetch_page` chain and retries a failed PAGE (not the whole listing) with countdowns; the page number is 1-based "
    "here, 0-based in the report's `errors`. The org is large enough that every listing has two pages or more.",
    "**Flaky, every 2nd request**: the fault counts requests, so the drill spends one passing request first and the "
    "audit's first request is the failing one. Each request is retried on its own, so a fetch of several requests "
    "(Helix: return tickets and the asset) still reads the system, and a bulk audit against a system that fails one "
    "request in two reads every person. AD is the exception shown: after a dropped connection every attempt is a "
    "bind and then the search, so a fault that fails every 2nd LDAP operation fails every attempt's search.",
)


def _rig_line() -> str:
    settings = ", ".join(f"`{k}={v}`" for k, v in RIG_ENV.items())
    return (f"Rig: `nexus/testing/cluster.py` with {MATRIX_PEOPLE} people (seed {MATRIX_SEED}), a private Redis, "
            f"every simulator and {RIG_WORKERS} Celery worker process ({RIG_CONCURRENCY} pool slot); {settings}.")


def render_section(outcomes: Mapping[Cell, Outcome] | None = None) -> str:
    """What ``docs/reliability.md`` holds between the markers (the table of :data:`EXPECTED` by default)."""
    table = render_table(EXPECTED if outcomes is None else outcomes)
    notes = "\n".join(f"- {note}" for note in GENERAL_NOTES)
    return (
        f"{START_MARKER}\n"
        "<!-- generated by scripts/fault_matrix.py from scripts/faultmatrix/: do not edit by hand -->\n\n"
        f"{_rig_line()}\n\n"
        f"{table}\n\n"
        f"{notes}\n\n"
        f"{END_MARKER}"
    )


def update_document(text: str, section: str | None = None) -> str:
    """``text`` with the part between the markers (markers included) replaced by ``section``."""
    section = render_section() if section is None else section
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the document lacks the {START_MARKER} ... {END_MARKER} markers")
    return text[:start] + section + text[end + len(END_MARKER):]


def extract_section(text: str) -> str:
    """The part between the markers, markers included."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the document lacks the {START_MARKER} ... {END_MARKER} markers")
    return text[start:end + len(END_MARKER)]
