"""Sentence-embedding features for the guardrail classifiers (a scikit-learn transformer).

TF-IDF n-grams learn which WORDS attacks use ("ignore", "instructions", "system prompt") and so
flag benign prompts that use them too ("how do I make git ignore a folder?"): over-defence, the
failure InjecGuard (Li et al., 2024) measures on its NotInject set. A sentence embedding carries
what a prompt asks for rather than its words; next to the n-grams it gives the logistic regression
a second view. The embedder is ``lab.embed``'s (all-MiniLM-L6-v2 by default, offline), loaded on
first use and never pickled: a saved classifier stores the model's name and reloads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

#: Embeddings kept per process and model (training folds reuse them); cleared beyond this many.
MEMO_MAX = 50_000


class SentenceEmbeddings(TransformerMixin, BaseEstimator):
    """Texts -> L2-normalised sentence embeddings, scaled by ``weight``.

    Parameters
    ----------
    model : str
        A ``lab.embed`` embedder spec (a model-store name or a local folder).
    weight : float
        Multiplies the embedding (its norm is 1) against the TF-IDF blocks beside it (each of norm
        1): the regularised regression then weighs the two views alike.
    """

    def __init__(self, model: str = "all-minilm-l6-v2", weight: float = 1.0) -> None:
        self.model = model
        self.weight = weight

    def fit(self, X: Sequence[str], y: Any = None) -> SentenceEmbeddings:
        return self

    def transform(self, X: Sequence[str]) -> np.ndarray:
        texts = list(X)
        memo = _MEMO.setdefault(self.model, {})
        if len(memo) > MEMO_MAX:   # a served classifier sees endless new prompts
            memo.clear()
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        if todo:  # cross-validation (which clones this transformer per fold) embeds each text once
            if self.model not in _EMBEDDERS:
                from lab.embed import make_embedder

                _EMBEDDERS[self.model] = make_embedder(self.model)
            memo.update(zip(todo, _EMBEDDERS[self.model].encode(todo), strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([memo[t] for t in texts]).astype(np.float32) * float(self.weight)


#: Per process: the loaded embedder and the embeddings computed, per model spec (never pickled).
_EMBEDDERS: dict[str, Any] = {}
_MEMO: dict[str, dict[str, np.ndarray]] = {}
