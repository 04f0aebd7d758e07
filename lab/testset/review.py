"""Human review of a generated test set: recording decisions, counting them, and what the review
app (``notebooks/review.py``, ``lab review``) shows for one item. The decisions file's format and the
reviewed set are :mod:`lab.data.review_file`'s (re-exported here).

The decisions live beside the test set: ``testset.csv`` -> ``testset.review.json``, a versioned file
(``format`` ``lab.testset-review``, version 1) holding ``{testset_sha256, decisions: [{id, decision,
reason, question?, answer?, decided_at}]}``, one decision per item id (deciding again replaces it).
``decision`` is ``accept``, ``edit`` (``question`` and/or ``answer`` hold the new text) or ``reject``.

The reviewed set (:func:`reviewed_rows`) is the test set with rejected items removed and edits
applied; every row says how it got there (``review``: accepted, edited or unreviewed). Item ids are
stable hashes of the items, so decisions made on one version of the test set carry over to a
regenerated one; a decision whose item is gone is listed (:attr:`ReviewFile.orphaned`), never
silently dropped, and the file's ``testset_sha256`` says which version it was made on.
"""

from __future__ import annotations

import contextlib
import csv
import html
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.data.review_file import (  # noqa: F401  (the file format, re-exported: lab.testset.review is its API)
    DECISIONS, FORMAT, REGENERATE, REQUIRED_COLUMNS, STATUS, VERSION, Decision, ReviewFile, file_sha256, load_decisions,
    load_review, read_testset, reviewed_rows)
from lab.data.review_file import review_path as decisions_path  # noqa: F401
from lab.errors import DataError
from lab.ingest.manifest import read_manifest_beside
from lab.ingest.provenance import DocumentMap
from lab.ingest.provenance import document_maps as provenance_maps
from lab.versioned import write_versioned

