"""The passages questions are asked about, chosen in code with exact offsets (never by the model).

A corpus folder (one document per file, ids as :func:`lab.data.benchmarks.load_corpus_folder`
gives them) is cut into paragraphs (blank-line separated), each paragraph into sentences
(:func:`lab.chunking.sentence.sentence_spans`), and runs of consecutive sentences of one paragraph
whose length falls in ``[min_chars, max_chars]`` become candidate passages. A passage is skipped
when it looks like boilerplate or markup rather than prose: a heading, table row, code, HTML or
link-heavy text, too few letters, fewer than :data:`MIN_WORDS` words, a sentence that is a question
(a list of questions answers nothing), or a paragraph that occurs (normalised) in more than one
document (headers, footers, notices).

Order is seeded: each document's passages in the hash order of ``(seed, salt, doc, start)``, and
the documents taken round-robin in hash order, so any prefix of the order spreads over the
documents. ``salt`` gives each question type its own order, so the types ask about different
passages.

When the ingest manifest (``manifest.json`` beside the corpus folder, read by
:func:`lab.ingest.manifest.read_manifest`) is there, each passage carries the page (PDF) and section
title it lies in (:meth:`lab.ingest.provenance.DocumentMap.locate` of its first character).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.data.split import hash_order
from lab.errors import DataError
from lab.ingest.manifest import Manifest, manifest_path, read_manifest
from lab.ingest.provenance import DocumentMap, document_maps
from lab.testset.text import content_words, jaccard

#: A passage has at least this many words.
MIN_WORDS = 12
#: Share of a passage's characters that must be letters, digits, spaces or common punctuation.
MIN_PROSE_SHARE = 0.9
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_MARKUP = re.compile(r"https?://|\]\(|\{\{|\{%|<[a-zA-Z/!][^>]*>|```|\|\s*-{3}|\\[a-z]+\{")
_PROSE = re.compile(r"[\w\s.,;:!?'\"()\-–—’‘“”%$&/]", re.UNICODE)
_LINE_START_SKIP = ("#", "|", "!!!", "```", "<", "---", "===", ">")


@dataclass(frozen=True)
class Passage:
    """A span ``[start, end)`` of document ``doc_id``; ``text`` is exactly ``document[start:end]``.

    ``paragraph`` is the paragraph's index in the document (two passages of one document with
    different paragraphs or sections count as different places for a multi-passage question);
    ``page`` and ``section`` come from the ingest manifest (None without one).
    """

    doc_id: str
    start: int
    end: int
    text: str
    paragraph: int
    page: int | None = None
    section: str | None = None

    def reference(self) -> dict[str, Any]:
        """The reference object of the test-set CSV: ``content``, ``start_index``, ``end_index``,
        ``corpus_id`` and, when known, ``page`` and ``section``."""
        ref: dict[str, Any] = {"content": self.text, "start_index": self.start, "end_index": self.end,
                               "corpus_id": self.doc_id}
        if self.page is not None:
            ref["page"] = self.page
        if self.section is not None:
            ref["section"] = self.section
        return ref


@dataclass
class Corpus:
    """The documents of a corpus folder, its identity and, when present, its ingest manifest."""

    folder: Path
    documents: dict[str, str]
    manifest: Manifest | None = None
    manifest_sha256: str | None = None
    _maps: dict[str, DocumentMap] | None = field(default=None, repr=False)

    def identity(self) -> dict[str, Any]:
        """What the test set's meta records about the corpus: folder, counts, a sha256 of its ids and
        texts, and the manifest's sha256 when there is one."""
        h = hashlib.sha256()
        for doc_id in sorted(self.documents):
            h.update(doc_id.encode() + b"\0" + self.documents[doc_id].encode() + b"\0")
        return {"folder": str(self.folder), "documents": len(self.documents),
                "chars": sum(len(t) for t in self.documents.values()), "sha256": h.hexdigest(),
                "manifest_sha256": self.manifest_sha256}

    def place(self, doc_id: str, offset: int) -> tuple[int | None, str | None]:
        """``(page, section title)`` holding character ``offset`` of ``doc_id``: the page it is on and
        the innermost section holding it (:meth:`DocumentMap.locate`; None where unknown)."""
        if self._maps is None:
            self._maps = document_maps(self.manifest)
        doc = self._maps.get(doc_id)
        if doc is None:
            return None, None
        where = doc.locate(offset, offset)
        return (where.pages[0] if where.pages else None), where.section


def load_corpus(corpus_dir: str | Path) -> Corpus:
    """The corpus folder's documents (``*.txt`` and every other file, ids minus the last suffix) and
    the ingest manifest beside it (``../manifest.json``) when there is one.

    Raises
    ------
    DataError
        The folder is missing or holds no document, a file is not UTF-8, or the manifest is not an
        ingest manifest of the version this code reads or holds a malformed record (the message
        names the file and the key).
    """
    from lab.data.benchmarks import load_corpus_folder

    folder = Path(corpus_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a corpus folder (one document per file); `lab ingest SRC --out OUT` "
                        f"writes one under OUT/docs")
    documents = load_corpus_folder(folder)
    if not documents:
        raise DataError(f"{folder}: no documents")
    manifest_file = manifest_path(folder)
    manifest, digest = None, None
    if manifest_file.is_file():
        manifest = read_manifest(manifest_file)
        digest = hashlib.sha256(manifest_file.read_bytes()).hexdigest()
    return Corpus(folder, documents, manifest, digest)


