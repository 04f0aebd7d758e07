"""The labelled-answers format (one long RAG answer per record, optional hallucinated spans): the
strict reader's errors name file, line and key; span-level precision/recall/F1 against a hand count;
and ``lab judge calibrate`` end to end on such a file with the claim-level judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.data.halueval import read_judged
from lab.errors import DataError
from lab.judge.base import Judgment
from lab.judge.calibrate import span_agreement

CONTEXT = "The Eiffel Tower is in Paris. It opened in 1889 and is 330 metres tall."
GOOD = {"question": "Tell me about the Eiffel Tower.", "answer": "The Eiffel Tower is in Paris. It opened in 1889.",
        "context": CONTEXT, "label": "faithful", "spans": []}
BAD_ANSWER = "The Eiffel Tower is in Paris. It was painted green by Napoleon in 1702."
BAD = {"question": "Tell me about the Eiffel Tower.", "answer": BAD_ANSWER,
       "contexts": ["The Eiffel Tower is in Paris.", "It opened in 1889 and is 330 metres tall."], "label": 1,
       "spans": [{"start": BAD_ANSWER.index("It was"), "end": len(BAD_ANSWER)}]}


def _write(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def test_answers_records_read_with_labels_contexts_and_spans(tmp_path):
    got = read_judged(_write(tmp_path / "a.jsonl", [GOOD, BAD, GOOD | {"label": 0, "id": "x"} | {"spans": []},
                                                    {k: v for k, v in BAD.items() if k != "spans"}]))
    assert got.format == "answers" and got.labels == [0, 1, 0, 1]
    good, bad, third, unmarked = got.items
    assert good.context == CONTEXT and good.spans == () and third.id == "x"
    assert bad.context == "The Eiffel Tower is in Paris.\n\nIt opened in 1889 and is 330 metres tall."
    assert bad.spans == ((BAD_ANSWER.index("It was"), len(BAD_ANSWER)),) and unmarked.spans is None


@pytest.mark.parametrize(("record", "message"), [
    ({k: v for k, v in BAD.items() if k != "label"}, "field 'label' is missing: add"),
    (BAD | {"label": "Hallucinated "}, "'label' must be exactly"),
    (BAD | {"label": True}, "'label' must be exactly"),
    (BAD | {"spans": [{"start": 5, "end": 999}]}, r"'spans'\[0\]: \(5, 999\) is out of range"),
    (BAD | {"spans": [{"start": 9, "end": 3}]}, r"'spans'\[0\].*0 <= start < end"),
    (BAD | {"spans": [{"start": 0}]}, r"'spans'\[0\] must be an object with 'start' and 'end'"),
    (BAD | {"spans": []}, "'spans' is empty but 'label' is hallucinated"),
    (GOOD | {"spans": [{"start": 0, "end": 3}]}, "'label' is faithful"),
    ({k: v for k, v in BAD.items() if k != "contexts"}, "'context' or 'contexts' is missing"),
    (BAD | {"context": CONTEXT}, "not both"),
    (BAD | {"contexts": "one string"}, "'contexts' must be a non-empty list"),
    ('{"question": "q", "answer": ', "not valid JSON"),
])
def test_a_malformed_record_names_file_line_and_key(tmp_path, record, message):
    f = _write(tmp_path / "bad.jsonl", [GOOD, record, GOOD])
    with pytest.raises(DataError, match=message) as exc:
        read_judged(f)
    assert str(f) in str(exc.value) and "line 2" in str(exc.value) and "--skip-bad" in str(exc.value)
    kept = read_judged(f, skip_bad=True)
    assert len(kept.items) == 2 and [line for line, _ in kept.rejected] == [2]


def test_span_level_precision_recall_f1_by_character_overlap(tmp_path):
    items = read_judged(_write(tmp_path / "a.jsonl", [GOOD, BAD, BAD])).items
    gold = len(BAD_ANSWER) - BAD_ANSWER.index("It was")   # 42 labelled characters per hallucinated answer
    j = [Judgment(1, 0.9, None, "", "x", "-", claim_spans=[{"start": 0, "end": 10}]),   # a false alarm: 10 chars
         Judgment(1, 0.9, None, "", "x", "-", claim_spans=[{"start": BAD_ANSWER.index("It was"),
                                                              "end": BAD_ANSWER.index(" in 1702")}]),
         Judgment(0, 0.1, None, "", "x", "-")]   # a miss
    got = span_agreement(items, j)
    hit = BAD_ANSWER.index(" in 1702") - BAD_ANSWER.index("It was")
    assert got["labelled_chars"] == 2 * gold and got["predicted_chars"] == 10 + hit and got["overlap_chars"] == hit
    assert got["precision"] == pytest.approx(hit / (10 + hit)) and got["recall"] == pytest.approx(hit / (2 * gold))
    assert got["f1"] == pytest.approx(2 * hit / (10 + hit + 2 * gold)) and got["n"] == got["n_scored"] == 3
    # a verdict of 1 without offsets flags the whole answer; no verdict leaves the item out
    whole = span_agreement(items, [Judgment(None, None, None, "", "x", "-", error="e"),
                                   Judgment(1, 0.9, None, "", "x", "-"), Judgment(1, 0.9, None, "", "x", "-")])
    assert whole["n_scored"] == 2 and whole["recall"] == 1.0 and whole["predicted_chars"] == 2 * len(BAD_ANSWER)
    unmarked = read_judged(_write(tmp_path / "u.jsonl", [{k: v for k, v in BAD.items() if k != "spans"}])).items
    assert span_agreement(unmarked, [Judgment(1, 0.9, None, "", "x", "-")]) is None


def test_cli_calibrates_the_claim_level_judge_on_labelled_answers(tmp_path):
    from typer.testing import CliRunner

    from lab.cli import app

    f = _write(tmp_path / "answers.jsonl", [GOOD, BAD] * 3)
    out = tmp_path / "out.json"
    res = CliRunner().invoke(app, ["judge", "calibrate", str(f), "--judge", "claims:lexical", "--out", str(out)])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    for key in ("judge", "n", "accuracy", "f1", "kappa", "parse_failures", "majority_baseline_accuracy",
                "lexical_baseline_accuracy", "accuracy_ci", "f1_ci", "kappa_ci", "span_level"):
        assert key in got
    assert got["format"] == "answers" and got["task"] == "grounded" and got["judge"] == "claims:lexical"
    assert got["n"] == 6 and got["accuracy"] == 1.0   # "green", "Napoleon", "1702" are in no window
    spans = got["span_level"]
    assert spans["n"] == 6 and spans["precision"] == 1.0 and spans["recall"] == 1.0 and spans["f1"] == 1.0
    assert got["judge_info"]["counts"]["answers"] == 6
    # the whole-answer judge on the same file: its spans are whole answers, so precision drops
    res = CliRunner().invoke(app, ["judge", "calibrate", str(f), "--judge", "lexical", "--out", str(out)])
    assert res.exit_code == 0, res.output
    whole = json.loads(out.read_text())["span_level"]
    assert whole["recall"] == 1.0 and whole["precision"] < 1.0


def _made(rid: str, kind: str, answer: str, label: int, spans: list) -> dict:
    """A record as ``lab judge make-data`` writes it (its writer, with every extra key)."""
    from lab.judge.faithful_data import _record
    from lab.judge.faithful_sources import Source

    source = Source("s1", "Tell me about the Eiffel Tower.", tuple(BAD["contexts"]), ("Other passage.",))
    extra = {"base": "s1/faithful", "detail": {"before": "It opened in 1889."}} if label else {}
    return _record(source, rid, kind, answer, label, spans, [{"start": 0, "end": len(answer), "label": label}],
                   generator="scripted", seed=0, source_records=2, **extra)


def test_cli_calibrates_a_file_that_make_data_wrote_and_names_its_bad_records(tmp_path):
    from typer.testing import CliRunner

    from lab.cli import app

    good = _made("s1/faithful", "faithful", GOOD["answer"], 0, [])
    bad = _made("s1/faithful/negation", "negation", BAD_ANSWER, 1, BAD["spans"])
    assert {"id", "source_id", "kind", "claims", "words", "base", "detail"} <= bad.keys()
    f = _write(tmp_path / "made.jsonl", [good, bad] * 3)
    out = tmp_path / "out.json"
    res = CliRunner().invoke(app, ["judge", "calibrate", str(f), "--judge", "claims:lexical", "--out", str(out)])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    assert got["format"] == "answers" and got["n"] == 6 and got["skipped"] == 0
    assert got["accuracy"] == 1.0 and got["span_level"]["recall"] == 1.0
    # a make-data record broken by hand: the command stops, naming the file, the line and the fix
    f = _write(tmp_path / "broken.jsonl", [good, bad | {"spans": []}, good | {"label": "Faithful"}])
    res = CliRunner().invoke(app, ["judge", "calibrate", str(f), "--judge", "lexical"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert str(f) in text and "line 2: 'spans' is empty but 'label' is hallucinated" in text
    assert "line 3: 'label' must be exactly" in text and "--skip-bad" in text
    res = CliRunner().invoke(app, ["judge", "calibrate", str(f), "--judge", "lexical", "--skip-bad", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["skipped"] == 2 and json.loads(out.read_text())["n"] == 1
