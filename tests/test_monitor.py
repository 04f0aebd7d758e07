"""The health report (lab monitor): traffic run through the gateway in process with real MLflow
tracing (a scripted upstream: known fallbacks, errors, output-rule firings; known thumbs and judge
verdicts), read back over a period; the figures match the traffic; questions from the bundle's own
corpus pass the drift checks (exit 0), questions from another corpus cross them (exit 1); bad input
exits 2 naming the option, file or key."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import require_data
from typer.testing import CliRunner

from lab.cli import app
from lab.errors import ConfigError
from lab.generate.domain_qa_prompt import PROMPT_VERSION
from lab.handoff.bundle import ServedModel, write_bundle
from lab.monitor.config import load_config, period
from lab.monitor.run import run_monitor
from lab.monitor.stats import ks_test, mmd_test, share_test
from lab.serve.upstream import Delta, MessageUpstream, UpstreamError

ON_TOPICS = ("1973_oil_crisis", "Black_Death", "Geology")
OFF_TOPICS = ("Pharmacy", "Oxygen", "Prime_number")     # another corpus: no passage of the bundle is about them
KEY = "AKIAIOSFODNN7EXAMPLE"
FAIL_CALLS = {2, 10, 20, 30}          # upstream calls that fail: the fallback answers (4)
SECRET_CALLS = {5, 6, 7, 8, 9}        # answers with a key in them: the output rule redacts (5)
STREAMED = {0, 1, 2, 3, 4}            # requests sent with stream: true (call 2 falls back mid-stream set-up)
THUMBS = ["up", "up", "up", "up", "down", "down"]
JUDGED = [True, False, False, True, False, False, True, False, False, None]   # flagged per trace; None: judge failed


class Scripted:
    """An upstream that fails on the calls in FAIL_CALLS and answers with a key on SECRET_CALLS."""

    name = "scripted"

    def __init__(self, fail: set[int] = FAIL_CALLS, always_fail: bool = False) -> None:
        self.calls, self.fail, self.always_fail = 0, fail, always_fail

    async def stream(self, messages, *, max_tokens, temperature, stop=()):
        i = self.calls
        self.calls += 1
        if self.always_fail or i in self.fail:
            raise UpstreamError("connection", "refused")
        text = f"the key is {KEY} ok" if i in SECRET_CALLS else f"answer number {i}"
        for piece in text.split(" "):
            yield Delta(piece + " ")
        yield Delta("", prompt_tokens=20, completion_tokens=len(text.split()))

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def _squad() -> tuple[dict[str, dict], list[dict], list[dict]]:
    """The corpus (paragraphs of ON_TOPICS), its questions, and the questions of OFF_TOPICS."""
    root = require_data() / "squad_v1.1_dev"
    corpus = {}
    with open(root / "dev-v1.1.paragraphs.jsonl", encoding="utf-8") as fh:
        for line in fh:
            p = json.loads(line)
            if p["title"] in ON_TOPICS:
                corpus[p["paragraph_id"]] = {"title": p["title"].replace("_", " "), "text": p["text"]}
    on, off = [], []
    with open(root / "dev-v1.1.qa.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            (on if q["title"] in ON_TOPICS else off if q["title"] in OFF_TOPICS else []).append(q)
    return corpus, on, off


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """Two periods of traced traffic in one MLflow store: ``normal`` (45 requests: 40 questions of the
    bundle's corpus, 4 of them answered by the fallback, 5 answers redacted, 2 more failing with no
    fallback, 3 blocked at the input; 6 thumbs, 10 judge verdicts) then ``shifted`` (40 questions of
    another corpus)."""
    import mlflow
    from fastapi.testclient import TestClient
    from mlflow.entities import AssessmentError, AssessmentSource

    from lab.guardrails.policy import Policy
    from lab.serve.chat import RAG, ChatService, Settings
    from lab.serve.gateway import create_app

    tmp = tmp_path_factory.mktemp("monitor")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.setenv("LAB_MLFLOW_DIR", str(tmp / "mlflow-store"))
    corpus, on, off = _squad()
    rng = random.Random(7)
    rng.shuffle(on)
    rng.shuffle(off)
    evaluated, normal, shifted = on[:30], on[30:72], off[:40]
    policy_cfg = {"input": [{"check": "limits", "action": "block", "options": {"max_chars": 400}}],
                  "output": [{"check": "secrets", "action": "redact"}]}
    bundle = write_bundle(tmp / "bundle", retrieval_config={"retriever": "dense", "chunker": "none",
                                                            "embedder": "hashed-256"},
                          corpus=corpus, model=ServedModel("m", spec="m"), choice=_choice(), k=3,
                          prompt_version=PROMPT_VERSION, generation={"max_new_tokens": 16},
                          eval_items=[{"id": q["id"], "question": q["question"], "answers": q["answers"],
                                       "title": q["title"]} for q in evaluated],
                          guardrails=policy_cfg, provenance={"bundle_id": "b-monitor"}, store_dir=tmp / "store")
    rag = RAG(bundle, store_dir=tmp / "store")
    settings = Settings(feedback_path=tmp / "feedback.jsonl", mlflow_feedback=False, trace=True, retries=0,
                        backoff_s=0.0)
    policy = Policy.from_config(policy_cfg)
    gw = ChatService(rag, Scripted(), fallback=MessageUpstream("sorry"), settings=settings, policy=policy)
    broken = ChatService(rag, Scripted(always_fail=True), settings=settings, policy=policy)
    client, failing = TestClient(create_app(gw)), TestClient(create_app(broken))

    def ask(c, question: str, stream: bool = False) -> dict:
        body = {"messages": [{"role": "user", "content": question}], "stream": stream}
        if not stream:
            r = c.post("/v1/chat/completions", json=body)
            return r.json() if r.status_code == 200 else {"status": r.status_code}
        with c.stream("POST", "/v1/chat/completions", json=body) as r:
            events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
        return json.loads(events[-2])

    def stamp() -> datetime:
        time.sleep(0.02)
        t = datetime.now(UTC)
        time.sleep(0.02)
        return t

    t0 = stamp()
    answers = [ask(client, q["question"], stream=i in STREAMED) for i, q in enumerate(normal[:40])]
    errors = [ask(failing, q["question"]) for q in normal[40:42]]
    blocked = [ask(client, "why " * 150) for _ in range(3)]
    mlflow.flush_trace_async_logging()   # the traces are in the store before feedback lands on them
    for a, rating in zip(answers[10:], THUMBS, strict=False):
        assert client.post("/v1/feedback", json={"response_id": a["id"], "rating": rating}).status_code == 200
    for a, flagged in zip(answers[12:], JUDGED, strict=False):
        mlflow.log_feedback(trace_id=a["lab"]["trace_id"], name="online/grounding",
                            value=None if flagged is None else not flagged,
                            error=AssessmentError(error_code="JUDGE_ERROR", error_message="boom") if flagged is None
                            else None, source=AssessmentSource(source_type="LLM_JUDGE", source_id="grounding@1"))
    t1 = stamp()
    for q in shifted:
        ask(client, q["question"])
    mlflow.flush_trace_async_logging()
    t2 = stamp()
    assert [e["status"] for e in errors] == [502, 502] and all(b["lab"]["blocked"] for b in blocked)
    yield {"bundle": bundle, "store": tmp / "mlflow-store", "feedback": tmp / "feedback.jsonl", "tmp": tmp,
           "store_dir": tmp / "store", "normal": (t0, t1), "shifted": (t1, t2), "answers": answers}
    mp.undo()


def _choice():
    from lab.export.winner import ArmScore, choose_arm

    return choose_arm([ArmScore("rag", 0.5, 0.4, 0.6, 10, 1.0)])


@pytest.fixture
def store(traffic, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LAB_MLFLOW_DIR", str(traffic["store"]))
    return traffic


def _monitor(traffic, window: str, out: Path, **kw):
    start, end = traffic[window]
    return run_monitor(out, start.isoformat(), end.isoformat(), bundle_dir=traffic["bundle"],
                       feedback=traffic["feedback"], store_dir=traffic["store_dir"], **kw)


# --------------------------------------------------------------------------- the report's figures
def test_the_report_s_figures_match_the_traffic_and_a_normal_period_passes(store, tmp_path):
    res = _monitor(store, "normal", tmp_path / "r")
    rep = res.report
    t = rep["traffic"]
    assert t["requests"] == 45 and t["streamed"] == 5
    assert (t["errors"]["k"], t["errors"]["n"]) == (2, 45)
    assert all("connection" in k for k in t["error_types"]) and sum(t["error_types"].values()) == 2
    assert (t["blocked"]["k"], t["blocked"]["n"]) == (3, 45)
    assert (t["fallbacks"]["k"], t["fallbacks"]["n"]) == (4, 42)   # of the 42 that reached the upstream
    assert t["fallback_reasons"] == {"connection": 4} and t["generated_by"] == {"scripted": 36, "message": 4}
    lat = t["latency_ms"]["request"]
    assert lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] and set(t["latency_ms"]) >= {"retrieval", "generation"}
    rules = {(g["stage"], g["check"]): g for g in rep["guardrails"]}
    assert (rules["input", "limits"]["fired"]["k"], rules["input", "limits"]["fired"]["n"]) == (3, 45)
    assert rules["input", "limits"]["actions"]["block"] == 3
    assert (rules["output", "secrets"]["fired"]["k"], rules["output", "secrets"]["fired"]["n"]) == (5, 40)
    [judge] = rep["judges"]
    assert judge["judge"] == "online/grounding" and (judge["judged"], judge["errors"]) == (9, 1)
    assert (judge["flagged"]["k"], judge["flagged"]["n"]) == (3, 9)
    lo, hi = judge["flagged"]["ci"]
    assert lo < 3 / 9 < hi and 0 < lo and hi < 1
    th = rep["thumbs"]
    assert (th["rated"]["k"], th["up"]["k"], th["up"]["n"], th["down"]["k"]) == (6, 4, 6, 2)
    # drift: questions drawn from the same pool as the offline ones pass every check
    drift = {c["name"]: c for c in rep["drift"]}
    assert drift["retrieval_scores"]["n_online"] == 42 and drift["retrieval_scores"]["n_offline"] == 30
    assert {c["status"] for c in drift.values()} == {"ok"}, drift
    assert rep["status"] == "ok" and rep["alerts"] == [] and res.exit_code == 0
    assert rep["bundle"]["bundle_id"] == "b-monitor" and rep["bundle"]["traces_of_other_bundles"] == 0
    # written: the JSON is the report, the page names the verdict and the checks
    assert json.loads(res.json_path.read_text()) == json.loads(json.dumps(rep, default=str))
    page = res.html_path.read_text()
    assert "<b>OK</b>" in page and "retrieval_scores" in page and "online/grounding" in page and "<script" not in page


def test_questions_from_another_corpus_cross_the_drift_thresholds(store, tmp_path):
    rep = _monitor(store, "shifted", tmp_path / "r").report
    assert rep["traffic"]["requests"] == 40 and rep["traffic"]["errors"]["k"] == 0
    drift = {c["name"]: c for c in rep["drift"]}
    for name in ("retrieval_scores", "no_relevant_source", "question_embeddings"):
        assert drift[name]["status"] == "alert", drift[name]
        assert drift[name]["p_value"] < 0.01
    assert drift["retrieval_scores"]["online_median"] < drift["retrieval_scores"]["offline_median"]
    assert drift["no_relevant_source"]["online"]["rate"] > drift["no_relevant_source"]["offline"]["rate"] + 0.1
    assert rep["status"] == "alert" and len(rep["alerts"]) == 3
    assert rep["alerts"][0].startswith("retrieval_scores: statistic=") and "threshold: p < 0.01" in rep["alerts"][0]


def test_the_cli_exits_0_on_a_normal_period_and_1_on_a_shifted_one(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # project root here: no params.yaml needed with --bundle
    runner = CliRunner()
    for window, code, word in (("normal", 0, "OK"), ("shifted", 1, "ALERT")):
        start, end = store[window]
        out = tmp_path / window
        r = runner.invoke(app, ["monitor", str(out), "--since", start.isoformat(), "--until", end.isoformat(),
                                "--bundle", str(store["bundle"])])
        assert r.exit_code == code, r.output
        assert f"monitor: {word}" in r.output and (out / "report.json").is_file() and (out / "report.html").is_file()
    assert "alert: question_embeddings" in r.output


def test_a_config_with_tighter_limits_alerts_on_the_normal_period(store, tmp_path):
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("limits:\n  max_fallback_rate: 0.01\n  max_judge_flag_rate: 0.05\n  min_volume: 100\n"
                   "drift:\n  relevance_threshold: 0.0\n")
    rep = _monitor(store, "normal", tmp_path / "r", config=cfg).report
    alerted = {c["name"] for c in rep["limits"] if c["status"] == "alert"}
    assert alerted == {"fallback_rate", "judge_flags:online/grounding", "volume"}
    limits = {c["name"]: c for c in rep["limits"]}
    assert limits["error_rate"]["status"] == "ok" and limits["thumbs_down_rate"]["status"] == "skipped"
    share = {c["name"]: c for c in rep["drift"]}["no_relevant_source"]
    assert share["relevance_threshold"] == 0.0 and share["threshold_from"].startswith("config")


def test_another_bundle_s_traces_are_left_out(store, tmp_path):
    import shutil

    other = shutil.copytree(store["bundle"], tmp_path / "other")
    meta = json.loads((other / "bundle.json").read_text())
    meta["provenance"]["bundle_id"] = "b-other"
    (other / "bundle.json").write_text(json.dumps(meta))
    start, end = store["normal"]
    rep = run_monitor(tmp_path / "r", start.isoformat(), end.isoformat(), bundle_dir=other,
                      store_dir=store["store_dir"]).report
    assert rep["traffic"]["requests"] == 0 and rep["bundle"]["traces_of_other_bundles"] == 45
    assert {c["status"] for c in rep["drift"]} == {"skipped"}
    assert "drift.min_requests=20" in rep["drift"][0]["reason"]


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args,words", [
    (["--since", "yesterday"], ["--since 'yesterday'", "24h", "ISO 8601"]),
    (["--since", "2026-12-07", "--until", "2026-12-01T00:00Z"], ["is not before"]),
])
def test_a_bad_period_is_a_clear_error_exit_2(store, tmp_path, args, words):
    r = CliRunner().invoke(app, ["monitor", str(tmp_path / "r"), *args, "--bundle", str(store["bundle"])])
    assert r.exit_code == 2, r.output
    for w in words:
        assert w in r.output
    assert not (tmp_path / "r").exists()


def test_a_bad_config_or_bundle_is_named_exit_2(store, tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text("drift:\n  alpah: 0.05\n")
    r = CliRunner().invoke(app, ["monitor", str(tmp_path / "r"), "--since", "1h", "--config", str(cfg),
                                 "--bundle", str(store["bundle"])])
    assert r.exit_code == 2 and "m.yaml" in r.output and "drift.alpah: unknown key" in r.output, r.output
    r = CliRunner().invoke(app, ["monitor", str(tmp_path / "r"), "--since", "1h", "--bundle", str(tmp_path)])
    assert r.exit_code == 2 and "not a serving bundle" in r.output, r.output
    with pytest.raises(ConfigError, match="drift.alpha"):
        cfg.write_text("drift:\n  alpha: 2\n")
        load_config(cfg)


def test_the_period_parses_durations_and_iso_times():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert period("24h", now=now) == (now - timedelta(hours=24), now)
    assert period("90m", "2026-12-07T06:00", now=now) == (datetime(2026, 12, 7, 4, 30, tzinfo=UTC),
                                                          datetime(2026, 12, 7, 6, 0, tzinfo=UTC))
    assert period("2026-12-06", "2026-12-07T01:00+01:00", now=now)[1] == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    with pytest.raises(ConfigError, match="--until"):
        period("1h", "tomorrow", now=now)


# --------------------------------------------------------------------------- the tests themselves
def test_the_drift_tests_keep_their_level_under_no_shift_and_see_a_shift():
    rng = np.random.default_rng(0)
    null_p = [mmd_test(rng.normal(size=(30, 4)), rng.normal(size=(60, 4)), permutations=199, seed=i)["p_value"]
              for i in range(60)]
    assert np.mean(np.array(null_p) < 0.05) <= 0.12   # about 5% rejections when nothing shifted
    shift = mmd_test(rng.normal(size=(30, 4)), rng.normal(0.8, size=(60, 4)), permutations=199)
    assert shift["p_value"] == pytest.approx(1 / 200) and shift["statistic"] > 0.05
    assert ks_test(rng.normal(size=200), rng.normal(1.0, size=30))["p_value"] < 0.01
    assert ks_test(rng.normal(size=200), rng.normal(size=30))["p_value"] > 0.05
    assert share_test(5, 40, 2, 30)["p_value"] > 0.2 and share_test(25, 40, 2, 30)["p_value"] < 1e-4
