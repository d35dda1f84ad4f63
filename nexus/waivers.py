"""Waivers: accepted exceptions that silence a discrepancy until they expire.

A waiver names a subject (an email or a serial, compared case-insensitively), a field (``nexus.drift.fields``), an
optional system (it then only covers discrepancies that involve that system), a reason and an expiry (in the future,
at most :data:`MAX_DAYS` days away). Waived discrepancies are reported as waived, not counted.

Every kind of audit applies them. The fleet report builder (after ``nexus.history.HistoryStore.annotate``, so waived
findings keep their history)::

    active, waived = WaiverStore(runtime.redis).apply(discrepancies, now)
    # active: the discrepancies no waiver covers (count these)
    # waived: the others, each a copy with "waiver": {"id", "reason", "expires_at", "created_by"}

and the chord bodies of user, device and bulk audits (``tasks.compare``, and a bulk audit answered from snapshots),
just before the report is stored, in the same shape (``waived``, ``waived_count``; counts and summary without them)::

    report = WaiverStore(runtime.redis).apply_to_report(report)

Expiry needs no cron: ``apply`` evaluates every waiver at ``now``, so a waiver stops applying by itself the moment it
expires. Expired waivers stay visible to ``list(include_expired=True)`` for :data:`KEEP_EXPIRED_DAYS` days (so an
operator can see what just stopped applying) and are then pruned lazily by ``add``, ``list`` and ``apply``.

Redis: one hash ``nexus:waivers`` (waiver id -> JSON), no TTL. Times are stored as epoch seconds and shown as ISO-8601
UTC. Bad input raises ``nexus.errors.InvalidInput`` with one clear line (CLI exit 2).
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from nexus.audits.spec import validate_email, validate_serial
from nexus.drift.engine import entries_findings, summarize
from nexus.drift.fields import DEVICE_FIELDS, PERSON_FIELDS, SEVERITY
from nexus.errors import InvalidInput, WaiverNotFound
from nexus.history import iso
from nexus.systems import System

KEY = "nexus:waivers"
#: The furthest a waiver may expire: an exception is re-justified at least once a year.
MAX_DAYS = 365
#: Expired waivers stay listable (``--all``) this long, then are pruned.
KEEP_EXPIRED_DAYS = 30
MAX_REASON_CHARS = 500
MAX_WAIVERS = 10_000
_DAY_S = 86400.0
_ID_RE = re.compile(r"^w-[0-9a-f]{10}$")


@dataclass(frozen=True, slots=True)
class Waiver:
    id: str
    subject: str
    field: str
    reason: str
    expires_at: float  # epoch seconds
    created_at: float
    created_by: str | None = None
    system: str | None = None  # display name; None covers the field whatever the systems

    def active(self, now: float) -> bool:
        return now < self.expires_at

    def matches(self, d: Mapping[str, Any]) -> bool:
        if str(d.get("field") or "") != self.field:
            return False
        if str(d.get("subject") or "").strip().casefold() != self.subject.casefold():
            return False
        return self.system is None or self.system in (_display(d.get("system_a")), _display(d.get("system_b")))

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "subject": self.subject, "field": self.field, "system": self.system, "reason": self.reason,
            "expires_at": iso(self.expires_at), "created_at": iso(self.created_at), "created_by": self.created_by,
        }
        if now is not None:
            out["status"] = "active" if self.active(now) else "expired"
        return out

    def stamp(self) -> dict[str, Any]:
        """What a waived discrepancy carries: which waiver, why, until when, and who accepted it."""
        return {"id": self.id, "reason": self.reason, "expires_at": iso(self.expires_at), "created_by": self.created_by}

    def _stored(self) -> str:
        return json.dumps({"id": self.id, "subject": self.subject, "field": self.field, "reason": self.reason,
                           "expires_at": self.expires_at, "created_at": self.created_at,
                           "created_by": self.created_by, "system": self.system}, separators=(",", ":"))

    @classmethod
    def _load(cls, raw: Any) -> Waiver:
        d = json.loads(raw)
        return cls(id=d["id"], subject=d["subject"], field=d["field"], reason=d["reason"],
                   expires_at=float(d["expires_at"]), created_at=float(d["created_at"]),
                   created_by=d.get("created_by"), system=d.get("system"))


def _display(name: Any) -> str:
    try:
        return System.parse(str(name)).display
    except ValueError:
        return str(name)


def _subject_of(report: Mapping[str, Any]) -> str:
    return str(report.get("email") or report.get("serial") or "")


def _waive_one(report: Mapping[str, Any], match: Callable[[Mapping[str, Any]], Waiver | None]) -> dict[str, Any]:
    """A user or device report (or a bulk entry) with its waived discrepancies moved to ``waived``."""
    subject = _subject_of(report)
    kept: list[dict[str, Any]] = []
    waived: list[dict[str, Any]] = []
    for d in report.get("discrepancies") or ():
        item = dict(d) if d.get("subject") else dict(d, subject=subject)
        waiver = match(item)
        if waiver is None:
            kept.append(dict(d))
        else:
            waived.append({**item, "waiver": waiver.stamp()})
    out = {**report, "discrepancy_count": len(kept), "discrepancies": kept, "waived": waived,
           "waived_count": len(waived)}
    if "summary" in report:
        out["summary"] = summarize(kept)
    return out


def _epoch(when: datetime | float) -> float:
    if isinstance(when, datetime):
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return float(when)


def validate_subject(value: object) -> tuple[str, bool]:
    """(subject, is_person): an email, or else a serial."""
    if isinstance(value, str) and "@" in value:
        return validate_email(value), True
    try:
        return validate_serial(value), False
    except InvalidInput:
        raise InvalidInput(f"subject {value!r} is neither an email address nor a serial number") from None


def validate_field(value: object, is_person: bool) -> str:
    if not isinstance(value, str) or value.strip() not in SEVERITY:
        raise InvalidInput(f"unknown field {value!r}; expected one of {', '.join(sorted(SEVERITY))}")
    name = value.strip()
    expected = PERSON_FIELDS if is_person else DEVICE_FIELDS
    if name not in expected:
        kind = "a person (email)" if is_person else "a device (serial)"
        raise InvalidInput(f"field {name!r} never applies to {kind}; expected one of {', '.join(expected)}")
    return name


def validate_reason(value: object) -> str:
    if not isinstance(value, str) or not " ".join(value.split()):
        raise InvalidInput("a reason is required (why this exception is accepted)")
    reason = " ".join(value.split())  # one line: no newlines or control whitespace in listings and reports
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"the reason is longer than {MAX_REASON_CHARS} characters")
    return reason


def validate_expiry(expires_at: datetime | float, now: float) -> float:
    at = _epoch(expires_at)
    if at <= now:
        raise InvalidInput(f"expiry {iso(at)} is not in the future")
    if at > now + MAX_DAYS * _DAY_S:
        raise InvalidInput(f"expiry {iso(at)} is more than {MAX_DAYS} days away")
    return at


def validate_system(value: object) -> str | None:
    if value is None:
        return None
    try:
        return System.parse(str(value)).display
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def validate_waiver_id(value: object) -> str:
    text = str(value).strip().lower()
    if not _ID_RE.match(text):
        raise InvalidInput(f"{value!r} is not a waiver id (w- and 10 hex characters)")
    return text


class WaiverStore:
    def __init__(self, client: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.r = client
        self.clock = clock

    def add(
        self,
        subject: str,
        field: str,
        reason: str,
        expires_at: datetime | float,
        system: str | None = None,
        *,
        created_by: str | None = None,
    ) -> Waiver:
        """Validate and store a waiver. A second active waiver for the same subject, field and system is refused."""
        now = self.clock()
        subject, is_person = validate_subject(subject)
        waiver = Waiver(
            id=f"w-{secrets.token_hex(5)}", subject=subject, field=validate_field(field, is_person),
            reason=validate_reason(reason), expires_at=validate_expiry(expires_at, now), created_at=now,
            created_by=(created_by or "").strip()[:100] or None, system=validate_system(system),
        )
        current = self._all(now)
        active = [w for w in current if w.active(now)]
        for w in active:
            if (w.subject.casefold(), w.field, w.system) == (waiver.subject.casefold(), waiver.field, waiver.system):
                raise InvalidInput(f"{w.id} already waives {w.field} of {w.subject} until {iso(w.expires_at)}; "
                                   "remove it first to change it")
        if len(current) >= MAX_WAIVERS:
            raise InvalidInput(f"there are already {len(current)} waivers; the limit is {MAX_WAIVERS}")
        self.r.hset(KEY, waiver.id, waiver._stored())
        return waiver

    def get(self, waiver_id: str) -> Waiver:
        wid = validate_waiver_id(waiver_id)
        raw = self.r.hget(KEY, wid)
        if raw is None:
            raise WaiverNotFound(f"no waiver with id {wid}")
        return Waiver._load(raw)

    def list(self, include_expired: bool = False) -> list[Waiver]:
        """Waivers by expiry (soonest first); expired ones only with ``include_expired``."""
        now = self.clock()
        waivers = [w for w in self._all(now) if include_expired or w.active(now)]
        return sorted(waivers, key=lambda w: (w.expires_at, w.id))

    def remove(self, waiver_id: str) -> Waiver:
        """Delete a waiver and return it; WaiverNotFound (an InvalidInput) if there is none with that id."""
        waiver = self.get(waiver_id)
        self.r.hdel(KEY, waiver.id)
        return waiver

    def matcher(self, now: datetime | float | None = None) -> Callable[[Mapping[str, Any]], Waiver | None]:
        """The waiver covering a discrepancy (None: none does), for the waivers active at ``now`` (default: the
        store's clock), read once; when several match, the one that expires last."""
        at = self.clock() if now is None else _epoch(now)
        waivers = sorted((w for w in self._all(at) if w.active(at)), key=lambda w: (-w.expires_at, w.id))
        by_subject: dict[str, builtins.list[Waiver]] = {}
        for w in waivers:
            by_subject.setdefault(w.subject.casefold(), []).append(w)

        def match(d: Mapping[str, Any]) -> Waiver | None:
            candidates = by_subject.get(str(d.get("subject") or "").strip().casefold(), ())
            return next((w for w in candidates if w.matches(d)), None)

        return match

    def apply(
        self, discrepancies: Sequence[Mapping[str, Any]], now: datetime | float | None = None
    ) -> tuple[builtins.list[dict[str, Any]], builtins.list[dict[str, Any]]]:
        """(active, waived): waived ones are copies with ``"waiver": {id, reason, expires_at, created_by}``."""
        match = self.matcher(now)
        active: builtins.list[dict[str, Any]] = []
        waived: builtins.list[dict[str, Any]] = []
        for d in discrepancies:
            waiver = match(d)
            if waiver is None:
                active.append(dict(d))
            else:
                waived.append({**d, "waiver": waiver.stamp()})
        return active, waived

    def apply_to_report(self, report: Mapping[str, Any], now: datetime | float | None = None) -> dict[str, Any]:
        """A user, device or bulk report with the active waivers applied, in the fleet report's shape.

        Waived discrepancies leave ``discrepancies`` (and ``discrepancy_count``, ``summary``, ``people_with_drift``)
        for ``waived`` (each with its subject and ``waiver``) and ``waived_count``; a bulk report's entries get the
        same, and its top level lists every entry's waived ones. A report that already has ``waived`` (a fleet
        report, whose builder applies waivers after history) is returned unchanged.
        """
        if "waived" in report:
            return dict(report)
        match = self.matcher(now)
        if "entries" not in report:
            return _waive_one(report, match)
        entries = [_waive_one(e, match) for e in report["entries"]]
        counted = entries_findings(entries)  # a finding two entries show counts once
        waived = entries_findings({"discrepancies": e["waived"]} for e in entries)
        return {**report, "people_with_drift": sum(1 for e in entries if e["discrepancy_count"]),
                "discrepancy_count": len(counted), "summary": summarize(counted), "entries": entries,
                "waived": waived, "waived_count": len(waived)}

    def _all(self, now: float) -> builtins.list[Waiver]:
        """Every stored waiver; those expired more than KEEP_EXPIRED_DAYS ago (or unreadable) are pruned."""
        waivers: builtins.list[Waiver] = []
        stale: builtins.list[str] = []
        for wid, raw in self.r.hgetall(KEY).items():
            try:
                waiver = Waiver._load(raw)
            except (ValueError, KeyError, TypeError):
                stale.append(wid.decode() if isinstance(wid, bytes) else str(wid))
                continue
            if waiver.expires_at + KEEP_EXPIRED_DAYS * _DAY_S <= now:
                stale.append(waiver.id)
            else:
                waivers.append(waiver)
        if stale:
            self.r.hdel(KEY, *stale)
        return waivers


__all__ = ["KEEP_EXPIRED_DAYS", "MAX_DAYS", "Waiver", "WaiverStore"]
