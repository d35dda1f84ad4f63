"""Lookup filters and which of several matching entries is the person asked for.

Every value is escaped with :func:`ldap3.utils.conv.escape_filter_chars` (never the whole filter), so ``*)(mail=*``
is a literal that matches nothing.
"""

from __future__ import annotations

from ldap3.utils.conv import escape_filter_chars

from nexus.models import PersonRecord

#: The identifiers by strength: when several entries match one lookup, the strongest match wins.
RANKS = ("employee_id", "mail", "upn", "alias", "username")
#: What :func:`rank` returns for a record that matches none of the identifiers.
NO_MATCH = len(RANKS)


def escape(value: str) -> str:
    """``value`` as a literal inside an LDAP filter (RFC 4515)."""
    return str(escape_filter_chars(value))


def clauses(
    *, email: str | None = None, upn: str | None = None, employee_id: str | None = None, username: str | None = None
) -> list[str]:
    """One filter clause per identifier given (three for an email: ``mail``, UPN, ``smtp:`` proxy address)."""
    out: list[str] = []
    if employee_id:
        out.append(f"(employeeID={escape(employee_id)})")
    if email:
        value = escape(email)
        out += [f"(mail={value})", f"(userPrincipalName={value})", f"(proxyAddresses=smtp:{value})"]
    if upn:
        out.append(f"(userPrincipalName={escape(upn)})")
    if username:
        out.append(f"(sAMAccountName={escape(username)})")
    return out


def rank(
    record: PersonRecord,
    *,
    email: str | None = None,
    upn: str | None = None,
    employee_id: str | None = None,
    username: str | None = None,
) -> int:
    """0 for the strongest identifier that matches, :data:`NO_MATCH` when none does."""

    def same(a: str | None, b: str | None) -> bool:
        return a is not None and b is not None and a.casefold() == b.casefold()

    if employee_id and record.employee_id == employee_id:
        return 0
    if email and same(record.email, email):
        return 1
    if (upn and same(record.upn, upn)) or (email and same(record.upn, email)):
        return 2
    if email and any(same(alias, email) for alias in record.aliases):
        return 3
    if username and same(record.username, username):
        return 4
    return NO_MATCH


__all__ = ["NO_MATCH", "RANKS", "clauses", "escape", "rank"]
