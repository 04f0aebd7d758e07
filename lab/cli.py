"""The ``lab`` command line. Thin: parses, calls into ``lab``, prints.

Over 500 lines on purpose: it is a flat list of thin commands (each parses its options and calls one
function of ``lab``), and one file is the whole command surface a reader looks up; the work is in
the modules they call.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lab.config.generation import ANSWER_TIMEOUT_S

app = typer.Typer(help="lab: reproducible LLM and RAG experiments.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="The offline model store.", no_args_is_help=True)
params_app = typer.Typer(help="params.yaml sections and their typed configs.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(params_app, name="params")
guardrails_app = typer.Typer(help="Guardrail checks: measure them on labelled data.", no_args_is_help=True)
app.add_typer(guardrails_app, name="guardrails")
judge_app = typer.Typer(help="LLM-as-judge: calibrate judges against human labels.", no_args_is_help=True)
app.add_typer(judge_app, name="judge")
testset_app = typer.Typer(help="Test sets over your own documents: generate questions, import your own.",
                          no_args_is_help=True)
app.add_typer(testset_app, name="testset")
team_app = typer.Typer(help="The team stack: PostgreSQL-backed MLflow with basic auth, an S3 API, a Ray cluster.",
                       no_args_is_help=True)
app.add_typer(team_app, name="team")


def _emit_json(result: Any, out: Path | None) -> None:
    """Print ``result`` as JSON, and write it to ``out`` (atomically) when given."""
    text = json.dumps(result, indent=2)
    if out is not None:
        from lab.io import write_text

        write_text(out, text + "\n")
    typer.echo(text)


F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(command: F) -> F:
    """The CLI's one error handler, put on every command: an interrupted run (Ctrl-C, SIGTERM:
    :class:`lab.stopping.Interrupted`) exits 128 + the signal number, the shell's convention; any
    other :class:`lab.errors.LabError` prints its message (it names the file, key or option and how
    to fix it) and exits 2; anything else is a bug and keeps its traceback."""

    @functools.wraps(command)   # typer reads the wrapped command's signature and help
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from lab.errors import LabError
        from lab.stopping import Interrupted

        try:
            return command(*args, **kwargs)
        except Interrupted as exc:
            typer.secho(f"interrupted: {exc}", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(128 + exc.signum) from None
        except LabError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _root() -> Path:
    from lab.paths import project_root

    return project_root()


@app.command()
@handles_errors
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """What is installed, which models are available, GPU or not, disk and memory."""
    from lab.doctor import collect

    info = collect()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]lab {info['lab']}[/] python {info['python']} on {info['platform']}")
    con.print(f"cpus {info['cpus']}, memory {info['memory_gb']} GB, disk free {info['disk_free_gb']} GB "
              f"at {info['project_root']}")
    gpu = info["gpu"]
    con.print("gpu: " + (", ".join(gpu["devices"]) if gpu["cuda_available"] else
                         f"none (torch CUDA build: {gpu.get('torch_cuda_build')})"))
    con.print(f"tracking: {info['tracking_uri']}")
    con.print(f"model cache: {info['model_cache']}")
    off = info["telemetry_off"]
    con.print(f"telemetry off: {sum(off.values())}/{len(off)} switches set")
    pk = Table("package", "version", title="packages")
    for name, ver in info["packages"].items():
        pk.add_row(name, ver or "[dim]not installed[/]")
    con.print(pk)
    mt = Table("model", "task", "available", "size", "licence", "source / how to get", title="built-in models")
    for m in info["models"]:
        source = str(m.get("message") or m.get("package") or "")
        if m.get("provenance"):
            source += f"\nprovenance: {m['provenance']}"
        mt.add_row(m["name"], m.get("task", ""), "yes" if m.get("available") else "[red]no[/]",
                   f"{m['size_mb']} MB" if m.get("size_mb") else "", str(m.get("licence", "")), source)
    con.print(mt)


def _pairs(args: list[str]) -> dict[str, Any]:
    """``-p KEY VALUE`` (repeatable, papermill's spelling) from the extra arguments of ``lab run``."""
    from lab.config import parse_value

    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        if args[i] not in ("-p", "--param") or i + 2 >= len(args):
            raise typer.BadParameter(f"expected '-p KEY VALUE', got {' '.join(args[i:i + 3])!r}")
        out[args[i + 1]] = parse_value(args[i + 2])   # params.yaml's YAML: 1e-4 is a float
        i += 3
    return out


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_errors
def run(
    ctx: typer.Context,
    notebook: Annotated[Path, typer.Argument(help="Notebook with a cell tagged 'parameters'. "
                                             "Overrides: -p KEY VALUE (value read as YAML), repeatable.")],
    section: Annotated[str | None, typer.Option(help="params.yaml section (default: notebook stem).")] = None,
    params_file: Annotated[Path, typer.Option("--params", help="The params file.")] = Path("params.yaml"),
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    track: Annotated[bool, typer.Option(help="Log an MLflow run.")] = True,
) -> None:
    """Execute NOTEBOOK with papermill on its validated params and track it in MLflow."""
    from lab.runner import run_notebook

    result = run_notebook(notebook, _pairs(list(ctx.args)), section=section, params_file=params_file,
                          out_dir=out_dir, track=track)
    typer.echo(f"notebook: {result.notebook}\nhtml: {result.html}")
    if result.run_id:
        typer.echo(f"mlflow run: {result.run_id} ({len(result.metrics)} metrics)")


@models_app.command("list")
@handles_errors
def models_list() -> None:
    """Built-in models and whether each is available offline."""
    from lab.models import list_builtin

    for m in list_builtin():
        state = "available" if m.get("available") else "missing"
        size = f"{m['size_mb']} MB" if m.get("size_mb") else "-"
        typer.echo(f"{m['name']:<28} {m.get('task', ''):<10} {state:<10} {size:>8}  {m.get('licence', '?')}")
        typer.echo(f"{'':<28} {m.get('message') or ''}")
        if m.get("provenance"):
            typer.echo(f"{'':<28} provenance: {m['provenance']}")


@models_app.command("resolve")
@handles_errors
def models_resolve(spec: str) -> None:
    """Resolve SPEC (built-in name, local dir, hub id or endpoint URL#model); converts on first use."""
    from lab.models import resolve

    typer.echo(json.dumps(resolve(spec).to_dict(), indent=2))


@params_app.command("check")
@handles_errors
def params_check(
    sections: Annotated[list[str] | None, typer.Argument(help="Sections (default: all known).")] = None,
    params_file: Annotated[Path, typer.Option("--params")] = Path("params.yaml"),
) -> None:
    """Validate params.yaml sections against their typed configs, and the experiment file (search
    space) a section names, so every mistake a stage would meet stops here."""
    from lab.dvcparams import check_sections
    from lab.sweep import load_experiment

    root = params_file.resolve().parent
    for name, cfg in check_sections(params_file, sections).items():
        experiment = getattr(cfg, "experiment", None)
        if experiment:
            load_experiment(cfg.resolve(experiment, root))
        typer.echo(f"{name}: ok (params hash {cfg.params_hash()})" + (f"; {experiment} ok" if experiment else ""))


@params_app.command("overrides")
@handles_errors
def params_overrides(
    file: Annotated[Path, typer.Argument(help="Overrides file: params.yaml sections and the keys they change.")],
    params_file: Annotated[Path, typer.Option("--params")] = Path("params.yaml"),
) -> None:
    """Print the `dvc exp run -S ...` arguments of an overrides file (shell-quoted), after validating
    them: `dvc exp run -n NAME $(lab params overrides experiments/finetune_qwen05.yaml)`."""
    import shlex

    from lab.dvcparams import override_args

    typer.echo(shlex.join(override_args(file, params_file)))


@guardrails_app.command("train")
@handles_errors
def guardrails_train(
    check: Annotated[str, typer.Argument(help="The check whose classifier to train (injection, jailbreak, toxicity).")],
    data: Annotated[Path, typer.Option("--data", help="Labelled training file (JSONL {text,label} or a CSV).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the model, its metadata and heldout.jsonl.")],
    heldout: Annotated[float, typer.Option("--heldout", help="Fraction held out (never trained on).")] = 0.25,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    features: Annotated[list[str] | None, typer.Option("--features", help="Feature blocks before the logistic "
                        "regression, as the guardrails stage's `features`: word, char, embedding (repeat the "
                        "option or separate by commas; default word,char).")] = None,
    embedding_model: Annotated[str, typer.Option("--embedding-model", help="The sentence embedder of the "
                               "embedding block (a model-store name).")] = "all-minilm-l6-v2",
    prose: Annotated[list[Path] | None, typer.Option("--prose", help="Benign prose (.jsonl passages, .txt/.md "
                     "files or folders; repeat): also train the window model for long texts into OUT/windows "
                     "(the guardrails stage's `windows`).")] = None,
    max_text_fpr: Annotated[float, typer.Option("--max-text-fpr", help="Target share of benign long texts "
                            "the window model's length-aware cut lets fire.")] = 0.02,
) -> None:
    """Train a guardrail classifier; its threshold is chosen on the training part only."""
    from lab.guardrails.training import train_check

    blocks = [b.strip() for f in features or [] for b in f.split(",") if b.strip()]
    options: dict[str, Any] = {"features": blocks} if blocks else {}   # none given: train_check's default
    if prose:
        options["windows"] = {"prose": [str(p) for p in prose], "max_text_fpr": max_text_fpr}
    meta = train_check(check, data, out, heldout_fraction=heldout, seed=seed, embedding_model=embedding_model,
                       **options)
    typer.echo(json.dumps(meta, indent=2))


@guardrails_app.command("eval")
@handles_errors
def guardrails_eval(
    labelled_file: Annotated[Path, typer.Argument(help="JSONL {text,label}, Presidio span JSON, or a toxicity CSV.")],
    check: Annotated[str, typer.Option("--check", help="A registered check (limits, pii, secrets, ...).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON here (atomically).")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave malformed records out (counted) instead of stopping.")] = False,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Override the check's stored threshold.")] = None,
    model_dir: Annotated[Path | None, typer.Option("--model-dir", help="A trained check's model folder (default: the one the pipeline trains, under the guardrails_eval stage's out_dir; for grounding, the judge_eval stage's faithfulness judge); for pii, the NER: a fine-tuned PII NER folder or any spaCy pipeline (default: the guardrails stage's fine-tuned NER when it has been trained, else en_core_web_sm).")] = None,
    params_file: Annotated[Path, typer.Option("--params", help="The params file the stages' out_dir come from.")] = Path("params.yaml"),
) -> None:
    """Precision, recall, F1, false-positive rate and accuracy of a check on a labelled file (span-level
    and token-level precision, recall and F2 per entity type for PII span files)."""
    from lab import stage_outputs
    from lab.guardrails.evaluate import evaluate

    options: dict[str, str] | None = None
    if check == "pii":
        from lab.guardrails.pii import default_nlp_model

        trained = stage_outputs.pii_ner_dir(_root(), params_file) if model_dir is None else None
        nlp_model = default_nlp_model(model_dir, trained=trained)
        typer.echo(f"pii: names, places and organisations by {nlp_model}", err=True)
        options = {"nlp_model": nlp_model}
    elif model_dir is not None or check in stage_outputs.TRAINED_CHECKS:
        options = {"model_dir": str(model_dir or stage_outputs.check_model_dir(check, _root(), params_file))}
    result = evaluate(labelled_file, check, skip_bad=skip_bad, threshold=threshold, options=options)
    if out is not None:
        typer.echo(f"{out}: {check} on {result['n']} records", err=True)
    _emit_json(result, out)


