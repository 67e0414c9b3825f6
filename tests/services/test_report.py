"""The run report (services/domain/report.py) and its renderers (reportrender.py): golden files
in the three formats, a run with no events, hostile strings, the JSON contract.

Golden files are in tests/data/reports/. After a deliberate change of the output, rewrite them
with ``AUMWATCH_UPDATE_GOLDEN=1`` and read the diff before committing it.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.domain.model import Configuration, Machine, Run
from services.domain.report import (
    CancelFact,
    EventFact,
    ReportError,
    RunReport,
    TaskFact,
    build_report,
    parse_short_form,
    portal_resource_url,
    relative_to,
    report_file_name,
)
from services.domain.reportrender import md, render, render_html, render_json, visible

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "reports"

SUB = "00000000-0000-4000-8000-000000000001"
CONFIG_ID = (f"/subscriptions/{SUB}/resourceGroups/rg-patch/providers/Microsoft.Maintenance/"
             "maintenanceConfigurations/patch-web")
T = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
RUN_ID = f"{CONFIG_ID}/providers/microsoft.maintenance/applyupdates/20260310123000"
NOW = T + timedelta(hours=4)
PRE = "Microsoft.Maintenance.PreMaintenanceEvent"
POST = "Microsoft.Maintenance.PostMaintenanceEvent"
#: The contract keys of ``report --format json`` (issue 12).
CONTRACT_KEYS = {"run", "timeline", "events", "cancels", "tasks", "machines"}
RUN_KEYS = {"correlation_id", "configuration_name", "start", "end", "status", "cancelled_by"}


def config(name: str = "patch-web", config_id: str = CONFIG_ID) -> Configuration:
    return Configuration(
        id=config_id, name=name, resource_group="rg-patch", subscription_id=SUB,
        location="westeurope", scope="InGuestPatch", time_zone="W. Europe Standard Time",
        recur_every="Day", duration="03:00", start_date_time="2026-01-01 13:30",
        schedule_description="every day at 13:30 W. Europe Standard Time")


def vm(name: str, status: str, **kw: object) -> Machine:
    rid = (f"/subscriptions/{SUB}/resourceGroups/rg-patch/providers/Microsoft.Compute/"
           f"virtualMachines/{name}")
    return Machine(resource_id=rid, name=name, status=status, correlation_id=RUN_ID,
                   **kw)  # type: ignore[arg-type]


def completed_run() -> Run:
    return Run(correlation_id=RUN_ID, configuration_id=CONFIG_ID, configuration_name="patch-web",
               run_name="20260310123000", start=T, end=T + timedelta(hours=1, minutes=52),
               status="Completed", machines_total=2, machines_succeeded=1, machines_failed=1,
               source="arg")


def pre_event(**kw: object) -> EventFact:
    values: dict[str, object] = dict(
        kind="pre", event_type=PRE, event_id=RUN_ID, received_at=T - timedelta(minutes=34),
        event_time=T - timedelta(minutes=35), start=T, end=T + timedelta(hours=3),
        cutoff=T - timedelta(minutes=10))
    values.update(kw)
    return EventFact(**values)  # type: ignore[arg-type]


def post_event(**kw: object) -> EventFact:
    values: dict[str, object] = dict(
        kind="post", event_type=POST, event_id=RUN_ID,
        received_at=T + timedelta(hours=1, minutes=53),
        event_time=T + timedelta(hours=1, minutes=52), start=T, end=T + timedelta(hours=3),
        status="Succeeded")
    values.update(kw)
    return EventFact(**values)  # type: ignore[arg-type]


def full_report() -> RunReport:
    """A finished run with both events, a refused cancel, two task runs and two machines."""
    return build_report(
        RUN_ID, run=completed_run(), configuration=config(),
        events=[post_event(), pre_event()],
        cancels=[CancelFact(T - timedelta(minutes=5), "refused", T - timedelta(minutes=5),
                            identity="ops@contoso.example",
                            reason="the cancel window is not open (the run is locked)")],
        tasks=[TaskFact("snapshot", "pre", "ok", T - timedelta(minutes=34),
                        T - timedelta(minutes=31), 0, output="snapshot taken\n"),
               TaskFact("summary", "post", "failed", T + timedelta(hours=1, minutes=53),
                        T + timedelta(hours=1, minutes=54), 2, detail="exit code 2",
                        output="mail relay refused\n")],
        machines=[vm("web-01", "Succeeded", installed=5, failed=0, pending=0,
                     reboot="Completed", window_exceeded=False,
                     start=T + timedelta(minutes=1), end=T + timedelta(minutes=40)),
                  vm("web-02", "Failed", installed=2, failed=1, pending=1, reboot="NotNeeded",
                     window_exceeded=False, error="KB5034441 failed: 0x80070643",
                     start=T + timedelta(minutes=2), end=T + timedelta(hours=1, minutes=50))],
        now=NOW, tenant="contoso.example")


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("AUMWATCH_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
    assert path.exists(), f"{path} missing: run with AUMWATCH_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


# --- golden files ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["md", "json", "html"])
def test_a_full_report_matches_its_golden_file(fmt: str) -> None:
    check_golden(f"full.{fmt}", render(full_report(), fmt))


@pytest.mark.parametrize("fmt", ["md", "json", "html"])
def test_a_run_with_no_events_matches_its_golden_file(fmt: str) -> None:
    report = build_report(RUN_ID, run=completed_run(), configuration=config(), now=NOW)
    check_golden(f"no-events.{fmt}", render(report, fmt))


def test_the_report_is_the_same_on_every_build() -> None:
    assert render_json(full_report()) == render_json(full_report())


# --- what the report says --------------------------------------------------------------------


def test_the_json_report_has_the_contract_keys() -> None:
    data = json.loads(render_json(full_report()))
    assert CONTRACT_KEYS <= set(data)
    assert RUN_KEYS <= set(data["run"])
    assert all(set(entry) >= {"time", "what"} for entry in data["timeline"])
    assert data["run"]["start"] == "2026-03-10T12:30:00Z"
    assert data["run"]["status"] == "Completed" and data["run"]["cancelled_by"] is None
    assert [e["kind"] for e in data["events"]] == ["pre", "post"]  # in time order
    assert [t["task"] for t in data["tasks"]] == ["snapshot", "summary"]
    assert [m["name"] for m in data["machines"]] == ["web-01", "web-02"]
    assert data["cancels"][0]["who"] == "ops@contoso.example"


def test_the_timeline_is_sorted_and_tells_the_whole_story() -> None:
    report = full_report()
    times = [e.time for e in report.timeline]
    assert times == sorted(times)
    whats = [e.what for e in report.timeline]
    expected_in_order = [
        "cancel window opens (T-40m)",
        "pre-maintenance event (received 2026-03-10T11:56:00Z)",
        "task snapshot (pre) started",
        "task snapshot (pre) ok, exit code 0",
        "cancel window closes",
        "cancel attempt by ops@contoso.example: refused (the cancel window is not open "
        "(the run is locked))",
        "scheduled start",
        "first machine started patching",
        "last machine finished",
        "run ended: Completed",
        "post-maintenance event, status Succeeded (received 2026-03-10T14:23:00Z)",
        "task summary (post) started",
        "task summary (post) failed, exit code 2: exit code 2",
        "scheduled end of the maintenance window",
    ]
    assert whats == expected_in_order
    assert [e.relative for e in report.timeline][:2] == ["T-40m", "T-35m"]


def test_times_are_given_in_utc_and_in_the_configurations_zone() -> None:
    report = full_report()
    data = report.to_json()
    assert data["time_zone"] == "W. Europe Standard Time"
    assert data["run"]["start_local"] == "2026-03-10T13:30:00+01:00"
    text = render(report, "md")
    assert "- **Start:** 2026-03-10 12:30:00 UTC (13:30:00 CET)" in text
    assert "| 2026-03-10 12:30:00 | 2026-03-10 13:30:00 CET | T | scheduled start |" in text


def test_a_configuration_without_a_zone_is_reported_in_utc() -> None:
    bare = Configuration(id=CONFIG_ID, name="patch-web", resource_group="rg-patch",
                         subscription_id=SUB)
    report = build_report(RUN_ID, run=completed_run(), configuration=bare, now=NOW)
    assert report.zone_name == "UTC"
    assert report.to_json()["run"]["start_local"] == "2026-03-10T12:30:00+00:00"


def test_a_verified_cancel_names_its_initiator_over_its_identity() -> None:
    by_task = CancelFact(T - timedelta(minutes=30), "verified-cancelled",
                         T - timedelta(minutes=29), identity="aumwatch-host",
                         initiator="task precheck (exit 3)", run_status="Cancelled")
    pending = Run(correlation_id=RUN_ID, configuration_id=CONFIG_ID,
                  configuration_name="patch-web", run_name="20260310123000", start=T,
                  status="Pending")
    report = build_report(RUN_ID, run=pending, configuration=config(), cancels=[by_task],
                          now=NOW)
    assert report.run.status == "Cancelled"  # the verified cancel wins over a lagging row
    data = report.to_json()["run"]
    # Azure's classification (the cancel API: user) and who sent it, as in every view.
    assert (data["cancelled_by"], data["cancel_initiator"], data["cancelled_by_azure"]) == \
        ("user", "task precheck (exit 3)", "user")
    by_person = CancelFact(T - timedelta(minutes=30), "verified-cancelled",
                           identity="ops@contoso.example")
    report = build_report(RUN_ID, run=pending, configuration=config(), cancels=[by_person],
                          now=NOW)
    assert (report.run.cancelled_by, report.run.cancel_initiator) == \
        ("user", "ops@contoso.example")
    assert "- **Status:** Cancelled; cancelled by user (sent by ops@contoso.example)" in \
        render(report, "md")


def test_a_refused_cancel_does_not_make_anyone_the_canceller() -> None:
    report = full_report()
    assert report.cancels and report.run.cancelled_by is None
    assert report.run.cancel_initiator is None


def test_a_run_cancelled_outside_aumwatch_names_no_canceller_but_says_what_azure_says() -> None:
    run = Run(correlation_id=RUN_ID, configuration_id=CONFIG_ID, configuration_name="patch-web",
              run_name="20260310123000", start=T, status="Cancelled", cancelled_by="platform")
    report = build_report(RUN_ID, run=run, configuration=None, now=NOW)
    data = report.to_json()["run"]
    assert (data["cancelled_by"], data["cancel_initiator"], data["cancelled_by_azure"]) == \
        ("platform", None, "platform")
    assert "- **Status:** Cancelled; cancelled by platform (not through aumwatch)" in \
        render(report, "md")


def test_a_run_only_the_journal_knows_is_reported_from_its_events() -> None:
    report = build_report(RUN_ID.upper().replace("APPLYUPDATES", "applyUpdates"), run=None,
                          configuration=None, events=[pre_event(), post_event()], now=NOW)
    assert report.run.status == "Succeeded"
    assert report.run.end == T + timedelta(hours=1, minutes=52)  # the post-event's time
    assert report.run.cutoff == T - timedelta(minutes=10)
    assert report.zone_name == "UTC"


def test_a_run_nobody_knows_is_still_reported_from_its_id() -> None:
    report = build_report(RUN_ID, run=None, configuration=None, now=NOW)
    assert (report.run.start, report.run.status) == (T, "Unknown")


def test_a_text_that_names_no_run_cannot_be_reported() -> None:
    with pytest.raises(ReportError, match="not a run id"):
        build_report("patch-web", run=None, configuration=None, now=NOW)


def test_totals_count_machines_patches_reboots_and_tasks() -> None:
    totals = full_report().totals
    assert totals.machines == 2
    assert dict(totals.machine_status) == {"Failed": 1, "Succeeded": 1}
    assert (totals.installed, totals.failed, totals.pending) == (7, 1, 1)
    assert dict(totals.reboot) == {"Completed": 1, "NotNeeded": 1}
    assert dict(totals.tasks) == {"failed": 1, "ok": 1}
    assert totals.machines_with_error == 1 and totals.cancel_attempts == 1


def test_task_labels_name_a_cancel_and_a_timeout() -> None:
    assert TaskFact("p", "pre", "failed", cancelled_run=True).label == "cancelled the run"
    assert TaskFact("p", "pre", "timeout").label == "timed out"
    assert TaskFact("p", "pre", "running").label == "running"


def test_portal_links_are_the_configurations_page_and_each_machines() -> None:
    report = full_report()
    [link] = report.links
    assert link.url == ("https://portal.azure.com/#@contoso.example/resource" + CONFIG_ID)
    assert report.machine_links[report.machines[0].resource_id].endswith("/virtualMachines/web-01")
    china = build_report(RUN_ID, run=completed_run(), configuration=config(), now=NOW,
                         cloud="china")
    assert china.links[0].url.startswith("https://portal.azure.cn/#resource/subscriptions/")


def test_a_hostile_id_cannot_leave_the_portal_in_a_link() -> None:
    url = portal_resource_url("https://portal.azure.com", '/x/"><script>?a=b#c d')
    assert url.startswith("https://portal.azure.com/#resource/x/")
    assert not set('"<> ?#') & set(url.split("#", 1)[1])


def test_relative_times_against_the_start() -> None:
    assert relative_to(T, T) == "T"
    assert relative_to(T, T - timedelta(minutes=35)) == "T-35m"
    assert relative_to(T, T + timedelta(hours=1, minutes=5)) == "T+1h05m"
    assert relative_to(T, T - timedelta(seconds=40)) == "T-40s"


def test_the_short_form_names_a_configuration_and_a_utc_start() -> None:
    assert parse_short_form("patch-web/20260310123000") == ("patch-web", T)
    assert parse_short_form(RUN_ID) is None
    with pytest.raises(ReportError, match="not a yyyyMMddHHmmss time"):
        parse_short_form("patch-web/20261310123000")


def test_the_report_file_name_is_safe_and_names_config_and_start() -> None:
    hostile = build_report(RUN_ID, run=None, configuration=None, now=NOW)
    assert report_file_name(hostile, "md") == "patch-web-20260310123000.md"
    run = Run(**{**completed_run().__dict__, "configuration_name": "../../etc/pass wd"})
    named = build_report(RUN_ID, run=run, configuration=None, now=NOW)
    assert report_file_name(named, "html") == "etc_pass_wd-20260310123000.html"


# --- hostile strings --------------------------------------------------------------------------

#: Markup, HTML, Markdown table and code syntax, a newline, a bidi override, a C1 CSI, an ESC.
HOSTILE = ("[bold red]x[/] <script>alert(1)</script> | a | `code` ``` *em* _u_ [l](http://e) "
           "line\nbreak \u202egnp.exe \x9b31m \x1b[2J & &amp;")


def hostile_report() -> RunReport:
    hostile_config = f"{CONFIG_ID[:CONFIG_ID.rindex('/')]}/pw|`<x>"
    hostile_run_id = f"{hostile_config}/providers/microsoft.maintenance/applyupdates/20260310123000"
    run = Run(correlation_id=hostile_run_id, configuration_id=hostile_config,
              configuration_name="pw|`<x>", run_name="20260310123000", start=T,
              end=T + timedelta(hours=1), status=HOSTILE, error=HOSTILE, source="arg")
    cfg = Configuration(id=hostile_config, name="pw|`<x>", resource_group=HOSTILE,
                        subscription_id=SUB, time_zone="UTC", recur_every=HOSTILE,
                        schedule_description=None)
    return build_report(
        hostile_run_id, run=run, configuration=cfg,
        events=[pre_event(event_type=HOSTILE, status=HOSTILE)],
        cancels=[CancelFact(T - timedelta(minutes=20), "failed", identity=HOSTILE,
                            reason=HOSTILE)],
        tasks=[TaskFact(HOSTILE, "pre", "failed", T - timedelta(minutes=30),
                        T - timedelta(minutes=29), 1, detail=HOSTILE, output=HOSTILE)],
        machines=[Machine(resource_id=f"/subscriptions/{SUB}/x/{HOSTILE}", name=HOSTILE,
                          status=HOSTILE, reboot=HOSTILE, error=HOSTILE)],
        now=NOW)


RAW_DANGERS = ("\u202e", "\x9b", "\x1b")


def test_hostile_strings_come_out_of_html_escaped_and_inert() -> None:
    text = render_html(hostile_report())
    assert "<script>" not in text and "alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not any(ch in text for ch in RAW_DANGERS)
    assert "\\u202e" in text and "\\u009b" in text and "\\u001b" in text
    # The only tags are the report's own: parse it and list them.
    tags: set[str] = set()
    hrefs: list[str] = []

    class Tags(html.parser.HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tags.add(tag)
            hrefs.extend(v or "" for k, v in attrs if k == "href")

    Tags().feed(text)
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "dl", "dt",
                    "dd", "table", "tr", "th", "td", "p", "ul", "li", "a", "details",
                    "summary", "pre"}
    assert hrefs and all(h.startswith("https://portal.azure.com/#resource/") for h in hrefs)
    assert "script-src" not in text and "Content-Security-Policy" in text


def test_hostile_strings_come_out_of_markdown_neutralised() -> None:
    text = render(hostile_report(), "md")
    assert not any(ch in text for ch in RAW_DANGERS)
    # Outside the code fence of the task's output (whose content is literal by definition),
    # no angle bracket survives.
    fenced = re.search(r"^(`{4,})text\n(.*?)\n\1$", text, re.S | re.M)
    assert fenced is not None and "<script>alert(1)</script>" in fenced.group(2)
    outside = text.replace(fenced.group(0), "")
    assert "<" not in outside and ">" not in outside
    for line in text.splitlines():
        if line.startswith("|"):
            # Every | inside a cell is escaped: the row has as many cells as its header.
            cells = re.split(r"(?<!\\)\|", line)
            assert len(cells) - 2 in (4, 7, 8), line
    # Newlines inside cells are shown, never break the table.
    assert "line\\\\nbreak" in text
    # The task's output is in a fence longer than any backtick run inside it.
    assert "````text\n" in text
    assert "\\[bold red\\]" in text and "\\`code\\`" in text


def test_hostile_strings_stay_the_same_values_in_json() -> None:
    text = render_json(hostile_report())
    assert not any(ch in text for ch in RAW_DANGERS)
    data = json.loads(text)
    assert data["run"]["status"] == HOSTILE  # escaped in the text, intact as a value
    assert data["tasks"][0]["output"] == HOSTILE
    assert data["run"]["configuration_name"] == "pw|`<x>"


def test_visible_and_md_escape_what_they_promise() -> None:
    assert visible("a\u2028b\u200bc\x85") == "a\\u2028b\\u200bc\\u0085"
    assert visible("a\nb\tc", keep_lines=True) == "a\nb\tc"
    assert visible("a\rb", keep_lines=True) == "a\\rb"
    assert md("a|b`c<d>&e\nf") == "a\\|b\\`c&lt;d&gt;&amp;e\\\\nf"
