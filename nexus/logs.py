"""Logging to stderr, structured: the message (the seed's ``[resilience] ...`` lines stay readable) followed by
the record's extra fields as ``key=value`` pairs, or one JSON object per line with ``NEXUS_LOG_FORMAT=json``.
``NEXUS_LOG_LEVEL`` and ``NEXUS_LOG_FORMAT`` are settings like the others (environment, ``--env-file``, ``.env``).

Secrets never reach a log line: clients never put credentials in messages or extras, and the formatters mask every
configured secret value (credentials, tokens, Redis URL passwords) in the final line, tracebacks and extras included
(defence in depth).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class _RedactingFormatter(logging.Formatter):
    """Masks every configured secret in the FINAL line (message, extras and traceback alike)."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets or () if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


class KeyValueFormatter(_RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        extras = _extras(record)
        if extras:
            base += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return self.redact(base)


class JsonFormatter(_RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        # ISO 8601 in UTC with its zone, like every other moment Nexus prints (nexus.audits.store.iso_time).
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out = {"ts": ts, "level": record.levelname, "logger": record.name,
               "message": record.getMessage(), **_extras(record)}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(out, default=str))


def configured_secrets() -> list[str]:
    """Every secret value of the settings: credentials, tokens, and passwords inside Redis URLs."""
    from urllib.parse import unquote, urlsplit

    from nexus.settings import get_settings

    s = get_settings()
    values = [v.get_secret_value() for v in (s.workday_client_secret, s.workday_refresh_token, s.azure_client_secret,
                                             s.ad_bind_password, s.lansweeper_token, s.helix_password,
                                             s.fedex_client_secret, s.mcp_token, s.redis_password,
                                             s.redis_sentinel_password)]
    flower = getattr(s, "flower_password", None)
    if flower is not None:
        values.append(flower.get_secret_value() if hasattr(flower, "get_secret_value") else str(flower))
    for url in (s.redis_url, s.breaker_redis_url, s.beat_redis_url):
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            values.extend(dict.fromkeys((password, unquote(password))))
    return [value for value in values if value]


def _log_settings() -> tuple[str, str]:
    """(level, format) from the settings; from the raw environment when the settings are invalid (the error is
    reported by whoever reads them), so logging itself never fails."""
    from nexus.settings import get_settings

    try:
        s = get_settings()
        return s.log_level, s.log_format
    except Exception:
        level = os.environ.get("NEXUS_LOG_LEVEL", "INFO").strip().upper()
        return (level if level in logging.getLevelNamesMapping() else "INFO"), os.environ.get("NEXUS_LOG_FORMAT", "")


def setup_logging(level: str | int | None = None) -> None:
    """Idempotent: one stderr handler on the root logger. ``level`` overrides ``NEXUS_LOG_LEVEL``."""
    root = logging.getLogger()
    configured_level, log_format = _log_settings()
    root.setLevel(level or configured_level)
    for handler in list(root.handlers):
        if getattr(handler, "_nexus", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._nexus = True  # type: ignore[attr-defined]
    json_format = log_format.strip().lower() == "json"
    try:
        secrets = configured_secrets()
    except Exception:  # invalid settings must not stop logging (the error is reported by whoever reads them)
        secrets = []
    handler.setFormatter(JsonFormatter(secrets) if json_format else KeyValueFormatter(secrets))
    root.addHandler(handler)
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
