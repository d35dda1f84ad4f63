"""The slice of OData v4 query syntax the Graph simulator understands: ``$filter``, ``$select`` and ``$expand``.

``$filter`` is tokenised and parsed by a small recursive-descent parser into an AST (never evaluated as code), so a
hostile value stays a literal: ``mail eq 'x'' or 1 eq 1'`` is ONE comparison whose value is ``x' or 1 eq 1``.
Supported grammar (what Entra/Intune accept for the properties the simulator serves)::

    expr     := and ("or" and)*
    and      := unary ("and" unary)*
    unary    := "not" unary | "(" expr ")" | call | lambda | compare
    compare  := NAME ("eq" | "ne") literal  |  NAME "in" "(" literal ("," literal)* ")"
    call     := ("startswith" | "endswith") "(" NAME "," STRING ")"
    lambda   := NAME "/any(" VAR ":" VAR "eq" literal ")"       (collections of strings, e.g. otherMails)
    literal  := STRING | "true" | "false" | "null" | INTEGER

String literals are single-quoted with ``''`` standing for one quote. Directory string comparisons ignore case, as
Entra ID's do. :func:`candidates` turns equality on indexed properties into dictionary look-ups so a lookup costs
O(matches), not O(collection).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Property kinds a schema may declare.
STRING, BOOL, STRINGS, DATETIME = "string", "bool", "strings", "datetime"
#: A complex-typed property (``signInActivity``): selectable, never comparable as a whole in ``$filter``.
OBJECT = "object"
_EDM = {STRING: "Edm.String", BOOL: "Edm.Boolean", STRINGS: "Collection(Edm.String)", DATETIME: "Edm.DateTimeOffset",
        OBJECT: "Edm.ComplexType"}


class FilterError(ValueError):
    """The ``$filter`` text is not valid; the message is what Graph would say."""


# -- AST --------------------------------------------------------------------------------------------------------
Literal = str | bool | int | None


@dataclass(frozen=True, slots=True)
class Compare:
    prop: str
    op: str  # "eq" | "ne"
    value: Literal


@dataclass(frozen=True, slots=True)
class In:
    prop: str
    values: tuple[Literal, ...]


@dataclass(frozen=True, slots=True)
class Call:
    func: str  # "startswith" | "endswith"
    prop: str
    value: str


@dataclass(frozen=True, slots=True)
class AnyEq:
    prop: str  # a collection of strings
    value: Literal


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Node


Node = Compare | In | Call | AnyEq | And | Or | Not


# -- tokenizer --------------------------------------------------------------------------------------------------
_SPACE = re.compile(r"\s*")
_TOKEN = re.compile(
    r"""(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<num>-?\d+(?![\w.]))
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[(),/:])
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # str | num | name | punct | end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while True:
        space = _SPACE.match(text, pos)
        pos = space.end() if space else pos
        if pos >= len(text):
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:  # pragma: no cover - the pattern matches any non-space
            raise FilterError(f"Invalid filter clause: syntax error at position {pos}.")
        kind = match.lastgroup
        if kind == "bad":
            what = "unterminated string literal" if text[pos] == "'" else "syntax error"
            raise FilterError(f"Invalid filter clause: {what} at position {pos}.")
        tokens.append(_Tok(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(_Tok("end", "", len(text)))
    return tokens


_MAX_DEPTH = 32  # nesting of parentheses / not; deeper filters are refused (never a RecursionError)


# -- parser -----------------------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok: _Tok, expected: str) -> FilterError:
        found = "end of input" if tok.kind == "end" else repr(tok.text)
        return FilterError(f"Invalid filter clause: {expected} expected at position {tok.pos} but found {found}.")

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "name" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def punct(self, char: str) -> None:
        tok = self.take()
        if tok.kind != "punct" or tok.text != char:
            raise self.fail(tok, f"'{char}'")

    def parse(self) -> Node:
        node = self.expr()
        if self.peek().kind != "end":
            raise self.fail(self.peek(), "'and', 'or' or end of input")
        return node

    def expr(self) -> Node:
        parts = [self.conj()]
        while self.keyword("or"):
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conj(self) -> Node:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node:
        self.depth += 1
        try:
            if self.depth > _MAX_DEPTH:
                raise FilterError("Invalid filter clause: the filter is nested too deeply.")
            return self._unary()
        finally:
            self.depth -= 1

    def _unary(self) -> Node:
        if self.keyword("not"):
            return Not(self.unary())
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.take()
            node = self.expr()
            self.punct(")")
            return node
        name = self.take()
        if name.kind != "name":
            raise self.fail(name, "a property name")
        lowered = name.text.lower()
        if lowered in ("startswith", "endswith") and self.peek().text == "(":
            self.take()
            prop = self.name()
            self.punct(",")
            value = self.literal()
            self.punct(")")
            if not isinstance(value, str):
                raise FilterError(f"Invalid filter clause: {lowered} needs a string literal.")
            return Call(lowered, prop, value)
        if self.peek().text == "/":
            self.take()
            if not self.keyword("any"):
                raise self.fail(self.peek(), "'any'")
            self.punct("(")
            var = self.name()
            self.punct(":")
            var_again = self.name()
            if var_again != var:
                raise FilterError(f"Invalid filter clause: unknown range variable '{var_again}'.")
            if not self.keyword("eq"):
                raise self.fail(self.peek(), "'eq'")
            value = self.literal()
            self.punct(")")
            return AnyEq(name.text, value)
        if self.keyword("eq"):
            return Compare(name.text, "eq", self.literal())
        if self.keyword("ne"):
            return Compare(name.text, "ne", self.literal())
        if self.keyword("in"):
            self.punct("(")
            values = [self.literal()]
            while self.peek().text == ",":
                self.take()
                values.append(self.literal())
            self.punct(")")
            return In(name.text, tuple(values))
        raise self.fail(self.peek(), "'eq', 'ne' or 'in'")

    def name(self) -> str:
        tok = self.take()
        if tok.kind != "name":
            raise self.fail(tok, "a name")
        return tok.text

    def literal(self) -> Literal:
        tok = self.take()
        if tok.kind == "str":
            return tok.text[1:-1].replace("''", "'")
        if tok.kind == "num":
            return int(tok.text)
        if tok.kind == "name" and tok.text in ("true", "false"):
            return tok.text == "true"
        if tok.kind == "name" and tok.text == "null":
            return None
        raise self.fail(tok, "a literal")


def parse_filter(text: str) -> Node:
    """Parse ``$filter`` text into an AST, or raise :class:`FilterError`."""
    if not text.strip():
        raise FilterError("Invalid filter clause: the filter is empty.")
    return _Parser(text).parse()


def quote(value: str) -> str:
    """An OData string literal: single quotes, each embedded quote doubled (what clients must send)."""
    return "'" + value.replace("'", "''") + "'"


# -- validation against a schema --------------------------------------------------------------------------------
def bind(node: Node, schema: Mapping[str, str], type_name: str) -> Node:
    """Resolve property names (case-insensitively) to the schema's spelling and check operand types.

    ``schema`` maps canonical property names to a kind (``STRING``, ``BOOL``, ``STRINGS``, ``DATETIME``).
    """
    by_lower = {name.lower(): name for name in schema}

    def prop(name: str) -> tuple[str, str]:
        canonical = by_lower.get(name.lower())
        if canonical is None:
            raise FilterError(f"Could not find a property named '{name}' on type '{type_name}'.")
        return canonical, schema[canonical]

    def check(kind: str, value: Literal, op: str) -> None:
        if value is None:
            return
        ok = {BOOL: isinstance(value, bool), STRING: isinstance(value, str), DATETIME: isinstance(value, str)}
        if kind == STRINGS or not ok.get(kind, False):
            found = "Edm.Boolean" if isinstance(value, bool) else "Edm.Int32" if isinstance(value, int) else \
                "Edm.String"
            raise FilterError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM[kind]}' and '{found}' for operator kind '{op}'."
            )

    def walk(n: Node) -> Node:
        if isinstance(n, Compare):
            name, kind = prop(n.prop)
            check(kind, n.value, "Equal" if n.op == "eq" else "NotEqual")
            return Compare(name, n.op, n.value)
        if isinstance(n, In):
            name, kind = prop(n.prop)
            for value in n.values:
                check(kind, value, "In")
            return In(name, n.values)
        if isinstance(n, Call):
            name, kind = prop(n.prop)
            if kind != STRING:
                raise FilterError(f"Unsupported or invalid query filter clause specified for property '{name}'.")
            return Call(n.func, name, n.value)
        if isinstance(n, AnyEq):
            name, kind = prop(n.prop)
            if kind != STRINGS:
                raise FilterError(f"The 'any' operator needs a collection; '{name}' is not one.")
            if not isinstance(n.value, str):
                raise FilterError("Invalid filter clause: the 'any' comparison needs a string literal.")
            return AnyEq(name, n.value)
        if isinstance(n, And):
            return And(tuple(walk(p) for p in n.parts))
        if isinstance(n, Or):
            return Or(tuple(walk(p) for p in n.parts))
        return Not(walk(n.part))

    return walk(node)


