"""`nexus sim --org DIR` importers: each export format, its rough edges, and the errors (file and line)."""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nexus.cli.app import app
from nexus.sim.org_import import FILES, load_org, parse_exported_at
from nexus.sim.org_import_devices import fedex_shipments, helix_records, intune_devices, lansweeper_assets
from nexus.sim.org_import_json import EntryError, Notes, OrgImportError
from nexus.sim.org_import_ldif import LdifError, ad_accounts, parse_ldif
from nexus.sim.org_import_people import RAAS_FIELDS, entra_users, workday_workers

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "org"
EXPORTED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


# -- Workday (RaaS) -------------------------------------------------------------------------------------------------
def test_raas_entries_become_workers_with_raas_conventions() -> None:
    doc = {"Report_Entry": [
        {"Employee_ID": "7", "Worker": "Ann Lee", "Active_Status": "0", "Hire_Date": "2021-03-15-08:00",
         "Termination_Date": "2026-01-31+01:00", "Manager_Employee_ID": "3", "Email_-_Work": "ann@corp.example"},
        {"Employee_ID": "8", "First_Name": "Bo", "Last_Name": "Ek", "Active_Status": "1", "Hire_Date": "2020-01-02"},
    ]}
    ann, bo = workday_workers(doc)
    assert (ann.active, ann.hire_date, ann.termination_date, ann.manager_id) == (
        False, date(2021, 3, 15), date(2026, 1, 31), "3")
    assert ann.email == "ann@corp.example" and ann.title == "" and len(ann.wid) == 32
    assert bo.active and bo.display_name == "Bo Ek" and bo.termination_date is None and bo.manager_id is None
    assert RAAS_FIELDS["active"] == "Active_Status"  # the one place the report's names live


@pytest.mark.parametrize(("entry", "message"), [
    ({"Employee_ID": "7", "Worker": "A", "Active_Status": "yes", "Hire_Date": "2021-03-15"}, 'expected "1" or "0"'),
    ({"Employee_ID": "7", "Worker": "A", "Hire_Date": "2021-03-15"}, "Active_Status is missing"),
    ({"Employee_ID": "7", "Worker": "A", "Active_Status": "1", "Hire_Date": "15/03/2021"}, "is not a date"),
    ({"Worker": "A", "Active_Status": "1", "Hire_Date": "2021-03-15"}, "Employee_ID is missing"),
    ({"Employee_ID": 7, "Worker": "A", "Active_Status": "1", "Hire_Date": "2021-03-15"}, "expected text"),
])
def test_raas_bad_entry_names_what_is_wrong(entry: dict[str, object], message: str) -> None:
    with pytest.raises(EntryError, match=message) as caught:
        workday_workers({"Report_Entry": [entry]})
    assert caught.value.path == ("Report_Entry", 0)


def test_raas_duplicate_employee_id_refused() -> None:
    entry = {"Employee_ID": "7", "Worker": "A", "Active_Status": "1", "Hire_Date": "2021-03-15"}
    with pytest.raises(EntryError, match="duplicate Employee_ID '7'"):
        workday_workers({"Report_Entry": [entry, dict(entry)]})


# -- Entra, Intune (Graph collections) ------------------------------------------------------------------------------
def _user(uid: str, **extra: object) -> dict[str, object]:
    return {"id": uid, "userPrincipalName": f"{uid}@corp.example", "accountEnabled": True, **extra}


def test_graph_users_tolerate_odata_keys_and_read_the_expanded_manager() -> None:
    notes = Notes([])
    doc = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "@odata.nextLink": "https://x",
           "value": [_user("m"), _user("u", manager={"id": "m", "employeeId": "1"}, jobTitle="Dev",
                                       otherMails=["alias@corp.example"], userType="Guest")]}
    manager, user = entra_users(doc, notes)
    assert user.manager_id == "m" and user.job_title == "Dev" and user.other_mails == ["alias@corp.example"]
    assert user.user_type == "Guest" and manager.user_type == "Member" and manager.manager_id is None
    assert any("nextLink" in n for n in notes.lines)


