"""README's settings example and `[keys]` list stay in step with the code (issue 20).

The example in "Using it with real Azure" is what a new operator copies: every setting the
loader knows must be in it (set, or commented out as an example), nothing it shows may be
unknown, and the file as shown must load without a warning. The `[keys]` comment must name
every remappable binding id.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from services.settings import _SPECS, KEY_BINDING_IDS, load_settings

README = Path(__file__).resolve().parents[1] / "README.md"

#: Settings that only the local stand-in's generated config uses (never a real tenant's).
STANDIN_ONLY = {("azure", "arm_endpoint"), ("azure", "ca_file"), ("azure", "token"),
                ("azure", "world")}


def example() -> str:
    """The README's config-file example: the first TOML block that has an [azure] table."""
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if b.lstrip().startswith("[azure]"))


def shown_settings(text: str) -> set[tuple[str, str]]:
    """(section, key) of every setting in ``text``, set or commented out (``# key = ...``)."""
    shown: set[tuple[str, str]] = set()
    section = ""
    for line in text.splitlines():
        # An array of tables (``[[alerts.routes]]``, shown commented out) is its own
        # section: its keys are a route's, not settings of ``_SPECS``.
        if table := re.match(r"(?:#\s*)?\[\[([\w.]+)\]\]", line):
            section = table.group(1)
        elif table := re.match(r"\[(\w+)\]", line):
            section = table.group(1)
        elif key := re.match(r"(?:#\s*)?(\w+)\s*=", line):
            shown.add((section, key.group(1)))
    return shown


def test_the_example_shows_every_setting_and_nothing_else() -> None:
    shown = {s for s in shown_settings(example()) if s[0] != "keys" and "." not in s[0]}
    known = {(spec.section, spec.key) for spec in _SPECS} - STANDIN_ONLY
    assert shown == known, (f"missing from the README: {sorted(known - shown)}; "
                            f"unknown to the settings: {sorted(shown - known)}")


def test_the_example_loads_as_written(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(example(), encoding="utf-8")
    tomllib.loads(example())
    settings = load_settings({}, env={}, config_path=config)
    assert settings.warnings == ()
    assert settings.sources["request_timeout"] == "file"
    assert settings.sources["time_display"] == "file"


def test_the_keys_comment_lists_every_remappable_binding() -> None:
    text = example()
    keys = text[text.index("[keys]"):text.index("[paths]")]
    listed = keys.split("# ids:", 1)[1].replace("#", " ").split()
    assert sorted(listed) == sorted(KEY_BINDING_IDS)
