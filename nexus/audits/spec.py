"""What an operator can ask for, validated before anything is enqueued.

Validation is strict on purpose: every value later reaches an LDAP filter, an OData ``$filter``, a Helix
qualification or a GraphQL variable. Those are escaped at the client, but a value that cannot be a real email or
serial never leaves this module (no broad query is ever sent for bad input).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nexus.errors import InvalidInput

# Pragmatic RFC 5322 subset: ASCII only (rejects unicode confusables such as a Cyrillic a), dot-atom local part,
# a hostname with at least one dot. Parentheses, spaces, quotes and backslashes are never valid.
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{2,49}$")
_AUDIT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
#: Audit ids are time-ordered (like UUIDv7): 12 hex digits of Unix milliseconds, then 20 random ones. The time lets
#: a reader tell an audit lost with Redis (created before Redis's data began) from an id that never existed.
_EARLIEST_MS = 1_704_067_200_000  # 2024-01-01: no Nexus audit id is older


def new_audit_id(now: float | None = None) -> str:
    """A fresh audit id: 32 lower-case hex characters, time first (sortable), 80 random bits."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{ms:012x}{secrets.token_hex(10)}"


def audit_id_time(audit_id: str, now: float | None = None) -> float | None:
    """When the audit with this id was created (Unix seconds), or None for an id that does not carry a plausible
    time (an id of an older release, or one made up)."""
    if not _AUDIT_ID_RE.fullmatch(audit_id):
        return None
    ms = int(audit_id[:12], 16)
    latest = ((time.time() if now is None else now) + 86400) * 1000
    return ms / 1000 if _EARLIEST_MS <= ms <= latest else None

MAX_EMAIL_LENGTH = 254
# The same rules as plain patterns, for JSON schemas (the MCP tools' inputs).
EMAIL_PATTERN = _EMAIL_RE.pattern
SERIAL_PATTERN = _SERIAL_RE.pattern


class AuditKind(StrEnum):
    USER = "user"
    DEVICE = "device"
    BULK = "bulk"
    FLEET = "fleet"


def validate_email(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"email must be a string, got {type(value).__name__}")
    email = value.strip()
    if not email:
        raise InvalidInput("email is empty")
    if len(email) > MAX_EMAIL_LENGTH:
        raise InvalidInput(f"email is longer than {MAX_EMAIL_LENGTH} characters")
    if not email.isascii():
        raise InvalidInput(f"email {email!r} contains non-ASCII characters (a possible look-alike)")
    if not _EMAIL_RE.match(email):
        raise InvalidInput(f"{email!r} is not a valid email address")
    return email


def validate_serial(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"serial must be a string, got {type(value).__name__}")
    serial = value.strip()
    if not _SERIAL_RE.match(serial):
        raise InvalidInput(f"{serial!r} is not a valid serial number (3-50 letters, digits or dashes)")
    return serial


def validate_audit_id(value: object) -> str:
    if not isinstance(value, str) or not _AUDIT_ID_RE.match(value.strip().lower()):
        raise InvalidInput(f"{value!r} is not an audit id (32 hex characters)")
    return value.strip().lower()


def validate_email_list(values: list[Any], max_emails: int) -> list[str]:
    """Validate every address; de-duplicate case-insensitively, keeping the first spelling and the order."""
    if not isinstance(values, list | tuple):
        raise InvalidInput("emails must be a list")
    if not values:
        raise InvalidInput("the email list is empty")
    if len(values) > max_emails:
        raise InvalidInput(f"the email list has {len(values)} entries; the limit is {max_emails}")
    seen: set[str] = set()
    out: list[str] = []
    for index, raw in enumerate(values, 1):
        try:
            email = validate_email(raw)
        except InvalidInput as exc:
            raise InvalidInput(f"entry {index}: {exc}") from None
        key = email.lower()
        if key not in seen:
            seen.add(key)
            out.append(email)
    return out


@dataclass(slots=True)
class AuditRequest:
    kind: AuditKind
    subjects: list[str] = field(default_factory=list)
    audit_id: str = field(default_factory=new_audit_id)
    # The subjects exactly as a validating constructor returned them; ``check`` re-validates anything else.
    _validated: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def user(cls, email: str) -> AuditRequest:
        return cls(AuditKind.USER, [validate_email(email)])._mark()

    @classmethod
    def device(cls, serial: str) -> AuditRequest:
        return cls(AuditKind.DEVICE, [validate_serial(serial)])._mark()

    @classmethod
    def bulk(cls, emails: list[Any], max_emails: int) -> AuditRequest:
        return cls(AuditKind.BULK, validate_email_list(emails, max_emails))._mark()

    @classmethod
    def fleet(cls) -> AuditRequest:
        return cls(AuditKind.FLEET, [])._mark()

    def _mark(self) -> AuditRequest:
        self._validated = tuple(self.subjects)
        return self

    def check(self, max_emails: int) -> None:
        """Refuse a request that was built or changed around the validating constructors (the facade's ``submit``
        calls this): its id becomes part of Redis keys, its subjects reach every system."""
        if not isinstance(self.audit_id, str) or not _AUDIT_ID_RE.fullmatch(self.audit_id):
            raise InvalidInput(f"{self.audit_id!r} is not an audit id (32 lower-case hex characters)")
        if not isinstance(self.kind, AuditKind):
            raise InvalidInput(f"unknown audit kind {self.kind!r}")
        subjects = self.subjects
        if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
            raise InvalidInput("the audit's subjects must be a list of strings")
        if self._validated is not None and self._validated == tuple(subjects):
            return
        if self.kind is AuditKind.FLEET:
            canonical: list[str] = []
        elif self.kind is AuditKind.BULK:
            canonical = validate_email_list(subjects, max_emails)
        elif len(subjects) != 1:
            raise InvalidInput(f"a {self.kind.value} audit has exactly one subject, not {len(subjects)}")
        else:
            check = validate_email if self.kind is AuditKind.USER else validate_serial
            canonical = [check(subjects[0])]
        if canonical != subjects:
            raise InvalidInput(f"the subjects of this {self.kind.value} audit are not in canonical form")
        self._mark()

    def describe(self) -> str:
        if self.kind is AuditKind.BULK:
            return f"bulk audit of {len(self.subjects)} people"
        if self.kind is AuditKind.FLEET:
            return "fleet audit"
        return f"{self.kind.value} audit of {self.subjects[0]}"
