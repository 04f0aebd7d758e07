"""Answer length and style are not evidence (issue 31 item 4): equal-length and paraphrase pairs from
the training-data records, the three figures, and the veto: it fires on a judge that reads length
(the length baseline itself) and on one that flags faithful paraphrases, not on a fair one."""

from __future__ import annotations

import hashlib
import json

import pytest

from lab.errors import DataError
from lab.judge.base import Judgment
from lab.judge.baselines import LengthJudge
from lab.judge.shortcuts import (
    VetoRule,
    guard_entry,
    pairs_from_records,
    read_shortcut_set,
    shortcut_report,
    spearman,
)

RULE = VetoRule(n_resamples=300)


def _records(n: int = 36) -> list[dict]:
    """Per source: a faithful answer (4 to 12 sentences: lengths vary across sources), its paraphrase,
    and the answer with one number changed (the same length); source 0 also gets a much longer error."""
    out = []
    for i in range(n):
        k = 4 + i % 9
        faithful = " ".join(f"Item {j} of set {i} weighs {10 + j} kilograms." for j in range(k))
        para = " ".join(f"For set {i}, item {j} is {10 + j} kilograms." for j in range(k))   # as many words
        wrong = faithful.replace(f"weighs {10 + k - 1} kilograms", f"weighs {90 + k} kilograms")
        base = {"question": f"What do the items of set {i} weigh?", "contexts": [faithful]}
        out += [{**base, "id": f"s{i}/faithful", "kind": "faithful", "answer": faithful, "label": "faithful",
                 "spans": []},
                {**base, "id": f"s{i}/paraphrase", "kind": "paraphrase", "base": f"s{i}/faithful", "answer": para,
                 "label": "faithful", "spans": []},
                {**base, "id": f"s{i}/faithful/number", "kind": "number", "base": f"s{i}/faithful", "answer": wrong,
                 "label": "hallucinated", "spans": [{"start": wrong.rindex("weighs"), "end": len(wrong)}]}]
    long = out[0]["answer"] + " It was also shipped by sea from a port that nobody has ever heard of before now."
    out.append({**out[2], "id": "s0/faithful/addition", "kind": "addition", "answer": long,
                "spans": [{"start": len(out[0]["answer"]) + 1, "end": len(long)}]})
    return out


class Oracle:
    """Knows which answers carry a planted error (a fair judge); with ``flag_paraphrases`` it also flags
    every reworded answer (a judge that takes style for evidence). Scores carry length-free noise."""

    name = "oracle"

    def __init__(self, records: list[dict], *, flag_paraphrases: bool = False) -> None:
        self.bad = {r["answer"] for r in records if r["label"] == "hallucinated"}
        self.reworded = {r["answer"] for r in records if r["kind"] == "paraphrase"} if flag_paraphrases else set()

    def judge(self, items):
        out = []
        for it in items:
            v = int(it.answer in self.bad or it.answer in self.reworded)
            noise = int(hashlib.sha256(it.answer.encode()).hexdigest()[:4], 16) / 65536 / 5
            out.append(Judgment(v, 0.6 * v + noise, None, "", self.name, "-"))
        return out


def test_pairs_are_equal_length_errors_and_paraphrases_and_far_ones_are_counted():
    recs = _records()
    s = pairs_from_records(recs)
    assert len(s.equal_length) == 36 and len(s.paraphrase) == 36 and s.unequal == 1
    assert all(p.label_b == 1 and p.detail == "number" for p in s.equal_length)
    assert all(abs(len(p.a.answer.split()) - len(p.b.answer.split())) <= 3 for p in s.equal_length)
    assert {p.label_b for p in s.paraphrase} == {0}
    with pytest.raises(DataError, match=r"record 's0/paraphrase': its base 'nope' is not in the file"):
        pairs_from_records([{**r, "base": "nope"} if r["id"] == "s0/paraphrase" else r for r in recs])


