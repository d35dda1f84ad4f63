"""`nexus worker` refuses to start where the working directory would shadow the installed tasks/clients/workers.

Celery puts the working directory first on ``sys.path``; a local ``tasks`` package would silently replace Nexus's.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nexus.cli.shadow import SHADOWABLE, shadowing_problem

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("nexus")
LAUNCHERS = {"python -m nexus.cli": [sys.executable, "-m", "nexus.cli"]}
if SCRIPT.is_file():
    LAUNCHERS["console script"] = [str(SCRIPT)]


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_worker_refuses_a_local_tasks_package_with_one_line_and_exit_2(tmp_path: Path, launcher: str) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("raise SystemExit('the local tasks package was imported')\n")
    proc = subprocess.run([*LAUNCHERS[launcher], "worker"], cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected ONE line on stderr, got: {proc.stderr!r}"
    assert lines[0].startswith("nexus: error: ")
    assert f"{tmp_path.resolve() / 'tasks'} would shadow the installed 'tasks'" in lines[0]
    assert "working directory" in lines[0]
    assert proc.stdout == ""


def test_a_neutral_directory_passes(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "notes.py").write_text("")
    assert shadowing_problem(tmp_path) is None


@pytest.mark.parametrize("name", SHADOWABLE)
def test_a_local_module_file_is_refused_too(tmp_path: Path, name: str) -> None:
    (tmp_path / f"{name}.py").write_text("")
    problem = shadowing_problem(tmp_path)
    assert problem is not None and f"{tmp_path.resolve() / name}.py would shadow the installed {name!r}" in problem


def test_a_directory_without_init_shadows_nothing(tmp_path: Path) -> None:
    """A namespace package never wins over a regular package later on the path."""
    for name in SHADOWABLE:
        (tmp_path / name).mkdir()
    assert shadowing_problem(tmp_path) is None


def test_the_shadow_is_found_even_when_the_directory_is_already_on_sys_path(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    problem = shadowing_problem()
    assert problem is not None and "installed 'workers'" in problem


def test_the_projects_own_checkout_passes() -> None:
    spec = importlib.util.find_spec("tasks")
    if spec is None or spec.origin is None or Path(spec.origin).resolve().parent.parent != ROOT:
        if os.environ.get("CI") == "true":  # .ci/run installs this checkout editable: anything else is a failure
            pytest.fail(f"tasks is imported from {spec.origin if spec else None}, not from this checkout")
        pytest.skip("not an editable install of this checkout")
    assert shadowing_problem(ROOT) is None
