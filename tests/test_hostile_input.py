"""Hostile and oversized input through every door: the facade, the CLI (a real subprocess) and the MCP tools.

For input that fails validation: a clear one-line error (CLI exit 2, MCP ToolError), NOTHING stored or enqueued
(the audit index, the audit keys, every Celery queue and the result keys of the rig's Redis are unchanged) and NO
request at all reached any system (the simulators' request log, ``/_sim/requests?recent=1``, stays empty).
For input that is valid but hostile-looking (``a*b@corp.example``, ``o'brien@corp.example``...): the audit runs, the
value reaches every system only as an escaped literal (the recorded LDAP filters, OData ``$filter``s, Workday query,
Helix ``q`` and GraphQL variables are read back and parsed), and it matches nothing.
Oversized: 100,001 emails are refused at every door; 100,000 are accepted as one bulk audit that enqueues one
message, and planning it dispatches only ``NEXUS_BULK_WINDOW`` parts (checked on a private Redis without workers).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import pytest
import redis
from fastmcp import Client
from fastmcp.exceptions import ToolError
from ldap3.operation.search import AND, MATCH_EQUAL, NOT, OR, ROOT, compile_filter, parse_filter
from pyasn1.codec.ber import encoder
from typer.testing import CliRunner

from nexus.audits.spec import AuditKind, AuditRequest
from nexus.audits.store import AuditStore
from nexus.errors import InvalidInput
from nexus.sim import odata
from nexus.sim.helix_qualification import Compare, FieldRef, Literal, parse_qualification
from nexus.sim.ldap_proxy import children, element_at
from nexus.testing.cluster import Cluster, repoint_celery_app
from nexus.testing.redis_server import redis_server
from workers.routing import ALL_QUEUES

pytestmark = pytest.mark.integration

NEXUS = str(Path(sys.executable).parent / "nexus")
WAIT = 60.0
LIMIT = 100_000
CYR_A, CYR_O, GREEK_O = "\u0430", "\u043e", "\u03bf"

# (value, a fragment of the one-line error)
NOT_AN_EMAIL = "is not a valid email address"
NON_ASCII = "non-ASCII"
INVALID_EMAILS: list[tuple[Any, str]] = [
    # malformed
    ("not-an-email", NOT_AN_EMAIL), ("a@b", NOT_AN_EMAIL), ("a@@corp.example", NOT_AN_EMAIL),
    ("a b@corp.example", NOT_AN_EMAIL), ("@corp.example", NOT_AN_EMAIL), ("alice@", NOT_AN_EMAIL),
    ("a..b@corp.example", NOT_AN_EMAIL), ("a@corp..example", NOT_AN_EMAIL), ("a@-corp.example", NOT_AN_EMAIL),
    ("a@corp.example\nb@corp.example", NOT_AN_EMAIL), ("", "email is empty"), (" \t ", "email is empty"),
    # unicode confusables and invisible characters
    (f"{CYR_A}lice@corp.example", NON_ASCII), (f"alice@c{CYR_O}rp.example", NON_ASCII),
    (f"alice@c{GREEK_O}rp.example", NON_ASCII), ("alice\uff20corp.example", NON_ASCII),
    ("\uff41lice@corp.example", NON_ASCII), ("ali\u200dce@corp.example", NON_ASCII),
    ("alice\u200b@corp.example", NON_ASCII), ("\u202eelpmaxe.proc@ecila", NON_ASCII),
    ("\ufeffalice@corp.example", NON_ASCII), ("ali\u00adce@corp.example", NON_ASCII),
    ("alice\u0301@corp.example", NON_ASCII), ("al\u0131ce@corp.example", NON_ASCII),
    # LDAP, OData, GraphQL and Helix qualification injection
    ("*)(mail=*", NOT_AN_EMAIL), ("*", NOT_AN_EMAIL), ("\\00", NOT_AN_EMAIL), ("a\x00@corp.example", NOT_AN_EMAIL),
    ("alice@corp.example)(|(mail=*", NOT_AN_EMAIL), ("' or 1 eq 1", NOT_AN_EMAIL),
    ("x@corp.example' or mail ne '", NOT_AN_EMAIL), ('"}) { x } #', NOT_AN_EMAIL),
    ('" OR \'Status\' != "', NOT_AN_EMAIL), ('a"@corp.example', NOT_AN_EMAIL), ("$NULL$", NOT_AN_EMAIL),
    ("${jndi:ldap://127.0.0.1/a}", NOT_AN_EMAIL), ("a@corp.example;b@corp.example", NOT_AN_EMAIL),
    # oversized and wrongly typed
    ("a" * 250 + "@corp.example", "longer than 254"), ("x" * 1_000_000, "longer than 254"),
    (12345, "email must be a string"), (["a@corp.example"], "email must be a string"),
]
INVALID_SERIALS = ["AB", "*)(serialNumber=*", "A" * 51, "../../etc/passwd", "ABC 123", "\u00c4BC123", "-ABC123",
                   "ABC123;DROP", "' or 1 eq 1", '"}) { x } #']
INVALID_IDS = ["0" * 32 + "0", "not-hex", "g" * 32, "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "*",
               "nexus:audits", "0123456789abcdef0123456789abcdef/../x", "0123456789abcdef\n0123456789abcdef", ""]
UNKNOWN_ID = "0123456789abcdef0123456789abcdef"
# Valid addresses (RFC 5322 allows these characters) that would widen a query if a client concatenated them.
HOSTILE_VALID = ["a*b@corp.example", "*@corp.example", "o'brien@corp.example", "x'or'1'eq'1@corp.example",
                 "a}{x}#@corp.example", "%@corp.example", "a|b@corp.example", "~!$&=?^`{}@corp.example"]


# -- what must not change ----------------------------------------------------------------------------------------------

def _state(r: redis.Redis) -> dict[str, Any]:
    return {
        "index": r.zcard("nexus:audits"),
        "audits": sum(1 for _ in r.scan_iter("nexus:audit:*", count=5000)),
        "queues": {q: r.llen(q) for q in ALL_QUEUES},
        "results": sum(1 for _ in r.scan_iter("celery-task-meta-*", count=5000)),
    }


def _recent(cluster: Cluster, system: str | None = None) -> list[dict[str, str]]:
    params = {"recent": "1", **({"system": system} if system else {})}
    recent: list[dict[str, str]] = httpx.get(f"{cluster.sim_url}/_sim/requests", params=params).json()["recent"]
    return recent


def _queues_empty(cluster: Cluster, timeout: float = 20.0) -> None:
    r = cluster.redis()
    deadline = time.monotonic() + timeout
    while any(r.llen(q) for q in ALL_QUEUES) and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.fixture(scope="module", autouse=True)
def _workers_idle(cluster: Cluster) -> None:
    """Once: no task of an earlier module is still queued or running (this module's tests wait for their own)."""
    from workers.app import celery_app

    cluster.activate()  # module fixtures run without the session cluster's environment (tests/conftest.py)
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            _queues_empty(cluster)
            if not any((celery_app.control.inspect(timeout=0.5).active() or {}).values()):
                return
            time.sleep(0.2)
    finally:
        cluster.deactivate()


@pytest.fixture()
def quiet_rig(rig: Cluster) -> Iterator[Cluster]:
    _queues_empty(rig)
    rig.reset_requests()
    yield rig


@contextlib.contextmanager
def _nothing_happens(cluster: Cluster) -> Iterator[None]:
    r = cluster.redis()
    before = _state(r)
    yield
    assert _state(r) == before
    assert _recent(cluster) == []


def _one_line(message: str) -> None:
    assert message and "\n" not in message.strip() and "Traceback" not in message, message


# -- the facade --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "fragment"), INVALID_EMAILS, ids=lambda v: repr(v)[:40])
def test_facade_refuses_bad_emails_and_nothing_happens(quiet_rig: Cluster, value: Any, fragment: str) -> None:
    nx = quiet_rig.nexus()
    with _nothing_happens(quiet_rig):
        with pytest.raises(InvalidInput) as refused:
            nx.request_for(email=value)
        assert fragment in str(refused.value)
        _one_line(str(refused.value))
        with pytest.raises(InvalidInput):
            nx.request_for(emails=["ok@corp.example", value])
        # A request built around request_for is validated by submit all the same.
        with pytest.raises(InvalidInput):
            nx.submit(AuditRequest(AuditKind.USER, [value]))
        with pytest.raises(InvalidInput):
            nx.submit(AuditRequest(AuditKind.BULK, ["ok@corp.example", value]))


def test_facade_refuses_bad_serials_ids_and_shapes(quiet_rig: Cluster) -> None:
    nx = quiet_rig.nexus()
    with _nothing_happens(quiet_rig):
        for serial in INVALID_SERIALS:
            with pytest.raises(InvalidInput, match="is not a valid serial number"):
                nx.request_for(serial=serial)
            with pytest.raises(InvalidInput):
                nx.submit(AuditRequest(AuditKind.DEVICE, [serial]))
        for audit_id in INVALID_IDS:
            with pytest.raises(InvalidInput, match="is not an audit id"):
                nx.get(audit_id)
            with pytest.raises(InvalidInput):
                nx.submit(AuditRequest(AuditKind.USER, ["ok@corp.example"], audit_id=audit_id))
        for unknown in (UNKNOWN_ID, UNKNOWN_ID.upper(), f" {UNKNOWN_ID}\n"):
            with pytest.raises(InvalidInput, match="no audit with id"):
                nx.get(unknown)
        with pytest.raises(InvalidInput, match="exactly one"):
            nx.request_for(email="a@corp.example", serial="ABC123")
        with pytest.raises(InvalidInput, match="exactly one"):
            nx.request_for()
        with pytest.raises(InvalidInput, match="must be a list"):
            nx.request_for(emails="a@corp.example")
        with pytest.raises(InvalidInput, match="empty"):
            nx.request_for(emails=[])
        with pytest.raises(InvalidInput, match="exactly one subject"):
            nx.submit(AuditRequest(AuditKind.USER, ["a@corp.example", "b@corp.example"]))
        with pytest.raises(InvalidInput, match="canonical"):
            nx.submit(AuditRequest(AuditKind.BULK, ["a@corp.example", "A@corp.example"]))
        for limit in (0, 1001):
            with pytest.raises(InvalidInput, match="limit"):
                nx.list(limit)


def test_facade_refuses_100001_emails_at_once(quiet_rig: Cluster) -> None:
    nx = quiet_rig.nexus()
    emails = [f"user{i}@bulk.example" for i in range(LIMIT + 1)]
    with _nothing_happens(quiet_rig):
        started = time.monotonic()
        with pytest.raises(InvalidInput, match=f"has {LIMIT + 1} entries; the limit is {LIMIT}"):
            nx.request_for(emails=emails)
        assert time.monotonic() - started < 1.0  # counted before any address is validated
        with pytest.raises(InvalidInput, match="limit"):
            nx.submit(AuditRequest(AuditKind.BULK, emails))


# -- the CLI: real subprocesses ----------------------------------------------------------------------------------------

def _run_cli(cases: list[list[str]], env: dict[str, str],
             timeout: float = 60.0) -> list[subprocess.CompletedProcess[str]]:
    """Run every command line at once (each is a whole interpreter start); results in the same order."""
    procs = [subprocess.Popen([NEXUS, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in cases]
    done = []
    for args, proc in zip(cases, procs, strict=True):
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess([NEXUS, *args], proc.returncode, out, err))
    return done


def _cli_env(cluster: Cluster) -> dict[str, str]:
    return {**os.environ, **cluster.env, "COLUMNS": "200"}


def test_cli_refuses_hostile_input_with_exit_2_and_one_line(quiet_rig: Cluster, tmp_path: Path) -> None:
    big = tmp_path / "too-many.txt"
    big.write_text("\n".join(f"user{i}@bulk.example" for i in range(LIMIT + 1)) + "\n")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("email,name\nok@corp.example,Ok\n*)(mail=*,Hostile\n")
    not_utf8 = tmp_path / "latin1.txt"
    not_utf8.write_bytes("caf\xe9@corp.example\n".encode("latin-1"))
    cases: list[tuple[list[str], str]] = [
        (["audit", "submit", "--email", "*)(mail=*", "--wait"], NOT_AN_EMAIL),
        (["audit", "submit", "--email", f"{CYR_A}lice@corp.example", "--json"], NON_ASCII),
        (["audit", "submit", "--device", '"}) { x } #'], "is not a valid serial number"),
        (["audit", "submit", "--emails-file", str(big)], f"has {LIMIT + 1} entries; the limit is {LIMIT}"),
        (["audit", "status", "../../etc/passwd"], "is not an audit id"),
        (["audit", "result", UNKNOWN_ID, "--format", "xml"], "unknown format 'xml'"),
    ]
    in_process: list[tuple[list[str], str]] = [
        (["audit", "submit", "--email", "alice\uff20corp.example", "--wait"], NON_ASCII),
        (["audit", "submit", "--email", "ali\u200dce@corp.example", "--json"], NON_ASCII),
        (["audit", "submit", "--email", "' or 1 eq 1"], NOT_AN_EMAIL),
        (["audit", "submit", "--device", "*)(serialNumber=*"], "is not a valid serial number"),
        (["audit", "submit", "--email", "a@corp.example", "--device", "ABC123"], "exactly one"),
        (["audit", "submit", "--emails-file", str(mixed)], "entry 2"),
        (["audit", "submit", "--emails-file", str(not_utf8)], "is not UTF-8 text"),
        (["audit", "submit", "--emails-file", str(tmp_path / "missing.txt")], "does not exist"),
        (["audit", "status", UNKNOWN_ID], "no audit with id"),
        (["audit", "status", "g" * 32], "is not an audit id"),
        (["audit", "result", "..%2F..%2Fetc%2Fpasswd"], "is not an audit id"),
        (["audit", "result", UNKNOWN_ID], "no audit with id"),
    ]
    from nexus.cli import app

    with _nothing_happens(quiet_rig):
        for args, fragment in in_process:
            outcome = CliRunner().invoke(app, args)
            assert outcome.exit_code == 2, (args, outcome.output[-1000:])
            assert fragment in outcome.output and "Traceback" not in outcome.output, (args, outcome.output)
    with _nothing_happens(quiet_rig):
        results = _run_cli([args for args, _ in cases], _cli_env(quiet_rig))
    for (args, fragment), result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.returncode, result.stderr[-2000:])
        _one_line(result.stderr)
        assert result.stderr.startswith("nexus: error: ") and fragment in result.stderr, (args, result.stderr)
        assert result.stdout == "", (args, result.stdout)


def test_cli_every_hostile_email_in_process(quiet_rig: Cluster) -> None:
    """The whole list through the CLI's code (typer's runner: the same command, without 40 interpreter starts)."""
    from nexus.cli import app

    runner = CliRunner()
    with _nothing_happens(quiet_rig):
        for value, fragment in INVALID_EMAILS:
            if not isinstance(value, str) or "\x00" in value:  # argv cannot carry these: the facade tests do
                continue
            result = runner.invoke(app, ["audit", "submit", "--email", value])
            assert result.exit_code == 2, (value, result.output[-500:])
            assert fragment in result.output, (value, result.output)
            assert "Traceback" not in result.output


def test_cli_result_of_a_running_audit_is_exit_1_and_a_bad_format_exit_2(quiet_rig: Cluster) -> None:
    r = quiet_rig.redis()
    store = AuditStore(r, ttl_s=600)
    request = AuditRequest.user("running@corp.example")
    store.create(request)  # stored, never enqueued: it stays "running" for as long as this test needs
    store.set_status(request.audit_id, "running")
    try:
        json_run, xml = _run_cli([
            ["audit", "result", request.audit_id],
            ["audit", "result", request.audit_id, "--format", "xml"],
        ], _cli_env(quiet_rig))
        from nexus.cli import app

        csv_run = CliRunner().invoke(app, ["audit", "result", request.audit_id, "--format", "csv"])
        status = CliRunner().invoke(app, ["audit", "status", request.audit_id])
    finally:
        store.delete(request.audit_id)
    assert json_run.returncode == 1, json_run.stderr
    _one_line(json_run.stderr)
    assert f"audit {request.audit_id} is running; no report yet" in json_run.stderr and json_run.stdout == ""
    assert csv_run.exit_code == 1 and "is running; no report yet" in csv_run.output
    assert xml.returncode == 2 and "unknown format 'xml'; expected one of json, csv, md" in xml.stderr
    assert status.exit_code == 0 and "running" in status.output
    assert _recent(quiet_rig) == []


# -- MCP ---------------------------------------------------------------------------------------------------------------

def _mcp_calls(calls: list[tuple[str, dict[str, Any]]]) -> list[str | dict[str, Any]]:
    """Each tool call's ToolError message, or its structured result."""
    from nexus.mcp.server import build_server

    async def main() -> list[str | dict[str, Any]]:
        out: list[str | dict[str, Any]] = []
        async with Client(build_server()) as client:
            for tool, args in calls:
                try:
                    result = await client.call_tool(tool, args)
                except ToolError as exc:
                    out.append(str(exc))
                else:
                    out.append(dict(result.structured_content or {}))
        return out

    return anyio.run(main)


def test_mcp_refuses_hostile_input_with_a_tool_error(quiet_rig: Cluster) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [("audit_user_drift", {"email": v}) for v, _ in INVALID_EMAILS
                                               if isinstance(v, str) and len(v) < 1000]
    calls += [("audit_device_drift", {"serial": s}) for s in INVALID_SERIALS]
    calls += [("get_audit", {"audit_id": i}) for i in [*INVALID_IDS, UNKNOWN_ID]]
    calls += [("audit_bulk_user_drift", {"emails": ["ok@corp.example", "*)(uid=*"]}),
              ("audit_bulk_user_drift", {"emails": [f"user{i}@bulk.example" for i in range(LIMIT + 1)]}),
              ("audit_user_drift", {"email": "x" * 1_000_000}),
              ("audit_user_drift", {"email": ["a@corp.example"]}),
              ("list_audits", {"limit": 10**9})]
    with _nothing_happens(quiet_rig):
        results = _mcp_calls(calls)
    for (tool, args), result in zip(calls, results, strict=True):
        assert isinstance(result, str), (tool, str(args)[:80], result)
        _one_line(result)
        assert len(result) <= 300 and ("invalid input" in result or "no audit with id" in result), result


# -- valid but hostile-looking input: only ever a literal --------------------------------------------------------------

def _ldap_leaves(text: str) -> list[tuple[int, str, bytes]]:
    """(tag, attribute, wire value) of every assertion of a recorded LDAP filter (re-parsed by ldap3)."""
    leaves: list[tuple[int, str, bytes]] = []

    def walk(node: Any) -> None:
        if node.tag in (ROOT, AND, OR, NOT):
            for child in node.elements:
                walk(child)
            return
        ber = encoder.encode(compile_filter(node))
        element = element_at(ber, 0, len(ber))
        if node.tag == MATCH_EQUAL:
            desc, value = children(ber, element)[:2]
            leaves.append((node.tag, ber[desc.start:desc.end].decode(), ber[value.start:value.end]))
        else:
            leaves.append((node.tag, str(node.assertion.get("attr")), b""))

    walk(parse_filter(text, None, True, True, None, False))
    return leaves


def _check_people_lookups(cluster: Cluster, emails: list[str]) -> None:
    """Every lookup of these addresses reached Workday, AD and Entra as exact literals, and nothing broader did."""
    wanted = set(emails)
    # Workday: one report query per address, the address as the Email prompt.
    workday = [parse_qs(q["query"]) for q in _recent(cluster, "workday") if "customreport2" in q["path"]]
    assert {p["Email"][0] for p in workday} == set(emails) and len(workday) >= len(emails)
    # Entra: one $filter per address, exactly the three comparisons of find_user, the address as literals.
    entra = [parse_qs(q["query"]) for q in _recent(cluster, "entra") if q["path"] == "/v1.0/users"]
    filters = [odata.parse_filter(p["$filter"][0]) for p in entra]
    assert all("$filter" in p for p in entra)  # never an unfiltered listing
    # One filter per address (a lookup the loaded machine timed out is asked again by the retry: same filter).
    assert {repr(f) for f in filters} == {
        repr(odata.Or((odata.Compare("mail", "eq", e), odata.AnyEq("otherMails", e),
                       odata.Compare("userPrincipalName", "eq", e)))) for e in emails}
    assert len(filters) >= len(emails)
    # AD: equality assertions only, the address as the exact wire value, nothing matching a pattern.
    searches = [q["query"] for q in _recent(cluster, "ad") if q["path"] == "search"]
    assert searches
    seen: set[str] = set()
    for text in searches:
        for tag, attr, value in _ldap_leaves(text):
            assert tag == MATCH_EQUAL, (text, attr)  # no substring or presence assertion anywhere
            if attr in ("mail", "userPrincipalName", "proxyAddresses"):
                address = value.decode().removeprefix("smtp:")
                assert address in wanted, text
                seen.add(address)
    assert seen == wanted


def test_valid_hostile_emails_reach_every_system_only_as_literals(quiet_rig: Cluster) -> None:
    nx = quiet_rig.nexus()
    view = nx.wait(nx.submit(nx.request_for(emails=HOSTILE_VALID)), timeout=WAIT)
    assert view["status"] == "done", view
    report = view["report"]
    assert report["systems_failed"] == [] and report["people"] == len(HOSTILE_VALID)
    for entry in report["entries"]:
        assert (entry["workday_found"], entry["ad_found"], entry["entra_found"]) == (False, False, False), entry
    _check_people_lookups(quiet_rig, HOSTILE_VALID)


def test_valid_hostile_email_through_the_cli_and_mcp(quiet_rig: Cluster) -> None:
    import json

    cli_email, mcp_email = "o'brien+x@corp.example", "a*b{1}@corp.example"
    (result,) = _run_cli([["audit", "submit", "--email", cli_email, "--wait", "--timeout", "60", "--json"]],
                         _cli_env(quiet_rig))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)["report"]
    assert (report["email"], report["ad_found"], report["entra_found"], report["workday_found"]) == (
        cli_email, False, False, False)
    (view,) = _mcp_calls([("audit_user_drift", {"email": mcp_email, "wait_s": 30})])
    assert isinstance(view, dict) and view["status"] == "done", view
    assert view["report"]["ad_found"] is False
    _check_people_lookups(quiet_rig, [cli_email, mcp_email])


