"""No credential leaves the place it belongs, even when the systems fail.

A private rig (one worker process serving /metrics, Flower watching it) runs audits under faults on several
systems (down, expired tokens, malformed bodies, throttling, a mid-run expiry of every token), then greps every
place a credential could leak to for every credential value of the simulator's env file (``stack.secrets()``),
the Flower password and every access token the simulators issued:

* the worker's log, and every log record of this (the test) process, extras and tracebacks included;
* Redis, scanned again and again WHILE the audits run (a message waiting for its countdown sits in the queue or
  in ``unacked`` with its arguments) and once after: task messages (base64 bodies decoded), results
  (``celery-task-meta-*``), chord state, audit store keys, breaker keys;
* every stored report, and its JSON, CSV and Markdown exports;
* the simulators' request log (paths and recorded queries: URL query strings, LDAP filters and bind DNs, GraphQL
  bodies): a credential belongs in a header or a token request's form body, never in what a proxy logs;
* the worker's Prometheus ``/metrics``;
* Flower's task list (``/api/tasks``) and each task's page (``/task/<id>``);
* ``repr()``/``str()`` of the settings and of every client.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import secrets as pysecrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from nexus.settings import Settings
from nexus.systems import DEVICE_INVENTORIES, System
from nexus.testing.cluster import Cluster
from nexus.testing.redis_server import free_port

WAIT = 90.0
RIG_ENV = {
    "NEXUS_HTTP_TIMEOUT_S": "1",
    "NEXUS_HTTP_CONNECT_TIMEOUT_S": "1",
    "NEXUS_RETRY_BACKOFF_BASE_S": "0.25",
    "NEXUS_RETRY_AFTER_MAX_S": "5",
    "NEXUS_BREAKER_FAIL_MAX": "3",
    "NEXUS_BREAKER_RESET_TIMEOUT_S": "30",
}


# -- collecting everything ------------------------------------------------------------------------------------------
class RecordingHandler(logging.Handler):
    """Every record of this process, rendered with its extras and traceback (what any handler could print)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is not a leak
            text = f"{record.msg!r} {record.args!r}"
        extras = {k: v for k, v in vars(record).items() if k not in ("msg", "args", "message")}
        parts = [text, repr(extras)]
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        self.texts.append("\n".join(parts))


def _expand(text: str, depth: int = 0) -> Iterator[str]:
    """``text`` and everything encoded inside it: JSON strings within JSON, base64 message bodies."""
    yield text
    if depth > 4:
        return
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and len(item) >= 8:
            if item[:1] in "[{":
                yield from _expand(item, depth + 1)
            if re.fullmatch(r"[A-Za-z0-9+/=\s]+", item):
                with contextlib.suppress(binascii.Error, ValueError, UnicodeDecodeError):
                    yield from _expand(base64.b64decode(item, validate=False).decode("utf-8"), depth + 1)


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _redis_values(r: redis.Redis) -> dict[str, list[str]]:
    """Every key of the store and its value(s), decoded; keys that vanish mid-scan are skipped."""
    out: dict[str, list[str]] = {}
    for raw_key in r.scan_iter(count=1000):
        key = _text(raw_key)
        kind = _text(r.type(raw_key))
        values: list[Any] = []
        with contextlib.suppress(redis.ResponseError):
            if kind == "string":
                values = [r.get(raw_key) or b""]
            elif kind == "hash":
                values = [b for pair in r.hgetall(raw_key).items() for b in pair]
            elif kind == "list":
                values = list(r.lrange(raw_key, 0, -1))
            elif kind == "set":
                values = list(r.smembers(raw_key))
            elif kind == "zset":
                values = list(r.zrange(raw_key, 0, -1))
        out[key] = [key, *(_text(v) for v in values)]
    return out


