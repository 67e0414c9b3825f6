"""`aumwatch serve` in a real browser: Debian's Chromium driven by Playwright, against the
stand-in. Screenshots of each page are kept in the test's pytest tmp dir (``*.png``).

The page draws the dashboard with xterm.js on a canvas, so there is no text in the DOM to
read. The test alone (never the server) adds one assignment to textual-serve's script as the
browser fetches it, exposing the xterm Terminal, and reads its screen buffer: exactly the
cells a viewer sees.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import selectors
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from services.azure.cancel import SERVED_ENV, audit_identity, credential_identity
from services.standin.runner import render_config, write_private_file
from services.standin.server import StandInServer
from services.standin.world import World
from tests.processes import all_gone
from tests.standin import NOW, SUB, add_run, config_object

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                       reason="Debian's chromium is not installed (apt-get install chromium)"),
]

# textual-serve 1.1.3's bundle creates its terminal with this expression (once).
HOOK = "this.terminal.open(e),"

SCREEN_JS = """() => {
  const t = window.__aumwatchTerm;
  if (!t) return "";
  const b = t.buffer.active, rows = [];
  for (let i = 0; i < t.rows; i++) {
    const l = b.getLine(i); rows.push(l ? l.translateToString(true) : "");
  }
  return rows.join("\\n");
}"""

HOSTILE_HTML = "<i id=pwn>"  # an element, were it ever parsed as HTML
HOSTILE_MARKUP = "[red]mk[/]"  # Rich markup, were it ever rendered as such


# -- helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A running `aumwatch serve` subprocess."""

    def __init__(self, proc: subprocess.Popen[str], url: str, port: int) -> None:
        self.proc = proc
        self.url = url
        self.port = port
        self.token = url.split("token=", 1)[1]
        self.seen: set[int] = set()  # every viewer pid ever seen (the teardown ends them)

    def viewers(self) -> list[psutil.Process]:
        """The dashboards it spawned (its live child processes)."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        self.seen.update(c.pid for c in alive)
        return alive

    def wait_viewers(self, count: int, timeout: float = 20.0) -> list[psutil.Process]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.viewers()
            if len(found) == count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"expected {count} viewer processes, found {len(self.viewers())}")


def gone(pids: list[int], timeout: float = 15.0) -> bool:
    return all_gone(pids, timeout, interval=0.1)


#: Where the page screenshots are kept after the run (git-ignored): one folder per test.
ARTIFACTS = Path(os.environ.get("AUMWATCH_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "test-artifacts") / "serve"


def _artifact(tmp_path: Path, name: str) -> Path:
    """A screenshot's path: kept under ARTIFACTS/<test>/ (the test's tmp folder is removed
    after a few runs)."""
    folder = ARTIFACTS / tmp_path.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name



@pytest.fixture
def config_file(standin_world: World, standin: StandInServer, tmp_path: Path) -> Path:
    """The stand-in with three configurations, two named to attack the page; its config."""
    daily = config_object("patch-daily")
    daily["properties"]["maintenanceWindow"].update(
        {"recurEvery": "Day", "timeZone": "UTC", "startDateTime": "2026-01-01 12:30"})
    standin_world.add_configuration(daily)
    standin_world.add_configuration(config_object(HOSTILE_HTML, rg="rg-evil"))
    standin_world.add_configuration(config_object(HOSTILE_MARKUP, rg="rg-markup"))
    text = render_config({"arm_endpoint": standin.endpoint, "ca_file": str(standin.ca_file),
                          "token": standin.token, "subscriptions": [SUB],
                          "queue_connection_string": "", "queue_name": "aum-events"})
    path = tmp_path / "aumwatch.toml"
    write_private_file(path, text.split("[queue]")[0])  # no queue: not what is tested here
    return path


@pytest.fixture
def serve(config_file: Path, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    env.pop(SERVED_ENV, None)

    def start(*args: str) -> Served:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui", "serve", "--config", str(config_file),
             "--port", str(port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(30):
                pytest.fail("`aumwatch serve` printed no address in time")
        line = proc.stdout.readline()
        if "open http" not in line:
            proc.kill()
            pytest.fail(f"unexpected first line {line!r}: {proc.communicate(timeout=10)}")
        served = Served(proc, line.split("open ", 1)[1].strip(), port)
        started.append(served)
        return served

    yield start
    for served in started:
        proc = served.proc
        family = set(served.seen)
        try:
            family.update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for pid in family:  # never leave a dashboard behind, even when a test failed
            try:
                child = psutil.Process(pid)
                if "dashboard" in child.cmdline():  # not a pid reused since
                    child.kill()
            except psutil.Error:
                pass


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Debian's Chromium, never a downloaded one; no sandbox: CI runs as root.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 900})

    def expose_terminal(route: Any) -> None:
        response = route.fetch()
        body = response.text()
        assert HOOK in body, "textual-serve's script changed: update HOOK"
        route.fulfill(response=response,
                      body=body.replace(HOOK, HOOK + "window.__aumwatchTerm=this.terminal,", 1))

    page.route("**/static/js/textual.js", expose_terminal)
    response = page.goto(url)
    assert response is not None and response.status == 200
    return page


def screen_text(page: Any) -> str:
    return str(page.evaluate(SCREEN_JS))


def wait_text(page: Any, *texts: str, timeout: float = 45.0, absent: bool = False) -> str:
    """The terminal's text once it shows every one of ``texts`` (or none, with ``absent``)."""
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = screen_text(page)
        present = [t in shown for t in texts]
        if (not any(present)) if absent else all(present):
            return shown
        time.sleep(0.25)
    raise AssertionError(f"{texts!r} {'still' if absent else 'not'} shown; the page shows:\n"
                         f"{shown}")