@app.command("ingest")
@handles_errors
def ingest_cmd(
    sources: Annotated[list[Path], typer.Argument(help="Folders (walked recursively) and files: PDF, HTML, DOCX, "
                                                  "Markdown, plain text.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The folder to write: OUT/docs/<id>.txt (a corpus folder) "
                                      "and OUT/manifest.json.", show_default=False)],
    include: Annotated[list[str] | None, typer.Option("--include", help="Glob a file must match (repeatable); "
                       "without '/' it matches the file name, with '/' the path under SRC.")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Glob of files to leave out (repeatable).")] = None,
    ocr: Annotated[bool, typer.Option("--ocr", help="Read scanned PDF pages with Tesseract "
                                      "(sudo apt-get install -y tesseract-ocr).")] = False,
    ocr_lang: Annotated[str, typer.Option("--ocr-lang", help="Tesseract language(s), e.g. eng or eng+deu.")] = "eng",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Extract the text of your documents into a corpus folder with a manifest (page and section maps,
    provenance, warnings); re-ingesting extracts only the files that changed."""
    from lab.ingest.ingest import IngestOptions, ingest

    options = IngestOptions(include=tuple(include or ()), exclude=tuple(exclude or ()), ocr=ocr, ocr_lang=ocr_lang)
    result, manifest = ingest(list(sources), out, options)
    summary = {"out": str(out), **result.summary(),
               "changes": {k: len(v) for k, v in manifest.changes.model_dump().items()},
               "failed_files": [f.error for f in manifest.failed]}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    s = summary
    typer.echo(f"ingested {s['documents']} documents into {out}: {s['with_text']} text files, {s['pages']:,} PDF "
               f"pages, {s['chars']:,} characters, {s['seconds']:.1f} s ({s['extracted']} extracted, "
               f"{s['cached']} from the cache)")
    typer.echo("changes: " + ", ".join(f"{n} {k}" for k, n in s["changes"].items()))
    if s["scanned_pages"]:
        hint = f"{s['ocr_pages']} read by OCR" if ocr else "rerun with --ocr to read them"
        typer.secho(f"scanned pages without a text layer: {s['scanned_pages']} ({hint})", fg=typer.colors.YELLOW)
    if s["skipped"]:
        typer.echo(f"skipped: {s['skipped']} (listed with the reason in {out / 'manifest.json'}, key 'skipped')")
    for error in s["failed_files"]:
        typer.secho(f"failed: {error}", fg=typer.colors.RED, err=True)


@app.command("dvc-deps")
@handles_errors
def dvc_deps(
    write: Annotated[bool, typer.Option("--write", help="Rewrite dvc.yaml's deps from the derived ones.")] = False,
    dvc_file: Annotated[Path, typer.Option("--dvc-file")] = Path("dvc.yaml"),
    params_file: Annotated[Path, typer.Option("--params")] = Path("params.yaml"),
) -> None:
    """Derive every stage's deps (notebook, the lab modules it can run, its data) and compare them with
    dvc.yaml; exit 1 on drift, or rewrite the deps with --write."""
    from lab import deps
    from lab.paths import project_root

    root = project_root(dvc_file.resolve().parent)
    changes = (deps.write if write else deps.drift)(root, dvc_file.name, str(params_file))
    for stage, diff in changes.items():
        typer.echo(f"{stage}: " + "; ".join(f"{k} {', '.join(v)}" for k, v in diff.items() if v))
    if not changes:
        typer.echo(f"{dvc_file}: deps of every stage match their import closure and data")
    elif write:
        typer.echo(f"{dvc_file}: deps rewritten for {len(changes)} stage(s)")
    else:
        typer.echo(f"{dvc_file}: deps drifted; run `lab dvc-deps --write`", err=True)
        raise typer.Exit(1)


@judge_app.command("calibrate")
@handles_errors
def judge_calibrate(
    labelled_file: Annotated[Path, typer.Argument(help="JSONL in a HaluEval format (general or grounded), exported feedback, "
                                                        "labelled answers (question, answer, context(s), label, spans?), "
                                                        "or the labelling queue's labels file (`lab label`).")],
    judge: Annotated[str, typer.Option("--judge", help="default, majority, lexical, a trained or configured judge, prompted:MODEL, "
                                                      "or claims:SCORER (claim-level: claims:lexical, claims:TRAINED).")] = "default",
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON here (atomically).")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave malformed records out (counted) instead of stopping.")] = False,
    sample: Annotated[int | None, typer.Option("--sample", help="Judge a seeded sample of this many items.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    params_file: Annotated[Path, typer.Option("--params", help="The params file (judge_eval section: data, judges, out_dir).")] = Path("params.yaml"),
) -> None:
    """Agreement of a judge with the file's human labels (accuracy, F1, kappa with CIs, confusion
    matrix), its parse failures, and the majority and lexical baselines; span-level precision, recall
    and F1 where the file labels hallucinated spans; the judge's offline figures from the judge stage
    beside them. On a labels file of `lab label`: faithful = 0, hallucinated = 1, wrong and
    unanswerable left out and counted, and the online judges' verdicts on the labelled traces scored
    too."""
    from lab.stage_outputs import calibrate_labelled_file

    result = calibrate_labelled_file(labelled_file, judge, _root(), params_file, skip_bad=skip_bad, sample=sample,
                                     seed=seed)
    if result["skipped"]:
        typer.secho(f"skipped {result['skipped']} malformed record(s) of {result['records']}", fg=typer.colors.YELLOW, err=True)
    if "online_judges" in result:   # a labels file of the labelling queue: production beside offline
        from lab.judge.production import production_table

        typer.echo(production_table(result), err=True)
    _emit_json(result, out)


@judge_app.command("make-data")
@handles_errors
def judge_make_data(
    out: Annotated[Path, typer.Option("--out", help="The records file (JSON lines, labelled-answers format); appended to, "
                                                   "sources already in it skipped: rerun the same command to resume.")],
    n: Annotated[int, typer.Option("--n", help="Faithful answers to have in the file (each with its planted errors).")] = 50,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    generator: Annotated[str, typer.Option("--generator", help="The model that writes the answers (built-in name, folder "
                                                             "or endpoint).")] = "qwen2.5-coder-0.5b-instruct",
    backend: Annotated[str, typer.Option("--backend", help="Generation backend: transformers, llama-cpp, openai...")] = "transformers",
    source: Annotated[str, typer.Option("--source", help="squad (data/squad_v1.1_dev) or a JSON-lines file of "
                                                       "{id, question, passages, others?}.")] = "squad",
    part: Annotated[str, typer.Option("--part", help="SQuAD articles: train (default) or heldout (kept for validation).")] = "train",
    kinds: Annotated[str | None, typer.Option("--kinds", help="Comma-separated planted errors (default all: number, entity, "
                                                            "date, other_passage, addition, negation).")] = None,
    paraphrase: Annotated[str, typer.Option("--paraphrase", help="A faithful paraphrase of each answer, with its own "
                                                                 "planted error: generator (rules where it fails), "
                                                                 "rules, or off.")] = "generator",
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for generation.")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Answers generated at once (transformers: one batch).")] = 1,
    min_claim_support: Annotated[float, typer.Option("--min-claim-support", help="Drop an answer with a claim that has "
                                                                              "less than this share of its content "
                                                                              "words in the passages (0: off).")] = 0.5,
) -> None:
    """Judge training data from training sources only: faithful 60-150 word answers written by a local
    generator from passages, and the same answers with one planted error each (labels by construction,
    spans of the changed claim). Counts and lengths go to <out>.stats.json, dropped answers to
    <out>.drops.jsonl."""
    from lab.judge.faithful_data import make_data, writer_for
    from lab.judge.faithful_sources import sources
    from lab.judge.perturb import KINDS

    found = sources(source, _root(), part=part, seed=seed)
    chosen = tuple(k.strip() for k in kinds.split(",")) if kinds else KINDS
    writer = writer_for(generator, backend=backend, threads=threads, seed=seed, batch=batch)
    stats = make_data(found, writer, out, n=n, seed=seed, kinds=chosen, paraphrase=paraphrase, batch=batch,
                      min_claim_support=min_claim_support)
    typer.echo(json.dumps(stats, indent=2))


@judge_app.command("train-claims")
@handles_errors
def judge_train_claims(
    data: Annotated[list[Path], typer.Argument(help="Labelled-answers files (`lab judge make-data` output: context(s), "
                                                    "question, answer, label, spans).")],
    out: Annotated[Path, typer.Option("--out", help="The model folder (written atomically); `claims:<folder name>` "
                                                   "judges with it when it sits in the judge stage's models folder.")],
    epochs: Annotated[int, typer.Option("--epochs")] = 2,
    max_length: Annotated[int, typer.Option("--max-length", help="The model's input in tokens; longer contexts "
                                                                 "become windows.")] = 256,
    base_model: Annotated[str, typer.Option("--base-model", help="A model-store spec of the encoder to fine-tune.")] = "all-minilm-l6-v2",
    validation_fraction: Annotated[float, typer.Option("--validation-fraction", help="Share of the sources whose "
                                                       "answers choose the threshold.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for training.")] = None,
    lexical_hints: Annotated[bool, typer.Option("--lexical-hints/--no-lexical-hints", help="Show the model the claim's "
                                                "content words missing from the window.")] = False,
    more_errors: Annotated[int, typer.Option("--more-errors", help="Rule-planted errors to add per faithful answer "
                                                                  "(other claims, other seeds; needs --source).")] = 0,
    source: Annotated[str, typer.Option("--source", help="Where the answers' passages came from, as make-data's "
                                                        "--source (squad or a JSON-lines file), for --more-errors.")] = "squad",
    part: Annotated[str, typer.Option("--part", help="SQuAD part of the answers (make-data's --part).")] = "train",
    data_seed: Annotated[int, typer.Option("--data-seed", help="make-data's --seed (SQuAD's question choice).")] = 0,
    short_answers: Annotated[int, typer.Option("--short-answers", help="SQuAD training questions made into "
                                                                      "short-answer twins (gold vs a same-kind "
                                                                      "entity of the passages).")] = 0,
) -> None:
    """Train the claim-support model (the pair scorer of claim-level judging) on labelled answers: each
    answer planned into claims and evidence windows as the judge will see them, the planted errors'
    claims against their best window as unsupported, faithful claims against their best window as
    supported and against a window without their words as unsupported; the answer-level threshold
    chosen on the answers of held-out sources. Prints the model's meta.json (counts, agreement)."""
    from lab.config import ClaimSupportSpec, TrainedJudgeSpec
    from lab.judge.claim_training import train_claim_support, training_items

    model = TrainedJudgeSpec(model=base_model, epochs=epochs, max_length=max_length, threads=threads,
                             lexical_hints=lexical_hints)
    spec = ClaimSupportSpec(data=[str(p) for p in data], more_errors=more_errors, source=source, part=part,
                            data_seed=data_seed, validation_fraction=validation_fraction, model=model,
                            short_answers=short_answers)
    items = training_items(spec, _root())
    meta = train_claim_support(items, out, settings=model, validation_fraction=validation_fraction, seed=seed,
                               sources=spec.data)
    typer.echo(json.dumps(meta, indent=2))


def _testset_settings(params_file: Path | None, judge: str | None) -> Any:
    """The ``testset`` section of ``params_file`` (its defaults without one), ``judge`` overriding."""
    from lab.config import TestsetConfig, load_section

    cfg = load_section("testset", params_file, check_paths=False) if params_file is not None else TestsetConfig()
    return cfg.model_copy(update={"grounded_judge": judge}) if judge else cfg


def _backend_option(spec: str | None, cfg: Any) -> Any:
    """``--backend``: a YAML mapping (``{backend: openai, base_url: ..., model: ...}``), an endpoint
    ``http(s)://host/v1#model``, or a model-store name run with the section's transformers settings."""
    from lab.config import parse_value

    if spec is None:
        return None
    if spec.lstrip().startswith("{"):
        value = parse_value(spec)
        if not isinstance(value, dict):
            raise typer.BadParameter(f"--backend {spec!r}: not a mapping")
        return value
    if spec.startswith(("http://", "https://")):
        return {"model": spec}
    return cfg.backend.model_copy(update={"model": spec}) if cfg.backend.backend == "transformers" else \
        {"backend": "transformers", "model": spec}


@testset_app.command("generate")
@handles_errors
def testset_generate(
    corpus: Annotated[Path, typer.Argument(help="A corpus folder, one document per file (lab ingest's OUT/docs).")],
    n: Annotated[int, typer.Option("--n", help="Questions to keep, over the types.")] = 20,
    out: Annotated[Path, typer.Option("--out", help="The test-set CSV to write (and FILE.meta.json beside it).")] = Path("testset.csv"),
    backend: Annotated[str | None, typer.Option("--backend", help="The generator: a model-store name, "
                       "http(s)://host/v1#model (any OpenAI-compatible endpoint) or a YAML mapping "
                       "'{backend: ..., model: ...}' (default: the testset section's backend).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    types: Annotated[str, typer.Option("--types", help="Comma-separated: single, multi, unanswerable.")] = "single,multi,unanswerable",
    judge: Annotated[str | None, typer.Option("--judge", help="Grounded judge: lexical, or a trained judge's folder.")] = None,
    params_file: Annotated[Path | None, typer.Option("--params", help="Take mix, filters and passage lengths from "
                           "this params file's testset section (default: their built-in defaults).")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Generation cache folder (default: the lab cache).")] = None,
) -> None:
    """Generate questions over CORPUS, each with its reference excerpt as exact offsets (resumable:
    replies are cached, the CSV is written at the end)."""
    from lab.testset import generate_testset

    cfg = _testset_settings(params_file, judge)
    kinds = [t.strip() for t in types.split(",") if t.strip()]
    result = generate_testset(corpus, n, backend=_backend_option(backend, cfg), seed=seed, types=kinds,
                              cache_dir=cache_dir, settings=cfg, root=Path.cwd())
    path = result.write(out)
    m = result.meta
    typer.echo(json.dumps({"file": str(path), "kept": m["kept"], "counts": m["counts"],
                           "filtered": {k: v for k, v in m["filtered"].items() if v},
                           "shortfall": m["shortfall"], "seconds_per_kept": m["timings"]["seconds_per_kept"]},
                          indent=2))


@testset_app.command("import")
@handles_errors
def testset_import(
    questions: Annotated[Path, typer.Argument(help="CSV or JSONL: question, answer[, source, start_index, end_index].")],
    corpus: Annotated[Path, typer.Option("--corpus", help="The corpus folder the answers are located in.")],
    out: Annotated[Path, typer.Option("--out", help="The test-set CSV to write (and FILE.meta.json beside it).")],
    seed: Annotated[int, typer.Option("--seed", help="Seeds the train/heldout split.")] = 0,
) -> None:
    """Your own questions in the test-set format: each answer located in its document (exact, then
    ignoring case and whitespace); those not found keep document-level relevance and are listed."""
    from lab.testset import import_questions

    result = import_questions(questions, corpus, seed=seed)
    path = result.write(out)
    m = result.meta
    typer.echo(json.dumps({"file": str(path), "questions": m["kept"], "located": m["located"],
                           "not_found": [f"line {r['line']}: {r['question'][:80]}" for r in m["not_found"]]},
                          indent=2))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_errors
def report(
    ctx: typer.Context,
    notebook: Annotated[Path, typer.Argument(help="A study notebook (cell tagged 'parameters'). Overrides: -p KEY VALUE.")],
    out: Annotated[Path, typer.Option("--out", help="The HTML report to write.")] = Path("report.html"),
    section: Annotated[str | None, typer.Option(help="params.yaml section (default: notebook stem).")] = None,
    params_file: Annotated[Path, typer.Option("--params", help="The params file.")] = Path("params.yaml"),
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Where the notebook writes its results "
                                                 "(default: reports/<section>/, kept between reports, so models "
                                                 "trained by one report are reused by the next).")] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Write into the stage's own out_dir instead "
                                           "(reusing its kept models; its committed results are rewritten).")] = False,
    track: Annotated[bool, typer.Option(help="Log an MLflow run.")] = True,
) -> None:
    """Execute NOTEBOOK with papermill and write a self-contained HTML report (plots embedded,
    nothing fetched when it opens). The stage's own results are left alone unless --in-place.
    For scheduled evaluations: see the docs page Reports (docs/reports.md)."""
    import shutil

    from lab.runner import run_notebook

    if in_place and out_dir is not None:
        raise typer.BadParameter("--in-place writes into the stage's out_dir; leave out --out-dir")
    if not in_place and out_dir is None:
        out_dir = params_file.resolve().parent / "reports" / (section or notebook.stem)
    result = run_notebook(notebook, _pairs(list(ctx.args)), section=section, params_file=params_file,
                          out_dir=out_dir, track=track)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}.tmp")
    shutil.copyfile(result.html, staged)
    staged.replace(out)
    typer.echo(f"report: {out}")