@pytest.mark.parametrize(("users", "message"), [
    ([{"id": "u", "userPrincipalName": "u@x"}], "accountEnabled is missing"),
    ([_user("u", manager={"id": "elsewhere"})], "manager 'elsewhere' is not a user of this export"),
    ([_user("u", accountEnabled="true")], "expected true or false"),
    ([_user("u"), _user("U")], "duplicate id"),
])
def test_graph_users_refuse_what_cannot_be_served(users: list[object], message: str) -> None:
    with pytest.raises(EntryError, match=message):
        entra_users({"value": users})


def test_graph_collection_refuses_other_top_level_keys() -> None:
    with pytest.raises(EntryError, match="unexpected top-level key 'users'"):
        entra_users({"value": [], "users": []})


def test_intune_devices() -> None:
    doc = {"value": [{"id": "d1", "serialNumber": "ABC", "userPrincipalName": "a@corp.example",
                      "complianceState": "noncompliant", "lastSyncDateTime": "2026-11-01T10:00:00Z"}]}
    (device,) = intune_devices(doc)
    assert device.last_sync == datetime(2026, 11, 1, 10, tzinfo=UTC) and device.compliance_state == "noncompliant"
    assert device.enrolled.year == 1  # Graph's own "unknown" date, not an invented one
    with pytest.raises(EntryError, match="lastSyncDateTime is missing"):
        intune_devices({"value": [{"id": "d1", "serialNumber": "ABC"}]})


# -- Lansweeper, Helix, FedEx -------------------------------------------------------------------------------------
def test_lansweeper_items_join_domain_and_user() -> None:
    doc = {"items": [{"key": "k1", "assetBasicInfo": {"name": "PC", "userName": "ann", "userDomain": "CORP",
                                                      "lastSeen": "2026-11-01T10:00:00.000Z"},
                      "assetCustom": {"serialNumber": "S1"}}]}
    (asset,) = lansweeper_assets(doc)
    assert asset.user_name == "CORP\\ann" and asset.serial == "S1"
    with pytest.raises(EntryError, match="an assetCustom object"):
        lansweeper_assets({"items": [{"key": "k1", "assetBasicInfo": {"lastSeen": "2026-11-01T10:00:00Z"}}]})


def test_helix_forms_keep_return_tickets_and_count_the_rest() -> None:
    notes = Notes([])
    doc = {"AST:ComputerSystem": {"entries": [{"values": {"Reconciliation Identity": "RE1", "Serial Number": "S1",
                                                          "AssetLifecycleStatus": "Deployed"}}]},
           "HPD:Help Desk": {"entries": [
               {"values": {"Incident Number": "INC1", "Serial Number": "S1", "Tracking Number": "123",
                           "Submit Date": "2026-10-01T08:30:00.000+0000", "Status": "Assigned"}},
               {"values": {"Incident Number": "INC2", "Description": "printer"}}]}}
    (asset,), (ticket,) = helix_records(doc, notes)
    assert asset.status == "Deployed" and ticket.submit_date == datetime(2026, 10, 1, 8, 30, tzinfo=UTC)
    assert notes.lines == ["helix.json: 1 HPD:Help Desk entries without a Serial Number left out (not return "
                           "tickets)"]
    with pytest.raises(EntryError, match="unknown form 'HPD:Help'"):
        helix_records({"HPD:Help": {"entries": []}})


