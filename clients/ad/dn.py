"""RFC 4514 distinguished names, spelled the way AD writes them.

AD spells attribute types upper case (``CN=...,OU=...,DC=...``) and escapes with a backslash (``\\,``); OpenLDAP
(the simulator) answers ``cn=...,ou=legal\\2C risk...``. Both name the same entry, so the client spells every DN
the AD way (:func:`ad_dn`): a record's ``key`` is then the DN exactly as AD (and the simulator's org) writes it,
and equals other records' ``manager_ref``.
"""

from __future__ import annotations


def split_unescaped(text: str, sep: str) -> list[str]:
    """``text`` split at every ``sep`` that is not backslash-escaped (RDNs at ``,``, AVAs at ``+``)."""
    if "\\" not in text:
        return text.split(sep)
    parts: list[str] = []
    start, escaped = 0, False
    for index, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def unescape_dn_value(value: str) -> str:
    """RFC 4514 unescaping of one RDN value: ``Legal\\, Risk`` and ``Legal\\2C Risk`` -> ``Legal, Risk``."""
    if "\\" not in value:
        return value
    out = bytearray()
    index = 0
    while index < len(value):
        ch = value[index]
        if ch == "\\" and index + 1 < len(value):
            pair = value[index + 1 : index + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(int(pair, 16))
                index += 3
                continue
            out += value[index + 1].encode()
            index += 2
            continue
        out += ch.encode()
        index += 1
    return out.decode("utf-8", errors="replace")


def escape_dn_value(value: str) -> str:
    """RFC 4514 escaping the way AD writes it: a backslash before ``\\ , + " < > ; =``, ``\\00`` for NUL,
    leading ``#``/space and a trailing space escaped; everything else (UTF-8 included) as is."""
    out = "".join(f"\\{ch}" if ch in '\\,+"<>;=' else "\\00" if ch == "\0" else ch for ch in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def _ad_rdn(rdn: str) -> str:
    parts = []
    for ava in split_unescaped(rdn, "+"):
        attr, eq, value = ava.partition("=")
        if not eq:
            return rdn
        value = value.lstrip()
        while value.endswith(" ") and not value.endswith("\\ "):  # keep an escaped trailing space
            value = value[:-1]
        parts.append(f"{attr.strip().upper()}={escape_dn_value(unescape_dn_value(value))}")
    return "+".join(parts)


def ad_dn(dn: str) -> str:
    """``dn`` spelled the way AD writes DNs: upper-case attribute types, ``\\,``-style escapes.

    ``cn=a\\2C b,ou=x`` -> ``CN=a\\, b,OU=x``. DN comparison is case- and escape-form-insensitive, so this only
    makes equal DNs look equal; on a real AD it changes nothing.
    """
    if "\\" not in dn and "+" not in dn:  # fast path: no escapes, no multi-valued RDNs
        out = []
        for rdn in dn.split(","):
            attr, eq, value = rdn.partition("=")
            out.append(f"{attr.strip().upper()}={value}" if eq else rdn)
        return ",".join(out)
    return ",".join(_ad_rdn(rdn) for rdn in split_unescaped(dn, ","))


def dn_key(dn: str) -> str:
    """A DN comparable with another spelling of it (case-insensitive, as AD compares DNs)."""
    return ad_dn(dn).lower()


__all__ = ["ad_dn", "dn_key", "escape_dn_value", "split_unescaped", "unescape_dn_value"]
