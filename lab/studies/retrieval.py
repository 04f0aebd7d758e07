"""The retrieval study: one configuration (chunker × size × overlap × embedder × retriever) evaluated.

:func:`retrieval_trial` is the trial function of retrieval sweeps (``study: retrieval`` in an
``experiments/*.yaml``): it builds the retrieval set for the configuration's chunking, indexes it
with the configured retriever, ranks every query to ``max(ks)`` and scores hit rate, recall,
precision, MRR, nDCG and MAP at every k (one ranking gives every smaller k, so k is reported, not
searched). It also measures what a choice costs: index build time, query latency and index size.

Embeddings go through the shared content-addressed store. :func:`prepare_embeddings` embeds every
distinct text of a sweep once, in the driver, before any trial starts, so concurrent trials only
read vectors: the sweep computes each distinct embedding exactly once, and training, evaluation and
serving read the same vectors (no skew).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.retrieval.configured import DENSE, retriever_spec
from lab.retrieval.sets import build_dataset
from lab.stage import StagePaths, stage

FAMILIES = ("hit_rate", "recall", "precision", "mrr", "ndcg", "map")


def metric_names(ks: Sequence[int]) -> list[str]:
    """Every metric family at every k: ``hit_rate@1 ... map@20``."""
    return [f"{f}@{k}" for f in FAMILIES for k in ks]


_MODELS: dict[str, Any] = {}


def _embedder(config: dict[str, Any], store_dir: str | Path | None) -> Any:
    """The configuration's embedder bound to a store; the model is loaded once per process, so trials
    reusing a worker (and the re-embedding baseline) do not pay the load again."""
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder

    spec = config["embedder"]
    if spec not in _MODELS:
        _MODELS[spec] = make_embedder(spec)
    return CachedEmbedder(_MODELS[spec], EmbeddingStore(store_dir))


def evaluate_config(config: dict[str, Any], dataset: dict[str, Any], root: Path, *,
                    store_dir: str | Path | None = None, embed: Any = None,
                    return_per_query: bool = False) -> dict[str, Any]:
    """Evaluate one configuration; returns flat metrics (and the per-query table when asked)."""
    from lab.metrics.ir import aggregate, per_query
    from lab.retrieval import make_retriever

    ks = sorted({int(k) for k in config.get("ks", [1, 5, 10])})
    ds = build_dataset(dataset, config, root)
    needs_embed = config["retriever"] in DENSE
    if needs_embed and embed is None:
        embed = _embedder(config, store_dir)
    misses = (lambda: embed.store.stats.misses) if needs_embed else (lambda: 0)
    retriever = make_retriever(retriever_spec(config), embed=embed if needs_embed else None)
    ids, texts = ds.doc_texts()
    before = misses()
    t0 = time.perf_counter()
    retriever.index(ids, texts)
    build_s = time.perf_counter() - t0
    doc_computed, before = misses() - before, misses()
    qids = list(ds.qrels)
    t0 = time.perf_counter()
    ranked = retriever.search([ds.queries[q] for q in qids], max(ks))
    query_s = time.perf_counter() - t0
    query_computed = misses() - before
    run = {q: {doc: float(score) for doc, score in hits} for q, hits in zip(qids, ranked, strict=True)}
    table = per_query(ds.qrels, run, metric_names(ks))
    with tempfile.TemporaryDirectory() as tmp:
        index_bytes = sum(p.stat().st_size for p in Path(retriever.save(Path(tmp) / "r")).rglob("*")
                          if p.is_file())
    out: dict[str, Any] = {
        **aggregate(table),
        "n_queries": len(qids), "n_docs": len(ids),
        "build_s": round(build_s, 4), "query_ms": round(1000 * query_s / max(len(qids), 1), 4),
        "index_bytes": index_bytes,
        "embeddings_computed": doc_computed,          # document/chunk vectors this trial had to compute
        "query_embeddings_computed": query_computed,
    }
    if return_per_query:
        out["per_query"] = table
    return out


def retrieval_trial(config: dict[str, Any], *, dataset: dict[str, Any], root: str,
                    store_dir: str | None = None, cache: str = "shared", out_dir: str | None = None,
                    keep_per_query: bool = False) -> dict[str, float]:
    """Sweep trial: evaluate ``config`` and return its aggregate metrics.

    ``cache="none"`` embeds into a throw-away store (the baseline of re-embedding per configuration).
    With ``keep_per_query`` every metric is written per query to ``<out_dir>/per_query/<trial id>.json``
    (atomically, before the result), for confidence intervals and paired comparisons on any metric.
    """
    from lab.io import write_json
    from lab.sweep import trial_id

    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate_config(config, dataset, Path(root), store_dir=tmp if cache == "none" else store_dir,
                                 return_per_query=keep_per_query)
    table = result.pop("per_query", None)
    if keep_per_query and out_dir:
        write_json(Path(out_dir) / "per_query" / f"{trial_id(config)}.json",
                   {m: table[m].to_dict() for m in table.columns})
    return result


def prepare_embeddings(configs: Sequence[dict[str, Any]], dataset: dict[str, Any], root: Path, *,
                       store_dir: str | Path | None = None, progress: bool = True) -> dict[str, int]:
    """Embed every distinct document and query text the dense configurations will need, once.

    Returns ``embeddings_computed`` (document/chunk vectors computed), ``query_embeddings_computed``,
    ``distinct_chunks`` and ``distinct_queries`` (distinct (embedder, text) pairs) and ``datasets`` built.
    """
    seen: dict[tuple, Any] = {}
    texts_by_embedder: dict[str, set[str]] = {}
    queries_by_embedder: dict[str, set[str]] = {}
    chunks: set[tuple[str, str]] = set()
    for cfg in configs:
        if cfg["retriever"] not in DENSE:
            continue
        key = (cfg.get("chunker"), cfg.get("size"), cfg.get("overlap"))
        if key not in seen:
            seen[key] = build_dataset(dataset, cfg, root)
        ds = seen[key]
        _, docs = ds.doc_texts()
        texts_by_embedder.setdefault(cfg["embedder"], set()).update(docs)
        queries_by_embedder.setdefault(cfg["embedder"], set()).update(ds.queries[q] for q in ds.qrels)
        chunks.update((cfg["embedder"], t) for t in docs)
    from lab.embed import CachedEmbedder, EmbeddingStore, make_embedder

    computed, query_computed, distinct_queries = 0, 0, 0
    for spec, texts in texts_by_embedder.items():
        cached = CachedEmbedder(make_embedder(spec), EmbeddingStore(store_dir), progress=progress)
        cached(sorted(texts))
        computed += cached.store.stats.misses
        queries = queries_by_embedder[spec] - texts  # a query equal to a chunk text is already there
        cached(sorted(queries))
        query_computed += cached.store.stats.misses - computed
        distinct_queries += len(queries_by_embedder[spec])
    return {"embeddings_computed": computed, "query_embeddings_computed": query_computed,
            "distinct_chunks": len(chunks), "distinct_queries": distinct_queries, "datasets": len(seen)}


# --------------------------------------------------------------------------- the sweep stage


def code_id() -> str:
    """12 hex digits naming the code that decides a trial's result: every ``lab`` source file this
    module can run (its import closure, :func:`lab.imports.closure`), so a resumed sweep never
    mixes results computed by different code."""
    from lab.imports import code_id as closure_id

    return closure_id([__name__])


def sweep_configs(exp: Any) -> list[dict[str, Any]]:
    """An experiment's configurations, each carrying the dataset's and the code's identity: trials
    stored for another dataset (articles, query sample) or by other code are never reused."""
    from lab.sweep import expand

    data_id = hashlib.sha256(json.dumps(exp.dataset.as_written() if exp.dataset else {}, sort_keys=True).encode()).hexdigest()[:12]
    return [{**c, "dataset_id": data_id, "code_id": code_id()} for c in expand(exp)]


def config_label(config: dict[str, Any], keys: Sequence[str]) -> str:
    """``recursive/128/0/dense``: the searched values of a configuration, for tables and plots."""
    return "/".join(str(config.get(k)) for k in keys)


#: Costs a configuration is weighed against: index size and search latency per query.
PARETO_COSTS = ("index_bytes", "query_ms")


def pareto_front(df: Any, quality: str, costs: Sequence[str]) -> list[bool]:
    """Rows not dominated: no other row is at least as good on ``quality`` (higher) and every cost
    (lower) and strictly better on one."""
    q = df[quality].to_numpy()
    c = df[list(costs)].to_numpy()
    front = []
    for i in range(len(df)):
        dominated = ((q >= q[i]) & (c <= c[i]).all(axis=1) & ((q > q[i]) | (c < c[i]).any(axis=1))).any()
        front.append(not dominated)
    return front


def run_retrieval_sweep(cfg: Any, root: Path, *, store_dir: str | Path | None = None,
                        progress: bool = True) -> dict[str, Any]:
    """The ``retrieval_sweep`` stage: expand the experiment, embed once, run trials (resumably),
    pick the winner with a bootstrap CI and a paired comparison against the runner-up.

    Returns a dict with ``table`` (one row per trial), ``winner``, ``comparison``, ``prepare`` and
    ``sweep`` (what ran and what was resumed).
    """
    import functools

    import pandas as pd

    from lab.metrics.ir import parse_metric
    from lab.metrics.stats import bootstrap_ci, paired_comparison
    from lab.sweep import best, load_experiment, placement_counts, run_sweep

    exp = load_experiment(root / cfg.experiment)
    if exp.study != "retrieval":
        raise ConfigError(f"{cfg.experiment}: study {exp.study!r} is not 'retrieval'")
    if exp.dataset is None:
        raise ConfigError(f"{cfg.experiment}: no `dataset:`; a retrieval sweep needs one "
                          f"(kinds: squad_chunks, squad_paragraphs, chroma_excerpts, beir; see experiments/README.md)")
    family, _ = parse_metric(cfg.metric)
    mode = "max" if family.higher_is_better else "min"
    configs = sweep_configs(exp)
    ks = {int(k) for c in configs for k in c.get("ks", [1, 5, 10])}
    if int(cfg.metric.split("@")[1]) not in ks:
        raise ConfigError(f"params.yaml: retrieval_sweep.metric {cfg.metric!r} needs k in the experiment's ks "
                          f"{sorted(ks)}")
    out_dir = root / cfg.out_dir
    prepare = prepare_embeddings(configs, exp.dataset, root, store_dir=store_dir, progress=progress)
    trial = functools.partial(retrieval_trial, dataset=exp.dataset, root=str(root),
                              store_dir=str(store_dir) if store_dir else None, out_dir=str(out_dir),
                              keep_per_query=True)
    sweep = run_sweep(trial, configs, out_dir, metric=cfg.metric, mode=mode, backend=cfg.backend,
                      num_cpus=cfg.num_cpus, cpus_per_trial=cfg.cpus_per_trial,
                      memory_per_trial_gb=cfg.memory_per_trial_gb or None, address=cfg.address or None,
                      max_concurrent=cfg.max_concurrent, progress=progress)
    searched = list(exp.search.space)
    rows = []
    for r in sweep.results:
        rows.append({"trial_id": r["trial_id"], "config": config_label(r["config"], searched),
                     **{k: r["config"].get(k) for k in searched}, **r["metrics"]})
    table = pd.DataFrame(rows).sort_values(cfg.metric, ascending=(mode == "min")).reset_index(drop=True)
    # one front per pair of axes a plot shows, and the front over both costs at once (labelled so)
    for cost in PARETO_COSTS:
        table[f"pareto_{cost}"] = pareto_front(table, cfg.metric, [cost])
    table["pareto_all_costs"] = pareto_front(table, cfg.metric, list(PARETO_COSTS))

    def per_query(tid: str) -> pd.Series:
        data = json.loads((out_dir / "per_query" / f"{tid}.json").read_text(encoding="utf-8"))
        return pd.Series(data[cfg.metric]).sort_index()

    win = best(sweep.results, cfg.metric, mode)
    mean, low, high = bootstrap_ci(per_query(win["trial_id"]).to_numpy(), n_resamples=cfg.n_resamples)
    others = [r for r in sweep.results if r["trial_id"] != win["trial_id"]]
    comparison = None
    if others:
        runner_up = best(others, cfg.metric, mode)
        a, b = per_query(win["trial_id"]), per_query(runner_up["trial_id"])
        common = a.index.intersection(b.index)
        comparison = {"runner_up": config_label(runner_up["config"], searched),
                      "runner_up_trial_id": runner_up["trial_id"], "common_queries": len(common),
                      **paired_comparison(a[common].to_numpy(), b[common].to_numpy(),
                                          n_resamples=max(cfg.n_resamples, 1000))}
    winner = {"metric": cfg.metric, "mode": mode, "value": win["metrics"][cfg.metric],
              "ci95": [low, high], "ci_mean": mean, "trial_id": win["trial_id"],
              "label": config_label(win["config"], searched), "config": win["config"],
              "metrics": {k: v for k, v in win["metrics"].items() if "@" in k},
              "experiment": {"file": cfg.experiment, "name": exp.name, "version": exp.version,
                             "dataset": exp.dataset.as_written() if exp.dataset else {}}}
    return {"table": table, "winner": winner, "comparison": comparison, "prepare": prepare,
            "sweep": {"configs": len(configs), "ran": sweep.ran, "resumed": sweep.skipped, "wall_s": sweep.wall_s,
                      "placement": placement_counts(sweep.results)},
            "results": sweep.results, "searched": searched}


@dataclass
class SweepResult:
    """The sweep's outcome: one row per configuration, the winner with its CI and its paired
    comparison against the runner-up, and what this run computed and resumed."""

    outcome: dict[str, Any]
    metric: str

    @property
    def table(self) -> Any:
        return self.outcome["table"]

    @property
    def winner(self) -> dict[str, Any]:
        return self.outcome["winner"]

    def metrics(self) -> dict[str, float]:
        lo, hi = self.winner["ci95"]
        return ({"winner." + k: v for k, v in self.winner["metrics"].items()}
                | {"winner.ci95_low": lo, "winner.ci95_high": hi, "configs": len(self.table)})

    def finding(self) -> str:
        return summary(self.outcome, self.metric)

    def hit_rate_at_k(self) -> Any:
        """(config, k, hit_rate) per configuration and k: the data of the hit-rate-at-k plot."""
        table = self.table
        ks = sorted({int(c.split("@")[1]) for c in table.columns if c.startswith("hit_rate@")})
        long = table.melt(id_vars=["config"], value_vars=[f"hit_rate@{k}" for k in ks], var_name="metric",
                          value_name="hit_rate")
        long["k"] = long.metric.str.split("@").str[1].astype(int)
        return long[["config", "k", "hit_rate"]]

    def write(self, out_dir: Path) -> None:
        """``winner.json`` (:mod:`lab.handoff.winner`, read by later stages), ``results.csv``,
        ``metrics.json``, the hit-rate-at-k plot data and the plots."""
        from lab import viz
        from lab.handoff.winner import write_winner
        from lab.io import write_csv, write_json

        out_dir = Path(out_dir)
        table, metric = self.table, self.metric
        write_winner(out_dir / "winner.json", {**self.winner, "comparison": self.outcome["comparison"]})
        write_csv(out_dir / "results.csv", table.drop(columns=["trial_id"]).round(4))
        write_json(out_dir / "metrics.json", self.metrics())
        long = self.hit_rate_at_k()
        write_csv(out_dir / "hit_rate_at_k.csv", long)
        fig = viz.lines_by_group(long, "k", "hit_rate", "config", title="Hit rate at k per configuration",
                                 xlabel="k", ylabel="hit rate", highlight=self.winner["label"])
        viz.save(fig, out_dir / "plots" / "hit_rate_vs_k.png")
        ring = {"also": "pareto_all_costs", "also_label": "Pareto front over size and latency together"}
        fig = viz.pareto_scatter(table, "index_bytes", metric, "pareto_index_bytes", "config", log_x=True,
                                 title=f"{metric} vs index size", xlabel="index size (bytes)", ylabel=metric, **ring)
        viz.save(fig, out_dir / "plots" / "quality_vs_index_size.png")
        fig = viz.pareto_scatter(table, "query_ms", metric, "pareto_query_ms", "config",
                                 title=f"{metric} vs query latency", xlabel="search ms per query (query vectors "
                                 "from the store)", ylabel=metric, **ring)
        viz.save(fig, out_dir / "plots" / "quality_vs_latency.png")

    def report_sections(self, out_dir: Path) -> list[tuple[str, Any]]:
        table, metric, o = self.table, self.metric, self.outcome
        ks = sorted({int(c.split("@")[1]) for c in table.columns if c.startswith("hit_rate@")})
        show = ["config", *[f"hit_rate@{k}" for k in ks], "mrr@10", "ndcg@10", "recall@10", "n_docs", "n_queries",
                "index_bytes", "query_ms", "build_s", "pareto_index_bytes", "pareto_query_ms", "pareto_all_costs"]
        front = table[table.pareto_index_bytes | table.pareto_query_ms][
            ["config", metric, "index_bytes", "query_ms", "pareto_index_bytes", "pareto_query_ms", "pareto_all_costs"]]
        return [
            ("Every configuration", table[[c for c in show if c in table.columns]].round(3)),
            ("Hit rate at k", out_dir / "plots" / "hit_rate_vs_k.png"),
            (f"{metric} vs index size", out_dir / "plots" / "quality_vs_index_size.png"),
            (f"{metric} vs query latency", out_dir / "plots" / "quality_vs_latency.png"),
            ("Pareto fronts", front),
            ("This run", f"{o['sweep']['configs']} configurations: {o['sweep']['ran']} run now, "
                         f"{o['sweep']['resumed']} resumed from disk. Embedded before the trials: "
                         f"{o['prepare']['embeddings_computed']} chunk vectors for "
                         f"{o['prepare']['distinct_chunks']} distinct chunk texts, and "
                         f"{o['prepare']['query_embeddings_computed']} question vectors."
                         + _placement_sentence(o["sweep"].get("placement") or {})),
        ]

    def log_runs(self) -> list[str]:
        """One MLflow child run per trial (:func:`log_trial_runs`)."""
        return log_trial_runs(self.outcome["results"], self.outcome["searched"])


@stage("retrieval_sweep")
def run(cfg: Any, paths: StagePaths, *, store_dir: str | Path | None = None, progress: bool = True) -> SweepResult:
    """The retrieval sweep of ``cfg`` (see :func:`run_retrieval_sweep`)."""
    return SweepResult(run_retrieval_sweep(cfg, paths.root, store_dir=store_dir, progress=progress), cfg.metric)


def _placement_sentence(counts: dict[str, int]) -> str:
    """The report's sentence on how many trials each node ran, when they ran on more than one (a cluster)."""
    if len(counts) < 2:
        return ""
    return " Trials per node: " + ", ".join(f"{node} {n}" for node, n in counts.items()) + "."


