"""The gateway's Prometheus series.

Names follow the OpenTelemetry GenAI semantic conventions where one exists, translated to
Prometheus the usual way (dots to underscores, the unit as a suffix): ``gen_ai.server.time_to_first_token``
-> ``gen_ai_server_time_to_first_token_seconds``, ``gen_ai.client.token.usage`` ->
``gen_ai_client_token_usage`` (label ``gen_ai_token_type`` = ``input``/``output``). Series without a
convention are ``lab_``-prefixed. vLLM's own gauges (KV-cache usage, prefix-cache hit rate,
running/waiting requests) are re-exposed as ``lab_vllm_*`` by scraping the upstream's ``/metrics``
when it is scraped (:class:`VLLMCollector`).

prometheus_client is the reference implementation of the exposition format: no hand-written text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
_PER_TOKEN = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
_CHECK = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_STAGE = (0.0001, 0.0005, 0.001, 0.0025, *_LATENCY)


class GatewayMetrics:
    """Every series of the gateway on one registry (one per app, so tests do not share counters)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("lab_requests", "Gateway requests by route and HTTP status", ["route", "status"],
                                registry=r)
        self.errors = Counter("lab_errors", "Failed requests by error type", ["type"], registry=r)
        self.duration = Histogram("gen_ai_server_request_duration_seconds",
                                  "End-to-end latency of a chat completion (gen_ai.server.request.duration)",
                                  buckets=_LATENCY, registry=r)
        self.ttft = Histogram("gen_ai_server_time_to_first_token_seconds",
                              "Time from request to first output token (gen_ai.server.time_to_first_token)",
                              buckets=_LATENCY, registry=r)
        self.tpot = Histogram("gen_ai_server_time_per_output_token_seconds",
                              "Time per output token after the first (gen_ai.server.time_per_output_token)",
                              buckets=_PER_TOKEN, registry=r)
        self.tokens = Histogram("gen_ai_client_token_usage", "Tokens per request (gen_ai.client.token.usage)",
                                ["gen_ai_token_type"], buckets=_TOKENS, registry=r)
        self.in_flight = Gauge("lab_requests_in_flight", "Chat completions being served", registry=r)
        self.queue_depth = Gauge("lab_queue_depth", "Chat completions waiting for an upstream slot", registry=r)
        self.retrieval = Histogram("lab_retrieval_duration_seconds", "Retrieval latency per request",
                                   buckets=_LATENCY, registry=r)
        self.guardrails = Counter("lab_guardrail_decisions", "Guardrail decisions by check and action",
                                  ["check", "action"], registry=r)
        self.guardrail_seconds = Histogram("lab_guardrail_check_duration_seconds", "Time one guardrail check "
                                           "took on one text, by check and side (input, context, output)",
                                           ["check", "stage"], buckets=_CHECK, registry=r)
        self.stages = Histogram("lab_stage_duration_seconds", "Time a chat completion spent in each stage of the "
                                "gateway (lab.serve.stages: queue, thread_wait, input_checks, retrieval, "
                                "context_checks, prompt, upstream_ttft, decode, output_checks, other, total)",
                                ["stage"], buckets=_STAGE, registry=r)
        self.guardrail_passages = Counter("lab_guardrail_passages", "Retrieved passages by what the policy's "
                                          "context side did with them (keep, warn, neutralise, drop)", ["action"],
                                          registry=r)
        self.guardrail_exceptions = Counter("lab_guardrail_exceptions", "Guardrail decisions exempted by a policy "
                                            "exception, by exception, check and side",
                                            ["exception", "check", "stage"], registry=r)
        self.fallbacks = Counter("lab_fallbacks", "Requests answered by the fallback, by reason", ["reason"],
                                 registry=r)
        self.retries = Counter("lab_upstream_retries", "Upstream attempts retried", registry=r)
        self.feedback = Counter("lab_feedback", "User feedback by rating", ["rating"], registry=r)
        # online evaluation (lab.serve.online_eval)
        self.online_sampled = Counter("lab_online_eval_sampled", "Answered responses drawn into the online "
                                      "evaluation sample (judged or dropped)", registry=r)
        self.online_judged = Counter("lab_online_eval_judged", "Sampled responses every online judge has seen",
                                     registry=r)
        self.online_dropped = Counter("lab_online_eval_dropped", "Sampled responses dropped unjudged: the "
                                      "judges' queue was full (or the gateway was stopping)", registry=r)
        self.online_queue_depth = Gauge("lab_online_eval_queue_depth", "Sampled responses waiting for the "
                                        "online judges", registry=r)
        self.online_verdicts = Counter("lab_online_eval_verdicts", "Online verdicts given, passed or flagged "
                                       "(not the errors or the skipped), by judge", ["judge"], registry=r)
        self.online_flagged = Counter("lab_online_eval_flagged", "Online verdicts that failed the response, "
                                      "by judge", ["judge"], registry=r)
        self.online_errors = Counter("lab_online_eval_errors", "Online judges that raised or gave no verdict, "
                                     "by judge", ["judge"], registry=r)
        self.online_skipped = Counter("lab_online_eval_skipped", "Online judges with nothing to judge on a "
                                      "response (grounding without passages), by judge", ["judge"], registry=r)
        self.online_latency = Histogram("lab_online_eval_judge_duration_seconds", "Time one online judge took "
                                        "on one response, by judge", ["judge"], buckets=_LATENCY, registry=r)

    def add_gauges(self, name: str, doc: str, read: Callable[[], float | None]) -> None:
        """A gauge read at scrape time (e.g. the embedding store's hit rate); None leaves it out."""
        self.registry.register(_FnCollector(name, doc, read))


