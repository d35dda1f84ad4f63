"""The fault matrix: every fault kind on every system, run as real audits on a rig, and the outcome classified.

A *rig* is a running Nexus (Redis, the simulators, Celery worker processes): ``nexus.testing.cluster.Cluster``
satisfies :class:`Rig`. For each (system, fault) cell, :class:`FaultMatrix` runs:

1. a clean warm-up audit (the worker's token cache and LDAP connection are then in a known state, so request
   counts are exact),
2. the audit under the fault: a user audit for Workday, AD and Entra, a device audit for Intune, Lansweeper and
   Helix, a device audit of a serial with a return ticket for FedEx,
3. a follow-up audit when the breaker opened (it must fail fast: nothing reaches the system),
4. for ``truncated``: a fleet audit (every system's listing, paged by :mod:`tasks.fleet` through each client's
   ``fetch_page`` chain), because the per-subject lookups of an audit do not page,

and records an :class:`Outcome`: the error class and kind in the report's ``errors``, the attempts (the marker's
``attempts``, or the progress record's ``attempt`` when the system was read), the requests that reached the system
(the simulator's request log), the countdowns before each retry (the workers' ``[resilience] ... Retry attempt``
lines), the breaker state after the cell (it is closed before: breakers are reset between cells), and whether the
system is in ``systems_failed``.

:data:`EXPECTED` is the outcome table the drill must reproduce exactly; :func:`render_section` renders it as the
Markdown table in ``docs/reliability.md`` (``scripts/fault_matrix.py`` regenerates the file), so the published table
is the one the drill verifies. Numbers depend on :data:`RIG_ENV` and the rig's org (:data:`MATRIX_PEOPLE`,
:data:`MATRIX_SEED`); the rig must run ONE worker process with one pool slot (:data:`RIG_WORKERS`), so that the
warm-up leaves the token and the LDAP connection where the measured audit will find them.

A development tool, not part of the installed package: :mod:`.matrix` (the cells and :data:`EXPECTED`),
:mod:`.drill` (:class:`FaultMatrix`, the runner) and :mod:`.render` (the table). Imported as ``scripts.faultmatrix``
by ``scripts/fault_matrix.py`` and ``tests/test_fault_matrix.py``.
"""

from .drill import WAIT_S, CellResult, DrillError, FaultMatrix, Rig, Subjects, retry_waits
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
    SYSTEMS,
    Cell,
    Fault,
    Fleet,
    Outcome,
    all_cells,
    faults_for,
)
from .render import END_MARKER, START_MARKER, extract_section, render_section, render_table, update_document

__all__ = [
    "AUDIT_KIND",
    "END_MARKER",
    "EXPECTED",
    "FAULT_LABELS",
    "MATRIX_PEOPLE",
    "MATRIX_SEED",
    "NOTES",
    "RIG_CONCURRENCY",
    "RIG_ENV",
    "RIG_WORKERS",
    "START_MARKER",
    "SYSTEMS",
    "WAIT_S",
    "Cell",
    "CellResult",
    "DrillError",
    "Fault",
    "FaultMatrix",
    "Fleet",
    "Outcome",
    "Rig",
    "Subjects",
    "all_cells",
    "extract_section",
    "faults_for",
    "render_section",
    "render_table",
    "retry_waits",
    "update_document",
]
