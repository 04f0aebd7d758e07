"""lab.io.iter_jsonl: the one JSON Lines reader (lines, encodings, line-numbered errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.errors import DataError
from lab.io import iter_jsonl, read_jsonl


def test_lines_end_at_newline_only_and_blank_lines_keep_their_numbers(tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    # U+2028 inside a string is a character, not a line end; a BOM and CRLF endings are tolerated
    f.write_bytes("\ufeff".encode() + json.dumps({"t": "a\u2028b"}, ensure_ascii=False).encode()
                  + b"\r\n\n  \n" + b'{"t": "c"}')
    rows = list(iter_jsonl(f))
    assert [(r.line, r.record) for r in rows] == [(1, {"t": "a\u2028b"}), (4, {"t": "c"})]
    assert rows[1].where == f"{f}:line 4"
    assert read_jsonl(f) == [r.record for r in rows]


@pytest.mark.parametrize(("line", "kind", "message"), [
    (b"{not json", "bad_json", r"line 2: not valid JSON \(.* at column 2\); each line must be one JSON object"),
    (b"[1, 2]", "not_object", r"line 2: expected a JSON object, got list"),
    (b'{"t": "caf\xe9"}', "invalid_utf8", r"line 2: not valid UTF-8 at byte 10 of the line .*iconv"),
])
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: bytes, kind: str, message: str) -> None:
    f = tmp_path / "b.jsonl"
    f.write_bytes(b'{"ok": 1}\n' + line + b'\n{"ok": 3}\n')
    with pytest.raises(DataError, match=r"b\.jsonl:" + message):
        list(iter_jsonl(f))
    rows = list(iter_jsonl(f, strict=False))
    assert [(r.line, r.kind, r.record) for r in rows] == [(1, "", {"ok": 1}), (2, kind, {}), (3, "", {"ok": 3})]
    assert rows[1].error is not None and rows[0].error is None


def test_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        list(iter_jsonl(tmp_path / "nope.jsonl"))
