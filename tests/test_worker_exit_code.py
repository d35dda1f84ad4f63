"""`nexus worker --queues ...` exits with its Celery worker's exit code (issue 10, item 7 follow-up).

Celery's ``app.worker_main()``/``app.start()`` drop the code that ``celery worker`` exits with, so a worker that
stopped on "Unrecoverable error" (exit code 1) exited 0: ``Restart=on-failure`` never fired and the supervisor of the
default group logged "exited 0". In process, with Celery's own CLI and a stand-in for its ``WorkController``.
"""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from nexus.cli import app
from workers.app import celery_app


class FakeWorker:
    """Celery's WorkController as far as `celery worker` uses it: built, started, and then its ``exitcode``."""

    code: int | None = None
    started: list[dict[str, Any]] = []

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.exitcode: int | None = None

    def start(self) -> None:
        FakeWorker.started.append(self.options)
        self.exitcode = FakeWorker.code  # Celery: 1 after "Unrecoverable error", 0 after a warm shutdown


@pytest.mark.parametrize(("code", "expected"), [(1, 1), (0, 0), (None, 0)])
def test_the_worker_exit_code_is_the_celery_workers(monkeypatch: pytest.MonkeyPatch, code: int | None,
                                                    expected: int) -> None:
    monkeypatch.setattr(celery_app, "Worker", FakeWorker)
    monkeypatch.setattr(FakeWorker, "code", code)
    monkeypatch.setattr(FakeWorker, "started", [])
    monkeypatch.setenv("NEXUS_METRICS_PORT", "0")
    done = CliRunner().invoke(app, ["worker", "--queues", "workday", "--pool", "solo"])
    assert len(FakeWorker.started) == 1, done.output
    assert "workday" in str(FakeWorker.started[0].get("queues")), FakeWorker.started
    assert done.exit_code == expected, (done.output, done.exception)
