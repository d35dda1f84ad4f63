"""In-process Active Directory for the embedded demo (``nexus demo``) when slapd is not installed.

ldap3's MOCK_SYNC strategy keeps the directory in the ``Server`` object, so every connection made to the same
:class:`MockDirectory` sees the same entries: no sockets, no other process (Celery workers in other processes cannot
reach it; that is what the slapd simulator is for). It serves the same entries as :mod:`nexus.sim.ldap_server`
(same DNs, OUs and attributes), pages with the paged-results control, and compares values case-insensitively. It
rejects AD's bitwise matching rule, which is why :class:`clients.ad.ADClient` reads bit 0x2 of
``userAccountControl`` itself instead of filtering on it.

A client reaches it only through its factory, given to the client by whoever builds it (there is no registry of
directories by URL: a client built from settings alone refuses a ``mock://`` URL)::

    directory = mock_directory(org, creds, faults=faults, log=log)
    client = ADClient(directory.settings(), connection_factory=directory.connection_factory)

The embedded demo passes the factory the same way (``SimulatorStack.ad_connection_factory`` ->
``workers.embedded.embedded_worker(ad_connection_factory=...)`` -> the worker's AD client).

Given a :class:`FaultBoard` and :class:`RequestLog`, its connections apply the ``ad`` faults and log operations the
way :mod:`nexus.sim.ldap_proxy` does on the wire, raising the exceptions ldap3 raises there (reset, busy, invalid
credentials, undecodable answer), so the client's error mapping is exercised identically.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any, Protocol

from ldap3 import MOCK_SYNC, NONE, SIMPLE, Connection, Server
from ldap3.core.exceptions import LDAPSessionTerminatedByServerError, LDAPSocketOpenError
from pyasn1.error import PyAsn1Error
from pydantic import SecretStr

from nexus.settings import Settings
from nexus.sim.faults import FaultBoard, RequestLog
from nexus.sim.ldap_entries import DEFAULT_BASE_DN, DEFAULT_BIND_DN, directory_entries
from nexus.sim.ldap_proxy import BUSY, INVALID_CREDENTIALS, UNAVAILABLE
from nexus.sim.org_model import AdUser, Org

SYSTEM = "ad"


class _Credentials(Protocol):
    ad_bind_dn: str
    ad_bind_password: str


class FaultyMockConnection(Connection):
    """A MOCK_SYNC connection that logs each operation and applies the ``ad`` fault first."""

    faults: FaultBoard | None = None
    log: RequestLog | None = None

    def _gate(self, path: str, query: str = "", *, faultable: bool = True) -> str | None:
        if self.log is not None:
            self.log.record(SYSTEM, path, query)
        if self.faults is None or not faultable:
            return None
        mode = self.faults.decide(SYSTEM)
        if mode == "slow":
            fault = self.faults.get(SYSTEM)
            time.sleep((fault.delay_ms if fault else 0) / 1000)
            return None
        if mode == "down":
            raise LDAPSocketOpenError("socket connection error while opening: [Errno 111] Connection refused")
        if mode == "flaky":
            raise LDAPSessionTerminatedByServerError("session terminated by server")
        if mode == "malformed":
            raise PyAsn1Error("undecodable LDAP message")
        return mode

    def _refuse(self, code: int, description: str, message: str) -> bool:
        self.result = {"result": code, "description": description, "message": message, "dn": "", "referrals": None}
        self.response: list[dict[str, Any]] = []
        return False

    def bind(self, *args: Any, **kwargs: Any) -> bool:
        mode = self._gate("bind", str(self.user or ""))
        if mode == "throttle":
            return self._refuse(BUSY, "busy", "server busy")
        if mode == "expired_token":
            return self._refuse(INVALID_CREDENTIALS, "invalidCredentials", "credential expired (data 532)")
        return bool(super().bind(*args, **kwargs))

    def search(self, search_base: str, search_filter: str, *args: Any, **kwargs: Any) -> bool:
        mode = self._gate("search", search_filter)
        if mode == "throttle":
            return self._refuse(BUSY, "busy", "server busy")
        if mode == "truncated" and kwargs.get("paged_cookie"):
            return self._refuse(UNAVAILABLE, "unavailable", "paging interrupted")
        return bool(super().search(search_base, search_filter, *args, **kwargs))

    def unbind(self, *args: Any, **kwargs: Any) -> bool:
        self._gate("unbind", faultable=False)
        return bool(super().unbind(*args, **kwargs))


class MockDirectory:
    """The org's AD users in an ldap3 MOCK_SYNC server, shared by every connection it hands out."""

    def __init__(
        self,
        org: Org | None = None,
        *,
        users: Iterable[AdUser] | None = None,
        base_dn: str | None = None,
        bind_dn: str = DEFAULT_BIND_DN,
        bind_password: str | None = None,
        faults: FaultBoard | None = None,
        log: RequestLog | None = None,
    ) -> None:
        if org is None and users is None:
            raise ValueError("give an org or users")
        self.base_dn = base_dn or (org.base_dn if org else DEFAULT_BASE_DN)
        self.bind_dn = bind_dn
        self.bind_password = bind_password or secrets.token_urlsafe(18)
        self.faults = faults
        self.log = log
        self.server = Server("mock-ad", get_info=NONE)
        loader = Connection(self.server, client_strategy=MOCK_SYNC)
        # The mock compares userPassword as stored: it is kept in clear (it never leaves this process).
        for dn, attrs in directory_entries(
            users if users is not None else (org.ad if org else []),
            base_dn=self.base_dn,
            bind_dn=bind_dn,
            bind_password=self.bind_password,
        ):
            if not loader.strategy.add_entry(dn, attrs):
                raise ValueError(f"mock directory rejected entry {dn!r}")

    def connection_factory(self, settings: Settings) -> Connection:
        """An unbound connection with the settings' bind DN and password (:class:`clients.ad.ADClient`'s seam)."""
        conn = FaultyMockConnection(
            self.server,
            user=settings.ad_bind_dn,
            password=settings.ad_bind_password.get_secret_value(),
            authentication=SIMPLE,
            client_strategy=MOCK_SYNC,
            raise_exceptions=False,
            return_empty_attributes=False,
        )
        conn.faults = self.faults
        conn.log = self.log
        return conn

    def env(self, url: str = "mock://ad") -> dict[str, str]:
        """The ``AD_*`` variables matching this directory."""
        return {
            "AD_LDAP_URL": url,
            "AD_BIND_DN": self.bind_dn,
            "AD_BIND_PASSWORD": self.bind_password,
            "AD_BASE_DN": self.base_dn,
        }

    def settings(self, base: Settings | None = None, url: str = "mock://ad") -> Settings:
        """``base`` (or defaults) with the ``AD_*`` values pointing at this directory."""
        source = base or Settings()
        return source.model_copy(
            update={
                "ad_ldap_url": url,
                "ad_bind_dn": self.bind_dn,
                "ad_bind_password": SecretStr(self.bind_password),
                "ad_base_dn": self.base_dn,
            }
        )


def mock_directory(
    org: Org,
    creds: _Credentials | None = None,
    *,
    faults: FaultBoard | None = None,
    log: RequestLog | None = None,
) -> MockDirectory:
    """A :class:`MockDirectory` for ``org`` with the bind DN and password of ``creds`` (``SimCredentials``)."""
    return MockDirectory(
        org,
        bind_dn=creds.ad_bind_dn if creds else DEFAULT_BIND_DN,
        bind_password=creds.ad_bind_password if creds else None,
        faults=faults,
        log=log,
    )


def mock_url() -> str:
    """A fresh ``mock://`` URL for ``AD_LDAP_URL`` (it names the directory in logs; nothing looks it up)."""
    return f"mock://ad-{secrets.token_hex(6)}"


__all__ = ["FaultyMockConnection", "MockDirectory", "mock_directory", "mock_url"]
