"""Refuse to run Celery where the working directory would shadow Nexus's own top-level packages.

Celery puts the working directory first on ``sys.path`` while it imports the app and its task modules
(``celery.utils.imports.cwd_in_path``), and ``python -m`` does the same for the whole process. A ``tasks``,
``clients`` or ``workers`` package (or module) in that directory would then be imported instead of the installed
one, and the worker would register someone else's tasks or fail deep inside an import. The check compares, for each
name, what the working directory offers with what the interpreter finds without it. Running from the project's own
checkout (an editable install: both are the same files) passes.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

SHADOWABLE = ("tasks", "clients", "workers")


def _same_dir(entry: str, cwd: Path) -> bool:
    try:
        return Path(entry or os.curdir).resolve() == cwd
    except OSError:
        return False


def _location(spec: ModuleSpec | None) -> Path | None:
    """The file a spec loads (a package's ``__init__``), or None for no spec or a namespace package (which never
    wins over a regular package found later on the path, so it shadows nothing)."""
    if spec is None or not spec.has_location or spec.origin is None:
        return None
    return Path(spec.origin).resolve()


def installed_location(name: str, cwd: Path) -> Path | None:
    """Where ``import name`` would load from if the working directory were not on ``sys.path``.

    Walks ``sys.meta_path`` like the import system (the editable-install finder included), giving the path-based
    finder ``sys.path`` without the working directory; ``sys.modules`` is not consulted, so a module already
    imported from the working directory does not hide the installed one.
    """
    path = [entry for entry in sys.path if not _same_dir(entry, cwd)]
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            if finder is importlib.machinery.PathFinder:
                spec = importlib.machinery.PathFinder.find_spec(name, path)
            else:
                spec = find_spec(name, None)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            return _location(spec)
    return None


def shadowing_problem(cwd: Path | None = None, names: tuple[str, ...] = SHADOWABLE) -> str | None:
    """One line saying which local package would shadow which installed one, or None when nothing does."""
    try:
        cwd = (cwd or Path.cwd()).resolve()
    except OSError:  # the working directory was removed: nothing in it can shadow anything
        return None
    for name in names:
        local = _location(importlib.machinery.PathFinder.find_spec(name, [str(cwd)]))
        if local is None:
            continue
        installed = installed_location(name, cwd)
        if installed is None or installed == local:
            continue  # nothing installed to shadow, or the project's own checkout (editable install)
        shown = local.parent if local.name == "__init__.py" else local
        real = installed.parent if installed.name == "__init__.py" else installed
        return (f"{shown} would shadow the installed {name!r} ({real}): Celery imports from the working directory "
                f"first; run `nexus worker` from another directory")
    return None
