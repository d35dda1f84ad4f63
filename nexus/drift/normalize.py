"""Normalisation: the differences between systems that are NOT drift (docs/drift-rules.md, "Normalisation").

Every function here is total and idempotent (``f(f(x)) == f(x)``) and maps ``None`` (and blank input) to ``None``,
so callers can compare normalised values with ``==`` without special cases. Reports never show these values: they
carry the originals.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

__all__ = [
    "OwnerKind",
    "OwnerRef",
    "norm_dn",
    "norm_email",
    "norm_guid",
    "norm_id",
    "norm_serial",
    "norm_text",
    "parse_owner",
]


@lru_cache(maxsize=1 << 16)  # titles and departments repeat across 100k people: cache the hot path
def _fold(s: str) -> str:
    # Unicode canonical caseless matching is NFD(casefold(NFD(x))); composing at the end gives NFC output that is a
    # fixed point (casefold of a composed character can yield a decomposed sequence, hence the NFD on both sides).
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFD", s).casefold())
    return " ".join(folded.split())


def norm_text(s: str | None) -> str | None:
    """NFC, case-folded, trimmed, internal whitespace collapsed to one space; ``None``/blank -> ``None``."""
    if s is None:
        return None
    out = _fold(s)
    return out or None


def norm_email(s: str | None) -> str | None:
    """Trimmed and case-folded; an Exchange ``smtp:``/``SMTP:`` proxyAddresses prefix is dropped."""
    if s is None:
        return None
    s = s.strip().casefold()
    while s.startswith("smtp:"):
        s = s[5:].strip()
    return s or None


def norm_serial(s: str | None) -> str | None:
    """Trimmed and upper-cased."""
    if s is None:
        return None
    return s.strip().upper() or None


def norm_id(s: str | None) -> str | None:
    """An employee id: trimmed and upper-cased (ids are digits, or letters + digits for contractors)."""
    if s is None:
        return None
    return s.strip().upper() or None


_GUID = re.compile(r"^\{?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}?$", re.IGNORECASE)


def norm_guid(s: str | None) -> str | None:
    """A GUID in lower case without braces, or ``None`` when ``s`` is not a GUID."""
    if s is None:
        return None
    m = _GUID.match(s.strip())
    return m.group(1).lower() if m else None


def norm_dn(s: str | None) -> str | None:
    """An LDAP DN compared the way directories do: attribute types and values case-insensitive, spaces around
    ``,`` and ``=`` ignored (``CN=Doe\\, Jane, OU=Users`` == ``cn=doe\\,jane,ou=users``)."""
    folded = norm_text(s)  # whitespace is already single spaces: plain replaces suffice (and are fast)
    if folded is None:
        return None
    return folded.replace(" ,", ",").replace(", ", ",").replace(" =", "=").replace("= ", "=")


class OwnerKind(StrEnum):
    """How a person reference is written."""

    EMAIL = "email"  # an email address or a UPN (indistinguishable on the wire)
    SAM = "sam"  # DOMAIN\\sAMAccountName, or a bare account name
    DN = "dn"  # an LDAP distinguished name
    GUID = "guid"  # an Entra object id
    EMPLOYEE_ID = "employee_id"  # a bare number


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """A parsed person reference. ``value`` is normalised for lookups; ``raw`` is as written."""

    kind: OwnerKind
    value: str
    raw: str
    domain: str | None = None  # the NetBIOS domain of DOMAIN\\sam, upper-cased


_DN_START = re.compile(r"^\s*(cn|ou|dc|uid|o|l)\s*=", re.IGNORECASE)


def parse_owner(ref: str | None) -> OwnerRef | None:
    """Classify a person reference as each system writes it; ``None`` for a missing or blank one.

    UPN/email (``a@b``), ``DOMAIN\\sam``, DN (``CN=...,OU=...``), GUID (Entra object id), a bare number (employee
    id). Any other bare token is taken as an account name (``OwnerKind.SAM`` without a domain); the index also tries
    it as an employee id, since contractor ids may contain letters.
    """
    if ref is None or not ref.strip():
        return None
    raw = ref
    s = ref.strip()
    if _DN_START.match(s):
        return OwnerRef(OwnerKind.DN, norm_dn(s) or "", raw)
    if (guid := norm_guid(s)) is not None:
        return OwnerRef(OwnerKind.GUID, guid, raw)
    if "\\" in s:
        domain, _, sam = s.rpartition("\\")
        return OwnerRef(OwnerKind.SAM, sam.strip().casefold(), raw, domain.strip().upper() or None)
    if "@" in s:
        return OwnerRef(OwnerKind.EMAIL, norm_email(s) or "", raw)
    if s.isdigit():
        return OwnerRef(OwnerKind.EMPLOYEE_ID, norm_id(s) or "", raw)
    return OwnerRef(OwnerKind.SAM, s.casefold(), raw)
