"""Recipe: add a chunker. A `paragraph` chunker that splits at blank lines, with exact offsets."""

from __future__ import annotations

import re
from typing import Any

from lab.chunking import CHUNKERS, Chunk, make_chunker
from lab.chunking.base import check_positive_int, check_text, make_chunks


@CHUNKERS.register("paragraph")   # the name params.yaml and make_chunker use
class ParagraphChunker:
    """Paragraphs (text between blank lines), merged up to ``max_chars`` characters."""

    name = "paragraph"
    version = 1   # raise it when the output changes: it is part of params() and so of cache keys

    def __init__(self, max_chars: int = 1000) -> None:
        # check arguments at construction: a bad value fails when params.yaml is read, not mid-run
        self.max_chars = check_positive_int(self.name, "max_chars", max_chars)

    def params(self) -> dict[str, Any]:
        """Everything that changes the output (run params, cache keys)."""
        return {"chunker": self.name, "version": self.version, "max_chars": self.max_chars}

    def chunk(self, text: str, doc_id: str = "") -> list[Chunk]:
        text = check_text(text, doc_id)   # DataError on text that is not valid Unicode
        spans: list[tuple[int, int]] = []
        # a paragraph: from a non-space character up to the next blank line, trailing spaces cut
        for m in re.finditer(r"\S(?:[^\n]|\n(?![ \t]*\n))*", text):
            start, end = m.start(), m.start() + len(m.group().rstrip())
            if spans and end - spans[-1][0] <= self.max_chars:
                spans[-1] = (spans[-1][0], end)   # merge into the previous chunk while it fits
            else:
                spans.append((start, end))
        return make_chunks(text, spans, doc_id)   # chunk.text is text[start:end], by construction


def main() -> None:
    text = "\n\n".join(["First paragraph.", "Second one,\nstill the second.  ", "\nThird, and much longer: " * 3])
    chunker = make_chunker("paragraph", max_chars=60)
    chunks = chunker.chunk(text, doc_id="demo")
    for c in chunks:
        assert text[c.start:c.end] == c.text   # the guarantee every chunker keeps
        print(c.index, c.start, c.end, repr(c.text[:40]))
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    assert make_chunker("paragraph").chunk("   ") == []   # empty documents give no chunks


if __name__ == "__main__":
    main()
