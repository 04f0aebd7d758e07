"""Scrape a vLLM server's ``/metrics`` (Prometheus text format) into the numbers a serving study reads.

vLLM exposes, among others, ``vllm:time_to_first_token_seconds`` (histogram),
``vllm:prompt_tokens_total`` / ``vllm:generation_tokens_total`` (counters),
``vllm:num_requests_running`` / ``vllm:num_requests_waiting`` and ``vllm:kv_cache_usage_perc``
(gauges; a fraction 0..1 despite the name, ``vllm:gpu_cache_usage_perc`` before vLLM 0.10).
Counters and histograms are cumulative since server start: diff two scrapes to measure a run.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from typing import Any

from lab.errors import LabError


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample, read by prometheus_client's parser (the reference
    implementation of the text format, a dependency of lab for the gateway's own ``/metrics``)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text) for s in family.samples]


def parse_prometheus(text: str) -> dict[str, float]:
    """Every sample summed over its label sets (e.g. several engines or models).

    Histogram buckets and summary quantiles (samples with an ``le`` or ``quantile`` label) and
    ``_created`` timestamps are left out: summing them means nothing.
    """
    return _totals(_samples(text))


def _totals(samples: list[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for name, labels, value in samples:
        if "le" in labels or "quantile" in labels or name.endswith("_created") or math.isnan(value):
            continue
        totals[name] = totals.get(name, 0.0) + value
    return totals


def _gauge_max(samples: list[tuple[str, dict[str, str], float]], *names: str) -> float | None:
    values = [v for n, _, v in samples if n in names and not math.isnan(v)]
    return max(values) if values else None


def metrics_url(base_url: str) -> str:
    """``http://host:8000/v1`` (or ``...v1#model``) -> ``http://host:8000/metrics``."""
    root = base_url.partition("#")[0].rstrip("/")
    root = root.removesuffix("/v1")
    return f"{root}/metrics"


def summarize(text: str) -> dict[str, Any]:
    """The numbers a serving study reads, from Prometheus text; None where the server lacks a metric."""
    samples = _samples(text)
    s = _totals(samples)

    def get(*names: str) -> float | None:
        return next((s[n] for n in names if n in s), None)

    def mean(prefix: str) -> float | None:
        total, count = s.get(f"{prefix}_sum"), s.get(f"{prefix}_count")
        return total / count if total is not None and count else None

    return {
        "ttft_sum_s": get("vllm:time_to_first_token_seconds_sum"),
        "ttft_count": get("vllm:time_to_first_token_seconds_count"),
        "ttft_mean_s": mean("vllm:time_to_first_token_seconds"),
        "e2e_latency_mean_s": mean("vllm:e2e_request_latency_seconds"),
        "inter_token_latency_mean_s": mean("vllm:inter_token_latency_seconds")
        or mean("vllm:time_per_output_token_seconds"),
        "prompt_tokens": get("vllm:prompt_tokens_total"),
        "generation_tokens": get("vllm:generation_tokens_total"),
        "num_requests_running": get("vllm:num_requests_running"),
        "num_requests_waiting": get("vllm:num_requests_waiting"),
        # A fraction per engine: the busiest engine's, not a sum.
        "kv_cache_usage": _gauge_max(samples, "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        "samples": s,
    }


def server_metrics(base_url: str, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """Scrape ``<server>/metrics`` of a vLLM server and :func:`summarize` it.

    Parameters
    ----------
    base_url : str
        The OpenAI base URL (``http://host:8000/v1``) or the server root.

    Raises
    ------
    LabError
        The server cannot be reached or answers with an error; the message names the URL.
    """
    url = metrics_url(base_url)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            text = resp.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        raise LabError(f"{url} answered HTTP {e.code}; is this a vLLM server?") from e
    except (urllib.error.URLError, OSError) as e:
        raise LabError(f"Could not read metrics from {url}: {e}. Is the vLLM server running?") from e
    return summarize(text)
