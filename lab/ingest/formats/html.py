"""HTML: the main content of a page with trafilatura, without navigation, header, footer and sidebars.

Why trafilatura: a saved web page is mostly not its article (the fedramp.gov pages of the example
corpus carry a menu, a footer and a "recent posts" list). trafilatura is a maintained main-content
extractor (Apache-2.0, used by large web-corpus projects, offline) that keeps headings, lists and
tables and drops the rest; measured on the example corpus
(``benchmarks/results/ingest_extractors.json``) it keeps the article and drops the site
furniture that a plain tag stripper (selectolax, or even the page's ``<main>``) keeps, at about
10 ms a page. The page is parsed once (trafilatura's lxml loader, which honours the page's
declared encoding); the headings of the extracted body give the sections.

Boilerplate counted: ``html_nav`` (``nav``/``header``/``footer``/``aside`` elements and ARIA
navigation, banner and footer regions of the page) and ``html_lines_dropped`` (lines of the page's
visible text that are not in the extracted text). A page whose main content cannot be found but
has visible text keeps its whole visible text (warning ``no_main_content``); a page with no visible
text at all (only scripts: a page built by JavaScript) gives no text (warning ``empty_text``).
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

from lab.ingest.formats.base import (
    EXTRACTORS,
    ExtractError,
    Extraction,
    ExtractOptions,
    PageCallback,
    clean_title,
    close_sections,
    normalize,
)

_FURNITURE = ("//nav | //header | //footer | //aside | //*[@role='navigation'] | //*[@role='banner'] "
              "| //*[@role='contentinfo']")


def _visible_lines(tree: Any) -> list[str]:
    """The non-blank lines of the page body's visible text (scripts, styles and templates left out)."""
    body = tree.find(".//body")
    body = deepcopy(body if body is not None else tree)
    for node in body.xpath(".//script | .//style | .//noscript | .//template"):
        parent = node.getparent()
        if parent is not None:
            tail = node.tail
            parent.remove(node)
            if tail and tail.strip():  # keep the text that followed the removed element
                prev = parent.text or ""
                parent.text = prev + tail
    lines = []
    for chunk in body.itertext():
        lines += [" ".join(x.split()) for x in chunk.split("\n")]
    return [x for x in lines if x]


@EXTRACTORS.register("html")
class HtmlExtractor:
    """The main content of an HTML page (trafilatura), headings as sections."""

    format = "html"
    name = "trafilatura"
    suffixes = (".html", ".htm", ".xhtml")

    def version(self) -> str:
        import trafilatura

        return trafilatura.__version__

    def extract(self, path: Path, options: ExtractOptions, on_page: PageCallback | None = None) -> Extraction:
        import trafilatura
        from trafilatura.utils import load_html

        data = path.read_bytes()
        tree = load_html(data)
        if tree is None:
            raise ExtractError("not an HTML document: the parser found no elements in it; check the file "
                               "(is it HTML saved under another suffix?)")
        ex = Extraction(text="", title="")
        ex.count("html_nav", len(tree.xpath(_FURNITURE)))
        visible = _visible_lines(tree)
        title_el = tree.find(".//title")
        h1 = tree.find(".//h1")
        ex.title = clean_title(title_el.text_content() if title_el is not None else None) \
            or clean_title(h1.text_content() if h1 is not None else None) or path.stem
        doc = trafilatura.bare_extraction(tree, include_tables=True, include_comments=False,
                                          include_formatting=False, with_metadata=False)
        if doc is not None and (doc.text or "").strip():
            ex.text = normalize(doc.text)
            heads = [(" ".join("".join(h.itertext()).split()), _level(h.get("rend")))
                     for h in doc.body.iter("head")] if doc.body is not None else []
        elif visible:
            ex.text = "\n".join(visible)
            heads = []
            ex.warn("no_main_content", "no main content found (the page may be all navigation or very short): "
                                       "its whole visible text was kept, menus included")
        else:
            ex.warn("empty_text", "no visible text: only scripts and styles (a page built by JavaScript); "
                                  "save the rendered page from a browser and ingest that copy")
            return ex
        kept = {" ".join(line.split()) for line in ex.text.split("\n")}
        ex.count("html_lines_dropped", sum(1 for line in visible if line not in kept and
                                           not any(line in k for k in kept if len(k) > len(line))))
        ex.sections = close_sections(_locate(ex.text, heads), len(ex.text))
        if on_page is not None:
            on_page(1, 1)
        return ex


def _level(rend: str | None) -> int:
    """``"h3"`` -> 3 (headings without a level are level 2)."""
    return int(rend[1]) if rend and len(rend) == 2 and rend[0] == "h" and rend[1].isdigit() else 2


def _locate(text: str, heads: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """``(title, level, start)`` of each heading, found in order as a whole line of ``text``."""
    offsets, pos = [], 0
    for line in text.split("\n"):
        offsets.append((pos, " ".join(line.split())))
        pos += len(line) + 1
    marks, i = [], 0
    for title, level in heads:
        if not title:
            continue
        j = next((k for k in range(i, len(offsets)) if offsets[k][1] == title), None)
        if j is not None:
            marks.append((title, level, offsets[j][0]))
            i = j + 1
    return marks
