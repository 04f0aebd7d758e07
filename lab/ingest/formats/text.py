"""Plain text, and the one decoder of text files (plain text and Markdown).

Decoding rule (chosen so nothing is garbled silently): UTF-8 (a BOM is dropped; UTF-16 with a BOM
is read as UTF-16). A file that is not valid UTF-8 is decoded as Windows-1252, the superset of
Latin-1 that Western European files not in UTF-8 almost always are, and gets a warning
``not_utf8`` naming the line and byte of the first invalid sequence and how to re-encode the file,
so a person can check it. A file whose bytes are not text (NUL bytes without a UTF-16 BOM) is an
error. No encoding guesser (charset-normalizer, chardet) is used: their guess changes with the
text's length and content, and a guess that varies per file is harder to check than one rule.
"""

from __future__ import annotations

from pathlib import Path

from lab.ingest.formats.base import (
    EXTRACTORS,
    ExtractError,
    Extraction,
    ExtractOptions,
    PageCallback,
    clean_title,
    normalize,
)
from lab.ingest.manifest import IngestWarning

_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def decode_text(data: bytes) -> tuple[str, IngestWarning | None]:
    """``data`` as text by the rule of this module, and the ``not_utf8`` warning when it applies.

    Raises
    ------
    ExtractError
        The bytes are not text (NUL bytes and no UTF-16 BOM): the message names the line.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec), None
            except UnicodeDecodeError as exc:
                line = data[:len(bom) + exc.start].count(b"\n") + 1
                raise ExtractError(f"starts with a {codec} byte-order mark but is not valid {codec} "
                                   f"(byte {exc.start}); re-encode it as UTF-8", line=line) from None
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise ExtractError("holds NUL bytes: a binary file (or UTF-16 without a byte-order mark), not text; "
                           "convert it to UTF-8 text or exclude it", line=line)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - line_start + 1
        bad = data[exc.start:exc.end]
    text = data.decode("cp1252", errors="strict") if _cp1252_ok(data) else data.decode("latin-1")
    codec = "Windows-1252" if _cp1252_ok(data) else "Latin-1"
    return text, IngestWarning(kind="not_utf8", page=None, message=(
        f"line {line}, column {column}: not valid UTF-8 (bytes {bad!r}); decoded as {codec} (Latin-1), "
        f"so check the text; re-encode the file as UTF-8 to silence this (`iconv -f cp1252 -t utf-8 IN > OUT`)"))


def _cp1252_ok(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


@EXTRACTORS.register("text")
class TextExtractor:
    """A plain text file: decoded (:func:`decode_text`), line ends and blank runs normalised."""

    format = "text"
    name = "lab-text"
    suffixes = (".txt", ".text")

    def version(self) -> str:
        return "1"

    def extract(self, path: Path, options: ExtractOptions, on_page: PageCallback | None = None) -> Extraction:
        text, warning = decode_text(path.read_bytes())
        text = normalize(text)
        first = next((line.strip() for line in text.split("\n") if line.strip()), "")
        ex = Extraction(text=text, title=clean_title(first, 150) if len(first) <= 150 else path.stem)
        if warning is not None:
            ex.warnings.append(warning)
        if on_page is not None:
            on_page(1, 1)
        return ex
