"""The Event Grid wiring in the dashboard, without a network (Pilot, manual clock): the
Wiring column (every verdict as a symbol and a word, at 120 and 80 columns), the wiring view
(contents, hostile strings literal, a webhook's key never on screen, escape closes it), the
run panel's "no pre-event will come" flag and the watchdog's explanation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Static

from services.domain.clock import ManualClock
from services.domain.model import Fetched
from services.domain.wiring import (
    VERDICT_SYMBOLS,
    DeliveryHealth,
    Verdict,
    parse_subscription,
    wire,
)
from services.settings import Settings
from tests.services.test_dashboard import NOW, config, config_id
from tests.services.test_dashboard_wiring_state import (
    ACCOUNT,
    POST,
    PRE,
    WATCHED,
    Snapshot,
    _topic,
    sample_wiring,
)
from tui.app import AumwatchApp
from tui.screens.wiring import WiringView

CONNECTION = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
              "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1")
#: One configuration per verdict, named after it.
NAMES = {v: f"cfg-{v}" for v in Verdict}
SECRET = "c2VjcmV0LWtleS0xMjM0"


def make_app(tmp_path: Path, *, queue: bool = True) -> AumwatchApp:
    settings = Settings(subscriptions=("s",), data_dir=tmp_path,
                        queue_name="aum-events" if queue else None,
                        queue_connection_string=CONNECTION if queue else None)
    return AumwatchApp(settings, clock=ManualClock(NOW), poll=False)


def every_verdict() -> Snapshot:
    return Snapshot({config_id(n).lower(): sample_wiring(n, v) for v, n in NAMES.items()}, NOW)


def feed_configs(app: AumwatchApp, *names: str) -> None:
    configs = tuple(config(n, NOW + timedelta(hours=i + 1)) for i, n in enumerate(names))
    app.dashboard.apply_configs(Fetched(configs, NOW))


def wiring_cell(app: AumwatchApp, name: str) -> str:
    table: DataTable[Any] = app.query_one("#configs", DataTable)
    return table.get_cell(config_id(name).lower(), "wiring").plain


def screen_text(app: AumwatchApp) -> str:
    """Every character on screen (what the operator can read), line by line."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


