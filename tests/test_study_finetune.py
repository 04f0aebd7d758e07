"""lab.studies.finetune's reporting: CIs and paired differences per arm, the named cost base, and
reasons instead of NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lab.errors import LabError
from lab.studies.finetune import ArmResult, _relative_costs, compare, relative_cost_base, summary, table


def _arm(name: str, f1: list[float], s_per_q: float = 0.1, train_s: float = 0.0) -> ArmResult:
    pq = pd.DataFrame({"exact_match": [float(v == 1.0) for v in f1], "f1": f1},
                      index=pd.Index([f"q{i}" for i in range(len(f1))], name="query_id"))
    costs = {"infer_s_per_question": s_per_q, **({"train_s": train_s} if train_s else {})}
    return ArmResult(name, metrics={"f1": float(np.mean(f1))}, costs=costs, per_question=pq)


def test_compare_gives_cis_and_paired_differences():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.3, 60).round(2).tolist()
    better = [min(1.0, v + 0.4) for v in base]
    same = list(base)
    results = [_arm("zero_shot", base), _arm("rag", better), _arm("lora", same),
               ArmResult("qlora", skipped="needs CUDA")]
    cmp = compare(results, n_resamples=2000).set_index("arm")
    assert cmp.attrs["base"] == "zero_shot" and set(cmp.index) == {"zero_shot", "rag", "lora"}
    for arm in cmp.index:
        assert cmp.loc[arm, "f1_ci_low"] <= cmp.loc[arm, "f1"] <= cmp.loc[arm, "f1_ci_high"]
    assert cmp.loc["rag", "significant"] and cmp.loc["rag", "diff_vs_zero_shot"] > 0.3
    assert not cmp.loc["lora", "significant"] and cmp.loc["lora", "p_value"] == 1.0
    assert compare(results, n_resamples=2000).equals(compare(results, n_resamples=2000))  # deterministic
    text = summary(results, compare(results, n_resamples=2000))
    assert "**rag**" in text and "rag +0." in text and "indistinguishable" in text and "qlora (needs CUDA)" in text


def test_compare_without_zero_shot_names_its_base_and_fails_on_an_absent_one():
    results = [_arm("rag", [0.1, 0.2, 0.3]), _arm("lora", [0.1, 0.2, 0.4])]
    assert compare(results, n_resamples=200).attrs["base"] == "rag"
    with pytest.raises(LabError, match="base arm 'zero_shot' did not run; arms that ran: rag, lora"):
        compare(results, base="zero_shot", n_resamples=200)


def test_relative_cost_base_is_named_when_zero_shot_did_not_run():
    results = [_arm("rag", [0.1, 0.2], s_per_q=0.4), _arm("lora", [0.1, 0.2], s_per_q=0.2, train_s=100)]
    assert _relative_costs(results) == "lora" and relative_cost_base(results) == "lora"
    df = table(results).set_index("arm")
    assert (df["relative_cost_base"] == "lora").all()
    assert df.loc["lora", "relative_cost"] == pytest.approx((100 + 200) / 200)
    with_zero = [_arm("zero_shot", [0.1, 0.2], s_per_q=0.3), *results]
    assert _relative_costs(with_zero) == "zero_shot"


def test_notes_instead_of_nan_in_the_table():
    r = _arm("lora", [0.1, 0.2])
    r.notes.append("final_train_loss: none recorded (0 steps)")
    df = table([r])
    assert "final_train_loss" not in df.columns and df.loc[0, "notes"].startswith("final_train_loss: none")


def test_a_finished_arm_is_reused_and_a_changed_setting_recomputes(tmp_path, monkeypatch, capsys):
    """Answers of a finished arm are kept beside the arms' models: the rerun returns the same scores
    without generating (or training), and any change to what decides them computes anew."""
    from pathlib import Path

    import lab.studies.finetune as study
    from lab.config import FinetuneComparisonConfig
    from lab.data.domain import build_domain_task

    root = Path(__file__).resolve().parents[1]
    cfg = FinetuneComparisonConfig(model="tiny-random-llama", titles=["Normans"], n_train=8, n_heldout=4,
                                   arms=["zero_shot", "lora"], out_dir=str(tmp_path / "out"),
                                   training={"max_steps": 2, "save_every": 1, "eval_every": 1, "batch_size": 2},
                                   generation={"batch_size": 4, "max_new_tokens": 4, "threads": 1})
    task = build_domain_task(root / cfg.task.paragraphs, root / cfg.task.qa, cfg.task.titles, n_train=8, n_heldout=4)
    first = {a: study.run_arm(a, task, cfg, root, base=cfg.model) for a in cfg.arms}
    assert len(list((tmp_path / "out" / "arms").glob("answers-*.json"))) == 2

    def no_work(*a, **k):
        raise AssertionError("a kept arm generated or trained again")

    monkeypatch.setattr(study, "_backend", no_work)
    monkeypatch.setattr(study, "_train_in_child", no_work)
    capsys.readouterr()
    again = {a: study.run_arm(a, task, cfg, root, base=cfg.model) for a in cfg.arms}
    assert "answers of an earlier run" in capsys.readouterr().err
    for a in cfg.arms:
        assert again[a].metrics == first[a].metrics and again[a].predictions == first[a].predictions
        assert again[a].costs == first[a].costs and again[a].final_dir == first[a].final_dir
        pd.testing.assert_frame_equal(again[a].per_question, first[a].per_question)
    changed = cfg.model_copy(update={"generation": cfg.generation.model_copy(update={"max_new_tokens": 5})})
    with pytest.raises(AssertionError, match="generated or trained again"):
        study.run_arm("zero_shot", task, changed, root, base=cfg.model)
