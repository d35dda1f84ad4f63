"""Celery beat for the weekly fleet audit, on celery-redbeat (``nexus beat``).

The schedule lives in Redis (``NEXUS_BEAT_KEY_PREFIX``, default ``nexus:redbeat:``), not in a local file, and a beat
holds a Redis lock (``<prefix>:lock``) while it runs: a second replica blocks on that lock, polling it every
``NEXUS_BEAT_MAX_INTERVAL_S``, and takes over at most ``NEXUS_BEAT_LOCK_TIMEOUT_S`` after the holder died. So two
replicas never send the same tick twice, and a crashed beat is replaced without a human.

One entry, ``nexus-fleet-audit``, sends ``nexus.audit.scheduled_fleet`` (:mod:`tasks.scheduled`) to the ``audit``
queue on ``NEXUS_FLEET_AUDIT_CRON`` (five cron fields, UTC; default ``0 6 * * 1``: Mondays 06:00).
``NEXUS_FLEET_AUDIT_EVERY_S`` > 0 replaces the cron by a fixed interval (tests, demos).
``NEXUS_FLEET_AUDIT_ENABLED=false`` runs beat with no entry (the stored entry is removed at start).

Redbeat keeps ``last_run_at`` in Redis, so restarting beat neither repeats a tick nor starts an audit at start-up;
a tick missed while no beat ran is sent once when a beat comes back (celery's schedules do not replay each missed
tick).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab, schedule

from nexus.redis_sentinel import redbeat_config
from nexus.settings import Settings, get_settings
from workers.routing import AUDIT_QUEUE

FLEET_ENTRY = "nexus-fleet-audit"
FLEET_TASK = "nexus.audit.scheduled_fleet"
SCHEDULER = "redbeat.RedBeatScheduler"
MAX_EXPIRES_S = 12 * 3600  # a tick not picked up by a worker within 12 h is dropped, not run days late


def parse_cron(expr: str) -> crontab:
    """Five fields ``minute hour day-of-month month day-of-week``; ValueError with the expression otherwise."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"NEXUS_FLEET_AUDIT_CRON must have 5 fields (minute hour day month weekday), got {expr!r}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                       day_of_week=day_of_week)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"NEXUS_FLEET_AUDIT_CRON {expr!r}: {exc}") from exc


def fleet_schedule(settings: Settings) -> crontab | schedule:
    if settings.fleet_audit_every_s > 0:
        return schedule(run_every=timedelta(seconds=settings.fleet_audit_every_s))
    return parse_cron(settings.fleet_audit_cron)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The static schedule (``beat_schedule``); empty when the fleet audit is disabled."""
    if not settings.fleet_audit_enabled:
        return {}
    expires = MAX_EXPIRES_S
    if settings.fleet_audit_every_s > 0:
        expires = max(1, min(MAX_EXPIRES_S, int(settings.fleet_audit_every_s)))
    return {
        FLEET_ENTRY: {
            "task": FLEET_TASK,
            "schedule": fleet_schedule(settings),
            "options": {"queue": AUDIT_QUEUE, "expires": expires},
        }
    }


def beat_config(settings: Settings) -> dict[str, Any]:
    """Celery configuration for beat on redbeat. ValueError if the lock could expire between two ticks."""
    if settings.beat_lock_timeout_s <= settings.beat_max_interval_s:
        raise ValueError(
            f"NEXUS_BEAT_LOCK_TIMEOUT_S ({settings.beat_lock_timeout_s}) must exceed NEXUS_BEAT_MAX_INTERVAL_S "
            f"({settings.beat_max_interval_s:g}): beat renews its lock once per tick"
        )
    config: dict[str, Any] = {
        "beat_scheduler": SCHEDULER,
        "beat_schedule": beat_schedule(settings),
        "beat_max_loop_interval": settings.beat_max_interval_s,
        "redbeat_redis_url": settings.beat_redis_url or settings.redis_url,
        "redbeat_key_prefix": settings.beat_key_prefix,
        "redbeat_lock_timeout": settings.beat_lock_timeout_s,
        # redbeat falls back to the broker's transport options when this is unset (deprecated): say it explicitly.
        "redbeat_redis_options": {},
    }
    target = settings.redis_sentinel()
    if target is not None:  # the schedule and lock on the Sentinel-managed master (NEXUS_BEAT_REDIS_URL is empty)
        config.update(redbeat_config(target))
    return config


def configure_beat(app: Celery, settings: Settings | None = None) -> None:
    app.conf.update(beat_config(settings or get_settings()))


def run_beat(loglevel: str = "INFO") -> None:
    """Run celery beat in this process until it is stopped (SIGTERM/SIGINT releases the lock)."""
    from workers.app import celery_app

    configure_beat(celery_app)
    celery_app.start(["beat", f"--loglevel={loglevel}", f"--scheduler={SCHEDULER}"])