class _FnCollector:
    def __init__(self, name: str, doc: str, read: Callable[[], float | None]) -> None:
        self.name, self.doc, self.read = name, doc, read

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        value = self.read()
        if value is None:
            return []
        g = GaugeMetricFamily(self.name, self.doc)
        g.add_metric([], float(value))
        return [g]


#: vLLM series re-exposed (vLLM name -> lab name, help). Counters become ratios where vLLM gives two.
VLLM_GAUGES = {
    "vllm:kv_cache_usage_perc": ("lab_vllm_kv_cache_usage_ratio", "vLLM KV-cache usage (0..1)"),
    "vllm:num_requests_running": ("lab_vllm_requests_running", "vLLM requests running"),
    "vllm:num_requests_waiting": ("lab_vllm_requests_waiting", "vLLM requests waiting"),
}


class VLLMCollector:
    """Scrapes the upstream vLLM ``/metrics`` when the gateway is scraped and re-exposes its gauges
    and its prefix-cache hit rate (hits / queries, cumulative). A failed scrape gives
    ``lab_vllm_up 0`` instead of an error."""

    def __init__(self, metrics_url: str, timeout_s: float = 2.0) -> None:
        self.url, self.timeout_s = metrics_url, timeout_s

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        import urllib.request

        from lab.generate.vllm_metrics import parse_prometheus

        up = GaugeMetricFamily("lab_vllm_up", "1 when the upstream vLLM /metrics answered")
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as resp:
                samples = parse_prometheus(resp.read().decode("utf-8", "replace"))
        except OSError:
            up.add_metric([], 0.0)
            return [up]
        up.add_metric([], 1.0)
        out = [up]
        for src, (name, doc) in VLLM_GAUGES.items():
            if src in samples:
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], samples[src])
                out.append(g)
        hits, queries = samples.get("vllm:prefix_cache_hits_total"), samples.get("vllm:prefix_cache_queries_total")
        if hits is not None and queries:
            g = GaugeMetricFamily("lab_vllm_prefix_cache_hit_ratio", "vLLM prefix-cache hits / queries since start")
            g.add_metric([], hits / queries)
            out.append(g)
        return out
