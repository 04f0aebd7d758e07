"""The export stage on tiny inputs: it reads the fine-tune study's arms manifest (not the study's
section), and the bundle carries k, the generation settings and the prompt version once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.config import ExportConfig
from lab.errors import DataError
from lab.handoff.arms import ARMS_FILE, manifest_from_study, read_arms, write_arms
from lab.stage import StagePaths

PARAGRAPHS = {
    "p1": {"title": "Warsaw", "text": "Warsaw is the capital of Poland and stands on the Vistula river."},
    "p2": {"title": "Normans", "text": "The Normans gave their name to Normandy, a region in France."},
    "p3": {"title": "Nikola_Tesla", "text": "Nikola Tesla was born in 1856 in Smiljan."},
}
GEN = {"max_new_tokens": 24, "temperature": 0.0, "seed": 0, "stop": ["\n"]}


class Q:
    def __init__(self, id: str, question: str, answer: str, title: str) -> None:
        self.id, self.question, self.answers, self.title = id, question, (answer,), title


HELDOUT = [Q("q1", "Where is Warsaw?", "Vistula", "Warsaw"), Q("q2", "Who named Normandy?", "Normans", "Normans"),
           Q("q3", "When was Tesla born?", "1856", "Nikola_Tesla")]


def _study_outputs(root: Path, *, k: int = 2) -> Path:
    """What the fine-tune study leaves: the manifest, predictions.jsonl and results.csv."""
    out = root / "results" / "ft"
    base = root / "models" / "base"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    adapter = out / "arms" / "lora_rag-abc" / "final"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 4}))
    arm = {"model": str(base), "prompt_version": "domain-qa/2", "generation": GEN}
    arms = [{"name": "zero_shot", **arm}, {"name": "rag", "rag": True, **arm},
            {"name": "lora_rag", "rag": True, "method": "lora", "trained_dir": str(adapter), **arm},
            {"name": "qlora", "method": "qlora", "skipped": "QLoRA needs CUDA", **arm}]
    manifest = manifest_from_study(arms, retrieval={"config": {"retriever": "bm25", "chunker": "none"}, "k": k},
                                   paragraphs=PARAGRAPHS, heldout=HELDOUT)
    write_arms(out / ARMS_FILE, manifest, root)
    lines = []
    for arm_name, right in (("zero_shot", 0), ("rag", 2), ("lora_rag", 3)):
        for i, q in enumerate(HELDOUT):
            lines.append({"arm": arm_name, "id": q.id, "question": q.question, "answers": list(q.answers),
                          "prediction": q.answers[0] if i < right else "no idea", "contexts": ["c"] * k})
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (out / "results.csv").write_text("arm,tokens_in_mean,tokens_out_total\nzero_shot,50,9\nrag,120,9\nlora_rag,120,6\n")
    return out


def test_the_arms_manifest_round_trips_with_paths_relative_to_the_project(tmp_path: Path):
    out = _study_outputs(tmp_path)
    raw = json.loads((out / ARMS_FILE).read_text())
    assert (raw["format"], raw["version"]) == ("lab.finetune-arms", 1)
    assert raw["arms"][2]["trained_dir"] == "results/ft/arms/lora_rag-abc/final"   # moves with the project
    assert [p["id"] for p in raw["corpus"]] == list(PARAGRAPHS)                     # the study's order, kept
    m = read_arms(out / ARMS_FILE, tmp_path)
    assert m.names() == ["zero_shot", "rag", "lora_rag", "qlora"] and m.retrieval["k"] == 2
    assert m.arm("lora_rag").trained_dir == str(tmp_path / "results/ft/arms/lora_rag-abc/final")
    assert m.paragraphs() == PARAGRAPHS and m.heldout[2] == {"id": "q3", "question": "When was Tesla born?",
                                                             "answers": ["1856"], "title": "Nikola_Tesla"}
    with pytest.raises(DataError, match="'full' is not in the arms manifest"):
        m.arm("full")


def test_an_old_or_foreign_manifest_is_refused_naming_the_file_and_the_rerun(tmp_path: Path):
    out = _study_outputs(tmp_path)
    path = out / ARMS_FILE
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "version": 0}))
    with pytest.raises(DataError, match=r"arms.json: an older lab.finetune-arms file \(version 0; this code reads "
                                        r"version 1\); regenerate it with `dvc repro finetune_comparison`"):
        read_arms(path, tmp_path)
    path.write_text(json.dumps({"arms": []}))
    with pytest.raises(DataError, match="not a lab.finetune-arms file"):
        read_arms(path, tmp_path)
    with pytest.raises(DataError, match="nowhere.json: not found; `dvc repro finetune_comparison` writes it"):
        read_arms(tmp_path / "nowhere.json", tmp_path)


def test_export_serves_the_manifests_arm_with_its_settings_once(tmp_path: Path):
    from lab.export.stage import run
    from lab.handoff.bundle import read_bundle

    _study_outputs(tmp_path, k=3)
    cfg = ExportConfig(manifest="results/ft/arms.json", predictions="results/ft/predictions.jsonl",
                       results="results/ft/results.csv", arms=["rag", "lora_rag"], register_model=False,
                       n_resamples=200, out_dir="results/export")
    paths = StagePaths.for_config(cfg, tmp_path)
    result = run(cfg, paths)
    assert result.choice.arm == "lora_rag" and [s.arm for s in result.choice.scores][-1] == "qlora"
    result.write(paths.out_dir)
    bundle = read_bundle(paths.out_dir / "bundle")
    # k, the generation settings and the prompt version: once each, from the manifest
    assert bundle["retrieval"]["k"] == 3 and "k" not in bundle["prompt"]
    assert bundle["generation"] == GEN and bundle["prompt"] == {"version": "domain-qa/2", "rag": True}
    assert bundle["model"]["adapter"] == "model/adapter" and bundle["model"]["lora_rank"] == 4
    assert (paths.out_dir / "bundle" / "model" / "adapter" / "adapter_config.json").is_file()
    assert bundle["provenance"]["manifest"] == "results/ft/arms.json"
    evals = [json.loads(x) for x in (paths.out_dir / "bundle" / "eval.jsonl").read_text().splitlines()]
    assert [e["id"] for e in evals] == ["q1", "q2", "q3"] and evals[0]["offline_prediction"] == "Vistula"
    assert evals[2]["title"] == "Nikola_Tesla" and evals[2]["offline_contexts"] == ["c"] * 3
    metrics = json.loads((paths.out_dir / "metrics.json").read_text())
    assert metrics["arm"] == "lora_rag" and metrics["passages"] == len(PARAGRAPHS) == bundle["retrieval"]["params"]["docs"]
    # the git-tracked file holds nothing machine-dependent (the version counts this machine's registrations)
    assert json.loads((paths.out_dir / "registry.json").read_text()) == {"name": "lab-rag", "registered": False}
    # every output dvc.yaml names for the stage, and the report's sections
    assert (paths.out_dir / "plots" / "arms.png").is_file()
    sections = dict(result.report_sections(paths.out_dir))
    assert sections["The bundle"].loc["arm", "value"] == "lora_rag" and sections["The bundle"].loc["k", "value"] == 3


def test_export_names_a_missing_trained_folder(tmp_path: Path):
    import shutil

    from lab.export.stage import run
    from lab.export.winner import ExportError

    out = _study_outputs(tmp_path)
    shutil.rmtree(out / "arms")
    cfg = ExportConfig(manifest="results/ft/arms.json", predictions="results/ft/predictions.jsonl",
                       results="results/ft/results.csv", arms=["lora_rag"], register_model=False, n_resamples=200)
    with pytest.raises(ExportError, match="arm 'lora_rag': its trained model folder .* is missing; rerun"):
        run(cfg, StagePaths.for_config(cfg, tmp_path))


def test_the_export_stage_is_registered_with_the_protocol():
    from lab.stages import STAGES, load_all

    assert "export" in load_all() and STAGES.get("export").__module__ == "lab.export.stage"


def test_the_finetune_study_writes_the_manifest_export_reads(tmp_path: Path):
    """What the study records per arm (model folder, prompt version, generation settings) and shares
    (retrieval config and k, corpus in order, held-out questions) is what export reads back."""
    from types import SimpleNamespace

    from lab.config import FinetuneComparisonConfig
    from lab.generate.domain_qa_prompt import PROMPT_VERSION
    from lab.handoff.arms import write_arms
    from lab.studies.finetune import ArmResult, arms_manifest

    cfg = FinetuneComparisonConfig(model="tiny-random-llama", titles=["Normans"], n_train=8, n_heldout=3,
                                   arms=["zero_shot", "rag", "lora_rag"], rag_k=3, out_dir="out",
                                   generation={"max_new_tokens": 7})
    trained = tmp_path / "out" / "arms" / "lora_rag-x" / "final"
    results = [ArmResult(a, params={"prompt_version": PROMPT_VERSION}, final_dir=str(trained) if a == "lora_rag" else None)
               for a in cfg.arms]
    task = SimpleNamespace(paragraphs=PARAGRAPHS, heldout=HELDOUT, corpus_kind="squad")
    winner = {"retriever": "bm25", "chunker": "fixed", "size": 64}
    # FinetuneResult.write writes it beside the predictions (the e2e pipeline test runs that path)
    write_arms(tmp_path / "out" / ARMS_FILE, arms_manifest(cfg, task, SimpleNamespace(config=winner), results),
               tmp_path)
    m = read_arms(tmp_path / "out" / ARMS_FILE, tmp_path)
    assert m.names() == cfg.arms and m.retrieval == {"config": winner, "k": 3}
    assert [(a.rag, a.method) for a in m.arms] == [(False, None), (True, None), (True, "lora")]
    lora = m.arm("lora_rag")
    assert lora.trained_dir == str(trained) and lora.model == "tiny-random-llama" and lora.prompt_version == PROMPT_VERSION
    assert lora.generation["max_new_tokens"] == 7 and lora.generation["temperature"] == 0.0
    assert list(m.paragraphs()) == list(PARAGRAPHS) and [q["id"] for q in m.heldout] == ["q1", "q2", "q3"]
