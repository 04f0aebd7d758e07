"""The figures ``serve_load.py`` derives: percentiles, the gateway's stage breakdown from the
responses' ``lab.timings``, and what a burst added to a server's Prometheus histograms (each
guardrail check's cost, vLLM's own queue / prefill / decode means)."""

from __future__ import annotations

from typing import Any

#: vLLM's histograms whose mean over a burst the breakdowns give (vLLM name -> key)
VLLM_HISTOGRAMS = {"vllm:request_queue_time_seconds": "queue", "vllm:request_prefill_time_seconds": "prefill",
                   "vllm:request_decode_time_seconds": "decode", "vllm:time_to_first_token_seconds": "ttft",
                   "vllm:e2e_request_latency_seconds": "e2e"}


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def scrape(url: str | None) -> str | None:
    """The Prometheus text at ``url`` (None when there is none or it does not answer)."""
    import urllib.request

    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode("utf-8", "replace")
    except OSError:
        return None


def _histograms(text: str | None, name: str) -> dict[tuple[tuple[str, str], ...], list[float]]:
    """``{labels: [sum, count]}`` of the histogram ``name`` in a Prometheus text, one entry per label set."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[tuple[str, str], ...], list[float]] = {}
    if not text:
        return out
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            for suffix, i in (("_sum", 0), ("_count", 1)):
                if s.name == name + suffix:
                    key = tuple(sorted(s.labels.items()))
                    out.setdefault(key, [0.0, 0.0])[i] += float(s.value)
    return out


def _diff(before: str | None, after: str | None, name: str) -> dict[tuple[tuple[str, str], ...], list[float]]:
    """``{labels: [sum, count]}`` of histogram ``name`` observed between two scrapes."""
    b, a = _histograms(before, name), _histograms(after, name)
    return {k: [s - b.get(k, [0.0, 0.0])[0], c - b.get(k, [0.0, 0.0])[1]] for k, (s, c) in a.items()
            if c - b.get(k, [0.0, 0.0])[1] > 0}


def vllm_means(before: str | None, after: str | None) -> dict[str, float] | None:
    """vLLM's mean seconds per request over a burst (:data:`VLLM_HISTOGRAMS`), None without its /metrics."""
    if not before or not after:
        return None
    out = {}
    for name, key in VLLM_HISTOGRAMS.items():
        d = _diff(before, after, name)
        s, c = sum(v[0] for v in d.values()), sum(v[1] for v in d.values())
        if c:
            out[key] = s / c
    return out


def check_costs(before: str | None, after: str | None, requests: int) -> list[dict[str, Any]]:
    """Each guardrail check's cost over a burst, from ``lab_guardrail_check_duration_seconds``:
    ``check``, ``stage`` (side), ``calls``, ``calls_per_request``, ``mean_ms`` (per call),
    ``ms_per_request``; the costliest per request first."""
    rows = []
    for labels, (s, c) in _diff(before, after, "lab_guardrail_check_duration_seconds").items():
        d = dict(labels)
        rows.append({"check": d.get("check"), "stage": d.get("stage"), "calls": int(c),
                     "calls_per_request": c / requests, "mean_ms": 1000 * s / c, "ms_per_request": 1000 * s / requests})
    return sorted(rows, key=lambda r: -r["ms_per_request"])


def stage_breakdown(timings: list[dict[str, float]]) -> dict[str, Any]:
    """p50, p95 and mean seconds per stage over requests' ``lab.timings`` (a stage a request did not
    go through counts 0 for it), in :data:`lab.serve.stages.STAGES` order."""
    from lab.serve.stages import STAGES

    seen = {k for t in timings for k in t}
    order = [s for s in STAGES if s in seen] + sorted(seen - set(STAGES))
    out: dict[str, Any] = {"requests": len(timings)}
    for stage in order:
        xs = [float(t.get(stage, 0.0)) for t in timings]
        out[stage] = {"p50": pct(xs, 0.5), "p95": pct(xs, 0.95), "mean": sum(xs) / len(xs)}
    return out