@app.command()
@handles_errors
def serve(
    bundle: Annotated[str | None, typer.Argument(help="An export bundle folder, or models:/NAME@ALIAS (or models:/NAME/VERSION); default: the export stage's bundle.")] = None,
    host: Annotated[str, typer.Option(help="Gateway address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8080,
    upstream: Annotated[str, typer.Option(help="auto, vllm, transformers, or http(s)://host:port/v1#served-name.")] = "auto",
    fallback: Annotated[str, typer.Option(help="When the upstream fails after retries: message, transformers or none.")] = "message",
    vllm_port: Annotated[int, typer.Option(help="Port of the vLLM server lab starts (loopback).")] = 8000,
    feedback: Annotated[Path | None, typer.Option(help="Feedback JSONL (default results/serve/feedback.jsonl under the project root).")] = None,
    trace: Annotated[bool, typer.Option(help="An MLflow trace per request (retrieval, generation, guardrails spans).")] = True,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="Seconds one answer may take (upstream read timeout too).")] = ANSWER_TIMEOUT_S,
    stream_window: Annotated[int | None, typer.Option("--stream-window", min=0, help="Characters of a streamed answer held back while the output guardrails check them (default 64; docs/serving.md).")] = None,
    stream_chunk: Annotated[int | None, typer.Option("--stream-chunk", min=1, help="New characters beyond the window before the output guardrails run again on a stream (default 32).")] = None,
    judge_sample: Annotated[float, typer.Option("--judge-sample", min=0.0, max=1.0, help="Share of answered responses judged online after they went out (grounding, refusal, relevance, hallucination; docs/serving.md 'Online evaluation'); 0: off.")] = 0.0,
    judge_sample_route: Annotated[list[str] | None, typer.Option("--judge-sample-route", help="ROUTE=SHARE: another share for one route (repeatable), e.g. /v1/chat/completions=0.5.")] = None,
    judge_queue: Annotated[int | None, typer.Option("--judge-queue", min=1, help="Sampled responses waiting for the online judges; more are dropped and counted (default 64).")] = None,
    judges: Annotated[Path | None, typer.Option("--judges", help="The judge stage's output folder (judges.json, calibration.json, models/): the default judges and their agreement; default: the judge_eval stage's out_dir when it has judges.json.")] = None,
    guardrails: Annotated[bool, typer.Option("--guardrails/--no-guardrails", help="Apply the bundle's guardrail policy (--no-guardrails: serve without it, e.g. to measure what it costs: benchmarks/serve_load.py).")] = True,
) -> None:
    """Serve a bundle: vLLM's OpenAI server (or the in-process transformers backend) behind the RAG
    gateway (/v1/chat/completions, /v1/feedback, /metrics, /healthz, /readyz, playground at /).
    Set LAB_API_KEY to require 'Authorization: Bearer KEY'."""
    from lab.errors import DataError
    from lab.serve.app import serve as run_serve
    from lab.stage_outputs import SERVE_FEEDBACK, bundle_dir, judges_dir, route_shares

    if bundle is None:
        default = bundle_dir(_root())
        if not default.is_dir():
            raise DataError(f"{default}: no bundle; `dvc repro export` writes it, or name one: "
                            "lab serve BUNDLE_DIR (or models:/NAME@ALIAS)")
        bundle = str(default)
    run_serve(bundle, host=host, port=port, upstream=upstream, fallback=fallback, vllm_port=vllm_port,
              feedback=feedback or _root() / SERVE_FEEDBACK, trace=trace, timeout_s=timeout_s,
              stream_window=stream_window, stream_chunk=stream_chunk, judge_sample=judge_sample,
              judge_sample_routes=route_shares(judge_sample_route or []), judge_queue=judge_queue,
              judges_dir=judges if judges is not None else judges_dir(_root()), guardrails=guardrails)


