"""Drift history: what is new, what persists (and since when), what was resolved since the previous fleet audit.

Identity of a discrepancy: ``(subject, field, {system_a, system_b})``. The subject compares trimmed and
case-insensitively, the pair of systems is unordered, and the values are NOT part of the identity: a title that
changed from one wrong value to another is the same disagreement, still ``persisting`` (with ``changed_from``).

Use from the fleet report builder (once per fleet audit, after the comparison)::

    store = HistoryStore(runtime.redis, ttl_s=settings.report_ttl_s)
    result = store.annotate_full(audit_id, discrepancies, now, available={"Workday", "Entra", ...})
    result.annotated   # the current discrepancies, each with "history": "new" | "persisting" and "since"
    result.resolved    # the previous audit's discrepancies that are gone ("history": "resolved")
    result.unknown     # previous ones that could not be re-checked: a system they or their rule need was not read
    result.previous_audit_id   # the audit compared against (None: no earlier fleet audit on record)

    annotated, resolved = store.annotate(audit_id, discrepancies, now)   # the short form

Annotate every discrepancy BEFORE applying waivers (``nexus.waivers.WaiverStore.apply``), so a waived finding keeps its
``since`` and shows as ``persisting``, not ``new``, on the day its waiver expires.

Only what was observed can resolve a finding. ``available`` is the set of systems (ids or display names) read fresh
and whole in this audit (the fleet report leaves out failed, degraded and stale ones). A previous discrepancy is
``resolved`` only if every system it involves AND every system its rule needs to decide it was read
(:func:`nexus.drift.rules.undecided`: an Intune ``compliance`` finding also needs the owner's Workday status and the
Helix register, AD vs Entra is compared only while Workday cannot be read); otherwise it is ``unknown``, with the
reason, and it is carried into this audit's record with its ``since``, so the next audit that can see it again
reports it as persisting (or resolved). ``available=None`` means every system answered.

Recording is idempotent per audit id: annotating the same audit again (a redelivered compare task) gives the same
labels and the same ``since`` values, writes the same record, and never moves the "last fleet audit" pointer (only an
audit's first recording does). A first recording and the pointer move happen in one MULTI, under a short Redis lock,
so two fleet audits finishing together chain one after the other instead of both comparing against the same parent.

Redis keys (prefix ``nexus:history:``), all expiring after ``ttl_s`` (refreshed by each recording):
    last_fleet        the id of the last recorded fleet audit
    fleet:<id>        hash: one field per identity (a compact JSON key) -> JSON record (the discrepancy's seven fields,
                      ``history`` and ``since``); the field ``meta`` -> {"prev": <previous id or null>, "recorded_at"}
    lock              held while a recording reads the pointer and writes

If the previous audit's record has expired (more than ``ttl_s`` between fleet audits), every current discrepancy is new.

:func:`diff_reports` (also ``HistoryStore.diff``) compares any two stored reports (user, device, bulk, fleet) without
Redis: ``{"new", "resolved", "persisting", "unknown"}``; ``unknown`` holds A's findings that B could not decide (the
same rule, with the systems B read: :func:`read_systems`), or, for user and bulk reports, whose subject B did not
audit.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from nexus.drift.fields import SEVERITY_ORDER, Severity, scoped
from nexus.drift.rules import undecided
from nexus.exports import discrepancies_of
from nexus.systems import System

PREFIX = "nexus:history:"
LAST_FLEET = PREFIX + "last_fleet"
LOCK = PREFIX + "lock"
META = "meta"
#: The fields of a discrepancy kept in the history record (with ``history`` and ``since``).
RECORD_FIELDS = ("subject", "field", "system_a", "value_a", "system_b", "value_b", "severity")
_HSET_CHUNK = 5_000

Key = tuple[str, str, frozenset[str]]


def _system_name(name: str) -> str:
    """Display name of a system given as id or display name; other names (``Policy``) unchanged."""
    try:
        return System.parse(name).display
    except ValueError:
        return name


def identity(d: Mapping[str, Any]) -> Key:
    """The identity of a discrepancy: values are not part of it."""
    systems = frozenset(_system_name(str(d.get(k) or "")) for k in ("system_a", "system_b"))
    return (str(d.get("subject") or "").strip().casefold(), str(d.get("field") or ""), systems)


def _key_field(key: Key) -> str:
    """The Redis hash field of an identity: a JSON list, so it can never equal the ``meta`` field."""
    return json.dumps([key[0], key[1], *sorted(key[2])], separators=(",", ":"), ensure_ascii=False)


def iso(when: datetime | float) -> str:
    """ISO-8601 UTC, seconds precision."""
    if isinstance(when, datetime):
        moment = when if when.tzinfo else when.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(when, UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _values_by_system(d: Mapping[str, Any]) -> dict[str, Any]:
    return {_system_name(str(d.get("system_a"))): d.get("value_a"),
            _system_name(str(d.get("system_b"))): d.get("value_b")}


def _changed_from(current: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any] | None:
    """The previous values, oriented like the current discrepancy, if they differ (system order may have swapped)."""
    before = _values_by_system(previous)
    if before == _values_by_system(current):
        return None
    return {
        "value_a": before.get(_system_name(str(current.get("system_a")))),
        "value_b": before.get(_system_name(str(current.get("system_b")))),
    }


def _record(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d.get(k) for k in RECORD_FIELDS}


def _sort_key(d: Mapping[str, Any]) -> tuple[int, str, str, str]:
    try:
        rank = SEVERITY_ORDER[Severity(str(d.get("severity")))]
    except ValueError:
        rank = len(SEVERITY_ORDER)
    return rank, str(d.get("subject") or "").casefold(), str(d.get("field") or ""), str(d.get("system_b") or "")


def _normalise_available(available: Iterable[str] | None) -> set[System] | None:
    """The systems read, parsed (ids or display names; names of no system, such as ``Policy``, are ignored)."""
    if available is None:
        return None
    read: set[System] = set()
    for name in available:
        try:
            read.add(System.parse(str(name)))
        except ValueError:
            continue
    return read


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class HistoryResult:
    annotated: list[dict[str, Any]]
    resolved: list[dict[str, Any]]
    unknown: list[dict[str, Any]] = field(default_factory=list)
    previous_audit_id: str | None = None

    def counts(self) -> dict[str, int]:
        """``{"new", "persisting", "resolved", "unknown"}`` counts, for a report's summary."""
        new = sum(1 for d in self.annotated if d.get("history") == "new")
        return {"new": new, "persisting": len(self.annotated) - new, "resolved": len(self.resolved),
                "unknown": len(self.unknown)}


