"""How the gateway behaves: one typed settings object; ``lab serve`` fills it from flags and the environment.

The online-evaluation settings (``judge_*``, ``refusal_*``, ``relevance_min``) say which share of the
answered responses the judges see after the answer went out (:mod:`lab.serve.online_eval`), how the
refusal judge tells a question the index cannot answer (:class:`lab.serve.online_judges.RefusalJudge`)
and when the relevance judge flags an answer (:class:`lab.serve.online_judges.RelevanceJudge`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from lab.config.generation import ANSWER_TIMEOUT_S
from lab.errors import ConfigError
from lab.serve.streamguard import CHUNK, WINDOW


def _share(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value) or not 0 <= value <= 1:
        raise ConfigError(f"gateway settings: {name} must be a share in [0, 1], got {value!r}")


@dataclass
class Settings:
    """How the gateway behaves; ``lab serve`` fills it from flags and the environment.

    Raises
    ------
    ConfigError
        A setting out of its range (the message names it).
    """

    api_key: str | None = None           # required as ``Authorization: Bearer KEY`` when set
    max_body_bytes: int = 1_000_000
    max_concurrency: int = 64            # upstream calls at once; the rest wait (queue depth)
    retries: int = 2
    backoff_s: float = 0.2
    request_timeout_s: float = ANSWER_TIMEOUT_S   # a whole answer (lab.config.generation says why)
    default_max_tokens: int | None = None   # None: the bundle's generation.max_new_tokens (what was evaluated)
    feedback_path: Path = Path("feedback.jsonl")
    remember: int = 10_000               # recent responses kept for feedback
    mlflow_feedback: bool = True         # also log feedback to MLflow (tracking store of the project)
    trace: bool = False                  # an MLflow trace per request (lab serve turns it on)
    stream_window: int = WINDOW          # characters of a streamed answer held back for the output checks
    stream_chunk: int = CHUNK            # new characters beyond the window before they run again
    # online evaluation (lab.serve.online_eval): off at 0
    judge_sample: float = 0.0            # share of answered responses judged after they went out
    judge_sample_routes: dict[str, float] = field(default_factory=dict)   # route -> share (overrides judge_sample)
    judge_queue: int = 64                # responses waiting for the judges; one more is dropped and counted
    judge_seed: int = 0                  # salt of the sampling hash (same seed, same ids: same sample)
    # the refusal judge: the index cannot answer a question when its content words are found less
    # than this share in the retrieved passages (the test-set filter's min_question_support), or
    # when the best retrieval score is below refusal_min_score (None: scores not used; their scale
    # is the retriever's)
    refusal_min_support: float = 0.3
    refusal_min_score: float | None = None
    # the relevance judge flags an answer whose relevance (the larger of: its best passage is one the
    # question retrieved, 1 or 0; the share of the question's content words in it) is below this
    relevance_min: float = 0.25

    def __post_init__(self) -> None:
        if self.stream_window < 0 or self.stream_chunk < 1:
            raise ConfigError(f"gateway settings: stream_window must be >= 0 and stream_chunk >= 1 characters, "
                              f"got {self.stream_window} and {self.stream_chunk}")
        _share("judge_sample", self.judge_sample)
        for route, rate in self.judge_sample_routes.items():
            if not route.startswith("/"):
                raise ConfigError(f"gateway settings: judge_sample_routes: {route!r} is not a route (a path "
                                  f"such as /v1/chat/completions)")
            _share(f"judge_sample_routes[{route!r}]", rate)
        if not isinstance(self.judge_queue, int) or self.judge_queue < 1:
            raise ConfigError(f"gateway settings: judge_queue must be an integer >= 1, got {self.judge_queue!r}")
        _share("refusal_min_support", self.refusal_min_support)
        _share("relevance_min", self.relevance_min)

    @property
    def judging(self) -> bool:
        """Whether any route is sampled for online evaluation."""
        return self.judge_sample > 0 or any(r > 0 for r in self.judge_sample_routes.values())