def test_fedex_results_in_each_accepted_shape() -> None:
    result = {"trackingNumber": "111", "trackResults": [{
        "latestStatusDetail": {"code": "DL", "description": "Delivered"},
        "dateAndTimes": [{"type": "ACTUAL_DELIVERY", "dateTime": "2026-06-19T10:41:00-05:00"},
                         {"type": "SHIP", "dateTime": "2026-06-16T17:02:00-05:00"}]}]}
    unknown = {"trackingNumber": "222", "trackResults": [{"error": {"code": "TRACKING.TRACKINGNUMBER.NOTFOUND"}}]}
    for doc in ({"output": {"completeTrackResults": [result, unknown]}}, {"completeTrackResults": [result]},
                [result], [{"output": {"completeTrackResults": [result]}}]):
        (ship,) = fedex_shipments(doc)
        assert ship.tracking_number == "111" and ship.status_code == "DL"
        assert ship.delivered_at == datetime(2026, 6, 19, 15, 41, tzinfo=UTC)
    no_ship = {"trackingNumber": "3", "trackResults": [{"latestStatusDetail": {"code": "OC"}, "dateAndTimes": []}]}
    with pytest.raises(EntryError, match="no SHIP"):
        fedex_shipments([no_ship])


# -- LDIF ---------------------------------------------------------------------------------------------------------
def _account(dn_line: str, *lines: str) -> str:
    return "\n".join([dn_line, "objectClass: top", "objectClass: person", "objectClass: organizationalPerson",
                      "objectClass: user", *lines]) + "\n"


def test_ldif_folding_base64_comments_and_changetype_add() -> None:
    guid = uuid.UUID("3f2504e0-4f89-41d3-9a0c-0305e82c3301")
    text = ("# exported by ldifde\n#  folded comment line\nversion: 1\n\n"
            + _account(f"dn:: {b64('CN=Zoë Ångström,OU=Users,DC=corp,DC=example')}", "changetype: add",
                       "sAMAccountName: zoe", f"displayName:: {b64('Zoë Ångström')}",
                       "manager: CN=Boss\\, The,OU=Us", " ers,DC=corp,DC=example",
                       f"objectGUID:: {base64.b64encode(guid.bytes_le).decode()}", "userAccountControl: 514",
                       "accountExpires: 0", "lastLogonTimestamp: 134403273000000000", "title:   Chief\r"))
    (user,), base = ad_accounts(text)
    assert base == "DC=corp,DC=example"
    assert user.dn == "CN=Zoë Ångström,OU=Users,DC=corp,DC=example" and user.display_name == "Zoë Ångström"
    assert user.manager_dn == "CN=Boss\\, The,OU=Users,DC=corp,DC=example"
    assert user.object_guid == str(guid) and user.enabled is False and user.title == "Chief"
    assert user.account_expires is None and user.last_logon == datetime(2026, 11, 28, 8, 15, tzinfo=UTC)
    assert user.cn == "Zoë Ångström" and user.sn == "Zoë Ångström"  # sn: slapd's person needs one


def test_ldif_escaped_comma_dn_and_skipped_entries() -> None:
    notes = Notes([])
    text = "\n".join([
        "dn: DC=corp,DC=example", "objectClass: domain", "",
        _account("dn: CN=Administrator,CN=Users,DC=corp,DC=example", "sAMAccountName: Administrator",
                 "userAccountControl: 66048"),
        _account("dn: cn=Lee\\2C Ann,OU=Users,DC=corp,DC=example", "sAMAccountName: ann",
                 "userAccountControl: 66048", "accountExpires: 134403273000000000"),
        _account("dn: CN=WS1,CN=Computers,DC=corp,DC=example", "objectClass: computer", "sAMAccountName: WS1$",
                 "userAccountControl: 4096"),
    ])
    (user,), _base = ad_accounts(text, notes)
    assert user.dn == "CN=Lee\\, Ann,OU=Users,DC=corp,DC=example" and user.cn == "Lee, Ann"
    assert user.enabled and user.account_expires == datetime(2026, 11, 28, 8, 15, tzinfo=UTC)
    assert notes.lines and "Administrator" in notes.lines[0]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("dn: CN=a,DC=x\ncn:: not*base64\n", 2, "not valid base64"),
    ("sn: a\n", 1, "must start with 'dn:'"),
    (" folded\n", 1, "follows no line"),
    ("dn: CN=a,DC=x\nchangetype: modify\n", 2, "only content records"),
    ("dn: CN=a,DC=x\njpegPhoto:< file:///tmp/a.jpg\n", 2, "URL values"),
    ("dn: CN=a,DC=x\nno colon here\n", 2, "expected 'attribute: value'"),
])
def test_ldif_syntax_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(LdifError, match=message) as caught:
        parse_ldif(text)
    assert caught.value.line == line


