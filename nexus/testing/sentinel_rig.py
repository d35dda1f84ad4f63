"""A Sentinel-managed Redis for tests: a primary, one replica and three sentinels on free loopback ports.

    with sentinel_rig(password="s3cret", sentinel_password="s3ntinel") as rig:
        env = rig.env()                  # REDIS_SENTINELS, REDIS_SENTINEL_MASTER, the passwords, REDIS_URL
        old = rig.kill_master()          # SIGKILL the process the sentinels call master
        new, took_s = rig.wait_failover(old)

Only ``redis-server`` is needed (``redis-server FILE.conf --sentinel`` runs a sentinel), no persistence
(``--save "" --appendonly no``), everything in a temp dir, every process killed by its pid on exit. The sentinels
agree on a failure fast (``down-after-milliseconds`` 1000 by default, quorum 2 of 3), so a failover takes seconds;
production defaults are 30 s.

``REDIS_URL`` in :meth:`SentinelRig.env` names a port where nothing listens: any Redis use that does not go through
the sentinels fails at once instead of quietly talking to the primary until it is killed.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from nexus.redis_sentinel import format_sentinels
from nexus.testing.redis_server import REDIS_SERVER, free_port, wait_ready

MASTER = "nexus"
Address = tuple[str, int]


@dataclass
class Node:
    """One redis-server process (a data node or a sentinel)."""

    role: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> Address:
        return ("127.0.0.1", self.port)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


@dataclass
class SentinelRig:
    workdir: Path
    master: str
    password: str | None
    sentinel_password: str | None
    nodes: list[Node] = field(default_factory=list)  # data nodes: the first primary, then the replica
    sentinels: list[Node] = field(default_factory=list)

    # -- what Nexus is given ---------------------------------------------------------------------------------------
    @property
    def sentinel_addresses(self) -> tuple[Address, ...]:
        return tuple(s.address for s in self.sentinels)

    def env(self, db: int = 0) -> dict[str, str]:
        """The settings that point Nexus at this rig (``REDIS_URL`` only gives the database: nothing listens there)."""
        env = {
            "REDIS_SENTINELS": format_sentinels(self.sentinel_addresses),
            "REDIS_SENTINEL_MASTER": self.master,
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/{db}",
        }
        if self.password:
            env["REDIS_PASSWORD"] = self.password
        if self.sentinel_password:
            env["REDIS_SENTINEL_PASSWORD"] = self.sentinel_password
        return env

    # -- asking the sentinels -------------------------------------------------------------------------------------
    def _sentinel_client(self, node: Node) -> redis.Redis:
        return redis.Redis(*node.address, password=self.sentinel_password, socket_timeout=1.0,
                           socket_connect_timeout=1.0, decode_responses=True)

    def master_address(self) -> Address | None:
        """Where the sentinels (a majority of those that answer) say the master is now."""
        votes: dict[Address, int] = {}
        for node in self.sentinels:
            if not node.alive():
                continue
            client = self._sentinel_client(node)
            try:
                host, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master)
                address = (str(host), int(port))
                votes[address] = votes.get(address, 0) + 1
            except (redis.RedisError, TypeError, ValueError):
                continue
            finally:
                client.close()
        if not votes:
            return None
        address, count = max(votes.items(), key=lambda item: item[1])
        return address if count * 2 > len(self.sentinels) else None

    def node_at(self, address: Address) -> Node:
        return next(n for n in self.nodes if n.address == address)

    def data_client(self, node: Node) -> redis.Redis:
        return redis.Redis(*node.address, password=self.password, socket_timeout=2.0, socket_connect_timeout=1.0)

    def role(self, node: Node) -> str:
        client = self.data_client(node)
        try:
            return str(client.info("replication")["role"])
        finally:
            client.close()

    # -- faults ---------------------------------------------------------------------------------------------------
    def kill_master(self) -> Node:
        """SIGKILL the data node the sentinels call master; returns it."""
        address = self.master_address()
        if address is None:
            raise RuntimeError("the sentinels agree on no master")
        node = self.node_at(address)
        node.kill()
        return node

    def wait_failover(self, old: Node, timeout_s: float = 30.0) -> tuple[Node, float]:
        """Wait until a majority of sentinels name another master and that node says it is one; returns the new
        master and the seconds it took from this call."""
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            address = self.master_address()
            if address is not None and address != old.address:
                node = self.node_at(address)
                with contextlib.suppress(redis.RedisError):
                    if self.role(node) == "master":
                        return node, time.monotonic() - started
            time.sleep(0.05)
        logs = "\n".join(f"--- {s.role} {s.port}\n{s.log()[-1500:]}" for s in self.sentinels)
        raise RuntimeError(f"no failover within {timeout_s:g}s:\n{logs}")

    def wait_replica_synced(self, timeout_s: float = 20.0) -> None:
        """Wait until the replica has finished its first sync (``master_link_status:up``)."""
        deadline = time.monotonic() + timeout_s
        replica = self.nodes[1]
        while time.monotonic() < deadline:
            client = self.data_client(replica)
            try:
                with contextlib.suppress(redis.RedisError):
                    if client.info("replication").get("master_link_status") == "up":
                        return
            finally:
                client.close()
            time.sleep(0.05)
        raise RuntimeError(f"the replica did not sync within {timeout_s:g}s:\n{replica.log()[-1500:]}")

    def wait_sentinels_know_everything(self, timeout_s: float = 20.0) -> None:
        """Wait until every sentinel knows the replica and the two other sentinels (a failover needs both)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = 0
            for node in self.sentinels:
                client = self._sentinel_client(node)
                try:
                    state = client.execute_command("SENTINEL", "MASTER", self.master)
                    info = dict(zip(state[::2], state[1::2], strict=False)) if isinstance(state, list) else state
                    if int(info.get("num-slaves", 0)) >= 1 and int(info.get("num-other-sentinels", 0)) >= 2:
                        ready += 1
                except (redis.RedisError, TypeError, ValueError):
                    pass
                finally:
                    client.close()
            if ready == len(self.sentinels):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the sentinels did not discover each other within {timeout_s:g}s")

    def close(self) -> None:
        for node in (*self.sentinels, *self.nodes):
            node.kill()