def focus(page: Any) -> None:
    """Click the terminal's top row (the title: no action there): the page, then the app, get
    the focus; Textual draws the footer's keys only in a focused app."""
    page.mouse.click(700, 5)


def click_line(page: Any, text: str) -> None:
    """Click the middle of the first terminal row showing ``text`` (mouse reaches the app)."""
    rows = screen_text(page).split("\n")
    row = next(i for i, line in enumerate(rows) if text in line)
    column = rows[row].index(text)
    box = page.locator(".xterm-screen").bounding_box()
    cols = page.evaluate("() => window.__aumwatchTerm.cols")
    page.mouse.click(box["x"] + (column + 1.5) * box["width"] / cols,
                     box["y"] + (row + 0.5) * box["height"] / len(rows))


def press(page: Any, key: str) -> None:
    focus(page)
    page.keyboard.press(key)


# -- the browser tests -------------------------------------------------------------------


def test_read_only_dashboard_in_the_browser_takes_keys_and_shows_names_literally(
        serve: Callable[..., Served], browser: Any, tmp_path: Path) -> None:
    served = serve()
    page = open_page(browser, served.url)
    try:
        wait_text(page, "patch-daily")
        focus(page)
        shown = wait_text(page, "patch-daily", HOSTILE_HTML, HOSTILE_MARKUP, "Help")
        page.screenshot(path=str(_artifact(tmp_path, "dashboard.png")))
        # Read-only by default: the banner says so, Cancel is absent, the child was told.
        assert "read-only" in shown
        assert "Cancel run" not in shown
        (viewer,) = served.wait_viewers(1)
        assert "--read-only" in viewer.cmdline()
        assert viewer.environ().get(SERVED_ENV) == "browser"
        # Azure's strings are terminal text: literally on screen, never an element.
        assert page.locator("#pwn").count() == 0
        assert page.evaluate("() => document.querySelectorAll('i').length") == 0
        # Keys typed in the page reach the dashboard: help, then the filter.
        press(page, "?")
        wait_text(page, "Clear filter")
        page.screenshot(path=str(_artifact(tmp_path, "help.png")))
        press(page, "?")
        wait_text(page, "Clear filter", absent=True)
        press(page, "/")
        wait_text(page, "filter configurations")
        page.keyboard.type("daily")
        wait_text(page, "daily ")
        page.keyboard.press("Enter")
        shown = wait_text(page, "patch-daily")
        wait_text(page, HOSTILE_HTML, HOSTILE_MARKUP, absent=True)
        page.screenshot(path=str(_artifact(tmp_path, "filtered.png")))
    finally:
        page.close()


