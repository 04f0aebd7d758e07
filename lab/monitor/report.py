"""The health report of a period: figures from the traced requests, drift checks against the
offline baseline, operational limits, and the verdict (``status``: ``alert`` when any check crossed
its threshold).

Every check is a record ``{name, test, threshold, status, ...figures}`` whose ``status`` is ``ok``,
``alert`` or ``skipped`` (with the ``reason``): the report says what was tested, against which line,
and why a check could not run (too few requests, no relevance threshold, no embedder).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from lab.monitor.baseline import Baseline
from lab.monitor.config import MonitorConfig
from lab.monitor.stats import ks_test, mmd_test, percentiles, rate, share_test
from lab.monitor.traces import STAGE_SPANS, Request
from lab.versioned import header

REPORT_FORMAT = "lab.monitor"
REPORT_VERSION = 1


def _check(name: str, test: str, threshold: str, crossed: bool | None, reason: str | None = None,
           **figures: Any) -> dict[str, Any]:
    status = "skipped" if crossed is None else ("alert" if crossed else "ok")
    out = {"name": name, "test": test, "threshold": threshold, "status": status, **figures}
    if reason:
        out["reason"] = reason
    return out


# --------------------------------------------------------------------------- traffic
def traffic(rows: Sequence[Request], cfg: MonitorConfig) -> dict[str, Any]:
    """Volume, errors, fallbacks, blocked inputs, latency percentiles (whole request and per span)."""
    c = cfg.confidence
    qs = sorted({*cfg.latency_percentiles, 95.0})   # p95 always: the latency limit reads it
    generated = [r for r in rows if r.generated]
    return {
        "requests": len(rows),
        "streamed": sum(r.streamed for r in rows),
        "errors": rate(sum(not r.ok for r in rows), len(rows), c),
        "error_types": dict(Counter((r.error or "error")[:120] for r in rows if not r.ok).most_common(10)),
        "blocked": rate(sum(r.blocked for r in rows), len(rows), c),
        "fallbacks": rate(sum(r.fallback is not None for r in generated), len(generated), c),
        "fallback_reasons": dict(Counter(r.fallback for r in generated if r.fallback is not None)),
        "generated_by": dict(Counter(r.generated_by for r in generated if r.generated_by)),
        "latency_ms": {"request": percentiles([r.duration_ms for r in rows], qs),
                       **{s: percentiles([r.stage_ms[s] for r in rows if s in r.stage_ms], qs)
                          for s in STAGE_SPANS if any(s in r.stage_ms for r in rows)}},
    }


def guardrails(rows: Sequence[Request], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per side and check: the requests it ran on, the share where it fired (any piece or passage),
    and its actions counted per decision."""
    ran: dict[tuple[str, str], int] = Counter()
    fired: dict[tuple[str, str], int] = Counter()
    actions: dict[tuple[str, str], Counter] = {}
    for r in rows:
        seen: dict[tuple[str, str], bool] = {}
        for g in r.guardrails:
            key = (g.stage, g.check)
            seen[key] = seen.get(key, False) or g.fired
            actions.setdefault(key, Counter())[g.action] += 1
        for key, f in seen.items():
            ran[key] += 1
            fired[key] += f
    return [{"stage": s, "check": chk, "fired": rate(fired[(s, chk)], ran[(s, chk)], confidence),
             "actions": dict(actions[(s, chk)])} for s, chk in sorted(ran)]


