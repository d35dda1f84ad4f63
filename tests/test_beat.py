"""The weekly fleet audit: schedule from settings, the task that submits it, and two `nexus beat` replicas on
celery-redbeat sending each tick exactly once (including when the lock holder dies and the standby takes over)."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from nexus.settings import Settings
from nexus.testing.redis_server import redis_server
from workers.beat import FLEET_ENTRY, FLEET_TASK, beat_config, beat_schedule, parse_cron

ROOT = Path(__file__).resolve().parents[1]
EVERY_S = 2.0


def _settings(**env: str) -> Settings:
    return Settings(**{"REDIS_URL": "redis://127.0.0.1:1/0", **env})  # type: ignore[arg-type]


# -- the schedule -------------------------------------------------------------------------------------------------
def test_default_is_weekly_monday_0600_utc_and_does_not_fire_at_start() -> None:
    entry = beat_schedule(_settings())[FLEET_ENTRY]
    assert entry["task"] == FLEET_TASK
    assert entry["options"]["queue"] == "audit"
    cron = entry["schedule"]
    last_monday = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    cron.nowfun = lambda: datetime(2026, 11, 30, 5, 59, tzinfo=UTC)
    due, next_in = cron.is_due(last_monday)
    assert not due and next_in == pytest.approx(60, abs=1)
    cron.nowfun = lambda: datetime(2026, 11, 30, 6, 0, 30, tzinfo=UTC)
    assert cron.is_due(last_monday)[0]
    cron.nowfun = lambda: datetime(2026, 11, 26, 6, 0, tzinfo=UTC)  # a Thursday
    assert not cron.is_due(last_monday)[0]


def test_cron_and_interval_come_from_settings() -> None:
    daily = beat_schedule(_settings(NEXUS_FLEET_AUDIT_CRON="30 2 * * *"))[FLEET_ENTRY]["schedule"]
    assert daily.hour == {2} and daily.minute == {30} and len(daily.day_of_week) == 7
    every = beat_schedule(_settings(NEXUS_FLEET_AUDIT_EVERY_S="2", NEXUS_FLEET_AUDIT_CRON="junk"))[FLEET_ENTRY]
    assert every["schedule"].run_every == timedelta(seconds=2)
    assert every["options"]["expires"] == 2
    assert beat_schedule(_settings(NEXUS_FLEET_AUDIT_ENABLED="false")) == {}


@pytest.mark.parametrize("expr", ["0 6 * *", "0 6 * * 1 2", "61 6 * * 1", "0 6 * * funday", ""])
def test_bad_cron_is_one_clear_error(expr: str) -> None:
    with pytest.raises(ValueError, match="NEXUS_FLEET_AUDIT_CRON"):
        parse_cron(expr)


def test_beat_config_uses_redbeat_with_a_lock_that_outlives_a_tick() -> None:
    conf = beat_config(_settings(NEXUS_BEAT_MAX_INTERVAL_S="30", NEXUS_BEAT_LOCK_TIMEOUT_S="150"))
    assert conf["beat_scheduler"] == "redbeat.RedBeatScheduler"
    assert conf["redbeat_redis_url"] == "redis://127.0.0.1:1/0"
    assert conf["redbeat_lock_timeout"] == 150 and conf["beat_max_loop_interval"] == 30
    other = beat_config(_settings(NEXUS_BEAT_REDIS_URL="redis://127.0.0.1:2/3"))
    assert other["redbeat_redis_url"] == "redis://127.0.0.1:2/3"
    with pytest.raises(ValueError, match="NEXUS_BEAT_LOCK_TIMEOUT_S"):
        beat_config(_settings(NEXUS_BEAT_MAX_INTERVAL_S="30", NEXUS_BEAT_LOCK_TIMEOUT_S="30"))


# -- the task -----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _pointed_at(url: str) -> Iterator[None]:
    """This process's settings, Redis client and Celery broker on a private Redis (restored afterwards)."""
    from nexus import runtime
    from nexus.settings import get_settings
    from workers.app import celery_app
    from workers.config import celery_config

    saved = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = url

    def apply() -> None:
        get_settings.cache_clear()
        runtime.reset()
        celery_app.conf.update(celery_config(get_settings()))

    apply()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("REDIS_URL", None)
        else:
            os.environ["REDIS_URL"] = saved
        apply()


