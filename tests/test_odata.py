"""The Graph simulator's OData slice (nexus/sim/odata.py), on its own: ``$filter`` parsing, binding to a schema,
evaluation and index candidates, ``$select`` and ``$expand``; then ``$top``/``$select`` refusals as the Graph
simulator answers them (400 ``Request_BadRequest`` with Graph's wording).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from nexus.sim import odata
from nexus.sim.base import SimContext, SimCredentials
from nexus.sim.graph import GraphSim
from nexus.sim.http_app import build_app
from nexus.sim.odata import And, AnyEq, Call, Compare, Expand, FilterError, In, Not, Or
from nexus.sim.orggen import generate_org

SCHEMA = {"mail": odata.STRING, "displayName": odata.STRING, "jobTitle": odata.STRING, "accountEnabled": odata.BOOL,
          "otherMails": odata.STRINGS, "createdDateTime": odata.DATETIME}

# -- $filter: parsing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "tree"), [
    ("mail eq 'a@x'", Compare("mail", "eq", "a@x")),
    ("mail ne 'a@x'", Compare("mail", "ne", "a@x")),
    ("accountEnabled eq true", Compare("accountEnabled", "eq", True)),
    ("accountEnabled eq false", Compare("accountEnabled", "eq", False)),
    ("mail eq null", Compare("mail", "eq", None)),
    ("employeeId eq 42", Compare("employeeId", "eq", 42)),
    ("employeeId eq -7", Compare("employeeId", "eq", -7)),
    ("startswith(displayName,'Ann')", Call("startswith", "displayName", "Ann")),
    ("endswith(mail, '@corp.example')", Call("endswith", "mail", "@corp.example")),
    ("StartsWith(displayName,'Ann')", Call("startswith", "displayName", "Ann")),  # function names in any case
    ("otherMails/any(m:m eq 'a@x')", AnyEq("otherMails", "a@x")),
    ("otherMails/any(x: x eq 'a@x')", AnyEq("otherMails", "a@x")),
    ("mail in ('a', 'b')", In("mail", ("a", "b"))),
    ("mail in ('a')", In("mail", ("a",))),
    ("mail EQ 'a' AND displayName Eq 'b'", And((Compare("mail", "eq", "a"), Compare("displayName", "eq", "b")))),
])
def test_each_form_parses(text: str, tree: odata.Node) -> None:
    assert odata.parse_filter(text) == tree


A, B, C = Compare("a", "eq", "1"), Compare("b", "eq", "2"), Compare("c", "eq", "3")


@pytest.mark.parametrize(("text", "tree"), [
    ("a eq '1' or b eq '2' and c eq '3'", Or((A, And((B, C))))),  # and binds tighter than or
    ("a eq '1' and b eq '2' or c eq '3'", Or((And((A, B)), C))),
    ("(a eq '1' or b eq '2') and c eq '3'", And((Or((A, B)), C))),
    ("a eq '1' or b eq '2' or c eq '3'", Or((A, B, C))),  # one flat node per operator run
    ("a eq '1' and b eq '2' and c eq '3'", And((A, B, C))),
    ("not a eq '1' and b eq '2'", And((Not(A), B))),  # not binds tightest
    ("not (a eq '1' and b eq '2')", Not(And((A, B)))),
    ("((a eq '1'))", A),
])
def test_precedence(text: str, tree: odata.Node) -> None:
    assert odata.parse_filter(text) == tree


@pytest.mark.parametrize(("text", "value"), [
    ("mail eq 'x'' or 1 eq 1'", "x' or 1 eq 1"),  # a doubled quote is one quote: the value never becomes syntax
    ("mail eq ''''", "'"),
    ("mail eq ''", ""),
    ("mail eq 'o''brien@x'", "o'brien@x"),
    ("mail eq ') or (1 eq 1'", ") or (1 eq 1"),
    ("mail eq 'a\"b'", 'a"b'),
    ("mail eq 'true'", "true"),  # a quoted keyword is a string
])
def test_quote_doubling(text: str, value: str) -> None:
    assert odata.parse_filter(text) == Compare("mail", "eq", value)


@pytest.mark.parametrize("value", ["", "'", "''", "a'b", "x' or 1 eq 1 or mail eq 'y", "ünï'cødé"])
def test_quote_round_trips(value: str) -> None:
    assert odata.quote(value) == "'" + value.replace("'", "''") + "'"
    assert odata.parse_filter(f"mail eq {odata.quote(value)}") == Compare("mail", "eq", value)
    assert odata.parse_filter(f"mail in ({odata.quote(value)}, 'z')") == In("mail", (value, "z"))


@pytest.mark.parametrize(("text", "message"), [
    ("", "the filter is empty"),
    ("   ", "the filter is empty"),
    ("mail eq", "a literal expected at position 7 but found end of input"),
    ("mail eq 'x", "unterminated string literal at position 8"),
    ("eq 'x'", "'eq', 'ne' or 'in' expected at position 3"),
    ("mail eq 'a' or", "a property name expected at position 14 but found end of input"),
    ("mail eq 'a')", "'and', 'or' or end of input expected at position 11 but found ')'"),
    ("mail == 'a'", "syntax error at position 5"),
    ("mail gt 'a'", "'eq', 'ne' or 'in' expected at position 5 but found 'gt'"),
    ("mail eq 'a' xor mail eq 'b'", "'and', 'or' or end of input expected at position 12 but found 'xor'"),
    ("mail in 'a'", "'(' expected at position 8"),
    ("mail in ('a'", "')' expected at position 12"),
    ("mail in ()", "a literal expected at position 9 but found ')'"),
    ("startswith(mail, 3)", "startswith needs a string literal"),
    ("otherMails/all(m:m eq 'a')", "'any' expected at position 11"),
    ("otherMails/any(m:n eq 'a')", "unknown range variable 'n'"),
    ("otherMails/any(m:m ne 'a')", "'eq' expected at position 19"),
    ("mail eq 1.5", "syntax error at position 8"),
    ("__import__('os') eq 'a'", "'eq', 'ne' or 'in' expected at position 10 but found '('"),
    ("(" * 40 + "mail eq 'a'" + ")" * 40, "nested too deeply"),
    ("not " * 40 + "mail eq 'a'", "nested too deeply"),
])
def test_bad_syntax_says_where(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=re.escape(message)):
        odata.parse_filter(text)


def test_filter_errors_are_value_errors_in_graphs_words() -> None:
    assert issubclass(FilterError, ValueError)
    with pytest.raises(FilterError, match=r"^Invalid filter clause: "):
        odata.parse_filter("mail eq")


# -- $filter: binding to a schema ----------------------------------------------------------------------------------


def test_bind_spells_properties_the_schemas_way() -> None:
    bound = odata.bind(odata.parse_filter("MAIL eq 'a' and otherMAILS/any(m:m eq 'b') or startswith(DisplayName,'c')"),
                       SCHEMA, "User")
    assert bound == Or((And((Compare("mail", "eq", "a"), AnyEq("otherMails", "b"))),
                        Call("startswith", "displayName", "c")))


@pytest.mark.parametrize(("text", "message"), [
    ("nope eq 'a'", "Could not find a property named 'nope' on type 'User'."),
    ("accountEnabled eq 'yes'", "Found operand types 'Edm.Boolean' and 'Edm.String' for operator kind 'Equal'"),
    ("mail ne true", "Found operand types 'Edm.String' and 'Edm.Boolean' for operator kind 'NotEqual'"),
    ("mail eq 3", "Found operand types 'Edm.String' and 'Edm.Int32' for operator kind 'Equal'"),
    ("mail in ('a', 3)", "for operator kind 'In'"),
    ("otherMails eq 'a'", "Found operand types 'Collection(Edm.String)'"),
    ("startswith(accountEnabled,'t')", "Unsupported or invalid query filter clause specified for property "
                                       "'accountEnabled'"),
    ("mail/any(m:m eq 'a')", "The 'any' operator needs a collection; 'mail' is not one."),
    ("otherMails/any(m:m eq 3)", "the 'any' comparison needs a string literal"),
    ("not nope eq 'a'", "Could not find a property named 'nope'"),
])
def test_bind_refuses_unknown_properties_and_wrong_types(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=re.escape(message)):
        odata.bind(odata.parse_filter(text), SCHEMA, "User")


def test_null_fits_any_kind() -> None:
    assert odata.bind(odata.parse_filter("accountEnabled eq null"), SCHEMA, "User") == \
        Compare("accountEnabled", "eq", None)


# -- $filter: evaluation and index candidates ----------------------------------------------------------------------

RECORD: dict[str, Any] = {"mail": "Ann@Corp.Example", "displayName": "Ann Lee", "accountEnabled": True,
                          "otherMails": ["ann.lee@corp.example"], "createdDateTime": None, "jobTitle": None}


@pytest.mark.parametrize(("text", "want"), [
    ("mail eq 'ann@corp.example'", True),  # strings compare ignoring case, as Entra's directory does
    ("mail ne 'ann@corp.example'", False),
    ("mail eq 'bob@corp.example'", False),
    ("accountEnabled eq true", True),
    ("accountEnabled eq false", False),
    ("createdDateTime eq null", True),
    ("startswith(displayName,'ann')", True),
    ("endswith(mail,'@CORP.EXAMPLE')", True),
    ("startswith(jobTitle,'')", False),  # a null value starts with nothing
    ("otherMails/any(m:m eq 'ANN.LEE@corp.example')", True),
    ("otherMails/any(m:m eq 'ann@corp.example')", False),
    ("mail in ('x', 'ANN@corp.example')", True),
    ("mail in ('x', 'y')", False),
    ("mail eq 'x' or accountEnabled eq true", True),
    ("mail eq 'x' and accountEnabled eq true", False),
    ("not mail eq 'x'", True),
])
def test_matches(text: str, want: bool) -> None:
    assert odata.matches(odata.bind(odata.parse_filter(text), SCHEMA, "User"), RECORD) is want


def test_candidates_come_from_indexes_or_ask_for_a_scan() -> None:
    indexes = {"mail": {"a": [3], "b": [1, 5]}, "otherMails": {"c": [2]}}

    def cand(text: str) -> set[int] | None:
        return odata.candidates(odata.parse_filter(text), indexes)

    assert cand("mail eq 'A'") == {3}
    assert cand("mail eq 'zzz'") == set()
    assert cand("mail in ('a', 'b')") == {1, 3, 5}
    assert cand("otherMails/any(m:m eq 'C')") == {2}
    assert cand("mail eq 'A' or mail eq 'b'") == {1, 3, 5}
    assert cand("mail eq 'b' and displayName eq 'q'") == {1, 5}  # the indexed part narrows the scan
    assert cand("mail eq 'A' and startswith(x,'q')") == {3}
    assert cand("mail eq 'A' or startswith(x,'q')") is None  # one unindexed branch: scan
    assert cand("displayName eq 'q'") is None
    assert cand("mail ne 'a'") is None
    assert cand("not mail eq 'a'") is None


# -- $select and $expand -------------------------------------------------------------------------------------------


def test_select_is_case_insensitive_deduplicated_and_ordered() -> None:
    assert odata.parse_select("MAIL, displayname,mail", SCHEMA, "User") == ["mail", "displayName"]
    assert odata.parse_select("", SCHEMA, "User") == []


@pytest.mark.parametrize("text", ["nope", "mail,nope", "mail;displayName", "mail displayName"])
def test_select_refuses_unknown_properties(text: str) -> None:
    with pytest.raises(FilterError, match=r"Could not find a property named '.*' on type 'User'"):
        odata.parse_select(text, SCHEMA, "User")


def test_split_top_level_respects_parentheses_and_quotes() -> None:
    assert odata.split_top_level("manager($select=id,mail),x") == ["manager($select=id,mail)", "x"]
    assert odata.split_top_level("a,'b,c',d") == ["a", "'b,c'", "d"]
    assert odata.split_top_level(" a ,, b ") == ["a", "b"]
    assert odata.split_top_level("x=1;y=2", ";") == ["x=1", "y=2"]


@pytest.mark.parametrize(("text", "expands"), [
    ("manager", [Expand("manager", None)]),
    ("manager($select=id,mail)", [Expand("manager", "id,mail")]),
    ("manager( $select = id )", [Expand("manager", "id")]),
    ("manager,memberOf", [Expand("manager", None), Expand("memberOf", None)]),
])
def test_expand(text: str, expands: list[Expand]) -> None:
    assert odata.parse_expand(text) == expands


@pytest.mark.parametrize(("text", "message"), [
    ("manager($filter=id eq 'a')", "Query option '$filter' is not supported inside $expand."),
    ("man-ager", "Invalid $expand clause 'man-ager'."),
    ("manager)", "Invalid $expand clause 'manager)'."),
])
def test_expand_refusals(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=re.escape(message)):
        odata.parse_expand(text)


# -- through the Graph simulator: $top, $select and $filter refusals ------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Iterator[tuple[TestClient, dict[str, str]]]:
    ctx = SimContext(org=generate_org(12, 3), creds=SimCredentials.random(4))
    token, _ = ctx.tokens.issue("entra")
    with TestClient(build_app(ctx, [GraphSim(ctx)])) as http:
        yield http, {"Authorization": f"Bearer {token}"}


def _bad_request(graph: tuple[TestClient, dict[str, str]], path: str, params: dict[str, str]) -> str:
    http, auth = graph
    answer = http.get(f"/graph/v1.0/{path}", params=params, headers=auth)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "Request_BadRequest"
    return str(error["message"])


@pytest.mark.parametrize(("path", "top", "limit"), [
    ("users", "0", 999), ("users", "1000", 999), ("users", "-1", 999), ("users", "ten", 999), ("users", "", 999),
    ("deviceManagement/managedDevices", "1001", 1000), ("deviceManagement/managedDevices", "0", 1000),
])
def test_top_out_of_range_is_refused(graph: tuple[TestClient, dict[str, str]], path: str, top: str,
                                     limit: int) -> None:
    message = _bad_request(graph, path, {"$top": top})
    assert message == (f"Invalid value '{top}' for query parameter $top. The value must be between 1 and {limit}.")


@pytest.mark.parametrize(("path", "top"), [("users", "1"), ("users", "999"), ("users", " 5 "),
                                           ("deviceManagement/managedDevices", "1000")])
def test_top_in_range_is_served(graph: tuple[TestClient, dict[str, str]], path: str, top: str) -> None:
    http, auth = graph
    answer = http.get(f"/graph/v1.0/{path}", params={"$top": top}, headers=auth)
    assert answer.status_code == 200 and len(answer.json()["value"]) <= int(top)


def test_unknown_select_is_refused(graph: tuple[TestClient, dict[str, str]]) -> None:
    message = _bad_request(graph, "users", {"$select": "id,password"})
    assert message == "Could not find a property named 'password' on type 'Microsoft.DirectoryServices.User'."


def test_bad_filter_is_refused_with_the_parsers_message(graph: tuple[TestClient, dict[str, str]]) -> None:
    for text in ("mail eq 'x", "mail eq 'a' or", "accountEnabled eq 'yes'"):
        with pytest.raises(FilterError) as refused:
            odata.bind(odata.parse_filter(text), {"mail": odata.STRING, "accountEnabled": odata.BOOL}, "x")
        assert str(refused.value).split(" on type ")[0] in _bad_request(graph, "users", {"$filter": text})