# -- evaluation -------------------------------------------------------------------------------------------------
def _fold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def matches(node: Node, record: Mapping[str, Any]) -> bool:
    """True if ``record`` (canonical property -> value) satisfies the bound filter. Strings compare ignoring case."""
    if isinstance(node, Compare):
        equal = _fold(record.get(node.prop)) == _fold(node.value)
        return equal if node.op == "eq" else not equal
    if isinstance(node, In):
        value = _fold(record.get(node.prop))
        return any(value == _fold(v) for v in node.values)
    if isinstance(node, Call):
        value = record.get(node.prop)
        if not isinstance(value, str):
            return False
        fn = str.startswith if node.func == "startswith" else str.endswith
        return fn(value.lower(), node.value.lower())
    if isinstance(node, AnyEq):
        wanted = _fold(node.value)
        return any(_fold(v) == wanted for v in record.get(node.prop) or ())
    if isinstance(node, And):
        return all(matches(p, record) for p in node.parts)
    if isinstance(node, Or):
        return any(matches(p, record) for p in node.parts)
    return not matches(node.part, record)


Index = Mapping[str, Mapping[Any, list[int]]]  # canonical property -> folded value -> positions (ascending)


def candidates(node: Node, indexes: Index) -> set[int] | None:
    """Positions that MAY match, from the indexes alone; None when the filter needs a full scan.

    Exact for equality on indexed properties; callers still apply :func:`matches` to the candidates.
    """
    if isinstance(node, Compare) and node.op == "eq" and node.prop in indexes:
        return set(indexes[node.prop].get(_fold(node.value), ()))
    if isinstance(node, In) and node.prop in indexes:
        index = indexes[node.prop]
        return {pos for v in node.values for pos in index.get(_fold(v), ())}
    if isinstance(node, AnyEq) and node.prop in indexes:
        return set(indexes[node.prop].get(_fold(node.value), ()))
    if isinstance(node, Or):
        union: set[int] = set()
        for part in node.parts:
            found = candidates(part, indexes)
            if found is None:
                return None
            union |= found
        return union
    if isinstance(node, And):
        sets = [s for s in (candidates(p, indexes) for p in node.parts) if s is not None]
        if not sets:
            return None
        return set.intersection(*sets)
    return None