def log_trial_runs(results: Sequence[dict[str, Any]], searched: Sequence[str]) -> list[str]:
    """One MLflow child run per trial under the stage's run."""
    from lab.tracking import child_run

    ids = []
    for r in results:
        metrics = {k: float(v) for k, v in r["metrics"].items() if isinstance(v, int | float)}
        ids.append(child_run(config_label(r["config"], searched), params=r["config"], metrics=metrics,
                             tags={"lab.stage": "retrieval_sweep", "lab.trial_id": r["trial_id"]}))
    return [i for i in ids if i]


def summary(outcome: dict[str, Any], metric: str) -> str:
    """A few sentences of Markdown for the report: the winner with its CI, how it compares with the
    runner-up (whether the difference is beyond chance), what ran and what was resumed, and the
    configurations on the Pareto front of quality against each cost."""
    w, c, table = outcome["winner"], outcome["comparison"], outcome["table"]
    lo, hi = w["ci95"]
    row = table.loc[table.trial_id == w["trial_id"]].iloc[0]
    text = [f"Of {outcome['sweep']['configs']} configurations, **{w['label']}** has the best {metric}: "
            f"{w['value']:.3f} (95% bootstrap CI {lo:.3f}–{hi:.3f}, {int(row['n_queries'])} queries)."]
    if c:
        beyond = c["ci_low"] > 0 or c["ci_high"] < 0
        text.append(f"Against the runner-up {c['runner_up']} the paired difference is {c['mean_diff']:+.3f} "
                    f"(CI {c['ci_low']:+.3f} to {c['ci_high']:+.3f}, p = {c['p_value']:.3g}): "
                    + ("a difference beyond chance." if beyond else "the two are indistinguishable on this data."))
    for cost, what in (("index_bytes", "index size"), ("query_ms", "query latency")):
        front = table[table[f"pareto_{cost}"]]
        text.append(f"Pareto front of {metric} against {what}: {', '.join(front['config'])}.")
    text.append(f"This run evaluated {outcome['sweep']['ran']} configurations and resumed "
                f"{outcome['sweep']['resumed']} from disk.")
    return " ".join(text)