#: The app's reasons that say the excerpt does not support the item: judge_eval counts a reject with
#: one of them as an "unsupported" human label (``judge_eval.reviewed.unsupported_reasons``), any
#: other reason says nothing about grounding and leaves the item out of the judges' agreement.
UNSUPPORTED = ("not answerable from the excerpt", "answer not supported by the excerpt")
#: Reasons offered by the app (any text is allowed).
REASONS = (*UNSUPPORTED, "answer incomplete", "question ambiguous", "question trivial or leaks the answer",
           "excerpt boilerplate or garbled", "duplicate")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (the test set) while a decision is read, changed and written,
    so two app tabs deciding at once do not lose each other's decision."""
    try:
        import fcntl
    except ImportError:   # not POSIX: the write is still atomic, only concurrent writers may race
        yield
        return
    with open(path, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write(review: ReviewFile, decisions: Mapping[str, Decision]) -> None:
    kept = {**{d.id: d for d in review.orphaned}, **decisions}   # orphans stay in the file
    write_versioned(review.path, FORMAT, VERSION, {
        "testset_sha256": review.testset_sha256,
        "decisions": [kept[i].record() for i in sorted(kept)]})


def record_decision(testset_csv: str | Path, item_id: str, decision: str, *, reason: str = "",
                    question: str | None = None, answer: str | None = None,
                    decided_at: str | None = None) -> ReviewFile:
    """Record ``decision`` on item ``item_id`` (replacing an earlier one) and write the decisions
    file atomically; returns the decisions as now written.

    For ``edit``, ``question`` and ``answer`` are the reviewer's text; only what differs from the item
    is kept. The file's ``testset_sha256`` becomes the test set's current hash; decisions on items no
    longer in the test set are kept.

    Raises
    ------
    ValueError
        ``decision`` is not accept/edit/reject; an edit changes nothing or empties the question;
        question or answer given with accept or reject.
    DataError
        ``item_id`` is not in the test set, or a file is unreadable.
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    p = Path(testset_csv)
    with _locked(p):
        rows = {r["id"]: r for r in read_testset(p)}
        if item_id not in rows:
            raise DataError(f"{p}: no item with id {item_id!r}")
        row = rows[item_id]
        if decision == "edit":
            question = _changed(question, row["question"])
            answer = _changed(answer, row["answer"])
            if question is None and answer is None:
                raise ValueError(f"item {item_id}: the edit changes neither the question nor the answer; "
                                 "change one, or accept the item")
            if question == "":
                raise ValueError(f"item {item_id}: an edited question cannot be empty; reject the item instead")
        elif question is not None or answer is not None:
            raise ValueError(f"item {item_id}: question/answer text goes with an edit, not with {decision!r}")
        review = load_review(p, set(rows))
        made = Decision(id=item_id, decision=decision,  # type: ignore[arg-type]
                        reason=reason.strip(), question=question, answer=answer,
                        decided_at=decided_at or datetime.now(UTC).isoformat(timespec="seconds"))
        decisions = {**review.decisions, item_id: made}
        _write(review, decisions)
        return ReviewFile(review.path, review.testset_sha256, review.testset_sha256, decisions, review.orphaned)


def _changed(new: str | None, old: str) -> str | None:
    """The reviewer's text, stripped, when it differs from the item's; else None."""
    return None if new is None or new.strip() == old.strip() else new.strip()


def clear_decision(testset_csv: str | Path, item_id: str) -> ReviewFile:
    """Forget the decision on ``item_id`` (the item is unreviewed again); returns the decisions now written."""
    p = Path(testset_csv)
    with _locked(p):
        review = load_decisions(p)
        decisions = {i: d for i, d in review.decisions.items() if i != item_id}
        _write(review, decisions)
        return ReviewFile(review.path, review.testset_sha256, review.testset_sha256, decisions, review.orphaned)


def write_reviewed_csv(testset_csv: str | Path, out_csv: str | Path) -> Path:
    """Write :func:`reviewed_rows` as a CSV of the test set's format (plus ``review``), for readers
    that take a file (``chroma_excerpts``); stale or orphaned decisions are an error here."""
    rows = reviewed_rows(testset_csv, on_problem="error")
    with open(testset_csv, encoding="utf-8-sig", newline="") as fh:
        columns = [*next(csv.reader(fh)), "review"]
    from lab.io import atomic_open

    with atomic_open(out_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return Path(out_csv)


def review_counts(testset_csv: str | Path) -> dict[str, Any]:
    """The review's state for a report: items; accepted, edited, rejected, unreviewed; the same per
    ``question_type``; reasons given per decision (``{decision: {reason: n}}``, "" = none given);
    ``stale`` and the ``orphaned`` decisions' ids."""
    rows = read_testset(testset_csv)
    review = load_review(Path(testset_csv), {r["id"] for r in rows})
    keys = ("accepted", "edited", "rejected", "unreviewed")
    status = {"accept": "accepted", "edit": "edited", "reject": "rejected"}
    total: Counter[str] = Counter()
    by_type: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {d: Counter() for d in DECISIONS}
    for row in rows:
        d = review.decisions.get(row["id"])
        s = status[d.decision] if d else "unreviewed"
        total[s] += 1
        by_type.setdefault(row["question_type"], Counter())[s] += 1
        if d:
            reasons[d.decision][d.reason] += 1
    return {"items": len(rows), **{k: total[k] for k in keys},
            "by_type": {t: {k: c[k] for k in keys} for t, c in sorted(by_type.items())},
            "reasons": {d: dict(c.most_common()) for d, c in reasons.items()},
            "stale": review.stale, "orphaned": [d.id for d in review.orphaned],
            "testset_sha256": review.testset_sha256, "reviewed_sha256": review.reviewed_sha256}


# --------------------------------------------------------------------------- what the app shows


@dataclass(frozen=True)
class Excerpt:
    """One reference of an item inside its document: the text around it and where it is.

    ``before + excerpt + after == text[window_start:window_end]``; ``matches`` is False when the
    reference's ``content`` is not the text at its offsets (a broken item: say so, reject it)."""

    doc_id: str
    start: int
    end: int
    before: str
    excerpt: str
    after: str
    window_start: int
    window_end: int
    doc_chars: int
    pages: tuple[int, ...] = ()       # (first, last) page the excerpt overlaps; () where unknown
    sections: tuple[str, ...] = ()    # the sections holding its first character, outermost first
    matches: bool = True

    @property
    def location(self) -> str:
        """``page 4``, ``pages 4-5``, ``section A > B``, or ``""`` when the manifest says nothing."""
        if self.pages:
            lo, hi = self.pages[0], self.pages[-1]
            return f"page {lo}" if lo == hi else f"pages {lo}-{hi}"
        return f"section {' > '.join(self.sections)}" if self.sections else ""

    def html(self) -> str:
        """The window as HTML: every character of the document escaped, the excerpt in ``<mark>``,
        elided ends shown as ``...``."""
        lead = "... " if self.window_start > 0 else ""
        tail = " ..." if self.window_end < self.doc_chars else ""
        return (f'<div class="lab-doc" style="white-space: pre-wrap; font-family: ui-monospace, monospace; '
                f'font-size: 0.85em; line-height: 1.45; max-height: 26em; overflow-y: auto; padding: 0.6em; '
                f'border: 1px solid #ccc; border-radius: 4px">{lead}{html.escape(self.before)}'
                f'<mark style="background: #ffe066">{html.escape(self.excerpt)}</mark>'
                f'{html.escape(self.after)}{tail}</div>')


def excerpt_window(text: str, start: int, end: int, *, doc_id: str = "", content: str | None = None,
                   doc: DocumentMap | None = None, context: int = 700) -> Excerpt:
    """The excerpt ``text[start:end]`` with up to ``context`` characters either side (cut at a
    whitespace when one is near), and where it is in the document's page and section map ``doc``
    (:meth:`lab.ingest.provenance.DocumentMap.locate`): its first and last page, or else the
    headings of the sections holding its first character.

    Raises
    ------
    DataError
        ``start``/``end`` are not offsets into ``text``.
    """
    if not 0 <= start <= end <= len(text):
        raise DataError(f"{doc_id or 'document'}: excerpt offsets {start}:{end} outside the text (0:{len(text)})")
    lo, hi = max(0, start - context), min(len(text), end + context)
    if lo > 0:   # start the window at a word
        cut = text.find(" ", lo, start)
        lo = cut + 1 if 0 <= cut < lo + 80 else lo
    if hi < len(text):
        cut = text.rfind(" ", end, hi)
        hi = cut if cut > hi - 80 else hi
    pages: tuple[int, ...] = ()
    sections: tuple[str, ...] = ()
    if doc is not None:
        where = doc.locate(start, end)
        pages, sections = where.pages or (), where.section_path
    return Excerpt(doc_id, start, end, text[lo:start], text[start:end], text[end:hi], lo, hi, len(text),
                   pages, sections, content is None or content == text[start:end])


def document_maps(corpus_dir: str | Path) -> dict[str, DocumentMap]:
    """Doc id -> its page and section map from the ingest manifest ``corpus_dir/../manifest.json``
    (:func:`lab.ingest.manifest.read_manifest_beside`); ``{}`` when the corpus folder was not written
    by ``lab ingest`` (no manifest).

    Raises
    ------
    DataError
        The manifest is there but malformed (the message names the file and the key).
    """
    return provenance_maps(read_manifest_beside(corpus_dir))


def item_excerpts(row: Mapping[str, str], corpus_dir: str | Path,
                  maps: Mapping[str, DocumentMap] | None = None, *, context: int = 700) -> list[Excerpt]:
    """Each reference of test set ``row`` in its document of ``corpus_dir`` (``<doc_id>.txt``), with
    its page(s) or section from ``maps`` (:func:`document_maps`). An unanswerable item has none.

    Raises
    ------
    DataError
        ``references`` is not a JSON list of {content, start_index, end_index}, or a document is
        missing (the message names the item and the file).
    """
    try:
        refs = json.loads(row["references"] or "[]")
    except json.JSONDecodeError as exc:
        raise DataError(f"item {row['id']}: references is not JSON ({exc.msg})") from None
    if not isinstance(refs, list):
        raise DataError(f"item {row['id']}: references must be a JSON list")
    out, texts = [], {}
    for j, ref in enumerate(refs):
        if not (isinstance(ref, dict) and isinstance(ref.get("start_index"), int)
                and isinstance(ref.get("end_index"), int)):
            raise DataError(f"item {row['id']}: references[{j}] is not {{content, start_index, end_index}}: "
                            f"{ref!r:.120}")
        doc = str(ref.get("corpus_id") or row["corpus_id"])
        if doc not in texts:
            f = Path(corpus_dir) / f"{doc}.txt"
            if not f.is_file():
                raise DataError(f"item {row['id']}: document {doc!r} not in the corpus ({f} missing)")
            texts[doc] = f.read_text(encoding="utf-8")
        out.append(excerpt_window(texts[doc], ref["start_index"], ref["end_index"], doc_id=doc,
                                  content=ref.get("content"), doc=(maps or {}).get(doc), context=context))
    return out


def item_html(row: Mapping[str, str], excerpts: Sequence[Excerpt], decision: Decision | None = None) -> str:
    """The item card of the app: type, id, question, answer, the decision so far (edits shown), and
    each excerpt in its document; all text from the test set and the corpus is escaped."""
    e = html.escape
    status = "unreviewed"
    if decision is not None:
        status = STATUS.get(decision.decision, "rejected")
        status += f" ({e(decision.reason)})" if decision.reason else ""
    facts = [f'<b>{e(row["question_type"])}</b>', f'<code>{e(row["id"])}</code>', e(row.get("generator", "")),
             e(row.get("split", "")), f"<b>{status}</b>"]
    parts = [f'<p>{" &middot; ".join(f for f in facts if f)}</p>',
             f'<p style="font-size: 1.15em"><b>Q:</b> {e(row["question"])}</p>',
             f'<p><b>A:</b> {e(row["answer"]) or "<i>(no answer: unanswerable item)</i>"}</p>']
    if decision is not None and decision.decision == "edit":
        if decision.question is not None:
            parts.append(f'<p style="color: #1864ab"><b>edited Q:</b> {e(decision.question)}</p>')
        if decision.answer is not None:
            parts.append(f'<p style="color: #1864ab"><b>edited A:</b> {e(decision.answer)}</p>')
    if not excerpts:
        parts.append("<p><i>No excerpt: the item has no reference (unanswerable).</i></p>")
    for i, x in enumerate(excerpts, start=1):
        where = " &middot; ".join(s for s in (f"<code>{e(x.doc_id)}</code>", e(x.location),
                                              f"chars {x.start}-{x.end}") if s)
        warn = "" if x.matches else \
            ' <b style="color: #c92a2a">the reference text differs from the document here</b>'
        parts.append(f"<p>excerpt {i} of {len(excerpts)}: {where}{warn}</p>{x.html()}")
    return "\n".join(parts)