def _data_node(workdir: Path, role: str, port: int, password: str | None, primary: int | None) -> Node:
    log_path = workdir / f"{role}-{port}.log"
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--dbfilename", f"dump-{port}.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--loglevel", "notice", "--logfile", str(log_path)]
    if password:
        args += ["--requirepass", password, "--masterauth", password]
    if primary is not None:
        args += ["--replicaof", "127.0.0.1", str(primary)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://:{password}@127.0.0.1:{port}/0" if password else f"redis://127.0.0.1:{port}/0"
    if not wait_ready(proc, url, 10.0):
        proc.kill()
        raise RuntimeError(f"redis-server ({role}) did not start on port {port}")
    return Node(role, port, proc, log_path)


def _sentinel(workdir: Path, port: int, master: str, primary: int, quorum: int, down_after_ms: int,
              failover_timeout_ms: int, password: str | None, sentinel_password: str | None) -> Node:
    conf = workdir / f"sentinel-{port}.conf"  # a sentinel rewrites its own file: one each
    log_path = workdir / f"sentinel-{port}.log"
    lines = [f"port {port}", "bind 127.0.0.1", f"dir {workdir}", "daemonize no", f"logfile {log_path}",
             f"sentinel monitor {master} 127.0.0.1 {primary} {quorum}",
             f"sentinel down-after-milliseconds {master} {down_after_ms}",
             f"sentinel failover-timeout {master} {failover_timeout_ms}",
             f"sentinel parallel-syncs {master} 1"]
    if password:
        lines.append(f"sentinel auth-pass {master} {password}")
    if sentinel_password:
        lines += [f"requirepass {sentinel_password}", f"sentinel sentinel-pass {sentinel_password}"]
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"redis://:{sentinel_password}@127.0.0.1:{port}/0" if sentinel_password else f"redis://127.0.0.1:{port}/0"
    if not wait_ready(proc, url, 10.0):
        proc.kill()
        raise RuntimeError(f"sentinel did not start on port {port}: {log_path.read_text(errors='replace')[-1500:]}")
    return Node("sentinel", port, proc, log_path)


@contextlib.contextmanager
def sentinel_rig(*, master: str = MASTER, password: str | None = None, sentinel_password: str | None = None,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 5000) -> Iterator[SentinelRig]:
    """Start a primary, a replica of it and three sentinels monitoring it (quorum 2); yield once the replica is in
    sync and the sentinels know each other; kill everything afterwards."""
    with tempfile.TemporaryDirectory(prefix="nexus-sentinel-") as tmp:
        rig = SentinelRig(Path(tmp), master, password, sentinel_password)
        try:
            primary = _data_node(rig.workdir, "primary", free_port(), password, None)
            rig.nodes.append(primary)
            rig.nodes.append(_data_node(rig.workdir, "replica", free_port(), password, primary.port))
            rig.wait_replica_synced()
            for _ in range(3):
                rig.sentinels.append(_sentinel(rig.workdir, free_port(), master, primary.port, 2, down_after_ms,
                                               failover_timeout_ms, password, sentinel_password))
            rig.wait_sentinels_know_everything()
            yield rig
        finally:
            rig.close()


__all__ = ["MASTER", "Node", "SentinelRig", "sentinel_rig"]
