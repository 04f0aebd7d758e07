"""The extractors one by one, on documents made in the test: text, page and section maps, titles,
boilerplate removed and counted, the decoding rule, discovery and globs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ingest_fixtures import HTML_PAGE, report_pages, write_docx, write_pdf

from lab.ingest.boilerplate import strip_page_furniture
from lab.ingest.discover import discover, matches
from lab.ingest.formats import EXTRACTORS, ExtractOptions, suffix_map
from lab.ingest.formats.text import decode_text
from lab.ingest.manifest import Section

OPTS = ExtractOptions()


def _extract(fmt: str, path: Path):
    return EXTRACTORS.get(fmt)().extract(path, OPTS)


def _check_sections(text: str, sections: list[Section]) -> None:
    for s in sections:
        assert 0 <= s.start <= s.end <= len(text)
        assert s.title.split()[0] in text[s.start:s.end], (s, text[s.start:s.start + 60])


def test_pdf_pages_are_contiguous_spans_without_running_headers_and_page_numbers(tmp_path):
    pages = [["Annual Report", f"Body of page {i} starts here.", "A second line of the body.",
              "A third line of the body.", "A fourth line of the body.", f"Page {i} of 6"] for i in range(1, 7)]
    ex = _extract("pdf", write_pdf(tmp_path / "r.pdf", pages))
    assert [p.page for p in ex.pages] == [1, 2, 3, 4, 5, 6]
    assert ex.pages[0].start == 0 and ex.pages[-1].end == len(ex.text)
    assert all(a.end == b.start for a, b in zip(ex.pages, ex.pages[1:], strict=False))
    for i, p in enumerate(ex.pages, start=1):
        assert f"Body of page {i} starts here." in ex.text[p.start:p.end]
    assert "Annual Report" not in ex.text and "of 6" not in ex.text
    assert ex.boilerplate == {"header_footer_lines": 6, "page_numbers": 6}
    assert not ex.scanned_pages and not ex.warnings


def test_a_line_repeated_in_the_body_is_not_a_header():
    pages = [["Intro line", "Controls apply to every system.", "Middle", "More", "Closing", str(i)] for i in range(5)]
    pages[2][2] = "Controls apply to every system."   # also in the middle of one page: only edges count
    kept, counts = strip_page_furniture(pages)
    assert counts["page_numbers"] == 5
    assert all("Middle" in p or "Controls apply to every system." in p for p in kept)


def test_pdf_title_from_metadata_else_first_line(tmp_path):
    ex = _extract("pdf", write_pdf(tmp_path / "t.pdf", report_pages(1)))
    assert ex.title == "Annual Report"


def test_html_keeps_the_article_and_counts_navigation_and_footer(tmp_path):
    page = tmp_path / "baselines.html"
    page.write_text(HTML_PAGE, encoding="utf-8")
    ex = _extract("html", page)
    assert "security baseline is the set of controls" in ex.text and "serious adverse effect" in ex.text
    for gone in ("About us", "Privacy policy", "do not ingest", "color: red"):
        assert gone not in ex.text
    assert ex.boilerplate["html_nav"] == 3 and ex.boilerplate["html_lines_dropped"] >= 4
    assert [(s.title, s.level) for s in ex.sections] == [("Understanding Baselines", 1), ("Low impact", 2),
                                                         ("Moderate impact", 2)]
    _check_sections(ex.text, ex.sections)
    assert ex.title == "Baselines | Example.gov"


def test_docx_headings_tables_and_header_lines(tmp_path):
    ex = _extract("docx", write_docx(tmp_path / "plan.docx"))
    assert "Coordinator | Alex Doe" in ex.text and "restored within four hours" in ex.text
    assert "CONFIDENTIAL" not in ex.text and ex.boilerplate == {"docx_header_footer_lines": 1}
    assert [(s.title, s.level) for s in ex.sections] == [("Contingency Plan", 1), ("1. Purpose", 1),
                                                         ("1.1 Scope", 2), ("2. Recovery", 1)]
    scope = ex.sections[2]
    assert ex.text[scope.start:scope.end] == "1.1 Scope\nIt covers the production environment.\nRole | Name\n" \
                                             "Coordinator | Alex Doe\n"
    assert ex.title == "Contingency Plan"


def test_markdown_front_matter_title_and_inline_html_removed(tmp_path):
    md = tmp_path / "post.md"
    md.write_text("---\ntitle: A New Roadmap&#58; 2024\nlayout: blog-page\n---\n"
                  "Today we release <a href=\"/r.pdf\" target=\"_blank\">a roadmap</a>, with <b>four</b> goals.\n\n"
                  "<h4>Our goals:</h4>\n- <b>Customer experience</b>. Simpler.\n\n"
                  "## Next steps\n\nUse `<b>` in code: it stays.\n", encoding="utf-8")
    ex = _extract("markdown", md)
    assert ex.title == "A New Roadmap: 2024"
    assert ex.text.startswith("Today we release a roadmap, with four goals.")
    assert "layout:" not in ex.text and "<a" not in ex.text and "target=" not in ex.text
    assert "Use `<b>` in code: it stays." in ex.text
    assert ex.boilerplate == {"front_matter_lines": 4, "markdown_html_tags": 8}
    assert [(s.title, s.level) for s in ex.sections] == [("Our goals:", 4), ("Next steps", 2)]
    _check_sections(ex.text, ex.sections)


def test_markdown_without_front_matter_takes_the_first_h1(tmp_path):
    md = tmp_path / "guide.md"
    md.write_text("# Significant Changes\n\nText.\n\n---\n\nAfter a rule.\n", encoding="utf-8")
    ex = _extract("markdown", md)
    assert ex.title == "Significant Changes" and "After a rule." in ex.text and not ex.boilerplate


def test_text_decoding_rule():
    assert decode_text("café".encode()) == ("café", None)
    assert decode_text(b"\xef\xbb\xbfcaf\xc3\xa9")[0] == "café"
    assert decode_text("café".encode("utf-16"))[0] == "café"
    text, warning = decode_text(b"line one\nna\xefve caf\xe9\n")
    assert text == "line one\nnaïve café\n"
    assert warning is not None and warning.kind == "not_utf8" and "line 2, column 3" in warning.message


def test_suffixes_and_globs():
    assert suffix_map()[".pdf"] == "pdf" and suffix_map()[".md"] == "markdown" and suffix_map()[".htm"] == "html"
    assert matches("pdf/a.pdf", "*.pdf") and matches("SOURCES.md", "SOURCES.md")
    assert matches("drafts/x/a.md", "drafts/*") and not matches("final/a.md", "drafts/*")


def test_discover_walks_lists_what_it_leaves_out_and_names_ids(tmp_path):
    src = tmp_path / "corpus"
    (src / "sub").mkdir(parents=True)
    (src / "a.md").write_text("# A\n")
    (src / "sub" / "b.txt").write_text("b\n")
    (src / "image.png").write_bytes(b"\x89PNG")
    (src / ".hidden.md").write_text("h\n")
    (src / "drafts").mkdir()
    (src / "drafts" / "c.md").write_text("c\n")
    os.symlink(src / "sub", src / "again")                 # a second link to a folder already walked
    files, skipped = discover([src], suffix_map(), exclude=("drafts/*",))
    assert [f.doc_id for f in files] == ["a.md", "sub/b.txt"]
    reasons = {s.source: s.reason for s in skipped}
    assert "unsupported format '.png'" in reasons["image.png"] and reasons[".hidden.md"] == "hidden file"
    assert "excluded by --exclude 'drafts/*'" in reasons["drafts/c.md"]
    assert "already walked" in reasons["again"]
    other = tmp_path / "more"
    other.mkdir()
    (other / "d.md").write_text("d\n")
    files, _ = discover([src, other / "d.md"], suffix_map(), include=("*.md",))
    assert [f.doc_id for f in files] == ["corpus/a.md", "corpus/drafts/c.md", "more/d.md"]


@pytest.mark.parametrize("fmt", ["pdf", "html", "docx", "markdown", "text"])
def test_every_extractor_names_itself(fmt):
    ext = EXTRACTORS.get(fmt)()
    assert ext.format == fmt and ext.name and ext.version() and ext.suffixes
