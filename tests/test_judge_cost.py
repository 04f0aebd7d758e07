"""benchmarks/judge_cost.py's --quick path with the lexical judge only: answers of exactly the
asked lengths built from SQuAD passages, and the report's keys (throughput, the grounding check's
latency, ratios to the lexical baseline, load and threads). No timing is asserted."""

from __future__ import annotations

import json

from conftest import load_script

bench = load_script("benchmarks/judge_cost.py")


def test_quick_run_with_the_lexical_judge_writes_the_documented_keys(tmp_path):
    out = tmp_path / "cost.json"
    report = bench.main(["--quick", "--judges", "lexical", "--lengths", "20", "100", "--models",
                         str(tmp_path / "no-models"), "--out", str(out)])
    assert json.loads(out.read_text()) == report
    for key in ("benchmark", "command", "settings", "default_grounded", "answers", "judges", "grounding_check",
                "skipped", "baseline", "machine", "seconds"):
        assert key in report
    assert report["answers"] == {k: report["answers"][k] for k in ("20", "100")}
    assert [report["answers"][k]["mean_words"] for k in ("20", "100")] == [20.0, 100.0]
    row = report["judges"]["lexical"]["100"]
    assert row["n"] == 3 and row["judgments_per_s"] > 0 and row["per_s_over_lexical"] == 1.0
    check = report["grounding_check"]["lexical"]["20"]
    assert check["n"] == 3 and {"p50_ms", "p95_ms", "mean_ms", "fired", "p50_over_lexical"} <= check.keys()
    machine = report["machine"]
    assert len(machine["load_start"]) == len(machine["load_end"]) == 3 and "OMP_NUM_THREADS" in machine
    assert machine["cores_shared"] == (max(machine["load_start"][0], machine["load_end"][0]) > 1.5)
    assert report["skipped"] == {} and list(report["judges"]) == ["lexical"]


def test_answers_are_deterministic_grounded_and_of_the_asked_length():
    a, b = bench.make_answers(50, 4, seed=1), bench.make_answers(50, 4, seed=1)
    assert [i.answer for i in a] == [i.answer for i in b]
    for item in a:
        assert len(item.answer.split()) == 50 and item.context and len(item.context.split()) >= 75
