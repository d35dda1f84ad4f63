"""AD accounts from ``ad.ldif``: LDIF as ``ldifde -f`` or ``ldapsearch -LLL`` write it (RFC 2849).

The parser reads content records: ``dn:`` first, ``attr: value`` lines, base64 values after ``::`` (what both tools
write for non-ASCII text and binary values such as ``objectGUID``), lines folded with one leading space (both tools
fold long lines; at which column does not matter here), ``#`` comments (folded comments too), records separated by
blank lines, an
optional ``version: 1``, attribute options (``objectGUID;binary``) ignored, and ``changetype: add`` (ldifde writes it
on every record of an export). URL values (``attr:< file://...``), other change types and controls are refused:
an export has none, and guessing what they meant would serve something the directory does not hold. The file is
UTF-8, or UTF-16 with a byte-order mark (Windows' "Unicode", which ``ldifde -u`` asks for); CRLF line ends are fine.
Format: RFC 2849 (https://www.rfc-editor.org/rfc/rfc2849); ldifde: Microsoft's command reference
(https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2012-r2-and-2012/cc731033(v=ws.11)).

Accounts: every record whose ``objectClass`` has ``user`` and not ``computer``, as :class:`AdUser`. DNs (and
``manager``) are spelled the AD way (:func:`clients.ad.dn.ad_dn`: ``CN=Last\\, First,OU=...``); ``userAccountControl``
bit 0x2 is "disabled" (the model keeps that bit only: the simulator serves 512 or 514); ``accountExpires`` and
``lastLogonTimestamp`` are FILETIMEs (:mod:`clients.ad.filetime`). ``sn`` falls back to ``cn`` when absent: slapd's
``person`` requires one (AD's does not). The domain's own built-in accounts (``CN=Administrator``, ``Guest``,
``krbtgt`` in ``CN=Users``) are skipped: the simulated directory has its own (:mod:`nexus.sim.ldap_entries`), and a
second entry with the same DN cannot be loaded.

The base DN is the domain's: the ``DC=`` tail every account's DN shares (two domains in one file are refused).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from clients.ad.dn import ad_dn, dn_key
from clients.ad.filetime import from_filetime
from nexus.sim.ldap_entries import BUILTIN_ACCOUNTS, naming_context, rdn_value
from nexus.sim.org_import_json import Notes, OrgImportError, read_text
from nexus.sim.org_model import AdUser

_ATTR = re.compile(r"^([A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)((?:;[A-Za-z0-9-]+)*)$")


@dataclass(slots=True)
class Value:
    raw: bytes
    line: int

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8")


@dataclass(slots=True)
class Record:
    """One LDIF record: its DN, the line it starts on, attribute (lower-cased name) -> values."""

    dn: str
    line: int
    attrs: dict[str, list[Value]] = field(default_factory=dict)

    def first(self, name: str) -> Value | None:
        """The value of a single-valued attribute (AD's are: two values cannot come from a directory)."""
        found = self.attrs.get(name.lower())
        if found and len(found) > 1:
            raise LdifError(found[1].line, f"{name} has a second value (it is single-valued in AD)")
        return found[0] if found else None


class LdifError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        self.line, self.message = line, message
        super().__init__(f"line {line}: {message}")


def _logical_lines(text: str) -> list[tuple[int, str] | None]:
    """Unfolded lines with the number of their first physical line; ``None`` for a record separator. Comments
    (with their continuation lines) are dropped."""
    out: list[tuple[int, str] | None] = []
    in_comment = False
    for number, physical in enumerate(text.split("\n"), start=1):
        line = physical[:-1] if physical.endswith("\r") else physical
        if line.startswith(" "):
            if in_comment:
                continue
            last = out[-1] if out else None
            if last is None:
                raise LdifError(number, "a continuation line (leading space) follows no line")
            out[-1] = (last[0], last[1] + line[1:])
            continue
        in_comment = line.startswith("#")
        if in_comment:
            continue
        if not line.strip():
            if out and out[-1] is not None:
                out.append(None)
            continue
        out.append((number, line))
    return out


def parse_ldif(text: str) -> list[Record]:
    """The content records of ``text`` (see the module docstring for what is accepted)."""
    records: list[Record] = []
    current: Record | None = None
    first_record = True
    for item in _logical_lines(text):
        if item is None:
            current = None
            continue
        number, line = item
        name, value = _split(number, line)
        if current is None:
            if first_record and name.lower() == "version":
                first_record = False
                if value.raw.strip() != b"1":
                    raise LdifError(number, f"unsupported LDIF version {value.raw.decode(errors='replace')!r}")
                continue
            first_record = False
            if name.lower() != "dn":
                raise LdifError(number, f"a record must start with 'dn:', not {name!r}")
            try:
                dn = value.text.strip()
            except UnicodeDecodeError:
                raise LdifError(number, "the DN is not UTF-8") from None
            current = Record(dn, number)
            records.append(current)
            continue
        key = name.lower()
        if key == "dn":
            raise LdifError(number, "a second 'dn:' in one record (records are separated by a blank line)")
        if key == "control":
            raise LdifError(number, "LDIF controls are not supported in an export")
        if key == "changetype":
            if value.raw.strip().lower() != b"add":
                raise LdifError(number, f"changetype {value.raw.decode(errors='replace')!r}: only content records "
                                        "(or changetype: add) can be imported")
            continue
        current.attrs.setdefault(key, []).append(value)
    return records


def _split(number: int, line: str) -> tuple[str, Value]:
    name, sep, rest = line.partition(":")
    if not sep:
        raise LdifError(number, f"expected 'attribute: value', got {line[:60]!r}")
    match = _ATTR.match(name)
    if match is None:
        raise LdifError(number, f"bad attribute name {name[:60]!r}")
    attr = match.group(1)
    if rest.startswith(":"):
        encoded = rest[1:].strip()
        try:
            return attr, Value(base64.b64decode(encoded, validate=True), number)
        except (binascii.Error, ValueError):
            raise LdifError(number, f"{attr}:: value is not valid base64") from None
    if rest.startswith("<"):
        raise LdifError(number, f"{attr}:< URL values are not supported (export the value inline)")
    return attr, Value(rest.lstrip(" ").encode("utf-8"), number)


# -- accounts -----------------------------------------------------------------------------------------------------
def _text(record: Record, name: str) -> str | None:
    value = record.first(name)
    if value is None:
        return None
    try:
        text = value.text
    except UnicodeDecodeError:
        raise LdifError(value.line, f"{name} is not UTF-8 text") from None
    return text if text.strip() else None


def _filetime(record: Record, name: str) -> datetime | None:
    value = record.first(name)
    if value is None:
        return None
    try:
        return from_filetime(value.raw.decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise LdifError(value.line, f"{name} {value.raw[:30]!r} is not a FILETIME (an integer)") from None


def _guid(record: Record) -> str:
    value = record.first("objectGUID")
    if value is None:
        return ""
    if len(value.raw) == 16:  # the 16 bytes AD stores (base64 in LDIF), in its little-endian layout
        return str(uuid.UUID(bytes_le=value.raw))
    try:
        return str(uuid.UUID(value.raw.decode("ascii").strip()))
    except (ValueError, UnicodeDecodeError):
        raise LdifError(value.line, "objectGUID is neither 16 bytes nor a GUID string") from None


def _is_user(record: Record) -> bool:
    classes = {v.raw.decode("utf-8", errors="replace").strip().lower() for v in record.attrs.get("objectclass", [])}
    return "user" in classes and "computer" not in classes


def _to_user(record: Record) -> AdUser:
    dn = ad_dn(record.dn)
    sam = _text(record, "sAMAccountName")
    if sam is None:
        raise LdifError(record.line, f"account {record.dn!r} has no sAMAccountName")
    uac_value = record.first("userAccountControl")
    if uac_value is None:
        raise LdifError(record.line, f"account {record.dn!r} has no userAccountControl")
    try:
        uac = int(uac_value.raw.decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise LdifError(uac_value.line, "userAccountControl is not an integer") from None
    cn = _text(record, "cn") or rdn_value(dn)
    manager = _text(record, "manager")
    expires, last_logon = _filetime(record, "accountExpires"), _filetime(record, "lastLogonTimestamp")
    proxies = [v.raw.decode("utf-8", errors="strict") for v in record.attrs.get("proxyaddresses", [])]
    return AdUser(
        dn=dn, cn=cn, sam=sam.strip(), upn=(_text(record, "userPrincipalName") or "").strip(),
        mail=_text(record, "mail"), display_name=_text(record, "displayName") or cn,
        given_name=_text(record, "givenName") or "", sn=_text(record, "sn") or cn, title=_text(record, "title"),
        department=_text(record, "department"), manager_dn=ad_dn(manager) if manager else None,
        employee_id=(_text(record, "employeeID") or "").strip() or None, enabled=not uac & 0x2,
        proxy_addresses=proxies, object_guid=_guid(record),
        account_expires=expires, last_logon=last_logon,
    )


def ad_accounts(text: str, notes: Notes | None = None) -> tuple[list[AdUser], str | None]:
    """The accounts of an LDIF export and the domain's base DN (None when it holds no account)."""
    users: list[AdUser] = []
    base: str | None = None
    base_line = 0
    dns: dict[str, int] = {}
    sams: dict[str, int] = {}
    skipped: list[str] = []
    for record in parse_ldif(text):
        if not _is_user(record):
            continue
        try:
            user = _to_user(record)
        except UnicodeDecodeError:
            raise LdifError(record.line, "a proxyAddresses value is not UTF-8 text") from None
        context = naming_context(user.dn)
        if not context:
            raise LdifError(record.line, f"{record.dn!r} is not under a domain (no DC= components)")
        if base is None:
            base, base_line = context, record.line
        elif dn_key(context) != dn_key(base):
            raise LdifError(record.line, f"{record.dn!r} is in another domain than the account on line {base_line} "
                                         f"({base}): one domain per export")
        builtins = {dn_key(f"CN={name},CN=Users,{base}") for name, _uac in BUILTIN_ACCOUNTS}
        if dn_key(user.dn) in builtins:
            skipped.append(user.sam)
            continue
        for seen, key, what in ((dns, dn_key(user.dn), "DN"), (sams, user.sam.casefold(), "sAMAccountName")):
            if key in seen:
                raise LdifError(record.line, f"duplicate {what} {record.dn if what == 'DN' else user.sam!r} "
                                             f"(also on line {seen[key]})")
            seen[key] = record.line
        users.append(user)
    if skipped and notes is not None:
        notes.add(f"ad.ldif: built-in accounts skipped (the simulated domain has its own): {', '.join(skipped)}")
    return users, base


def load_ad(path: Path, notes: Notes | None = None) -> tuple[list[AdUser], str | None]:
    """:func:`ad_accounts` of a file; any problem is an :class:`OrgImportError` with its line."""
    text = read_text(path)
    try:
        return ad_accounts(text, notes)
    except LdifError as exc:
        raise OrgImportError(path.name, exc.line, exc.message) from None


__all__ = ["LdifError", "Record", "Value", "ad_accounts", "load_ad", "parse_ldif"]
