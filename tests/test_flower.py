"""Flower with basic auth, watched the way an operator would: over HTTP and in a real headless Chromium.

The session's cluster (Redis, simulators, worker processes: tests/conftest.py) and `nexus flower` as a subprocess;
one user audit runs while Flower listens. The browser test needs Debian's ``chromium`` and ``chromium-driver``
(``.ci/run`` installs them): it fails, never skips, when they are missing. Its screenshots are kept in
``artifacts/flower-tasks.png`` (the task list) and ``artifacts/flower-task.png`` (one fetch, with its arguments).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from nexus.settings import Settings
from nexus.testing.browser import headless_chrome, missing_browser
from nexus.testing.cluster import Cluster
from nexus.testing.redis_server import free_port
from workers.flower import BASIC_AUTH_ENV, UNAUTHENTICATED_ENV, flower_credentials, run_flower

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
TASK_EVENTS_ON = "Events of group {task} enabled by remote"  # celery/worker/control.py
USER_FETCHES = {"nexus.fetch_workday", "nexus.fetch_ad", "nexus.fetch_entra"}


# -- credentials (no processes) -----------------------------------------------------------------------------------
def _settings(**env: str) -> Settings:
    return Settings(**env)  # type: ignore[arg-type]


def test_credentials_come_from_settings_or_a_generated_password() -> None:
    given = flower_credentials(_settings(NEXUS_FLOWER_USER="ops", NEXUS_FLOWER_PASSWORD="s3cret-pass"))
    assert (given.user, given.password, given.generated) == ("ops", "s3cret-pass", False)
    made = flower_credentials(_settings(NEXUS_FLOWER_PASSWORD=""))
    assert made.user == "nexus" and made.generated and len(made.password) >= 20
    assert flower_credentials(_settings()).password != made.password


@pytest.mark.parametrize(("env", "message"), [
    ({"NEXUS_FLOWER_PASSWORD": "a,b"}, "must not contain ','"),
    ({"NEXUS_FLOWER_USER": "a:b"}, "NEXUS_FLOWER_USER"),
    ({"NEXUS_FLOWER_USER": " "}, "NEXUS_FLOWER_USER"),
])
def test_unusable_credentials_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        flower_credentials(_settings(**env))


def test_run_flower_passes_auth_by_environment_and_prints_a_generated_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus.settings import get_settings
    from workers.app import celery_app

    started: list[list[str]] = []
    monkeypatch.setattr(celery_app, "start", lambda argv: started.append(argv))
    monkeypatch.setenv("NEXUS_FLOWER_PASSWORD", "")
    monkeypatch.setenv(UNAUTHENTICATED_ENV, "true")
    monkeypatch.delenv(BASIC_AUTH_ENV, raising=False)
    get_settings.cache_clear()
    err = io.StringIO()
    try:
        run_flower(address="127.0.0.1", port=5599, stderr=err)
        auth = os.environ[BASIC_AUTH_ENV]
        assert UNAUTHENTICATED_ENV not in os.environ
    finally:
        os.environ.pop(BASIC_AUTH_ENV, None)
        get_settings.cache_clear()
    assert started == [["flower", "--address=127.0.0.1", "--port=5599"]]  # no password on the command line
    user, password = auth.split(":", 1)
    assert user == "nexus" and f"password {password!r}" in err.getvalue()


def test_nexus_flower_refuses_bad_credentials_with_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "NEXUS_FLOWER_PASSWORD": "has,comma"}
    env.pop("NEXUS_ENV_FILE", None)
    done = subprocess.run([sys.executable, "-m", "nexus.cli", "flower", "--port", str(free_port())], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "NEXUS_FLOWER_PASSWORD must not contain ','" in done.stderr


# -- Flower against a running cluster -----------------------------------------------------------------------------
@dataclass
class FlowerRig:
    cluster: Cluster
    url: str
    user: str
    password: str
    audit_id: str
    email: str
    log_path: Path

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.password)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10, **kw)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tasks(self) -> dict[str, dict[str, Any]]:
        response = self.get("/api/tasks", auth=self.auth)
        response.raise_for_status()
        return dict(response.json())

    def audit_tasks(self) -> dict[str, dict[str, Any]]:
        return {tid: t for tid, t in self.tasks().items() if self.audit_id in (t.get("args") or "")}


def _wait(predicate: Any, timeout: float, what: str, log: Any = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            value = predicate()
            if value:
                return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{log()[-3000:]}")


@pytest.fixture(scope="module")
def flower_rig(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowerRig]:
    """`nexus flower` on the session's cluster (tests/conftest.py), and one user audit run while it listens."""
    workdir = tmp_path_factory.mktemp("flower")
    cluster.reset()
    port, user, password = free_port(), "ops", secrets.token_urlsafe(12)
    env = {**os.environ, **cluster.env, "NEXUS_FLOWER_USER": user, "NEXUS_FLOWER_PASSWORD": password,
           "PYTHONUNBUFFERED": "1"}
    env.pop("NEXUS_ENV_FILE", None)
    log_path = workdir / "flower.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "flower", "--address", "127.0.0.1",
                                 "--port", str(port)], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def read_log() -> str:
        return log_path.read_text(errors="replace")

    try:
        _wait(lambda: httpx.get(f"{url}/healthcheck", timeout=2).text == "OK", 60, "Flower to answer", read_log)
        # Flower only shows tasks whose events it received. Workers send task events only once told to
        # (workers/config.py): Flower broadcasts `enable_events` every 5 s. Wait until it hears the workers'
        # heartbeats and every worker has logged that Flower switched its task events on.
        _wait(lambda: httpx.get(f"{url}/workers?json=1", auth=(user, password), timeout=5).json()["data"], 30,
              "Flower to receive the workers' events", read_log)
        _wait(lambda: all(TASK_EVENTS_ON in w.log() for w in cluster.workers if w.proc.poll() is None), 30,
              "Flower to switch the workers' task events on", cluster.worker_logs)
        assert cluster.stack.org is not None
        email = cluster.stack.org.workday[0].email
        cluster.activate()  # module fixtures run without the session cluster's environment (tests/conftest.py)
        try:
            nx = cluster.nexus()
            audit_id = nx.submit(nx.request_for(email=email))
            view = nx.wait(audit_id, timeout=90)
        finally:
            cluster.deactivate()
        assert view["status"] == "done", view
        yield FlowerRig(cluster, url, user, password, audit_id, email, log_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.mark.integration
def test_flower_is_closed_without_the_right_basic_auth(flower_rig: FlowerRig) -> None:
    for path in ("/", "/tasks", "/api/tasks", "/api/workers"):
        assert flower_rig.get(path).status_code == 401, path
        assert flower_rig.get(path, auth=(flower_rig.user, "wrong")).status_code == 401, path
    assert flower_rig.get("/", auth=flower_rig.auth).status_code == 200
    assert flower_rig.get("/healthcheck").text == "OK"  # Flower leaves its health check open
    assert flower_rig.password not in flower_rig.log()


@pytest.mark.integration
def test_api_lists_the_audit_tasks_with_readable_args_and_no_secret(flower_rig: FlowerRig) -> None:
    names = USER_FETCHES | {"nexus.audit.plan", "nexus.compare.people"}
    tasks = _wait(lambda: (t := flower_rig.audit_tasks()) and names <= {x["name"] for x in t.values()} and t, 30,
                  f"Flower to list {sorted(names)} for audit {flower_rig.audit_id}", flower_rig.log)
    for task in tasks.values():
        assert task["state"] == "SUCCESS", task
    fetches = [t for t in tasks.values() if t["name"] in USER_FETCHES]
    assert len(fetches) == len(USER_FETCHES)
    for fetch in fetches:  # readable: audit id, operation, subjects
        assert fetch["args"] == f"('{flower_rig.audit_id}', 'people', ['{flower_rig.email}'])", fetch["args"]
    secret_values = [*flower_rig.cluster.stack.secrets(), flower_rig.password]
    everything = json.dumps(flower_rig.tasks())
    leaked = [s for s in secret_values if s and s in everything]
    assert not leaked, "a credential shows in Flower's task list"


def _chrome(user_data_dir: Path) -> Any:
    missing = missing_browser()
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; .ci/run does it)")
    return headless_chrome(user_data_dir)


