"""End to end: the DVC pipeline on a small profile of the real demo data, in a fresh git repository.

Covers the foundation's acceptance: `dvc repro` produces metrics, plots, the executed notebook and an
MLflow run with lineage tags; a second `dvc repro` has nothing to do; `dvc exp run -S` reruns the
changed stage and `dvc exp show` lists it; `dvc plots show` renders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, require_data

# `make test-e2e` runs `pytest -n 2 --dist loadfile -m e2e`: one worker runs this module, so the project is built once
pytestmark = [pytest.mark.slow, pytest.mark.e2e]

#: The retrieval sweep's out_dir in this profile (params.yaml's is results/retrieval_sweep).
MOVED = "moved/sweep"


def _sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def _runs(root: Path) -> list:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / '.mlflow' / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("lab")
    if exp is None:
        return []
    return mlflow.search_runs([exp.experiment_id], output_format="list", order_by=["start_time ASC"])


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    data = require_data()
    root = tmp_path_factory.mktemp("proj")
    for name in ("dvc.yaml", "params.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    shutil.copytree(REPO / "experiments", root / "experiments")
    small = yaml.safe_load((REPO / "experiments" / "retrieval_sweep.yaml").read_text())
    small["dataset"].update(titles=["Warsaw", "Normans"], max_queries=40)
    small["search"]["space"] = {"chunker": ["recursive"], "size": [128, 256], "overlap": [0],
                                "retriever": ["dense", "bm25", "hybrid"]}
    small["fixed"]["embedder"] = "hashed-256"
    (root / "experiments" / "e2e.yaml").write_text(yaml.safe_dump(small))
    shutil.copytree(REPO / "lab", root / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(data, root / "data")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data_quality"].update(max_docs_per_corpus=25, max_items_per_qa_set=150)
    # your own documents: the Markdown part of the example corpus, and two questions from the tiny
    # random model (the stage's machinery end to end; what it keeps is measured by its own tests)
    params["ingest"].update(sources=["data/own_docs/markdown"])
    params["testset"].update(n=2, backend={"backend": "transformers", "model": "tiny-random-llama", "batch_size": 4},
                             max_candidates_factor=1.0)
    # the model-free lexical baseline keeps the e2e fast; MiniLM is exercised by its own tests
    params["chunking_study"].update(embedder="hashed-256", max_questions=15)
    # and CUAD's contracts, which the demo leaves to its profile (experiments/chunking_cuad.yaml)
    profile = yaml.safe_load((REPO / "experiments" / "chunking_cuad.yaml").read_text())
    params["chunking_study"]["benchmarks"] = profile["chunking_study"]["benchmarks"]
    # a moved out_dir: the sweep's outputs go elsewhere; dvc.yaml's outs follow it (${retrieval_sweep.out_dir}),
    # the derived deps too (lab dvc-deps --write below), and the reader's key is pointed at the new place
    # in process: the Ray backend has its own tests (tests/test_sweep.py, the Ctrl-C test of tests/test_interrupts.py)
    params["retrieval_sweep"].update(experiment="experiments/e2e.yaml", backend="local", out_dir=MOVED)
    params["finetune_comparison"]["winner"] = f"{MOVED}/winner.json"
    # every arm's code path on the tiny random model (its byte-level tokenizer makes long prompts)
    params["finetune_comparison"].update(model="tiny-random-llama", n_train=16, n_heldout=8)
    params["finetune_comparison"]["training"].update(max_steps=4, save_every=2, eval_every=2, max_length=4096,
                                                       rag_max_length=4096)
    # guardrails: the injection classifier (546 prompts) and the small PII set keep it to seconds
    params["guardrails_eval"].update(
        classifiers=[{"check": "injection", "data": "data/guardrails/prompt_injection/deepset_train.jsonl"}],
        evals=[e for e in params["guardrails_eval"]["evals"] if e["check"] == "injection"],
        pii_sets=["data/guardrails/pii/presidio_generated_small.json"],
        pii_ner={"data": "data/guardrails/pii/presidio_generated_small.json", "epochs": 1})
    # the bundle's policy with the models this profile trains (no jailbreak or toxicity classifier)
    params["export"]["guardrails"]["input"] = [r for r in params["export"]["guardrails"]["input"]
                                              if r["check"] != "jailbreak"]
    params["export"]["guardrails"]["output"] = [r for r in params["export"]["guardrails"]["output"]
                                               if r["check"] != "toxicity"]
    # the profile's injection classifier trains without the intent rule's generated parts: its own cut
    for r in params["export"]["guardrails"]["input"] + params["export"]["guardrails"].get("context", []):
        (r.get("options") or {}).pop("operating_point", None)
    # judges: the first records of each HaluEval file, one epoch of the cross-encoder, the tiny model prompted
    small_halu = root / "data" / "halueval_e2e"
    small_halu.mkdir()
    for name, n in (("qa_train.jsonl", 160), ("qa_grounded.dev250.jsonl", 40), ("general_data.dev1000.jsonl", 160)):
        lines = (root / "data" / "halueval" / name).read_text().split("\n")[:n]
        (small_halu / name).write_text("\n".join(lines) + "\n")
    params["judge_eval"].update(
        data={"grounded_train": "data/halueval_e2e/qa_train.jsonl",
              "grounded_eval": "data/halueval_e2e/qa_grounded.dev250.jsonl",
              "general": "data/halueval_e2e/general_data.dev1000.jsonl", "general_heldout_fraction": 0.5},
        judges=[{"name": "tiny-prompted", "backend": {"backend": "transformers", "model": "tiny-random-llama"},
                 "sample": 8}],
        ragas=None, n_resamples=200)
    params["judge_eval"]["trained"].update(epochs=1, max_length=128)
    params["redteam"].update(per_category=1, max_attacks=7, benign=4)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("LAB_MLFLOW_DIR", "MLFLOW_TRACKING_URI")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")
    # the profile's params name other files (the bundle's policy models): derive the deps again
    _sh(["lab", "dvc-deps", "--write"], root, env)
    _sh(["git", "init", "-q"], root, env)
    (root / ".gitignore").write_text(".mlflow/\n")
    _sh(["dvc", "init", "-q"], root, env)
    _sh(["dvc", "config", "core.analytics", "false"], root, env)
    _sh(["dvc", "add", "-q", "data"], root, env)
    _sh(["git", "add", "-A"], root, env)
    _sh(["git", "commit", "-qm", "init"], root, env)
    return root, env


@pytest.fixture(scope="session")
def reproduced(project) -> tuple[Path, dict[str, str], subprocess.CompletedProcess]:
    """The project after its first `dvc repro` (once per session, whichever test asks first)."""
    root, env = project
    return root, env, _sh(["dvc", "repro"], root, env)


def test_repro_produces_outputs_and_tracked_run(reproduced):
    root, env, repro = reproduced
    # progress reaches the terminal of `dvc repro` (stderr), not the reports
    for line in ("[lab run] data_quality: executing", "[lab run] finetune_comparison: done", "trials",
                 "finetune lora", "embedding ("):
        assert line in repro.stderr, (line, repro.stderr[-2000:])
    assert "without encryption" not in repro.stderr + repro.stdout
    for stage in ("data_quality", "chunking_study", "retrieval_sweep", "finetune_comparison", "guardrails_eval",
                  "judge_eval", "export", "redteam"):
        out = root / (MOVED if stage == "retrieval_sweep" else f"results/{stage}")
        nb = json.loads((out / f"{stage}.ipynb").read_text())
        noise = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("name") == "stderr"]
        assert not noise, (stage, noise[:1])
        texts = ["".join(o.get("data", {}).get("text/markdown", "")) for c in nb["cells"] for o in c.get("outputs", [])]
        first = next(t for t in texts if t)
        assert first.startswith("## Finding"), (stage, first[:200])  # results first
        html = (out / f"{stage}.html").read_text()
        assert "load_section(" not in html  # code hidden in the report
        assert (out / f"{stage}.log").is_file()
    out = root / "results" / "data_quality"
    for name in ("data_quality.ipynb", "data_quality.html", "metrics.json", "corpora.csv",
                 "plots/qa_not_found.csv", "plots/corpus_tokens.csv", "plots/doc_tokens_hist.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["corpus.chroma.documents"] == 5          # the five Chroma corpora
    assert metrics["corpus.squad_paragraphs.documents"] == 25  # max_docs_per_corpus applied
    assert metrics["qa.chroma_questions.items"] == 150

    study = json.loads((root / "results" / "chunking_study" / "metrics.json").read_text())
    for bench in ("chroma", "cuad"):
        assert study[f"{bench}.questions"] == 15 and study[f"{bench}.questions_skipped"] == 0
        for label in ("token-512-50", "recursive-250-125", "cluster-250"):
            # more retrieved chunks can only cover more of the references
            assert study[f"{bench}.{label}.k10.recall"] >= study[f"{bench}.{label}.k5.recall"] > 0
    assert not any(k.startswith("embedding_store") for k in study)  # cache state stays out of git
    assert (root / "results" / "chunking_study" / "plots" / "iou_cuad.png").is_file()

    runs = _runs(root)
    stages = {r.data.tags["lab.stage"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert set(stages) == {"ingest", "data_quality", "testset", "chunking_study", "retrieval_sweep",
                           "finetune_comparison", "guardrails_eval", "judge_eval", "export", "redteam"}
    ingested = json.loads((root / "results" / "ingest" / "metrics.json").read_text())
    assert ingested["documents"] == len(list((root / "data" / "own_docs" / "markdown").glob("*.md")))
    testset = json.loads((root / "results" / "testset" / "metrics.json").read_text())
    assert testset["kept"] <= 2 and (root / "results" / "testset" / "testset.csv").is_file()
    judged = json.loads((root / "results" / "judge_eval" / "metrics.json").read_text())
    for task, trained in (("grounded", "faithfulness-cross-encoder"), ("general", "hallucination-cross-encoder")):
        assert judged[task]["default"] in judged[task] and judged[task]["default"] != "majority"
        assert judged[task]["majority"]["kappa"] == 0
        assert judged[task]["tiny-prompted"]["n"] == 8   # the sample, stated
        assert -1 <= judged[task][trained]["kappa"] <= 1 and judged[task][trained]["n"] > 8
    _check_export(root, runs, stages)
    assert set(judged["arms"]) == {"zero_shot", "few_shot", "rag", "lora", "full", "lora_rag"}
    assert all(a["n"] == 8 for a in judged["arms"].values())
    guard = json.loads((root / "results" / "guardrails_eval" / "metrics.json").read_text())
    assert 0 < guard["injection"]["heldout"]["f1"] <= 1 and guard["injection"]["benign_trigger_words"]["negatives"] == 30
    assert "precision" not in guard["injection"]["benign_trigger_words"]  # undefined on benign-only: left out
    assert 0 < guard["pii_presidio_sm"]["presidio_generated_small"]["f2"] <= 1   # the baseline, whole set
    held = guard["pii"]["presidio_generated_small.heldout_templates"]            # the fine-tuned NER
    assert 0 <= held["f2"] <= 1 and 0 <= held["token_f2"] <= 1
    assert set(guard["pii_presidio_sm"]) == {"presidio_generated_small", "presidio_generated_small.heldout_templates"}
    assert (root / "results" / "guardrails_eval" / "models" / "pii_ner" / "model" / "config.cfg").is_file()
    assert (root / "results" / "guardrails_eval" / "models" / "injection" / "model.joblib").is_file()
    out = root / "results" / "finetune_comparison"
    arms = pd.read_csv(out / "results.csv").set_index("arm")
    timings = pd.read_csv(out / "timings.csv").set_index("arm")
    # what must reproduce and this machine's times are apart: no timing column in results.csv
    from lab.studies.finetune import TIMING_COLUMNS
    assert not set(TIMING_COLUMNS) & set(arms.columns) and set(TIMING_COLUMNS) <= set(timings.columns)
    arms = arms.join(timings.drop(columns=["relative_cost_base"]))
    assert list(arms.index) == ["zero_shot", "few_shot", "rag", "lora", "full", "lora_rag", "qlora"]
    ran = arms[arms.skipped.isna()]
    assert ran.f1.between(0, 1).all() and (ran.infer_s_per_question > 0).all()
    assert ran.loc["zero_shot", "relative_cost"] == 1.0
    assert (ran.loc[["lora", "full", "lora_rag"], "train_steps"] == 4).all()
    assert ran.loc["full", "trainable_params"] > ran.loc["lora", "trainable_params"] > 0
    assert ran.loc[["rag", "lora_rag"], "answer_in_context"].notna().all()
    cmp = pd.read_csv(root / "results" / "finetune_comparison" / "comparison.csv").set_index("arm")
    assert list(cmp.index) == list(ran.index) and pd.isna(cmp.loc["zero_shot", "diff_vs_zero_shot"])
    others = cmp.drop(index="zero_shot")
    assert ((others.diff_ci_low <= others.diff_vs_zero_shot) & (others.diff_vs_zero_shot <= others.diff_ci_high)).all()
    assert others.p_value.between(0, 1).all() and (cmp.f1 == ran.f1.round(5)).all()
    import torch

    if not torch.cuda.is_available():
        assert "QLoRA needs CUDA" in arms.loc["qlora", "skipped"]
    arm_children = [r for r in runs
                    if r.data.tags.get("mlflow.parentRunId") == stages["finetune_comparison"].info.run_id]
    assert {r.data.tags["lab.arm"] for r in arm_children} == set(arms.index)
    winner = json.loads((root / MOVED / "winner.json").read_text())
    assert winner["metric"] == "hit_rate@5" and winner["mode"] == "max"
    assert winner["ci95"][0] <= winner["value"] <= winner["ci95"][1]
    table = pd.read_csv(root / MOVED / "results.csv")
    assert len(table) == 6 and table["hit_rate@5"].max() == winner["value"]
    assert table["pareto_index_bytes"].any() and table["pareto_query_ms"].any() and table["pareto_all_costs"].any()
    # a point on a one-cost front is on the front over both costs too (never the other way round)
    assert not (table["pareto_index_bytes"] & ~table["pareto_all_costs"]).any()
    for name in ("hit_rate_vs_k.png", "quality_vs_index_size.png", "quality_vs_latency.png"):
        assert (root / MOVED / "plots" / name).is_file()
    sweep_children = [r for r in runs
                      if r.data.tags.get("mlflow.parentRunId") == stages["retrieval_sweep"].info.run_id]
    assert len(sweep_children) == 6
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == stages["chunking_study"].info.run_id]
    n_chunkers = len(yaml.safe_load((root / "params.yaml").read_text())["chunking_study"]["chunkers"])
    assert len(children) == 2 * n_chunkers  # one child per (benchmark, chunker)
    run = stages["data_quality"]
    head = _sh(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    data_md5 = yaml.safe_load((root / "data.dvc").read_text())["outs"][0]["md5"]
    assert run.data.tags["git.commit"] == head
    assert run.data.tags["git.dirty"] in ("true", "false")
    assert run.data.tags["dvc.data_hash.data"] == data_md5
    assert len(run.data.tags["params.hash"]) == 16
    assert run.data.params["max_docs_per_corpus"] == "25"
    assert run.data.metrics["corpus.chroma.documents"] == 5
    import mlflow

    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "notebook")}
    assert artifacts == {"notebook/data_quality.html", "notebook/data_quality.ipynb", "notebook/data_quality.log"}
    inputs = {d.dataset.name: d.dataset for d in mlflow.get_run(run.info.run_id).inputs.dataset_inputs}
    assert any(n.startswith("corpora[0].path:data/chroma_chunking/corpora") for n in inputs), inputs
    from lab.tracking import dvc_hash

    qa = next(d for n, d in inputs.items() if n.startswith("qa_sets[1].path:"))
    assert qa.digest == dvc_hash(root / "data" / "squad_v1.1_dev" / "dev-v1.1.qa.jsonl")


def test_second_repro_is_a_noop(reproduced):
    root, env, _ = reproduced
    before = len(_runs(root))
    res = _sh(["dvc", "repro"], root, env)
    assert "up to date" in res.stdout
    assert len(_runs(root)) == before


def test_exp_run_reruns_changed_stage_and_is_listed(reproduced):
    root, env, _ = reproduced
    _sh(["git", "add", "-A"], root, env)
    _sh(["git", "commit", "-qm", "lock"], root, env)
    before = len(_runs(root))
    res = _sh(["dvc", "exp", "run", "-n", "small", "-S", "data_quality.max_docs_per_corpus=10"], root, env)
    assert "data_quality" in res.stdout
    shown = json.loads(_sh(["dvc", "exp", "show", "--json"], root, env).stdout)
    text = json.dumps(shown)
    assert '"small"' in text and '"max_docs_per_corpus": 10' in text
    runs = _runs(root)
    assert len(runs) == before + 1 and runs[-1].data.params["max_docs_per_corpus"] == "10"
    assert runs[-1].data.tags["lab.stage"] == "data_quality"  # chunking_study did not rerun


def test_plots_show_renders(reproduced):
    root, env, _ = reproduced
    _sh(["dvc", "plots", "show", "-o", "plots_html"], root, env)
    html = (root / "plots_html" / "index.html").read_text()
    assert "qa_not_found" in html


def _check_export(root: Path, runs: list, stages: dict) -> None:
    """The bundle the export stage wrote is registered and serves a question with sources."""
    from fastapi.testclient import TestClient

    from lab.handoff.bundle import read_bundle
    from lab.serve.app import build
    from lab.serve.chat import Settings
    from lab.serve.gateway import create_app

    bundle = read_bundle(root / "results" / "export" / "bundle")
    assert bundle["arm"] in ("rag", "lora_rag") and bundle["choice"]["rule"].startswith("best mean")
    if bundle["arm"] == "lora_rag":   # the adapter travels inside the bundle, named relative to it
        assert bundle["model"]["adapter"] == "model/adapter"
        assert (root / "results" / "export" / "bundle" / "model" / "adapter" / "adapter_config.json").is_file()
    assert bundle["provenance"]["git.commit"] and bundle["provenance"]["mlflow_runs"]["finetune_comparison"]
    assert len((root / "results" / "export" / "bundle" / "eval.jsonl").read_text().splitlines()) == 8
    # the guardrail policy travels with copies of its models, named relative to the bundle
    rules = {r["check"]: r for r in bundle["guardrails"]["input"] + bundle["guardrails"]["output"]}
    assert rules["injection"]["options"]["model_dir"].startswith("guardrails/")
    assert (root / "results" / "export" / "bundle" / rules["injection"]["options"]["model_dir"] / "model.joblib").is_file()
    assert (root / "results" / "export" / "bundle" / rules["grounding"]["options"]["model_dir"]).is_dir()
    (passages,) = bundle["guardrails"]["context"]   # the passages' injection rule and its model copy too
    assert (root / "results" / "export" / "bundle" / passages["options"]["model_dir"] / "model.joblib").is_file()
    registry = json.loads((root / "results" / "export" / "registry.json").read_text())
    assert registry == {"name": "lab-rag", "registered": True}   # the version is this machine's: not in git
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == stages["export"].info.run_id]
    assert [r.data.tags["lab.kind"] for r in children] == ["export"]
    gw, proc = build(root / "results" / "export" / "bundle", upstream="transformers",
                     settings=Settings(mlflow_feedback=False), root=root)
    assert proc is None
    r = TestClient(create_app(gw)).post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Who were the Normans?"}], "max_tokens": 4})
    assert r.status_code == 200 and r.json()["sources"], r.text
    # the skew test on the pipeline's own output: the gateway retrieves, for every held-out question,
    # exactly the passages the fine-tune study's RAG arm put in its prompt; the gate records itself
    from lab.serve.app import gate_and_promote

    gate = gate_and_promote(str(root / "results" / "export" / "bundle"), name="lab-rag", upstream="transformers",
                            root=root)
    assert gate["n"] == 8 and gate["skew_questions"] == 0, gate
    assert gate["promoted"] == gate["passed"] and gate["version"] == "1"
