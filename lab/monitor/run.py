"""``lab monitor``: read the period's traces, compare them with the bundle's offline evaluation, write
``report.json`` and ``report.html`` into the report folder (each atomically), and say whether a
threshold was crossed (:attr:`MonitorResult.exit_code`: 1, so a scheduler can alert).

Traces of another bundle (their ``lab.bundle_id`` differs from the bundle's) are left out and
counted; traces without one (written before the gateway recorded it) are kept. The gateway's
Prometheus counters (``--metrics-url``) are cumulative since the gateway started, so they are shown
as a snapshot beside the period's figures, not mixed into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.monitor.baseline import Baseline, offline_baseline
from lab.monitor.config import MonitorConfig, load_config, period
from lab.monitor.traces import Request, read_requests, thumbs_from_file

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


@dataclass
class MonitorResult:
    """A report written: its record, the arrays behind the drift checks, the inputs, the files."""

    report: dict[str, Any]
    arrays: dict[str, Any]
    baseline: Baseline
    requests: list[Request]
    json_path: Path
    html_path: Path

    @property
    def exit_code(self) -> int:
        """1 when a threshold was crossed, else 0."""
        return 1 if self.report["status"] == "alert" else 0


def scrape_counters(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """Every counter of a Prometheus ``/metrics`` page (``{url, scraped_at, counters: {name: [{labels,
    value}]}}``, parsed by prometheus_client), or ``{url, error}`` when it does not answer."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            text = resp.read().decode("utf-8", "replace")
    except OSError as exc:
        return {"url": url, "scraped_at": at, "error": f"{type(exc).__name__}: {exc}"}
    counters: dict[str, list[dict[str, Any]]] = {}
    for fam in text_string_to_metric_families(text):
        if fam.type == "counter":
            samples = [{"labels": dict(s.labels), "value": s.value} for s in fam.samples if s.name.endswith("_total")]
            if samples:
                counters[fam.name] = samples
    return {"url": url, "scraped_at": at, "counters": counters}


def run_monitor(report_dir: str | Path, since: str, until: str | None = None, *, bundle_dir: str | Path,
                config: MonitorConfig | str | Path | None = None, feedback: str | Path | None = None,
                metrics_url: str | None = None, store_dir: str | Path | None = None, root: Path | None = None,
                now: datetime | None = None) -> MonitorResult:
    """The health report of ``[since, until)`` for the bundle in ``bundle_dir``, written into ``report_dir``.

    Parameters
    ----------
    since, until:
        A duration (``24h``, ``7d``; ``since`` counts back from ``until``) or an ISO 8601 time;
        ``until`` defaults to now (:func:`lab.monitor.config.period`).
    feedback:
        The gateway's feedback file (``lab serve --feedback``): thumbs by trace id, over those on
        the traces. Left out when None or absent.
    metrics_url:
        The gateway's ``/metrics``: its counters as a snapshot (an alert when it does not answer).

    Raises
    ------
    ConfigError
        A bad ``since``/``until`` or config file. BundleError: the bundle cannot be read or has no
        offline questions. DataError: the tracking store has no traces' experiment, or the feedback
        file is malformed.
    """
    from lab.handoff.bundle import read_bundle
    from lab.io import write_json, write_text
    from lab.monitor.html import render_html
    from lab.monitor.report import build_report

    cfg = config if isinstance(config, MonitorConfig) else load_config(config)
    start, end = period(since, until, now)
    read_bundle(bundle_dir)   # a wrong bundle fails before the traces are read, the embedder loaded
    rows, capped = read_requests(start, end, experiment=cfg.experiment, max_traces=cfg.max_traces, root=root)
    base = offline_baseline(bundle_dir, relevance_threshold=cfg.drift.relevance_threshold,
                            relevance_quantile=cfg.drift.relevance_quantile, embedder=cfg.drift.embedder,
                            store_dir=store_dir)
    mine = [r for r in rows if base.bundle_id is None or r.bundle_id in (None, base.bundle_id)]
    if feedback is not None and Path(feedback).is_file():
        rated = thumbs_from_file(Path(feedback))
        for r in mine:
            r.thumbs = rated.get(r.trace_id, r.thumbs)
    metrics = scrape_counters(metrics_url) if metrics_url else None
    report, arrays = build_report(mine, base, cfg, start, end, other_bundles=len(rows) - len(mine), capped=capped,
                                  metrics=metrics, created=now)
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(out / REPORT_JSON, report)
    html_path = write_text(out / REPORT_HTML, render_html(report))
    return MonitorResult(report, arrays, base, mine, json_path, html_path)
