"""Fleet audits on snapshots: every record of every system paged into Redis once, then compared in one pass.

Modules: :mod:`~nexus.fleet.sources` (what each system pages through), :mod:`~nexus.fleet.runner` (one stream's
snapshot with per-page retries and checkpoints), :mod:`~nexus.fleet.store` (Redis keys), :mod:`~nexus.fleet.codec`
(compact pages), :mod:`~nexus.fleet.guard` (the mass-drift guard), :mod:`~nexus.fleet.assess` (which snapshots to
believe, the last-known-good fallback), :mod:`~nexus.fleet.compare` (the engine over the snapshots),
:mod:`~nexus.fleet.report` (the report and what the audit leaves behind), :mod:`~nexus.fleet.cost` (bulk audits:
snapshot or per person). The Celery side is :mod:`tasks.fleet`.
"""

from nexus.fleet.assess import Assessment, assess
from nexus.fleet.compare import Comparison, FleetComparer
from nexus.fleet.cost import prefer_snapshot
from nexus.fleet.guard import judge, suppress
from nexus.fleet.report import bulk_snapshot_report, fleet_report, settle
from nexus.fleet.runner import RunResult, SnapshotRunner
from nexus.fleet.store import SnapshotStore

__all__ = [
    "Assessment",
    "Comparison",
    "FleetComparer",
    "RunResult",
    "SnapshotRunner",
    "SnapshotStore",
    "assess",
    "bulk_snapshot_report",
    "fleet_report",
    "judge",
    "prefer_snapshot",
    "settle",
    "suppress",
]
