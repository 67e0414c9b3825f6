"""The docs the code cites exist: every ``docs/<page>.md "Section"`` named in a comment or
docstring is a heading of that page, and no comment points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("services", "tui", "widgets", "tests", "bench")
           for p in (ROOT / d).rglob("*.py")]
CITATION = re.compile(r'docs/(\w+)\.md,?\s+"([^"]+)"')


def _headings(page: str) -> set[str]:
    text = (ROOT / "docs" / f"{page}.md").read_text(encoding="utf-8")
    return {m.group(1).strip() for m in re.finditer(r"^#+\s+(.+)$", text, re.MULTILINE)}


def _citations() -> list[tuple[str, str, str]]:
    found = []
    for path in SOURCES:
        # A citation may wrap onto the next comment line: join the lines first.
        text = re.sub(r"\s*\n\s*(#:?\s*)?", " ", path.read_text(encoding="utf-8"))
        for page, section in CITATION.findall(text):
            found.append((str(path.relative_to(ROOT)), page, section))
    return found


def test_the_code_cites_sections() -> None:
    assert len(_citations()) >= 10  # the check below is not vacuous


@pytest.mark.parametrize(("where", "page", "section"), _citations())
def test_every_cited_section_exists(where: str, page: str, section: str) -> None:
    assert (ROOT / "docs" / f"{page}.md").is_file(), f"{where} cites docs/{page}.md"
    assert section in _headings(page), f"{where} cites docs/{page}.md \"{section}\""


def test_no_comment_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|\b(DESIGN|AZURE|STYLE)\.md")
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES
                 if p.name != "test_docs.py" and outside.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
