"""Normalisation: what is noise, not drift (docs/drift-rules.md)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus.drift.normalize import (
    OwnerKind,
    norm_dn,
    norm_email,
    norm_guid,
    norm_serial,
    norm_text,
    parse_owner,
)

# Letters whose case round-trips (casefold(upper(c)) == casefold(c)); enough to model how systems re-case names.
LATIN = "abcdefghijklmnopqrstuvwxyzéèêëáàâäóòôöúùûüçñåøæ"
WHITESPACE = st.sampled_from([" ", "  ", "\t", "\u00a0", "\n", " \u2003 "])


def test_norm_text_basics() -> None:
    assert norm_text(None) is None
    assert norm_text("   ") is None
    assert norm_text("  Senior   Engineer\t") == "senior engineer"
    assert norm_text("Straße") == norm_text("STRASSE")
    assert norm_text("Ren\u00e9e") == norm_text("Rene\u0301e")  # NFC vs NFD
    assert norm_text("Engineer") != norm_text("Senior Engineer")


def test_norm_email_serial() -> None:
    assert norm_email(" Jane.Doe@Corp.Example ") == "jane.doe@corp.example"
    assert norm_email("SMTP:jdoe@example.com") == norm_email("smtp:JDoe@Example.com") == "jdoe@example.com"
    assert norm_email(None) is None and norm_email(" ") is None
    assert norm_serial(" 5cg1234xyz ") == "5CG1234XYZ"
    assert norm_serial(None) is None


def test_norm_dn_and_guid() -> None:
    a = "CN=Jane Doe,OU=Users,OU=Engineering,DC=corp,DC=example"
    b = "cn=jane doe, ou=users, ou=ENGINEERING, dc=corp, dc=example"
    assert norm_dn(a) == norm_dn(b)
    assert norm_dn(r"CN=Doe\, Jane,DC=corp") != norm_dn("CN=Doe,CN=Jane,DC=corp")
    assert norm_guid("{0F6C1B8E-1111-4A8B-9C1D-000000000001}") == "0f6c1b8e-1111-4a8b-9c1d-000000000001"
    assert norm_guid("not-a-guid") is None


@pytest.mark.parametrize(
    ("ref", "kind", "value", "domain"),
    [
        ("Jane.Doe@Corp.Example", OwnerKind.EMAIL, "jane.doe@corp.example", None),
        ("CORP\\JDoe", OwnerKind.SAM, "jdoe", "CORP"),
        ("corp\\jdoe ", OwnerKind.SAM, "jdoe", "CORP"),
        ("jdoe", OwnerKind.SAM, "jdoe", None),
        ("CN=Jane Doe,OU=Users,DC=corp,DC=example", OwnerKind.DN, "cn=jane doe,ou=users,dc=corp,dc=example", None),
        ("0F6C1B8E-1111-4A8B-9C1D-000000000001", OwnerKind.GUID, "0f6c1b8e-1111-4a8b-9c1d-000000000001", None),
        (" 100042 ", OwnerKind.EMPLOYEE_ID, "100042", None),
    ],
)
def test_parse_owner(ref: str, kind: OwnerKind, value: str, domain: str | None) -> None:
    owner = parse_owner(ref)
    assert owner is not None
    assert (owner.kind, owner.value, owner.domain, owner.raw) == (kind, value, domain, ref)


def test_parse_owner_blank() -> None:
    assert parse_owner(None) is None
    assert parse_owner("  ") is None


@given(st.text())
def test_normalisers_are_idempotent(s: str) -> None:
    for f in (norm_text, norm_email, norm_serial):
        once = f(s)
        assert f(once) == once


@given(st.text())
def test_norm_text_ignores_unicode_form(s: str) -> None:
    expected = norm_text(s)
    for form in ("NFC", "NFD"):
        assert norm_text(unicodedata.normalize(form, s)) == expected


@given(st.text())
def test_norm_text_output_is_nfc_trimmed_and_single_spaced(s: str) -> None:
    out = norm_text(s)
    if out is not None:
        assert out == unicodedata.normalize("NFC", out)
        assert out == out.strip()
        assert "  " not in out
        assert " ".join(out.split()) == out


@given(st.lists(st.text(alphabet=LATIN, min_size=1), min_size=1, max_size=5), st.data())
def test_norm_text_ignores_case_spacing_and_form(words: list[str], data: st.DataObject) -> None:
    """The noise the generator plants (re-cased, re-spaced, decomposed) never changes the normal form."""
    plain = " ".join(words)
    noisy = data.draw(WHITESPACE)
    for word in words:
        variant = data.draw(st.sampled_from([word, word.upper(), word.title(), word.swapcase()]))
        noisy += unicodedata.normalize(data.draw(st.sampled_from(["NFC", "NFD"])), variant) + data.draw(WHITESPACE)
    assert norm_text(noisy) == norm_text(plain)


@given(st.from_regex(r"[A-Za-z0-9._-]{1,20}@[A-Za-z0-9-]{1,10}\.[A-Za-z]{2,5}", fullmatch=True), st.data())
def test_norm_email_ignores_case_and_padding(email: str, data: st.DataObject) -> None:
    variant = data.draw(st.sampled_from([email.upper(), email.lower(), email.swapcase()]))
    assert norm_email(f"  {variant}\t") == norm_email(email) == email.lower()


@given(st.from_regex(r"[A-Za-z0-9]{6,14}", fullmatch=True))
def test_norm_serial_ignores_case_and_padding(serial: str) -> None:
    assert norm_serial(f" {serial.lower()} ") == norm_serial(serial.upper()) == serial.upper()