@app.command("redteam")
@handles_errors
def redteam_cmd(
    target: Annotated[str | None, typer.Argument(help="A bundle folder (served in process, its policy on and off) or the URL of a gateway on 127.0.0.1; default: the redteam section's target (the export stage's bundle).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the report: results.csv, benign.csv, successful.csv, exchanges.jsonl, report.md, metrics.json.")] = ...,  # type: ignore[assignment]
    max_attacks: Annotated[int | None, typer.Option("--max-attacks", min=1, help="Attacks in all at most (the categories in turn).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=1, help="Seconds the whole run may take: no probe starts after them.")] = None,
    per_category: Annotated[int | None, typer.Option("--per-category", min=1, help="Attacks per category at most.")] = None,
    categories: Annotated[str | None, typer.Option("--categories", help="Comma-separated attack categories (default: all seven).")] = None,
    upstream: Annotated[str | None, typer.Option(help="For a bundle: transformers, vllm, auto, or http(s)://host:port/v1#name.")] = None,
    off_url: Annotated[str | None, typer.Option("--off-url", help="For a URL target: the same bundle served without a policy (arm 'off').")] = None,
    judge: Annotated[str | None, typer.Option(help="The grounded judge for off-topic answers: default, a trained judge's name or folder, or none.")] = None,
    benign: Annotated[int | None, typer.Option("--benign", min=0, help="Benign canary questions of the bundle (and of --benign-file) at most.")] = None,
    benign_file: Annotated[Path | None, typer.Option("--benign-file", help="More benign questions: JSONL or CSV with a 'question' column.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the attacks, canaries and planted documents.")] = None,
    params_file: Annotated[Path, typer.Option("--params", help="The params file whose redteam section gives the defaults.")] = Path("params.yaml"),
) -> None:
    """Red-team a served bundle through the gateway: attacks per category (injection, jailbreaks and their
    mutations, multi-turn escalation, PII extraction, system-prompt leaks, off-topic abuse, indirect injection
    through planted documents), with the policy on and off; success rates with Wilson CIs, the policy's false
    blocks on benign questions, and every successful attack. Loopback only; bounded by --max-attacks and --timeout."""
    from lab.redteam.stage import cli_config, redteam

    root = _root()
    cats = [c.strip() for c in categories.split(",") if c.strip()] if categories is not None else None
    if target is not None and not target.startswith(("http://", "https://")):
        target = str(Path(target).resolve())   # as the shell named it, from the working directory
    options = {"target": target, "off_target": off_url, "upstream": upstream, "categories": cats,
               "per_category": per_category, "max_attacks": max_attacks, "benign": benign,
               "benign_file": str(benign_file.resolve()) if benign_file is not None else None,
               "timeout_s": timeout, "seed": seed}
    cfg = cli_config(options, params_file if params_file.is_absolute() else root / params_file)
    if judge is not None:
        cfg = cfg.model_copy(update={"judge": None if judge.lower() == "none" else judge})
    report = redteam(cfg, root)
    report.write(out)
    typer.echo(report.finding())
    typer.echo(f"report: {out / 'report.md'}")


@app.command()
@handles_errors
def review(
    testset: Annotated[Path | None, typer.Option("--testset", help="The test set CSV (default: the testset stage's testset.csv).")] = None,
    corpus: Annotated[Path | None, typer.Option("--corpus", help="The corpus folder it was generated from; the ingest manifest is DIR/../manifest.json (default: the ingest stage's docs folder).")] = None,
    port: Annotated[int, typer.Option(help="Port of the app (on 127.0.0.1).")] = 2718,
    params_file: Annotated[Path, typer.Option("--params", help="The params file the default paths come from.")] = Path("params.yaml"),
) -> None:
    """Review a generated test set in the browser: accept, edit or reject each question, with its
    excerpt highlighted in the document. Decisions go to FILE minus .csv + .review.json at once."""
    import os
    import sys

    from lab.errors import DataError
    from lab.stage_outputs import review_inputs

    root = _root()
    default_testset, default_corpus = review_inputs(root, params_file)
    testset, corpus = (testset or default_testset).resolve(), (corpus or default_corpus).resolve()
    if not testset.is_file():
        raise DataError(f"{testset}: no test set; `dvc repro testset` writes it, or pass --testset FILE")
    if not corpus.is_dir():
        raise DataError(f"{corpus}: no corpus folder; `dvc repro ingest` writes it, or pass --corpus DIR")
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "review.py"   # the app of this checkout of lab
    if not notebook.is_file():
        raise DataError(f"{notebook}: the review app is not there; run lab from its source checkout")
    command = [sys.executable, "-m", "marimo", "run", str(notebook), "--host", "127.0.0.1",
               "--port", str(port), "--headless", "--", "--testset", str(testset), "--corpus", str(corpus)]
    typer.echo(f"review of {testset} at http://127.0.0.1:{port}/ (Ctrl-C stops it)", err=True)
    sys.stdout.flush()
    os.execv(sys.executable, command)   # the app is this process from now on: Ctrl-C and SIGTERM reach it


@app.command()
@handles_errors
def label(
    source: Annotated[str | None, typer.Argument(help="A tracking URI (sqlite:///..., http://...) or a serving bundle folder (its passages fill the sources; traces from the project's store); default: the project's store (or MLFLOW_TRACKING_URI).")] = None,
    experiment: Annotated[str, typer.Option(help="The MLflow experiment the gateway traced into.")] = "lab",
    labels: Annotated[Path | None, typer.Option("--labels", help="The labels file (default results/serve/labels.jsonl under the project root).")] = None,
    bundle: Annotated[Path | None, typer.Option("--bundle", help="A serving bundle whose passages fill source titles and texts the trace lacks.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Traces shown at most (newest first).")] = 200,
    sample: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of the traces in the queue (a seeded hash of the trace id).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    judged_only: Annotated[bool, typer.Option("--judged-only", help="Only traces an online judge assessed.")] = False,
    labeller: Annotated[str | None, typer.Option(help="Your name on the labels (default $USER).")] = None,
    port: Annotated[int, typer.Option(help="Port of the app (on 127.0.0.1).")] = 2720,
) -> None:
    """Label served answers in the browser: sampled gateway traces with their question, answer,
    sources, judges' verdicts and thumbs; each label (faithful, hallucinated, wrong, unanswerable,
    a comment, a corrected answer) goes to the labels file and onto the trace at once.
    `lab judge calibrate LABELS_FILE` then reports the judges' agreement on them."""
    import getpass
    import os
    import sys

    from lab.errors import DataError
    from lab.stage_outputs import SERVE_LABELS
    from lab.tracking import tracking_uri

    root = _root()
    if source is not None and Path(source).is_dir():
        bundle, source = bundle or Path(source), None
    uri = source or tracking_uri(root)
    if "://" not in uri and not uri.startswith(("sqlite:", "file:", "databricks")):
        raise DataError(f"{source}: neither a tracking URI (sqlite:///FILE, http://HOST:PORT, file:///DIR) nor a bundle folder")
    from lab.serve.label_queue import bundle_passages, experiment_id

    experiment_id(uri, experiment)   # a store without the experiment fails here, not in the app
    if bundle is not None:
        bundle_passages(bundle)   # so does a folder that is not a bundle
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "label.py"   # the app of this checkout of lab
    if not notebook.is_file():
        raise DataError(f"{notebook}: the labelling app is not there; run lab from its source checkout")
    labels_file = (labels or root / SERVE_LABELS).resolve()
    args = {"tracking-uri": uri, "experiment": experiment, "labels": str(labels_file), "limit": limit,
            "sample": sample, "seed": seed, "labeller": labeller if labeller is not None else getpass.getuser()}
    if bundle is not None:
        args["bundle"] = str(bundle.resolve())
    if judged_only:
        args["judged-only"] = "true"
    command = [sys.executable, "-m", "marimo", "run", str(notebook), "--host", "127.0.0.1", "--port", str(port),
               "--headless", "--", *(f"--{k}={v}" for k, v in args.items())]
    typer.echo(f"labelling queue of {uri} ({experiment}) at http://127.0.0.1:{port}/; labels in {labels_file} "
               "(Ctrl-C stops it)", err=True)
    sys.stdout.flush()
    os.execv(sys.executable, command)   # the app is this process from now on: Ctrl-C and SIGTERM reach it


@app.command("init")
@handles_errors
def init(
    dest: Annotated[Path, typer.Argument(help="The new project folder (must not exist, or be empty).")],
    docs: Annotated[Path, typer.Option("--docs", help="Your documents: a folder (walked recursively) or a file.")],
    questions: Annotated[Path | None, typer.Option("--questions", help="Your own questions: CSV or JSONL with question, answer and optionally source.")] = None,
    link: Annotated[bool, typer.Option("--link", help="Use the documents in place instead of copying them into data/docs.")] = False,
    git: Annotated[bool, typer.Option("--git/--no-git", help="git init + dvc init + a first commit.")] = True,
    n: Annotated[int, typer.Option("--n", min=1, help="Synthetic questions to generate (testset.n; about 15 s per kept question on 2 CPU cores with the local generator).")] = 100,
    reference: Annotated[Path | None, typer.Option("--reference", help="lab's reference data folder (default: this checkout's data/).")] = None,
) -> None:
    """Scaffold a lab project for your own documents: params.yaml pointing at them, the pipeline
    ingest -> data_quality -> testset -> chunking_study -> retrieval_sweep -> finetune_comparison ->
    judge_eval -> export, notebooks and a README; then `cd DEST && dvc repro`."""
    from lab.scaffold import init_project

    report = init_project(dest, docs, questions, link=link, git=git, n_questions=n, reference_dir=reference)
    typer.echo(report.summary())


@app.command()
@handles_errors
def promote(
    bundle: Annotated[str | None, typer.Argument(help="The bundle folder (or models:/NAME/VERSION) to gate (default: the export stage's, <export out_dir>/bundle).")] = None,
    name: Annotated[str, typer.Option(help="Registered model name.")] = "lab-rag",
    version: Annotated[str | None, typer.Option(help="Model version (default: the newest registered from this bundle).")] = None,
    upstream: Annotated[str, typer.Option(help="auto, vllm, transformers, or http(s)://host:port/v1#name.")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", help="Write the gate's JSON here (atomically).")] = None,
    params_file: Annotated[Path, typer.Option("--params", help="The params file the export stage's out_dir comes from.")] = Path("params.yaml"),
) -> None:
    """The promotion gate: serve the bundle, run its held-out questions through the gateway, check
    no retrieval skew and F1 within the offline CI; move the 'champion' alias only when it passes
    (exit code 1 when refused)."""
    from lab import stage_outputs
    from lab.serve.app import gate_and_promote

    root = _root()
    result = gate_and_promote(bundle or str(stage_outputs.bundle_dir(root, params_file)), name=name, version=version,
                              upstream=upstream, root=root)
    _emit_json(result, out)
    if not result["promoted"]:
        raise typer.Exit(1)


@app.command()
@handles_errors
def monitor(
    report_dir: Annotated[Path, typer.Argument(help="The folder the report goes to (report.json, report.html; created).")],
    since: Annotated[str, typer.Option("--since", help="Start of the period: a duration before --until (90m, 24h, 7d) or an ISO 8601 time (UTC without a zone).")],
    until: Annotated[str | None, typer.Option("--until", help="End of the period (default: now), a duration before now or an ISO 8601 time.")] = None,
    bundle: Annotated[str | None, typer.Option("--bundle", help="The served bundle: a folder or models:/NAME@ALIAS (default: the export stage's, <export out_dir>/bundle).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML of thresholds and tests (drift:, limits:; docs: Health report).")] = None,
    feedback: Annotated[Path | None, typer.Option("--feedback", help="The gateway's feedback file (default results/serve/feedback.jsonl under the project root, when there).")] = None,
    metrics_url: Annotated[str | None, typer.Option("--metrics-url", help="The gateway's /metrics (http://127.0.0.1:8080/metrics): its counters as a snapshot.")] = None,
    params_file: Annotated[Path, typer.Option("--params", help="The params file the export stage's out_dir comes from.")] = Path("params.yaml"),
) -> None:
    """The served bundle's health report over a period, from the gateway's MLflow traces: volume,
    latency percentiles, errors, fallbacks, guardrail fire rates, judge flag rates and thumbs with
    intervals, and drift against the bundle's offline evaluation (retrieval scores, questions with no
    relevant source, question embeddings), each with its test and threshold. Exit code 1 when a
    threshold is crossed (a scheduler alerts on it), 2 on bad input."""
    from lab import stage_outputs
    from lab.monitor.run import run_monitor
    from lab.serve.app import resolve_bundle

    root = _root()
    bundle_dir = resolve_bundle(bundle, root) if bundle else stage_outputs.bundle_dir(root, params_file)
    if feedback is None and (root / stage_outputs.SERVE_FEEDBACK).is_file():
        feedback = root / stage_outputs.SERVE_FEEDBACK
    result = run_monitor(report_dir, since, until, bundle_dir=bundle_dir, config=config, feedback=feedback,
                         metrics_url=metrics_url, root=root)
    rep = result.report
    typer.echo(f"monitor: {rep['status'].upper()}: {rep['traffic']['requests']} request(s) from {rep['period']['start']} "
               f"to {rep['period']['end']}; {len(rep['alerts'])} threshold(s) crossed")
    for line in rep["alerts"]:
        typer.echo(f"  alert: {line}")
    typer.echo(f"report: {result.html_path} ({result.json_path.name} beside it)")
    raise typer.Exit(result.exit_code)


_TEAM_DIR = Annotated[Path | None, typer.Option("--dir", help="The stack's folder (default: .team in the project).")]


def _print_team_status(result: dict) -> None:
    if not result["services"]:
        typer.echo(f"team stack in {result['dir']}: nothing started")
        return
    for name, svc in result["services"].items():
        state = "running" if svc["running"] else "NOT RUNNING"
        typer.echo(f"{name:<13} pid {svc['pid']:<8} {state:<12} {svc['at']}")
    ray = result.get("ray")
    if ray and "error" in ray:
        typer.echo(f"ray nodes: {ray['error']}")
    elif ray:
        typer.echo(f"ray nodes ({sum(n['alive'] for n in ray['nodes'])} alive):")
        for n in ray["nodes"]:
            typer.echo(f"  {n['name']:<13} {'ALIVE' if n['alive'] else 'DEAD':<6} {n['node_id']}  {n['address']}")
    if result["env"]:
        typer.echo(f"env: . {result['env']}")


@team_app.command("up")
@handles_errors
def team_up(
    folder: _TEAM_DIR = None,
    host: Annotated[str, typer.Option(help="Address every service binds to.")] = "127.0.0.1",
    pg_port: Annotated[int, typer.Option("--pg-port", help="PostgreSQL's port.")] = 5433,
    s3_port: Annotated[int, typer.Option("--s3-port", help="The S3 emulator's port.")] = 9000,
    mlflow_port: Annotated[int, typer.Option("--mlflow-port", help="The MLflow server's port.")] = 5000,
    ray_port: Annotated[int, typer.Option("--ray-port", help="The Ray head's GCS port; the nodes use the "
                                                              "ports above it (docs/team.md).")] = 6380,
    ray_workers: Annotated[int, typer.Option("--ray-workers", help="Ray worker nodes besides the head.")] = 1,
    ray_cpus: Annotated[int, typer.Option("--ray-cpus", help="CPUs each Ray node offers.")] = 1,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Start only this part: 'tracking' (PostgreSQL, S3, MLflow) or 'ray' (head and "
                       "worker nodes); repeatable; default both.")] = None,
) -> None:
    """Start the stack (what is not running yet); the first `up` of a DIR fixes its ports.
    Then `. DIR/env` points MLflow, DVC, boto3 and Ray (`address: auto`) at it."""
    from lab.team import TeamSettings, up

    settings = TeamSettings(host=host, pg_port=pg_port, s3_port=s3_port, mlflow_port=mlflow_port,
                            ray_port=ray_port, ray_workers=ray_workers, ray_cpus=ray_cpus)
    _print_team_status(up(folder, settings, only))


@team_app.command("down")
@handles_errors
def team_down(folder: _TEAM_DIR = None) -> None:
    """Stop every process `up` started (the S3 buckets are saved to DIR/s3 first); the data stays."""
    from lab.team import down

    for proc in down(folder):
        typer.echo(f"stopped {proc['name']} (pid {proc['pid']})")


@team_app.command("status")
@handles_errors
def team_status(folder: _TEAM_DIR = None,
                as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Each service's PID, whether it runs, and its address; the Ray cluster's nodes as its head
    knows them (exit code 1 when a service or a Ray node is down)."""
    from lab.team import status

    result = status(folder)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_team_status(result)
    ray = result.get("ray")
    if any(not s["running"] for s in result["services"].values()) or (ray and "error" in ray) or any(
            "node_id" in s and s["node_id"] is None for s in result["services"].values()):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