def test_a_device_audit_sends_its_serial_only_as_a_literal_or_a_variable(quiet_rig: Cluster) -> None:
    import json

    serial = "ZZ-NOPE-0001"
    nx = quiet_rig.nexus()
    view = nx.wait(nx.submit(nx.request_for(serial=serial)), timeout=WAIT)
    assert view["status"] == "done" and view["report"]["systems_failed"] == []
    helix = [parse_qs(q["query"]).get("q", [""])[0] for q in _recent(quiet_rig, "helix") if "entry" in q["path"]]
    assert helix and all(parse_qualification(q) == Compare("=", FieldRef("Serial Number"), Literal(serial))
                         for q in helix), helix
    intune = [parse_qs(q["query"])["$filter"][0] for q in _recent(quiet_rig, "intune")
              if "managedDevices" in q["path"]]
    # (a lookup the loaded machine timed out is asked again by the retry: the same literal, never anything broader)
    assert intune and all(odata.parse_filter(f) == odata.Compare("serialNumber", "eq", serial) for f in intune)
    from clients.lansweeper import ASSETS_QUERY

    bodies = [json.loads(q["query"]) for q in _recent(quiet_rig, "lansweeper") if q["query"].startswith("{")]
    assert bodies and all(b["query"] == ASSETS_QUERY for b in bodies)
    assert all(b["variables"]["filters"]["conditions"] ==
               [{"operator": "EQUAL", "path": "assetCustom.serialNumber", "value": serial}] for b in bodies)