async def test_the_column_shows_every_verdict_as_symbol_and_word(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        feed_configs(app, *NAMES.values())
        await pilot.pause()
        assert {wiring_cell(app, n) for n in NAMES.values()} == {"…"}  # not read yet
        app.dashboard.apply_wiring(every_verdict())
        await pilot.pause()
        for verdict, name in NAMES.items():
            assert wiring_cell(app, name) == f"{VERDICT_SYMBOLS[verdict]} {verdict}"
        shown = screen_text(app)
        for verdict in Verdict:
            assert f"{VERDICT_SYMBOLS[verdict]} {verdict}" in shown


async def test_at_80_columns_the_verdicts_fit_with_short_words(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        feed_configs(app, *NAMES.values())
        app.dashboard.apply_wiring(every_verdict())
        await pilot.pause()
        assert wiring_cell(app, NAMES[Verdict.OTHER_ENDPOINT]) == "↪ other"
        assert wiring_cell(app, NAMES[Verdict.DISABLED]) == "⊘ disabled"
        table: DataTable[Any] = app.query_one("#configs", DataTable)
        # Name, next start, countdown, phase and wiring fit inside the 80-column panel.
        widths = [c.get_render_width(table) for c in table.ordered_columns[:5]]
        assert sum(widths) <= 78
        shown = screen_text(app)
        assert "↪ other" in shown and "✗ missing" in shown
        # Wider again: the full words come back.
        await pilot.resize_terminal(130, 40)
        await pilot.pause()
        assert wiring_cell(app, NAMES[Verdict.OTHER_ENDPOINT]) == "↪ other-endpoint"


async def test_a_failed_first_read_shows_a_question_mark_and_the_error(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        feed_configs(app, "web")
        app.dashboard.apply_wiring(Snapshot({}, None, "Event Grid system topics query failed "
                                            "(HTTP 403)"))
        await pilot.pause()
        assert wiring_cell(app, "web") == "?"
        assert app.dashboard.last_error is not None
        assert "HTTP 403" in screen_text(app)  # the status line


def detailed_wiring(name: str) -> Any:
    """An ``other-endpoint`` wiring with every detail, hostile names, and a webhook URL with a
    key in its path and query."""
    topic = _topic(name)
    hostile = parse_subscription({
        "id": "x/eventSubscriptions/h", "name": "[bold red]sub[/] \x1b]52;c;ZXZpbA==\x07",
        "properties": {
            "destination": {"endpointType": "StorageQueue",
                            "properties": {"resourceId": ACCOUNT, "queueName": "[u]q[/u]"}},
            "filter": {"includedEventTypes": [PRE, POST], "subjectBeginsWith": "[i]x",
                       "advancedFilters": [{"operatorType": "StringIn", "key": "a",
                                            "values": ["b"]}]},
            "eventDeliverySchema": "CloudEventSchemaV1_0", "provisioningState": "Succeeded",
            "expirationTimeUtc": "2027-01-01T00:00:00Z",
            "retryPolicy": {"maxDeliveryAttempts": 5, "eventTimeToLiveInMinutes": 60},
            "deadLetterDestination": {"endpointType": "StorageBlob", "properties": {
                "resourceId": ACCOUNT, "blobContainerName": "deadletters"}},
        }})
    hook = parse_subscription({
        "id": "x/eventSubscriptions/hook", "name": "to-hook",
        "properties": {
            "destination": {"endpointType": "WebHook", "properties": {
                "endpointUrl": f"https://hooks.example.com/api/{SECRET}?code={SECRET}"}},
            "filter": {"includedEventTypes": [PRE]}, "provisioningState": "Succeeded",
            "deliveryWithResourceIdentity": None}})
    health = DeliveryHealth(published=9, matched=9, delivered=6, failed=2, dropped=1,
                            dead_lettered=1)
    return wire(configuration_id=config_id(name), configuration_name=name, topic=topic,
                subscriptions=[hostile, hook], health=health, watched=WATCHED, now=NOW,
                error="reading the delivery metrics of system topic x failed (HTTP 500)")


async def test_the_view_shows_the_selected_configurations_wiring(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    name = "[b]web[/b]"
    async with app.run_test(size=(120, 60)) as pilot:
        feed_configs(app, name)
        wiring = detailed_wiring(name)
        assert wiring.verdict is Verdict.OTHER_ENDPOINT
        app.dashboard.apply_wiring(Snapshot({config_id(name).lower(): wiring}, NOW))
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause()
        view = app.screen
        assert isinstance(view, WiringView)
        text = view.text
        for expected in (
            f"Event Grid wiring of {name}", f"↪ other-endpoint  {wiring.reason}",
            "watched queue  aum-events of storage account devstoreaccount1",
            "System topic", f"{name}-topic", "global", "Succeeded",  # name, location, state
            "Event subscriptions (2)", "[bold red]sub[/] \\x1b]52;c;ZXZpbA==\\x07",
            "pre, post", "cloudevents", f"storagequeue  {ACCOUNT}/queues/[u]q[/u]",
            "not the queue aumwatch watches", "deadletters", "5 attempts, 60 min",
            "subject begins with '[i]x'; 1 advanced filter", "to-hook",
            "webhook  hooks.example.com", "Delivery health, last 24 h", "delivered 6",
            "failed 2", "dropped 1", "dead-lettered 1", "Read error", "(HTTP 500)",
            "Fix", "aumwatch setup events --configuration '[b]web[/b]' --queue aum-events",
        ):
            assert expected in text, expected
        shown = screen_text(app)
        # Markup in names is drawn, not obeyed; the escape sequence is shown, not sent.
        for on_screen in ("↪ other-endpoint", "[bold red]sub[/] \\x1b]52;c;ZXZpbA==\\x07",
                          "webhook  hooks.example.com", "dead-lettered 1", "5 attempts"):
            assert on_screen in shown, on_screen
        assert "\x1b]52" not in shown
        # The webhook's key (path and query) is never on screen.
        assert SECRET not in shown and SECRET not in text and "/api/" not in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, WiringView)


async def test_the_view_before_any_read_and_an_ok_wiring(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        feed_configs(app, "web")
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause()
        view = app.screen
        assert isinstance(view, WiringView)
        assert "the wiring has not been read yet" in view.text
        # A read while the view is open redraws it.
        app.dashboard.apply_wiring(Snapshot({config_id("web").lower():
                                             sample_wiring("web", Verdict.OK)}, NOW))
        await pilot.pause()
        text = view.text
        assert "✓ ok" in text and "nothing to fix" in text and "◀ the queue aumwatch watches" \
            in text


async def test_a_run_in_its_window_without_a_pre_event_subscription_is_flagged(
        tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        app.dashboard.apply_configs(Fetched((config("web", NOW + timedelta(minutes=35)),),
                                            NOW))
        app.dashboard.apply_events(_empty_batch())
        app.dashboard.tick()
        await pilot.pause()
        flag = app.query_one("#run-wiring", Static)
        assert flag.content.plain == ""  # type: ignore[union-attr]
        app.dashboard.apply_wiring(Snapshot({config_id("web").lower():
                                             sample_wiring("web", Verdict.PARTIAL)}, NOW))
        app.dashboard.tick()
        await pilot.pause()
        assert flag.content.plain == ("⚠ no pre-event will come: no pre-event "  # type: ignore[union-attr]
                                      "subscription to the watched queue")
        assert "no pre-event will come" in screen_text(app)
        assert not app._notifications or all("watchdog" != n.title
                                             for n in app._notifications)  # not yet late


async def test_the_watchdogs_toast_says_why_the_pre_event_is_missing(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    start = NOW + timedelta(minutes=45)
    async with app.run_test(size=(120, 40)) as pilot:
        app.dashboard.apply_configs(Fetched((config("web", start),), NOW))
        app.dashboard.apply_runs(Fetched((), NOW))  # the watchdog judges once all were read
        app.dashboard.apply_events(_empty_batch())
        app.dashboard.apply_wiring(Snapshot({config_id("web").lower():
                                             sample_wiring("web", Verdict.MISSING)}, NOW))
        clock.set(start - timedelta(minutes=25))
        app.dashboard.tick()
        await pilot.pause()
        toasts = [str(n.message) for n in app._notifications if n.title == "watchdog"]
        assert len(toasts) == 1
        assert "no pre-maintenance event by T-25" in toasts[0]
        assert toasts[0].endswith(": no Event Grid system topic for this configuration")


def _empty_batch() -> Any:
    from services.domain.boundary import EventBatch

    return EventBatch(mode="peek", fetched_at=NOW, depth=0)


async def test_at_80x24_the_flag_takes_the_status_lines_place(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.dashboard.apply_configs(Fetched((config("web", NOW + timedelta(minutes=35)),),
                                            NOW))
        app.dashboard.apply_wiring(Snapshot({config_id("web").lower():
                                             sample_wiring("web", Verdict.MISSING)}, NOW))
        app.dashboard.tick()
        await pilot.pause()
        status = app.query_one("#run-status", Static).content.plain  # type: ignore[union-attr]
        assert status == "● CANCELLABLE  ⚠ no pre-event will come, w: why"
        assert "⚠ no pre-event will come, w: why" in screen_text(app)
        app.dashboard.apply_wiring(Snapshot({config_id("web").lower():
                                             sample_wiring("web", Verdict.OK)}, NOW))
        app.dashboard.tick()
        await pilot.pause()
        status = app.query_one("#run-status", Static).content.plain  # type: ignore[union-attr]
        assert "no pre-event will come" not in status and "cancel not offered" in status


async def test_the_export_holds_each_configurations_wiring_verdict(tmp_path: Path) -> None:
    import csv
    import json

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        feed_configs(app, *NAMES.values(), "cfg-hook", "cfg-unread")
        detailed = detailed_wiring("cfg-hook")
        app.dashboard.apply_wiring(Snapshot(
            {**every_verdict().wirings, config_id("cfg-hook").lower(): detailed}, NOW))
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        json_file = next((tmp_path / "exports").glob("*.json"))
        exported = json.loads(json_file.read_text())
        got = {c["name"]: c["wiring"] for c in exported["configurations"]}
        for verdict, name in NAMES.items():
            assert got[name] is not None and got[name]["verdict"] == str(verdict)
        assert got["cfg-unread"] is None  # not read yet: no verdict invented
        assert got["cfg-hook"]["verdict"] == "other-endpoint"
        with json_file.with_suffix(".csv").open(encoding="utf-8") as handle:
            rows = {r["name"]: r["wiring"] for r in csv.DictReader(handle)}
        assert rows[NAMES[Verdict.PARTIAL]] == "partial" and rows["cfg-unread"] == ""
        text = json_file.read_text() + json_file.with_suffix(".csv").read_text()
        assert SECRET not in text and "/api/" not in text


async def test_w_opens_a_shown_configuration_after_the_filter_hid_the_selected_one(
        tmp_path: Path) -> None:
    from tui.messages import FilterSet

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        feed_configs(app, "web", "dev-notopic", "dev-nosub")
        app.dashboard.apply_wiring(every_verdict())
        await pilot.pause()
        assert app.dashboard.state.selected_config == config_id("web").lower()
        # The filter hides "web": the selection follows the cursor to a row on screen.
        app.dashboard.post_message(FilterSet("dev", done=True))
        await pilot.pause()
        await pilot.pause()
        shown = {config_id("dev-notopic").lower(), config_id("dev-nosub").lower()}
        assert app.dashboard.state.selected_config in shown
        await pilot.press("w")
        await pilot.pause()
        view = app.screen
        assert isinstance(view, WiringView) and view.key in shown
        await pilot.press("escape")
        # A filter that matches nothing selects nothing: no view of a hidden row.
        app.dashboard.post_message(FilterSet("zzz-none", done=True))
        await pilot.pause()
        await pilot.pause()
        assert app.dashboard.state.selected_config is None


def test_the_view_shows_the_counts_of_each_subscription_when_split() -> None:
    from services.domain.wiring import parse_subscription_metrics
    from tests.services.test_dashboard_wiring_state import _sub
    from tui.screens.wiring import WiringInfo, wiring_doc

    split = {"value": [
        {"name": {"value": name}, "timeseries": [
            {"metadatavalues": [{"name": {"value": "eventsubscriptionname"}, "value": sub}],
             "data": [{"timeStamp": "2026-03-10T08:00:00Z", "total": total}]}]}
        for name, sub, total in (("DeliverySuccessCount", "TO-QUEUE", 4.0),
                                 ("DeliveryAttemptFailCount", "OLD-HOOK", 2.0))]}
    health = DeliveryHealth(delivered=4, failed=2,
                            by_subscription=parse_subscription_metrics(split))
    wiring = wire(configuration_id=config_id("web"), configuration_name="web",
                  topic=_topic("web"), subscriptions=[_sub("to-queue", [PRE, POST])],
                  health=health, watched=WATCHED, now=NOW)
    assert wiring.verdict is Verdict.OK
    text = wiring_doc(WiringInfo("web", wiring, NOW, None, WATCHED), NOW,
                      lambda t: t.isoformat()).plain
    assert "through TO-QUEUE  delivered 4  failed 0  dropped 0  dead-lettered 0" in text
    assert "through OLD-HOOK  delivered 0  failed 2  dropped 0  dead-lettered 0  ✗" in text
    assert "not counted: 2 failed deliveries through subscription OLD-HOOK" in text
