"""A fleet audit without workers: snapshots written straight into (fake) Redis, then the real judge, comparison and
report (with history and waivers). For tests of what a fleet report says across audits."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any
from unittest import mock

import fakeredis

from nexus.fleet import codec
from nexus.fleet.assess import assess
from nexus.fleet.compare import FleetComparer
from nexus.fleet.report import FLEET_SYSTEMS, Annotators, fleet_report
from nexus.fleet.store import SnapshotStore
from nexus.history import HistoryStore
from nexus.registry import STREAM_KIND, STREAMS
from nexus.sim.records import OrgRecords
from nexus.systems import System
from nexus.waivers import WaiverStore

TTL_S = 30 * 86400

_STREAM_ATTR = {"workday": "workday", "ad": "ad", "entra": "entra", "intune": "intune", "lansweeper": "lansweeper",
                "helix": "helix", "helix_tickets": "tickets", "fedex": "shipments"}


class UnitFleet:
    """One Redis (fake), any number of fleet audits of given records, each with chosen systems failed."""

    def __init__(self, client: fakeredis.FakeRedis | None = None) -> None:
        self.r = client or fakeredis.FakeRedis(server=fakeredis.FakeServer())
        self.snaps = SnapshotStore(self.r, ttl_s=3600)
        self.history = HistoryStore(self.r, ttl_s=TTL_S)
        self.waivers = WaiverStore(self.r)

    def write(self, audit_id: str, records: OrgRecords, failed: Collection[System] = ()) -> None:
        for system in FLEET_SYSTEMS:
            for stream in STREAMS[system]:
                self.snaps.begin(audit_id, stream)
                if system in failed:
                    self.snaps.finish(audit_id, stream, "failed",
                                      error={"type": "TransientError", "kind": "transient", "message": "down"})
                    continue
                rows = list(getattr(records, _STREAM_ATTR[stream]))
                if rows:
                    self.snaps.save_page(audit_id, stream, 0, codec.encode_page(STREAM_KIND[stream], rows), len(rows))
                self.snaps.finish(audit_id, stream, "ok")

    def audit(self, audit_id: str, records: OrgRecords, now: datetime, failed: Collection[System] = (), *,
              annotate: bool = True) -> dict[str, Any]:
        """A fleet report of ``records`` with the systems in ``failed`` not read (history and waivers applied)."""
        self.write(audit_id, records, failed)
        assessment = assess(self.snaps, audit_id, FLEET_SYSTEMS, now=now.timestamp(), guard_drop=0.5,
                            fallback=False, stale_max_age_s=14 * 86400)
        # A full collection per part (memory hygiene at 100,000 people) costs more than a comparison of 20.
        with mock.patch("nexus.fleet.compare.release_memory", lambda: None):
            comparison = FleetComparer(self.snaps, assessment, now).run()
        annotators = Annotators(self.history, self.waivers) if annotate else None
        report = fleet_report(audit_id, assessment, comparison, now, annotators=annotators)
        return {"audit_id": audit_id, "kind": "fleet", **report}


def finding_keys(items: list[dict[str, Any]]) -> set[tuple[str, str, frozenset[str]]]:
    """History identities of report items (values are not part of them)."""
    from nexus.history import identity

    return {identity(d) for d in items}