class RedisRecorder:
    """Records every distinct value the store held while the audits ran, in a thread.

    Task messages only live in Redis while queued or reserved: the queues and ``unacked`` are read every few
    milliseconds (a retried fetch waits its countdown there, arguments and all); the whole store every half second
    and once at the end (results, chord state, audits and breakers stay)."""

    def __init__(self, url: str) -> None:
        from workers.routing import ALL_QUEUES

        self.r = redis.Redis.from_url(url)
        self.transient = [*ALL_QUEUES, "unacked"]
        self.seen: dict[str, set[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redis-recorder", daemon=True)

    def _run(self) -> None:
        last_full = 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_full > 0.5:
                self.scan()
                last_full = time.monotonic()
            else:
                self._keep(self._read(self.transient))
            self._stop.wait(0.005)

    def _read(self, keys: list[str]) -> dict[str, list[str]]:
        pipe = self.r.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        kinds = [_text(k) for k in pipe.execute()]
        pipe = self.r.pipeline(transaction=False)
        for key, kind in zip(keys, kinds, strict=True):
            if kind == "list":
                pipe.lrange(key, 0, -1)
            elif kind == "hash":
                pipe.hvals(key)
        values = iter(pipe.execute())
        return {key: [_text(v) for v in next(values)] for key, kind in zip(keys, kinds, strict=True)
                if kind in ("list", "hash")}

    def _keep(self, found: dict[str, list[str]]) -> None:
        for key, values in found.items():
            self.seen.setdefault(key, set()).update(values)

    def scan(self) -> None:
        self._keep(_redis_values(self.r))

    def __enter__(self) -> RedisRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.scan()


@dataclass
class Flower:
    url: str
    user: str
    password: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", auth=(self.user, self.password), timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def flower(cluster: Cluster, workdir: Path) -> Iterator[Flower]:
    """`nexus flower` (basic auth) on the rig, listening to the workers' events before it returns."""
    port, user, password = free_port(), "ops", pysecrets.token_urlsafe(16)
    env = {**os.environ, **cluster.env, "NEXUS_FLOWER_USER": user, "NEXUS_FLOWER_PASSWORD": password,
           "PYTHONUNBUFFERED": "1"}
    env.pop("NEXUS_ENV_FILE", None)
    log_path = workdir / "flower.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "flower", "--address", "127.0.0.1",
                                 "--port", str(port)], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    running = Flower(f"http://127.0.0.1:{port}", user, password, proc, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                if running.get("/workers?json=1").json()["data"]:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"Flower did not see the workers:\n{running.log()[-3000:]}")
            time.sleep(0.1)
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@dataclass
class Haystack:
    """Every place a credential must not be, after the faulted audits (source name -> texts)."""

    cluster: Cluster
    needles: dict[str, str]  # label -> secret value
    sources: dict[str, list[str]] = field(default_factory=dict)
    audit_ids: list[str] = field(default_factory=list)
    task_messages: int = 0  # fetch task messages seen in Redis (proves the scan saw task arguments)
    flower_tasks: int = 0

    def leaks(self, source: str) -> list[str]:
        found = []
        for text in self.sources[source]:
            for label, value in self.needles.items():
                at = text.find(value)
                if at >= 0:
                    context = text[max(0, at - 80):at + len(value) + 40].replace(value, f"<{label}>")
                    found.append(f"{label} in {source}: ...{context}...")
        return sorted(set(found))


def _audit(cluster: Cluster, ids: list[str], *, expect: str = "done", **subject: Any) -> dict[str, Any]:
    nx = cluster.nexus()
    audit_id = nx.submit(nx.request_for(**subject))
    ids.append(audit_id)
    view: dict[str, Any] = nx.wait(audit_id, timeout=WAIT)
    assert view["status"] == expect, view
    assert view["report"] is not None, view  # a failed audit keeps the report that says why
    return view


def _faulted_audits(cluster: Cluster, ids: list[str]) -> None:
    """Failures on every system, each of a different kind, with re-authentication along the way."""
    org = cluster.stack.org
    assert org is not None
    truth = cluster.truth
    people = sorted(w.email for w in org.workday if w.active)[:6]
    serial = sorted(d.serial for d in org.intune)[3]
    returned = sorted({e["subject"] for e in truth["drift"] if e["field"] == "return_shipment"})[0]
    cases: list[tuple[list[tuple[str, str, dict[str, Any]]], dict[str, Any], set[str]]] = [
        ([("workday", "down", {}), ("entra", "expired_token", {})], {"email": people[0]}, {"Workday", "Entra"}),
        ([("ad", "throttle", {"retry_after": 1})], {"emails": people[1:5]}, {"ActiveDirectory"}),
        ([("workday", "malformed", {}), ("entra", "malformed", {})], {"email": people[5]}, {"Workday", "Entra"}),
        ([("helix", "malformed", {}), ("lansweeper", "throttle", {"retry_after": 1}), ("intune", "expired_token", {})],
         {"serial": serial}, {"Helix", "Lansweeper", "Intune"}),
        ([("fedex", "expired_token", {})], {"serial": returned}, {"FedEx"}),
        ([("fedex", "throttle", {"retry_after": 1}), ("intune", "down", {})], {"serial": returned},
         {"FedEx", "Intune"}),
    ]
    for faults, subject, failing in cases:
        cluster.reset()
        for system, mode, params in faults:
            cluster.fault(system, mode, **params)
        # every system this audit could read failing is a failed audit ("no system could be read"), report kept
        expect = "failed" if failing == {s.display for s in DEVICE_INVENTORIES} else "done"
        view = _audit(cluster, ids, expect=expect, **subject)
        assert failing <= set(view["report"]["systems_failed"]), (faults, view["report"]["systems_failed"])
    # Every token the simulators issued dies at once: each system re-authenticates (credentials on the wire).
    cluster.reset()
    httpx.delete(f"{cluster.sim_url}/_sim/tokens").raise_for_status()
    for subject in ({"serial": returned}, {"emails": people[:3]}):
        view = _audit(cluster, ids, **subject)
        assert view["report"]["systems_failed"] == [], view["report"]
    # And the health check, in this process (its clients log here), with one system down.
    from nexus import runtime
    from nexus.health import check_system_health

    cluster.fault("lansweeper", "down")
    try:
        health = check_system_health()
    finally:
        runtime.current().drop_clients()
    assert health["systems"]["Lansweeper"]["available"] is False
    cluster.clear_faults()


def _issued_tokens(cluster: Cluster) -> list[str]:
    """The access tokens the simulators handed out (credentials too: they must stay in Authorization headers)."""
    assert cluster.stack.ctx is not None
    return list(cluster.stack.ctx.tokens._tokens)  # the simulator's private table: test-only access


@pytest.fixture(scope="module")
def haystack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Haystack]:
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    metrics_port = free_port()
    workdir = tmp_path_factory.mktemp("secrets")
    handler = RecordingHandler()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with Cluster.start(people=150, seed=23, workers=1, concurrency=2,
                           extra_env={**RIG_ENV, "NEXUS_METRICS_PORT": str(metrics_port)}) as cluster, \
                flower(cluster, workdir) as fl:
            ids: list[str] = []
            with RedisRecorder(cluster.redis_url) as recorder:
                _faulted_audits(cluster, ids)
            needles = {name: value for name, value in cluster.env.items() if value in cluster.stack.secrets()}
            assert len(needles) == len(cluster.stack.secrets()) == 7
            tokens = _issued_tokens(cluster)
            assert len(tokens) >= 7, "the audits should have authenticated against every HTTP system"
            needles |= {f"access token #{i}": t for i, t in enumerate(tokens)}
            needles["NEXUS_FLOWER_PASSWORD"] = fl.password
            hay = Haystack(cluster, needles, audit_ids=ids)
            hay.sources["worker log"] = [cluster.worker_logs()]
            hay.sources["this process's logs"] = handler.texts
            redis_texts = [t for values in recorder.seen.values() for v in values for t in _expand(v)]
            hay.sources["redis"] = redis_texts
            hay.task_messages = sum(1 for t in redis_texts if '"nexus.fetch_' in t and any(i in t for i in ids))
            hay.sources["reports"] = _reports(cluster, ids)
            hay.sources["request log"] = _request_log(cluster)
            hay.sources["metrics"] = [httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text]
            hay.sources["flower"], hay.flower_tasks = _flower_views(fl, ids)
            hay.sources["flower log"] = [fl.log()]
            yield hay
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _reports(cluster: Cluster, ids: list[str]) -> list[str]:
    from nexus.exports import render

    nx = cluster.nexus()
    listed = {a["audit_id"] for a in nx.list(1000)}
    assert set(ids) <= listed
    texts = []
    for audit_id in sorted(listed):
        view = nx.get(audit_id)
        texts.append(json.dumps(view))
        report = view.get("report")
        if report:
            texts += [render(report, fmt) for fmt in ("json", "csv", "md")]
    return texts