@pytest.mark.parametrize(("records", "line", "message"), [
    ([_account("dn: CN=a,OU=U,DC=corp,DC=example", "userAccountControl: 512")], 1, "no sAMAccountName"),
    ([_account("dn: CN=a,OU=U,DC=corp,DC=example", "sAMAccountName: a", "userAccountControl: 512"),
      _account("dn: CN=b,OU=U,DC=other,DC=example", "sAMAccountName: b", "userAccountControl: 512")], 9,
     "another domain"),
    ([_account("dn: CN=a,OU=U,DC=corp,DC=example", "sAMAccountName: a", "userAccountControl: 512"),
      _account("dn: CN=b,OU=U,DC=corp,DC=example", "sAMAccountName: A", "userAccountControl: 512")], 9,
     "duplicate sAMAccountName"),
    ([_account("dn: CN=a,OU=U,DC=corp,DC=example", "sAMAccountName: a", "userAccountControl: 512",
               "lastLogonTimestamp: yesterday")], 8, "not a FILETIME"),
    ([_account("dn: CN=a,OU=U,DC=corp,DC=example", "sAMAccountName: a", "userAccountControl: 512",
               "title: One", "title: Two")], 9, "title has a second value"),
])
def test_ldif_account_errors_name_the_line(records: list[str], line: int, message: str) -> None:
    with pytest.raises(LdifError, match=message) as caught:
        ad_accounts("\n".join(records))
    assert caught.value.line == line


# -- the directory -----------------------------------------------------------------------------------------------
def test_the_example_imports_whole() -> None:
    imported = load_org(EXAMPLE, exported_at=EXPORTED_AT, now=EXPORTED_AT)
    org = imported.org
    assert imported.files == list(FILES)
    assert (len(org.workday), len(org.ad), len(org.entra), len(org.intune)) == (12, 12, 11, 11)
    assert (len(org.lansweeper), len(org.helix_assets), len(org.helix_tickets), len(org.fedex)) == (11, 11, 2, 2)
    assert org.base_dn == "DC=corp,DC=example" and org.domain == "corp.example" and org.truth == {}
    emma = next(u for u in org.ad if u.sam == "emma.obrien")
    assert emma.dn == "CN=O'Brien\\, Emma,OU=Users,OU=Finance,DC=corp,DC=example"


def test_exported_at_moves_every_date_by_whole_days() -> None:
    now = EXPORTED_AT + timedelta(days=10, hours=5)
    same = load_org(EXAMPLE, now=EXPORTED_AT).org
    moved = load_org(EXAMPLE, exported_at=EXPORTED_AT, now=now).org
    ended = same.workday[6].termination_date
    assert ended is not None and moved.workday[6].termination_date == ended + timedelta(days=10)
    assert moved.intune[0].last_sync == same.intune[0].last_sync + timedelta(days=10)
    assert moved.ad[0].last_logon == same.ad[0].last_logon + timedelta(days=10)  # type: ignore[operator]
    assert moved.fedex[0].delivered_at == same.fedex[0].delivered_at + timedelta(days=10)  # type: ignore[operator]
    assert moved.helix_tickets[1].submit_date == same.helix_tickets[1].submit_date + timedelta(days=10)
    assert parse_exported_at("2026-11-30") == datetime(2026, 11, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="--exported-at"):
        parse_exported_at("last tuesday")


