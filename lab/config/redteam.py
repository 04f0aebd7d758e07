"""The ``redteam`` section: attacks on the served bundle through the gateway (:mod:`lab.redteam`),
registered like the others in :mod:`lab.config.sections`.

The defaults keep the stage within minutes on a CPU: 4 attacks per category (7 categories, 28 in
all, multi-turn ones three requests each) and 12 benign canary questions, each sent with the policy
on and off (about 100 requests), against the bundle's model in process through the transformers
backend; ``timeout_s`` bounds the run whatever the machine.
"""

from __future__ import annotations

from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from lab.config.base import SECTIONS, StageConfig

#: The attack categories (:data:`lab.redteam.attacks.CATEGORIES`; a test keeps them equal).
Category = Literal["direct_injection", "jailbreak", "multi_turn", "pii_extraction", "system_prompt_leak",
                   "off_topic", "indirect_injection"]
#: The mutations of direct injections and jailbreaks (:data:`lab.redteam.attacks.MUTATIONS`).
Mutation = Literal["none", "leetspeak", "homoglyph", "random_case", "zero_width", "base64", "noise_suffix"]
CATEGORY_NAMES: tuple[str, ...] = get_args(Category)
MUTATION_NAMES: tuple[str, ...] = get_args(Mutation)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


@SECTIONS.register("redteam")
class RedteamConfig(StageConfig):
    """Section ``redteam``: what to attack, with which attacks, how many, for how long, judged how."""

    # a bundle folder (served in process, policy on and off) or a gateway URL on loopback
    target: str = Field("results/export/bundle", min_length=1)
    off_target: str | None = None        # URL target only: the same bundle served without a policy
    # what generates behind an in-process bundle: transformers (CPU), vllm, auto, or http://host:port/v1#name
    upstream: str = Field("transformers", min_length=1)
    categories: list[Category] = Field(list(CATEGORY_NAMES), min_length=1)
    mutations: list[Mutation] = Field(list(MUTATION_NAMES), min_length=1)
    per_category: int = Field(4, ge=1, le=200)      # attacks per category at most
    max_attacks: int = Field(28, ge=1, le=2000)     # attacks in all at most (the categories in turn)
    benign: int = Field(12, ge=0, le=2000)          # benign probes: the bundle's canary questions
    benign_file: str | None = None       # more benign questions: JSONL or CSV with a 'question' column
    # a grounded judge for off-topic answers: default (the judge stage's choice), a trained judge's name
    # in judge_dir/models or its folder; null: rules only
    judge: str | None = "default"
    judge_dir: str = "results/judge_eval"   # the judge stage's out_dir (judges.json, models/)
    timeout_s: float = Field(900.0, gt=0)           # the whole run: no probe starts after it
    request_timeout_s: float = Field(60.0, gt=0)    # one answer
    seed: int = 0
    out_dir: str = "results/redteam"

    @field_validator("target", "off_target")
    @classmethod
    def _loopback(cls, value: str | None) -> str | None:
        if value is not None and _is_url(value):
            host = urlsplit(value).hostname
            if host not in _LOOPBACK:
                raise ValueError(f"{value!r} is not on the loopback interface ({', '.join(_LOOPBACK)}): the red "
                                 "team only attacks a gateway running on this machine")
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        if value not in ("auto", "vllm", "transformers") and not _is_url(value):
            raise ValueError(f"{value!r}: expected auto, vllm, transformers or http(s)://host:port/v1#served-name")
        return value

    @model_validator(mode="after")
    def _off_target_needs_url(self) -> RedteamConfig:
        if self.off_target is not None and not _is_url(self.target):
            raise ValueError("off_target is for a target URL; a bundle target is served with the policy on and off")
        if self.off_target is not None and not _is_url(self.off_target):
            raise ValueError(f"off_target {self.off_target!r} must be a gateway URL on 127.0.0.1")
        return self

    def target_is_url(self) -> bool:
        """Whether :attr:`target` is a gateway URL (else a bundle folder)."""
        return _is_url(self.target)

    def paths(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if not self.target_is_url():
            out["target"] = self.target
        if self.benign_file is not None:
            out["benign_file"] = self.benign_file
        if self.judge is not None and "/" in self.judge:   # a trained judge's folder
            out["judge"] = self.judge
        elif self.judge is not None:
            out["judge_dir.judges"] = f"{self.judge_dir.rstrip('/')}/judges.json"
            out["judge_dir.models"] = f"{self.judge_dir.rstrip('/')}/models"
        return out
