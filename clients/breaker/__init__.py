"""Circuit breakers shared by every worker process through Redis, on pybreaker's API.

One reason to change per module:

=======================================  ==========================================================================
:mod:`clients.breaker.scripts`           the Lua: one script per transition, decided inside Redis
:mod:`clients.breaker.storage`           :class:`RedisBreakerStorage`: runs the scripts, fails open without Redis
:mod:`clients.breaker.breaker`           :class:`NexusBreaker`: the pybreaker API, listeners, the ``[resilience]``
                                         transition lines, and where it differs from pybreaker on purpose
:mod:`clients.breaker.unit`              units of work (:func:`unit_of_work`, :class:`UnitGate`): the requests of one
                                         snapshot or part share the half-open trial their first request won
:mod:`clients.breaker.lease`             :class:`LeaseKeeper`: a running trial renews its slot's lease
:mod:`clients.breaker.registry`          the process's breakers (:func:`get_breaker`, :func:`breaker_state`,
                                         :func:`reset_breaker`, :func:`clear_registry`) and its installed listeners
=======================================  ==========================================================================

The semantics (CLOSED / OPEN / one fleet-wide half-open trial or one unit of work's, transitions announced once by
the process that made them) are in :mod:`clients.breaker.breaker`. What the breaker raises,
:class:`nexus.errors.BreakerOpenError` (:class:`TrialInProgressError` when another unit's trial is deciding), lives
in the error tree; the Redis clients come from :func:`nexus.redis_conn.redis_for` (``memory://`` is an in-process
fake).
"""

from __future__ import annotations

from clients.breaker.breaker import (
    TRIAL_WAIT_LEASES,
    BreakerSnapshot,
    Clock,
    NexusBreaker,
    TrialInProgressError,
    trial_wait_budget_s,
    trial_wait_s,
)
from clients.breaker.lease import LeaseKeeper
from clients.breaker.registry import (
    breaker_state,
    clear_registry,
    get_breaker,
    install_listener,
    reset_breaker,
    uninstall_listener,
)
from clients.breaker.storage import CLOSED, DEFAULT_NAMESPACE, HALF_OPEN, OPEN, Admission, RedisBreakerStorage, Ticket
from clients.breaker.unit import UnitGate, current_unit, unit_of_work

__all__ = [
    "CLOSED",
    "DEFAULT_NAMESPACE",
    "HALF_OPEN",
    "OPEN",
    "TRIAL_WAIT_LEASES",
    "Admission",
    "BreakerSnapshot",
    "Clock",
    "LeaseKeeper",
    "NexusBreaker",
    "RedisBreakerStorage",
    "Ticket",
    "TrialInProgressError",
    "UnitGate",
    "breaker_state",
    "clear_registry",
    "current_unit",
    "get_breaker",
    "install_listener",
    "reset_breaker",
    "trial_wait_budget_s",
    "trial_wait_s",
    "uninstall_listener",
    "unit_of_work",
]
