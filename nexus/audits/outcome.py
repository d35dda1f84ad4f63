"""What a finished report says about its own outcome: which systems answered, which were not read and why, which
discrepancies count. Pure functions over the stored report of any kind (user, device, bulk, fleet), so the
finishing path, the CLI's gates and the MCP tools read a report the same way.

Where each kind records its systems:

    user, device   ``systems_available`` / ``systems_failed`` / ``errors`` {System: {type, kind, message}}
                   (a device audit's FedEx may be in ``systems_skipped``: not needed, neither read nor failed)
    bulk           per entry ``systems_available``; ``systems_failed`` is the union over the entries and
                   ``errors`` {System: {..., people}}; answered from snapshots it also has ``stale``
    fleet          ``systems_available`` (fresh, degraded or stale), ``systems_failed``, ``systems_stale``, ``errors``

A *stale* system (its last good snapshot stood in) was not read this time: it never counts as answered, and it is
listed with the failed ones (``--require-all`` treats it as a failure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nexus.drift.fields import SEVERITY_ORDER, Severity
from nexus.exports import discrepancies_of

#: The one error text of an audit in which no system could be read (followed by each system's reason).
NOTHING_READ = "no system could be read"

SEVERITIES: tuple[str, ...] = tuple(s.value for s in sorted(Severity, key=lambda s: SEVERITY_ORDER[s]))


def _stale(report: Mapping[str, Any]) -> list[str]:
    names = list(report.get("systems_stale") or ())
    names += [s for s in (report.get("stale") or {}) if s not in names]
    return names


def _entries(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = report.get("entries")
    return [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []


def systems_answered(report: Mapping[str, Any]) -> list[str]:
    """Display names of the systems read this time (for a bulk report: for at least one person), checked order."""
    if "entries" in report:
        seen = {s for e in _entries(report) for s in e.get("systems_available") or ()}
        order = list(report.get("systems_checked") or ()) + sorted(seen)
        available = [s for s in dict.fromkeys(order) if s in seen]
    else:
        available = list(report.get("systems_available") or ())
    stale = set(_stale(report))
    return [s for s in available if s not in stale]


def _reason(error: Any) -> str:
    if not isinstance(error, Mapping):
        return "not read"
    message = " ".join(str(error.get("message") or "").split())
    text = f"{error.get('type') or 'Error'}: {message}" if message else str(error.get("type") or "not read")
    if isinstance(error.get("people"), int):
        text += f" (for {error['people']} {'person' if error['people'] == 1 else 'people'})"
    return text


def systems_not_read(report: Mapping[str, Any]) -> dict[str, str]:
    """{display name: one-line reason} of every system that failed (for anyone) or only stood in as stale."""
    errors = report.get("errors") or {}
    out: dict[str, str] = {}
    for system in report.get("systems_failed") or ():
        out[system] = _reason(errors.get(system))
    for system in _stale(report):
        if system not in out:
            age = ((report.get("stale") or {}).get(system) or {}).get("age_s")
            when = f" {round(float(age))} s old" if isinstance(age, int | float) else ""
            out[system] = f"stale (last good snapshot{when} stood in); {_reason(errors.get(system))}"
    return out


def nothing_read(report: Mapping[str, Any]) -> bool:
    """True when the audit looked at systems and none of them answered: its report says nothing about drift."""
    checked = report.get("systems_checked") or ()
    return bool(checked or systems_not_read(report)) and not systems_answered(report)


def failure_text(report: Mapping[str, Any], limit: int = 2000) -> str:
    """``no system could be read: Workday: AuthError: ...; ActiveDirectory: ...`` (bounded)."""
    reasons = systems_not_read(report)
    if not reasons:
        reasons = {s: "not read" for s in report.get("systems_checked") or ()}
    text = f"{NOTHING_READ}: " + "; ".join(f"{system}: {reason}" for system, reason in reasons.items())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_waived(d: Mapping[str, Any]) -> bool:
    return bool(d.get("waiver") or d.get("waived")) or d.get("status") == "waived"


def counted_discrepancies(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The discrepancies the report counts: waived ones never do (whichever way a report marks them)."""
    return [d for d in discrepancies_of(report) if not _is_waived(d)]


def severity_rank(severity: str) -> int:
    """0 for critical .. 3 for low; an unknown severity ranks below low."""
    try:
        return SEVERITY_ORDER[Severity(severity)]
    except ValueError:
        return len(SEVERITY_ORDER)


def at_or_above(discrepancies: Iterable[Mapping[str, Any]], severity: str) -> list[Mapping[str, Any]]:
    """The discrepancies whose severity is ``severity`` or more severe."""
    threshold = severity_rank(severity)
    return [d for d in discrepancies if severity_rank(str(d.get("severity"))) <= threshold]


__all__ = [
    "NOTHING_READ",
    "SEVERITIES",
    "at_or_above",
    "counted_discrepancies",
    "failure_text",
    "nothing_read",
    "severity_rank",
    "systems_answered",
    "systems_not_read",
]
