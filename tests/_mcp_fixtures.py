"""Shared by the MCP tests (in process and end to end): the pinned tool surface, bad inputs, report checks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from nexus.drift.fields import DEVICE_FIELDS, PERSON_FIELDS, POLICY

TOOL_NAMES = {"audit_user_drift", "audit_device_drift", "audit_bulk_user_drift", "audit_fleet_drift", "get_audit",
              "list_audits", "check_system_health"}

# tool -> (required, {property: {schema keys that must be present with these values}})
INPUT_SCHEMAS: dict[str, tuple[list[str], dict[str, dict[str, Any]]]] = {
    "audit_user_drift": (["email"], {"email": {"type": "string", "maxLength": 254},
                                     "wait_s": {"type": "number", "minimum": 0, "maximum": 30, "default": 0}}),
    "audit_device_drift": (["serial"], {"serial": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9-]{2,49}$"},
                                        "wait_s": {"type": "number", "minimum": 0, "maximum": 30}}),
    "audit_bulk_user_drift": (["emails"], {"emails": {"type": "array", "minItems": 1},
                                           "wait_s": {"type": "number", "maximum": 30}}),
    "audit_fleet_drift": ([], {"wait_s": {"type": "number", "maximum": 30}}),
    "get_audit": (["audit_id"], {"audit_id": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
                                 "max_entries": {"type": "integer", "minimum": 0, "default": 100}}),
    "list_audits": ([], {"limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}),
    "check_system_health": ([], {}),
}

VIEW_KEYS = {"audit_id", "kind", "status", "finished", "description", "created_at", "updated_at", "progress", "error",
             "report", "omitted", "next_step"}
USER_REPORT_KEYS = {"email", "systems_checked", "systems_available", "systems_failed", "workday_found", "ad_found",
                    "entra_found", "discrepancy_count", "discrepancies", "errors"}
DEVICE_REPORT_KEYS = {"serial", "systems_checked", "systems_available", "systems_failed", "intune_found",
                      "lansweeper_found", "helix_found", "fedex_found", "discrepancy_count", "discrepancies", "errors"}
DISCREPANCY_KEYS = {"field", "system_a", "value_a", "system_b", "value_b", "severity"}

CYRILLIC_A = "\u0430"

# (tool, arguments, a fragment the one-line error must contain)
BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("audit_user_drift", {"email": "not-an-email"}, "is not a valid email address"),
    ("audit_user_drift", {"email": "*)(mail=*"}, "is not a valid email address"),
    ("audit_user_drift", {"email": f"{CYRILLIC_A}lice@corp.example"}, "non-ASCII"),
    ("audit_user_drift", {"email": "x" * 250 + "@corp.example"}, "longer than 254"),
    ("audit_user_drift", {}, "email is required"),
    ("audit_user_drift", {"email": "a@corp.example", "wait_s": 31}, "wait_s"),
    ("audit_user_drift", {"email": "a@corp.example", "extra": 1}, "unknown argument"),
    ("audit_bulk_user_drift", {"emails": []}, "the email list is empty"),
    ("audit_bulk_user_drift", {"emails": ["ok@corp.example", "*)(uid=*"]}, "entry 2"),
    ("audit_device_drift", {"serial": "AB"}, "is not a valid serial number"),
    ("audit_device_drift", {"serial": "*)(serialNumber=*"}, "is not a valid serial number"),
    ("get_audit", {"audit_id": "not-hex"}, "is not an audit id"),
    ("get_audit", {"audit_id": "g" * 32}, "is not an audit id"),
    ("list_audits", {"limit": 0}, "limit"),
]


@contextlib.contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (and drop the cached settings) for the block; restore them after."""
    from nexus.settings import get_settings

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def assert_input_schemas(schemas: dict[str, dict[str, Any]], max_emails: int) -> None:
    assert set(schemas) == TOOL_NAMES
    for name, (required, props) in INPUT_SCHEMAS.items():
        schema = schemas[name]
        assert schema["type"] == "object"
        assert sorted(schema.get("required", [])) == sorted(required), name
        assert set(schema["properties"]) == set(props), name
        for prop, expected in props.items():
            got = schema["properties"][prop]
            assert {k: got.get(k) for k in expected} == expected, (name, prop, got)
    email = schemas["audit_user_drift"]["properties"]["email"]
    assert email["pattern"].startswith("^") and "@" in email["pattern"]
    items = schemas["audit_bulk_user_drift"]["properties"]["emails"]
    assert items["maxItems"] == max_emails
    assert items["items"]["pattern"] == email["pattern"]


def discrepancy_keys(report: dict[str, Any], subject: str) -> set[tuple[str, str, frozenset[str], str]]:
    out = set()
    for d in report["discrepancies"]:
        assert set(d) >= DISCREPANCY_KEYS, d
        out.add(((d.get("subject") or subject).lower(), d["field"],
                 frozenset({d["system_a"], d["system_b"]} - {POLICY}), d["severity"]))
    return out


def truth_keys(truth: dict[str, Any], subject: str, person: bool = True) -> set[tuple[str, str, frozenset[str], str]]:
    fields = PERSON_FIELDS if person else DEVICE_FIELDS
    return {(e["subject"].lower(), e["field"], frozenset(e["systems"]), e["severity"])
            for e in truth["drift"] if e["field"] in fields
            and subject.lower() in {w.lower() for w in (e["subject"], *e.get("workers", ()))}}


def drifted_person(truth: dict[str, Any], field: str = "job_title") -> str:
    return str(next(e["subject"] for e in truth["drift"] if e["field"] == field))


def drifted_device(truth: dict[str, Any]) -> str:
    return str(next(e["subject"] for e in truth["drift"] if e["field"] in DEVICE_FIELDS))
