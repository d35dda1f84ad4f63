"""The Active Directory simulator: a real OpenLDAP ``slapd`` child serving the org's AD users over TCP.

Why slapd and not a Python LDAP server: clients must page with the paged-results control and filter with AD's
bitwise rule ``1.2.840.113556.1.4.803``, from several processes (Celery workers). slapd does both natively, loads
100k people offline in a few seconds (the LDIF is streamed into ``slapadd`` while it is rendered), starts in ~40 ms
and serves a full 100k paged listing to ``ldapsearch`` in ~2 s; pure-Python servers ignore paging or the bitwise
rule, and ldap3's MOCK_SYNC serves one process only (that is :mod:`nexus.sim.ldap_mock`, the fallback).

:class:`SlapdServer` owns one slapd: a temp dir holding ``slapd.conf``, the AD schema slice
(:mod:`nexus.sim.ldap_schema`), the LDIF rendered from :attr:`Org.ad <nexus.sim.org_model.Org>` and an mdb
database loaded with ``slapadd -q`` BEFORE slapd starts (an order of magnitude faster than adding over LDAP). slapd
runs in the foreground (``-d``) as our child on ``127.0.0.1:<free port>``; :meth:`SlapdServer.stop` (also run at
interpreter exit) kills it by pid and removes the temp dir. A Debian system slapd on port 389 is never touched.

:class:`LdapSimulator` puts the fault proxy (:mod:`nexus.sim.ldap_proxy`) in front of it: the proxy's URL is what
``AD_LDAP_URL`` points at, so the contract's ``ad`` faults and request log apply to LDAP.

Directory layout and entries (the OUs, the service account Nexus binds as): :mod:`nexus.sim.ldap_entries`.
slapd answers with DNs in its own spelling (``cn=...,ou=legal\\2C risk...``: lower-case types, hex escapes); they
are the same DNs, and :func:`clients.ad.dn.ad_dn` spells them back the AD way. Attribute values come back as written.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ldap3 import MODIFY_REPLACE, NONE, SIMPLE, SYNC, Connection, Server
from ldap3.core.exceptions import LDAPException

from clients.ad.dn import split_unescaped
from nexus.sim.faults import FaultBoard, RequestLog
from nexus.sim.ldap_entries import (
    DEFAULT_BASE_DN,
    DEFAULT_BIND_DN,
    USER_ATTRIBUTES,
    DirectoryError,
    naming_context,
    netbios_name,
    rdn_value,
    render_ldif,
    user_attributes,
)
from nexus.sim.ldap_proxy import LdapProxy
from nexus.sim.ldap_schema import AD_SCHEMA, EQUALITY_INDEXES, SYSTEM_SCHEMAS
from nexus.sim.org_model import AdUser, Org

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/libexec")
_MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/local/libexec/openldap")
_SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")


class SlapdError(RuntimeError):
    """slapd could not be configured, loaded or started (the message carries slapd's own words)."""


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _find_dir(candidates: Sequence[str], marker: str) -> Path | None:
    for directory in candidates:
        if (Path(directory) / marker).exists():
            return Path(directory)
    return None


def is_available() -> bool:
    """True when slapd, slapadd and the system schema files are installed (the simulator can run)."""
    return (
        _find_binary("slapd") is not None
        and _find_binary("slapadd") is not None
        and _find_dir(_SCHEMA_DIRS, "core.schema") is not None
    )


def ssha(password: str) -> str:
    """``{SSHA}`` userPassword value (salted SHA-1, what slapd verifies natively)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def root_dse_ldif(base_dn: str) -> str:
    """The naming contexts AD's root DSE advertises (https://learn.microsoft.com/en-us/windows/win32/adschema/rootdse),
    for slapd's ``rootDSE`` directive (it adds them to the root DSE it builds)."""
    forest = naming_context(base_dn) or base_dn
    return (
        "dn:\n"
        f"defaultNamingContext: {base_dn}\n"
        f"rootDomainNamingContext: {forest}\n"
        f"configurationNamingContext: CN=Configuration,{forest}\n"
        f"schemaNamingContext: CN=Schema,CN=Configuration,{forest}\n"
    )


# --- slapd -----------------------------------------------------------------------------------------------------


class SlapdServer:
    """One slapd child serving an :class:`Org`'s AD users. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        org: Org | None = None,
        *,
        users: Iterable[AdUser] | None = None,
        base_dn: str | None = None,
        bind_dn: str = DEFAULT_BIND_DN,
        bind_password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        debug_level: int = 0,
        ready_timeout_s: float = 15.0,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        simple_bind_ssf: int = 0,
    ) -> None:
        """``users`` overrides ``org.ad`` (e.g. a generator for benchmarks). ``port=0`` picks a free port.

        ``tls_cert``/``tls_key`` (PEM files): slapd also offers StartTLS on :attr:`url` and listens for ``ldaps://``
        on :attr:`ldaps_url`. ``simple_bind_ssf``: slapd's ``security simple_bind=<n>``, the security strength a
        connection needs before a simple bind is accepted (e.g. 128: only over TLS), as a hardened domain
        controller refuses simple binds on plain LDAP (Samba's default ``ldap server require strong auth``).

        ``debug_level`` is slapd's ``-d`` (0 = quiet; 256 = stats, which logs every search filter to
        ``<workdir>/slapd.log``).
        """
        if org is None and users is None:
            raise ValueError("give an org or users")
        self._users: Iterable[AdUser] = users if users is not None else (org.ad if org else [])
        self.base_dn = base_dn or (org.base_dn if org else DEFAULT_BASE_DN)
        self.bind_dn = bind_dn
        self.bind_password = bind_password or secrets.token_urlsafe(18)
        self.root_dn = f"CN=admin,{self.base_dn}"
        self.root_password = secrets.token_urlsafe(18)
        self.host = host
        self.port = port
        self.debug_level = debug_level
        self.ready_timeout_s = ready_timeout_s
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.simple_bind_ssf = simple_bind_ssf
        self.ldaps_port = 0
        self.workdir: Path | None = None
        self.load_seconds = 0.0  # LDIF rendering + slapadd (they overlap), for benchmarks
        self.start_seconds = 0.0  # slapd start until the first successful bind
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin: Connection | None = None
        self._admin_lock = threading.Lock()

    # lifecycle

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        if self.tls_cert is None:
            raise RuntimeError("slapd was started without a TLS certificate")
        return f"ldaps://{self.host}:{self.ldaps_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> SlapdServer:
        if self._proc is not None:
            return self
        slapd, slapadd = _find_binary("slapd"), _find_binary("slapadd")
        schema_dir = _find_dir(_SCHEMA_DIRS, "core.schema")
        if slapd is None or slapadd is None or schema_dir is None:
            raise SlapdError("OpenLDAP slapd/slapadd or its schema files are not installed (apt-get install slapd)")
        self.workdir = Path(tempfile.mkdtemp(prefix="nexus-slapd-"))
        atexit.register(self.stop)
        try:
            conf = self._write_config(schema_dir)
            self._load(slapadd, conf)
            self._launch(slapd, conf)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_config(self, schema_dir: Path) -> Path:
        assert self.workdir is not None
        (self.workdir / "db").mkdir()
        schema = self.workdir / "ad.schema"
        schema.write_text(AD_SCHEMA)
        module_dir = _find_dir(_MODULE_DIRS, "back_mdb.so")
        modules = f"modulepath {module_dir}\nmoduleload back_mdb\n" if module_dir else ""
        includes = "".join(f"include {schema_dir / name}\n" for name in SYSTEM_SCHEMAS)
        conf = self.workdir / "slapd.conf"
        tls = ""
        if self.tls_cert is not None:
            tls = f"TLSCertificateFile {self.tls_cert}\nTLSCertificateKeyFile {self.tls_key or self.tls_cert}\n"
        if self.simple_bind_ssf:
            tls += f"security simple_bind={self.simple_bind_ssf}\n"
        root_dse = self.workdir / "rootdse.ldif"
        root_dse.write_text(root_dse_ldif(self.base_dn))
        tls += f"rootDSE {root_dse}\n"
        conf.write_text(
            f"{includes}include {schema}\n"
            f"pidfile {self.workdir / 'slapd.pid'}\nargsfile {self.workdir / 'slapd.args'}\n"
            f"{modules}{tls}"
            # The default (500) also caps paged searches: a full listing must see every entry.
            "sizelimit unlimited\n"
            'access to dn.base="" by * read\n'
            'access to dn.base="cn=Subschema" by * read\n'
            "database mdb\n"
            "maxsize 8589934592\n"  # map size only: the file grows as needed
            "dbnosync\n"
            f'suffix "{self.base_dn}"\n'
            f'rootdn "{self.root_dn}"\n'
            f"rootpw {ssha(self.root_password)}\n"
            f"directory {self.workdir / 'db'}\n"
            f"index {','.join(EQUALITY_INDEXES)} eq\n"
            "access to attrs=userPassword by anonymous auth by * none\n"
            "access to * by users read by * none\n"
        )
        return conf

    def _load(self, slapadd: str, conf: Path) -> None:
        """Stream the LDIF into ``slapadd -q``: rendering and loading overlap, nothing hits the disk twice."""
        assert self.workdir is not None
        started = time.perf_counter()
        errors = (self.workdir / "slapadd.err").open("w+b")
        proc = subprocess.Popen(
            [slapadd, "-q", "-f", str(conf)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors
        )
        assert proc.stdin is not None
        try:
            with io.TextIOWrapper(proc.stdin, encoding="utf-8", write_through=False) as fh:
                self._write_ldif(fh)
        except BrokenPipeError:
            pass  # slapadd stopped reading: its exit status and stderr say why
        finally:
            returncode = proc.wait()
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
            errors.close()
        self.load_seconds = time.perf_counter() - started
        if returncode != 0:
            raise SlapdError(f"slapadd failed ({returncode}): {stderr.strip()[-2000:]}")

    def _write_ldif(self, fh: IO[str]) -> None:
        chunks = render_ldif(
            self._users, base_dn=self.base_dn, bind_dn=self.bind_dn, bind_password_hash=ssha(self.bind_password)
        )
        batch: list[str] = []
        try:
            for chunk in chunks:
                batch.append(chunk)
                if len(batch) >= 1000:
                    fh.write("".join(batch))
                    batch.clear()
        except DirectoryError as exc:
            raise SlapdError(str(exc)) from exc
        fh.write("".join(batch))

    def _launch(self, slapd: str, conf: Path) -> None:
        assert self.workdir is not None
        fixed_port = self.port
        last_error = ""
        for _ in range(3):  # a free port can be taken between probing and slapd's bind(): try another
            self.port = fixed_port or free_port(self.host)
            urls = f"ldap://{self.host}:{self.port}/"
            if self.tls_cert is not None:
                self.ldaps_port = free_port(self.host)
                urls += f" ldaps://{self.host}:{self.ldaps_port}/"
            log = (self.workdir / "slapd.log").open("ab")
            started = time.perf_counter()
            self._proc = subprocess.Popen(
                [slapd, "-f", str(conf), "-h", urls, "-d", str(self.debug_level)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            if self._wait_ready():
                self.start_seconds = time.perf_counter() - started
                return
            last_error = self.log_tail()
            self._kill()
            if fixed_port:
                break
        raise SlapdError(f"slapd did not start on {self.host}:{self.port}: {last_error}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout_s
        delay = 0.005
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if not _accepts(self.host, self.port):
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            try:
                conn = Connection(
                    Server(self.host, port=self.port, connect_timeout=1, get_info=NONE),
                    user=self.bind_dn,
                    password=self.bind_password,
                    authentication=SIMPLE,
                    receive_timeout=2,
                )
                bound = conn.bind()
                refused_plain = int((conn.result or {}).get("result", -1)) in (8, 13)  # simple_bind_ssf: it answers
                conn.unbind()
                if bound or (self.simple_bind_ssf and refused_plain):
                    return True
            except (LDAPException, OSError, KeyError, ValueError):
                pass  # not ready yet, or an undecodable answer: try again
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return False

    def log_tail(self, limit: int = 2000) -> str:
        if self.workdir is None or not (self.workdir / "slapd.log").exists():
            return ""
        return (self.workdir / "slapd.log").read_text(errors="replace")[-limit:]

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop(self) -> None:
        """Kill slapd by pid and delete its temp dir (idempotent)."""
        with self._admin_lock:
            if self._admin is not None:
                try:
                    self._admin.unbind()
                except LDAPException:
                    pass
                self._admin = None
        self._kill()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> SlapdServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # runtime changes (as the rootdn, straight to slapd: they do not go through the fault proxy or its log)

    def _admin_op(self, op: str, *args: Any) -> None:
        with self._admin_lock:
            if self._admin is None or self._admin.closed:
                self._admin = Connection(
                    # No schema read: ldap3 would otherwise apply AD validators by attribute name (objectGUID
                    # to 16 bytes), which does not fit the simulator's string objectGUID.
                    Server(self.host, port=self.port, connect_timeout=5, get_info=NONE),
                    user=self.root_dn,
                    password=self.root_password,
                    client_strategy=SYNC,
                    receive_timeout=30,
                    auto_bind=True,
                )
            ok = getattr(self._admin, op)(*args)
            if not ok:
                result = self._admin.result
                raise SlapdError(f"{op} {args[0]!r} failed: {result.get('description')} {result.get('message')}")

    def modify(self, dn: str, changes: Mapping[str, str | int | Sequence[str] | None]) -> None:
        """Replace attributes of ``dn``: a value (or list of values) replaces, ``None`` removes the attribute.

        Replace-with-nothing is LDAP's idempotent delete (deleting an absent attribute would be an error).
        """
        ops: dict[str, list[tuple[str, list[str]]]] = {}
        for name, value in changes.items():
            if value is None:
                values: list[str] = []
            elif isinstance(value, str | int):
                values = [str(value)]
            else:
                values = [str(v) for v in value]
            ops[name] = [(MODIFY_REPLACE, values)]
        self._admin_op("modify", dn, ops)

    def set_enabled(self, dn: str, enabled: bool) -> None:
        self.modify(dn, {"userAccountControl": 512 if enabled else 514})

    def add_user(self, user: AdUser) -> None:
        """Add one user (its OU must exist: use a department that the org already has)."""
        self._admin_op("add", user.dn, None, user_attributes(user))

    def update_user(self, user: AdUser) -> None:
        """Rewrite every attribute of an existing user from ``user`` (same DN); absent optional ones are removed."""
        attrs = user_attributes(user)
        changes: dict[str, str | int | Sequence[str] | None] = {name: None for name in USER_ATTRIBUTES}
        changes.update({name: values for name, values in attrs.items() if name not in ("objectClass", "cn")})
        self.modify(user.dn, changes)

    def delete_users(self, dns: Iterable[str]) -> int:
        """Delete users by DN; returns how many were deleted."""
        count = 0
        for dn in dns:
            self._admin_op("delete", dn)
            count += 1
        return count


# --- slapd + fault proxy ---------------------------------------------------------------------------------------


class LdapSimulator:
    """slapd behind the fault proxy: what ``nexus sim`` serves for ``ad``. ``url`` is ``AD_LDAP_URL``."""

    def __init__(
        self,
        org: Org,
        faults: FaultBoard,
        log: RequestLog,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bind_password: str | None = None,
    ) -> None:
        self.slapd = SlapdServer(org, bind_password=bind_password)
        self._org = org
        self._faults = faults
        self._log = log
        self._host = host
        self._port = port
        self.proxy: LdapProxy | None = None

    @property
    def url(self) -> str:
        if self.proxy is None:
            raise RuntimeError("not started")
        return f"ldap://{self._host}:{self.proxy.port}"

    def start(self) -> LdapSimulator:
        self.slapd.start()
        try:
            self.proxy = LdapProxy(
                self.slapd.host, self.slapd.port, self._faults, self._log, host=self._host, port=self._port,
                bind_names=self.bind_names(),
            )
            self.proxy.start()
        except BaseException:
            self.slapd.stop()
            raise
        return self

    def bind_names(self) -> dict[str, str]:
        """``user@realm`` and ``DOMAIN\\user`` of every account with a password (the bind account, the org's
        users) -> its DN, for the proxy to map binds as AD does."""
        domain = netbios_name(self.slapd.base_dn)
        host = ".".join(rdn_value(r) for r in split_unescaped(naming_context(self.slapd.base_dn), ","))
        bind_sam = rdn_value(self.slapd.bind_dn)
        names = {f"{bind_sam}@{host}": self.slapd.bind_dn, f"{domain}\\{bind_sam}": self.slapd.bind_dn}
        for user in self._org.ad:
            names[user.upn] = user.dn
            names[f"{domain}\\{user.sam}"] = user.dn
        return names

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        self.slapd.stop()

    def env(self) -> dict[str, str]:
        """The ``AD_*`` variables that point Nexus' AD client at this simulator."""
        return {
            "AD_LDAP_URL": self.url,
            "AD_BIND_DN": self.slapd.bind_dn,
            "AD_BIND_PASSWORD": self.slapd.bind_password,
            "AD_BASE_DN": self.slapd.base_dn,
        }

    def __enter__(self) -> LdapSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _accepts(host: str, port: int) -> bool:
    """True when something listens on ``host:port``. A connection to a port nobody listens on can, on loopback,
    connect to ITSELF (TCP simultaneous open, when the kernel picks that same port as the source): such a socket
    echoes what it sends, which an LDAP client cannot decode. It is detected and refused here."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            return bool(sock.getsockname() != sock.getpeername())
    except OSError:
        return False
