"""Property tests: whatever text a value holds, it reaches every system as ONE literal, and normalisation is stable.

- LDAP (clients/ad/matching.py): each clause parses (ldap3's own parser, the one the client sends with) as exactly
  one equality assertion, and the BER value on the wire is the input's UTF-8 bytes.
- OData (clients/_graph.py ``odata_quote``, through EntraClient/IntuneClient): the ``$filter`` parsed by the Graph
  simulator's parser is exactly the comparisons the client meant, holding the input as literals.
- Helix (``qual_quote``): the simulator's qualification parser returns one comparison with the input as its literal.
- Lansweeper: the GraphQL query text never changes; values only travel in ``variables``.
- Drift normalisation (nexus/drift/normalize.py): what tests/test_drift_normalize.py does not cover yet: norm_dn,
  norm_id, norm_guid, case-folding and whitespace on arbitrary text, and the engine ignoring that noise end to end.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any, Literal

import httpx
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from ldap3.operation.search import MATCH_EQUAL, OR, ROOT, compile_filter, parse_filter
from pyasn1.codec.ber import encoder

from clients.ad import PERSON_FILTER, matching
from clients.entra import EntraClient
from clients.helix import qual_eq, qual_quote
from clients.intune import IntuneClient
from clients.lansweeper import ASSETS_QUERY, LansweeperClient
from nexus.drift import audit_people
from nexus.drift.normalize import norm_dn, norm_guid, norm_id, norm_text
from nexus.settings import Settings
from nexus.sim import helix_qualification as hq
from nexus.sim import odata
from nexus.sim.ldap_proxy import children, element_at
from tests._drift_fixtures import EMP_DN, EMP_EID, EMP_OID, clean_people, with_

# Arbitrary text (no surrogates: they cannot be encoded at all), plus the classic injection strings.
TEXT = st.text(max_size=60)
HOSTILE = ["*", "*)(mail=*", "\\00", "\x00", "' or 1 eq 1", "x'' or ''1''=''1", '"}) { x } #', '" OR \'Status\' != "',
           "\\5c2a", "a\\", "(|(objectClass=*))", "%", "_", "\u202e", "\u200d", "$NULL$"]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- LDAP -----------------------------------------------------------------------------------------------------------

def _ldap_parse(flt: str) -> Any:
    """ldap3's parser exactly as ADClient's connection uses it (auto_escape, auto_encode, no schema)."""
    return parse_filter(flt, None, True, True, None, False)


def _wire_value(node: Any) -> tuple[str, bytes]:
    """(attribute, assertion value bytes) of an equality node, from the BER ldap3 puts on the wire."""
    ber = encoder.encode(compile_filter(node))
    element = element_at(ber, 0, len(ber))
    assert element.tag == 0xA3, hex(element.tag)  # equalityMatch, nothing else
    desc, value = children(ber, element)[:2]
    return ber[desc.start:desc.end].decode(), ber[value.start:value.end]


# Leading/trailing spaces: ldap3 strips assertion values, and directory equality rules ignore them anyway
# (RFC 4518 insignificant space handling), so the property is stated for values without them.
LDAP_TEXT = TEXT.filter(lambda s: s == s.strip())


@FAST
@given(LDAP_TEXT)
@example("*")
@example("\\2a")
@example("\\5c2a")
@example("*)(sAMAccountName=*")
def test_ldap_clause_is_one_equality_whose_value_round_trips(value: str) -> None:
    assume(value)
    (clause,) = matching.clauses(username=value)
    root = _ldap_parse(clause)
    assert root.tag == ROOT
    (node,) = root.elements
    assert node.tag == MATCH_EQUAL
    assert _wire_value(node) == ("sAMAccountName", value.encode())


@FAST
@given(st.lists(LDAP_TEXT.filter(bool), min_size=1, max_size=5))
def test_ldap_batch_filter_has_exactly_the_expected_equalities(values: list[str]) -> None:
    """The whole filter of ``find_users``: (&PERSON_FILTER(|3 equalities per address)) and nothing else."""
    clauses = [c for v in values for c in matching.clauses(email=v)]
    root = _ldap_parse(f"(&{PERSON_FILTER}(|{''.join(clauses)}))")
    (conj,) = root.elements
    klass, account_type, _not_computer, disj = conj.elements
    assert [_wire_value(klass), _wire_value(account_type)] == [("objectClass", b"user"),
                                                               ("sAMAccountType", b"805306368")]
    assert disj.tag == OR
    got = [_wire_value(n) for n in disj.elements]
    expected = [(attr, prefix + v.encode()) for v in values
                for attr, prefix in (("mail", b""), ("userPrincipalName", b""), ("proxyAddresses", b"smtp:"))]
    assert got == expected


# -- OData (Graph) -----------------------------------------------------------------------------------------------------

@FAST
@given(TEXT)
def test_odata_literal_parses_back_to_the_same_string(value: str) -> None:
    from clients._graph import odata_quote

    assert odata.parse_filter(f"mail eq {odata_quote(value)}") == odata.Compare("mail", "eq", value)
    assert odata_quote(value) == odata.quote(value)  # the client and the simulator agree on the quoting


def _graph_settings() -> Settings:
    return Settings(_env_file=None, use_mock=False, graph_base_url="https://graph.test", azure_authority_url="https://login.test",
                    azure_tenant_id="t", azure_client_id="c", azure_client_secret="s")


class _Recorder:
    """A MockTransport handler: a token, then an empty collection; remembers each request's decoded query."""

    def __init__(self) -> None:
        self.params: list[httpx.QueryParams] = []
        self.bodies: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 3599})
        self.params.append(request.url.params)
        if request.content:
            self.bodies.append(json.loads(request.content))
            return httpx.Response(200, json={"data": {"site": {"assetResources": {
                "total": 0, "pagination": {"next": None}, "items": []}}}})
        return httpx.Response(200, json={"value": []})


