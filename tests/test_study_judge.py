"""The judge study end to end on small files: baselines, a trained cross-encoder, a prompted tiny model,
thresholds and the default chosen on validation items, the arms judged, and a second run all cached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.config import load_section


def _jsonl(path: Path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _shortcut_records(facts) -> list[dict]:
    """A small file of `lab judge make-data`'s shape: per fact a faithful answer, its paraphrase and
    the answer with the country swapped (the same length)."""
    out = []
    for n, (city, country) in enumerate(facts):
        other = facts[(n + 1) % len(facts)][1]
        base = {"question": f"Tell me about {city}.", "contexts": [f"{city} is the capital of {country}. It lies on a river."]}
        ok = f"{city} is the capital of {country}. It lies on a river."
        wrong = f"{city} is the capital of {other}. It lies on a river."
        out += [{**base, "id": f"{n}/faithful", "kind": "faithful", "answer": ok, "label": "faithful", "spans": []},
                {**base, "id": f"{n}/paraphrase", "kind": "paraphrase", "base": f"{n}/faithful", "label": "faithful",
                 "answer": f"The capital of {country} is {city}. A river runs through it.", "spans": []},
                {**base, "id": f"{n}/faithful/entity", "kind": "entity", "base": f"{n}/faithful", "answer": wrong,
                 "label": "hallucinated", "spans": [{"start": 0, "end": wrong.index(".") + 1}]}]
    return out


@pytest.fixture
def project(tmp_path, monkeypatch, isolated_mlflow):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    facts = [("Paris", "France"), ("Rome", "Italy"), ("Madrid", "Spain"), ("Berlin", "Germany"), ("Lisbon", "Portugal"),
             ("Vienna", "Austria"), ("Athens", "Greece"), ("Oslo", "Norway"), ("Dublin", "Ireland"), ("Prague", "Czechia"),
             ("Warsaw", "Poland"), ("Bern", "Switzerland"), ("Sofia", "Bulgaria"), ("Riga", "Latvia")]
    grounded = [{"knowledge": f"{c} is the capital of {k}. It lies on a river.", "question": f"{c} is the capital of what?",
                 "right_answer": k, "hallucinated_answer": f"{c} is the capital of Atlantis since 1900."} for c, k in facts]
    general = [{"ID": str(i), "user_query": f"Tell me about item {i}.", "chatgpt_response":
                f"Item {i} was invented in {1800 + i} by a famous person." if i % 3 == 0 else f"Item {i} is an item.",
                "hallucination": "yes" if i % 3 == 0 else "no"} for i in range(40)]
    paragraphs = [{"paragraph_id": "p#0", "title": "p", "text": "Tesla was born in Smiljan in 1856."}]
    qa = [{"id": "q1", "paragraph_id": "p#0", "title": "p", "question": "Where was Tesla born?", "answers": ["Smiljan"]},
          {"id": "q2", "paragraph_id": "p#0", "title": "p", "question": "When was Tesla born?", "answers": ["1856"]}]
    preds = [{"arm": "zero_shot", "id": "q1", "question": "Where was Tesla born?", "answers": ["Smiljan"], "prediction": "Paris"},
             {"arm": "zero_shot", "id": "q2", "question": "When was Tesla born?", "answers": ["1856"], "prediction": "1856"},
             {"arm": "rag", "id": "q1", "question": "Where was Tesla born?", "answers": ["Smiljan"], "prediction": "Smiljan",
              "contexts": ["Tesla was born in Smiljan."]},
             {"arm": "rag", "id": "q2", "question": "When was Tesla born?", "answers": ["1856"], "prediction": "in 1856",
              "contexts": ["He was born in 1856."]}]
    d = tmp_path / "data"
    d.mkdir()
    from test_testset_task import _reviewed_project

    _reviewed_project(tmp_path)   # a reviewed test set over a corpus folder: the judges on the reviewer's labels
    section = {
        "data": {"grounded_train": _jsonl(d / "train.jsonl", grounded[:10]), "grounded_eval": _jsonl(d / "dev.jsonl", grounded[10:]),
                 "general": _jsonl(d / "general.jsonl", general), "general_heldout_fraction": 0.4},
        "validation_fraction": 0.4,
        "judges": [{"name": "tiny-prompted", "backend": {"backend": "transformers", "model": "tiny-random-llama",
                                                         "batch_size": 4, "threads": 1}, "sample": 6}],
        "trained": {"epochs": 1, "batch_size": 8, "max_length": 64, "threads": 1, "lexical_hints": True},
        "ragas": {"name": "ragas-tiny", "backend": {"backend": "transformers", "model": "tiny-random-llama",
                                                    "batch_size": 1, "threads": 1}, "sample": 3, "max_new_tokens": 16},
        "answers": _jsonl(d / "preds.jsonl", preds), "paragraphs": _jsonl(d / "paragraphs.jsonl", paragraphs),
        "qa": _jsonl(d / "qa.jsonl", qa), "n_resamples": 200, "out_dir": "results/judge_eval",
        "shortcuts": _jsonl(d / "shortcuts.jsonl", _shortcut_records(facts)),
        # the claim-support model on make-data-shaped answers; the default chosen on other, unseen facts
        "claims": {"data": [_jsonl(d / "claims.jsonl", _shortcut_records(facts))], "more_errors": 0,
                   "model": {"epochs": 1, "batch_size": 8, "max_length": 48, "threads": 1}},
        "realistic": _jsonl(d / "realistic.jsonl", _shortcut_records(
            [("Tallinn", "Estonia"), ("Vilnius", "Lithuania"), ("Zagreb", "Croatia"), ("Budapest", "Hungary"),
             ("Helsinki", "Finland"), ("Valletta", "Malta")])),
        "reviewed": {"questions": "results/testset/testset.csv", "corpus_dir": "results/ingest/docs"}}
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"judge_eval": section}))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    return tmp_path


@pytest.mark.slow
def test_the_judge_study_calibrates_chooses_scores_and_caches(project, capsys):
    from lab.stage_outputs import judge_by_name
    from lab.studies.judge import run

    cfg = load_section("judge_eval", project / "params.yaml")
    from lab.stage import StagePaths

    report = run(cfg, StagePaths.for_config(cfg, project), progress=False)
    report.write(project / cfg.out_dir)
    ev = report.table[report.table["split"] == "evaluation"]
    assert set(ev["judge"]) >= {"majority", "lexical", "faithfulness-cross-encoder", "hallucination-cross-encoder",
                                "tiny-prompted"}
    tiny = ev[ev["judge"] == "tiny-prompted"]
    assert (tiny["n"] == 6).all() and tiny["sampled"].all()
    assert report.choices["default"]["grounded"] in report.choices["validation_kappa"]["grounded"]
    # grounded judges also on the length-balanced diagnostic sets, beside the length rule; they guard the choice
    diag = report.table[report.table["split"] == "diagnostic"]
    assert set(diag["task"]) == {"grounded"} and set(diag["judge"]) >= {"length", "lexical", "faithfulness-cross-encoder"}
    whole = diag[diag["judge"] != "tiny-prompted"]      # the prompted judge runs on its sample of 6
    assert (whole["n"] > ev[(ev["task"] == "grounded") & (ev["judge"] == "lexical")]["n"].iloc[0]).all()
    assert report.choices["chosen_on"] == {
        "grounded": "the realistic set, guarded by diagnostic_validation and the length/paraphrase veto (shortcuts)",
        "general": "validation"}
    # the claim-support model is a grounded candidate; every grounded judge is measured on the realistic
    # set, and the grounded default is the best admitted kappa THERE (not on HaluEval's validation items)
    claims = "claims:claim-support-cross-encoder"
    assert claims in set(ev["judge"]) and report.training["claims"]["pairs"]["train"]["pairs_unsupported"] > 0
    real = report.table[report.table["split"] == "realistic"]
    assert set(real["judge"]) == set(ev[ev["task"] == "grounded"]["judge"]) and (real[real["judge"] != "tiny-prompted"]["n"] == 18).all()
    kappa = report.choices["realistic_kappa"]["grounded"]
    assert claims in kappa and "length" not in kappa and "majority" not in kappa
    admitted = {j: k for j, k in kappa.items()
                if report.choices["diagnostic_guard"]["grounded"].get(j, {}).get("admissible", True)}
    assert report.choices["default"]["grounded"] == max(admitted, key=admitted.get)
    assert "On the realistic set (18 long-form answers" in report.finding()
    guard = report.choices["diagnostic_guard"]["grounded"]
    assert "faithfulness-cross-encoder" in guard and "lexical" not in guard
    assert all(isinstance(g["admissible"], bool) for g in guard.values())
    # the length and paraphrase veto (judge_eval.shortcuts) beside the length-balanced guard
    assert all("shortcuts" in g for g in guard.values()) and "grounded/lexical/shortcuts" in report.reports
    assert all(g["admissible"] <= g["shortcuts"]["admissible"] for g in guard.values())
    assert "length" not in report.choices["validation_kappa"]["grounded"]
    assert "tiny-prompted" in report.choices["thresholds"]      # chosen on validation items from P(positive)
    assert set(report.arms["arm"]) == {"zero_shot", "rag"} and set(report.arms["against"]) == {
        "source paragraph", "retrieved passages"}
    metrics = json.loads((project / cfg.out_dir / "metrics.json").read_text())
    assert metrics["grounded"]["default"] == report.choices["default"]["grounded"]
    # every grounded judge also on the reviewed test set's human labels (6 labelled, 9 left out)
    rev = report.table[report.table["split"] == "reviewed"]
    assert set(rev["judge"]) == set(ev[ev["task"] == "grounded"]["judge"]) and set(rev["task"]) == {"grounded"}
    assert (rev[rev["judge"] != "tiny-prompted"]["n"] == 6).all()
    assert metrics["grounded_reviewed"]["labels"] == {"supported": 3, "unsupported": 3, "excluded": 9}
    assert "lexical" in metrics["grounded_reviewed"] and "reviewed test set items" in report.finding()
    assert any(j["task"] == "grounded_reviewed" for j in report.judgments)
    assert {"length", "lexical"} <= set(metrics["grounded_length_balanced"])
    lines = (project / cfg.out_dir / "judgments.jsonl").read_text().splitlines()
    assert all("raw" in json.loads(x) and "rubric" in json.loads(x) for x in lines)
    # every judgment carries the item's human label (not the judge's verdict text in its place)
    saved = [json.loads(x) for x in lines]
    assert {j["human_label"] for j in saved} == {0, 1}
    by_item = {}
    for j in saved:
        by_item.setdefault((j["task"], j["item"]), set()).add(j["human_label"])
    assert all(len(v) == 1 for v in by_item.values())
    # `--judge default` now resolves to the stage's choice; a second run reuses every judgment
    assert judge_by_name("default", "grounded", project).name == report.choices["default"]["grounded"]
    # lab, ragas (a random tiny model: every output fails to validate, counted, never NaN) and MLflow side by side
    sbs = report.side_by_side.set_index("via")
    labs = report.side_by_side[report.side_by_side["via"] == "lab"]["judge"].tolist()
    assert labs[0] == report.choices["default"]["grounded"] and len(labs) == len(set(labs))   # each judge once
    assert {"lexical", "faithfulness-cross-encoder"} <= set(labs)
    assert list(report.side_by_side["via"]) == ["lab"] * len(labs) + ["ragas", "mlflow.genai.evaluate"]
    assert sbs.loc["ragas", "parse_failures"] + sbs.loc["ragas", "n_scored"] == 3
    lab_default = report.side_by_side.iloc[0]
    assert sbs.loc["mlflow.genai.evaluate", "unfaithful_rate"] == pytest.approx(lab_default["unfaithful_rate"])
    assert "Evaluation completed" not in capsys.readouterr().out   # MLflow's banner stays out of the report
    assert {"ragas_exact_match", "ragas_string_present"} <= set(report.arms.columns)
    rag = report.arms[(report.arms["arm"] == "rag") & (report.arms["against"] == "source paragraph")].iloc[0]
    assert rag["ragas_string_present"] == 1.0 and rag["ragas_exact_match"] == 0.5
    again = run(cfg, StagePaths.for_config(cfg, project), progress=False)
    rows = again.table[(again.table["split"] == "evaluation") & again.table["kind"].isin(["prompted", "cross-encoder"])]
    assert (rows["cache_hits"] == rows["n"]).all(), rows[["judge", "n", "cache_hits"]]
    assert again.training == report.training    # the kept models were not retrained


def test_the_default_is_the_best_validation_kappa_among_judges_the_diagnostic_guard_admits():
    from types import SimpleNamespace

    from lab.studies.judge import choose_default, diagnostic_guard

    cfg = SimpleNamespace(n_resamples=500, seed=0)
    labels = [0, 1] * 100
    lexical = {"labels": labels, "verdicts": [y if k % 10 else 1 - y for k, y in enumerate(labels)]}   # 90% right
    shortcut = {"labels": labels, "verdicts": [y if k % 3 else 1 - y for k, y in enumerate(labels)]}   # 67% right
    as_good = {"labels": labels, "verdicts": list(lexical["verdicts"])}
    low, same = diagnostic_guard(shortcut, lexical, cfg), diagnostic_guard(as_good, lexical, cfg)
    assert not low["admissible"] and low["ci"][1] < 0
    assert same["admissible"] and same["kappa_minus_lexical"] == 0
    kappas = {"lexical": 0.78, "shortcut": 0.95, "reader": 0.85}
    assert choose_default(kappas, {"shortcut": low, "reader": same}) == "reader"
    assert choose_default(kappas, {"shortcut": low, "reader": low}) == "lexical"
    # no paired verdicts (items differ): not admitted, and said why
    assert not diagnostic_guard({"labels": labels[:10], "verdicts": labels[:10]}, lexical, cfg)["admissible"]
    with pytest.raises(ValueError, match="no judge"):
        choose_default({"a": 0.5}, {"a": low})
