"""`nexus audit submit --emails-file PATH` refuses a path that is not a readable file with one line naming why
(exit 2), before anything is enqueued. In-process (CliRunner): no Redis is touched."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from nexus.cli import app
from nexus.cli.common import EXIT_USAGE


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected ONE line, got: {output!r}"
    return lines[0]


def _submit(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "submit", "--emails-file", str(path)])
    return result.exit_code, _one_error_line(result.output)


def test_a_directory_is_a_directory(tmp_path: Path) -> None:
    code, line = _submit(tmp_path)
    assert code == EXIT_USAGE
    assert line == f"nexus: error: emails file {tmp_path} is a directory", line


def test_a_missing_file_does_not_exist(tmp_path: Path) -> None:
    code, line = _submit(tmp_path / "absent.txt")
    assert code == EXIT_USAGE and line.endswith(f"emails file {tmp_path / 'absent.txt'} does not exist"), line


def test_a_special_file_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, line = _submit(fifo)
    assert code == EXIT_USAGE and line.endswith(f"emails file {fifo} is not a regular file"), line
