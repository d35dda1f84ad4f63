"""The supervisor of the default worker group (workers/supervisor.py): a stop signal that arrives while a child is
being started still reaches that child, and a child stuck in a crash loop stops the group with a non-zero exit
(issue 10, item 7 follow-up). Fake processes, an injected clock and sleep: no real waits."""

from __future__ import annotations

import logging
import signal

import pytest

from nexus.testing.supervisor_rig import SupervisorRig as Rig
from workers.supervisor import CRASH_LOOP_LIMIT, EXIT_FAILURE


def test_a_signal_during_the_first_start_loop_stops_every_child_started() -> None:
    rig = Rig(["workday", "ad", "entra"])
    rig.on_spawn = lambda: rig.sup.stop(signal.SIGTERM)  # `docker stop` while the first child is being spawned
    assert rig.sup.run(poll_s=0.2) == 0
    assert rig.spawned, "nothing started"
    for proc in rig.spawned:  # whatever was started got its warm shutdown
        assert proc.signals == [signal.SIGTERM], [p.signals for p in rig.spawned]
    assert len(rig.spawned) == 1  # and nothing more was started once the group was stopping


def test_a_signal_during_a_restart_reaches_the_restarted_child() -> None:
    rig = Rig(["workday", "ad"])
    for child in rig.sup.children:
        rig.sup.start(child)
    rig.spawned[0].returncode = 1  # workday's worker dies
    assert rig.sup.step()
    rig.clock.advance(1.0)
    rig.on_spawn = lambda: rig.sup.stop(signal.SIGTERM)  # the signal lands while its replacement is spawned
    rig.sup.step()
    restarted = rig.spawned[2]
    assert restarted.signals == [signal.SIGTERM]
    assert rig.spawned[1].signals == [signal.SIGTERM]
    assert not rig.sup.step()  # every child gone: the group has stopped, no second signal needed


def test_no_child_is_started_once_the_group_is_stopping() -> None:
    rig = Rig(["workday"])
    rig.sup.stop(signal.SIGTERM)
    rig.sup.start(rig.sup.children[0])
    assert rig.spawned == []


def test_a_crash_loop_stops_the_group_with_a_non_zero_exit(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(["workday", "ad"])
    for child in rig.sup.children:
        rig.sup.start(child)
    caplog.set_level(logging.ERROR, logger="nexus.workers")
    for crash in range(CRASH_LOOP_LIMIT):
        assert rig.sup.exit_code == 0, crash
        rig.sup.children[0].proc.returncode = 1  # type: ignore[union-attr]  # a config error: dies at once
        rig.sup.step()
        rig.clock.advance(rig.sup.children[0].restart_delay_s)
        rig.sup.step()
    assert rig.sup.exit_code == EXIT_FAILURE
    assert rig.spawned[1].signals == [signal.SIGTERM]  # ad's worker is stopped too
    assert not rig.sup.step()
    lines = [r.getMessage() for r in caplog.records if "crash loop" in r.getMessage()]
    assert len(lines) == 1 and "workday" in lines[0] and f"{CRASH_LOOP_LIMIT} times" in lines[0], lines


def test_a_child_that_ran_for_a_while_is_not_a_crash_loop() -> None:
    rig = Rig(["workday"])
    rig.sup.start(rig.sup.children[0])
    for _ in range(CRASH_LOOP_LIMIT * 2):
        rig.clock.advance(120.0)  # ran two minutes each time: a stable worker that died, not a loop
        rig.sup.children[0].proc.returncode = 1  # type: ignore[union-attr]
        rig.sup.step()
        rig.clock.advance(rig.sup.children[0].restart_delay_s)
        assert rig.sup.step()
    assert rig.sup.exit_code == 0