@pytest.mark.integration
def test_dashboard_shows_the_audit_tasks_in_headless_chromium(flower_rig: FlowerRig, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chrome(tmp_path / "chrome-profile")
    try:
        # Basic auth on every request the page makes (the page and its XHRs), as a browser sends it after a login.
        token = base64.b64encode(f"{flower_rig.user}:{flower_rig.password}".encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        driver.get(f"{flower_rig.url}/tasks")
        wait = WebDriverWait(driver, 30)
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#tasks-table tbody tr")))
        wait.until(lambda d: all(name in d.find_element(By.ID, "tasks-table").text for name in USER_FETCHES))
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "flower-tasks.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        # An operator opens the Workday fetch: its page shows the arguments (audit id, operation, subjects).
        row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#tasks-table tbody tr")
                   if "nexus.fetch_workday" in r.text)
        row.find_element(By.CSS_SELECTOR, "a[href*='/task/']").click()
        wait.until(lambda d: flower_rig.audit_id in d.find_element(By.TAG_NAME, "body").text)
        page = driver.find_element(By.TAG_NAME, "body").text
        assert flower_rig.email in page and "nexus.fetch_workday" in page
        assert not [v for v in flower_rig.cluster.stack.secrets() if v in driver.page_source]
        assert driver.save_screenshot(str(ARTIFACTS / "flower-task.png"))
        # And the browser is refused without the header.
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        driver.get(f"{flower_rig.url}/api/tasks")
        assert "401" in driver.page_source or "Unauthorized" in driver.page_source
    finally:
        driver.quit()
    shutil.rmtree(tmp_path / "chrome-profile", ignore_errors=True)


def _failed_counts(rig: FlowerRig) -> dict[str, int]:
    """The dashboard's "Failed" column: Flower counts the ``task-failed`` events of each worker."""
    rows = rig.get("/workers?json=1", auth=rig.auth).json()["data"]
    return {row["hostname"]: int(row.get("task-failed", 0)) for row in rows}


@pytest.mark.integration
def test_a_fetch_that_returned_a_failure_marker_shows_as_failed(flower_rig: FlowerRig, rig: Cluster) -> None:
    """Workday down: its fetch returns a failure marker (the chord still gets it and the audit finishes), and
    Flower lists that fetch as FAILURE with the system's error and counts it on the dashboard's "Failed"."""
    before = _failed_counts(flower_rig)
    rig.fault("workday", "down")
    nx = rig.nexus()
    audit_id = nx.submit(nx.request_for(email=flower_rig.email))
    view = nx.wait(audit_id, timeout=90)
    assert view["status"] == "done", view  # the chord body ran on the marker
    assert view["report"]["systems_failed"] == ["Workday"], view["report"]

    names = USER_FETCHES | {"nexus.compare.people"}

    def listed() -> dict[str, dict[str, Any]]:
        tasks = {t["name"]: t for t in flower_rig.tasks().values() if audit_id in (t.get("args") or "")}
        done = names <= set(tasks) and all(tasks[n]["state"] in ("SUCCESS", "FAILURE") for n in names)
        return tasks if done else {}

    tasks = _wait(listed, 30, f"Flower to list the finished tasks of audit {audit_id}", flower_rig.log)
    workday = tasks["nexus.fetch_workday"]
    assert workday["state"] == "FAILURE", workday
    assert "Workday" in (workday.get("exception") or ""), workday
    assert "'ok': False" in (workday.get("result") or ""), workday  # the marker the chord received
    for name in names - {"nexus.fetch_workday"}:
        assert tasks[name]["state"] == "SUCCESS", tasks[name]
    failed = flower_rig.get("/api/tasks", params={"state": "FAILURE"}, auth=flower_rig.auth).json()
    assert workday["uuid"] in failed
    after = _wait(lambda: (c := _failed_counts(flower_rig)) and sum(c.values()) > sum(before.values()) and c, 15,
                  "the dashboard's Failed count to rise", flower_rig.log)
    assert sum(after.values()) - sum(before.values()) == 1, (before, after)
