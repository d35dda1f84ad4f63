"""Celery configuration built from settings (a value, so tests and the embedded demo can build their own)."""

from __future__ import annotations

from typing import Any

from kombu import Queue

from nexus.redis_sentinel import celery_backend_config, celery_broker_config, publish_retry_policy
from nexus.settings import Settings
from workers.routing import ALL_QUEUES, AUDIT_QUEUE, task_routes


def celery_config(
    settings: Settings, *, broker_url: str | None = None, backend_url: str | None = None
) -> dict[str, Any]:
    """The worker and client configuration.

    - JSON only, so nothing a worker receives can execute code.
    - ``acks_late`` + ``task_reject_on_worker_lost`` + prefetch 1: a SIGKILLed pool child's task is re-run, and a
      worker holds at most one unacknowledged message per process.
    - ``visibility_timeout`` (``NEXUS_VISIBILITY_TIMEOUT_S``, validated above the longest countdown: Retry-After is
      capped at ``retry_after_max_s``), or Redis would redeliver a message that is only waiting for its countdown.
      It is also how long the tasks of a worker killed outright (no requeue) wait: kombu restores a message once it
      is that old, in the sweep a consuming worker runs when it starts and then every ``unacked_restore_interval``
      x ``unacked_restore_throttle`` seconds (10 x 10 by default; tests/test_worker_death.py).
    - Latency (benchmarks/bench_audit.py): every Redis round trip is on an audit's critical path, so no STARTED
      state in the result backend (progress lives in the audit store), no ``task-sent`` events, and task events
      off by default: Flower switches them on at runtime (``enable_events``), ``nexus worker --events`` at start.
      Redis chords count header results natively (no ``chord_unlock`` polling); the prefork pool's default
      scheduling is already ``fair``.
    """
    transport_options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout_s}
    config: dict[str, Any] = {
        "broker_url": broker_url or settings.redis_url,
        "result_backend": backend_url or settings.redis_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": transport_options,
        "result_expires": settings.report_ttl_s,
        "task_default_queue": AUDIT_QUEUE,
        "task_queues": [Queue(name) for name in ALL_QUEUES],
        "task_routes": task_routes(),
        "task_track_started": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "broker_connection_retry_on_startup": True,
        # A Redis restart: the worker reconnects (2, 4, 6 ... 30 s apart) for as long as it takes, instead of giving
        # up after Celery's default 100 attempts; see also workers/redis_recovery.py (tests/test_redis_restart.py).
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # Redis refusing a write (full under noeviction, read-only, MISCONF) raises a ResponseError, a "channel
        # error": the consumer restarts instead of the worker stopping (see workers/redis_refusal.py).
        "broker_channel_error_retry": True,
        # A task that ends while Redis is down keeps retrying to store its result (about 30 s) instead of failing.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 20,
        "result_backend_base_sleep_between_retries_ms": 50,
        "result_backend_max_sleep_between_retries_ms": 2000,
        "broker_connection_timeout": 5,
        "redis_socket_timeout": 10,
        "redis_socket_connect_timeout": 5,
        "worker_hijack_root_logger": False,
        "enable_utc": True,
        "timezone": "UTC",
    }
    config.update(sentinel_config(settings, transport_options, broker=broker_url is None,
                                  backend=backend_url is None))
    return config


def sentinel_config(settings: Settings, transport_options: dict[str, Any], *, broker: bool = True,
                    backend: bool = True) -> dict[str, Any]:
    """With ``REDIS_SENTINELS``: the broker (``broker``) and the result backend (``backend``) through the sentinels
    (``sentinel://`` URLs, ``master_name`` and ``sentinel_kwargs`` added to ``transport_options``, the master's
    password in the broker URLs and as ``redis_password``); nothing without sentinels (nexus.redis_sentinel)."""
    from celery.app.defaults import DEFAULTS

    # Every key this sets, also without sentinels (Celery's defaults): a process that reconfigures its app
    # (``conf.update``, the test rig) must not keep a previous Sentinel password or publish policy.
    config: dict[str, Any] = {"redis_username": None, "redis_password": None,
                              "task_publish_retry_policy": dict(DEFAULTS["task_publish_retry_policy"])}
    target = settings.redis_sentinel()
    if target is None:
        return config
    if broker:
        config.update(celery_broker_config(target, transport_options))
        # a task publishing its next step (or a submit) during the failover waits for the new master
        config["task_publish_retry_policy"] = publish_retry_policy(target.failover_wait_s)
    if backend:
        config.update(celery_backend_config(target, transport_options))
    return config
