"""Accounts that match the person filter but are not people: built-in, service and configured accounts.

On a domain controller ``(objectClass=user)(sAMAccountType=805306368)`` also returns the built-in accounts
(``Administrator``, ``Guest``, ``krbtgt``: https://learn.microsoft.com/en-us/windows-server/identity/ad-ds/manage/understand-default-user-accounts),
the account Nexus binds as, and whatever service accounts the domain has. Counting them as people would report
each one as an AD account without a Workday worker. Skipped, in the listing and in lookups alike:

- ``sAMAccountName`` matching one of ``NEXUS_AD_EXCLUDE_ACCOUNTS`` (fnmatch patterns, case-insensitive, comma
  separated; default ``krbtgt,Guest,Administrator,DefaultAccount,WDAGUtilityAccount,dns-*``; ``dns-<DC name>``
  is the account a Samba DC's internal DNS server runs as, which the Samba drill found on a real DC; ``svc-*``
  style patterns name a domain's service accounts);
- entries under one of ``NEXUS_AD_EXCLUDE_OUS`` (DNs, semicolon separated: a DN holds commas);
- the bind account itself, however ``AD_BIND_DN`` names it: a DN, ``user@realm`` (its UPN) or ``DOMAIN\\user``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from clients.ad.dn import dn_key
from clients.ad.matching import escape
from nexus.models import PersonRecord
from nexus.settings import Settings


@dataclass(frozen=True, slots=True)
class Exclusions:
    patterns: tuple[str, ...] = ()  # casefolded fnmatch patterns on sAMAccountName
    ou_keys: tuple[str, ...] = ()  # dn_key of each excluded OU
    bind: str = ""  # AD_BIND_DN as given

    @classmethod
    def from_settings(cls, settings: Settings) -> Exclusions:
        patterns = tuple(p.strip().casefold() for p in settings.ad_exclude_accounts.split(",") if p.strip())
        ous = tuple(dn_key(o.strip()) for o in settings.ad_exclude_ous.split(";") if o.strip())
        return cls(patterns, ous, settings.ad_bind_dn.strip())

    def ldap_clauses(self) -> str:
        """The name patterns as filter clauses for the listing, so pages are not thinned by accounts the client
        would drop: ``(!(sAMAccountName=krbtgt))`` ... (a pattern with ``?`` or ``[`` has no LDAP form and is
        checked by :meth:`excludes` only; ``*`` is LDAP's substring wildcard, everything else is escaped)."""
        out = []
        for pattern in self.patterns:
            if "?" in pattern or "[" in pattern or not pattern.strip("*"):
                continue
            value = "*".join(escape(part) for part in pattern.split("*"))
            out.append(f"(!(sAMAccountName={value}))")
        bind = self.bind
        if "=" not in bind and "\\" in bind:
            out.append(f"(!(sAMAccountName={escape(bind.split(chr(92), 1)[1])}))")
        elif "=" not in bind and "@" in bind:
            out.append(f"(!(userPrincipalName={escape(bind)}))")
        return "".join(out)

    def is_bind_account(self, record: PersonRecord) -> bool:
        bind = self.bind
        if not bind:
            return False
        if "\\" in bind and "=" not in bind:  # DOMAIN\user
            return (record.username or "").casefold() == bind.split("\\", 1)[1].casefold()
        if "@" in bind and "=" not in bind:  # user@realm
            return (record.upn or "").casefold() == bind.casefold()
        return dn_key(record.key) == dn_key(bind)

    def excludes(self, record: PersonRecord) -> bool:
        """True when ``record`` is not a person (see the module docstring)."""
        sam = (record.username or "").casefold()
        if sam and any(fnmatch.fnmatchcase(sam, p) for p in self.patterns):
            return True
        if self.ou_keys:
            key = dn_key(record.key)
            if any(key.endswith("," + ou) for ou in self.ou_keys):
                return True
        return self.is_bind_account(record)


__all__ = ["Exclusions"]
