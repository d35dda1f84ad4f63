"""The `nexus` console script (typer). Exit codes: 0 finished, 1 the audit or a service failed, 2 bad input or usage,
124 `--wait` timed out. `--json` prints one JSON document on stdout; progress and logs go to stderr.

One module per group of commands: :mod:`~nexus.cli.app` (the root app and its global options), ``audit``/``diff``,
``waiver``, ``sim``, ``worker`` (with the shadowing check of :mod:`~nexus.cli.shadow`), ``services`` (mcp, beat,
flower), ``health`` and ``demo``. ``pyproject.toml`` points the console script at :func:`main`.
"""

from nexus.cli.app import app, main

__all__ = ["app", "main"]
