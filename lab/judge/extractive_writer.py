"""A writer without a model: answers made of the passages' own sentences, for cheap training volume.

``lab judge make-data --generator extractive``: a small local generator writes about one kept answer
a minute on 2 CPU cores, and half of what it calls faithful carries unsupported filler (a review of
its answers, issue 31). :class:`ExtractiveWriter` writes a faithful answer at rule speed instead: the
run of consecutive sentences of one passage that shares most content words with the question (grown
to 60-130 words, never past the passage), reworded by :func:`lab.judge.paraphrase.rule_paraphrase`
where the rules apply. Its paraphrases are the rules again, with another seed; it adds no detail (the
``addition`` error does not apply). Faithful by construction as far as sentences copied from the
passages are: the planted errors (:mod:`lab.judge.perturb`) then differ from their twin in one claim,
so a model trained on both must read the changed detail, not the overlap. Use it beside a
generator's answers, which bring the wording of real answers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from lab.judge.faithful_sources import Source


class ExtractiveWriter:
    """A :class:`lab.judge.faithful_data.Writer` of passage sentences (see the module docstring)."""

    name = "extractive"

    def __init__(self, *, min_words: int = 60, max_words: int = 130, seed: int = 0) -> None:
        self.min_words, self.max_words, self.seed = min_words, max_words, seed

    def _answer(self, source: Source) -> str:
        from lab.chunking.sentence import sentence_spans
        from lab.judge.baselines import content_words

        words = content_words(source.question)
        best: tuple[int, int, str] = (-1, 0, "")
        for passage in source.passages:
            sentences = [passage[a:b] for a, b in sentence_spans(passage)]
            for i in range(len(sentences)):   # the run starting at sentence i, grown to min_words
                run, j = [], i
                while j < len(sentences) and sum(len(s.split()) for s in run) < self.min_words:
                    run.append(sentences[j])
                    j += 1
                text = " ".join(run)
                if len(text.split()) > self.max_words:
                    continue
                score = len(words & content_words(text))
                if score > best[0]:
                    best = (score, -i, text)
        return best[2]

    def answers(self, sources: Sequence[Source]) -> list[tuple[str, str]]:
        from lab.judge.paraphrase import rule_paraphrase

        out = []
        for s in sources:
            text = self._answer(s)
            reworded = rule_paraphrase(text, random.Random(f"{self.seed}:{s.id}")) if text else None
            out.append((reworded or text, "stop"))
        return out

    def paraphrases(self, answers: Sequence[str]) -> list[tuple[str, str]]:
        from lab.judge.paraphrase import rule_paraphrase

        return [(rule_paraphrase(a, random.Random(f"{self.seed}:p:{a}")) or a, "stop") for a in answers]

    def add_detail(self, claim: str, passages: Sequence[str]) -> str | None:
        return None
