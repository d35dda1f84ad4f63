"""Snapshots in Redis: one *stream* per system listing per audit, stored page by page with its checkpoint.

Keys::

    nexus:snap:<audit>:<stream>        hash, the stream's state (below); TTL NEXUS_FLEET_SNAPSHOT_TTL_S
    nexus:snap:<audit>:<stream>:<n>    page n: compressed rows (nexus.fleet.codec); same TTL
    nexus:snap:<audit>:result:<name>   an intermediate result (the people part of the comparison); same TTL
    nexus:fleet:lastgood:<stream>      hash, the last GOOD snapshot of that stream (guard + fallback); long TTL

State fields: ``status`` (running | ok | failed), ``started_at``, ``finished_at``, ``cursor`` and ``next`` (the
checkpoint of a cursor chain: the cursor of page ``next``), ``total_pages`` / ``end`` (offset listings: the page
count when the system tells it, or the index of the last page once seen), ``p:<n>`` (records on stored page n),
``a:<n>`` (failed attempts of page n), ``fetches`` (page requests sent), ``retries`` (task retries), ``error``
(JSON) and ``rss_mb`` (peak memory of the process that took the snapshot).

A page and its checkpoint are written in one MULTI, so a worker that dies between two pages leaves a consistent
checkpoint: the retried task resumes at the first page that is not stored.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

PREFIX = "nexus:snap"
LAST_GOOD = "nexus:fleet:lastgood"
_BATCH = 16  # pages fetched from Redis per round trip when loading


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class StreamState:
    """A stream's state hash, decoded."""

    status: str = ""
    pages: dict[int, int] = field(default_factory=dict)  # page index -> records
    attempts: dict[int, int] = field(default_factory=dict)  # page index -> failed attempts
    cursor: str | None = None
    next: int = 0
    total_pages: int | None = None
    end: int | None = None
    fetches: int = 0
    retries: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, Any] | None = None
    rss_mb: float | None = None

    @property
    def records(self) -> int:
        return sum(self.pages.values())

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @classmethod
    def parse(cls, raw: dict[Any, Any]) -> StreamState:
        state = cls()
        for key, value in ((_s(k), _s(v)) for k, v in raw.items()):
            if key.startswith("p:"):
                state.pages[int(key[2:])] = int(value)
            elif key.startswith("a:"):
                state.attempts[int(key[2:])] = int(value)
            elif key == "status":
                state.status = value
            elif key == "cursor":
                state.cursor = value or None
            elif key in ("next", "fetches", "retries", "total_pages", "end"):
                setattr(state, key, int(value))
            elif key in ("started_at", "finished_at", "rss_mb"):
                setattr(state, key, float(value))
            elif key == "error":
                state.error = json.loads(value)
        return state


