"""Connections to the directory: building them (TCP, or an injected factory), binding, one search, unbinding.

A :data:`ConnectionFactory` builds an UNBOUND ldap3 ``Connection`` from settings. Production uses
:func:`default_connection` (simple bind over TCP to ``AD_LDAP_URL``: ``ldaps://``, or ``ldap://`` with
``AD_START_TLS=true``, for TLS); the embedded demo and
the tests inject the in-process directory's factory (:meth:`nexus.sim.ldap_mock.MockDirectory.connection_factory`)
through :class:`clients.ad.ADClient`'s ``connection_factory`` parameter. No factory is looked up by URL: a
``mock://`` URL reaching :func:`default_connection` means the client was built without its directory.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from ldap3 import BASE, NONE, SIMPLE, SUBTREE, SYNC, Connection, Server, Tls

from clients.ad.errors import LDAP_FAILURES, map_exception, map_result
from clients.ad.schema import ATTRIBUTES, SYSTEM
from nexus.errors import BadRequestError
from nexus.settings import Settings

logger = logging.getLogger("clients.ad")
_warned_insecure = False

#: Builds an unbound ldap3 Connection from settings; the test and embedded-demo seam (see nexus.sim.ldap_mock).
ConnectionFactory = Callable[[Settings], Connection]


def default_connection(settings: Settings) -> Connection:
    """:func:`tcp_connection`, refusing the in-process directories' ``mock://`` URLs (they need their factory)."""
    if settings.ad_ldap_url.startswith("mock://"):
        raise BadRequestError(
            f"AD: {settings.ad_ldap_url} is an in-process directory that this process does not hold",
            system=SYSTEM,
        )
    return tcp_connection(settings)


def uses_ldaps(settings: Settings) -> bool:
    return settings.ad_ldap_url.strip().lower().startswith("ldaps://")


def tls_config(settings: Settings) -> Tls:
    """ldap3 TLS settings: the server certificate is verified (``CERT_REQUIRED``, against ``AD_CA_FILE`` or the
    system's CAs) and so is its host name (ldap3 checks it after the handshake, against the host of
    ``AD_LDAP_URL``). ldap3's own default is ``CERT_NONE`` (anything is accepted, so the bind password could be
    intercepted): verification is off only with ``AD_TLS_VERIFY=false``, and that is logged once as a warning."""
    global _warned_insecure
    if not settings.ad_tls_verify:
        if not _warned_insecure:
            _warned_insecure = True
            logger.warning(
                "AD: TLS certificate verification is OFF (AD_TLS_VERIFY=false): any server can pose as the "
                "domain controller and read the bind password. Set AD_CA_FILE to the CA that signed its certificate."
            )
        return Tls(validate=ssl.CERT_NONE)
    return Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ad_ca_file or None)


def tcp_connection(settings: Settings) -> Connection:
    """The production connection: simple bind over TCP to ``AD_LDAP_URL`` (``ldaps://`` or StartTLS for TLS)."""
    ldaps = uses_ldaps(settings)
    if ldaps and settings.ad_start_tls:
        raise BadRequestError("AD: AD_START_TLS=true needs an ldap:// AD_LDAP_URL (ldaps:// is TLS already)",
                              system=SYSTEM)
    tls = tls_config(settings) if ldaps or settings.ad_start_tls else None
    server = Server(settings.ad_ldap_url, use_ssl=ldaps, tls=tls, connect_timeout=settings.http_connect_timeout_s,
                    get_info=NONE)
    conn = Connection(
        server,
        user=settings.ad_bind_dn,
        password=settings.ad_bind_password.get_secret_value(),
        authentication=SIMPLE,
        client_strategy=SYNC,
        # ldap3 packs this into SO_RCVTIMEO as whole seconds: a float would fail at connect time.
        receive_timeout=max(1, math.ceil(settings.http_timeout_s)),
        read_only=True,
        auto_referrals=False,
        raise_exceptions=False,
        check_names=False,  # no schema is read (get_info=NONE)
        return_empty_attributes=False,
        auto_range=False,  # no attribute Nexus reads comes near AD's 1500-value range limit
    )
    lean_entries(conn)
    return conn