def _request_log(cluster: Cluster) -> list[str]:
    recent = httpx.get(f"{cluster.sim_url}/_sim/requests", params={"recent": "1"}).json()["recent"]
    assert recent, "the request log recorded nothing"
    return [json.dumps(entry) for entry in recent]


def _flower_views(fl: Flower, ids: list[str]) -> tuple[list[str], int]:
    """Flower's task list and the page of every task of these audits (args, result, exception, traceback)."""
    deadline = time.monotonic() + 30
    while True:  # events arrive asynchronously: wait until Flower saw a task of the last audit
        listing = fl.get("/api/tasks")
        listing.raise_for_status()
        tasks: dict[str, Any] = listing.json()
        mine = {tid: t for tid, t in tasks.items() if any(i in (t.get("args") or "") for i in ids)}
        if any(ids[-1] in (t.get("args") or "") for t in mine.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    texts = [listing.text]
    for task_id in mine:
        texts.append(fl.get(f"/api/task/info/{task_id}").text)
        texts.append(fl.get(f"/task/{task_id}").text)
    return texts, len(mine)


# -- no rig -------------------------------------------------------------------------------------------------------
def test_settings_and_clients_never_show_a_secret_in_repr() -> None:
    """SecretStr fields, and passwords inside URLs (a Redis URL may carry one), never print."""
    values = {
        "WORKDAY_CLIENT_SECRET": "wdsec-r3pr-1", "WORKDAY_REFRESH_TOKEN": "wdref-r3pr-2",
        "AZURE_CLIENT_SECRET": "azsec-r3pr-3", "AD_BIND_PASSWORD": "adpw-r3pr-4", "LANSWEEPER_TOKEN": "lstok-r3pr-5",
        "HELIX_PASSWORD": "hxpw-r3pr-6", "FEDEX_CLIENT_SECRET": "fxsec-r3pr-7",
        "NEXUS_FLOWER_PASSWORD": "flpw-r3pr-8", "NEXUS_MCP_TOKEN": "mcptok-r3pr-9",
    }
    urls = {"REDIS_URL": "redis://:redispw-r3pr-10@127.0.0.1:6379/0",
            "NEXUS_BREAKER_REDIS_URL": "rediss://nexus:brkpw-r3pr-11@redis.example:6380/1"}
    settings = Settings(**values, **urls, USE_MOCK="false", AD_LDAP_URL="ldap://dc.test:1", HELIX_USERNAME="svc")  # type: ignore[arg-type]
    needles = [*values.values(), "redispw-r3pr-10", "brkpw-r3pr-11"]
    shown = [repr(settings), str(settings)]
    assert "**********" in shown[0]  # the secrets are there, masked
    from nexus.registry import SPECS

    clients = []
    for system in System:
        client = SPECS[system].build(settings)
        clients.append(client)
        shown += [repr(client), str(client), repr(getattr(client, "settings", None))]
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()
    leaked = [n for n in needles for text in shown if n in text]
    assert not leaked, leaked
    assert settings.redis_url.endswith("@127.0.0.1:6379/0")  # masking is for display only: the URL still works


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:pw-1@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://nexus:p@ss/w0rd@redis.example:6380/1?ssl_cert_reqs=required",
     "rediss://nexus:***@redis.example:6380/1?ssl_cert_reqs=required"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://nexus@127.0.0.1/0", "redis://nexus@127.0.0.1/0"),
    ("memory://", "memory://"),
    ("", ""),
])
def test_url_passwords_are_masked_for_display(url: str, shown: str) -> None:
    from nexus.settings import mask_url_password

    assert mask_url_password(url) == shown


