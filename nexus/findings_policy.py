"""The findings policy: which kinds of finding are looked for, how severe each is, the thresholds the rules use and
which accounts are not people. One TOML file (``NEXUS_POLICY_FILE``), read with the standard library's ``tomllib``
and validated here; without a file the defaults apply, and they are today's behaviour.

    [thresholds]
    stale_after_days = 30            # a device Intune has not seen for longer is stale (CIS 1.1)
    return_overdue_days = 14         # an undelivered return older than this is drift
    dormant_after_days = 45          # an enabled account without a sign-in for longer is dormant (CIS 5.3)
    unmanaged_seen_within_days = 14  # Lansweeper saw it this recently and Intune does not manage it (CIS 1.2)

    [severities]                     # any kind: critical | high | medium | low
    job_title = "low"

    [kinds]                          # a kind turned off is not looked for (and history never calls it resolved)
    display_name = false

    [exclusions]                     # accounts that are not people (never orphaned; fnmatch, case-insensitive)
    accounts = ["Administrator", "Guest", "krbtgt", "svc-*", "svc_*"]
    ous = ["Service Accounts"]       # an OU name (any depth) or a full OU DN

    [workday.fields]                 # the RaaS report's field names (or NEXUS_WORKDAY_FIELDS; not both)
    employee_id = "Emp_Num"

Every report records the policy's ``hash`` (of its effective content, so two audits can be compared honestly) and a
short ``summary`` (what differs from the defaults).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nexus.controls import known_kinds
from nexus.workday_fields import ReportFields, parse_fields

SeverityName = Literal["critical", "high", "medium", "low"]

DEFAULT_EXCLUDED_ACCOUNTS = ("Administrator", "Guest", "krbtgt", "svc-*", "svc_*")
DEFAULT_EXCLUDED_OUS = ("Service Accounts",)


class PolicyError(ValueError):
    """A policy file that cannot be used: the message names the file and, where known, the line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Strict):
    stale_after_days: int = Field(30, gt=0, le=3650)
    return_overdue_days: int = Field(14, gt=0, le=3650)
    dormant_after_days: int = Field(45, gt=0, le=3650)
    unmanaged_seen_within_days: int = Field(14, gt=0, le=3650)


class Exclusions(_Strict):
    accounts: tuple[str, ...] = DEFAULT_EXCLUDED_ACCOUNTS
    ous: tuple[str, ...] = DEFAULT_EXCLUDED_OUS

    @field_validator("accounts", "ous")
    @classmethod
    def _not_blank(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if any(not v.strip() for v in values):
            raise ValueError("an empty pattern would match nothing useful: remove it")
        return tuple(v.strip() for v in values)


def _known(kinds: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kinds) - set(known_kinds()))
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(known_kinds())}")
    return kinds


class WorkdayReport(_Strict):
    """The RaaS report's field names (roles of nexus.workday_fields); the same as ``NEXUS_WORKDAY_FIELDS``, kept
    with the rest of an organisation's conventions. Set it in one place: both is a settings error."""

    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _valid_mapping(cls, value: dict[str, str]) -> dict[str, str]:
        parse_fields(json.dumps(value))  # ValueError naming the role or field
        return value

    def mapping(self) -> ReportFields:
        return parse_fields(json.dumps(self.fields))


class FindingsPolicy(_Strict):
    thresholds: Thresholds = Thresholds()
    severities: dict[str, SeverityName] = Field(default_factory=dict)
    kinds: dict[str, bool] = Field(default_factory=dict)
    exclusions: Exclusions = Exclusions()
    workday: WorkdayReport = WorkdayReport()

    @field_validator("severities", "kinds")
    @classmethod
    def _only_known_kinds(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _known(value)

    def is_on(self, kind: str) -> bool:
        return self.kinds.get(kind, True)

    def severity(self, kind: str, default: str) -> str:
        return self.severities.get(kind, default)

    @property
    def kinds_off(self) -> list[str]:
        return sorted(k for k, on in self.kinds.items() if not on)

    def effective(self) -> dict[str, Any]:
        """Every setting, defaults filled in, in a stable order (what ``nexus policy check`` prints)."""
        data = self.model_dump(mode="json")
        data["kinds"] = {k: self.is_on(k) for k in known_kinds()}
        data["severities"] = dict(sorted(self.severities.items()))
        return data

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.effective(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def stamp(self) -> dict[str, Any]:
        """What a report records: the hash and what differs from the defaults."""
        default = DEFAULT_POLICY.effective()
        mine = self.effective()
        changed: dict[str, Any] = {}
        for section, values in mine.items():
            if isinstance(values, dict):
                diff = {k: v for k, v in values.items() if default[section].get(k) != v}
                if diff:
                    changed[section] = diff
            elif values != default[section]:
                changed[section] = values
        return {"hash": self.hash, "default": not changed, "changed": changed}


DEFAULT_POLICY = FindingsPolicy()


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line of a validation error's key: the last key of its location, searched after its section header."""
    keys = [str(k) for k in loc if isinstance(k, str)]
    if not keys:
        return None
    lines = text.splitlines()
    start = 0
    if len(keys) > 1:
        header = re.compile(rf"^\s*\[\s*{re.escape(keys[0])}\s*\]")
        start = next((i for i, line in enumerate(lines) if header.match(line)), 0)
    key = re.compile(rf"^\s*[\"']?{re.escape(keys[-1])}[\"']?\s*=")
    for i in range(start, len(lines)):
        if key.match(lines[i]):
            return i + 1
    header = re.compile(rf"^\s*\[\s*{re.escape(keys[-1])}\s*\]")
    return next((i + 1 for i, line in enumerate(lines) if header.match(line)), None)


def parse_policy(text: str, source: str = "policy") -> FindingsPolicy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    for section in ("kinds", "severities"):
        values = data.get(section)
        unknown = sorted(set(values) - set(known_kinds())) if isinstance(values, dict) else []
        if unknown:
            line = _line_of(text, (section, unknown[0]))
            at = f" line {line}:" if line else ""
            raise PolicyError(f"{source}:{at} {section}.{unknown[0]}: unknown kind; known: {', '.join(known_kinds())}")
    try:
        return FindingsPolicy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(k) for k in first["loc"])
        line = _line_of(text, tuple(first["loc"]))
        at = f" line {line}:" if line else ""
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PolicyError(f"{source}:{at} {where}: {first['msg']}{more}") from None


def load_policy(path: str | Path | None) -> FindingsPolicy:
    """The policy in ``path`` (None or empty: the defaults). Read again when the file changes."""
    if path is None or not str(path).strip():
        return DEFAULT_POLICY
    file = Path(path).expanduser()
    try:
        stat = file.stat()
    except OSError as exc:
        raise PolicyError(f"{file}: cannot read the policy file: {exc.strerror or exc}") from None
    return _load_cached(str(file), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> FindingsPolicy:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc}") from None
    return parse_policy(text, path)


__all__ = ["DEFAULT_POLICY", "Exclusions", "FindingsPolicy", "PolicyError", "Thresholds", "WorkdayReport",
           "load_policy", "parse_policy"]