def test_keys_work_and_the_footer_shows_them_without_a_click(
        serve: Callable[..., Served], browser: Any, tmp_path: Path) -> None:
    # Issue 20: keys did nothing until the page was clicked, and the footer's keys were
    # missing: the page now focuses its terminal once connected. No click anywhere here.
    served = serve()
    page = open_page(browser, served.url)
    try:
        shown = wait_text(page, "patch-daily", "Help", "Quit")
        assert page.evaluate("() => document.activeElement.classList.contains("
                             "'xterm-helper-textarea')")
        page.keyboard.press("?")
        wait_text(page, "Clear filter")
        page.screenshot(path=str(_artifact(tmp_path, "no-click.png")))
        assert "read-only" in shown
    finally:
        page.close()


def test_allow_cancel_offers_cancel_and_a_closed_tab_ends_its_process(
        serve: Callable[..., Served], browser: Any, tmp_path: Path) -> None:
    served = serve("--allow-cancel", "--max-viewers", "1")
    page = open_page(browser, served.url)
    wait_text(page, "patch-daily")
    focus(page)
    shown = wait_text(page, "patch-daily", "Cancel run", "Help")
    page.screenshot(path=str(_artifact(tmp_path, "allow-cancel.png")))
    assert "read-only" not in shown
    (viewer,) = served.wait_viewers(1)
    assert "--read-only" not in viewer.cmdline()
    # The limit holds: a second viewer gets a clear 503 and nothing is spawned.
    second = browser.new_page()
    response = second.goto(served.url)
    assert response is not None and response.status == 503
    assert "viewer limit 1 reached" in second.content()
    second.screenshot(path=str(_artifact(tmp_path, "limit.png")))
    second.close()
    assert off_loop(websocket_status(served, served.token)) == 503
    assert [p.pid for p in served.wait_viewers(1)] == [viewer.pid]
    # Closing the tab ends its dashboard.
    page.close()
    assert gone([viewer.pid]), "the dashboard outlived its tab"
    assert served.viewers() == []


