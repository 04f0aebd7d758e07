"""LLM-as-judge you can trust: versioned rubrics, never-silent parse failures, a judgment cache,
baselines, a trained local judge, and calibration against human labels.

>>> from lab.judge import PromptedJudge, JudgeInput
>>> judge = PromptedJudge("qwen-faithfulness", "faithfulness",
...                       {"backend": "transformers", "model": "qwen2.5-coder-0.5b-instruct"})  # doctest: +SKIP
>>> judge.judge([JudgeInput(question="Capital of France?", answer="Lyon",
...                         context="Paris is the capital of France.")])[0].verdict          # doctest: +SKIP
1

Importing this package is cheap; torch, transformers and sentence-transformers load when a judge runs.
"""

from __future__ import annotations

from lab.judge.base import JUDGES, Judge, JudgeInput, Judgment, tally
from lab.judge.baselines import LexicalJudge, MajorityJudge, lexical_support
from lab.judge.cache import JudgmentCache
from lab.judge.parse import Parsed, parse_verdict
from lab.judge.prompted import PromptedJudge
from lab.judge.rubric import Rubric, builtin_rubrics, load_rubric
from lab.judge.trained import CrossEncoderJudge, train_cross_encoder

__all__ = ["JUDGES", "CrossEncoderJudge", "Judge", "JudgeInput", "Judgment", "JudgmentCache", "LexicalJudge",
           "MajorityJudge", "Parsed", "PromptedJudge", "Rubric", "builtin_rubrics", "lexical_support",
           "load_rubric", "parse_verdict", "tally", "train_cross_encoder"]