@FAST
@given(TEXT.filter(bool))
@example("' or 1 eq 1")
@example("x') or (mail ne '")
def test_entra_filter_holds_the_value_only_as_literals(value: str) -> None:
    rec = _Recorder()
    with EntraClient(_graph_settings(), transport=httpx.MockTransport(rec)) as c:
        assert c.find_user(email=value, upn=value, employee_id=value) is None
    (params,) = rec.params
    assert odata.parse_filter(params["$filter"]) == odata.Or((
        odata.Compare("mail", "eq", value), odata.AnyEq("otherMails", value),
        odata.Compare("userPrincipalName", "eq", value), odata.Compare("employeeId", "eq", value)))


@FAST
@given(TEXT.filter(bool))
def test_intune_filter_holds_the_value_only_as_a_literal(value: str) -> None:
    rec = _Recorder()
    with IntuneClient(_graph_settings(), transport=httpx.MockTransport(rec)) as c:
        assert c.find_device(value) is None
    (params,) = rec.params
    assert odata.parse_filter(params["$filter"]) == odata.Compare("serialNumber", "eq", value)


# -- Helix qualifications ----------------------------------------------------------------------------------------------

@FAST
@given(TEXT)
@example('" OR \'Status\' != "')
@example('""')
def test_helix_literal_parses_back_to_the_same_string(value: str) -> None:
    node = hq.parse_qualification(qual_eq("Serial Number", value))
    assert node == hq.Compare("=", hq.FieldRef("Serial Number"), hq.Literal(value))
    assert qual_quote(value).startswith('"') and qual_quote(value).endswith('"')


@FAST
@given(st.lists(TEXT, min_size=1, max_size=6))
def test_helix_or_of_literals_has_exactly_those_comparisons(values: list[str]) -> None:
    """The shape of ``tickets_for_serials``: N literals OR-ed, never more, never another operator."""
    node = hq.parse_qualification(" OR ".join(qual_eq("Serial Number", v) for v in values))
    leaves: list[Any] = []

    def walk(n: Any) -> None:
        if isinstance(n, hq.BoolOp):
            assert n.op == "OR"
            walk(n.left)
            walk(n.right)
        else:
            leaves.append(n)

    walk(node)
    assert leaves == [hq.Compare("=", hq.FieldRef("Serial Number"), hq.Literal(v))
                      for v in values]


# -- Lansweeper GraphQL ------------------------------------------------------------------------------------------------

@FAST
@given(TEXT.filter(bool))
@example('"}) { x } #')
def test_lansweeper_values_travel_only_in_variables(value: str) -> None:
    rec = _Recorder()
    settings_ = Settings(_env_file=None, use_mock=False, lansweeper_graphql_url="https://ls.test/api/v2/graphql",
                         lansweeper_token="tok", lansweeper_site_id="site-1")
    with LansweeperClient(settings_, transport=httpx.MockTransport(rec)) as c:
        assert c.find_device(value) is None
    (body,) = rec.bodies
    assert body["query"] == ASSETS_QUERY  # constant: the value never enters the query text
    (condition,) = body["variables"]["filters"]["conditions"]
    assert condition == {"operator": "EQUAL", "path": "assetCustom.serialNumber", "value": value}