def test_the_length_baseline_is_vetoed_for_tracking_length_and_not_seeing_the_error():
    recs = _records()
    report = shortcut_report(LengthJudge(threshold=60.0), pairs_from_records(recs), RULE)
    assert report["vetoed"] and report["length_rho"]["rho"] == pytest.approx(1.0)
    assert [r.split(":")[0] for r in report["veto_reasons"]] == ["length", "separation"]
    assert report["separation"]["mean"] == 0.0
    assert not guard_entry(report)["admissible"]
    # each rule can be switched off: with both off, nothing is left to veto it
    off = shortcut_report(LengthJudge(threshold=60.0), pairs_from_records(recs),
                          VetoRule(max_length_rho=None, min_separation=None, n_resamples=300))
    assert not off["vetoed"] and off["veto_reasons"] == []


def test_a_fair_judge_is_admitted_and_a_paraphrase_flagger_is_vetoed_for_that_alone():
    recs = _records()
    pairs = pairs_from_records(recs)
    fair = shortcut_report(Oracle(recs), pairs, RULE)
    assert not fair["vetoed"], fair["veto_reasons"]
    assert fair["separation"]["mean"] == 1.0 and fair["paraphrase_flags"]["mean"] == 0.0
    assert fair["flag_rate"] == {"faithful": 0.0, "paraphrase": 0.0, "planted_error": 1.0}
    assert abs(fair["length_rho"]["rho"]) < 0.3
    flagger = shortcut_report(Oracle(recs, flag_paraphrases=True), pairs, RULE)
    assert flagger["vetoed"] and [r.split(":")[0] for r in flagger["veto_reasons"]] == ["paraphrase"]
    assert flagger["paraphrase_flags"]["mean"] == 1.0 and flagger["separation_by_kind"]["number"]["separation"] == 1.0


def test_judgments_without_a_verdict_leave_their_pairs_out_counted():
    recs = _records(12)

    class Failing(Oracle):
        def judge(self, items):
            got = super().judge(items)
            return [Judgment(None, None, None, "", self.name, "-", error="boom", error_kind="parse")
                    if "set 0 " in it.answer or "set 0," in it.answer else j for it, j in zip(items, got, strict=True)]

    report = shortcut_report(Failing(recs), pairs_from_records(recs), RULE)
    assert report["failed_pairs"] == 2 and report["separation"]["n"] == 11 and report["paraphrase_flags"]["n"] == 11


def test_spearman_averages_ties_and_is_undefined_for_a_constant():
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(0.894427, abs=1e-6)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_read_shortcut_set_checks_the_file_with_the_labelled_answers_reader(tmp_path):
    f = tmp_path / "d.jsonl"
    recs = _records(4)
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert len(read_shortcut_set(f).equal_length) == 4
    recs[1] = {**recs[1], "label": "maybe"}
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(DataError, match=r"d.jsonl: 1 malformed record.*line 2.*'label' must be exactly"):
        read_shortcut_set(f)
    f.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "base"}) + "\n" for r in _records(2)))
    with pytest.raises(DataError, match="no equal-length or paraphrase pair"):
        read_shortcut_set(f)


def test_the_judge_study_adds_the_veto_to_its_guard_and_the_choice_follows():
    from types import SimpleNamespace

    from lab.studies.judge import choose_default, shortcut_veto, with_shortcuts

    recs = _records()
    cfg = SimpleNamespace(n_resamples=300, seed=0, shortcuts="train.jsonl")
    shortcuts = pairs_from_records(recs)
    length = shortcut_veto(LengthJudge(name="long-is-bad", threshold=60.0), shortcuts, cfg)
    fair = shortcut_veto(Oracle(recs), shortcuts, cfg, sample=10)
    assert fair["n_equal_length_pairs"] == 10 and fair["n_paraphrase_pairs"] == 10 and not fair["vetoed"]
    guard = {"long-is-bad": with_shortcuts({"admissible": True, "n": 5}, length),
             "oracle": with_shortcuts(None, fair)}
    assert guard["long-is-bad"]["admissible"] is False and guard["long-is-bad"]["n"] == 5
    assert guard["long-is-bad"]["shortcuts"]["why"] and guard["oracle"]["admissible"] is True
    assert choose_default({"long-is-bad": 0.9, "oracle": 0.6, "lexical": 0.5}, guard) == "oracle"
