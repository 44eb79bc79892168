"""The documentation's relative links resolve, and BENCHMARKS.md's headings name results."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
HTML_LINK = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # http:, https:, mailto:, data:, ...
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*)$", re.MULTILINE)
PROCESS_WORDS = ("session", "issue", "interim")


def without_code(text: str) -> str:
    """Markdown text with fenced blocks and inline code spans blanked out."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def relative_targets(text: str) -> list[str]:
    """The file paths that a Markdown text links to or shows, fragments and queries removed."""
    text = without_code(text)
    targets = []
    for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK):
        for match in pattern.finditer(text):
            target = match.group(1).strip("<>").strip()
            if not target or target.startswith("#") or EXTERNAL.match(target):
                continue
            path = unquote(re.split(r"[#?]", target, maxsplit=1)[0])
            if path:
                targets.append(path)
    return targets


def broken_links(markdown: Path) -> list[str]:
    """Relative links and images of one Markdown file whose target does not exist."""
    return [target for target in relative_targets(markdown.read_text(encoding="utf-8"))
            if not (markdown.parent / target).exists()]


def headings(text: str) -> list[str]:
    """The ATX headings of a Markdown text, outside fenced code blocks."""
    return [match.group(1).strip() for match in HEADING.finditer(FENCE.sub("", text))]


def test_link_checker_finds_a_missing_file_and_skips_the_rest(tmp_path):
    (tmp_path / "fig.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](sub/page.md#part) ![fig](fig.png \"title\") [web](https://example.org/none.md)\n"
        "[anchor](#here) `[code](missing_in_code.md)` <img src=\"fig.png\"> [spaced](<sub/page.md>)\n"
        "```\n[fenced](missing_in_fence.md)\n```\n"
        "[gone](missing.md#x) ![lost](img/lost.svg) <a href=\"nowhere.html\">a</a>\n"
        "[ref]: missing_ref.md\n")
    assert broken_links(page) == ["missing.md", "img/lost.svg", "missing_ref.md", "nowhere.html"]


@pytest.mark.parametrize("markdown", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(markdown):
    assert broken_links(markdown) == []


def test_heading_reader_skips_code_blocks():
    text = "# Top\n```\n# session 3: a shell comment\n```\n## Result (machine; 2026-11-30)\n"
    assert headings(text) == ["Top", "Result (machine; 2026-11-30)"]


def test_benchmark_headings_name_results_not_the_work_that_made_them():
    found = headings((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"))
    assert len(found) > 10
    offending = [heading for heading in found if any(word in heading.lower() for word in PROCESS_WORDS)]
    assert offending == []
