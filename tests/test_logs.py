"""Log lines: structured extras, JSON mode, and secrets masked everywhere in the line (tracebacks included)."""

from __future__ import annotations

import json
import logging

from nexus.logs import JsonFormatter, KeyValueFormatter


def _record(msg: str, *, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom with s3cr3t-value inside")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    record = logging.LogRecord("nexus.test", logging.WARNING, __file__, 1, msg, None, exc_info)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_key_value_line_carries_extras_and_masks_secrets_in_message_extras_and_traceback() -> None:
    line = KeyValueFormatter(["s3cr3t-value"]).format(
        _record("[resilience] [Workday] token s3cr3t-value", exc=True, system="workday", detail="x s3cr3t-value"))
    assert "[resilience] [Workday]" in line and "system=workday" in line
    assert "s3cr3t-value" not in line and line.count("***") >= 3


def test_json_line_is_one_object_and_masked() -> None:
    line = JsonFormatter(["s3cr3t-value"]).format(_record("hello s3cr3t-value", system="ad"))
    doc = json.loads(line)
    assert doc["message"] == "hello ***" and doc["system"] == "ad"


def test_short_values_are_not_treated_as_secrets() -> None:
    assert KeyValueFormatter(["abc"]).format(_record("abc")).endswith("abc")
