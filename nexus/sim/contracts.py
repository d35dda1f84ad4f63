"""Vendor contracts stored as JSON Schema documents beside the simulators, and validators for their definitions.

Each ``*_contract.json`` file in this package is a fragment of a vendor's published contract (its ``$comment`` cites
the source). A simulator validates what it receives against the request definitions, as a validating server does;
the tests validate the simulator's answers and the clients' requests against the same documents.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator


@cache
def contract(name: str) -> dict[str, Any]:
    """The contract document ``nexus/sim/<name>_contract.json``."""
    text = resources.files("nexus.sim").joinpath(f"{name}_contract.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


@cache
def validator(name: str, definition: str) -> Draft202012Validator:
    """A validator for ``$defs[definition]`` of the named contract (references resolve within the document)."""
    doc = contract(name)
    if definition not in doc["$defs"]:
        raise KeyError(f"{name} contract has no definition {definition!r}")
    schema = {"$schema": doc["$schema"], "$defs": doc["$defs"], "$ref": f"#/$defs/{definition}"}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(name: str, definition: str, instance: Any) -> list[str]:
    """Every way ``instance`` breaks the definition, as ``path: message`` lines (empty when it conforms)."""
    out = []
    for error in sorted(validator(name, definition).iter_errors(instance), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        out.append(f"{path}: {error.message}")
    return out


__all__ = ["contract", "problems", "validator"]
