"""A run report (:class:`services.domain.report.RunReport`) as JSON, Markdown or HTML.

Every string in a report that came from Azure, the queue, the journal or a task's output is
untrusted. The renderers make it come out literally:

* control and format characters (C0, C1, bidi overrides and isolates, zero-width characters,
  line and paragraph separators) are shown as visible escapes (``\\u202e``, ``\\n``) in every
  format, so nothing can reorder, hide or break a line of the report;
* HTML: every such string goes through :func:`html.escape` (quotes too); the file is one page
  with its style inline, no script, nothing loaded from elsewhere (its Content-Security-Policy
  says so), and the only links are the portal addresses;
* Markdown: inside text and table cells, ``\\``, backticks, ``|``, ``*``, ``_``, ``[``, ``]``,
  ``~`` and ``#`` are backslash-escaped and ``&``, ``<``, ``>`` written as entities, so a string
  can neither end a cell nor become a link, an HTML tag or emphasis; a task's output goes in a
  code fence longer than any run of backticks inside it.
* JSON: the document is valid JSON; the same characters are written as ``\\uXXXX`` escapes.

Pure: the report in, text out. Times are written in UTC and in the configuration's zone.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from services.domain.report import RunReport

FORMATS = ("md", "json", "html")
#: File extension of each format.
EXTENSIONS = {"md": "md", "json": "json", "html": "html"}

_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: object, *, keep_lines: bool = False) -> str:
    """``text`` with every control or format character shown as an escape (``\\u202e``).

    ``keep_lines`` keeps newlines and tabs as they are (a task's output in a code block); a
    carriage return is always shown, since on a terminal it rewrites the line.
    """
    value = "" if text is None else str(text)
    out: list[str] = []
    for ch in value:
        if keep_lines and ch in "\n\t":
            out.append(ch)
        elif unicodedata.category(ch) in _HIDDEN_CATEGORIES:
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    return "".join(out)


# --- JSON -----------------------------------------------------------------------------------


def _json_safe(match: re.Match[str]) -> str:
    return "".join(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else
                   "".join(f"\\u{unit:04x}" for unit in _surrogates(ord(ch)))
                   for ch in match.group())


def _surrogates(code: int) -> tuple[int, int]:
    code -= 0x10000
    return 0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)


def render_json(report: RunReport) -> str:
    """The report as indented JSON (see :meth:`RunReport.to_json`), ending in a newline."""
    text = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
    # json.dumps escapes C0 itself; C1, bidi, zero-width and separators it writes raw. They
    # can only occur inside strings, where a \\uXXXX escape keeps the value and the document.
    pattern = "[" + "".join(re.escape(ch) for ch in _hidden_in(text)) + "]"
    if pattern != "[]":
        text = re.sub(pattern, _json_safe, text)
    return text + "\n"


def _hidden_in(text: str) -> set[str]:
    return {ch for ch in set(text) if unicodedata.category(ch) in _HIDDEN_CATEGORIES
            and ch not in "\n"}


# --- shared wording -------------------------------------------------------------------------


def _utc(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M:%S")


def _local(report: RunReport, when: datetime | None) -> str:
    if when is None:
        return "-"
    local = report.local(when)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "")


def _both(report: RunReport, when: datetime | None) -> str:
    """``2026-03-10 12:30:00 UTC (13:30:00 CET)``, the zone's date only when it differs."""
    if when is None:
        return "-"
    local = report.local(when)
    same_day = local.date() == when.date()
    shown = local.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
    return f"{_utc(when)} UTC ({shown} {local.tzname() or ''})".replace(" )", ")")


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _counts(values: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in values.items()) or "none"


def _title(report: RunReport) -> str:
    return f"Run report: {report.run.configuration_name or '?'} {report.run.run_name}"


def _status(report: RunReport) -> str:
    run = report.run
    text = run.status + (" (only computed from the schedule)" if run.expected else "")
    # The same two facts as every view: Azure's classification and who sent the cancel.
    if run.cancelled_by or run.cancel_initiator:
        text += f"; cancelled by {run.cancelled_by or 'unknown'}"
        if run.cancel_initiator:
            text += f" (sent by {run.cancel_initiator})"
        else:
            text += " (not through aumwatch)"
    return text


def _schedule(report: RunReport) -> str | None:
    config = report.configuration
    if config is None:
        return None
    parts = [config.schedule_description or config.recur_every or "?"]
    if config.duration:
        parts.append(f"duration {config.duration}")
    if config.start_date_time:
        parts.append(f"from {config.start_date_time}")
    if config.time_zone:
        parts.append(f"zone {config.time_zone}")
    if config.schedule_error:
        parts.append(f"schedule error: {config.schedule_error}")
    return "; ".join(parts)


def _window(report: RunReport) -> str:
    window = report.window
    if not window.ever_opens:
        return f"never opened (closed {_both(report, window.closes_at)})"
    return f"{_both(report, window.opens_at)} to {_both(report, window.closes_at)}"


def _summary(report: RunReport) -> list[tuple[str, str]]:
    """(label, value) lines at the top of the Markdown and HTML reports (values untrusted)."""
    run = report.run
    config = report.configuration
    lines = [("Configuration", run.configuration_name or "?")]
    if config is not None:
        lines.append(("Resource group", config.resource_group))
        lines.append(("Subscription", config.subscription_id))
    schedule = _schedule(report)
    if schedule:
        lines.append(("Schedule", schedule))
    lines += [
        ("Run", run.run_name),
        ("Correlation id", run.correlation_id),
        ("Status", _status(report)),
        ("Start", _both(report, run.start)),
        ("End", _both(report, run.ended_at) if run.ended_at is not None else
         "not ended" if not run.finished else "unknown"),
        ("Scheduled end", _both(report, run.scheduled_end)),
        ("Cancel window", _window(report)),
        ("Times", f"UTC and the configuration's zone ({report.zone_name})"),
    ]
    if run.error:
        lines.append(("Error", run.error))
    lines.append(("Generated", f"{_utc(report.generated_at)} UTC"))
    return lines


def _totals(report: RunReport) -> list[tuple[str, str]]:
    totals = report.totals
    return [
        ("Machines", f"{totals.machines} ({_counts(totals.machine_status)})"),
        ("Patches", f"installed {totals.installed}, failed {totals.failed}, "
                    f"pending {totals.pending}"),
        ("Reboots", _counts(totals.reboot)),
        ("Window exceeded", str(totals.window_exceeded)),
        ("Machines with an error", str(totals.machines_with_error)),
        ("Tasks", _counts(totals.tasks)),
        ("Cancel attempts", str(totals.cancel_attempts)),
    ]


def _timeline_rows(report: RunReport) -> list[list[str]]:
    return [[_utc(e.time), _local(report, e.time), e.relative, e.what] for e in report.timeline]


def _event_rows(report: RunReport) -> list[list[str]]:
    return [[e.kind, _utc(e.event_time), _utc(e.received_at), _utc(e.cutoff), e.status or "-",
             str(e.duplicate_deliveries), e.event_type] for e in report.events]


def _cancel_rows(report: RunReport) -> list[list[str]]:
    return [[_utc(c.attempted_at), _utc(c.finished_at), c.who, c.outcome, c.reason or "-",
             _count(c.http_status), c.run_status or "-"] for c in report.cancels]


def _task_rows(report: RunReport) -> list[list[str]]:
    return [[t.task, t.event_kind, t.label, _utc(t.started_at), _utc(t.ended_at),
             _count(t.exit_code), _yes_no(t.cancelled_run), t.detail or "-"]
            for t in report.tasks]


def _machine_rows(report: RunReport) -> list[list[str]]:
    return [[m.name, m.status, _count(m.installed), _count(m.failed), _count(m.pending),
             m.reboot or "-", _yes_no(m.window_exceeded), m.error or "-"]
            for m in report.machines]


TIMELINE_HEAD = ("Time (UTC)", "Time ({zone})", "T", "What")
EVENT_HEAD = ("Kind", "Event time (UTC)", "Received (UTC)", "Cut-off (UTC)", "Status",
              "Repeated deliveries", "Type")
CANCEL_HEAD = ("Attempted (UTC)", "Finished (UTC)", "Who", "Outcome", "Reason", "HTTP",
               "Run status")
TASK_HEAD = ("Task", "On", "Outcome", "Started (UTC)", "Ended (UTC)", "Exit code",
             "Cancelled the run", "Detail")
MACHINE_HEAD = ("Machine", "Status", "Installed", "Failed", "Pending", "Reboot",
                "Window exceeded", "First error")


# --- Markdown -------------------------------------------------------------------------------

_MD_BACKSLASHED = set("\\`*_[]|~#")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md(text: object) -> str:
    """An untrusted string for Markdown text or a table cell (see the module docstring)."""
    out: list[str] = []
    for ch in visible(text):
        if ch in _MD_BACKSLASHED:
            out.append("\\" + ch)
        else:
            out.append(_MD_ENTITIES.get(ch, ch))
    return "".join(out)


def _md_url(url: str) -> str:
    # Our own portal address with a percent-encoded id: it has no space, parenthesis or
    # angle bracket that could end the link early.
    return url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(md(h) for h in head) + " |",
             "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return lines


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(report: RunReport) -> str:
    """The report as Markdown (GitHub-flavoured tables), ending in a newline."""
    out = [f"# {md(_title(report))}", ""]
    out += [f"- **{label}:** {md(value)}" for label, value in _summary(report)]
    zone_head = TIMELINE_HEAD[1].format(zone=report.zone_name)
    out += ["", "## Timeline", ""]
    out += _md_table((TIMELINE_HEAD[0], zone_head, *TIMELINE_HEAD[2:]), _timeline_rows(report))
    out += ["", "## Events", ""]
    out += (_md_table(EVENT_HEAD, _event_rows(report)) if report.events
            else ["No pre/post event of this run is in the journal."])
    out += ["", "## Cancel attempts", ""]
    out += (_md_table(CANCEL_HEAD, _cancel_rows(report)) if report.cancels
            else ["No cancel attempt of this run is in the audit journal."])
    out += ["", "## Tasks", ""]
    out += (_md_table(TASK_HEAD, _task_rows(report)) if report.tasks
            else ["No task ran for this run."])
    for task in report.tasks:
        if task.output:
            body = visible(task.output, keep_lines=True).rstrip("\n")
            fence = _fence(body)
            out += ["", f"Output of task {md(task.task)} ({md(task.event_kind)}):", "",
                    f"{fence}text", body, fence]
    out += ["", "## Machines", ""]
    if report.machines:
        rows = _machine_rows(report)
        table = _md_table(MACHINE_HEAD, rows)
        for index, machine in enumerate(report.machines):
            url = report.machine_links.get(machine.resource_id)
            if url:
                first = md(machine.name)
                table[index + 2] = table[index + 2].replace(
                    f"| {first} |", f"| [{first}]({_md_url(url)}) |", 1)
        out += table
    else:
        out.append("No machine of this run is in Resource Graph.")
    out += ["", "## Totals", ""]
    out += [f"- **{label}:** {md(value)}" for label, value in _totals(report)]
    out += ["", "## Links", ""]
    if report.links:
        out += [f"- [{md(link.label)}]({_md_url(link.url)})"
                + (f": {md(link.note)}" if link.note else "") for link in report.links]
    else:
        out.append("None (the configuration id is not known).")
    out.append("- No portal page of a single run is documented: the configuration's page "
               "lists its runs.")
    if report.notes:
        out += ["", "## Notes", ""]
        out += [f"- {md(note)}" for note in report.notes]
    return "\n".join(out) + "\n"


# --- HTML -----------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1b1b1b; max-width: 80em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #c8c8c8; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #f0f0f0; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.summary dt { font-weight: bold; } dl.summary dd { margin: 0; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.note { color: #555; }
td.time { white-space: nowrap; }
""".strip()


def h(text: object) -> str:
    """An untrusted string for HTML text or an attribute value."""
    return html.escape(visible(text), quote=True)


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]],
                first_links: Sequence[str | None] = (),
                times: Sequence[int] = ()) -> list[str]:
    """A table; ``times`` are the indexes of columns of times (kept on one line)."""
    out = ["<table>", "<tr>" + "".join(f"<th>{h(c)}</th>" for c in head) + "</tr>"]
    for index, row in enumerate(rows):
        cells = [f'<td class="time">{h(c)}</td>' if column in times else f"<td>{h(c)}</td>"
                 for column, c in enumerate(row)]
        link = first_links[index] if index < len(first_links) else None
        if link:
            cells[0] = (f'<td><a href="{h(link)}" rel="noopener noreferrer">{h(row[0])}</a>'
                        "</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return out


def _dl(items: Sequence[tuple[str, str]]) -> list[str]:
    out = ['<dl class="summary">']
    out += [f"<dt>{h(label)}</dt><dd>{h(value)}</dd>" for label, value in items]
    out.append("</dl>")
    return out


def render_html(report: RunReport) -> str:
    """The report as one self-contained HTML page (inline style, no script)."""
    title = h(_title(report))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # Nothing loads from anywhere and nothing runs, whatever a string tried.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>{title}</title>",
        f"<style>\n{_STYLE}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{title}</h1>",
    ]
    out += _dl(_summary(report))
    zone_head = TIMELINE_HEAD[1].format(zone=report.zone_name)
    out.append("<h2>Timeline</h2>")
    out += _html_table((TIMELINE_HEAD[0], zone_head, *TIMELINE_HEAD[2:]),
                       _timeline_rows(report), times=(0, 1, 2))
    out.append("<h2>Events</h2>")
    out += (_html_table(EVENT_HEAD, _event_rows(report), times=(1, 2, 3)) if report.events else
            ['<p class="note">No pre/post event of this run is in the journal.</p>'])
    out.append("<h2>Cancel attempts</h2>")
    out += (_html_table(CANCEL_HEAD, _cancel_rows(report), times=(0, 1)) if report.cancels else
            ['<p class="note">No cancel attempt of this run is in the audit journal.</p>'])
    out.append("<h2>Tasks</h2>")
    out += (_html_table(TASK_HEAD, _task_rows(report), times=(3, 4)) if report.tasks else
            ['<p class="note">No task ran for this run.</p>'])
    for task in report.tasks:
        if task.output:
            out.append(f"<details><summary>Output of task {h(task.task)} "
                       f"({h(task.event_kind)})</summary>")
            out.append("<pre>" + html.escape(visible(task.output, keep_lines=True), quote=True)
                       + "</pre></details>")
    out.append("<h2>Machines</h2>")
    if report.machines:
        links = [report.machine_links.get(m.resource_id) for m in report.machines]
        out += _html_table(MACHINE_HEAD, _machine_rows(report), links)
    else:
        out.append('<p class="note">No machine of this run is in Resource Graph.</p>')
    out.append("<h2>Totals</h2>")
    out += _dl(_totals(report))
    out.append("<h2>Links</h2>")
    out.append("<ul>")
    out += [f'<li><a href="{h(link.url)}" rel="noopener noreferrer">{h(link.label)}</a>'
            + (f": {h(link.note)}" if link.note else "") + "</li>" for link in report.links]
    out.append("<li>No portal page of a single run is documented: the configuration's page "
               "lists its runs.</li>")
    out.append("</ul>")
    if report.notes:
        out.append("<h2>Notes</h2>")
        out.append("<ul>")
        out += [f"<li>{h(note)}</li>" for note in report.notes]
        out.append("</ul>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def render(report: RunReport, fmt: str) -> str:
    """The report in ``fmt`` (``md``, ``json`` or ``html``); ValueError for another."""
    renderers: Mapping[str, Any] = {"md": render_markdown, "json": render_json,
                                    "html": render_html}
    if fmt not in renderers:
        raise ValueError(f"unknown report format {fmt!r} (expected one of {', '.join(FORMATS)})")
    text: str = renderers[fmt](report)
    return text
