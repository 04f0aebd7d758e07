"""Load a corpus (a folder of text files, or a JSONL file) into :class:`Document` records.

Bytes are decoded as strict UTF-8: a file that is not UTF-8 is an error rather than silently
garbled text, because every later stage (chunk offsets, token counts, retrieval) would inherit
the damage. A leading UTF-8 byte-order mark is removed (it is an encoding marker, not content)
and noted as a ``utf8_bom`` problem so that character offsets computed on the raw file can be
explained. With ``on_bad_file="report"`` unreadable or empty files are recorded in
:attr:`CorpusLoad.problems` and skipped instead of raising, so a whole corpus can be profiled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lab.config import CorpusSource
from lab.errors import DataError
from lab.io import iter_jsonl
from lab.paths import resolve_path

OnBadFile = Literal["error", "report"]

#: Kinds of :class:`FileProblem`. ``invalid_utf8``, ``empty``, ``bad_json``, ``missing_field`` and
#: ``duplicate_id`` make the file or line unusable (an error, or skipped in report mode);
#: ``utf8_bom`` is informational (the BOM is stripped, the document kept) and never raises.
PROBLEM_KINDS = ("invalid_utf8", "empty", "bad_json", "missing_field", "duplicate_id", "utf8_bom")

BOM = "\ufeff"
_REENCODE = (
    "Re-encode it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`, or `-f cp1252` for Windows text)"
)
# Corpus files can also be skipped; QA files cannot (their records are what is checked).
_FIX_ENCODING = f"{_REENCODE}, or set `data_quality.on_bad_file: report` to skip it and profile the rest."


@dataclass(frozen=True)
class Document:
    """One document of a corpus.

    Attributes
    ----------
    id:
        Folder corpora: the path relative to the folder without its suffix (``sub/name``).
        JSONL corpora: the value of ``id_field`` as a string.
    text:
        The decoded text (a leading BOM removed; newlines kept as in the file).
    source:
        Where it came from: the file path, or ``path:line N`` for JSONL (1-based line).
    """

    id: str
    text: str
    source: str


@dataclass(frozen=True)
class FileProblem:
    """A file (or JSONL line) that could not be used as it is; ``kind`` is one of PROBLEM_KINDS."""

    source: str
    kind: str
    detail: str


@dataclass
class CorpusLoad:
    """Result of :func:`load_corpus`.

    Attributes
    ----------
    name:
        The corpus name from the config.
    documents:
        Documents in file-name (folder) or line (JSONL) order.
    problems:
        Skipped files/lines (report mode) and informational notes (``utf8_bom``).
    truncated:
        True when ``limit`` stopped loading before the end: documents that exist on disk may be
        absent, which QA checks must not mistake for a missing document.
    """

    name: str
    documents: list[Document] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    truncated: bool = False


# --------------------------------------------------------------------------- decoding


def describe_decode_error(data: bytes, exc: UnicodeDecodeError) -> str:
    """Where and what a UTF-8 decode failure is: byte offset, line, the bad bytes, some context."""
    bad = data[exc.start : exc.end]
    line = data.count(b"\n", 0, exc.start) + 1
    context = data[max(0, exc.start - 20) : exc.end + 20]
    return f"not valid UTF-8 at byte offset {exc.start} (line {line}): bad bytes {bad!r} in {context!r}"


def decode_utf8(path: Path | str, data: bytes) -> tuple[str, bool]:
    """Decode ``data`` (the bytes of file ``path``) as strict UTF-8; return ``(text, had_bom)``.

    Raises
    ------
    DataError
        The bytes are not UTF-8; the message names the file, offset and bytes and how to fix it.
    """
    try:
        return _decode(data)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {describe_decode_error(data, exc)}. {_REENCODE}.") from None


def _decode(data: bytes) -> tuple[str, bool]:
    """Strict UTF-8 decode, BOM stripped; raises :class:`UnicodeDecodeError`."""
    text = data.decode("utf-8")
    if text.startswith(BOM):
        return text[1:], True
    return text, False


def read_text(path: Path) -> str:
    """Read a whole file as strict UTF-8 (BOM stripped); errors are :class:`DataError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return decode_utf8(path, data)[0]


def _check(on_bad_file: str) -> None:
    if on_bad_file not in ("error", "report"):
        raise ValueError(f"on_bad_file must be 'error' or 'report', got {on_bad_file!r}")


# --------------------------------------------------------------------------- loaders


def load_corpus(
    src: CorpusSource, root: Path, on_bad_file: OnBadFile = "error", limit: int = 0
) -> CorpusLoad:
    """Load the corpus described by ``src``.

    Parameters
    ----------
    src:
        The corpus entry of the config (``format`` folder or jsonl).
    root:
        Folder that relative ``src.path`` is resolved against (the folder of ``params.yaml``).
    on_bad_file:
        ``"error"``: the first invalid-UTF-8, empty or malformed file/line raises. ``"report"``:
        it is recorded in ``problems`` and skipped (invalid UTF-8 is not profiled with
        replacement characters: its text is unknown, so it is counted, not guessed).
    limit:
        Stop after this many documents (0 = all). Skipped files do not count towards it.

    Raises
    ------
    DataError
        Missing path, folder without matching files, and (error mode) bad files; the message
        names the file (and line for JSONL) and how to fix it.
    """
    _check(on_bad_file)
    path = Path(src.path)
    path = resolve_path(path, root)
    if src.format == "folder":
        return _load_folder(src, path, on_bad_file, limit)
    return _load_jsonl(src, path, on_bad_file, limit)


class _Sink:
    """Collects problems, or raises them, according to ``on_bad_file``."""

    def __init__(self, load: CorpusLoad, on_bad_file: str) -> None:
        self.load, self.on_bad_file = load, on_bad_file

    def bad(self, source: str, kind: str, detail: str, message: str) -> None:
        if self.on_bad_file == "error":
            raise DataError(message)
        self.load.problems.append(FileProblem(source, kind, detail))


def _load_folder(src: CorpusSource, folder: Path, on_bad_file: str, limit: int) -> CorpusLoad:
    if not folder.exists():
        raise DataError(f"corpus {src.name!r}: folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(
            f"corpus {src.name!r}: {folder} is a file, not a folder; set `format: jsonl` for a JSONL "
            "corpus or point `path` at a folder"
        )
    matches = (p for p in folder.glob(src.glob) if p.is_file())
    files = sorted(matches, key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise DataError(
            f"corpus {src.name!r}: no files match glob {src.glob!r} in folder {folder}; "
            "fix `glob` (e.g. '*.md', '**/*.txt') or the folder path"
        )
    sink = _Sink(CorpusLoad(src.name), on_bad_file)
    for file in files:
        if limit and len(sink.load.documents) >= limit:
            sink.load.truncated = True
            break
        source = str(file)
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise DataError(f"{file}: cannot read file ({exc.strerror or exc})") from None
        try:
            text, had_bom = _decode(data)
        except UnicodeDecodeError as exc:
            detail = describe_decode_error(data, exc)
            sink.bad(source, "invalid_utf8", detail, f"{file}: {detail}. {_FIX_ENCODING}")
            continue
        if not text.strip():
            what = "0 bytes" if not data else f"only whitespace ({len(data)} bytes)"
            sink.bad(
                source, "empty", f"file is empty: {what}",
                f"{file}: file is empty ({what}). Remove it from {folder} or fill it with the "
                "document's text, or set `data_quality.on_bad_file: report` to skip it.",
            )
            continue
        if had_bom:
            sink.load.problems.append(FileProblem(source, "utf8_bom", "leading UTF-8 BOM removed"))
        doc_id = file.relative_to(folder).with_suffix("").as_posix()
        sink.load.documents.append(Document(doc_id, text, source))
    return sink.load


def _load_jsonl(src: CorpusSource, file: Path, on_bad_file: str, limit: int) -> CorpusLoad:
    if not file.is_file():
        what = "does not exist"
        if file.is_dir():
            what = "is a folder; set `format: folder` or point `path` at a .jsonl file"
        raise DataError(f"corpus {src.name!r}: {file} {what}")
    try:
        with file.open("rb") as fh:
            head = fh.read(3)
    except OSError as exc:
        raise DataError(f"{file}: cannot read file ({exc.strerror or exc})") from None
    sink = _Sink(CorpusLoad(src.name), on_bad_file)
    if head == BOM.encode("utf-8"):
        sink.load.problems.append(FileProblem(f"{file}:line 1", "utf8_bom", "leading UTF-8 BOM removed"))
    seen: dict[str, int] = {}
    lines = 0
    for row in iter_jsonl(file, strict=False):
        lines += 1
        if limit and len(sink.load.documents) >= limit:
            sink.load.truncated = True
            break
        where, lineno, obj = row.where, row.line, row.record
        if row.error is not None:
            kind = "invalid_utf8" if row.kind == "invalid_utf8" else "bad_json"
            fix = (_FIX_ENCODING if kind == "invalid_utf8" else
                   "Each line must be one JSON object; fix or delete the line, or set "
                   "`data_quality.on_bad_file: report` to skip it.")
            sink.bad(where, kind, row.error, f"{where}: {row.error}. {fix}")
            continue
        missing = [f for f in (src.id_field, src.text_field) if f not in obj]
        if missing:
            detail = f"missing field(s) {missing} (fields present: {sorted(obj)})"
            sink.bad(where, "missing_field", detail,
                     f"{where}: {detail}. Set `text_field`/`id_field` of corpus {src.name!r} to the "
                     "right keys, or fix the record.")
            continue
        text, doc_id = obj[src.text_field], obj[src.id_field]
        if not isinstance(text, str) or isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
            detail = (f"field {src.text_field!r} must be a string and {src.id_field!r} a string or "
                      f"integer (got {type(text).__name__} and {type(doc_id).__name__})")
            sink.bad(where, "missing_field", detail, f"{where}: {detail}.")
            continue
        doc_id = str(doc_id)
        if not text.strip():
            detail = f"field {src.text_field!r} is empty" + (" (whitespace only)" if text else "")
            sink.bad(where, "empty", detail,
                     f"{where}: {detail} (id {doc_id!r}). Remove the line or fill the text, or set "
                     "`data_quality.on_bad_file: report` to skip it.")
            continue
        if doc_id in seen:
            detail = f"id {doc_id!r} already used on line {seen[doc_id]}"
            sink.bad(where, "duplicate_id", detail,
                     f"{where}: {detail}; document ids must be unique (references point at them).")
            continue
        seen[doc_id] = lineno
        sink.load.documents.append(Document(doc_id, text, where))
    if not lines:
        raise DataError(f"{file}: file is empty; fill it with one JSON object per line or remove the corpus")
    return sink.load
