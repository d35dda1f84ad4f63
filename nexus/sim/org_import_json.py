"""What every importer of `nexus sim --org DIR` shares: the one error, JSON files read with line numbers, field readers.

An export is judged whole before anything is served: the first problem is an :class:`OrgImportError` naming the
file and the line (``workday.json:17: Report_Entry[3]: Active_Status is "yes", expected "1" or "0"``), never a
system with quietly fewer records.

Line numbers of JSON files. The fast C parser keeps no positions, so a file is parsed with it, its records are
converted, and only when a record is wrong is the file parsed again with :mod:`json`'s pure-Python scanner whose
``parse_object`` hook records where each object starts (:func:`line_of`): a good export of 100k people costs what
``json.loads`` costs, a bad one also names its line.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
#: Where a value sits in a JSON document: keys and list positions from the root.
JsonPath = tuple[str | int, ...]


class OrgImportError(ValueError):
    """An export file that cannot be served: ``file:line: message`` (line 0: the file as a whole)."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


class EntryError(ValueError):
    """A record of a JSON document is wrong; ``path`` locates it (turned into a line by :func:`load_records`)."""

    def __init__(self, path: JsonPath, message: str) -> None:
        self.path, self.message = path, message
        super().__init__(f"{describe(path)}: {message}")


def describe(path: JsonPath) -> str:
    """``("value", 3, "manager")`` -> ``value[3].manager``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def read_text(path: Path) -> str:
    """The file as UTF-8 (a byte-order mark allowed: Windows tools write one), or UTF-16 when it starts with a
    UTF-16 byte-order mark (``ldifde -u`` writes that); undecodable -> the line of the byte."""
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise OrgImportError(path.name, 0, "starts with a UTF-16 byte-order mark but is not UTF-16") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise OrgImportError(path.name, line, f"not UTF-8 (byte 0x{raw[exc.start]:02x})") from None


def load_json(path: Path) -> tuple[str, Any]:
    """The file's text and its parsed JSON; a syntax error is the line JSON names."""
    text = read_text(path)
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as exc:
        raise OrgImportError(path.name, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})") from None


def load_records(path: Path, convert: Callable[[Any], T]) -> T:
    """Parse ``path`` and ``convert`` the document; an :class:`EntryError` becomes an :class:`OrgImportError`
    at the line where the offending record starts."""
    text, document = load_json(path)
    try:
        return convert(document)
    except EntryError as exc:
        raise OrgImportError(path.name, line_of(text, exc.path), str(exc)) from None


class _Positioned(dict[str, Any]):
    """A JSON object that knows the offset of its ``{``."""

    __slots__ = ("offset",)
    offset: int


def _positioned_decoder() -> json.JSONDecoder:
    decoder = json.JSONDecoder()

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[_Positioned, int]:
        obj, end = json.decoder.JSONObject(s_and_end, *args)  # type: ignore[attr-defined]
        out = _Positioned(obj)
        out.offset = s_and_end[1] - 1
        return out, end

    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return decoder


def line_of(text: str, path: JsonPath) -> int:
    """The line of the innermost object on ``path`` in ``text`` (1 when the path leads nowhere)."""
    try:
        node: Any = _positioned_decoder().decode(text)
    except ValueError:
        return 1
    offset = node.offset if isinstance(node, _Positioned) else 0
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, _Positioned):
            offset = node.offset
    return text.count("\n", 0, offset) + 1


# -- reading fields of one record -------------------------------------------------------------------------------
def obj(value: Any, path: JsonPath, what: str = "an object") -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise EntryError(path, f"expected {what}, got {_kind(value)}")
    return value


def items(value: Any, path: JsonPath) -> Sequence[Any]:
    if not isinstance(value, list):
        raise EntryError(path, f"expected a list, got {_kind(value)}")
    return value


def collection(document: Any, key: str, *, allowed: frozenset[str] = frozenset()) -> Sequence[Any]:
    """``document[key]``, a list; ``document`` an object whose other keys are ``@odata.*`` or in ``allowed``."""
    top = obj(document, (), f'an object with "{key}"')
    if key not in top:
        raise EntryError((), f'no "{key}" list at the top level')
    unknown = sorted(k for k in top if k != key and not k.startswith("@odata.") and k not in allowed)
    if unknown:
        raise EntryError((), f"unexpected top-level key {unknown[0]!r} (expected {key!r})")
    return items(top[key], (key,))


def graph_collection(document: Any, notes: Notes | None, file: str, what: str) -> Sequence[Any]:
    """A Graph collection's ``value``; an export that kept its ``@odata.nextLink`` may hold only the first page:
    noted, not refused (the operator may have paged it together)."""
    values = collection(document, "value")
    if notes is not None and isinstance(document, dict) and document.get("@odata.nextLink"):
        notes.add(f"{file}: has @odata.nextLink: it may hold only the first page of {what}")
    return values


def opt_str(record: Mapping[str, Any], name: str, path: JsonPath) -> str | None:
    """A text field; absent, null and "" are None; anything but text is an error."""
    value = record.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EntryError(path, f"{name} is {_kind(value)}, expected text")
    return value


def req_str(record: Mapping[str, Any], name: str, path: JsonPath) -> str:
    value = opt_str(record, name, path)
    if value is None or not value.strip():
        raise EntryError(path, f"{name} is missing")
    return value


def opt_bool(record: Mapping[str, Any], name: str, path: JsonPath) -> bool | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise EntryError(path, f"{name} is {_kind(value)}, expected true or false")
    return value


def opt_time(record: Mapping[str, Any], name: str, path: JsonPath) -> datetime | None:
    """An ISO 8601 timestamp (``Z``, ``+00:00`` or ``+0000``; naive is UTC) as aware UTC; absent -> None."""
    text = opt_str(record, name, path)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise EntryError(path, f"{name} {text!r} is not an ISO 8601 timestamp") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def req_time(record: Mapping[str, Any], name: str, path: JsonPath) -> datetime:
    when = opt_time(record, name, path)
    if when is None:
        raise EntryError(path, f"{name} is missing")
    return when


def parse_day(text: str) -> date:
    """``2021-03-15``, or with an offset as RaaS writes it (``2021-03-15-08:00``, ``2021-03-15+01:00``,
    ``2021-03-15Z``): the calendar date (the offset only says which zone the date is in). ValueError otherwise."""
    day, rest = text.strip()[:10], text.strip()[10:]
    if rest and not (rest == "Z" or (len(rest) == 6 and rest[0] in "+-" and rest[3] == ":"
                                     and rest[1:3].isdigit() and rest[4:].isdigit())):
        raise ValueError(text)
    return date.fromisoformat(day)


def unique(seen: dict[str, int], key: str, index: int, path: JsonPath, what: str) -> None:
    """Refuse a second record with the same key (case-insensitive): the systems' own keys are unique."""
    folded = key.casefold()
    if folded in seen:
        raise EntryError(path, f"duplicate {what} {key!r} (also record {seen[folded]})")
    seen[folded] = index


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


@dataclass(slots=True)
class Notes:
    """What an import wants the operator to know without refusing it (printed by `nexus sim`)."""

    lines: list[str]

    def add(self, line: str) -> None:
        self.lines.append(line)


__all__ = ["EntryError", "JsonPath", "Notes", "OrgImportError", "collection", "describe", "items", "line_of",
           "load_json", "load_records", "obj", "opt_bool", "opt_str", "opt_time", "parse_day", "read_text",
           "req_str", "req_time", "unique"]
