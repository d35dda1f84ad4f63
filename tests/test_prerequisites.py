"""`make test` on a fresh machine: scripts/test-prerequisites.sh names (or, as root, installs) the Debian packages the
suite needs instead of letting some 300 tests error because slapd is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "test-prerequisites.sh"


def _bare_path(tmp_path: Path, uid: int) -> dict[str, str]:
    """A PATH with a shell and an ``id`` that says ``uid``, and nothing the suite needs."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "bash").symlink_to("/bin/bash")
    fake_id = bindir / "id"
    fake_id.write_text(f"#!/bin/bash\necho {uid}\n")
    fake_id.chmod(0o755)
    empty = tmp_path / "empty"
    empty.mkdir()
    return {"PATH": str(bindir), "NEXUS_SBIN": str(empty), "NEXUS_CHROMIUM": str(empty / "chromium"),
            "NEXUS_CHROMEDRIVER": str(empty / "chromedriver"), "HOME": str(tmp_path)}


def test_a_user_without_the_packages_gets_the_one_apt_get_line(tmp_path: Path) -> None:
    done = subprocess.run(["/bin/bash", str(SCRIPT)], env=_bare_path(tmp_path, 1000), capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "sudo apt-get install -y redis-server slapd ldap-utils samba chromium chromium-driver" in done.stderr
    assert done.stdout == ""


def test_nothing_missing_is_silent_success() -> None:
    done = subprocess.run(["/bin/bash", str(SCRIPT)], env={**os.environ}, capture_output=True, text=True,
                          timeout=30, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_make_test_and_ci_run_use_it() -> None:
    root = SCRIPT.parent.parent
    makefile = (root / "Makefile").read_text()
    assert "test: setup prerequisites" in makefile and "scripts/test-prerequisites.sh" in makefile
    assert "scripts/test-prerequisites.sh" in (root / ".ci" / "run").read_text()