def test_a_missing_file_is_a_system_without_records(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "workday.json", tmp_path)
    org = load_org(tmp_path).org
    assert len(org.workday) == 12 and org.ad == [] and org.entra == [] and org.fedex == []
    assert org.base_dn == "DC=corp,DC=example"


def test_a_directory_without_exports_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OrgImportError, match="holds none of the export files"):
        load_org(tmp_path)
    with pytest.raises(OrgImportError, match="not a directory"):
        load_org(tmp_path / "nope")


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "intune.json", '{\n  "value": [\n    {"id": "d1",}\n  ]\n}\n')
    with pytest.raises(OrgImportError) as caught:
        load_org(tmp_path)
    assert (caught.value.file, caught.value.line) == ("intune.json", 3)
    assert str(caught.value).startswith("intune.json:3: not valid JSON")


def test_a_bad_record_names_file_and_the_line_it_starts_on(tmp_path: Path) -> None:
    good = {"Employee_ID": "1", "Worker": "A", "Active_Status": "1", "Hire_Date": "2021-03-15"}
    text = json.dumps({"Report_Entry": [good, {**good, "Employee_ID": "2", "Active_Status": "maybe"}]}, indent=2)
    write(tmp_path, "workday.json", text)
    with pytest.raises(OrgImportError) as caught:
        load_org(tmp_path)
    expected_line = text.splitlines().index("    {", 3) + 1  # the second entry's "{" (the first is on line 3)
    assert expected_line == 9
    assert (caught.value.file, caught.value.line) == ("workday.json", expected_line)
    assert "Report_Entry[1]: Active_Status is 'maybe'" in str(caught.value)


def test_a_bad_ldif_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "ad.ldif", "version: 1\n\ndn: CN=a,DC=corp,DC=example\ncn:: %%%\n")
    with pytest.raises(OrgImportError, match=r"^ad\.ldif:4: cn:: value is not valid base64$"):
        load_org(tmp_path)


def test_utf16_ldif_as_ldifde_u_writes_it(tmp_path: Path) -> None:
    text = _account("dn: CN=Zoë Lee,OU=U,DC=corp,DC=example", "sAMAccountName: zoe", "userAccountControl: 512")
    (tmp_path / "ad.ldif").write_bytes(text.replace("\n", "\r\n").encode("utf-16"))  # BOM + UTF-16LE, CRLF
    (user,) = load_org(tmp_path).org.ad
    assert user.dn == "CN=Zoë Lee,OU=U,DC=corp,DC=example" and user.sam == "zoe"


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "entra.json").write_bytes(b'{"value": [\n{"displayName": "Zo\xeb"}]}')
    with pytest.raises(OrgImportError, match=r"^entra\.json:2: not UTF-8"):
        load_org(tmp_path)


# -- the CLI --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["--truth", "t.json"], "--truth cannot be used with --org"),
    (["--people", "50"], "--people cannot be used with --org"),
    (["--seed", "3"], "--seed cannot be used with --org"),
    (["--exported-at", "soon"], "is not an ISO 8601"),
])
def test_cli_refuses_options_that_make_no_sense_with_org(tmp_path: Path, args: list[str], message: str) -> None:
    env_file = tmp_path / "env"
    result = CliRunner().invoke(app, ["sim", "--org", str(EXAMPLE), "--port", "0", "--env-file", str(env_file),
                                      *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not env_file.exists()


def test_cli_refuses_exported_at_without_org(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "--exported-at", "2026-11-30", "--env-file", str(tmp_path / "e")])
    assert result.exit_code == 2 and "--exported-at only applies to --org" in result.output


def test_cli_malformed_export_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    org = write(tmp_path, "fedex.json", '{"output": {"completeTrackResults": [\n  {"trackingNumber": "1",\n')
    env_file = tmp_path / "env"
    result = CliRunner().invoke(app, ["sim", "--org", str(org), "--port", "0", "--env-file", str(env_file)])
    assert result.exit_code == 2, result.output
    assert "fedex.json:3: not valid JSON" in result.output
    assert not env_file.exists()
