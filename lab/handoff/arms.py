"""The fine-tune comparison's arms manifest (``arms.json``, next to ``predictions.jsonl``): what each
arm ran with, so that the export stage serves the chosen arm without rebuilding the study.

Written by the fine-tune study at the end of its run, read by the export stage::

    format, version      lab.finetune-arms, 1
    arms                 in the study's order, each: name, skipped (why, or null), base model spec,
                         trained folder (LoRA adapter or full fine-tune; null for prompt and RAG
                         arms), method, rag (the prompt quotes retrieved passages), prompt version,
                         generation settings (max_new_tokens, temperature, seed, stop)
    retrieval            what the RAG arms retrieved with: {config: the sweep winner's
                         configuration, k: passages per question} (null when no arm retrieves)
    corpus               [{id, title, text}] in file order: the paragraphs that retriever indexed;
                         the export stage chunks and indexes them with the same configuration and
                         code (order matters: an article's paragraphs are chunked as one text)
    corpus_kind          how the corpus becomes passages (lab.retrieval.sets.rag_corpus): absent for
                         SQuAD paragraphs ("squad"), "documents" for a test set's documents
    heldout              the questions every arm answered: id, question, answers, title

Paths inside the project are stored relative to its root (the file moves with the project);
:func:`read_arms` returns them absolute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import DataError
from lab.versioned import read_versioned, write_versioned

ARMS_FORMAT = "lab.finetune-arms"
ARMS_VERSION = 1
ARMS_FILE = "arms.json"
REGENERATE = "dvc repro finetune_comparison"
#: How the corpus becomes passages (the keys of lab.retrieval.sets.RAG_CORPORA).
CORPUS_KINDS = ("squad", "documents")


@dataclass
class ArmEntry:
    """One arm of the study as it ran."""

    name: str
    model: str                          # the base model's model-store spec
    prompt_version: str
    generation: dict[str, Any]          # max_new_tokens, temperature, seed, stop
    rag: bool = False                   # the prompt quotes ArmsManifest.retrieval's k passages
    method: str | None = None           # lora / full / qlora; None: the base model answers
    trained_dir: str | None = None      # the adapter or the full model the arm answered with
    skipped: str | None = None          # why the arm did not run


@dataclass
class ArmsManifest:
    """Every arm of one fine-tune comparison run, and the retrieval and questions they shared."""

    arms: list[ArmEntry]
    retrieval: dict[str, Any] | None = None       # {"config": ..., "k": ...}
    corpus: list[dict[str, str]] = field(default_factory=list)
    heldout: list[dict[str, Any]] = field(default_factory=list)
    corpus_kind: str = "squad"                    # lab.retrieval.sets.RAG_CORPORA's key

    def arm(self, name: str) -> ArmEntry:
        """The entry of arm ``name``.

        Raises
        ------
        DataError
            No such arm; the message lists the arms of the manifest.
        """
        for a in self.arms:
            if a.name == name:
                return a
        raise DataError(f"arm {name!r} is not in the arms manifest (arms: {', '.join(a.name for a in self.arms)}); "
                        f"rerun `{REGENERATE}`")

    def names(self) -> list[str]:
        """The arms in the study's order."""
        return [a.name for a in self.arms]

    def paragraphs(self) -> dict[str, dict[str, str]]:
        """Paragraph (or document) id -> ``{"title", "text"}`` in the study's order (what
        :func:`lab.retrieval.sets.rag_corpus` chunks, by :attr:`corpus_kind`)."""
        return {p["id"]: {"title": p["title"], "text": p["text"]} for p in self.corpus}


def _rel(path: str | None, root: Path) -> str | None:
    if path is None:
        return None
    p = Path(path)
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


def write_arms(path: str | Path, manifest: ArmsManifest, root: Path) -> Path:
    """Write ``manifest`` to ``path`` atomically, trained folders relative to ``root``; the path."""
    data = asdict(manifest)
    for a in data["arms"]:
        a["trained_dir"] = _rel(a["trained_dir"], root)
    if data["corpus_kind"] == "squad":   # the default is left out: a SQuAD study writes the file it always wrote
        del data["corpus_kind"]
    return write_versioned(path, ARMS_FORMAT, ARMS_VERSION, data)


def read_arms(path: str | Path, root: Path) -> ArmsManifest:
    """The manifest at ``path``, trained folders made absolute against ``root``.

    Raises
    ------
    DataError
        The file is missing, not JSON, of another format or version, or lacks a key; the message
        names the file and says to rerun the fine-tune comparison.
    """
    path = Path(path)
    data = read_versioned(path, ARMS_FORMAT, ARMS_VERSION, REGENERATE)
    arms = []
    for i, a in enumerate(data.get("arms") or []):
        try:
            if not isinstance(a, dict) or not isinstance(a.get("generation", {}), dict):
                raise TypeError("an arm is a mapping whose 'generation' is a mapping")
            entry = ArmEntry(**a)
        except TypeError as exc:
            raise DataError(f"{path}: arms[{i}]: {exc}; rerun `{REGENERATE}`") from None
        if entry.trained_dir is not None and not Path(entry.trained_dir).is_absolute():
            entry.trained_dir = str(root / entry.trained_dir)
        arms.append(entry)
    missing = [k for k in ("arms", "retrieval", "corpus", "heldout") if k not in data]
    if missing:
        raise DataError(f"{path}: key(s) {missing} missing; rerun `{REGENERATE}`")
    retrieval = data["retrieval"]
    if retrieval is not None and (not isinstance(retrieval, dict) or not isinstance(retrieval.get("config"), dict)
                                  or not isinstance(retrieval.get("k"), int)):
        raise DataError(f"{path}: retrieval needs a 'config' mapping and an integer 'k'; rerun `{REGENERATE}`")
    for key, need in (("corpus", ("id", "title", "text")), ("heldout", ("id", "question", "answers"))):
        for i, rec in enumerate(data[key] if isinstance(data[key], list) else [None]):
            if not isinstance(rec, dict) or any(k not in rec for k in need):
                raise DataError(f"{path}: {key}[{i}] must be a mapping with {', '.join(need)}; rerun `{REGENERATE}`")
    kind = data.get("corpus_kind", "squad")
    if kind not in CORPUS_KINDS:
        raise DataError(f"{path}: corpus_kind {kind!r} is not one of {', '.join(CORPUS_KINDS)}; rerun `{REGENERATE}`")
    return ArmsManifest(arms=arms, retrieval=data["retrieval"], corpus=data["corpus"], heldout=data["heldout"],
                        corpus_kind=kind)


def manifest_from_study(arms: Sequence[Mapping[str, Any]], *, retrieval: Mapping[str, Any] | None,
                        paragraphs: Mapping[str, Mapping[str, str]], heldout: Sequence[Any],
                        corpus_kind: str = "squad") -> ArmsManifest:
    """A manifest from plain values: ``arms`` as :class:`ArmEntry` keyword mappings, the retrieval
    (``{"config", "k"}``; None without RAG arms), the paragraphs indexed (id -> ``{"title", "text"}``,
    in order) and the held-out questions
    (objects with ``id``, ``question``, ``answers`` and ``title``, e.g. :class:`lab.data.domain.QAExample`)."""
    return ArmsManifest(
        arms=[ArmEntry(**dict(a)) for a in arms],
        retrieval=dict(retrieval) if retrieval is not None else None,
        corpus=[{"id": pid, "title": p["title"], "text": p["text"]} for pid, p in paragraphs.items()],
        heldout=[{"id": q.id, "question": q.question, "answers": list(q.answers), "title": q.title} for q in heldout],
        corpus_kind=corpus_kind)
