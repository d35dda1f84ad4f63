"""The Celery app. Workers run ``celery -A workers.app worker`` (or ``nexus worker``); clients import it to enqueue.

Configuration comes from :func:`workers.config.celery_config` and the environment (``REDIS_URL``). The embedded
demo reconfigures this same app for an in-memory broker (:mod:`workers.embedded`).
"""

from __future__ import annotations

from celery import Celery

from nexus.settings import get_settings
from workers.config import celery_config
from workers.lifecycle import install as install_runtime_lifecycle
from workers.message_leases import install as install_message_leases
from workers.metrics_server import install as install_metrics
from workers.redis_recovery import install as install_redis_recovery
from workers.redis_refusal import RefusalAwareTask
from workers.redis_refusal import install as install_redis_refusal

TASK_MODULES = ["tasks.fetch", "tasks.compare", "tasks.audit", "tasks.fleet", "tasks.scheduled"]


def create_app() -> Celery:
    app = Celery("nexus", include=TASK_MODULES, task_cls=RefusalAwareTask)
    app.conf.update(celery_config(get_settings()))
    install_metrics(app)  # worker /metrics endpoint and `--metrics-port` (see workers/metrics_server.py)
    install_redis_recovery()  # a Redis restart must not stop the worker (see workers/redis_recovery.py)
    install_redis_refusal()  # nor a Redis that refuses writes (out of memory; see workers/redis_refusal.py)
    install_runtime_lifecycle()  # one runtime per pool child, closed as it exits (see workers/lifecycle.py)
    # a killed worker's messages are put back within a lease, not the visibility timeout (workers/message_leases.py)
    install_message_leases(app, get_settings().part_lease_s)
    return app


celery_app = create_app()
app = celery_app  # `celery -A workers.app` finds `app`
