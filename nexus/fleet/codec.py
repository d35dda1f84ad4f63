"""Compact snapshot pages: canonical records as zlib-compressed JSON arrays of rows, and back.

A row is the record's fields in declaration order, without ``system`` (implied by the stream): a 1,000-person AD
page is about 60 KB on the wire to Redis instead of 400 KB of JSON objects. Decoding shares equal strings of
every string (one email or employee id, not five copies of it from five fields of three systems), and a
comparison decodes only the fields the drift engine reads: at 100,000 people these two measures halve the
records' memory, which is what keeps the comparison of a whole fleet inside one worker's budget.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nexus.models import (
    KIND_DEVICE,
    KIND_PERSON,
    KIND_SHIPMENT,
    KIND_TICKET,
    DeviceRecord,
    PersonRecord,
    ReturnTicket,
    ShipmentRecord,
)

#: Stream kinds (a stream is one system's listing in one audit).
PERSON = KIND_PERSON
DEVICE = KIND_DEVICE
TICKET = KIND_TICKET
SHIPMENT = KIND_SHIPMENT

_CLASSES: dict[str, type] = {PERSON: PersonRecord, DEVICE: DeviceRecord, TICKET: ReturnTicket, SHIPMENT: ShipmentRecord}
_WITH_SYSTEM = {PERSON, DEVICE}
def _names(kind: str) -> list[str]:
    return [f.name for f in dataclasses.fields(_CLASSES[kind]) if f.name != "system"]


_FIELDS: dict[str, list[str]] = {kind: _names(kind) for kind in _CLASSES}


def encode_page(kind: str, records: Iterable[Any], *, level: int = 1) -> bytes:
    """Records -> compressed rows (``aliases`` as a list). ``level`` 1: Redis round trips dominate, not bytes."""
    names = _FIELDS[kind]
    rows = []
    for rec in records:
        row = [getattr(rec, n) for n in names]
        if kind == PERSON:
            row[names.index("aliases")] = list(rec.aliases)
        rows.append(row)
    return zlib.compress(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode(), level)


class Decoder:
    """Rows -> records. Every string is looked up in ``memo`` so equal values share one object: give one memo to
    the decoders of several streams (Workday, AD and Entra repeat each person's email, employee id and name) and
    drop it once they are loaded. ``keep`` names the fields to decode; the others become None (``key``: ``""``,
    ``aliases``: ``()``), for a comparison that never reads them. ``token_keys`` replaces each ``key`` with a short
    token unique within the decoder (``~1``, ``~2``, ...) where records need distinct keys that nobody resolves."""

    def __init__(self, kind: str, system: str = "", *, memo: dict[str, str] | None = None,
                 keep: Iterable[str] | None = None, token_keys: bool = False) -> None:
        if kind not in _CLASSES:
            raise ValueError(f"unknown record kind {kind!r}")
        self.kind = kind
        self.system = system
        names = _FIELDS[kind]
        wanted = set(names) if keep is None else set(keep)
        self._drop = [(i, "" if n == "key" else () if n == "aliases" else None)
                      for i, n in enumerate(names) if n not in wanted]
        self._aliases = names.index("aliases") if kind == PERSON and "aliases" in wanted else -1
        self._strings = [i for i, n in enumerate(names) if n in wanted and n != "aliases"]
        self._memo: dict[str, str] = memo if memo is not None else {}
        # a short unique stand-in for a key nobody will look up (see nexus.fleet.compare.FleetComparer.devices)
        self._token_key = names.index("key") if token_keys else -1
        self._count = 0
        cls = _CLASSES[kind]
        self._build: Callable[..., Any] = (lambda *row: cls(system, *row)) if kind in _WITH_SYSTEM else cls

    def rows(self, blob: bytes) -> list[list[Any]]:
        rows: list[list[Any]] = json.loads(zlib.decompress(blob))
        return rows

    def decode(self, blob: bytes) -> list[Any]:
        memo = self._memo
        out = []
        for row in self.rows(blob):
            for i in self._strings:
                value = row[i]
                if value.__class__ is str:
                    row[i] = memo.setdefault(value, value)
            for i, empty in self._drop:
                row[i] = empty
            if self._aliases >= 0:
                row[self._aliases] = tuple(memo.setdefault(a, a) for a in row[self._aliases] or ())
            if self._token_key >= 0:
                self._count += 1
                row[self._token_key] = f"~{self._count:x}"
            out.append(self._build(*row))
        return out


def decode_page(kind: str, blob: bytes, system: str = "") -> list[Any]:
    """One page on its own (no sharing across pages); see :class:`Decoder` for whole streams."""
    return Decoder(kind, system).decode(blob)


def count_rows(blob: bytes) -> int:
    rows: Sequence[Any] = json.loads(zlib.decompress(blob))
    return len(rows)


__all__ = ["DEVICE", "PERSON", "SHIPMENT", "TICKET", "Decoder", "count_rows", "decode_page", "encode_page"]
