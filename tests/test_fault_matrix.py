"""Every fault kind on every system (scripts/faultmatrix/), and the published table (docs/reliability.md).

`make test` runs a representative subset on a private rig: every fault on Workday (an HTTP system), the LDAP
specifics of AD, and FedEx (reached in a device audit's second stage). `make drill` runs the full matrix. Each cell must
reproduce its row of ``scripts.faultmatrix.EXPECTED`` exactly, and the table in docs/reliability.md is rendered from
that same table, so the published outcomes are the verified ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus.systems import System
from nexus.testing.cluster import Cluster
from scripts.faultmatrix import (
    EXPECTED,
    MATRIX_PEOPLE,
    MATRIX_SEED,
    RIG_CONCURRENCY,
    RIG_ENV,
    RIG_WORKERS,
    Cell,
    Fault,
    FaultMatrix,
    Outcome,
    all_cells,
    extract_section,
    faults_for,
    render_section,
    retry_waits,
    update_document,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"

#: The cells `make test` runs (about 30 s): every fault on one HTTP system, AD's LDAP mappings, FedEx in stage two.
SUBSET: list[Cell] = [
    *((System.WORKDAY, f) for f in faults_for(System.WORKDAY)),
    *((System.AD, f) for f in (Fault.DOWN, Fault.THROTTLE, Fault.EXPIRED_TOKEN, Fault.MALFORMED, Fault.TRUNCATED,
                               Fault.REFUSED)),
    *((System.FEDEX, f) for f in (Fault.DOWN, Fault.THROTTLE, Fault.EXPIRED_TOKEN, Fault.MALFORMED)),
]


def _id(cell: Cell) -> str:
    return f"{cell[0].value}-{cell[1].value}"


# -- the expected table and the document (no rig) -------------------------------------------------------------------
def test_every_cell_has_an_expected_outcome() -> None:
    assert set(EXPECTED) == set(all_cells())
    assert len(all_cells()) == 7 * 8 + 1  # seven systems x eight faults, plus AD's refused connection
    assert all(o.completed for o in EXPECTED.values()), "every audit must complete, whatever the fault"


@pytest.mark.parametrize("cell", all_cells(), ids=_id)
def test_expected_outcomes_follow_the_error_tree(cell: Cell) -> None:
    """The rules the table must obey, stated once (the drill then proves reality obeys the table)."""
    system, fault = cell
    o = EXPECTED[cell]
    assert o.failed == bool(o.error)
    # a wait before each retry of each request: the failed request's, or (read) at least the hardest request's
    assert len(o.waits) == o.attempts - 1 if o.failed else len(o.waits) >= o.attempts - 1
    if o.breaker == "open":
        assert o.failed and o.kind == "transient" and o.breaker_failures == 3
        assert (o.next_error, o.next_requests) == ("BreakerOpenError", 0), "an open breaker fails fast, sends nothing"
    if fault in (Fault.DOWN, Fault.SLOW, Fault.REFUSED):  # one failed request, after its 3 attempts: 1 failure
        assert (o.error, o.attempts, o.breaker, o.breaker_failures) == ("TransientError", 3, "closed", 1)
    if fault is Fault.THROTTLE_PERSISTENT:
        assert (o.error, o.attempts, o.breaker, o.breaker_failures) == ("ThrottledError", 3, "closed", 0)
        assert o.waits == ((1.0, 1.0) if system is not System.AD else (0.25, 0.5))  # Retry-After honoured
    if fault is Fault.THROTTLE:
        assert not o.failed and o.attempts == 2 and o.breaker == "closed"
    if fault is Fault.EXPIRED_TOKEN:
        assert (o.error, o.kind, o.attempts, o.breaker) == ("AuthError", "auth", 1, "closed")  # re-auth once, no retry
    if fault is Fault.MALFORMED:
        assert (o.error, o.attempts, o.breaker, o.breaker_failures) == ("MalformedResponseError", 1, "closed", 1)
    if fault is Fault.TRUNCATED:
        assert not o.failed, "lookups do not page"
        assert (o.fleet is None) == (system is System.FEDEX)
        if o.fleet is not None:  # the fleet audit completes and names the system it could not list completely
            first = 0 if system is System.WORKDAY else 1  # Workday's listing is one report request: its page 0
            assert o.fleet.failed and o.fleet.error and o.fleet.page is not None and o.fleet.page >= first
            assert o.fleet.attempts == (3 if o.fleet.kind == "transient" else 1)  # the PAGE is retried
            assert o.fleet.breaker == "closed"


def test_published_table_is_the_expected_table() -> None:
    """docs/reliability.md shows exactly what the drill verifies (`scripts/fault_matrix.py --render-only` fixes it)."""
    text = DOC.read_text(encoding="utf-8")
    assert extract_section(text) == render_section(), (
        "docs/reliability.md is stale: run `.venv/bin/python scripts/fault_matrix.py --render-only`")
    assert update_document(text) == text


def test_render_marks_failures_transitions_and_listings() -> None:
    section = render_section()
    assert "| Workday | down | user | failed, in `systems_failed` | `TransientError` (transient, HTTP 503) | 3 | " \
           "0.25, 0.5 | 3 | closed (1 failure) |  |" in section
    assert "| FedEx | truncated paging | device+return | read |" in section
    assert "fleet audit: failed, `TransientError` (transient) on page 2 after 3 attempts" in section
    with pytest.raises(ValueError, match="markers"):
        update_document("no markers here")


def test_retry_waits_reads_the_workers_countdown_lines() -> None:
    logs = (
        "[2026-01-01 00:00:00,000: WARNING/ForkPoolWorker-1] [resilience] [Workday] Retry attempt 1/3 after "
        "ThrottledError: HTTP 429: Too many requests (countdown 1.0s)\n"
        "[resilience] [ActiveDirectory] Retry attempt 1/3 after TransientError: AD bind: x (y) (countdown 0.25s)\n"
        "[resilience] [Workday] Retry attempt 2/3 after TransientError: HTTP 503: (down) (countdown 0.5s)\n"
    )
    assert retry_waits(logs, System.WORKDAY) == [1.0, 0.5]
    assert retry_waits(logs, System.AD) == [0.25]
    assert retry_waits(logs, System.HELIX) == []


def test_outcome_diff_names_the_fields_that_differ() -> None:
    a = Outcome(failed=True, error="TransientError", kind="transient", attempts=3)
    b = Outcome(failed=True, error="TransientError", kind="transient", attempts=2)
    assert a.diff(b) == {"attempts": (3, 2)}
    assert a.diff(a) == {}


def test_a_failure_no_retry_follows_counts_even_for_a_retrying_caller() -> None:
    """``calling(count_failure=False)`` (a fleet page before its last attempt) spares only errors the caller will
    retry: a malformed answer is never retried, so it counts against the breaker as it does for lookups."""
    from clients.breaker import get_breaker
    from nexus.errors import MalformedResponseError, TransientError
    from nexus.policy import BreakerPolicy

    breaker = get_breaker("helix", redis="memory://fault-matrix", policy=BreakerPolicy(fail_max=3))
    breaker.close()
    with pytest.raises(TransientError), breaker.calling(count_failure=False):
        raise TransientError("503", system="helix")
    assert breaker.snapshot().failures == 0
    with pytest.raises(MalformedResponseError), breaker.calling(count_failure=False):
        raise MalformedResponseError("not JSON", system="helix")
    assert breaker.snapshot().failures == 1


# -- the drill (a private rig) --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def matrix() -> Iterator[FaultMatrix]:
    """A rig of its own: the drill's pinned settings and ONE worker process (exact request counts)."""
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # abandoned slow requests are not errors here
    with Cluster.start(people=MATRIX_PEOPLE, seed=MATRIX_SEED, workers=RIG_WORKERS, concurrency=RIG_CONCURRENCY,
                       extra_env=RIG_ENV) as rig, FaultMatrix(rig) as drill:
        yield drill


def _check(matrix: FaultMatrix, cell: Cell) -> None:
    result = matrix.run_cell(*cell)
    expected = EXPECTED[cell]
    assert result.observed == expected, (
        f"{result.describe()}\nreport error: {result.detail.get('error')}\ndiff (expected, observed): "
        f"{expected.diff(result.observed)}")
    if expected.failed:  # the reason is in the report, readable
        assert result.message and result.detail["error"]["attempts"] == expected.attempts


@pytest.mark.integration
@pytest.mark.parametrize("cell", SUBSET, ids=_id)
def test_fault_cell(matrix: FaultMatrix, cell: Cell) -> None:
    _check(matrix, cell)


@pytest.mark.integration
@pytest.mark.drill
@pytest.mark.parametrize("cell", all_cells(), ids=_id)
def test_fault_cell_drill(matrix: FaultMatrix, cell: Cell) -> None:
    _check(matrix, cell)