class SnapshotStore:
    def __init__(self, redis: Any, *, ttl_s: int = 2 * 86400, clock: Callable[[], float] = time.time) -> None:
        self.r = redis
        self.ttl_s = ttl_s
        self.clock = clock

    @staticmethod
    def key(audit_id: str, stream: str, page: int | None = None) -> str:
        base = f"{PREFIX}:{audit_id}:{stream}"
        return base if page is None else f"{base}:{page}"

    # -- writing (the snapshot task) --------------------------------------------------------------------------------
    def begin(self, audit_id: str, stream: str) -> StreamState:
        """Mark the stream started (first run only) and return its state (a retried run resumes from it)."""
        key = self.key(audit_id, stream)
        pipe = self.r.pipeline(transaction=True)
        pipe.hsetnx(key, "started_at", repr(self.clock()))
        pipe.hsetnx(key, "status", "running")
        pipe.expire(key, self.ttl_s)
        pipe.hgetall(key)
        return StreamState.parse(pipe.execute()[-1])

    def state(self, audit_id: str, stream: str) -> StreamState:
        return StreamState.parse(self.r.hgetall(self.key(audit_id, stream)))

    def save_page(self, audit_id: str, stream: str, page: int, blob: bytes, records: int, *,
                  cursor: str | None = None, advance: bool = False, fetches: int = 1) -> None:
        """Store page ``page`` and, for a chain (``advance``), move the checkpoint to the page after it.
        ``fetches``: the requests the page took (0 for a chunk of a one-request listing: Workday's report)."""
        key = self.key(audit_id, stream)
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.key(audit_id, stream, page), blob, ex=self.ttl_s)
        mapping: dict[str, Any] = {f"p:{page}": records}
        if advance:
            mapping["next"] = page + 1
            mapping["cursor"] = cursor or ""
        pipe.hset(key, mapping=mapping)
        if fetches:
            pipe.hincrby(key, "fetches", fetches)
        pipe.execute()

    def failed_attempt(self, audit_id: str, stream: str, page: int) -> int:
        """Count a failed attempt of ``page``; returns the attempts so far."""
        key = self.key(audit_id, stream)
        pipe = self.r.pipeline(transaction=True)
        pipe.hincrby(key, f"a:{page}", 1)
        pipe.hincrby(key, "fetches", 1)
        return int(pipe.execute()[0])

    def count_fetch(self, audit_id: str, stream: str) -> None:
        """A page request that stored nothing (an empty page past the end of an offset listing)."""
        self.r.hincrby(self.key(audit_id, stream), "fetches", 1)

    def set(self, audit_id: str, stream: str, **fields: Any) -> None:
        mapping = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in fields.items() if v is not None}
        if mapping:
            self.r.hset(self.key(audit_id, stream), mapping=mapping)

    def count_retry(self, audit_id: str, stream: str) -> int:
        return int(self.r.hincrby(self.key(audit_id, stream), "retries", 1))

    def waited_for_trial(self, audit_id: str, stream: str, seconds: float) -> float:
        """Add ``seconds`` to the stream's wait for other callers' half-open trials; returns the total so far."""
        return float(self.r.hincrbyfloat(self.key(audit_id, stream), "trial_wait_s", seconds))

    def restart(self, audit_id: str, stream: str) -> None:
        """Forget the stored pages and the checkpoint (a chain whose paging state was lost); attempts are kept."""
        key = self.key(audit_id, stream)
        state = self.state(audit_id, stream)
        pipe = self.r.pipeline(transaction=True)
        if state.pages:
            pipe.delete(*(self.key(audit_id, stream, n) for n in state.pages))
            pipe.hdel(key, *(f"p:{n}" for n in state.pages))
        pipe.hset(key, mapping={"next": 0, "cursor": ""})
        pipe.execute()

    def drop_pages(self, audit_id: str, stream: str, pages: list[int]) -> None:
        if pages:
            pipe = self.r.pipeline(transaction=True)
            pipe.delete(*(self.key(audit_id, stream, n) for n in pages))
            pipe.hdel(self.key(audit_id, stream), *(f"p:{n}" for n in pages))
            pipe.execute()

    def finish(self, audit_id: str, stream: str, status: str, *, error: dict[str, Any] | None = None,
               rss_mb: float | None = None) -> StreamState:
        fields: dict[str, Any] = {"status": status, "finished_at": repr(self.clock())}
        if error is not None:
            fields["error"] = error
        if rss_mb is not None:
            fields["rss_mb"] = round(rss_mb, 1)
        self.set(audit_id, stream, **fields)
        return self.state(audit_id, stream)

    # -- reading (the comparison) -----------------------------------------------------------------------------------
    def iter_blobs(self, audit_id: str, stream: str, pages: list[int] | None = None) -> Iterator[bytes]:
        """The stored pages in order, a few per round trip. A page missing (expired) is an error, never a gap."""
        order = sorted(pages if pages is not None else self.state(audit_id, stream).pages)
        for start in range(0, len(order), _BATCH):
            chunk = order[start:start + _BATCH]
            blobs = self.r.mget([self.key(audit_id, stream, n) for n in chunk])
            for n, blob in zip(chunk, blobs, strict=True):
                if blob is None:
                    raise LookupError(f"snapshot page {stream}:{n} of audit {audit_id} is gone (expired?)")
                yield blob

    # -- intermediate results (the people part of a comparison, for the final part) ------------------------------
    def put_result(self, audit_id: str, name: str, value: Any) -> None:
        blob = zlib.compress(json.dumps(value, separators=(",", ":"), default=str).encode(), 1)
        self.r.set(f"{PREFIX}:{audit_id}:result:{name}", blob, ex=self.ttl_s)

    def get_result(self, audit_id: str, name: str) -> Any:
        blob = self.r.get(f"{PREFIX}:{audit_id}:result:{name}")
        return None if blob is None else json.loads(zlib.decompress(blob))

    def delete_result(self, audit_id: str, name: str) -> None:
        self.r.delete(f"{PREFIX}:{audit_id}:result:{name}")

    # -- lifetime ---------------------------------------------------------------------------------------------------
    def delete(self, audit_id: str, stream: str) -> None:
        state = self.state(audit_id, stream)
        keys = [self.key(audit_id, stream), *(self.key(audit_id, stream, n) for n in state.pages)]
        self.r.delete(*keys)

    def keep(self, audit_id: str, stream: str, ttl_s: int) -> None:
        """Extend the stream's lifetime (a last-known-good snapshot outlives its audit)."""
        state = self.state(audit_id, stream)
        pipe = self.r.pipeline(transaction=False)
        for key in (self.key(audit_id, stream), *(self.key(audit_id, stream, n) for n in state.pages)):
            pipe.expire(key, ttl_s)
        pipe.execute()

    def exists(self, audit_id: str, stream: str) -> bool:
        return bool(self.r.exists(self.key(audit_id, stream)))

    # -- last good --------------------------------------------------------------------------------------------------
    def last_good(self, stream: str) -> dict[str, Any] | None:
        raw = self.r.hgetall(f"{LAST_GOOD}:{stream}")
        if not raw:
            return None
        out: dict[str, Any] = {_s(k): _s(v) for k, v in raw.items()}
        out["records"] = int(out.get("records", 0))
        out["pages"] = int(out.get("pages", 0))
        out["taken_at"] = float(out.get("taken_at", 0))
        out["kept"] = out.get("kept") == "1"
        return out

    def set_last_good(self, stream: str, *, audit_id: str, records: int, pages: int, taken_at: float, kept: bool,
                      ttl_s: int) -> dict[str, Any] | None:
        """Replace the stream's last good snapshot; returns the previous one (so its kept pages can be dropped)."""
        key = f"{LAST_GOOD}:{stream}"
        previous = self.last_good(stream)
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"audit_id": audit_id, "records": records, "pages": pages,
                                "taken_at": repr(taken_at), "kept": "1" if kept else "0"})
        pipe.expire(key, ttl_s)
        pipe.execute()
        return previous


__all__ = ["LAST_GOOD", "PREFIX", "SnapshotStore", "StreamState"]
