"""Helpers for testing Nexus and code built on it (public, like ``structlog.testing``).

- :mod:`nexus.testing.clock`: :class:`FakeClock`, one fake for every injected ``clock=`` / ``sleep=``.
- :mod:`nexus.testing.waiting`: :func:`wait_until`, polling with a deadline that fails instead of hanging.
- :mod:`nexus.testing.sims`: :class:`~nexus.testing.sims.SimHarness`, HTTP simulators on a real socket.
- :mod:`nexus.testing.redis_server`: a private ``redis-server`` on a free port.
- :mod:`nexus.testing.cluster`: the integration rig: a private Redis, every simulator (slapd for AD) and real
  Celery worker processes.
- :mod:`nexus.testing.procs`: processes from ``/proc`` (pool children, liveness, CPU time).
- :mod:`nexus.testing.sentinel_rig`: a Sentinel-managed Redis (primary, replica, three sentinels) to fail over.

Only the first two are imported here: the others start servers and import the whole stack, so they are imported
by name when needed.
"""

from nexus.testing.clock import FakeClock
from nexus.testing.waiting import WaitTimedOut, wait_until

__all__ = ["FakeClock", "WaitTimedOut", "wait_until"]
