"""The Helix simulator's qualification language (nexus/sim/helix_qualification.py), on its own.

Parsing (precedence, quoting, keywords, errors with positions, size limits) and evaluation (SQL NULLs, LIKE,
case-insensitive strings, numbers, dates), then one pass through the simulator: a qualification the parser refuses
is answered 400 ARERR 1587 with the parser's message, as AR System answers a bad qualification.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from nexus.sim.base import SimContext, SimCredentials
from nexus.sim.helix import HelixSim
from nexus.sim.helix_qualification import (
    MAX_DEPTH,
    MAX_QUALIFICATION_CHARS,
    BoolOp,
    Compare,
    FieldRef,
    Literal,
    Not,
    QualificationError,
    evaluate,
    fields_of,
    parse_qualification,
)
from nexus.sim.http_app import build_app
from nexus.sim.orggen import generate_org


def eq(name: str, value: str | float | None) -> Compare:
    return Compare("=", FieldRef(name), Literal(value))


A, B, C = eq("a", "1"), eq("b", "2"), eq("c", "3")

# -- parsing ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("q", "tree"), [
    ("'a' = \"1\" OR 'b' = \"2\" AND 'c' = \"3\"", BoolOp("OR", A, BoolOp("AND", B, C))),  # AND binds tighter
    ("'a' = \"1\" AND 'b' = \"2\" OR 'c' = \"3\"", BoolOp("OR", BoolOp("AND", A, B), C)),
    ("('a' = \"1\" OR 'b' = \"2\") AND 'c' = \"3\"", BoolOp("AND", BoolOp("OR", A, B), C)),  # parentheses win
    ("NOT 'a' = \"1\" AND 'b' = \"2\"", BoolOp("AND", Not(A), B)),  # NOT binds tightest
    ("NOT ('a' = \"1\" AND 'b' = \"2\")", Not(BoolOp("AND", A, B))),
    ("'a' = \"1\" OR 'b' = \"2\" OR 'c' = \"3\"", BoolOp("OR", BoolOp("OR", A, B), C)),  # left-associative
    ("'a' = \"1\" | 'b' = \"2\" & ! 'c' = \"3\"", BoolOp("OR", A, BoolOp("AND", B, Not(C)))),  # symbol forms
    ("'a' = \"1\" and 'b' = \"2\" or not 'c' = \"3\"", BoolOp("OR", BoolOp("AND", A, B), Not(C))),  # any case
    ("NOT NOT 'a' = \"1\"", Not(Not(A))),
])
def test_precedence(q: str, tree: object) -> None:
    assert parse_qualification(q) == tree


@pytest.mark.parametrize(("q", "node"), [
    ("'Name' = \"say \"\"hi\"\"\"", eq("Name", 'say "hi"')),  # a doubled double quote is one quote
    ("'Name' = \"\"\"\"", eq("Name", '"')),
    ("'Name' = \"\"", eq("Name", "")),
    ("'O''Brien' = \"x\"", eq("O'Brien", "x")),  # a doubled single quote inside a field name
    ("'Name' = \"it's\"", eq("Name", "it's")),
    ("'Name' = \"a' OR 'b' = \"", eq("Name", "a' OR 'b' = ")),  # syntax inside a string stays a literal
    ("'Name' = \"$NULL$\"", eq("Name", "$NULL$")),
    ("'Name' = $NULL$", eq("Name", None)),
    ("'Count' = 42", eq("Count", 42.0)),
    ("'Count' = -1.5", eq("Count", -1.5)),
    ("\"x\" = 'Name'", Compare("=", Literal("x"), FieldRef("Name"))),  # either side may be the field
    ("  'Name'=\"x\"  ", eq("Name", "x")),  # whitespace is optional and ignored
])
def test_quoting_and_literals(q: str, node: Compare) -> None:
    assert parse_qualification(q) == node


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">=", "LIKE"])
def test_relational_operators(op: str) -> None:
    assert parse_qualification(f"'a' {op} \"1\"") == Compare(op, FieldRef("a"), Literal("1"))


def test_like_keyword_is_case_insensitive() -> None:
    assert parse_qualification("'a' like \"x%\"") == Compare("LIKE", FieldRef("a"), Literal("x%"))


def test_fields_of() -> None:
    node = parse_qualification("'a' = \"1\" AND (NOT 'b' = 'c' OR \"x\" = 'd')")
    assert fields_of(node) == {"a", "b", "c", "d"}


@pytest.mark.parametrize(("q", "message"), [
    ("", "empty qualification"),
    ("   ", "empty qualification"),
    ("'Status'", "expected a relational operator at the end"),
    ("'Status' = ", "ends too early"),
    ("Status = \"x\"", "unrecognised keyword 'Status' at position 1"),
    ("'a' = \"x", "unexpected character at position 6"),  # an unterminated string (counted from the blank)
    ("'a = \"x\"", "unexpected character at position 1"),  # an unterminated field name
    ("('a' = \"b\"", "missing closing parenthesis"),
    ("'a' = \"b\")", "unexpected token at position 10"),
    ("'a' \"b\"", "expected a relational operator at position 5"),
    ("'a' = \"b\" 'c'", "unexpected token at position 11"),
    ("'a' = \"b\" AND", "ends too early"),
    ("AND 'a' = \"b\"", "expected a field or a value at position 1"),
    ("'a' = = \"b\"", "expected a field or a value at position 7"),
    ("'a' = \"b\"; DROP", "unexpected character at position 10"),
    ("'a' == \"b\"", "expected a field or a value at position 6"),
    ("'a' <> \"b\"", "expected a field or a value at position 6"),
])
def test_bad_syntax_is_refused_with_where(q: str, message: str) -> None:
    with pytest.raises(QualificationError, match=re.escape(message)):
        parse_qualification(q)


def test_nesting_and_length_are_bounded() -> None:
    leaf = "'a' = \"b\""
    assert parse_qualification("(" * (MAX_DEPTH - 1) + leaf + ")" * (MAX_DEPTH - 1)) == eq("a", "b")
    with pytest.raises(QualificationError, match="nested too deeply"):
        parse_qualification("(" * 200 + leaf + ")" * 200)
    with pytest.raises(QualificationError, match="nested too deeply"):
        parse_qualification("NOT " * 200 + leaf)
    with pytest.raises(QualificationError, match="too long"):
        parse_qualification("'a' = \"" + "x" * MAX_QUALIFICATION_CHARS + "\"")


def test_the_error_is_a_value_error() -> None:
    """Callers that only know ValueError still catch it (the simulator catches QualificationError itself)."""
    assert issubclass(QualificationError, ValueError)


# -- evaluation ------------------------------------------------------------------------------------------------------

ROW: dict[str, Any] = {"Status": "Closed", "Serial Number": "ABC-1", "Owner Email": None, "Name": 'x"y',
                       "Empty": "", "Count": 5, "Submit Date": datetime(2024, 5, 1, tzinfo=UTC)}


@pytest.mark.parametrize(("q", "want"), [
    ("'Status' = \"closed\"", True),  # strings compare case-insensitively
    ("'Status' != \"Closed\"", False),
    ("'Status' = \"Open\" OR 'Serial Number' LIKE \"abc%\"", True),
    ("'Status' = \"Open\" OR 'Status' = \"Closed\" AND 'Name' = \"nope\"", False),  # AND binds tighter
    ("('Status' = \"Open\" OR 'Status' = \"Closed\") AND NOT ('Name' = \"nope\")", True),
    ("'Owner Email' = $NULL$", True),
    ("'Owner Email' != \"x\"", False),  # NULL compares false (SQL semantics)
    ("'Owner Email' < \"x\"", False),
    ("'Owner Email' LIKE \"%\"", False),
    ("'Serial Number' != $NULL$", True),
    ("'Owner Email' != $NULL$", False),
    ("'Empty' = $NULL$", True),  # an empty value is NULL
    ("'Name' = \"x\"\"y\"", True),
    ("'Status' = 'Status'", True),  # field against field
    ("'Status' = 'Serial Number'", False),
])
def test_equality_and_nulls(q: str, want: bool) -> None:
    assert evaluate(parse_qualification(q), ROW.get) is want


@pytest.mark.parametrize(("q", "want"), [
    ("'Serial Number' LIKE \"ABC%\"", True),
    ("'Serial Number' LIKE \"abc%\"", True),  # case-insensitive
    ("'Serial Number' LIKE \"%C-1\"", True),
    ("'Serial Number' LIKE \"%\"", True),
    ("'Serial Number' LIKE \"%B%\"", True),
    ("'Serial Number' LIKE \"ABC\"", False),  # the whole value must match
    ("'Serial Number' LIKE \"A_C-_\"", True),  # _ is one character
    ("'Serial Number' LIKE \"A_-1\"", False),
    ("'Serial Number' LIKE \"%.*%\"", False),  # regex metacharacters are literals
    ("'Name' LIKE \"x\"\"%\"", True),
])
def test_like(q: str, want: bool) -> None:
    assert evaluate(parse_qualification(q), ROW.get) is want


@pytest.mark.parametrize(("q", "want"), [
    ("'Count' > 4", True),
    ("'Count' >= 5", True),
    ("'Count' < 5", False),
    ("'Count' <= 5", True),
    ("'Count' = 5", True),
    ("'Count' != 5", False),
    ("'Status' > \"Alpha\"", True),  # strings order case-insensitively
    ("'Status' < \"closed2\"", True),
    ("'Count' > \"4\"", True),  # a number against a string compares as text
    ("'Submit Date' > \"2024-04-30T00:00:00+00:00\"", True),  # dates against ISO strings
    ("'Submit Date' = \"2024-05-01T00:00:00+00:00\"", True),
    ("'Submit Date' < 1714521600", False),  # ... and against epoch seconds
    ("'Submit Date' >= 1714521600", True),
    ("'Submit Date' > \"not a date\"", False),  # compared as text: "2024..." < "not..."
])
def test_comparisons(q: str, want: bool) -> None:
    assert evaluate(parse_qualification(q), ROW.get) is want


@pytest.mark.parametrize(("q", "want"), [
    ("'Status' = \"Closed\" AND 'Count' = 5", True),
    ("'Status' = \"Closed\" AND 'Count' = 6", False),
    ("'Status' = \"Open\" OR 'Count' = 5", True),
    ("'Status' = \"Open\" OR 'Count' = 6", False),
    ("NOT 'Status' = \"Open\"", True),
    ("NOT 'Owner Email' = \"x\"", True),  # NOT of a NULL comparison (false) is true here
    ("'Status' = \"Closed\" & ! 'Serial Number' = \"ABC-2\"", True),
])
def test_and_or_not(q: str, want: bool) -> None:
    assert evaluate(parse_qualification(q), ROW.get) is want


# -- through the simulator --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helix() -> Iterator[tuple[TestClient, dict[str, str]]]:
    creds = SimCredentials.random(5)
    ctx = SimContext(org=generate_org(12, 3), creds=creds)
    with TestClient(build_app(ctx, [HelixSim(ctx)])) as http:
        login = http.post("/helix/api/jwt/login",
                          data={"username": creds.helix_username, "password": creds.helix_password})
        assert login.status_code == 200
        yield http, {"Authorization": f"AR-JWT {login.text}"}


@pytest.mark.parametrize("q", ["'Serial Number' = ", "Serial = \"x\"", "('Name' = \"a\"", "'Name' = \"a\" AND"])
def test_the_simulator_answers_bad_syntax_with_arerr_1587(helix: tuple[TestClient, dict[str, str]], q: str) -> None:
    http, auth = helix
    with pytest.raises(QualificationError) as refused:
        parse_qualification(q)
    answer = http.get("/helix/api/arsys/v1/entry/AST:ComputerSystem", params={"q": q}, headers=auth)
    assert answer.status_code == 400
    assert answer.json() == [{"messageType": "ERROR", "messageText": "Qualification line error",
                              "messageAppendedText": str(refused.value), "messageNumber": 1587}]


def test_the_simulator_refuses_an_unknown_field(helix: tuple[TestClient, dict[str, str]]) -> None:
    http, auth = helix
    answer = http.get("/helix/api/arsys/v1/entry/AST:ComputerSystem", params={"q": "'No Such' = \"x\""}, headers=auth)
    assert answer.status_code == 400 and answer.json()[0]["messageNumber"] == 314


def test_the_simulator_applies_a_valid_qualification(helix: tuple[TestClient, dict[str, str]]) -> None:
    http, auth = helix
    answer = http.get("/helix/api/arsys/v1/entry/AST:ComputerSystem", headers=auth,
                      params={"q": "'Name' LIKE \"%\" AND NOT 'Name' = $NULL$", "fields": "values(Name)"})
    assert answer.status_code == 200
    names = [e["values"]["Name"] for e in answer.json()["entries"]]
    assert names and all(names)