def off_loop(coro: Any) -> Any:
    """Run ``coro`` to completion in a thread (Playwright's sync API owns this one's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=30)


async def websocket_status(served: Served, token: str) -> int:
    """The HTTP status of a websocket handshake (101 when it was accepted; then closed)."""
    url = f"http://127.0.0.1:{served.port}/ws/{token}?width=80&height=24"
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5)):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def test_wrong_token_gets_403_and_spawns_nothing(
        serve: Callable[..., Served], browser: Any, tmp_path: Path) -> None:
    served = serve()
    base = f"http://127.0.0.1:{served.port}/"
    page = browser.new_page()
    for url in (base, base + "?token=", base + "?token=" + served.token[:-1] + "x",
                base + "?token=" + served.token + "x"):
        response = page.goto(url)
        assert response is not None and response.status == 403, url
        assert "access token" in page.content()
    page.screenshot(path=str(_artifact(tmp_path, "forbidden.png")))
    page.close()
    for token in ("x", served.token[:-1], served.token + "A"):
        assert off_loop(websocket_status(served, token)) == 403, token
    # Another site's page cannot drive a viewer even with the token (cross-site websocket).
    async def foreign_origin() -> int:
        url = f"http://127.0.0.1:{served.port}/ws/{served.token}"
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url, origin="http://evil.example"):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
    assert off_loop(foreign_origin()) == 403
    time.sleep(0.5)
    assert served.viewers() == []


def test_sigterm_ends_every_viewer(serve: Callable[..., Served], browser: Any) -> None:
    served = serve()
    pages = [open_page(browser, served.url) for _ in range(2)]
    try:
        for page in pages:
            wait_text(page, "patch-daily")
        pids = [p.pid for p in served.wait_viewers(2)]
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(20) == 0
        assert gone(pids), "a viewer's dashboard outlived the server"
    finally:
        for page in pages:
            page.close()


def test_a_killed_server_leaves_no_viewer_behind(serve: Callable[..., Served],
                                                browser: Any) -> None:
    served = serve()
    page = open_page(browser, served.url)
    try:
        wait_text(page, "patch-daily")
        pids = [p.pid for p in served.wait_viewers(1)]
        served.proc.kill()  # no chance to clean up: the kernel tells the dashboards
        served.proc.wait(10)
        assert gone(pids), "a viewer's dashboard outlived a killed server"
    finally:
        page.close()


def test_a_cancel_from_the_browser_is_journaled_via_browser_then_its_machines_open(
        serve: Callable[..., Served], browser: Any, standin_world: World,
        tmp_path: Path) -> None:
    daily = config_object("patch-daily")  # the fixture's: add_run only needs its id and name
    # A run Azure knows (not one only computed), 30 min away: inside its cancel window.
    add_run(standin_world, daily, NOW + timedelta(minutes=30), status="Pending", machines=1)
    served = serve("--allow-cancel")
    page = open_page(browser, served.url)
    try:
        wait_text(page, "patch-daily", "CANCELLABLE")
        focus(page)
        wait_text(page, "Cancel run")
        press(page, "Control+x")
        wait_text(page, "Cancel this maintenance run?")
        page.screenshot(path=str(_artifact(tmp_path, "confirm.png")))
        page.keyboard.press("ArrowRight")  # focus starts on No
        page.keyboard.press("Enter")
        journal = tmp_path / "data" / "aumwatch" / "journal.sqlite3"
        deadline = time.monotonic() + 30
        rows: list[Any] = []
        while time.monotonic() < deadline and not rows:
            if journal.exists():
                with sqlite3.connect(journal) as db:
                    rows = db.execute("SELECT identity, run_id FROM cancel_audit").fetchall()
            time.sleep(0.25)
        page.screenshot(path=str(_artifact(tmp_path, "cancelled.png")))
        assert len(rows) == 1, rows
        identity, run_id = rows[0]
        assert identity.endswith(" via browser")
        assert run_id.lower().startswith(daily["id"].lower())
        # Select that run in the runs table with the mouse, then open its machines.
        click_line(page, "Cancelled")
        page.keyboard.press("Enter")
        wait_text(page, "patch-daily-vm000")
        page.screenshot(path=str(_artifact(tmp_path, "machines.png")))
        page.keyboard.press("Escape")
        wait_text(page, "patch-daily-vm000", absent=True)
    finally:
        page.close()


# -- the audit identity of a served dashboard (no browser needed) ------------------------


def test_served_dashboard_audits_cancels_via_browser() -> None:
    assert audit_identity("ops@contoso.com oid=1", {}) == "ops@contoso.com oid=1"
    assert audit_identity("ops@contoso.com oid=1", {SERVED_ENV: "browser"}) \
        == "ops@contoso.com oid=1 via browser"
    assert audit_identity(None, {SERVED_ENV: "browser"}) == "unknown via browser"
    assert audit_identity(None, {}) is None


def test_credential_identity_says_via_browser_in_a_served_dashboard(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Token:
        token = "x.eyJ1cG4iOiJvcHNAY29udG9zby5jb20ifQ.y"  # {"upn":"ops@contoso.com"}

    class Credential:
        def get_token(self, scope: str) -> Token:
            return Token()

    monkeypatch.delenv(SERVED_ENV, raising=False)
    assert off_loop(credential_identity(Credential(), "s")) == "ops@contoso.com"
    monkeypatch.setenv(SERVED_ENV, "browser")
    assert off_loop(credential_identity(Credential(), "s")) == "ops@contoso.com via browser"


def test_remote_host_needs_allow_remote(config_file: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tui", "serve", "--config", str(config_file),
                          "--host", "0.0.0.0", "--port", str(free_port())],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "--allow-remote" in out.stderr
