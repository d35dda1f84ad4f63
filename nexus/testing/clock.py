"""A fake clock for code that takes its time and its sleep by injection (``clock=``, ``sleep=``).

Nexus reads time through injected callables: epoch seconds (``clock=time.time``: the audit, fleet and waiver
stores, the simulators' token issuer; the breaker and the rate limiter default to Redis's clock instead, read inside
their scripts, and use an injected clock when given one) or monotonic seconds (``clock=time.monotonic``: the
facade's ``wait``, remediation's lock wait, the MCP server's bounded wait, the Lansweeper simulator's rate limiter),
and waits through ``sleep=`` (``time.sleep``, or an async sleep such as ``anyio.sleep``). One :class:`FakeClock`
stands in for all of them::

    clock = FakeClock()
    bucket = TokenBucket(budget, redis, clock=clock, sleep=clock.sleep)   # sleeping moves the clock
    clock.advance(30)                                                     # so does the test
    assert clock.slept == [0.5]

The clock itself is the callable (``clock()`` is ``clock.now``); :meth:`time` and :meth:`monotonic` are the same
reading under the names of the functions they replace. Nothing here ever waits for real.
"""

from __future__ import annotations

#: The default start: an epoch time (2023-11-14), so values look like ``time.time()`` readings.
T0 = 1_700_000_000.0


class FakeClock:
    """Seconds that move only when a test advances them, when the code under test sleeps, or by ``step`` per read.

    ``now`` is a plain attribute: tests may set it or add to it (``clock.now += 60``). ``step`` makes every read
    ``step`` seconds later than the one before (the first read is ``start``), for code that must see time pass
    between two calls without a test in between.
    """

    def __init__(self, start: float = T0, *, step: float = 0.0) -> None:
        self.now = float(start)
        self.step = float(step)
        #: Every sleep asked for, in order (sync and async alike).
        self.slept: list[float] = []

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value

    def time(self) -> float:
        """Stands in for ``time.time``."""
        return self()

    def monotonic(self) -> float:
        """Stands in for ``time.monotonic``."""
        return self()

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        """Stands in for ``time.sleep``: records the wait and moves the clock by it, at once."""
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        """Stands in for ``asyncio.sleep`` / ``anyio.sleep``."""
        self.sleep(seconds)

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r}, slept={len(self.slept)})"


__all__ = ["T0", "FakeClock"]
