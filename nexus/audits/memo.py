"""Answers a fetch attempt obtained before it failed, kept for its retry (keyed by the Celery task id).

Written only on the failure path, so the happy path pays nothing; every operation is best effort (a lost memo only
costs requests).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

log = logging.getLogger("nexus.tasks")

PREFIX = "nexus:fetch-partial:"


class PartialAnswers:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def load(self, task_id: str) -> dict[str, Any]:
        """The answers an earlier attempt of this task obtained (empty if none or unreadable)."""
        try:
            raw = self.r.get(PREFIX + task_id)
            return dict(json.loads(raw)) if raw else {}
        except Exception as exc:
            log.debug("partial results not loaded: %s", exc)
            return {}

    def save(self, task_id: str, memo: dict[str, Any], ttl_s: int) -> None:
        if not memo:
            return
        try:
            self.r.set(PREFIX + task_id, json.dumps(memo, separators=(",", ":")), ex=ttl_s)
        except Exception as exc:
            log.debug("partial results not saved: %s", exc)

    def drop(self, task_id: str) -> None:
        try:
            self.r.delete(PREFIX + task_id)
        except Exception as exc:
            log.debug("partial results not dropped: %s", exc)


__all__ = ["PartialAnswers"]
