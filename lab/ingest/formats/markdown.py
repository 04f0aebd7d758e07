"""Markdown: the source text kept as Markdown, without YAML front matter and inline HTML tags.

Why keep Markdown: its headings, lists and tables are the structure chunkers and readers use, and
the text stays the author's. The file is parsed with markdown-it-py (the CommonMark parser lab
already has through rich): its tokens locate headings (with their levels, ATX and setext), HTML
blocks and inline HTML by line, so tags inside code spans and fenced code are never touched.

- YAML front matter (a first line ``---`` up to the next ``---`` or ``...``) is parsed with PyYAML:
  its ``title`` becomes the document's title; its lines are removed (``front_matter_lines``).
  Front matter that is not valid YAML is kept as text, with a warning.
- Inline HTML tags (``<a href=...>``, ``<b>``) are removed and their text kept; an HTML block is
  replaced by its text (lxml), and an ``<h1>``-``<h6>`` in it becomes a section. Counted as
  ``markdown_html_tags``.
- Sections: every heading; the title is the front matter's, else the first level-1 heading, else
  the file name.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from lab.ingest.formats.base import (
    EXTRACTORS,
    Extraction,
    ExtractOptions,
    PageCallback,
    clean_title,
    close_sections,
    normalize,
)
from lab.ingest.formats.text import decode_text

_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][^>]*>", re.DOTALL)
_BLOCK_END = re.compile(r"(</(?:p|div|h[1-6]|li|tr|table|ul|ol|blockquote|section)>|<br\s*/?>)", re.IGNORECASE)


def split_front_matter(lines: list[str]) -> tuple[dict[str, Any] | None, int, str | None]:
    """``(front matter, lines it takes, problem)``: the parsed YAML mapping at the top of ``lines``
    and how many lines to drop; ``(None, 0, why)`` when there is none or it is not valid YAML."""
    import yaml

    if not lines or lines[0].strip() != "---":
        return None, 0, None
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        return None, 0, None
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 2}: " if mark is not None else ""
        return None, 0, f"{where}the front matter is not valid YAML ({getattr(exc, 'problem', exc)}); it was kept as text"
    if data is not None and not isinstance(data, dict):
        return None, 0, None   # a thematic break and a paragraph, not front matter
    return data or {}, end + 1, None


def _html_text(block: str) -> tuple[str, list[tuple[str, int, int]], int]:
    """An HTML block's text lines (block tags end lines), its headings ``(title, level, line)`` and its tag count."""
    import lxml.html

    tags = len(_TAG.findall(block))
    try:
        frag = lxml.html.fragment_fromstring(_BLOCK_END.sub(r"\1\n", block), create_parent="div")
    except Exception:  # noqa: BLE001 (lxml rejects some fragments: strip the tags instead)
        return _TAG.sub("", block), [], tags
    for node in frag.xpath(".//script | .//style"):
        node.drop_tree()
    text = frag.text_content()
    lines = text.split("\n")
    heads = []
    for h in frag.xpath(".//h1 | .//h2 | .//h3 | .//h4 | .//h5 | .//h6"):
        title = " ".join(h.text_content().split())
        line = next((i for i, x in enumerate(lines) if " ".join(x.split()) == title), None)
        if title and line is not None:
            heads.append((title, int(h.tag[1]), line))
    return text, heads, tags


@EXTRACTORS.register("markdown")
class MarkdownExtractor:
    """Markdown source without front matter and HTML tags; headings as sections (markdown-it-py)."""

    format = "markdown"
    name = "markdown-it-py"
    suffixes = (".md", ".markdown")

    def version(self) -> str:
        import markdown_it

        return markdown_it.__version__

    def extract(self, path: Path, options: ExtractOptions, on_page: PageCallback | None = None) -> Extraction:
        from markdown_it import MarkdownIt

        raw, warning = decode_text(path.read_bytes())
        ex = Extraction(text="", title="")
        if warning is not None:
            ex.warnings.append(warning)
        lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        front, skip, problem = split_front_matter(lines)
        if problem:
            ex.warn("front_matter", problem)
        ex.count("front_matter_lines", skip)
        lines = lines[skip:]
        heads: dict[int, tuple[str, int]] = {}    # line -> (title, level)
        replaced: dict[int, tuple[int, list[str]]] = {}   # first line -> (end line, new lines)
        tags = 0
        tokens = MarkdownIt("commonmark").enable("table").parse("\n".join(lines))
        for i, tok in enumerate(tokens):
            if tok.type == "heading_open" and tok.map:
                inline = tokens[i + 1]
                title = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
                heads[tok.map[0]] = (clean_title(title), int(tok.tag[1]))
            elif tok.type == "html_block" and tok.map:
                text, block_heads, n = _html_text(tok.content)
                tags += n
                replaced[tok.map[0]] = (tok.map[1], text.rstrip("\n").split("\n"))
                for title, level, line in block_heads:
                    heads[tok.map[0] + line] = (title, level)
            elif tok.type == "inline" and tok.map and tok.children:
                found = [c.content for c in tok.children if c.type == "html_inline"]
                if found:
                    tags += len(found)
                    _remove_in_order(lines, tok.map[0], tok.map[1], found)
        ex.count("markdown_html_tags", tags)
        out: list[str] = []
        marks: list[tuple[str, int, int]] = []
        i = 0
        while i < len(lines):   # rebuild, with HTML blocks replaced by their text
            if i in replaced:
                end, new = replaced[i]
                for k, line in enumerate(new):
                    if i + k in heads:
                        marks.append((heads[i + k][0], heads[i + k][1], len(out)))
                    out.append(line)
                i = max(end, i + 1)
                continue
            if i in heads:
                marks.append((heads[i][0], heads[i][1], len(out)))
            out.append(lines[i])
            i += 1
        ex.text, offsets = _join(out)
        ex.sections = close_sections([(t, lv, offsets[line]) for t, lv, line in marks if line in offsets],
                                     len(ex.text))
        title = front.get("title") if isinstance(front, dict) else None
        first_h1 = next((t for t, lv, _ in marks if lv == 1), "")
        ex.title = clean_title(html.unescape(str(title)) if title is not None else None) or first_h1 or path.stem
        if not ex.text:
            ex.warn("empty_text", "no text besides front matter and HTML tags")
        if on_page is not None:
            on_page(1, 1)
        return ex


def _remove_in_order(lines: list[str], first: int, end: int, tags: list[str]) -> None:
    """Remove each string of ``tags`` once, in order, from ``lines[first:end]``."""
    row, col = first, 0
    for tag in tags:
        while row < end:
            at = lines[row].find(tag, col)
            if at >= 0:
                lines[row] = lines[row][:at] + lines[row][at + len(tag):]
                col = at
                break
            row, col = row + 1, 0


def _join(lines: list[str]) -> tuple[str, dict[int, int]]:
    """The lines normalised (:func:`normalize` per line, one blank line at most in a row, none at the
    ends) joined with ``\\n``, and each kept line's offset in the result."""
    kept: list[str] = []
    where: dict[int, int] = {}
    pos = 0
    for i, line in enumerate(lines):
        line = normalize(line) if line.strip() else ""
        if not line and (not kept or not kept[-1]):
            continue
        if kept:
            pos += len(kept[-1]) + 1
        where[i] = pos
        kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    text = "\n".join(kept)
    return text, {i: min(p, len(text)) for i, p in where.items()}