class HistoryStore:
    def __init__(self, client: redis.Redis, *, ttl_s: int, lock_timeout_s: float = 60.0) -> None:
        self.r = client
        self.ttl_s = ttl_s
        self.lock_timeout_s = lock_timeout_s

    @staticmethod
    def key(audit_id: str) -> str:
        return f"{PREFIX}fleet:{audit_id}"

    # -- reading ------------------------------------------------------------------------------------------------------
    def last_fleet(self) -> str | None:
        """The id of the last recorded fleet audit (None if none, or expired)."""
        raw = self.r.get(LAST_FLEET)
        return _s(raw) if raw else None

    def recorded(self, audit_id: str) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """(meta, {identity field: record}) of one recorded audit; (None, {}) if unknown or expired."""
        raw = self.r.hgetall(self.key(audit_id))
        meta: dict[str, Any] | None = None
        records: dict[str, dict[str, Any]] = {}
        for k, v in raw.items():
            name = _s(k)
            if name == META:
                meta = json.loads(v)
            else:
                records[name] = json.loads(v)
        return meta, records

    def trend(self, limit: int = 12, *, until: str | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` recorded fleet audits, oldest first, ending at ``until`` (default: the last one):
        ``{"audit_id", "recorded_at", "by_severity"}`` counting the findings each audit observed (new or
        persisting; ``unknown`` ones were carried, not seen)."""
        out: list[dict[str, Any]] = []
        audit_id = until or self.last_fleet()
        seen: set[str] = set()
        while audit_id and audit_id not in seen and len(out) < limit:
            seen.add(audit_id)
            meta, records = self.recorded(audit_id)
            if meta is None:
                break
            counts = dict.fromkeys(("critical", "high", "medium", "low"), 0)
            for rec in records.values():
                if rec.get("history") in ("new", "persisting"):
                    severity = str(rec.get("severity"))
                    counts[severity] = counts.get(severity, 0) + 1
            out.append({"audit_id": audit_id, "recorded_at": meta.get("recorded_at"), "by_severity": counts})
            audit_id = meta.get("prev")
        return out[::-1]

    # -- recording ----------------------------------------------------------------------------------------------------
    def annotate(
        self,
        audit_id: str,
        discrepancies: Sequence[Mapping[str, Any]],
        now: datetime | float,
        *,
        available: Iterable[str] | None = None,
        not_looked_for: Collection[str] = (),
        policy_hash: str | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(annotated, resolved); see :meth:`annotate_full` (which also returns the unknown ones)."""
        result = self.annotate_full(audit_id, discrepancies, now, available=available,
                                    not_looked_for=not_looked_for, policy_hash=policy_hash)
        return result.annotated, result.resolved

    def annotate_full(
        self,
        audit_id: str,
        discrepancies: Sequence[Mapping[str, Any]],
        now: datetime | float,
        *,
        available: Iterable[str] | None = None,
        not_looked_for: Collection[str] = (),
        policy_hash: str | None = None,
    ) -> HistoryResult:
        """Label the current discrepancies against the previous fleet audit and record this audit (idempotent).

        ``not_looked_for``: kinds this audit did not look for (turned off by its findings policy, or not judged:
        a mapping gives each one's reason);
        earlier findings of those kinds are ``unknown``, never resolved. ``policy_hash``: the findings policy's; when
        it differs from the previous audit's, a finding that is gone may be gone because a threshold, a severity or
        an exclusion moved, not because anything was fixed: ``unknown`` too."""
        with self.r.lock(LOCK, timeout=self.lock_timeout_s, blocking_timeout=self.lock_timeout_s):
            own_meta, own = self.recorded(audit_id)
            first_time = own_meta is None
            # A re-run compares against the parent it had the first time, whatever was recorded since.
            prev_id = self.last_fleet() if own_meta is None else own_meta.get("prev")
            if prev_id == audit_id:
                prev_id = None
            prev_meta, prev = self.recorded(prev_id) if prev_id else (None, {})
            before = (prev_meta or {}).get("policy")
            changed = before is not None and policy_hash is not None and before != policy_hash
            why = (dict(not_looked_for) if isinstance(not_looked_for, Mapping)
                   else {k: f"the findings policy turns {k} off" for k in not_looked_for})
            result, records = _compare(discrepancies, prev, own, iso(now), _normalise_available(available), why,
                                       f"the findings policy changed ({before} -> {policy_hash})" if changed else None)
            result.previous_audit_id = prev_id
            meta = {"prev": prev_id, "recorded_at": (own_meta or {}).get("recorded_at") or iso(now),
                    "policy": policy_hash}
            self._write(audit_id, meta, records, move_pointer=first_time)
        return result

    def _write(self, audit_id: str, meta: dict[str, Any], records: dict[str, dict[str, Any]], *,
               move_pointer: bool) -> None:
        key = self.key(audit_id)
        items = [(k, json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=str)) for k, v in records.items()]
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, META, json.dumps(meta, separators=(",", ":")))
        for start in range(0, len(items), _HSET_CHUNK):
            pipe.hset(key, mapping=dict(items[start:start + _HSET_CHUNK]))
        pipe.expire(key, self.ttl_s)
        if move_pointer:
            pipe.set(LAST_FLEET, audit_id, ex=self.ttl_s)
        pipe.execute()

    # -- any two reports ----------------------------------------------------------------------------------------------
    @staticmethod
    def diff(report_a: Mapping[str, Any], report_b: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
        return diff_reports(report_a, report_b)


def _compare(
    current: Sequence[Mapping[str, Any]],
    prev: Mapping[str, dict[str, Any]],
    own: Mapping[str, dict[str, Any]],
    now_iso: str,
    available: set[System] | None,
    not_looked_for: Mapping[str, str] | None = None,
    policy_changed: str | None = None,
) -> tuple[HistoryResult, dict[str, dict[str, Any]]]:
    """Pure part of :meth:`HistoryStore.annotate_full`: labels, and the records to store for this audit.

    ``own`` is this audit's earlier record (a re-run): its labels and ``since`` win, so a re-run never shifts them.
    """
    annotated: list[dict[str, Any]] = []
    records: dict[str, dict[str, Any]] = {}
    for d in current:
        k = _key_field(identity(d))
        item = dict(d)
        if k in own and own[k].get("history") in ("new", "persisting"):
            item["history"], item["since"] = own[k]["history"], own[k]["since"]
        elif k in prev:
            item["history"], item["since"] = "persisting", prev[k].get("since") or now_iso
        else:
            item["history"], item["since"] = "new", now_iso
        if k in prev:
            changed = _changed_from(d, prev[k])
            if changed is not None:
                item["changed_from"] = changed
        annotated.append(item)
        records.setdefault(k, {**_record(d), "history": item["history"], "since": item["since"]})
    resolved: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    for k, rec in prev.items():
        if k in records:
            continue
        why_not = _not_looked_for(rec, not_looked_for)
        if why_not is not None:
            reason: str | None = f"not looked for: {why_not}"
        elif policy_changed is not None:
            reason = f"not re-judged: {policy_changed}"
        else:
            reason = undecided(rec, available)
        if reason is None:
            resolved.append({**_record(rec), "history": "resolved", "since": rec.get("since"), "resolved_at": now_iso})
        else:
            unknown.append({**_record(rec), "history": "unknown", "since": rec.get("since"), "reason": reason})
            records[k] = {**_record(rec), "history": "unknown", "since": rec.get("since")}
    resolved.sort(key=_sort_key)
    unknown.sort(key=_sort_key)
    return HistoryResult(annotated, resolved, unknown), records


def _not_looked_for(rec: Mapping[str, Any], not_looked_for: Mapping[str, str] | None) -> str | None:
    """Why ``rec``'s kind was not looked for: by kind, or by kind in its system (``dormant_account@Entra``)."""
    if not not_looked_for:
        return None
    kind = str(rec.get("field"))
    scoped_why = not_looked_for.get(scoped(kind, _system_name(str(rec.get("system_a") or ""))))
    return scoped_why if scoped_why is not None else not_looked_for.get(kind)


def _audited_subjects(report: Mapping[str, Any]) -> set[str] | None:
    """Subjects a user, device or bulk report looked at; None for a fleet report (everyone)."""
    if "entries" in report:
        return {str(e.get("email") or e.get("serial") or "").strip().casefold() for e in report["entries"]}
    single = report.get("email") or report.get("serial")
    if single:
        return {str(single).strip().casefold()}
    return None


def _observed(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every finding a report made: counted ones and waived ones (a waiver accepts a finding, it is still there).
    A bulk report's top-level ``waived`` already holds its entries' waived findings, with their subjects."""
    return [*discrepancies_of(dict(report)), *(dict(d) for d in report.get("waived") or ())]


def read_systems(report: Mapping[str, Any]) -> set[System]:
    """The systems a stored report read fresh, and completely: those it names failed, degraded or stale were not.

    A system a user, device or bulk report did not check at all (device systems in a user audit; people systems for a
    device without owner; FedEx without a return ticket) was not needed for its subjects, so it does not make a
    finding of those subjects undecided. The same rule as the fleet report's history (``nexus.drift.rules``).
    """
    unread = {_system_name(str(s)) for key in ("systems_failed", "systems_degraded", "systems_stale")
              for s in report.get(key) or ()}
    # A bulk report answered from snapshots names them only in its ``degraded`` and ``stale`` sections and in the
    # per-system ``systems`` frame (nexus.fleet.report.bulk_snapshot_report): those count as not read too.
    for key in ("degraded", "stale"):
        section = report.get(key)
        if isinstance(section, Mapping):
            unread.update(_system_name(str(s)) for s in section)
    frame = report.get("systems")
    if isinstance(frame, Mapping):
        unread.update(_system_name(str(s)) for s, row in frame.items()
                      if isinstance(row, Mapping) and row.get("status") not in (None, "ok"))
    return {s for s in System if s.display not in unread}


def diff_reports(report_a: Mapping[str, Any], report_b: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """What changed from report A to report B (any kinds; B is usually the later one).

    Waived findings count as found (a waived one keeps its ``waiver``). ``new``: in B, not in A. ``persisting``: in
    both (B's version, with ``changed_from`` when the values moved).
    ``resolved``: in A, gone from B although B could decide it. ``unknown``: in A, not checked by B: a system it
    involves or its rule needs (``nexus.drift.rules``) was not read by B (:func:`read_systems`), or B is a user/bulk
    report that did not audit that subject.
    """
    items_a = _observed(report_a)
    items_b = _observed(report_b)
    by_key_a: dict[str, Mapping[str, Any]] = {}
    for d in items_a:
        by_key_a.setdefault(_key_field(identity(d)), d)
    read_b = read_systems(report_b)
    subjects_b = _audited_subjects(report_b)
    out: dict[str, list[dict[str, Any]]] = {"new": [], "resolved": [], "persisting": [], "unknown": []}
    seen_b: set[str] = set()
    for d in items_b:
        k = _key_field(identity(d))
        seen_b.add(k)
        item = {key: value for key, value in d.items() if key not in ("history", "since", "changed_from")}
        if k in by_key_a:
            item["history"] = "persisting"
            changed = _changed_from(d, by_key_a[k])
            if changed is not None:
                item["changed_from"] = changed
            out["persisting"].append(item)
        else:
            item["history"] = "new"
            out["new"].append(item)
    for k, old in by_key_a.items():
        if k in seen_b:
            continue
        item = {key: value for key, value in old.items() if key not in ("history", "since", "changed_from")}
        not_audited = subjects_b is not None and identity(old)[0] not in subjects_b
        reason = "subject not audited in B" if not_audited else undecided(old, read_b, where="in B")
        if reason is not None:
            item["history"] = "unknown"
            item["reason"] = reason
            out["unknown"].append(item)
        else:
            item["history"] = "resolved"
            out["resolved"].append(item)
    for name in out:
        out[name].sort(key=_sort_key)
    return out


__all__ = ["HistoryResult", "HistoryStore", "diff_reports", "identity", "iso", "read_systems"]
