"""BMC Helix's qualification language (the ``q`` parameter of AR REST's entry listing), as the simulator reads it.

Qualifications are PARSED (never evaluated as code) by a small recursive-descent parser: ``'Field' = "value"``,
``!=``, ``<``, ``<=``, ``>``, ``>=``, ``LIKE`` (``%`` any run, ``_`` one character), ``AND``/``OR``/``NOT`` (also
``&``, ``|``, ``!``), parentheses, double-quoted strings with ``""`` for a quote, numbers and ``$NULL$``. ``NOT``
binds tighter than ``AND``, which binds tighter than ``OR``. String comparisons ignore case, as on Helix's default
case-insensitive database collation. A field that is NULL (or empty) satisfies only ``= $NULL$`` (SQL semantics).

Anything that does not parse raises :class:`QualificationError`; the simulator answers it with 400 ARERR 1587
("Qualification line error"), as AR System does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

MAX_QUALIFICATION_CHARS = 20_000
MAX_DEPTH = 64


class QualificationError(ValueError):
    """The qualification does not parse or names an unknown field."""


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | float | None  # None is $NULL$


Operand = FieldRef | Literal


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # = != < <= > >= LIKE
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # AND | OR
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


Node = Compare | BoolOp | Not

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<field>'(?:[^']|'')*')
      | (?P<string>"(?:[^"]|"")*")
      | (?P<null>\$NULL\$)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>!=|<=|>=|=|<|>|\(|\)|&|\||!)
      | (?P<word>[A-Za-z]+)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"AND": "&", "OR": "|", "NOT": "!", "LIKE": "LIKE"}


def _tokenize(text: str) -> list[tuple[str, Any, int]]:
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise QualificationError(f"unexpected character at position {pos + 1}")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        start = m.start(kind)
        if kind == "field":
            tokens.append(("field", raw[1:-1].replace("''", "'"), start))
        elif kind == "string":
            tokens.append(("lit", raw[1:-1].replace('""', '"'), start))
        elif kind == "null":
            tokens.append(("lit", None, start))
        elif kind == "number":
            tokens.append(("lit", float(raw), start))
        elif kind == "word":
            op = _WORD_OPS.get(raw.upper())
            if op is None:
                raise QualificationError(f"unrecognised keyword {raw[:40]!r} at position {start + 1}")
            tokens.append(("op", op, start))
        else:
            tokens.append(("op", raw, start))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive descent: or := and ('|' and)* ; and := not ('&' not)* ; not := '!' not | '(' or ')' | cmp."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def parse(self) -> Node:
        if not self.tokens:
            raise QualificationError("empty qualification")
        node = self._or()
        if self.i != len(self.tokens):
            raise QualificationError(f"unexpected token at position {self.tokens[self.i][2] + 1}")
        return node

    def _peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _is_op(self, value: str) -> bool:
        tok = self._peek()
        return tok is not None and tok[0] == "op" and tok[1] == value

    def _or(self) -> Node:
        node = self._and()
        while self._is_op("|"):
            self.i += 1
            node = BoolOp("OR", node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._is_op("&"):
            self.i += 1
            node = BoolOp("AND", node, self._not())
        return node

    def _not(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QualificationError("qualification nested too deeply")
        try:
            if self._is_op("!"):
                self.i += 1
                return Not(self._not())
            if self._is_op("("):
                self.i += 1
                node = self._or()
                if not self._is_op(")"):
                    raise QualificationError("missing closing parenthesis")
                self.i += 1
                return node
            return self._compare()
        finally:
            self.depth -= 1

    def _operand(self) -> Operand:
        tok = self._peek()
        if tok is None:
            raise QualificationError("qualification ends too early")
        kind, value, pos = tok
        self.i += 1
        if kind == "field":
            return FieldRef(value)
        if kind == "lit":
            return Literal(value)
        raise QualificationError(f"expected a field or a value at position {pos + 1}")

    def _compare(self) -> Compare:
        left = self._operand()
        tok = self._peek()
        if tok is None or tok[0] != "op" or tok[1] not in ("=", "!=", "<", "<=", ">", ">=", "LIKE"):
            where = f"position {tok[2] + 1}" if tok else "the end"
            raise QualificationError(f"expected a relational operator at {where}")
        self.i += 1
        return Compare(tok[1], left, self._operand())


def parse_qualification(text: str) -> Node:
    """The syntax tree of ``text``; :class:`QualificationError` when it does not parse (or is too long or deep)."""
    if len(text) > MAX_QUALIFICATION_CHARS:
        raise QualificationError("qualification too long")
    return _Parser(text).parse()


def fields_of(node: Node) -> set[str]:
    """The field names ``node`` refers to (the simulator refuses a qualification naming a field its form lacks)."""
    if isinstance(node, Compare):
        return {o.name for o in (node.left, node.right) if isinstance(o, FieldRef)}
    if isinstance(node, BoolOp):
        return fields_of(node.left) | fields_of(node.right)
    return fields_of(node.operand)


@lru_cache(maxsize=256)
def _like(pattern: str) -> re.Pattern[str]:
    parts = ["." if ch == "_" else ".*" if ch == "%" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return value.casefold()
    return value


def _coerce_pair(a: Any, b: Any) -> tuple[Any, Any]:
    """Make a field value and a literal comparable: dates against epoch numbers or date strings."""
    if isinstance(a, datetime) and isinstance(b, str):
        try:
            b = datetime.fromisoformat(b)
        except ValueError:
            return a.isoformat().casefold(), b.casefold()
    if isinstance(b, datetime) and isinstance(a, str):
        return _coerce_pair(b, a)[::-1]
    a, b = _comparable(a), _comparable(b)
    if isinstance(a, float | int) != isinstance(b, float | int):
        return str(a), str(b)
    return a, b


_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda x, y: x < y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y, ">=": lambda x, y: x >= y,
}


def evaluate(node: Node, get: Callable[[str], Any]) -> bool:
    """Does the row whose field values ``get`` returns satisfy ``node``?"""
    if isinstance(node, BoolOp):
        if node.op == "AND":
            return evaluate(node.left, get) and evaluate(node.right, get)
        return evaluate(node.left, get) or evaluate(node.right, get)
    if isinstance(node, Not):
        return not evaluate(node.operand, get)
    a = get(node.left.name) if isinstance(node.left, FieldRef) else node.left.value
    b = get(node.right.name) if isinstance(node.right, FieldRef) else node.right.value
    a = None if a == "" else a
    b = None if b == "" else b
    if a is None or b is None:
        if node.op == "=":
            return a is None and b is None
        if node.op == "!=":
            # Only `'Field' != $NULL$` can be true here: a NULL field compares false with anything (SQL).
            null_field = (a is None and isinstance(node.left, FieldRef)) or (
                b is None and isinstance(node.right, FieldRef))
            return not null_field and (a is None) != (b is None)
        return False
    if node.op == "LIKE":
        return isinstance(b, str) and _like(b).fullmatch(str(a)) is not None
    x, y = _coerce_pair(a, b)
    if node.op == "=":
        return bool(x == y)
    if node.op == "!=":
        return bool(x != y)
    try:
        return _ORDER_OPS[node.op](x, y)
    except TypeError:
        return False


__all__ = [
    "MAX_DEPTH",
    "MAX_QUALIFICATION_CHARS",
    "BoolOp",
    "Compare",
    "FieldRef",
    "Literal",
    "Node",
    "Not",
    "Operand",
    "QualificationError",
    "evaluate",
    "fields_of",
    "parse_qualification",
]
