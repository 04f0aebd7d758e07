"""The ``redteam`` stage and ``lab redteam``: attack the served bundle through the gateway.

1. Attacks are generated (:func:`lab.redteam.attacks.generate`: ``per_category`` per category,
   ``max_attacks`` in all, under ``seed``), with the documents they need planted.
2. The target is opened (:mod:`lab.redteam.target`): a bundle folder is served in process with its
   policy on and off, the planted documents in its index; a URL is a running gateway on loopback.
3. Every probe (the attacks, then the benign questions spread among them) goes to every arm
   (:func:`lab.redteam.runner.run_probes`), one request at a time, within ``timeout_s``.
4. Each exchange is judged (:func:`lab.redteam.report.judge_exchanges`): the rules, and the judge
   where it decides (:mod:`lab.redteam.judge`, its calibrated agreement stated).

The stage runs on a CPU in a few minutes with the defaults (about 150 requests through the bundle's
model in process, the policy's classifiers and the judge; see ``docs/redteam.md``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.aio import run_sync
from lab.errors import ConfigError
from lab.redteam.attacks import NEEDS_DOCUMENTS, generate
from lab.redteam.report import RedteamReport, judge_exchanges
from lab.redteam.runner import Probe, run_probes
from lab.stage import StagePaths, stage


def interleave(attacks: Sequence[Probe], benign: Sequence[Probe]) -> list[Probe]:
    """The attacks with the benign probes spread evenly among them (so a run the time budget ends
    early still measured some of each)."""
    keyed = [((i + 0.5) / len(attacks), 0, p) for i, p in enumerate(attacks)]
    keyed += [((j + 0.5) / len(benign), 1, p) for j, p in enumerate(benign)]
    return [p for _, _, p in sorted(keyed, key=lambda t: (t[0], t[1]))]


def _corpus_texts(bundle_dir: Path) -> list[str]:
    """The bundle's passage texts (the canaries must not occur in them); none for a missing file."""
    from lab.io import iter_jsonl

    f = bundle_dir / "passages.jsonl"
    return [str(row.record.get("text", "")) for row in iter_jsonl(f)] if f.is_file() else []


def redteam(cfg: Any, root: Path, *, progress: bool = True, upstream: Any = None, judge: Any = None) -> RedteamReport:
    """Run the red team ``cfg`` (a :class:`lab.config.RedteamConfig`) describes; paths relative to ``root``.

    ``upstream``: an upstream object to serve the bundle with instead of ``cfg.upstream`` (tests);
    ``judge``: a judge object instead of the one ``cfg.judge`` names (stated "not calibrated").

    Raises
    ------
    ConfigError
        Nothing left to attack (a URL target and only the categories that need planted documents),
        or a judge that cannot be loaded.
    DataError, BundleError
        A missing or unreadable bundle or benign file (the message names it).
    """
    from lab.redteam import seeds
    from lab.redteam.judge import JudgeInfo, load_judge
    from lab.redteam.target import bundle_target, read_benign, url_target

    t0 = time.perf_counter()
    url = cfg.target_is_url()
    skipped = {c: "it needs documents planted in the served corpus, so a bundle folder as the target, not a URL"
               for c in cfg.categories if url and c in NEEDS_DOCUMENTS}
    categories = [c for c in cfg.categories if c not in skipped]
    if not categories:
        raise ConfigError(f"redteam.categories {list(cfg.categories)}: every one needs a bundle folder as the "
                          "target (documents are planted in its index); add other categories or name a bundle")
    if judge is not None:
        judge_obj, info = judge, JudgeInfo(getattr(judge, "name", type(judge).__name__))
    else:
        judge_obj, info = load_judge(cfg.judge, cfg.resolve(cfg.judge_dir, root))
    extra = read_benign(cfg.resolve(cfg.benign_file, root), cfg.benign) if cfg.benign_file else []
    bundle_dir = None if url else cfg.resolve(cfg.target, root)
    attacks = generate(seed=cfg.seed, per_category=cfg.per_category, max_attacks=cfg.max_attacks,
                       categories=categories, mutations=cfg.mutations,
                       avoid=_corpus_texts(bundle_dir) if bundle_dir is not None else ())
    if bundle_dir is not None:
        target = bundle_target(bundle_dir, attacks.documents, upstream=upstream or cfg.upstream, root=root,
                               request_timeout_s=cfg.request_timeout_s, benign=cfg.benign, seed=cfg.seed)
    else:
        target = url_target(cfg.target, off_url=cfg.off_target, request_timeout_s=cfg.request_timeout_s)
        if not extra:
            target.benign = [Probe(f"benign-{i:03d}", "benign", (q,))
                             for i, q in enumerate(seeds.EVERYDAY_QUESTIONS[:cfg.benign])]
    probes = interleave([Probe.of_attack(a) for a in attacks.attacks], [*target.benign, *extra])
    budget = max(0.0, cfg.timeout_s - (time.perf_counter() - t0))

    async def go() -> tuple[list[Any], list[str]]:
        try:
            return await run_probes(target.arms, probes, budget_s=budget, request_timeout_s=cfg.request_timeout_s,
                                    progress=progress)
        finally:
            await target.aclose()

    try:
        exchanges, not_run = run_sync(go())
    finally:
        target.stop()
    table = judge_exchanges(exchanges, judge_obj)
    return RedteamReport(table, attacks, [a.name for a in target.arms], info,
                         target={"kind": target.kind, "name": target.name, "info": target.info, "notes": target.notes},
                         not_run=not_run, skipped_categories=skipped, seconds=time.perf_counter() - t0,
                         settings=cfg.model_dump(mode="json"))


@stage("redteam")
def run(cfg: Any, paths: StagePaths, *, progress: bool = True, upstream: Any = None, judge: Any = None) -> RedteamReport:
    """The ``redteam`` stage: :func:`redteam` on the section's config."""
    return redteam(cfg, paths.root, progress=progress, upstream=upstream, judge=judge)


def cli_config(overrides: Mapping[str, Any], params_file: Path | None = None) -> Any:
    """The config ``lab redteam`` runs: the ``redteam`` section of ``params_file`` when it has one
    (else the section's defaults), with the command line's options over it, validated as params.yaml is.

    Raises
    ------
    ConfigError
        A bad option value (the message names the key and what is allowed).
    """
    from pydantic import ValidationError

    from lab.config.base import format_validation
    from lab.config.redteam import RedteamConfig

    base: dict[str, Any] = {}
    if params_file is not None and params_file.is_file():
        from lab.config import read_params

        section = read_params(params_file).get("redteam")
        if isinstance(section, dict):
            base = dict(section)
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RedteamConfig.model_validate(base)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, "redteam", RedteamConfig, "lab redteam (options over params.yaml)")) \
            from None
