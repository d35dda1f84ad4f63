"""Audits in Redis: status, progress, report, and the newest-first index. Everything expires after the report TTL.

Keys (prefix ``nexus:audit:``):
    <id>            hash: id, kind, status, created_at, updated_at, subjects_count, description, error
    <id>:subjects   list of subjects (kept out of task arguments, so messages stay small)
    <id>:progress   hash: total, done, and one ``sys:<system>`` JSON field per system
    <id>:parts      hash: part number -> JSON result of that part (a chunk of a bulk audit); idempotent writes
    <id>:report     the final report (JSON string)
    <id>:final      SET NX flag: exactly one finisher builds the report, even if a part is redelivered
    nexus:audits    sorted set id -> created_at (the list, newest first)

Status: ``queued`` -> ``running`` -> ``done`` | ``failed``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import redis

from nexus.audits.spec import AuditRequest
from nexus.errors import AuditNotFound

PREFIX = "nexus:audit:"
INDEX = "nexus:audits"
#: When this Redis's audit data began (the first audit created since it last started empty); no expiry.
EPOCH = "nexus:audits:epoch"
STATUSES = ("queued", "running", "done", "failed")
TERMINAL = ("done", "failed")


def iso_time(epoch: float) -> str:
    """A moment as every view and JSON log line writes it: ISO 8601, UTC, milliseconds, ``Z``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_of(value: str | float) -> float:
    """Epoch seconds of a view's timestamp (an :func:`iso_time` string; a number is taken as is)."""
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def view_times(meta: dict[str, Any]) -> dict[str, str]:
    """``created_at`` and ``updated_at`` of :meth:`AuditStore.meta` (epoch seconds, for arithmetic) as the views
    show them (CLI ``--json``, MCP): ISO strings under the same names."""
    return {name: iso_time(float(meta.get(name) or 0)) for name in ("created_at", "updated_at")}


def _iso_at(info: Any) -> Any:
    """A system's progress as a view shows it: its ``at`` (stored as epoch seconds) as an ISO string."""
    if isinstance(info, dict) and isinstance(info.get("at"), int | float) and not isinstance(info["at"], bool):
        return {**info, "at": iso_time(float(info["at"]))}
    return info


# Writes from tasks that may outlive their audit (Redis restarted without its data, or the audit expired while a
# task still ran): touch the audit's keys only while its record exists, so nothing is resurrected without an expiry.
_HSET_IF_AUDIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
"""
_HSETNX_IF_AUDIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
"""


