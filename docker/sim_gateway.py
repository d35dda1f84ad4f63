#!/usr/bin/env python3
"""Entry point of the compose ``sim`` service: run ``nexus sim`` and let the other containers reach it.

``nexus sim`` serves loopback addresses only (by design), and the env file it writes points at 127.0.0.1. In a
container, other containers cannot reach that. This gateway:

1. runs the command it is given (``nexus sim ... --env-file LOCAL``) as a child, forwarding SIGTERM/SIGINT;
2. once the child has written LOCAL (it does so only when every simulator accepts connections), relays every
   loopback port named in it (the HTTP port and the LDAP port) from ``NEXUS_SIM_GATEWAY_BIND`` (default: this
   container's address on its network) to 127.0.0.1;
3. writes a copy of LOCAL to ``NEXUS_SIM_SHARED_ENV`` (default ``/shared/sim.env``, on a volume the other services
   mount) with ``127.0.0.1``/``localhost`` replaced by ``NEXUS_SIM_ADVERTISE_HOST`` (default: this host's name);
   the other services read it with ``NEXUS_ENV_FILE``;
4. exits with the child's status, removing the shared copy.

Standard library only (it runs in the image before anything else is set up).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LOOPBACK_URL = re.compile(r"(?<=//)(?:127\.0\.0\.1|localhost):(\d+)")


def env_file_arg(argv: list[str]) -> Path:
    """The ``--env-file`` the child writes (``nexus sim``'s default otherwise)."""
    for i, arg in enumerate(argv):
        if arg == "--env-file" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--env-file="):
            return Path(arg.split("=", 1)[1])
    return Path(".env.sim")


def loopback_ports(text: str) -> list[int]:
    return sorted({int(port) for port in LOOPBACK_URL.findall(text)})


def advertise(text: str, host: str) -> str:
    return LOOPBACK_URL.sub(lambda m: f"{host}:{m.group(1)}", text)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def _serve_relay(listener: socket.socket, port: int) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return  # listener closed
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def start_relays(bind: str, ports: list[int]) -> list[socket.socket]:
    listeners = []
    for port in ports:
        listener = socket.create_server((bind, port), reuse_port=False)
        threading.Thread(target=_serve_relay, args=(listener, port), daemon=True).start()
        listeners.append(listener)
    return listeners


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)  # it holds the simulators' credentials
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: nexus-sim-gateway nexus sim [options] --env-file LOCAL", file=sys.stderr)
        return 2
    local = env_file_arg(argv)
    shared = Path(os.environ.get("NEXUS_SIM_SHARED_ENV", "/shared/sim.env"))
    host = os.environ.get("NEXUS_SIM_ADVERTISE_HOST") or socket.gethostname()
    bind = os.environ.get("NEXUS_SIM_GATEWAY_BIND") or socket.gethostbyname(socket.gethostname())
    for stale in (local, shared):
        stale.unlink(missing_ok=True)

    child = subprocess.Popen(argv)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    listeners: list[socket.socket] = []
    try:
        while not local.is_file() and child.poll() is None:
            time.sleep(0.1)
        if child.poll() is None:
            text = local.read_text(encoding="utf-8")
            ports = loopback_ports(text)
            listeners = start_relays(bind, ports)
            write_atomically(shared, advertise(text, host))
            print(f"nexus-sim-gateway: ports {ports} relayed from {bind}; {shared} points at {host}",
                  file=sys.stderr, flush=True)
        return child.wait()
    finally:
        shared.unlink(missing_ok=True)
        for listener in listeners:
            listener.close()
        if child.poll() is None:
            child.terminate()
            child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
