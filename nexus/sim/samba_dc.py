"""A real Active Directory domain controller for the tests: Samba 4 (Debian ``samba``), on loopback only.

    with SambaDC.start(org) as dc:          # provisioned (cached), TLS with a CA of its own, the org loaded
        dc.env()                            # AD_LDAP_URL=ldaps://127.0.0.1:636, AD_CA_FILE, AD_BIND_DN, ...

Why Samba and not only slapd: the simulator is written from our understanding of AD; a Samba DC is an AD
implementation nobody here wrote. It has AD's object shape (``objectClass top/person/organizationalPerson/user``,
``objectCategory`` as a DN, ``defaultNamingContext`` in the root DSE), its built-in accounts (Administrator, Guest,
krbtgt, and ``dns-<host>``), accepts binds as a DN, ``user@realm`` and ``DOMAIN\\user``, and, like a hardened Windows
DC, refuses a simple bind without transport encryption (``strongerAuthRequired (8)``: "BindSimple: Transport
encryption required").

Cost: ``samba-tool domain provision`` takes about 10 s here (50 s on slower machines), so the provisioned directory is
cached (``$NEXUS_SAMBA_CACHE`` or ``~/.cache/nexus/samba``, per Samba version) and copied for each start. Samba's LDAP
ports are fixed (389/636), so one DC runs at a time on a machine (a lock file serialises starts). Only loopback is
bound (``interfaces = 127.0.0.1``, ``bind interfaces only``), and only the ``ldap cldap kdc`` services run.

Users are loaded over LDAPS as the domain Administrator: the org's OUs, then every user (with a password, so Samba
accepts ``userAccountControl`` 512), then the ``manager`` links (a DN reference must exist when it is written).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldap3 import Connection, Server, Tls

from clients.ad.filetime import to_filetime

REALM = "CORP.EXAMPLE"
DOMAIN = "CORP"
BASE_DN = "DC=corp,DC=example"
HOST = "127.0.0.1"
LDAPS_PORT = 636
LDAP_PORT = 389
#: The provisioned template's Administrator password (a test DC on loopback; the copy started gets the same).
ADMIN_PASSWORD = "Nexus-Adm1n!pass"
BIND_DN = f"CN=svc-nexus,OU=Service Accounts,{BASE_DN}"


class SambaUnavailable(RuntimeError):
    """Samba is not installed (``apt-get install -y samba``) or the DC did not come up."""


def is_available() -> bool:
    return shutil.which("samba") is not None and shutil.which("samba-tool") is not None


def _version() -> str:
    out = subprocess.run(["samba", "--version"], capture_output=True, text=True, timeout=30, check=False)
    return (out.stdout.strip().split() or ["unknown"])[-1]


def _cache_root() -> Path:
    return Path(os.environ.get("NEXUS_SAMBA_CACHE") or Path.home() / ".cache" / "nexus" / "samba")


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """One DC at a time: Samba's LDAP ports are fixed."""
    path = _cache_root() / "dc.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _provision(target: Path) -> None:
    """``samba-tool domain provision`` into ``target`` (a DC for CORP.EXAMPLE, no DNS, loopback only)."""
    cmd = ["samba-tool", "domain", "provision", f"--realm={REALM}", f"--domain={DOMAIN}", "--server-role=dc",
           "--dns-backend=NONE", f"--adminpass={ADMIN_PASSWORD}", f"--targetdir={target}", "--host-name=dc1",
           f"--option=interfaces={HOST}", "--option=bind interfaces only=yes",
           "--option=server services=ldap cldap kdc"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SambaUnavailable(f"samba-tool domain provision failed: {done.stderr[-1500:]}")


def provisioned_template() -> Path:
    """The cached provisioned directory for this Samba version (provisioned on first use)."""
    template = _cache_root() / f"template-{_version()}"
    if (template / "etc" / "smb.conf").exists():
        return template
    _cache_root().mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="provision-", dir=_cache_root()))
    try:
        _provision(scratch / "dc")
        (scratch / "dc" / "provisioned-at").write_text(str(scratch / "dc"))  # the paths smb.conf was written with
        os.replace(scratch / "dc", template)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return template