def _prose(text: str) -> bool:
    """Does ``text`` look like prose (see the module docstring)?"""
    if len(text.split()) < MIN_WORDS or _MARKUP.search(text):
        return False
    if any(line.lstrip().startswith(_LINE_START_SKIP) for line in text.splitlines()):
        return False
    if "?" in text:
        return False
    share = len(_PROSE.findall(text)) / len(text)
    letters = sum(c.isalpha() for c in text) / len(text)
    return share >= MIN_PROSE_SHARE and letters >= 0.6


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def paragraphs(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each blank-line separated paragraph of ``text``, whitespace stripped."""
    out, at = [], 0
    for m in [*_PARAGRAPH.finditer(text), None]:
        stop = m.start() if m is not None else len(text)
        s, e = at, stop
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
        if m is not None:
            at = m.end()
    return out


def document_passages(doc_id: str, text: str, *, min_chars: int, max_chars: int,
                      repeated: set[str] | frozenset[str] = frozenset(), corpus: Corpus | None = None) -> list[Passage]:
    """Candidate passages of one document in text order (see the module docstring): runs of
    consecutive sentences of a paragraph, ``min_chars`` to ``max_chars`` long, not overlapping."""
    from lab.chunking.sentence import sentence_spans

    out: list[Passage] = []
    for pi, (ps, pe) in enumerate(paragraphs(text)):
        if _normal(text[ps:pe]) in repeated:
            continue
        sents = [(ps + s, ps + e) for s, e in sentence_spans(text[ps:pe])]
        i = 0
        while i < len(sents):
            j = i
            # grow the run while it stays within max_chars; stop as soon as it reaches min_chars
            while j < len(sents) and sents[j][1] - sents[i][0] <= max_chars:
                j += 1
                if sents[j - 1][1] - sents[i][0] >= min_chars:
                    break
            if j == i:          # one sentence longer than max_chars: skip it
                i += 1
                continue
            s, e = sents[i][0], sents[j - 1][1]
            if e - s >= min_chars and _prose(text[s:e]):
                page, section = corpus.place(doc_id, s) if corpus is not None else (None, None)
                out.append(Passage(doc_id, s, e, text[s:e], pi, page, section))
            i = j
    return out


def repeated_paragraphs(documents: Mapping[str, str]) -> set[str]:
    """Paragraphs (normalised) found in more than one document: boilerplate, not content."""
    seen: dict[str, str] = {}
    repeated: set[str] = set()
    for doc_id, text in documents.items():
        for s, e in paragraphs(text):
            key = _normal(text[s:e])
            if len(key) < 40:
                continue
            other = seen.setdefault(key, doc_id)
            if other != doc_id:
                repeated.add(key)
    return repeated


def all_passages(corpus: Corpus, *, min_chars: int, max_chars: int) -> dict[str, list[Passage]]:
    """Doc id -> its candidate passages in text order."""
    repeated = repeated_paragraphs(corpus.documents)
    return {doc_id: document_passages(doc_id, corpus.documents[doc_id], min_chars=min_chars, max_chars=max_chars,
                                      repeated=repeated, corpus=corpus)
            for doc_id in sorted(corpus.documents)}


def seeded_order(by_doc: Mapping[str, Sequence[Passage]], seed: int, salt: str) -> list[Passage]:
    """Every passage once: documents in hash order taken round-robin, each document's passages in
    hash order (see the module docstring)."""
    docs = [d for d in by_doc if by_doc[d]]
    doc_order = [docs[i] for i in hash_order(docs, seed, salt)]
    queues = []
    for d in doc_order:
        ps = list(by_doc[d])
        queues.append([ps[i] for i in hash_order([f"{p.doc_id}:{p.start}" for p in ps], seed, salt)])
    out: list[Passage] = []
    depth = 0
    while any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out


def different_places(a: Passage, b: Passage) -> bool:
    """Two passages of different documents, or of one document's different sections (different
    paragraphs where the manifest names no sections)."""
    if a.doc_id != b.doc_id:
        return True
    if a.section is not None or b.section is not None:
        return a.section != b.section
    return a.paragraph != b.paragraph


def pairs(order: Sequence[Passage], *, window: int = 50) -> Iterator[tuple[Passage, Passage]]:
    """Pairs of passages for multi-passage questions, in ``order``: each passage pairs with the one
    among the next ``window`` unused passages that is in a different place (:func:`different_places`;
    another document first) and shares the most content words with it (at least one: the two are on a
    related topic); each passage is used once."""
    used: set[int] = set()
    words = [content_words(p.text) for p in order]
    for i, a in enumerate(order):
        if i in used:
            continue
        best, best_key = None, None
        for j in range(i + 1, min(len(order), i + 1 + window)):
            b = order[j]
            if j in used or not different_places(a, b):
                continue
            shared = len(words[i] & words[j])
            if shared == 0:
                continue
            key = (b.doc_id != a.doc_id, shared, jaccard(words[i], words[j]), -j)
            if best_key is None or key > best_key:
                best, best_key = j, key
        if best is not None:
            used.update((i, best))
            yield a, order[best]