def _queued(r: redis.Redis, queue: str = "audit") -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in r.lrange(queue, 0, -1)]


@pytest.mark.integration  # a real redis-server
def test_scheduled_task_submits_one_fleet_audit_per_tick_even_if_redelivered() -> None:
    from nexus.audits.store import AuditStore
    from tasks.scheduled import scheduled_fleet

    with redis_server() as url, _pointed_at(url):
        r = redis.Redis.from_url(url)
        first = scheduled_fleet.apply(task_id="tick-1").get()
        again = scheduled_fleet.apply(task_id="tick-1").get()  # the same message, redelivered
        second = scheduled_fleet.apply(task_id="tick-2").get()
        assert first["duplicate"] is False and again == {"audit_id": first["audit_id"], "duplicate": True}
        assert second["duplicate"] is False and second["audit_id"] != first["audit_id"]
        audits = AuditStore(r).list(10)
        assert sorted(a["id"] for a in audits) == sorted([first["audit_id"], second["audit_id"]])
        assert {a["kind"] for a in audits} == {"fleet"}
        plans = _queued(r)
        assert [m["headers"]["task"] for m in plans] == ["nexus.audit.plan", "nexus.audit.plan"]
        planned = sorted(json.loads(base64.b64decode(m["body"]))[0][0] for m in plans)
        assert planned == sorted([first["audit_id"], second["audit_id"]])


# -- two beat replicas --------------------------------------------------------------------------------------------
@dataclass
class Beat:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sends(self) -> int:
        return self.log().count(f"Sending due task {FLEET_ENTRY}")

    def holds_lock(self) -> bool:
        return "beat: Acquired lock" in self.log()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class TickObserver:
    """Polls redbeat's entry (``meta.last_run_at``) and records every distinct tick with when it was seen."""

    r: redis.Redis
    key: str = f"nexus:redbeat:{FLEET_ENTRY}"
    ticks: list[datetime] = field(default_factory=list)
    run_count: int = 0

    def poll(self) -> bool:
        raw = self.r.hget(self.key, "meta")
        if raw is None:
            return False
        meta = json.loads(raw)
        last = meta.get("last_run_at")
        self.run_count = int(meta.get("total_run_count", 0))
        if not last or self.run_count == 0:
            return False  # the entry was stored but never ran (last_run_at is its creation time)
        when = datetime(last["year"], last["month"], last["day"], last["hour"], last["minute"], last["second"],
                        last["microsecond"], tzinfo=UTC)
        if not self.ticks or self.ticks[-1] != when:
            self.ticks.append(when)
            return True
        return False

    def watch_ticks(self, count: int, timeout: float, settle: float = 0.3) -> None:
        """Poll until ``count`` ticks have been seen in all (at most ``timeout`` s), then ``settle`` s more."""
        deadline = time.monotonic() + timeout
        while len(self.ticks) < count and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.02)
        self.watch(settle)

    def watch(self, seconds: float, until_tick_then: float | None = None) -> None:
        """Poll every 20 ms for ``seconds``; or, with ``until_tick_then``, stop that long after the next tick."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.poll() and until_tick_then is not None:
                deadline = min(deadline, time.monotonic() + until_tick_then)
            time.sleep(0.02)


def _spawn_beat(name: str, env: dict[str, str], workdir: Path) -> Beat:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "beat", "--loglevel=INFO"], cwd=workdir,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Beat(name, proc, log_path)


def _wait_for(predicate: Any, timeout: float, beats: list[Beat], what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for b in beats:
            if b.proc.poll() is not None and b.proc.returncode not in (-signal.SIGKILL,):
                raise AssertionError(f"{b.name} exited {b.proc.returncode}:\n{b.log()[-3000:]}")
        time.sleep(0.05)
    logs = "\n".join(f"--- {b.name}\n{b.log()[-2000:]}" for b in beats)
    raise AssertionError(f"timed out waiting for {what}:\n{logs}")


def _sent_at(message: dict[str, Any]) -> datetime:
    """When beat sent a message: its ``expires`` header is send time + EVERY_S (beat_schedule's options)."""
    return datetime.fromisoformat(message["headers"]["expires"]) - timedelta(seconds=EVERY_S)


def _assert_one_message_per_tick(ticks: list[datetime], messages: list[dict[str, Any]], run_count: int) -> None:
    assert messages, "beat sent nothing"
    assert {m["headers"]["task"] for m in messages} == {FLEET_TASK}
    assert all(m["headers"].get("celery_beat_task") for m in messages)
    ids = [m["headers"]["id"] for m in messages]
    assert len(set(ids)) == len(ids), "a message was sent twice"
    assert len(messages) == len(ticks) == run_count, (len(messages), ticks, run_count)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ticks)]
    assert all(g >= EVERY_S * 0.95 for g in gaps), f"two ticks closer than the interval: {gaps}"
    sent = sorted(_sent_at(m) for m in messages)  # LPUSH order is newest first; sort by send time
    for tick, at in zip(ticks, sent, strict=True):
        assert abs((at - tick).total_seconds()) < 0.5, f"message sent at {at} does not match tick {tick}"


