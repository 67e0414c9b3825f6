"""The capture scrubber: consistent pseudonyms, nothing identifying survives, secrets never
written, ids still parse."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain.runid import parse_configuration_id, parse_run_id
from services.domain.scrub import REDACTED, Scrubber, scrub_documents

GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Names from an alphabet no schema word or pseudonym uses, so "the original does not occur
# in the output" cannot be fooled (or fail) by a coincidence with fixed text.
names = st.text("zqxjkw0123456789", min_size=4, max_size=12).map(lambda s: "zq" + s)
guids = st.uuids(version=4).map(str)
ipv4 = st.tuples(*[st.integers(11, 250)] * 4).map(lambda t: ".".join(map(str, t)))
emails = st.tuples(names, names).map(lambda t: f"{t[0]}@{t[1]}.com")
casing = st.sampled_from([str.lower, str.upper, str, str.title])


def config_id(sub: str, rg: str, name: str) -> str:
    return (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Maintenance/"
            f"maintenanceConfigurations/{name}")


def machine_id(sub: str, rg: str, name: str) -> str:
    return (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
            f"virtualMachines/{name}")


@st.composite
def tenants(draw: st.DrawFn) -> dict[str, Any]:
    """A small tenant: identifiers and documents that mention them in varying casing."""
    sub, other_sub, tenant = draw(guids), draw(guids), draw(guids)
    # Distinct texts: one text used as two kinds gets one pseudonym (of the first kind).
    count = draw(st.integers(3, 5))
    rg, cfg, *machines = draw(st.lists(names, min_size=count, max_size=count,
                                       unique_by=str.lower))
    ip = draw(ipv4)
    email = draw(emails.filter(lambda e: not {rg, cfg, *machines} & set(re.split("[@.]", e))))
    case = draw(st.lists(casing, min_size=6, max_size=6))
    cid = config_id(sub, rg, cfg)
    run = f"{case[0](cid)}/providers/microsoft.maintenance/applyupdates/20260310120000"
    config_row = {"id": cid, "name": cfg, "resourceGroup": rg.lower(), "subscriptionId": sub,
                  "tenantId": tenant, "location": "westeurope",
                  "properties": {"maintenanceScope": "InGuestPatch",
                                 "maintenanceWindow": {"recurEvery": "Week Saturday"}},
                  "tags": {"owner": email}}
    run_row = {"id": run.lower(), "name": "20260310120000",
               "properties": {"correlationId": run, "maintenanceConfigurationId": case[1](cid),
                              "status": "Failed",
                              "error": {"message": f"{case[2](machines[0])} at {ip} failed"}}}
    machine_rows = [{"id": case[3](machine_id(sub, rg, m)) + "/patchInstallationResults/"
                     + str(uuid.UUID(int=i + 1)),
                     "machineId": machine_id(sub, rg, m).lower(),
                     "properties": {"resourceId": machine_id(case[4](sub), rg, m),
                                    "correlationId": run}} for i, m in enumerate(machines)]
    event = {"id": run, "topic": cid, "subject": case[5](cfg),
             "data": {"CorrelationId": run, "ResourceSubscriptionIds": [sub, other_sub]}}
    return {
        "identifiers": {"subscription": [sub, other_sub], "tenant": [tenant],
                        "resource_group": [rg], "configuration": [cfg],
                        "machine": machines, "ip": [ip], "email": [email]},
        "documents": {"configs": [config_row], "runs": [run_row], "machines": machine_rows},
        "message": base64.b64encode(json.dumps(event).encode()).decode(),
        "run": run,
    }


def _scrub(tenant: dict[str, Any]) -> tuple[dict[str, Any], list[str], Scrubber]:
    return scrub_documents(tenant["documents"], [tenant["message"]])


@settings(max_examples=60, deadline=None)
@given(tenants())
def test_no_original_identifier_survives_anywhere(tenant: dict[str, Any]) -> None:
    docs, messages, _ = _scrub(tenant)
    decoded = base64.b64decode(messages[0]).decode()
    text = (json.dumps(docs) + decoded).lower()
    for kind, values in tenant["identifiers"].items():
        for value in values:
            assert value.lower() not in text, f"{kind} survived"


@settings(max_examples=60, deadline=None)
@given(tenants())
def test_the_same_identifier_gets_the_same_pseudonym_in_every_file_and_casing(
        tenant: dict[str, Any]) -> None:
    docs, messages, scrubber = _scrub(tenant)
    event = json.loads(base64.b64decode(messages[0]))
    ids = tenant["identifiers"]
    sub, cfg = ids["subscription"][0], ids["configuration"][0]
    config_row = docs["configs"][0]
    run_row = docs["runs"][0]
    # The one configuration, as it appears in the config row, the run row and the event.
    _, _, name_in_config = parse_configuration_id(config_row["id"])
    assert config_row["name"] == name_in_config
    assert parse_run_id(run_row["properties"]["correlationId"]).configuration_name.lower() \
        == name_in_config.lower()
    assert parse_run_id(run_row["id"]).configuration_name.lower() == name_in_config.lower()
    assert event["subject"].lower() == name_in_config.lower() == scrubber.pseudonym(cfg)
    # The subscription, in a column, inside ids, inside the event's list.
    assert config_row["subscriptionId"] == scrubber.pseudonym(sub)
    assert parse_run_id(run_row["properties"]["correlationId"]).subscription_id.lower() \
        == scrubber.pseudonym(sub)
    assert event["data"]["ResourceSubscriptionIds"][0] == scrubber.pseudonym(sub)
    assert event["data"]["ResourceSubscriptionIds"][1] == scrubber.pseudonym(ids["subscription"][1])
    # Each machine: the patch row id, the join column and the resource id agree.
    for row, original in zip(docs["machines"], ids["machine"], strict=True):
        pseudonym = scrubber.pseudonym(original)
        assert pseudonym is not None and pseudonym.startswith("vm-")
        assert row["machineId"].rsplit("/", 1)[-1] == pseudonym
        assert row["properties"]["resourceId"].rsplit("/", 1)[-1] == pseudonym
        assert row["id"].split("/patchInstallationResults/")[0].rsplit("/", 1)[-1] == pseudonym
    # The error message names the first machine by the same pseudonym.
    assert scrubber.pseudonym(ids["machine"][0]) in run_row["properties"]["error"]["message"]
    # Distinct identifiers get distinct pseudonyms.
    table = scrubber.table()
    assert len(set(table.values())) == len(table)


@settings(max_examples=60, deadline=None)
@given(tenants())
def test_scrubbed_ids_stay_well_formed(tenant: dict[str, Any]) -> None:
    docs, _, scrubber = _scrub(tenant)
    run = docs["runs"][0]["properties"]["correlationId"]
    parsed = parse_run_id(run)
    assert parsed.run_name == "20260310120000"  # run names name no one: kept
    assert parsed.start is not None
    assert GUID_RE.fullmatch(parsed.subscription_id)
    assert GUID_RE.fullmatch(docs["configs"][0]["tenantId"])
    assert parsed.resource_group.startswith("rg-")
    assert parsed.configuration_name.startswith("mc-")
    assert docs["machines"][0]["id"].split("/patchInstallationResults/")[1] \
        == str(uuid.UUID(int=1))
    ip = scrubber.pseudonym(tenant["identifiers"]["ip"][0])
    assert ip is not None and ip.startswith(("192.0.2.", "198.51.100.", "203.0.113."))
    assert docs["configs"][0]["tags"]["owner"].endswith("@example.com")
    # Fields that are not identifiers are untouched.
    assert docs["configs"][0]["properties"]["maintenanceWindow"]["recurEvery"] == "Week Saturday"
    assert docs["runs"][0]["properties"]["status"] == "Failed"


def test_pseudonyms_are_deterministic_for_one_salt_and_differ_between_captures() -> None:
    documents = {"rows": [{"id": config_id("11111111-2222-4333-8444-555555555555", "rg-a", "cfg")}]}
    one, _, _ = scrub_documents(documents, salt="0badcafe")
    two, _, _ = scrub_documents(documents, salt="0badcafe")
    other, _, _ = scrub_documents(documents, salt="feedbeef")
    assert one == two
    assert one != other  # GUIDs carry the capture's salt: two captures cannot be joined


SECRETS = [
    "https://acct.queue.core.windows.net/q?sv=2021-08-06&se=2026-03-10&sp=r&sig=AbCdEf%2B12%3D",
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5c2VjcmV0==;"
    "EndpointSuffix=core.windows.net",
    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=S3cr3tK3y=",
    "Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    "https://hooks.example.net/api/webhook?code=K3yK3yK3y&clientId=default",
    "token eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjoiYm9iIn0.sIgNaTuRe",
]
SECRET_PARTS = ["AbCdEf%2B12%3D", "c2VjcmV0a2V5c2VjcmV0", "S3cr3tK3y", "eyJ0eXAiOiJKV1Qi",
                "K3yK3yK3y", "eyJhbGciOiJIUzI1NiJ9"]


def test_secrets_and_tokens_are_never_written() -> None:
    documents = {"rows": [{"properties": {"error": {"message": text}}} for text in SECRETS]
                 + [{"properties": {"connectionString": "anything at all",
                                    "sasToken": "?sv=1&sig=x", "clientSecret": "hunter2",
                                    "webhookUrl": "https://h.example.net/x?k=1"}}]}
    event = {"topic": "x", "data": {"Url": SECRETS[0]}}
    message = base64.b64encode(json.dumps(event).encode()).decode()
    docs, messages, scrubber = scrub_documents(documents, [message, SECRETS[1]])
    written = json.dumps(docs) + base64.b64decode(messages[0]).decode() + messages[1]
    for part in [*SECRET_PARTS, "hunter2", "anything at all", "k=1"]:
        assert part not in written
    assert REDACTED in written
    assert scrubber.report()["secrets"] >= len(SECRETS) + 4


def test_report_counts_kinds_and_never_names_an_original() -> None:
    sub = "11111111-2222-4333-8444-555555555555"
    documents = {"rows": [
        {"id": config_id(sub, "RG-Prod", "Patch-WEU"), "resourceGroup": "rg-prod"},
        {"id": machine_id(sub.upper(), "rg-prod", "web-01"),
         "properties": {"message": "web-01 (10.0.0.7) owned by ann@contoso.com"},
         "tags": {"ann@contoso.com": "owner", "web-01": "primary"}},
    ]}
    app = "7d3c2b1a-0000-4000-8000-00000000abcd"
    documents["rows"].append({"systemData": {"createdBy": "Ann Lee", "createdByType": "User",
                                             "lastModifiedBy": app,
                                             "lastModifiedByType": "Application"}})
    docs, _, scrubber = scrub_documents(documents)
    assert docs["rows"][2]["systemData"] == {
        "createdBy": scrubber.pseudonym("ann lee"), "createdByType": "User",
        "lastModifiedBy": scrubber.pseudonym(app), "lastModifiedByType": "Application"}
    assert {scrubber.pseudonym("ann lee"), scrubber.pseudonym(app)} == {"principal-001",
                                                                       "principal-002"}
    # A tag's name is the user's text: scrubbed like its value.
    assert set(docs["rows"][1]["tags"]) == {scrubber.pseudonym("ann@contoso.com"),
                                            scrubber.pseudonym("web-01")}
    report = scrubber.report()
    assert report["subscription"] == 1  # one subscription, whatever its casing
    assert report["resource_group"] == 1
    assert report["configuration"] == 1
    assert report["machine"] == 1
    assert report["ip"] == 1
    assert report["email"] == 1
    assert report["principal"] == 2
    text = json.dumps(report).lower()
    for original in (sub, "rg-prod", "patch-weu", "web-01", "10.0.0.7", "contoso", "ann lee"):
        assert original not in text


def test_plain_and_base64_messages_keep_their_form_and_undecodable_text_is_scrubbed() -> None:
    cid = config_id("11111111-2222-4333-8444-555555555555", "rg-a", "cfg-one")
    event = {"topic": cid, "subject": "cfg-one"}
    plain = json.dumps(event)
    b64 = base64.b64encode(plain.encode()).decode()
    junk = '{"data": [bold] cfg-one at 10.9.8.7'
    _, (out_plain, out_b64, out_junk), scrubber = scrub_documents({}, [plain, b64, junk])
    assert json.loads(out_plain)["subject"] == scrubber.pseudonym("cfg-one")
    assert json.loads(base64.b64decode(out_b64))["subject"] == scrubber.pseudonym("cfg-one")
    assert "cfg-one" not in out_junk and "10.9.8.7" not in out_junk
    assert out_junk.startswith('{"data": [bold] mc-')


def test_times_versions_and_run_names_are_not_taken_for_addresses() -> None:
    text = "started 2026-03-10T12:30:00.000Z, agent 1.2.3, run 20260310120000, KB5034441"
    docs, _, _ = scrub_documents({"t": {"message": text}})
    assert docs["t"]["message"] == text


def test_names_that_are_prefixes_of_each_other_are_each_replaced_whole() -> None:
    sub = "11111111-2222-4333-8444-555555555555"
    machines = ["web-01", "web-012", "web-01-b", "web"]
    documents = {"rows": [{"id": machine_id(sub, "rg", m)} for m in machines]
                 + [{"message": "web-012 waited for web-01, then web-01-b and web; web-0123"}]}
    docs, _, scrubber = scrub_documents(documents)
    names = [scrubber.pseudonym(m) for m in machines]
    assert len(set(names)) == 4 and all(n and n.startswith("vm-") for n in names)
    for row, name in zip(docs["rows"], names, strict=False):
        assert row["id"].rsplit("/", 1)[-1] == name
    assert docs["rows"][-1]["message"] == (
        f"{names[1]} waited for {names[0]}, then {names[2]} and {names[3]}; web-0123")
    # The two-letter resource group is replaced as an id segment only.
    assert "/resourceGroups/rg-" in docs["rows"][0]["id"]