def test_the_classic_injection_strings_stay_literals_everywhere() -> None:
    from clients._graph import odata_quote

    for value in HOSTILE:
        assert odata.parse_filter(f"mail eq {odata_quote(value)}") == odata.Compare("mail", "eq", value)
        assert hq.parse_qualification(qual_eq("Owner Email", value)) == hq.Compare(
            "=", hq.FieldRef("Owner Email"), hq.Literal(value))
        if value.strip():
            (node,) = _ldap_parse(matching.clauses(username=value.strip())[0]).elements
            assert _wire_value(node) == ("sAMAccountName", value.strip().encode())


# -- drift normalisation (what tests/test_drift_normalize.py does not cover) ------------------------------------------

WHITESPACE = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", " \u3000 "])


@given(TEXT)
def test_norm_text_ignores_case_folding_of_any_text(s: str) -> None:
    assert norm_text(s.casefold()) == norm_text(s)


@given(TEXT, st.sampled_from([str.upper, str.lower, str.title, str.swapcase]))
def test_norm_text_ignores_re_casing_where_the_text_round_trips(s: str, recase: Any) -> None:
    # Some letters do not survive upper/lower (Turkish dotless i, U+0131, upper-cases to "I"); a system that re-cases
    # such a name genuinely changes it, so the property is stated for text whose case mapping is reversible.
    assume(recase(s).casefold() == s.casefold())
    assert norm_text(recase(s)) == norm_text(s)


@given(TEXT, WHITESPACE, WHITESPACE)
def test_norm_text_ignores_any_whitespace_runs(s: str, inner: str, outer: str) -> None:
    assert norm_text(outer + inner.join(s.split()) + outer) == norm_text(s)


@given(TEXT)
def test_norm_dn_id_guid_are_idempotent(s: str) -> None:
    for f in (norm_dn, norm_id, norm_guid):
        once = f(s)
        assert once is None or f(once) == once


@given(st.lists(st.tuples(st.sampled_from(["CN", "OU", "DC", "cn", "ou", "dc"]),
                          st.text(alphabet="abcdefghijklmnopqrstuvwxyzÉéü ", min_size=1, max_size=12)),
                min_size=1, max_size=5), st.data())
def test_norm_dn_ignores_case_spacing_and_unicode_form(rdns: list[tuple[str, str]], data: st.DataObject) -> None:
    plain = ",".join(f"{attr}={value.strip() or 'x'}" for attr, value in rdns)
    noisy = ""
    for i, (attr, value) in enumerate(rdns):
        value = value.strip() or "x"
        sep = data.draw(st.sampled_from([",", ", ", " , "])) if i else ""
        eq = data.draw(st.sampled_from(["=", " = ", "= "]))
        form: Literal["NFC", "NFD"] = data.draw(st.sampled_from(["NFC", "NFD"]))
        noisy += sep + data.draw(st.sampled_from([attr.upper(), attr.lower()])) + eq + unicodedata.normalize(
            form, data.draw(st.sampled_from([value, value.upper(), value.casefold()])))
    assert norm_dn(noisy) == norm_dn(plain)


NAME = st.text(alphabet=st.characters(categories=["L", "Nd"]), min_size=1, max_size=12)


@settings(max_examples=75, deadline=None)
@given(st.lists(NAME, min_size=1, max_size=4), st.data())
def test_the_engine_reports_no_drift_for_case_space_and_unicode_noise(words: list[str], data: st.DataObject) -> None:
    """End to end through the drift engine: arbitrary titles and departments, re-written as each system might
    (case-folded, NFD, extra whitespace), are not drift; a different word is."""
    title = " ".join(words)

    def noisy() -> str:
        ws = data.draw(WHITESPACE)
        text = ws.join(unicodedata.normalize(data.draw(st.sampled_from(["NFC", "NFD"])),
                                             data.draw(st.sampled_from([w, w.casefold()]))) for w in words)
        return data.draw(WHITESPACE) + text + data.draw(WHITESPACE)

    workday, ad_, entra_ = clean_people()
    workday = with_(workday, EMP_EID, title=title, department=title)
    ad_ = with_(ad_, EMP_DN, title=noisy(), department=noisy())
    entra_ = with_(entra_, EMP_OID, title=noisy(), department=noisy())
    assert audit_people(workday, ad_, entra_, {"workday", "ad", "entra"}).discrepancies == []

    changed = with_(ad_, EMP_DN, title=title + " Senior")
    found = audit_people(workday, changed, entra_, {"workday", "ad", "entra"}).discrepancies
    assert {(d.field, d.system_a, d.system_b) for d in found} >= {("job_title", "Workday", "ActiveDirectory")}
