"""The mass-drift guard: a listing that suddenly shrinks far below its last good size is not believed.

The classic failure of identity tooling is a source that answers "successfully" with nothing, or with a tenth of its
records (a broken filter, a half-replicated directory, an expired scope), and a report that then says everyone is
missing. Per stream the guard remembers the record count of the last GOOD snapshot (``nexus:fleet:lastgood:<stream>``,
NEXUS_FLEET_GUARD_TTL_S). A snapshot with fewer than ``(1 - NEXUS_FLEET_GUARD_DROP)`` of that count (default: fewer
than half) marks its system ``degraded``: its records are still compared (what it does say is still evidence), but
every finding that rests on the ABSENCE of its records is suppressed (``account_exists`` against AD or Entra), and the
report names the system, both counts and the reason. A degraded snapshot never becomes the new reference, so a
source that stays broken stays flagged until it recovers.

Only listings that describe the population are guarded: Helix's return tickets (a handful, legitimately volatile)
and FedEx (tracked numbers, not a listing) are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nexus.drift import fields as F
from nexus.systems import System

#: Streams the guard watches.
GUARDED = ("workday", "ad", "entra", "intune", "lansweeper", "helix")

#: Findings that mean "this system has no record of X": meaningless when that system lost most of its records.
#: The device rules have no presence rule today (a device missing from Intune or Lansweeper is not a finding), so
#: the device systems suppress nothing; a future presence rule belongs here.
ABSENCE_FIELDS: dict[System, frozenset[str]] = {
    System.AD: frozenset({F.ACCOUNT_EXISTS}),
    System.ENTRA: frozenset({F.ACCOUNT_EXISTS}),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    stream: str
    records: int
    last_good: int | None
    degraded: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "last_good": self.last_good, "reason": self.reason}


def judge(stream: str, records: int, last_good: int | None, drop: float) -> Verdict:
    """Degraded when ``records < (1 - drop) * last_good``; no reference (a first audit) is never degraded."""
    if stream not in GUARDED or not last_good:
        return Verdict(stream, records, last_good, False)
    floor = (1.0 - drop) * last_good
    if records < floor:
        share = records / last_good
        reason = (f"{records} records, {share:.0%} of the last good snapshot's {last_good} (below the "
                  f"{1.0 - drop:.0%} floor): findings of missing records are suppressed")
        return Verdict(stream, records, last_good, True, reason)
    return Verdict(stream, records, last_good, False)


def suppress(
    discrepancies: Iterable[Mapping[str, Any]], degraded: Iterable[System]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, suppressed): drop the absence findings against each degraded system."""
    rules = {s.display: ABSENCE_FIELDS.get(s, frozenset()) for s in degraded}
    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for d in discrepancies:
        fields = rules.get(str(d.get("system_b")), frozenset())
        if d.get("field") in fields and d.get("value_b") is None:
            dropped.append(dict(d))
        else:
            kept.append(dict(d))
    return kept, dropped


__all__ = ["ABSENCE_FIELDS", "GUARDED", "Verdict", "judge", "suppress"]
