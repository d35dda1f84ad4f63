"""Logging to stderr, structured: the message (the seed's ``[resilience] ...`` lines stay readable) followed by
the record's extra fields as ``key=value`` pairs, or one JSON object per line with ``NEXUS_LOG_FORMAT=json``.

Secrets never reach a log line: clients never put credentials in messages or extras, and :class:`RedactingFilter`
masks any configured secret value that still slips into a message (defence in depth).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        extras = _extras(record)
        if extras:
            base += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": self.formatTime(record), "level": record.levelname, "logger": record.name,
               "message": record.getMessage(), **_extras(record)}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


def configured_secrets() -> list[str]:
    from nexus.settings import get_settings

    s = get_settings()
    return [v.get_secret_value() for v in (s.workday_client_secret, s.workday_refresh_token, s.azure_client_secret,
                                           s.ad_bind_password, s.lansweeper_token, s.helix_password,
                                           s.fedex_client_secret, s.mcp_token)]


def setup_logging(level: str | int | None = None) -> None:
    """Idempotent: one stderr handler on the root logger."""
    root = logging.getLogger()
    level = level or os.environ.get("NEXUS_LOG_LEVEL", "INFO")
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, "_nexus", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._nexus = True  # type: ignore[attr-defined]
    json_format = os.environ.get("NEXUS_LOG_FORMAT", "").lower() == "json"
    handler.setFormatter(JsonFormatter() if json_format else KeyValueFormatter())
    try:
        handler.addFilter(RedactingFilter(configured_secrets()))
    except Exception:
        pass
    root.addHandler(handler)
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