def lean_entries(conn: Connection) -> None:
    """Decode search entries to ``{"dn", "raw_attributes"}`` only (keys lower-cased), skipping ldap3's second,
    str-typed copy of every value.

    ldap3 turns each value into str through several per-value configuration lookups and builds two
    case-insensitive dicts per entry; for a 100k-person listing that is half the client's CPU time. Only
    ``searchResEntry`` messages take this path, on SYNC connections; anything unexpected falls back to ldap3.
    """
    strategy = conn.strategy
    original = getattr(strategy, "decode_response_fast", None)
    if original is None or not conn.fast_decoder:
        return

    def decode(message: dict[str, Any]) -> dict[str, Any]:
        if message.get("protocolOp") == 4:  # searchResEntry: payload = (dn, attributes)
            try:
                dn, attributes = message["payload"][0][3], message["payload"][1][3]
                raw = {a[3][0][3].decode("ascii").lower(): [v[3] for v in a[3][1][3]] for a in attributes}
                return {
                    "type": "searchResEntry",
                    "raw_dn": dn,
                    "dn": dn.decode("utf-8"),
                    "raw_attributes": raw,
                    "attributes": {},  # never read by the client
                }
            except (IndexError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
                pass  # not the shape we expect: let ldap3 decode (or reject) it
        return dict(original(message))

    strategy.decode_response_fast = decode


#: strongerAuthRequired, confidentialityRequired: the DC refuses a simple bind on an unencrypted connection.
_NEEDS_TLS = {8, 13}


def open_bound(factory: ConnectionFactory, settings: Settings) -> Connection:
    """A new bound connection (StartTLS first when ``AD_START_TLS``); bind refusals are AuthError (mapped here,
    never retried here). A certificate that does not verify is an AuthError too: retrying will not fix it."""
    try:
        conn = factory(settings)
        if settings.ad_start_tls and not uses_ldaps(settings) and not conn.server.ssl:
            conn.open()
            if not conn.start_tls():
                raise map_result(dict(conn.result or {}), "StartTLS")
        ok = conn.bind()
    except LDAP_FAILURES as exc:
        raise map_exception(exc, "bind") from exc
    if not ok:
        result = dict(conn.result or {})
        quiet_unbind(conn)
        hint = ""
        if int(result.get("result", -1)) in _NEEDS_TLS and not (settings.ad_start_tls or uses_ldaps(settings)):
            hint = ("the domain controller requires an encrypted connection for simple binds: use an ldaps:// "
                    "AD_LDAP_URL (port 636) or set AD_START_TLS=true")
        raise map_result(result, "bind", hint=hint)
    return conn


def search(
    conn: Connection,
    action: str,
    base: str,
    search_filter: str,
    *,
    scope: str = SUBTREE,
    attributes: Sequence[str] = ATTRIBUTES,
    paged_cookie: bytes | None = None,
    paged_size: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One search request: (entries, result). Raises the mapped error for a non-success result; ldap3's own
    exceptions propagate (the caller maps them, after deciding whether the connection is worth reopening)."""
    conn.search(
        base,
        search_filter,
        search_scope=scope,
        attributes=list(attributes),
        paged_size=paged_size,
        paged_cookie=paged_cookie,
    )
    result = dict(conn.result or {})
    if result.get("result") != 0:
        raise map_result(result, action, base_read=scope == BASE)
    entries = [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]
    return entries, result


def quiet_unbind(conn: Connection) -> None:
    """Unbind, ignoring a connection that is already dead."""
    try:
        conn.unbind()
    except LDAP_FAILURES:
        pass


__all__ = [
    "ConnectionFactory",
    "default_connection",
    "lean_entries",
    "open_bound",
    "quiet_unbind",
    "search",
    "tcp_connection",
    "tls_config",
    "uses_ldaps",
]
