"""benchmarks/serve_load.py without vLLM: the fake OpenAI server stands in for vLLM (directly and as
the gateways' upstream), two real gateways (uvicorn on loopback) serve the bundle with its policy
off and on, and the report has one object per target, ``by_concurrency``, the per-stage breakdown
read from the responses' ``lab.timings``, each check's cost from the gateway's /metrics, and the
ratios against the goals. Also: the stages a request reports add up to its total."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Self

import browser
import pytest
from conftest import load_script
from fake_openai_server import FakeOpenAIServer
from test_serve import BM25, CORPUS, _choice, write_bundle

from lab.guardrails.policy import Policy
from lab.handoff.bundle import ServedModel, bundle_policy
from lab.serve.chat import RAG, ChatService, Settings
from lab.serve.gateway import create_app
from lab.serve.stages import STAGES, StageTimes
from lab.serve.upstream import OpenAIUpstream

bench = load_script("benchmarks/serve_load.py")

# rules that load nothing at start-up (the gateways start in seconds on loaded cores); the output
# rule judges pieces, so a stream goes through the guard
POLICY = {"input": [{"check": "limits", "action": "block", "options": {"max_chars": 500}}],
          "output": [{"check": "limits", "action": "block"}]}
QUESTIONS = [{"id": f"q{i}", "question": q, "answers": [a], "title": t} for i, (q, a, t) in enumerate([
    ("What is the capital of Poland?", "Warsaw", "Warsaw"), ("Where is Normandy?", "France", "Normans"),
    ("When was Tesla born?", "1856", "Tesla"), ("Where was Super Bowl 50 played?", "Levi's Stadium", "Super Bowl")])]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle", retrieval_config=BM25, corpus=CORPUS, model=ServedModel("m", spec="m"),
                        choice=_choice(), k=2, guardrails=POLICY, eval_items=QUESTIONS)


class _Gateway:
    """The bundle's gateway on a loopback port (uvicorn in a thread), the fake as its upstream."""

    def __init__(self, bundle: Path, upstream_url: str, policy: bool) -> None:
        import uvicorn

        pol = Policy.from_config(bundle_policy(bundle)) if policy else None
        gw = ChatService(RAG(bundle), OpenAIUpstream(upstream_url, "lab"), policy=pol,
                         settings=Settings(mlflow_feedback=False))
        self.port = browser.free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.server = uvicorn.Server(uvicorn.Config(create_app(gw), host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        browser.wait_http(f"http://127.0.0.1:{self.port}/healthz", timeout=120)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_the_report_has_every_target_each_concurrency_and_the_gateway_s_breakdown(bundle: Path, tmp_path: Path):
    out = tmp_path / "serve_load.json"
    with FakeOpenAIServer("lab", delay_s=0.002) as fake, _Gateway(bundle, fake.base_url, False) as off, \
            _Gateway(bundle, fake.base_url, True) as on:
        bench.main(["--bundle", str(bundle), "--requests", "6", "--concurrency", "3", "2", "--max-tokens", "12",
                    "--targets", "vllm,gateway_guardrails_off,gateway_guardrails_on",
                    "--vllm-url", f"{fake.base_url}#lab", "--gateway-off-url", off.url, "--gateway-on-url", on.url,
                    "--out", str(out)])
    rep = json.loads(out.read_text())
    today = {"requests", "concurrency", "errors", "tokens_per_s", "ttft_p50_s", "ttft_p95_s", "latency_p50_s",
             "latency_p95_s", "breakdown"}
    for target in bench.TARGETS:
        assert today <= set(rep[target]), target
    assert rep["transformers"]["skipped"] == "not in --targets"
    assert set(rep["by_concurrency"]) == {"2", "3"} and rep["concurrency"] == [2, 3]
    for c in ("2", "3"):
        for target in ("vllm", "gateway_guardrails_off", "gateway_guardrails_on"):
            r = rep["by_concurrency"][c][target]
            assert r["concurrency"] == int(c) and r["requests"] == 6 and r["errors"] == 0 and r["tokens_per_s"] > 0
    assert rep["gateway_guardrails_on"] == rep["by_concurrency"]["3"]["gateway_guardrails_on"]   # the highest
    # the fake server answered every vLLM-direct request with the bundle's stop strings, as the gateway sends them
    assert all(body.get("stop") == ["\n"] for path, body in fake.requests if path == "/v1/chat/completions")

    on, off = rep["gateway_guardrails_on"]["breakdown"], rep["gateway_guardrails_off"]["breakdown"]
    stages = on["stages_s"]
    assert stages["requests"] == 6
    for stage in ("queue", "thread_wait", "input_checks", "retrieval", "prompt", "upstream_ttft", "decode",
                  "output_checks", "other", "total"):
        assert set(stages[stage]) == {"p50", "p95", "mean"} and stages[stage]["p50"] >= 0, stage
    assert stages["total"]["mean"] >= stages["upstream_ttft"]["mean"] > 0
    assert "input_checks" not in off["stages_s"] and "output_checks" not in off["stages_s"]   # no policy, no checks
    assert off["checks"] == []
    checks = {(r["check"], r["stage"]): r for r in on["checks"]}
    assert set(checks) == {("limits", "input"), ("limits", "output")}
    assert checks[("limits", "input")]["calls"] == 6 and checks[("limits", "input")]["calls_per_request"] == 1
    assert all(r["mean_ms"] >= 0 for r in on["checks"]) and rep["cost_per_check"] == on["checks"]
    assert on["upstream_vllm_mean_s"]["ttft"] == pytest.approx(0.01)   # the fake's own histogram, diffed
    assert rep["vllm"]["breakdown"]["vllm_mean_s"]["ttft"] == pytest.approx(0.01)
    assert rep["gateway_guardrails_on"]["policy"] == {"input": ["limits"], "context": [], "output": ["limits"]}

    for c in ("2", "3"):
        r = rep["ratios"][c]
        by = rep["by_concurrency"][c]
        assert r["gateway_off_over_vllm_tokens_per_s"] == pytest.approx(
            by["gateway_guardrails_off"]["tokens_per_s"] / by["vllm"]["tokens_per_s"])
        assert r["gateway_on_over_vllm_ttft_p50"] == pytest.approx(by["gateway_guardrails_on"]["ttft_p50_s"]
                                                                    / by["vllm"]["ttft_p50_s"])
        assert r["vllm_over_transformers"] is None
        assert isinstance(rep["goals"]["gateway_off_over_vllm_tokens_per_s"]["met"][c], bool)
    assert rep["goals"]["gateway_on_over_vllm_ttft_p50"]["goal"] == "<= 1.5"


def test_a_request_s_stages_add_up_to_its_total():
    """No stage counts time another already counted (``other``, the rest, is never negative), and a
    stream's output checks between deltas are not decode time."""
    async def turn() -> dict[str, float]:
        t = StageTimes()
        await t.run("input_checks", sum, [1, 2])
        since = time.perf_counter()
        await asyncio.sleep(0.01)   # waiting for an upstream slot
        t.queued(since)
        await asyncio.sleep(0.01)
        first = t.first_token()
        await t.run("output_checks", time.sleep, 0.05)   # a piece checked between deltas
        await asyncio.sleep(0.01)
        t.generated(first)
        return t.done()

    got = asyncio.run(turn())
    assert list(got) == [s for s in STAGES if s in got]
    assert {"thread_wait", "input_checks", "queue", "upstream_ttft", "decode", "output_checks", "other"} <= set(got)
    assert sum(v for k, v in got.items() if k not in ("other", "total")) <= got["total"]
    assert got["output_checks"] >= 0.05 and 0.005 <= got["decode"] < 0.05 and got["queue"] >= 0.01


def test_an_unstreamed_answer_and_a_blocked_one_carry_their_timings_and_metrics_count_them(bundle: Path):
    from fastapi.testclient import TestClient
    from test_serve import Echo

    gw = ChatService(RAG(bundle), Echo(), settings=Settings(mlflow_feedback=False), policy=Policy.from_config(POLICY))
    with TestClient(create_app(gw)) as c:
        ok = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "capital of Poland"}]})
        blocked = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x " * 400}]})
        text = c.get("/metrics").text
    t = ok.json()["lab"]["timings"]
    assert {"input_checks", "retrieval", "prompt", "queue", "upstream_ttft", "output_checks", "total"} <= set(t)
    b = blocked.json()["lab"]
    assert b["blocked"] and "input_checks" in b["timings"] and "retrieval" not in b["timings"]
    assert 'lab_stage_duration_seconds_count{stage="total"} 2.0' in text
    assert 'lab_guardrail_check_duration_seconds_count{check="limits",stage="input"} 2.0' in text
    assert 'lab_guardrail_check_duration_seconds_count{check="limits",stage="output"} 1.0' in text


def test_a_run_stopped_midway_keeps_the_targets_it_finished(bundle: Path, tmp_path: Path, monkeypatch):
    """The 50-minute run of 2026-12-07 was killed by its timeout in the last target and wrote nothing:
    the file is now rewritten as each target finishes."""
    out = tmp_path / "serve_load.json"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "gateway_target", killed)
    with FakeOpenAIServer("lab", delay_s=0.002) as fake, pytest.raises(KeyboardInterrupt):
        bench.main(["--bundle", str(bundle), "--requests", "4", "--concurrency", "2", "--max-tokens", "8",
                    "--targets", "vllm,gateway_guardrails_off", "--vllm-url", f"{fake.base_url}#lab",
                    "--gateway-off-url", "http://127.0.0.1:9/v1", "--out", str(out)])
    rep = json.loads(out.read_text())
    assert rep["complete"] is False
    assert rep["vllm"]["requests"] == 4 and rep["vllm"]["errors"] == 0 and rep["vllm"]["tokens_per_s"] > 0
    assert rep["gateway_guardrails_off"]["skipped"] == bench.NOT_RUN
    assert rep["transformers"]["skipped"] == "not in --targets"
