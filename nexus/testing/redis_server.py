"""A private ``redis-server`` for tests: free loopback port, temp dir, no persistence, killed on exit.

    from nexus.testing.redis_server import redis_server, redis_server_fixture

    with redis_server() as url:          # "redis://127.0.0.1:<port>/0"
        ...
    with redis_server(extra_args=["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]) as url:
        ...                              # a Redis that refuses writes once full (OutOfMemoryError)

    redis_url = redis_server_fixture()   # in a test module: a session-scoped fixture named ``redis_url``
    other = redis_server_fixture(scope="module")

Every server is its own process (no sharing with a developer's Redis on 6379), started with
``--save "" --appendonly no`` so nothing is written, and killed by its pid when the block or session ends.
:func:`redis_server_fixture` needs pytest (imported when it is called, so this module imports without it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(port: int, workdir: str, extra_args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    args = [
        REDIS_SERVER,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", workdir,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--loglevel", "warning",
        "--logfile", os.path.join(workdir, "redis.log"),
        *extra_args,
    ]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=0.2) as sock:
            return bool(sock.getsockname() != sock.getpeername())
    except OSError:
        return False


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float) -> bool:
    """True once the server at ``url`` answers PING; False if ``proc`` exits or ``timeout_s`` passes first."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.5)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            # Only once something listens: a connect to a free loopback port can connect to itself and echo PING.
            if _listening(url):
                with contextlib.suppress(redis.exceptions.RedisError):
                    if client.ping():
                        return True
            time.sleep(0.01)
        return False
    finally:
        client.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _log_tail(workdir: str) -> str:
    with contextlib.suppress(OSError), open(os.path.join(workdir, "redis.log"), errors="replace") as fh:
        return fh.read()[-2000:]
    return ""


@contextlib.contextmanager
def redis_server(timeout_s: float = 10.0, attempts: int = 3, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """Start a private redis-server and yield its URL (db 0); kill it and remove its directory afterwards.

    ``extra_args``: more server options, appended to the defaults (a later option wins), e.g.
    ``("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")`` for a Redis that refuses writes when full.
    """
    with tempfile.TemporaryDirectory(prefix="nexus-redis-") as workdir:
        last_error = ""
        for _ in range(attempts):  # another process may grab the free port between our probe and the bind
            port = free_port()
            url = f"redis://127.0.0.1:{port}/0"
            proc = _start(port, workdir, extra_args)
            try:
                if wait_ready(proc, url, timeout_s):
                    yield url
                    return
                last_error = _log_tail(workdir) or "did not answer PING"
            finally:
                _kill(proc)
        raise RuntimeError(f"redis-server did not start: {last_error.strip()}")


def redis_server_fixture(scope: Any = "session", name: str = "redis_url") -> Callable[..., Any]:
    """A pytest fixture (default: session-scoped, named ``redis_url``) yielding a private server's URL.

    Assign it at module level in a test module or conftest: ``redis_url = redis_server_fixture()``.
    """
    import pytest

    @pytest.fixture(scope=scope, name=name)
    def _fixture() -> Iterator[str]:
        with redis_server() as url:
            yield url

    return _fixture


__all__ = ["REDIS_SERVER", "free_port", "redis_server", "redis_server_fixture", "wait_ready"]