class AuditStore:
    def __init__(self, client: redis.Redis, *, ttl_s: int = 30 * 86400, clock: Callable[[], float] = time.time):
        self.r = client
        self.ttl_s = ttl_s
        self.clock = clock

    @staticmethod
    def key(audit_id: str, part: str = "") -> str:
        return f"{PREFIX}{audit_id}" + (f":{part}" if part else "")

    # -- creation ------------------------------------------------------------------------------------------------
    def create(self, request: AuditRequest, *, total: int | None = None) -> None:
        now = self.clock()
        aid = request.audit_id
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.key(aid), mapping={
            "id": aid, "kind": request.kind.value, "status": "queued", "created_at": now, "updated_at": now,
            "subjects_count": len(request.subjects), "description": request.describe(), "error": "",
        })
        if request.subjects:
            for start in range(0, len(request.subjects), 10_000):
                pipe.rpush(self.key(aid, "subjects"), *request.subjects[start:start + 10_000])
        pipe.hset(self.key(aid, "progress"), mapping={"total": total if total is not None else len(request.subjects),
                                                      "done": 0})
        pipe.zadd(INDEX, {aid: now})
        pipe.setnx(EPOCH, now)
        for suffix in ("", "subjects", "progress"):
            pipe.expire(self.key(aid, suffix), self.ttl_s)
        pipe.execute()
        self._trim_index(now)

    def _trim_index(self, now: float) -> None:
        self.r.zremrangebyscore(INDEX, "-inf", now - self.ttl_s)

    def data_since(self) -> float | None:
        """When the audit data this Redis holds began (None: it holds none: it never had any, or it restarted
        empty). An audit created before then cannot be here, whatever its TTL."""
        raw = self.r.get(EPOCH)
        return None if raw is None else float(raw)

    def was_lost(self, audit_id: str, created_at: float | None) -> bool:
        """Whether a missing audit created at ``created_at`` (from its id) should still be here: younger than the
        TTL, and created before this Redis's audit data began (Redis restarted without its data)."""
        if created_at is None or self.clock() - created_at > self.ttl_s:
            return False
        since = self.data_since()
        return since is None or created_at < since - 1.0  # 1 s of clock skew between hosts

    def delete(self, audit_id: str) -> None:
        """Remove an audit that could not be enqueued, so nothing half-written is left behind."""
        keys = [self.key(audit_id, s) for s in ("", "subjects", "progress", "parts", "report", "final")]
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(*keys)
        pipe.zrem(INDEX, audit_id)
        pipe.execute()

    # -- reading ---------------------------------------------------------------------------------------------------
    def exists(self, audit_id: str) -> bool:
        return bool(self.r.exists(self.key(audit_id)))

    def meta(self, audit_id: str) -> dict[str, Any]:
        raw = self.r.hgetall(self.key(audit_id))
        if not raw or (b"status" not in raw and "status" not in raw):  # nothing, or a fragment of a lost audit
            raise AuditNotFound(audit_id)
        meta: dict[str, Any] = {_s(k): _s(v) for k, v in raw.items()}
        for name in ("created_at", "updated_at"):
            meta[name] = float(meta.get(name) or 0)
        meta["subjects_count"] = int(meta.get("subjects_count") or 0)
        return meta

    def subjects(self, audit_id: str, start: int = 0, stop: int = -1) -> list[str]:
        return [_s(v) for v in self.r.lrange(self.key(audit_id, "subjects"), start, stop)]

    def progress(self, audit_id: str) -> dict[str, Any]:
        raw = {_s(k): _s(v) for k, v in self.r.hgetall(self.key(audit_id, "progress")).items()}
        systems = {k[4:]: _iso_at(json.loads(v)) for k, v in raw.items() if k.startswith("sys:")}
        return {"total": int(raw.get("total", 0)), "done": int(raw.get("done", 0)), "systems": systems}

    def report(self, audit_id: str) -> dict[str, Any] | None:
        raw = self.r.get(self.key(audit_id, "report"))
        return json.loads(raw) if raw else None

    def list(self, limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
        ids = [_s(i) for i in self.r.zrevrange(INDEX, offset, offset + limit - 1)]
        out = []
        for aid in ids:
            try:
                out.append(self.meta(aid))
            except AuditNotFound:
                self.r.zrem(INDEX, aid)  # expired under us
        return out

    # -- updates by the tasks ---------------------------------------------------------------------------------------
    def set_status(self, audit_id: str, status: str, *, error: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(status)
        mapping: dict[str, str | float] = {"status": status, "updated_at": self.clock()}
        if error:
            mapping["error"] = error
        self.r.hset(self.key(audit_id), mapping=mapping)  # type: ignore[arg-type]

    def mark_running(self, audit_id: str) -> None:
        """queued -> running (never moves a finished audit back)."""
        if self.meta(audit_id)["status"] == "queued":
            self.set_status(audit_id, "running")

    def set_system_progress(self, audit_id: str, system: str, info: dict[str, Any]) -> None:
        key = self.key(audit_id, "progress")
        self.r.eval(_HSET_IF_AUDIT, 2, self.key(audit_id), key, f"sys:{system}",
                    json.dumps(info, separators=(",", ":")))

    def set_total(self, audit_id: str, total: int) -> None:
        self.r.hset(self.key(audit_id, "progress"), "total", total)

    def save_part(self, audit_id: str, part: int, result: Any, done_increment: int) -> bool:
        """Store one part's result. Returns False if that part was already stored (a redelivered task): the
        progress counter is only advanced the first time, so nothing is counted twice. Also False, writing nothing,
        when the audit no longer exists."""
        key = self.key(audit_id, "parts")
        stored = self.r.eval(_HSETNX_IF_AUDIT, 2, self.key(audit_id), key, str(part),
                             json.dumps(result, separators=(",", ":"), default=str))
        if stored == 1:
            pipe = self.r.pipeline(transaction=True)
            pipe.expire(key, self.ttl_s)
            pipe.hincrby(self.key(audit_id, "progress"), "done", done_increment)
            pipe.hset(self.key(audit_id), "updated_at", self.clock())
            pipe.execute()
        return stored == 1

    def parts_count(self, audit_id: str) -> int:
        return int(self.r.hlen(self.key(audit_id, "parts")))

    def iter_parts(self, audit_id: str) -> Iterable[tuple[int, Any]]:
        for part, raw in self.r.hscan_iter(self.key(audit_id, "parts"), count=500):
            yield int(_s(part)), json.loads(raw)

    # -- orchestration marks ----------------------------------------------------------------------------------------
    def chunk_size(self, audit_id: str, default: int) -> int:
        """The part size of this audit, fixed by the first caller (``default``) and stored with the audit: every
        worker then cuts the subject list the same way, whatever its own setting."""
        key = self.key(audit_id)
        self.r.hsetnx(key, "chunk_size", default)
        return int(self.r.hget(key, "chunk_size") or default)

    def is_marked(self, audit_id: str, mark: str) -> bool:
        """Whether ``mark`` (``dispatched:<part>``, ``dispatched:stage2``, ``fleet_started``) was set."""
        return bool(self.r.exists(self.key(audit_id, mark)))

    def mark(self, audit_id: str, mark: str) -> None:
        """Set ``mark``. Callers set it AFTER publishing what it guards: a caller killed in between leaves the work
        to its redelivered task, which publishes again (a mark set before would leave the audit waiting forever)."""
        self.r.set(self.key(audit_id, mark), "1", ex=self.ttl_s)

    def pin_policy(self, audit_id: str, policy_json: str) -> str | None:
        """Pin the audit's findings policy (the first caller's wins) and return the pinned one; None when the audit
        does not exist (nothing is written then)."""
        key = self.key(audit_id)
        self.r.eval(_HSETNX_IF_AUDIT, 2, key, key, "policy", policy_json)
        raw = self.r.hget(key, "policy")
        return None if raw is None else _s(raw)

    def stash(self, audit_id: str, name: str, value: Any) -> None:
        """Keep an intermediate result (a part's stage-1 lookups while its stage 2 runs) for the audit's lifetime."""
        self.r.set(self.key(audit_id, f"stash:{name}"), json.dumps(value, separators=(",", ":"), default=str),
                   ex=self.ttl_s)

    def stashed(self, audit_id: str, name: str) -> Any:
        """What :meth:`stash` kept under ``name``, or None."""
        raw = self.r.get(self.key(audit_id, f"stash:{name}"))
        return None if raw is None else json.loads(raw)

    def set_report_section(self, audit_id: str, name: str, section: Any) -> bool:
        """Replace one top-level section of the stored report (``remediation``), keeping its TTL. False when
        there is no stored report."""
        key = self.key(audit_id, "report")
        raw = self.r.get(key)
        if raw is None:
            return False
        report = json.loads(raw)
        report[name] = section
        return bool(self.r.set(key, json.dumps(report, separators=(",", ":"), default=str), keepttl=True, xx=True))

    def is_finished(self, audit_id: str) -> bool:
        return bool(self.r.exists(self.key(audit_id, "final")))

    def finish_once(self, audit_id: str, report: dict[str, Any], status: str = "done", error: str = "") -> bool:
        """Store the final report and status, exactly once: True for the one caller that stored it.

        One Lua script does the check and the writes, so a finisher killed half-way leaves nothing behind and the
        redelivered task finishes the audit (a flag taken before the writes would leave the audit running forever).
        """
        stored = self.r.eval(
            _FINISH_ONCE, 3, self.key(audit_id, "final"), self.key(audit_id, "report"), self.key(audit_id),
            json.dumps(report, separators=(",", ":"), default=str), self.ttl_s, status, self.clock(), error,
        )
        return bool(stored)

    def finish(self, audit_id: str, report: dict[str, Any], status: str = "done", error: str = "") -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.key(audit_id, "report"), json.dumps(report, separators=(",", ":"), default=str), ex=self.ttl_s)
        mapping: dict[str, str | float] = {"status": status, "updated_at": self.clock()}
        if error:
            mapping["error"] = error
        pipe.hset(self.key(audit_id), mapping=mapping)  # type: ignore[arg-type]
        pipe.execute()


_FINISH_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[3], 'status', ARGV[3], 'updated_at', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], 'error', ARGV[5]) end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
return 1
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