def test_the_redis_decoder_finds_a_credential_inside_a_queued_task_message() -> None:
    """The grep is only as good as its decoding: a Redis-transport message (as in a queue, or in ``unacked`` with
    its exchange and routing key) carries the task arguments base64-encoded in its body."""
    body = json.dumps([["audit-1", "people", ["someone@corp.example", "hxpw-planted"]], {}, {}])
    message = {"body": base64.b64encode(body.encode()).decode(), "content-encoding": "utf-8",
               "content-type": "application/json", "headers": {"task": "nexus.fetch_ad", "argsrepr": "..."},
               "properties": {"body_encoding": "base64", "delivery_tag": "t-1"}}
    unacked = json.dumps([message, "", "ad"])
    texts = list(_expand(unacked))
    assert any("hxpw-planted" in t for t in texts)
    hay = Haystack(cluster=None, needles={"HELIX_PASSWORD": "hxpw-planted"},  # type: ignore[arg-type]
                   sources={"redis": texts})
    assert hay.leaks("redis") and "<HELIX_PASSWORD>" in hay.leaks("redis")[0]
    assert "hxpw-planted" not in hay.leaks("redis")[0]  # a failing test does not print the secret either


# -- the checks -----------------------------------------------------------------------------------------------------
SOURCES = ["worker log", "this process's logs", "redis", "reports", "request log", "metrics", "flower",
           "flower log"]


