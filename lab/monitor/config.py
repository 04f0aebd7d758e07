"""What the health report tests and where it draws the line: :class:`MonitorConfig` (a YAML file
given with ``lab monitor --config FILE``; every key optional) and the report's period
(:func:`parse_time`, ``--since`` / ``--until``).

Each drift check pairs a test with a significance level and a smallest effect worth an alert: with
thousands of requests any difference is significant, so a check alerts only when the difference is
both significant (p < ``alpha``) and at least the stated size. Operational limits are off (None)
unless set, except the error and fallback rates, whose alerts need the Wilson interval's lower bound
above the limit (the rate is surely over it, not just one bad minute).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import Field, ValidationError

from lab.config.base import StrictModel, format_validation
from lab.config.loader import read_yaml
from lab.errors import ConfigError


class DriftConfig(StrictModel):
    """The drift checks against the offline evaluation the bundle was promoted on."""

    alpha: float = Field(0.01, gt=0, lt=1)              # significance level of every drift test
    min_requests: int = Field(20, ge=2)                 # fewer retrieved questions in the period: checks skipped
    # retrieval score distribution: two-sample Kolmogorov-Smirnov on the top-1 score
    ks_min_statistic: float = Field(0.2, ge=0, le=1)    # D = largest gap between the two ECDFs
    # questions with no source at or above the relevance threshold: one-sided Fisher exact test
    relevance_threshold: float | None = None            # None: calibrated offline (relevance_quantile)
    relevance_quantile: float = Field(0.1, gt=0, lt=1)  # of the top-1 scores of offline questions whose sources hold an answer
    min_share_increase: float = Field(0.1, ge=0, le=1)  # online share minus offline share
    # question-embedding shift: MMD^2 (RBF kernel, median-distance bandwidth) with a permutation test
    embedder: str | None = None                         # None: the bundle's (a BM25 bundle has none: check skipped)
    mmd_min: float = Field(0.01, ge=0)                  # smallest MMD^2 worth an alert
    permutations: int = Field(1000, ge=99)
    max_questions: int = Field(2000, ge=10)             # online questions embedded (a seeded sample beyond it)
    seed: int = 0


class LimitsConfig(StrictModel):
    """Operational limits on the period's traffic; None: reported, never alerted on."""

    max_error_rate: float | None = Field(0.05, ge=0, le=1)      # alert: Wilson 95% lower bound above it
    max_fallback_rate: float | None = Field(0.05, ge=0, le=1)   # alert: Wilson 95% lower bound above it
    max_judge_flag_rate: float | None = Field(None, ge=0, le=1)  # per judge; Wilson lower bound above it
    max_thumbs_down_rate: float | None = Field(None, ge=0, le=1)  # of rated answers; Wilson lower bound above it
    max_p95_latency_ms: float | None = Field(None, gt=0)        # end-to-end (trace duration)
    min_volume: int | None = Field(None, ge=1)                   # fewer requests: alert (an outage looks like silence)


class MonitorConfig(StrictModel):
    """``lab monitor --config FILE``: ``drift:`` and ``limits:`` (see :class:`DriftConfig`,
    :class:`LimitsConfig`), ``experiment`` (the MLflow experiment the gateway traces into),
    ``max_traces`` (most recent first beyond it) and ``latency_percentiles``."""

    experiment: str = "lab"
    max_traces: int = Field(20000, ge=1)
    latency_percentiles: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
    confidence: float = Field(0.95, gt=0, lt=1)         # of the rates' Wilson intervals
    drift: DriftConfig = DriftConfig()
    limits: LimitsConfig = LimitsConfig()


def load_config(path: str | Path | None) -> MonitorConfig:
    """The config in YAML file ``path`` (None: the defaults).

    Raises
    ------
    ConfigError
        The file is missing, not YAML, or has an unknown key or a wrong value (the message names the
        file and the dotted key).
    """
    if path is None:
        return MonitorConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of monitor settings (drift:, limits:, ...)")
    if isinstance(data.get("latency_percentiles"), list):
        data["latency_percentiles"] = tuple(data["latency_percentiles"])
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, "", MonitorConfig, str(path))) from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime, option: str = "--since") -> datetime:
    """A point in time: a duration before ``now`` (``90m``, ``24h``, ``7d``, ``2w``) or an ISO 8601
    date or time (``2026-12-01``, ``2026-12-01T06:00``, ``...Z`` or ``+01:00``; without a zone: UTC).

    Raises
    ------
    ConfigError
        Neither form; the message names ``option`` and gives both forms.
    """
    m = _DURATION.match(text)
    if m:
        return now - timedelta(**{_UNIT[m.group(2)]: float(m.group(1))})
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a duration before now (90m, 24h, 7d, 2w) or an ISO 8601 "
                          "date or time (2026-12-01, 2026-12-01T06:00Z)") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def period(since: str, until: str | None = None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``[start, end)`` of the report from ``--since`` and ``--until`` (default now), both UTC.

    Raises
    ------
    ConfigError
        A value :func:`parse_time` refuses, or a start not before the end.
    """
    now = now or datetime.now(UTC)
    end = parse_time(until, now, "--until") if until else now
    start = parse_time(since, end if _DURATION.match(since) else now, "--since")
    if start >= end:
        raise ConfigError(f"--since {since!r} is not before --until {until or 'now'!r} "
                          f"({start.isoformat()} >= {end.isoformat()})")
    return start.astimezone(UTC), end.astimezone(UTC)