@pytest.mark.integration
def test_two_beat_replicas_send_each_tick_exactly_once_and_fail_over(tmp_path: Path) -> None:
    with redis_server() as url:
        env = {k: v for k, v in os.environ.items() if k != "NEXUS_ENV_FILE"}
        env.update({"REDIS_URL": url, "NEXUS_FLEET_AUDIT_EVERY_S": str(EVERY_S), "NEXUS_BEAT_MAX_INTERVAL_S": "0.5",
                    "NEXUS_BEAT_LOCK_TIMEOUT_S": "2", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)})
        r = redis.Redis.from_url(url)
        beats = [_spawn_beat("beat-a", env, tmp_path), _spawn_beat("beat-b", env, tmp_path)]
        try:
            _wait_for(lambda: all("beat: Starting" in b.log() for b in beats) and any(b.holds_lock() for b in beats),
                      60, beats, "both beats to start and one to take the lock")
            observer = TickObserver(r)

            # Phase 1: both replicas up for three ticks (~7 s; ending just after a tick, so logs, meta and queue
            # agree); one holds the lock and sends, the other waits on the lock.
            observer.watch_ticks(3, timeout=5 * EVERY_S)
            holders = [b for b in beats if b.holds_lock()]
            assert len(holders) == 1, [b.log()[-1500:] for b in beats]
            holder, standby = holders[0], next(b for b in beats if b is not holders[0])
            assert len(observer.ticks) >= 3, observer.ticks
            assert standby.proc.poll() is None, "the standby must be running (blocked on the lock), not gone"
            assert standby.sends() == 0 and holder.sends() == len(observer.ticks)
            _assert_one_message_per_tick(observer.ticks, _queued(r), observer.run_count)
            phase1 = len(observer.ticks)

            # Phase 2: SIGKILL the holder just after a tick (its lock is not released: it expires after 2 s);
            # the standby takes the lock and carries on from the last_run_at stored in Redis.
            holder.stop(signal.SIGKILL)
            _wait_for(standby.holds_lock, 10, [standby], "the standby to take over the lock")
            observer.watch_ticks(phase1 + 2, timeout=3 * EVERY_S)
            assert len(observer.ticks) >= phase1 + 2, observer.ticks
            assert standby.sends() == len(observer.ticks) - phase1
            _assert_one_message_per_tick(observer.ticks, _queued(r), observer.run_count)
            print(f"ticks={[t.isoformat() for t in observer.ticks]} phase1={phase1} takeover_after_kill="
                  f"{(observer.ticks[phase1] - observer.ticks[phase1 - 1]).total_seconds():.2f}s")
        finally:
            for b in beats:
                b.stop()