# -- 100,000 emails: accepted as one audit, planned in a bounded window (private Redis, no workers) --------------------

#: An audit with nothing configured is refused at submit (nexus.errors.NotConfigured); nothing is dialled here.
ONE_SYSTEM_CONFIGURED = {"HELIX_USERNAME": "svc", "HELIX_PASSWORD": "pw", "HELIX_BASE_URL": "http://127.0.0.1:9"}


@contextlib.contextmanager
def _pointed_at(url: str, extra: dict[str, str]) -> Iterator[None]:
    """This process's facade, Redis client and Celery producer on ``url`` for the block (then back)."""
    from nexus import runtime
    from nexus.settings import get_settings
    from workers.app import celery_app
    from workers.config import celery_config

    values = {"REDIS_URL": url, **extra}
    saved = {k: os.environ.get(k) for k in values}

    def apply() -> None:
        get_settings.cache_clear()
        runtime.reset()
        celery_app.conf.update(celery_config(get_settings()))
        repoint_celery_app()

    os.environ.update(values)
    apply()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        apply()


@pytest.fixture(scope="module")
def idle_redis() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_100000_emails_are_one_audit_and_planning_dispatches_only_the_window(idle_redis: str,
                                                                              tmp_path: Path) -> None:
    from nexus.facade import Nexus
    from tasks.audit import plan_audit

    r = redis.Redis.from_url(idle_redis)
    r.flushdb()
    emails = [f"user{i}@bulk.example" for i in range(LIMIT)]
    window, chunk = 8, 25
    with _pointed_at(idle_redis, {"NEXUS_BULK_WINDOW": str(window), "NEXUS_BULK_CHUNK_SIZE": str(chunk),
                                  "NEXUS_BULK_MAX_EMAILS": str(LIMIT), **ONE_SYSTEM_CONFIGURED}):
        nx = Nexus()
        started = time.monotonic()
        audit_id = nx.submit(nx.request_for(emails=emails))
        assert time.monotonic() - started < 20.0
        meta = nx.store.meta(audit_id)
        assert (meta["kind"], meta["subjects_count"], meta["status"]) == ("bulk", LIMIT, "queued")
        assert r.llen(nx.store.key(audit_id, "subjects")) == LIMIT
        assert {q: r.llen(q) for q in ALL_QUEUES if r.llen(q)} == {"audit": 1}  # one small message, no subjects
        assert len(r.lindex("audit", 0) or b"") < 4096

        plan_audit.apply(args=[audit_id])  # the planner's body, here: it dispatches into the (idle) broker
        queued = {q: r.llen(q) for q in ALL_QUEUES if r.llen(q)}
        assert queued == {"audit": 1, "workday": window, "ad": window, "entra": window}
        assert sorted(int(k.rsplit(b":", 1)[1]) for k in r.scan_iter(f"nexus:audit:{audit_id}:dispatched:*")) == \
            list(range(window))
        assert nx.get(audit_id, include_report=False)["status"] == "running"

    # The CLI accepts the same 100,000 from a file: one more audit, one more message.
    listing = tmp_path / "100k.txt"
    listing.write_text("\n".join(emails) + "\n")
    env = {**os.environ, "REDIS_URL": idle_redis, "NEXUS_BULK_MAX_EMAILS": str(LIMIT), **ONE_SYSTEM_CONFIGURED}
    (result,) = _run_cli([["audit", "submit", "--emails-file", str(listing), "--json"]], env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert r.zcard("nexus:audits") == 2 and r.llen("audit") == 2
    r.flushdb()
    r.close()