# -- $select and $expand ----------------------------------------------------------------------------------------
def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses and quotes (``manager($select=id,mail),x`` -> two items)."""
    parts: list[str] = []
    depth = 0
    in_str = False
    start = 0
    for i, ch in enumerate(text):
        if ch == "'":
            in_str = not in_str
        elif not in_str and ch == "(":
            depth += 1
        elif not in_str and ch == ")":
            depth -= 1
        elif not in_str and depth == 0 and ch == sep:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


@dataclass(frozen=True, slots=True)
class Expand:
    prop: str
    select: str | None  # the nested $select text, if any


def parse_expand(text: str) -> list[Expand]:
    """``manager($select=id,mail)`` -> [Expand("manager", "id,mail")]. Only nested ``$select`` is understood."""
    out: list[Expand] = []
    for item in split_top_level(text):
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?", item, re.DOTALL)
        if match is None:
            raise FilterError(f"Invalid $expand clause '{item}'.")
        select: str | None = None
        for option in split_top_level(match.group(2) or "", ";"):
            key, _, value = option.partition("=")
            if key.strip().lower() != "$select":
                raise FilterError(f"Query option '{key.strip()}' is not supported inside $expand.")
            select = value.strip()
        out.append(Expand(match.group(1), select))
    return out


def parse_select(text: str, known: Iterable[str], type_name: str) -> list[str]:
    """The canonical names of a ``$select`` list (case-insensitive); unknown names raise FilterError."""
    by_lower = {name.lower(): name for name in known}
    names: list[str] = []
    for raw in split_top_level(text):
        canonical = by_lower.get(raw.lower())
        if canonical is None:
            raise FilterError(f"Could not find a property named '{raw}' on type '{type_name}'.")
        if canonical not in names:
            names.append(canonical)
    return names