@dataclass
class TestCA:
    """A CA of the test's own and a server certificate for 127.0.0.1 / localhost signed by it (PEM files)."""

    __test__ = False  # not a pytest class

    directory: Path
    ca_file: Path = field(init=False)
    cert_file: Path = field(init=False)
    key_file: Path = field(init=False)

    def __post_init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Nexus test CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=2))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dc1.corp.example")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                            x509.DNSName("dc1.corp.example"),
                                                            x509.IPAddress(ipaddress.ip_address(HOST))]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.directory / "ca.pem"
        self.cert_file = self.directory / "cert.pem"
        self.key_file = self.directory / "key.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                                    serialization.NoEncryption()))
        self.key_file.chmod(0o600)


@dataclass
class SambaDC:
    """A running Samba AD DC with an org loaded (see the module docstring)."""

    workdir: Path
    ca: TestCA
    proc: subprocess.Popen[bytes] | None = None
    bind_password: str = field(default_factory=lambda: "Nx-" + secrets.token_urlsafe(18) + "1a!")
    base_dn: str = BASE_DN
    bind_dn: str = BIND_DN
    dangling_managers: int = 0  # managers the org names but does not hold (left out: AD links must resolve)

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def start(cls, org: object | None = None, ready_timeout_s: float = 90.0,
              bind_password: str | None = None) -> Iterator[SambaDC]:
        if not is_available():
            raise SambaUnavailable("Samba is not installed: apt-get install -y samba")
        template = provisioned_template()
        with _machine_lock(), tempfile.TemporaryDirectory(prefix="nexus-samba-") as tmp:
            workdir = Path(tmp) / "dc"
            shutil.copytree(template, workdir, symlinks=True)
            dc = cls(workdir=workdir, ca=TestCA(Path(tmp) / "tls"))
            if bind_password:
                dc.bind_password = bind_password
            dc._write_conf(template)
            dc._run(ready_timeout_s)
            try:
                dc._add_bind_account()
                if org is not None:
                    dc.load(org)
                yield dc
            finally:
                dc.stop()

    def _write_conf(self, template: Path) -> None:
        conf = self.workdir / "etc" / "smb.conf"
        original = (template / "provisioned-at").read_text().strip()
        text = conf.read_text().replace(original, str(self.workdir))
        text = text.replace("[global]\n", "[global]\n\ttls enabled = yes\n"
                            f"\ttls keyfile = {self.ca.key_file}\n\ttls certfile = {self.ca.cert_file}\n"
                            f"\ttls cafile = {self.ca.ca_file}\n\tlog file = {self.workdir}/log.%m\n"
                            f"\tpid directory = {self.workdir}/run\n", 1)
        (self.workdir / "run").mkdir(exist_ok=True)
        conf.write_text(text)

    def _run(self, ready_timeout_s: float) -> None:
        conf = self.workdir / "etc" / "smb.conf"
        log = open(self.workdir / "samba.out", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(["samba", "-i", "-s", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SambaUnavailable(f"samba exited {self.proc.returncode}: {self._log_tail()}")
            if _port_open(HOST, LDAPS_PORT):
                with contextlib.suppress(Exception):
                    self.admin().unbind()
                    return
            time.sleep(0.3)
        raise SambaUnavailable(f"samba did not answer LDAPS in {ready_timeout_s:.0f} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "samba.out").read_text(errors="replace")[-1500:]
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        deadline = time.monotonic() + 10  # the ports are fixed: the next DC needs them free
        while _port_open(HOST, LDAPS_PORT) and time.monotonic() < deadline:
            time.sleep(0.2)

    # -- access ------------------------------------------------------------------------------------------------------
    def tls(self) -> Tls:
        return Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.ca.ca_file))

    def admin(self) -> Connection:
        """An ldap3 connection bound as the domain Administrator (``user@realm``) over LDAPS."""
        server = Server(HOST, port=LDAPS_PORT, use_ssl=True, tls=self.tls(), connect_timeout=5)
        return Connection(server, user=f"Administrator@{REALM.lower()}", password=ADMIN_PASSWORD, auto_bind=True,
                          receive_timeout=30)

    def env(self) -> dict[str, str]:
        """Settings for Nexus's AD client (the names of nexus.settings)."""
        return {"AD_LDAP_URL": f"ldaps://{HOST}:{LDAPS_PORT}", "AD_CA_FILE": str(self.ca.ca_file),
                "AD_BIND_DN": self.bind_dn, "AD_BIND_PASSWORD": self.bind_password, "AD_BASE_DN": self.base_dn}

    # -- loading -----------------------------------------------------------------------------------------------------
    def _add_bind_account(self) -> None:
        conn = self.admin()
        try:
            _ensure_ou(conn, f"OU=Service Accounts,{self.base_dn}")
            _add_user(conn, self.bind_dn, {"sAMAccountName": "svc-nexus",
                                           "userPrincipalName": f"svc-nexus@{REALM.lower()}",
                                           "displayName": "Nexus service account"}, self.bind_password, True)
        finally:
            conn.unbind()

    def load(self, org: object) -> None:
        """The org's AD users (``org.ad``: :class:`nexus.sim.org_model.AdUser`), their OUs and manager links."""
        users = list(getattr(org, "ad", []))
        conn = self.admin()
        try:
            parents = sorted({_parent(u.dn) for u in users}, key=lambda dn: dn.count(","))
            for parent in parents:
                _ensure_ou(conn, parent)
            for user in users:
                attrs: dict[str, Any] = {
                    "sAMAccountName": user.sam, "userPrincipalName": user.upn, "displayName": user.display_name,
                    "givenName": user.given_name, "sn": user.sn, "mail": user.mail, "title": user.title,
                    "department": user.department, "employeeID": user.employee_id}
                if user.proxy_addresses:
                    attrs["proxyAddresses"] = list(user.proxy_addresses)
                if user.account_expires is not None:  # FILETIME, as AD stores it (clients/ad/filetime.py)
                    attrs["accountExpires"] = str(to_filetime(user.account_expires))
                if user.last_logon is not None:  # replicated sign-in time; an administrator may write it
                    attrs["lastLogonTimestamp"] = str(to_filetime(user.last_logon))
                _add_user(conn, user.dn, attrs, "Nx-" + secrets.token_urlsafe(12) + "1a!", user.enabled)
            from ldap3 import MODIFY_REPLACE

            # AD links ``manager`` to an existing object: a manager the org names but does not hold (a dangling
            # reference the slapd simulator can serve) cannot exist in a real directory and is left out.
            known = {u.dn.lower() for u in users}
            self.dangling_managers = 0
            for user in users:
                if not user.manager_dn:
                    continue
                if user.manager_dn.lower() not in known:
                    self.dangling_managers += 1
                    continue
                conn.modify(user.dn, {"manager": [(MODIFY_REPLACE, [user.manager_dn])]})
                _check(conn, f"manager of {user.dn}")
        finally:
            conn.unbind()


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _parent(dn: str) -> str:
    from nexus.sim.ldap_entries import split_rdn

    return split_rdn(dn)[1]


def _check(conn: Connection, what: str) -> None:
    result = conn.result or {}
    if result.get("result") not in (0, 68):  # 68: entryAlreadyExists (a cached OU)
        raise SambaUnavailable(f"loading {what} into Samba failed: {result.get('description')}: "
                               f"{result.get('message')}")


def _ensure_ou(conn: Connection, dn: str) -> None:
    """Create ``dn`` and its missing parents (OU or CN containers below the base DN)."""
    from nexus.sim.ldap_entries import rdn_value, split_rdn

    if dn.lower() == BASE_DN.lower() or not dn:
        return
    rdn, parent = split_rdn(dn)
    _ensure_ou(conn, parent)
    kind = rdn.split("=", 1)[0].strip().upper()
    if kind == "OU":
        conn.add(dn, ["top", "organizationalUnit"], {"ou": rdn_value(dn)})
    else:
        conn.add(dn, ["top", "container"], {"cn": rdn_value(dn)})
    _check(conn, dn)


def _add_user(conn: Connection, dn: str, attrs: dict[str, Any], password: str, enabled: bool) -> None:
    values: dict[str, Any] = {k: v for k, v in attrs.items() if v}
    values["unicodePwd"] = f'"{password}"'.encode("utf-16-le")
    values["userAccountControl"] = str(512 if enabled else 514)
    conn.add(dn, ["top", "person", "organizationalPerson", "user"], values)
    _check(conn, dn)


__all__ = ["BASE_DN", "DOMAIN", "REALM", "SambaDC", "SambaUnavailable", "TestCA", "is_available",
           "provisioned_template"]
