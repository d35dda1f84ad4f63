"""Before comparing: which snapshot of each stream to read, and what the report must say about each system.

For every stream the snapshot task left a state (``ok`` or ``failed``). Here the mass-drift guard judges the ``ok``
ones against their last good size, and, when NEXUS_FLEET_STALE_FALLBACK is on, a failed stream is replaced by its
last-known-good snapshot if one is kept and young enough (NEXUS_FLEET_STALE_MAX_AGE_S). A system's status is then:

    ok        every stream read and believed
    degraded  read, but the guard does not believe its size (absence findings suppressed)
    stale     failed now; its last good snapshot stands in (flagged with its age)
    failed    not read (and no usable stand-in): never compared, its findings absent, never "everyone missing"
    skipped   FedEx only: nothing to track because Helix's tickets could not be read
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nexus.fleet.guard import Verdict, judge
from nexus.fleet.store import SnapshotStore, StreamState
from nexus.history import iso
from nexus.registry import STREAM_SYSTEM, STREAMS
from nexus.systems import System


@dataclass(slots=True)
class StreamInput:
    """Where the comparison reads one stream (this audit's pages, or a stale stand-in's)."""

    stream: str
    status: str  # ok | stale | failed | skipped
    audit_id: str = ""
    pages: list[int] = field(default_factory=list)
    records: int = 0
    state: StreamState | None = None
    verdict: Verdict | None = None
    stale: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def usable(self) -> bool:
        return self.status in ("ok", "stale")


@dataclass(slots=True)
class SystemStatus:
    system: System
    status: str
    error: dict[str, Any] | None = None
    degraded: dict[str, Any] | None = None
    stale: dict[str, Any] | None = None

    @property
    def available(self) -> bool:
        return self.status in ("ok", "degraded", "stale")


@dataclass(slots=True)
class Assessment:
    streams: dict[str, StreamInput]
    systems: dict[System, SystemStatus]

    @property
    def available(self) -> frozenset[str]:
        return frozenset(s.value for s, st in self.systems.items() if st.available)

    @property
    def degraded(self) -> list[System]:
        return [s for s, st in self.systems.items() if st.status == "degraded"]


def stand_in(store: SnapshotStore, stream: str, now: float, max_age_s: float) -> StreamInput | None:
    """The stream's kept last good snapshot, if it is still there and young enough."""
    good = store.last_good(stream)
    if not good or not good.get("kept"):
        return None
    age = now - good["taken_at"]
    if age > max_age_s:
        return None
    state = store.state(good["audit_id"], stream)
    if state.status != "ok" or not store.exists(good["audit_id"], stream):
        return None
    stale = {"age_s": round(age, 1), "audit_id": good["audit_id"], "taken_at": iso(good["taken_at"])}
    return StreamInput(stream, "stale", good["audit_id"], sorted(state.pages), state.records, state, stale=stale)


def assess(
    store: SnapshotStore,
    audit_id: str,
    systems: Iterable[System],
    *,
    now: float,
    guard_drop: float,
    fallback: bool,
    stale_max_age_s: float,
) -> Assessment:
    streams: dict[str, StreamInput] = {}
    chosen = list(systems)
    for system in chosen:
        own: dict[str, StreamInput] = {}
        for stream in STREAMS[system]:
            state = store.state(audit_id, stream)
            if state.status == "ok":
                good = store.last_good(stream)
                verdict = judge(stream, state.records, good["records"] if good else None, guard_drop)
                own[stream] = StreamInput(stream, "ok", audit_id, sorted(state.pages), state.records, state,
                                          verdict=verdict)
            elif state.status == "skipped":
                own[stream] = StreamInput(stream, "skipped", audit_id, state=state, error=state.error)
            else:
                error = state.error or {"type": "NotRead", "kind": "error", "message": "the snapshot was not taken"}
                own[stream] = StreamInput(stream, "failed", audit_id, state=state, error=error)
        failed = [s for s in own.values() if s.status == "failed"]
        if failed and fallback:
            # every stream of the system from its last good snapshots, or none: never two moments mixed
            stand_ins = {name: stand_in(store, name, now, stale_max_age_s) for name in own}
            if all(stand_ins.values()):
                for name, chosen_in in stand_ins.items():
                    assert chosen_in is not None
                    chosen_in.error = failed[0].error
                    own[name] = chosen_in
        streams.update(own)
    return Assessment(streams, {s: _system_status(s, streams) for s in chosen})


def _system_status(system: System, streams: dict[str, StreamInput]) -> SystemStatus:
    own = [streams[name] for name in STREAMS[system]]
    failed = [s for s in own if s.status == "failed"]
    if failed:
        return SystemStatus(system, "failed", error=failed[0].error)
    if any(s.status == "skipped" for s in own):
        return SystemStatus(system, "skipped", error=own[0].error)
    stale = [s for s in own if s.status == "stale"]
    if stale:
        return SystemStatus(system, "stale", error=stale[0].error, stale=stale[0].stale)
    degraded = next((s.verdict for s in own if s.verdict is not None and s.verdict.degraded), None)
    if degraded is not None:
        return SystemStatus(system, "degraded", degraded=degraded.to_dict())
    return SystemStatus(system, "ok")


def stream_system(stream: str) -> System:
    return STREAM_SYSTEM[stream]


__all__ = ["Assessment", "StreamInput", "SystemStatus", "assess", "stand_in", "stream_system"]
