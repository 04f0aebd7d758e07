"""``lab serve`` as a user runs it: a real process (transformers upstream on the tiny model; vLLM
where installed is exercised by the benchmark), answering over HTTP with sources; the playground
driven in headless Chromium (question typed, answer streamed, thumbs up), the feedback landing in
the JSONL that ``lab judge calibrate`` reads and in MLflow; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import browser
import pytest

from lab.export.winner import ArmScore, choose_arm
from lab.generate.domain_qa_prompt import PROMPT_VERSION
from lab.handoff.bundle import ServedModel, write_bundle

pytestmark = pytest.mark.slow

CORPUS = {
    "w1": {"title": "Warsaw", "text": "Warsaw is the capital and largest city of Poland, on the Vistula."},
    "n1": {"title": "Normans", "text": "The Normans were the people who gave their name to Normandy in France."},
    "t1": {"title": "Nikola Tesla", "text": "Tesla was born on 10 July 1856 in Smiljan."},
}


def _post(url: str, body: dict, key: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.fixture
def served(tmp_path: Path):
    from lab.models import resolve

    model = resolve("smollm2-135m-instruct")   # a real model: the answer is text a user would rate
    choice = choose_arm([ArmScore("rag", 0.5, 0.4, 0.6, 10, 1.0)])
    bundle = write_bundle(tmp_path / "bundle", retrieval_config={"retriever": "bm25", "chunker": "none"},
                          corpus=CORPUS, model=ServedModel(str(model.path), spec="smollm2-135m-instruct"), choice=choice,
                          k=2, prompt_version=PROMPT_VERSION,
                          generation={"max_new_tokens": 24, "temperature": 0.0, "seed": 0, "stop": ["\n"]})
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")   # the project root (MLflow store under it)
    port = browser.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("LAB_MLFLOW_DIR", "MLFLOW_TRACKING_URI")}
    env["LAB_API_KEY"] = "k3y"
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "serve", str(bundle), "--port", str(port),
                             "--upstream", "transformers"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        browser.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
        yield f"http://127.0.0.1:{port}", tmp_path, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_lab_serve_answers_with_sources_requires_the_key_and_stops_on_sigterm(served):
    url, _root, proc = served
    q = {"messages": [{"role": "user", "content": "What is the capital of Poland?"}], "max_tokens": 16}
    assert _post(f"{url}/v1/chat/completions", q)[0] == 401
    status, body = _post(f"{url}/v1/chat/completions", q, key="k3y")
    assert status == 200, body
    assert body["sources"][0]["id"] == "w1" and body["lab"]["generated_by"].startswith("transformers:")
    assert body["usage"]["completion_tokens"] > 0
    with urllib.request.urlopen(f"{url}/readyz", timeout=10) as r:
        assert json.load(r)["upstream_ready"] is True
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.stdout.read()[-2000:]
    assert "[lab serve] stopped" in proc.stdout.read()


@pytest.mark.skipif(browser.chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_playground_in_chromium_streams_an_answer_with_sources_and_stores_thumbs_up(served, tmp_path):
    url, root, _proc = served
    ask = ("document.getElementById('key').value='k3y';"
           "document.getElementById('q').value='What is the capital of Poland?';"
           "document.getElementById('ask').click();")
    text, png = browser.render(f"{url}/", wait_for="lab playground", timeout=180,
                               steps=[(ask, "done (chatcmpl-"), ("document.getElementById('up').click();",
                                                                 "thanks: feedback stored (up)")])
    browser.save(png, tmp_path / "playground.png")
    assert "[1] Warsaw: Warsaw is the capital" in text
    from lab.data.halueval import read_judged

    fb = read_judged(root / "results" / "serve" / "feedback.jsonl")
    assert len(fb.items) == 1 and fb.items[0].label == 0 and fb.items[0].question == "What is the capital of Poland?"
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / '.mlflow' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["lab"], filter_string="tags.`lab.kind` = 'feedback'",
                              output_format="list")
    assert len(runs) == 1 and runs[0].data.metrics["feedback_up"] == 1
    # the request was traced (retrieval and generation spans) and the thumbs are an assessment on its trace
    rec = json.loads((root / "results" / "serve" / "feedback.jsonl").read_text().splitlines()[0])
    trace = mlflow.get_trace(rec["trace_id"])
    assert {"chat", "retrieval", "generation"} <= {sp.name for sp in trace.data.spans}
    rating = [a for a in trace.info.assessments if a.name == "user_rating"]
    assert len(rating) == 1 and rating[0].value is True and rating[0].source.source_type == "HUMAN"