def judges(rows: Sequence[Request], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per judge (assessment name): verdicts, judge errors, and the share flagged with its interval."""
    names = sorted({n for r in rows for n in r.judges})
    out = []
    for n in names:
        verdicts = [r.judges[n] for r in rows if n in r.judges]
        ok = [v for v in verdicts if v is not None]
        out.append({"judge": n, "judged": len(ok), "errors": len(verdicts) - len(ok),
                    "sampled": rate(len(verdicts), len(rows), confidence),
                    "flagged": rate(sum(ok), len(ok), confidence)})
    return out


def thumbs(rows: Sequence[Request], confidence: float = 0.95) -> dict[str, Any]:
    rated = [r.thumbs for r in rows if r.thumbs is not None]
    return {"rated": rate(len(rated), len(rows), confidence), "up": rate(sum(rated), len(rated), confidence),
            "down": rate(len(rated) - sum(rated), len(rated), confidence)}


# --------------------------------------------------------------------------- drift
def drift(rows: Sequence[Request], base: Baseline, cfg: MonitorConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The three drift checks on the requests that reached retrieval, and the arrays behind them
    (``online_top``, ``online_questions``, ``online_embeddings``) for plots."""
    d = cfg.drift
    served = [r for r in rows if r.retrieved and r.question]
    # a question the retriever found nothing for scores -inf: below every threshold (offline likewise)
    online = np.array([r.top_score if r.scores else -np.inf for r in served], dtype=float)
    arrays: dict[str, Any] = {"online_top": online, "online_questions": [r.question for r in served],
                              "online_embeddings": None}
    n, m = len(served), len(base.top_scores)
    few = f"{n} retrieved question(s) in the period; the drift checks need drift.min_requests={d.min_requests}"
    checks = []
    # retrieval score distribution
    test, line = "two-sample Kolmogorov-Smirnov on the top-1 retrieval score", \
        f"p < {d.alpha:g} and D >= {d.ks_min_statistic:g}"
    if n < d.min_requests:
        checks.append(_check("retrieval_scores", test, line, None, few, n_online=n, n_offline=m))
    else:
        ks = ks_test(online, base.top_scores)
        checks.append(_check("retrieval_scores", test, line,
                             ks["p_value"] < d.alpha and ks["statistic"] >= d.ks_min_statistic,
                             statistic=ks["statistic"], p_value=ks["p_value"], n_online=n, n_offline=m,
                             online_median=_finite(np.median(online)), offline_median=_finite(np.median(base.top_scores))))
    # questions with no relevant source above the threshold
    test = "one-sided Fisher exact test: online share of questions whose top score is below the relevance threshold > offline share"
    line = f"p < {d.alpha:g} and online share - offline share >= {d.min_share_increase:g}"
    if base.threshold is None or n < d.min_requests:
        checks.append(_check("no_relevant_source", test, line, None,
                             few if base.threshold is not None else base.threshold_from, n_online=n, n_offline=m))
    else:
        k_on, k_off = int((online < base.threshold).sum()), int((base.top_scores < base.threshold).sum())
        st = share_test(k_on, n, k_off, m)
        checks.append(_check("no_relevant_source", test, line,
                             st["p_value"] < d.alpha and st["difference"] >= d.min_share_increase,
                             statistic=st["difference"], p_value=st["p_value"], relevance_threshold=base.threshold,
                             threshold_from=base.threshold_from, online=rate(k_on, n, cfg.confidence),
                             offline=rate(k_off, m, cfg.confidence)))
    # question-embedding shift
    test = (f"MMD^2 (Gaussian kernel, median-distance bandwidth) between offline and online question embeddings, "
            f"permutation test ({d.permutations} permutations)")
    line = f"p < {d.alpha:g} and MMD^2 >= {d.mmd_min:g}"
    if base.embed is None or base.embeddings is None or n < d.min_requests:
        why = few if base.embed is not None else ("the bundle's retriever embeds nothing (BM25); "
                                                  "set drift.embedder to test the questions' embeddings")
        checks.append(_check("question_embeddings", test, line, None, why, n_online=n, n_offline=m))
    else:
        questions = arrays["online_questions"]
        if n > d.max_questions:
            pick = np.random.default_rng(d.seed).choice(n, d.max_questions, replace=False)
            questions = [questions[i] for i in sorted(pick)]
        emb = np.asarray(base.embed(questions), dtype=float)
        arrays["online_embeddings"] = emb
        mmd = mmd_test(base.embeddings, emb, permutations=d.permutations, seed=d.seed)
        checks.append(_check("question_embeddings", test, line,
                             mmd["p_value"] < d.alpha and mmd["statistic"] >= d.mmd_min,
                             statistic=mmd["statistic"], p_value=mmd["p_value"], bandwidth=mmd["bandwidth"],
                             centroid_cosine=_cosine(base.embeddings.mean(0), emb.mean(0)),
                             n_online=len(questions), n_offline=m, embedder=base.embedder))
    return checks, arrays


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den else 0.0


# --------------------------------------------------------------------------- limits
def limits(report: dict[str, Any], cfg: MonitorConfig) -> list[dict[str, Any]]:
    """The operational limits of ``cfg.limits`` checked on the report's figures."""
    lim, conf = cfg.limits, f"{cfg.confidence:.0%}"
    out = []

    def upper(name: str, what: str, r: dict[str, Any], key: str) -> None:
        limit = getattr(lim, key)
        line = f"Wilson {conf} lower bound > {limit:g}" if limit is not None else f"none (limits.{key} unset)"
        crossed = None if limit is None or not r["n"] else r["ci"][0] > limit
        reason = None if crossed is not None else ("no limit set" if limit is None else "nothing to count")
        out.append(_check(name, f"{what} (k of n with its Wilson {conf} interval)", line, crossed, reason,
                          **{k: r[k] for k in ("k", "n", "rate", "ci")}))

    t = report["traffic"]
    upper("error_rate", "share of traced requests that ended in error", t["errors"], "max_error_rate")
    upper("fallback_rate", "share of generated answers the fallback gave", t["fallbacks"], "max_fallback_rate")
    for j in report["judges"]:
        upper(f"judge_flags:{j['judge']}", f"share of verdicts of {j['judge']} that flag the answer", j["flagged"],
              "max_judge_flag_rate")
    upper("thumbs_down_rate", "share of rated answers rated down", report["thumbs"]["down"], "max_thumbs_down_rate")
    if lim.max_p95_latency_ms is not None:
        p95 = t["latency_ms"]["request"]["p95"]
        out.append(_check("p95_latency", "95th percentile of the request duration (ms)",
                          f"> {lim.max_p95_latency_ms:g} ms", None if p95 is None else p95 > lim.max_p95_latency_ms,
                          None if p95 is not None else "no requests", value=p95))
    if lim.min_volume is not None:
        out.append(_check("volume", "traced requests in the period", f"< {lim.min_volume}",
                          t["requests"] < lim.min_volume, value=t["requests"]))
    return out


# --------------------------------------------------------------------------- the report
def build_report(rows: Sequence[Request], base: Baseline, cfg: MonitorConfig, start: datetime, end: datetime, *,
                 other_bundles: int = 0, capped: bool = False, metrics: dict[str, Any] | None = None,
                 created: datetime | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report (JSON-ready) and the arrays behind its drift checks (for plots)."""
    report: dict[str, Any] = {
        **header(REPORT_FORMAT, REPORT_VERSION),
        "created": (created or datetime.now(start.tzinfo)).isoformat(timespec="seconds"),
        "period": {"start": start.isoformat(timespec="seconds"), "end": end.isoformat(timespec="seconds"),
                   "hours": round((end - start).total_seconds() / 3600, 3)},
        "bundle": {**base.summary(), "traces_of_other_bundles": other_bundles},
        "traffic": {**traffic(rows, cfg), "capped_at_max_traces": capped},
        "guardrails": guardrails(rows, cfg.confidence),
        "judges": judges(rows, cfg.confidence),
        "thumbs": thumbs(rows, cfg.confidence),
    }
    report["drift"], arrays = drift(rows, base, cfg)
    report["limits"] = limits(report, cfg)
    if metrics is not None:
        report["metrics"] = metrics
        if "error" in metrics:
            report["limits"].append(_check("metrics_scrape", "the gateway's /metrics answered", "no answer", True,
                                           value=metrics["error"]))
    report["alerts"] = [_alert_line(c) for c in report["drift"] + report["limits"] if c["status"] == "alert"]
    report["status"] = "alert" if report["alerts"] else "ok"
    report["config"] = cfg.model_dump(mode="json")
    return report, arrays


def _alert_line(c: dict[str, Any]) -> str:
    figures = ", ".join(f"{k}={_fmt(c[k])}" for k in ("statistic", "p_value", "rate", "value") if c.get(k) is not None)
    return f"{c['name']}: {figures} (threshold: {c['threshold']})"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