@pytest.mark.integration
@pytest.mark.parametrize("source", SOURCES)
def test_no_credential_in(haystack: Haystack, source: str) -> None:
    assert haystack.sources[source], f"nothing collected from {source}"
    leaks = haystack.leaks(source)
    assert not leaks, "\n".join(leaks)


@pytest.mark.integration
def test_the_greps_looked_where_the_credentials_travel(haystack: Haystack) -> None:
    """Not vacuous: the Redis scan caught fetch task messages with their arguments, Flower listed the audits'
    tasks, the worker log shows the faults, and the request log holds token requests and the LDAP binds."""
    assert haystack.task_messages > 0, "no fetch task message seen in Redis while the audits ran"
    assert haystack.flower_tasks >= len(haystack.audit_ids)
    logs = haystack.sources["worker log"][0]
    for needle in ("Retry attempt", "ThrottledError", "AuthError", "MalformedResponseError"):
        assert needle in logs
    recorded = "\n".join(haystack.sources["request log"])
    for path in ("/ccx/oauth2/", "/oauth2/v2.0/token", "/api/jwt/login", "/oauth/token", '"bind"'):
        assert path in recorded, path
    assert "svc-nexus" in recorded  # the AD bind DN is logged by the proxy, its password is not


@pytest.mark.integration
def test_reports_name_the_failures_without_credentials(haystack: Haystack) -> None:
    reports = [json.loads(t) for t in haystack.sources["reports"] if t.startswith('{"audit_id"')]
    errors = [e for r in reports for e in (r.get("report") or {}).get("errors", {}).values()]
    kinds = {e["kind"] for e in errors}
    assert {"transient", "auth", "malformed", "throttled"} <= kinds, kinds
    assert all(e["message"] for e in errors)
