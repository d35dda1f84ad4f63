"""Flower, the Celery dashboard, always behind HTTP basic auth (``nexus flower``, ``make flower``).

``nexus flower`` is ``celery -A workers.app flower --basic-auth=USER:PASSWORD --address=... --port=...`` with the
credentials from ``NEXUS_FLOWER_USER`` / ``NEXUS_FLOWER_PASSWORD``, handed to Flower through its own
``FLOWER_BASIC_AUTH`` environment variable rather than the command line, so the password does not show in ``ps``.
Without a password it generates one for this run and prints it to stderr: Flower never starts open.
``FLOWER_UNAUTHENTICATED_API`` (which would open ``/api/*``) is removed from the environment. Flower itself leaves
``/healthcheck`` and ``/metrics`` open.

What Flower shows of a task is its name, its arguments and its result. Nexus tasks carry ids, operation names,
subjects (emails, serials) and fetched records, never a credential: clients read credentials from settings inside
the worker (``tests/test_flower.py`` checks every task Flower lists against the configured secrets).

A fetch or snapshot that could not read its system RETURNS a failure marker (the chord must get it), which Celery
calls a success. Flower still shows it as it is: ``FAILURE``, with the system's reason as its exception, counted in
the dashboard's "Failed" (the worker sends ``task-failed`` for it, see :mod:`workers.outcome_events`).
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from typing import TextIO

from nexus.settings import Settings, get_settings

BASIC_AUTH_ENV = "FLOWER_BASIC_AUTH"
UNAUTHENTICATED_ENV = "FLOWER_UNAUTHENTICATED_API"


@dataclass(frozen=True)
class FlowerCredentials:
    user: str
    password: str
    generated: bool

    @property
    def basic_auth(self) -> str:
        return f"{self.user}:{self.password}"


def flower_credentials(settings: Settings, token: str | None = None) -> FlowerCredentials:
    """The configured credentials, or the user with a fresh random password. ValueError if Flower cannot use them.

    Flower splits ``--basic-auth`` on commas (several users), and basic auth splits the user from the password
    at the first colon: so no comma anywhere and no colon in the user name.
    """
    user = settings.flower_user.strip()
    password = settings.flower_password.get_secret_value()
    if not user or ":" in user or "," in user:
        raise ValueError("NEXUS_FLOWER_USER must be non-empty, without ':' or ','")
    if "," in password:
        raise ValueError("NEXUS_FLOWER_PASSWORD must not contain ',' (Flower reads commas as separate users)")
    if password:
        return FlowerCredentials(user, password, generated=False)
    return FlowerCredentials(user, token or secrets.token_urlsafe(18), generated=True)


def flower_argv(address: str, port: int) -> list[str]:
    return ["flower", f"--address={address}", f"--port={port}"]


def prepare_environment(creds: FlowerCredentials, environ: dict[str, str] | os._Environ[str]) -> None:
    """Basic auth for Flower through its environment variable; never an unauthenticated API."""
    environ[BASIC_AUTH_ENV] = creds.basic_auth
    environ.pop(UNAUTHENTICATED_ENV, None)


def run_flower(address: str | None = None, port: int | None = None, stderr: TextIO = sys.stderr) -> None:
    """Run Flower in this process until it is stopped. ValueError for unusable credentials."""
    from workers.app import celery_app

    settings = get_settings()
    creds = flower_credentials(settings)
    bind = address or settings.flower_address
    listen = port or settings.flower_port
    if creds.generated:
        print(f"nexus flower: NEXUS_FLOWER_PASSWORD is not set; generated a password for this run: "
              f"user {creds.user!r} password {creds.password!r}", file=stderr, flush=True)
    print(f"nexus flower: http://{bind}:{listen}/ (basic auth, user {creds.user!r})", file=stderr, flush=True)
    prepare_environment(creds, os.environ)
    celery_app.start(flower_argv(bind, listen))
