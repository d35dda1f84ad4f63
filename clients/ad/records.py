"""An ldap3 search entry as a :class:`~nexus.models.PersonRecord`.

Values are read from ``raw_attributes`` (bytes, decoded here), identical for TCP connections (with or without
:func:`clients.ad.connection.lean_entries`) and ldap3's MOCK_SYNC. DNs are spelled the AD way
(:func:`clients.ad.dn.ad_dn`).

``enabled`` says whether the account can sign in: bit 0x2 (ACCOUNTDISABLE) of ``userAccountControl`` is clear
(https://learn.microsoft.com/en-us/windows/win32/adschema/a-useraccountcontrol) AND ``accountExpires`` has not
passed (https://learn.microsoft.com/en-us/windows/win32/adschema/a-accountexpires: a DC refuses the logon of an
expired account whatever its UAC says). Expiring the account is a common offboarding step: a terminated worker
whose account expired but was never disabled is not an enabled account. ``account_expires`` and ``last_logon``
(``lastLogonTimestamp``) are carried as ISO 8601 UTC, None for "never" (FILETIME 0 / 0x7FFFFFFFFFFFFFFF,
:mod:`clients.ad.filetime`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clients.ad.dn import ad_dn
from clients.ad.filetime import from_filetime
from clients.ad.schema import ACCOUNTDISABLE, SYSTEM
from nexus.errors import MalformedResponseError
from nexus.models import PersonRecord

#: A manager as the record needs it: (employee id, mail); None when the manager DN names no entry.
Manager = tuple[str | None, str | None]


def values(attrs: Mapping[str, Any], name: str) -> list[str]:
    """Values of ``name`` from an entry's ``raw_attributes`` (bytes, decoded here: identical for TCP and mock).

    Looked up lower-cased: :func:`~clients.ad.connection.lean_entries` keys are lower case, ldap3's own dicts are
    case-insensitive.
    """
    found = attrs.get(name.lower())
    if not found:
        return []
    if not isinstance(found, list | tuple):
        found = [found]
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in found]
    except UnicodeDecodeError as exc:
        raise MalformedResponseError(f"AD: {name} is not UTF-8", system=SYSTEM) from exc


def first(attrs: Mapping[str, Any], name: str) -> str | None:
    """The first value of ``name``; None when it has none (or an empty one)."""
    found = values(attrs, name)
    return found[0] if found and found[0] != "" else None


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def _filetime(attrs: Mapping[str, Any], name: str) -> datetime | None:
    text = first(attrs, name)
    try:
        return from_filetime(text)
    except ValueError as exc:
        raise MalformedResponseError(f"AD: {name} {text!r} is not an integer", system=SYSTEM) from exc


def entry_to_person(entry: Mapping[str, Any], now: datetime | None = None) -> PersonRecord:
    """One ldap3 search entry as a :class:`PersonRecord` (manager not yet resolved); ``now`` decides whether
    ``accountExpires`` has passed (default: the current time)."""
    attrs = entry["raw_attributes"]
    uac_text = first(attrs, "userAccountControl")
    try:
        enabled = None if uac_text is None else not (int(uac_text) & ACCOUNTDISABLE)
    except ValueError as exc:
        raise MalformedResponseError(f"AD: userAccountControl {uac_text!r} is not an integer", system=SYSTEM) from exc
    expires = _filetime(attrs, "accountExpires")
    if enabled and expires is not None and expires <= (now or datetime.now(UTC)):
        enabled = False
    mail = first(attrs, "mail")
    aliases: list[str] = []
    seen = {mail.lower()} if mail else set()
    for address in values(attrs, "proxyAddresses"):
        if address[:5].lower() == "smtp:" and address[5:].lower() not in seen:
            seen.add(address[5:].lower())
            aliases.append(address[5:])
    manager = first(attrs, "manager")
    return PersonRecord(
        system=SYSTEM,
        key=ad_dn(str(entry["dn"])),
        employee_id=first(attrs, "employeeID"),
        email=mail,
        upn=first(attrs, "userPrincipalName"),
        username=first(attrs, "sAMAccountName"),
        display_name=first(attrs, "displayName"),
        first_name=first(attrs, "givenName"),
        last_name=first(attrs, "sn"),
        title=first(attrs, "title"),
        department=first(attrs, "department"),
        manager_ref=ad_dn(manager) if manager else None,
        enabled=enabled,
        aliases=tuple(aliases),
        account_expires=_iso(expires),
        last_logon=_iso(_filetime(attrs, "lastLogonTimestamp")),
    )


def with_manager(record: PersonRecord, manager: Manager | None) -> PersonRecord:
    """``record`` with its manager's employee id and mail filled in (unchanged when the manager is unknown)."""
    if manager is None:
        return record
    return dataclasses.replace(record, manager_employee_id=manager[0], manager_email=manager[1])


__all__ = ["Manager", "entry_to_person", "first", "values", "with_manager"]
