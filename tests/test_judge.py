"""lab.judge: rubrics, parsing with one repair, never-silent failures, retries, the cache, baselines,
calibration metrics equal to scikit-learn's, the labelled-file reader, and ``lab judge calibrate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lab.data.halueval import read_judged, split_by_group
from lab.errors import ConfigError, DataError
from lab.generate import Generation, GenerationError
from lab.judge import (
    JudgeInput,
    JudgmentCache,
    LexicalJudge,
    MajorityJudge,
    PromptedJudge,
    builtin_rubrics,
    lexical_support,
    load_rubric,
    parse_verdict,
    tally,
)
from lab.judge.calibrate import calibrate
from lab.metrics.agreement import agreement, agreement_cis, best_threshold

ITEM = JudgeInput(question="Who wrote Hamlet?", answer="Christopher Marlowe",
                  context="Hamlet is a tragedy written by William Shakespeare.")


class FakeBackend:
    """Scripted outputs; ``fail_first`` calls raise GenerationError (a flaky endpoint)."""

    name = "fake"

    def __init__(self, outputs, *, supports=frozenset(), fail_first=0, logprobs=None):
        self.outputs = list(outputs)
        self.supports = frozenset(supports)
        self.fail_first = fail_first
        self.calls = 0
        self.prompts = []
        self.logprobs = logprobs

    def generate(self, prompts, params):
        self.calls += 1
        if self.calls <= self.fail_first:
            raise GenerationError("fake endpoint timed out")
        out = []
        for p in prompts:
            self.prompts.append(p)
            text = self.outputs.pop(0)
            out.append(Generation(text, 10, 3, 0.01, None, "stop", self.name, choice_logprobs=self.logprobs))
        return out

    def close(self):
        pass


def _judge(backend, tmp_path, **kw):
    return PromptedJudge("fake-judge", "faithfulness", backend, cache=JudgmentCache(tmp_path / "j.sqlite"),
                         identity={"backend": "fake", "model": "scripted"}, **kw)


# ----------------------------------------------------------------------------- rubrics


def test_builtin_rubrics_load_and_render_every_placeholder():
    assert {"faithfulness", "hallucination", "correctness", "context_relevance", "format_compliance",
            "task_completion"} <= set(builtin_rubrics())
    r = load_rubric("faithfulness")
    assert r.id == "faithfulness@v1" and r.labels == {"yes": 0, "no": 1}
    msgs = r.render(ITEM.as_dict(), "json")
    assert "William Shakespeare" in msgs[-1]["content"] and '"verdict"' in msgs[-1]["content"]
    assert "one word" in r.render(ITEM.as_dict(), "choice")[-1]["content"]
    with pytest.raises(ConfigError, match="needs context"):
        r.render({"question": "q", "answer": "a"}, "json")


def test_rubric_errors_name_the_key_and_digest_tracks_content(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("name: x\nversion: 1\ntask: general\nlabels: {yes: 0, no: 1}\nprompt: {user: '{question}'}\n")
    with pytest.raises(ConfigError, match="instructions"):
        load_rubric(bad)
    bad.write_text("name: x\nversion: 1\ntask: general\nlabels: {ok: 0, bad: 1}\nprompt: {user: '{nope} {instructions}'}\n")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        load_rubric(bad)
    with pytest.raises(ConfigError, match="built-in: .*faithfulness"):
        load_rubric("no-such-rubric")
    a = tmp_path / "a.yaml"
    a.write_text("name: x\nversion: 1\ntask: general\nlabels: {ok: 0, bad: 1}\nprompt: {user: 'Q {question} {instructions}'}\n")
    b = tmp_path / "b.yaml"
    b.write_text(a.read_text().replace("Q {question}", "Question {question}"))
    assert load_rubric(a).id == load_rubric(b).id and load_rubric(a).digest != load_rubric(b).digest


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("raw", "verdict", "repaired"), [
    ('{"verdict": "no", "reason": "Marlowe is not in the context"}', 1, False),
    ("yes", 0, False),
    ('{"verdict": "No", "reason": "x"', 1, True),            # cut off, wrong case: repaired
    ("```json\n{'verdict': 'yes', 'reason': 'ok'}\n```", 0, True),
    ("No. The context names Shakespeare.", 1, True),
])
def test_parse_reads_strictly_then_repairs_once(raw, verdict, repaired):
    got = parse_verdict(raw, load_rubric("faithfulness"))
    assert (got.verdict, got.repaired, got.error) == (verdict, repaired, None)


@pytest.mark.parametrize("raw", ["", "I cannot decide.", '{"verdict": "maybe"}', "<<<>>>"])
def test_unparseable_output_is_a_failure_with_a_reason(raw):
    got = parse_verdict(raw, load_rubric("faithfulness"))
    assert got.verdict is None and got.error


# ----------------------------------------------------------------------------- the prompted judge


def test_failures_are_counted_with_their_raw_text_never_nan(tmp_path):
    backend = FakeBackend(['{"verdict": "no", "reason": "r"}', "garbage output", '{"verdict": "yes"'])
    got = _judge(backend, tmp_path, mode="text").judge([ITEM, ITEM.__class__(question="q2", answer="a", context="c"),
                                                        ITEM.__class__(question="q3", answer="a", context="c")])
    assert [j.verdict for j in got] == [1, None, 0]
    assert got[1].error_kind == "parse" and got[1].raw == "garbage output" and got[1].score is None
    assert got[2].repaired and got[0].rubric == "faithfulness@v1" and got[0].judge == "fake-judge"
    assert tally(got) == {"n": 3, "verdicts": 2, "parse_failures": 1, "generation_failures": 0, "repaired": 1,
                          "cache_hits": 0}


def test_backend_failures_are_retried_then_recorded(tmp_path):
    flaky = FakeBackend(['{"verdict": "yes", "reason": "ok"}'], fail_first=2)   # batch call + 1 retry fail
    got = _judge(flaky, tmp_path, mode="text", retries=2).judge([ITEM])
    assert got[0].verdict == 0 and flaky.calls == 3
    down = FakeBackend([], fail_first=99)
    got = _judge(down, tmp_path / "d", mode="text", retries=1).judge([ITEM])
    assert got[0].verdict is None and got[0].error_kind == "generation" and "2 attempt" in got[0].error
    assert down.calls == 3   # the batch, then 1 + 1 retry


def test_second_run_hits_the_cache_for_every_judgment_and_generation_failures_are_not_cached(tmp_path):
    items = [JudgeInput(question=f"q{i}", answer="a", context="c") for i in range(4)]
    repeated = FakeBackend(['{"verdict": "yes", "reason": ""}'])
    assert [j.verdict for j in _judge(repeated, tmp_path / "r", mode="text").judge([items[0]] * 3)] == [0, 0, 0]
    first = FakeBackend(['{"verdict": "yes", "reason": ""}'] * 3 + ["nonsense"])
    a = _judge(first, tmp_path, mode="text").judge(items)
    second = FakeBackend([])
    b = _judge(second, tmp_path, mode="text").judge(items)
    assert second.calls == 0 and all(j.cached for j in b) and tally(b)["cache_hits"] == 4
    assert [j.verdict for j in a] == [j.verdict for j in b] and b[3].error_kind == "parse"
    # a changed rubric (digest) or decoding setting misses
    third = FakeBackend(['{"verdict": "no", "reason": ""}'] * 4)
    _judge(third, tmp_path, mode="text", max_new_tokens=32).judge(items)
    assert third.calls == 1
    down = FakeBackend([], fail_first=99)
    _judge(down, tmp_path / "x", mode="text", retries=0).judge(items[:1])
    assert JudgmentCache(tmp_path / "x" / "j.sqlite").count() == 0


def test_choice_mode_uses_log_probabilities_and_a_threshold(tmp_path):
    lp = {"yes": -0.2, "no": -1.8}   # P(no) = 1 / (1 + e^1.6) = 0.168
    backend = FakeBackend(["yes"], supports={"choice"}, logprobs=lp)
    j = _judge(backend, tmp_path).judge([ITEM])[0]
    assert j.verdict == 0 and j.score == pytest.approx(1 / (1 + np.exp(1.6)))
    assert json.loads(j.raw)["logprobs"] == lp
    strict = _judge(FakeBackend([], supports={"choice"}), tmp_path, threshold=0.1).judge([ITEM])[0]
    assert strict.cached and strict.verdict == 1   # the cached score, decided by the new threshold


def test_json_mode_sends_the_rubric_schema(tmp_path):
    seen = {}

    class Schema(FakeBackend):
        def generate(self, prompts, params):
            seen["schema"] = params.json_schema
            return super().generate(prompts, params)

    _judge(Schema(['{"verdict": "yes", "reason": "ok"}'], supports={"json_schema"}), tmp_path).judge([ITEM])
    assert seen["schema"]["properties"]["verdict"]["enum"] == ["yes", "no"]


def test_a_real_tiny_model_judges_through_transformers(tmp_path):
    judge = PromptedJudge("tiny", "faithfulness", {"backend": "transformers", "model": "tiny-random-llama",
                                                   "batch_size": 2, "threads": 1},
                          cache=JudgmentCache(tmp_path / "j.sqlite"))
    got = judge.judge([ITEM, JudgeInput(question="q", answer="a", context="c")])
    assert judge.mode == "choice" and all(j.verdict in (0, 1) and 0 <= j.score <= 1 for j in got)
    assert judge.identity["revision"]   # the model's content revision is part of the cache key
    again = judge.judge([ITEM])
    assert again[0].cached and again[0].score == got[0].score


# ----------------------------------------------------------------------------- baselines and metrics


def test_lexical_support_and_its_threshold_from_training_items():
    assert lexical_support("William Shakespeare", ITEM.context) == 1.0
    assert lexical_support("Christopher Marlowe", ITEM.context) == 0.0
    train = [ITEM, JudgeInput(question="q", answer="William Shakespeare wrote it", context=ITEM.context)]
    lex = LexicalJudge().fit(train, [1, 0])
    assert [j.verdict for j in lex.judge(train)] == [1, 0]
    assert lex.judge([JudgeInput(question="q", answer="a")])[0].verdict is None   # no context: not applicable


def test_the_cross_encoder_sees_words_missing_from_the_context_and_from_its_best_sentence():
    from lab.judge.baselines import missing_from_best_sentence, sentences
    from lab.judge.trained import pair_text

    ctx = ("Sameera Perera is a Sri Lankan cricketer. He plays for Colts. "
           "Sri Lanka lies southeast of the Republic of India.")
    assert sentences(ctx) == ["Sameera Perera is a Sri Lankan cricketer.", "He plays for Colts.",
                              "Sri Lanka lies southeast of the Republic of India."]
    stitched = "Sameera Perera is a cricketer from India."   # every word in the context, not in one sentence
    assert lexical_support(stitched, ctx) == 1.0
    assert missing_from_best_sentence(stitched, ctx) == ["india"]
    assert missing_from_best_sentence("a Sri Lankan cricketer", ctx) == []
    item = JudgeInput(question="Where is Sameera Perera from?", answer=stitched, context=ctx)
    first, second = pair_text(item, "grounded", lexical_hints=True)
    assert first.endswith(ctx) and second.splitlines() == [
        stitched, "not in context: (none)", "not in its best sentence: india"]
    assert pair_text(item, "grounded") == (first, stitched)           # no hints unless asked
    assert pair_text(item, "general", lexical_hints=True)[1] == stitched   # no context, no hints


def test_length_baseline_is_fitted_on_training_items():
    from lab.judge.baselines import LengthJudge

    short, long = JudgeInput(answer="Paris"), JudgeInput(answer="Paris is the capital of Atlantis since 1900.")
    rule = LengthJudge().fit([short, long, short], [0, 1, 0])
    assert [j.verdict for j in rule.judge([long, short])] == [1, 0] and 1 < rule.threshold <= 8


def _grounded(question: str, context: str, right: str, wrong: str, n: int = 0) -> list:
    from lab.data.halueval import JudgedItem

    return [JudgedItem(f"g{n}/right", question, right, context, 0, f"g{n}", n + 1),
            JudgedItem(f"g{n}/hallucinated", question, wrong, context, 1, f"g{n}", n + 1)]


def test_counterfactual_answers_have_labels_by_construction():
    from lab.judge.counterfactual import augment, diagnostic_set

    items = (_grounded("Which was founded first, Stellenbosch University or Wayne State University?",
                       "Stellenbosch University was founded in 1866. Wayne State University was founded in 1868.",
                       "Stellenbosch University", "Wayne State University was founded first.", 0)
             + _grounded("Are Kelly Jones and Martha Reeves both singers?",
                         "Kelly Jones is a Welsh singer. Martha Reeves is an American singer.", "yes",
                         "No, only Kelly Jones is a singer.", 1)
             + _grounded("Where was Nikola Tesla born?",
                         "Nikola Tesla was born in Smiljan in the Austrian Empire. He later moved to New York City.",
                         "Smiljan", "Nikola Tesla was born in Prague.", 2))
    wrong = {i.group: i.answer for i in augment(items, ["in_context"])}
    assert wrong == {"g0": "Wayne State University", "g1": "no", "g2": wrong["g2"]}
    assert wrong["g2"] in ("the Austrian Empire", "New York City", "Austrian Empire")   # an entity of the context
    support = {i.group: i for i in augment(items, ["support"])}
    assert support["g0"].answer == "Stellenbosch University was founded in 1866." and support["g0"].label == 0
    assert "g1" not in support       # a yes/no answer has no supporting sentence of its own
    swapped = augment(items, ["swapped"])
    assert all(i.label == 1 and i.answer != next(r.answer for r in items if r.id == i.id.split("~")[0])
               for i in swapped) and len(swapped) == 3
    diag = diagnostic_set(items)
    assert diag[:len(items)] == items and {i.label for i in diag[len(items):]} == {0, 1}
    assert len({i.id for i in diag}) == len(diag)
    with pytest.raises(ConfigError, match="unknown augmentation.*known: swapped, in_context, support"):
        augment(items, ["paraphrase"])


def test_majority_judge_predicts_the_training_majority():
    m = MajorityJudge().fit([ITEM] * 3, [0, 0, 1])
    assert [j.verdict for j in m.judge([ITEM, ITEM])] == [0, 0]


def test_agreement_equals_scikit_learn():
    from sklearn.metrics import (
        accuracy_score,
        cohen_kappa_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
    )

    rng = np.random.default_rng(3)
    for n in (5, 40, 500):
        y = rng.integers(0, 2, n)
        p = np.where(rng.random(n) < 0.7, y, 1 - y)
        got = agreement(y, p)
        assert got["accuracy"] == pytest.approx(accuracy_score(y, p))
        assert got["precision"] == pytest.approx(precision_score(y, p, zero_division=0))
        assert got["recall"] == pytest.approx(recall_score(y, p, zero_division=0))
        assert got["f1"] == pytest.approx(f1_score(y, p, zero_division=0))
        assert got["kappa"] == pytest.approx(cohen_kappa_score(y, p))
        assert got["confusion"] == confusion_matrix(y, p, labels=[0, 1]).tolist()
    assert agreement([0, 0, 0], [0, 0, 0])["kappa"] is None          # undefined: null, not NaN
    assert agreement([0, 1, 1], [0, 0, 0])["kappa"] == pytest.approx(cohen_kappa_score([0, 1, 1], [0, 0, 0]))


def test_bootstrap_cis_cover_the_estimate_and_are_seeded():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.where(rng.random(300) < 0.8, y, 1 - y)
    ci = agreement_cis(y, p, n_resamples=500, seed=1)
    point = agreement(y, p)
    for k in ("accuracy", "f1", "kappa"):
        lo, hi = ci[f"{k}_ci"]
        assert lo < point[k] < hi and hi - lo < 0.2
    assert ci == agreement_cis(y, p, n_resamples=500, seed=1)


def test_best_threshold_maximises_kappa_on_the_items_given():
    t = best_threshold([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9])
    assert 0.3 < t <= 0.6


# ----------------------------------------------------------------------------- labelled files


def _write(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


GENERAL = [{"ID": "1", "user_query": "q1", "chatgpt_response": "r1", "hallucination": "no"},
           {"ID": "2", "user_query": "q2", "chatgpt_response": "r2", "hallucination": "yes"}]
GROUNDED = [{"knowledge": "Paris is in France.", "question": "Where is Paris?", "right_answer": "France",
             "hallucinated_answer": "Paris is in Germany, near Berlin."}]


def test_both_halueval_formats_and_their_labels(tmp_path):
    g = read_judged(_write(tmp_path / "g.jsonl", GENERAL))
    assert g.format == "general" and g.labels == [0, 1] and not g.grounded
    q = read_judged(_write(tmp_path / "q.jsonl", GROUNDED))
    assert q.format == "grounded" and q.labels == [0, 1] and q.grounded
    assert q.items[0].group == q.items[1].group    # a seed's pair stays together in splits


@pytest.mark.parametrize(("bad", "why"), [
    ({"ID": "3", "user_query": "q", "chatgpt_response": "r", "hallucination": "Yes "}, "exactly"),
    ({"ID": "3", "user_query": "q", "chatgpt_response": "r", "hallucination": "maybe"}, "exactly"),
    ({"ID": "3", "user_query": "q", "hallucination": "no"}, "chatgpt_response"),
    ("{not json", "not valid JSON"),
])
def test_a_malformed_record_is_named_by_line_and_skipped_only_on_request(tmp_path, bad, why):
    f = _write(tmp_path / "bad.jsonl", [GENERAL[0], bad, GENERAL[1]])
    with pytest.raises(DataError, match=f"line 2: .*{why}") as err:
        read_judged(f)
    assert "--skip-bad" in str(err.value)
    got = read_judged(f, skip_bad=True)
    assert len(got.items) == 2 and len(got.skipped) == 1 and got.skipped[0].startswith("line 2")


def test_a_file_in_no_known_format_lists_the_formats(tmp_path):
    with pytest.raises(DataError, match="user_query, chatgpt_response, hallucination"):
        read_judged(_write(tmp_path / "x.jsonl", [{"text": "t", "label": 1}]))


def test_split_by_group_is_stable_and_disjoint():
    items = read_judged(Path(__file__).parents[1] / "data/halueval/qa_grounded.dev250.jsonl").items
    rest, part = split_by_group(items, 0.2, seed=0)
    assert {i.group for i in rest}.isdisjoint({i.group for i in part}) and 0.1 < len(part) / len(items) < 0.3
    assert split_by_group(list(reversed(items)), 0.2, seed=0)[1] == list(reversed(part))


def test_calibrate_reports_failures_and_baselines(tmp_path):
    f = read_judged(_write(tmp_path / "q.jsonl", [GROUNDED[0] | {"question": f"Where is Paris? ({i})"}
                                                  for i in range(3)])).items
    # items: right, hallucinated, right, hallucinated, ...: two right, one failure, two wrong, one failure
    backend = FakeBackend(['{"verdict": "yes", "reason": ""}', '{"verdict": "no", "reason": ""}', "??",
                           '{"verdict": "yes", "reason": ""}', '{"verdict": "no", "reason": ""}', "??"])
    lex = LexicalJudge(threshold=0.5)
    rep = calibrate(_judge(backend, tmp_path, mode="text"), f, lexical=lex, bar=0.4, n_resamples=200)
    assert rep["n"] == 6 and rep["n_scored"] == 4 and rep["parse_failures"] == 2
    assert rep["accuracy"] == 0.5 and rep["accuracy_failures_as_wrong"] == pytest.approx(2 / 6)
    assert rep["lexical_baseline_accuracy"] == 1.0 and rep["majority_baseline_accuracy"] == 0.5
    assert rep["below_bar"] is True and len(rep["failures"]) == 2 and rep["failures"][0]["raw"] == "??"


# ----------------------------------------------------------------------------- the CLI


def test_cli_calibrate_writes_the_documented_keys(tmp_path):
    from typer.testing import CliRunner

    from lab.cli import app

    f = _write(tmp_path / "g.jsonl", GENERAL * 4 + [GENERAL[0] | {"hallucination": "Yes "}])
    out = tmp_path / "out.json"
    runner = CliRunner()
    res = runner.invoke(app, ["judge", "calibrate", str(f), "--judge", "majority", "--out", str(out)])
    assert res.exit_code == 2 and "line 9" in res.output and "--skip-bad" in res.output
    res = runner.invoke(app, ["judge", "calibrate", str(f), "--judge", "majority", "--out", str(out), "--skip-bad"])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    for key in ("judge", "n", "accuracy", "f1", "kappa", "parse_failures", "majority_baseline_accuracy",
                "lexical_baseline_accuracy", "accuracy_ci", "f1_ci", "kappa_ci"):
        assert key in got
    assert got["n"] == 8 and got["skipped"] == 1 and got["lexical_baseline_accuracy"] is None
    assert got["majority_baseline_accuracy"] == 0.5 and got["kappa"] == 0.0
    res = runner.invoke(app, ["judge", "calibrate", str(f), "--judge", "nope", "--skip-bad"])
    assert res.exit_code == 2 and "unknown judge 'nope'" in res.output and "lexical" in res.output


def test_a_json_string_holding_a_line_separator_does_not_split_its_record(tmp_path):
    rec = GENERAL[0] | {"chatgpt_response": "first part\u2028second part\u0085third"}
    f = tmp_path / "sep.jsonl"
    f.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    got = read_judged(f)
    assert len(got.items) == 1 and "second part" in got.items[0].answer


def test_an_endpoint_judge_over_http_json_schema_free_text_and_a_down_server(tmp_path):
    """An OpenAI-compatible endpoint (the deterministic fake server): the rubric's JSON schema is
    sent and honoured; a server that ignores it answers free text (counted parse failures); a server
    that fails is retried and counted as generation failures, and a later run retries it."""
    from fake_openai_server import FakeOpenAIServer

    items = [JudgeInput(question=f"q{i}", answer="a", context="c") for i in range(3)]
    with FakeOpenAIServer() as srv:
        cfg = {"backend": "openai", "base_url": srv.base_url, "model": "fake-model", "max_retries": 0,
               "timeout_s": 5.0}
        judge = PromptedJudge("endpoint", "faithfulness", cfg, cache=JudgmentCache(tmp_path / "j.sqlite"), retries=1)
        assert judge.mode == "json"
        got = judge.judge(items)
        assert all(j.verdict in (0, 1) and json.loads(j.raw)["verdict"] in ("yes", "no") for j in got)
        sent = [b for p, b in srv.requests if p.endswith("/chat/completions")]
        assert sent[0]["response_format"]["json_schema"]["schema"]["properties"]["verdict"]["enum"] == ["yes", "no"]
        assert sent[0]["temperature"] == 0.0     # deterministic decoding by default
        srv.ignore_structured = True
        free = PromptedJudge("endpoint-free", "faithfulness", cfg, cache=False).judge(items)
        assert tally(free)["parse_failures"] == 3 and all(j.raw and j.error for j in free)
        srv.ignore_structured = False
        srv.fail_status = 500
        down = PromptedJudge("endpoint-down", "faithfulness", cfg, cache=JudgmentCache(tmp_path / "d.sqlite"),
                             retries=1).judge(items[:1])
        assert down[0].error_kind == "generation" and "500" in down[0].error
        srv.fail_status = None
        again = PromptedJudge("endpoint-down", "faithfulness", cfg, cache=JudgmentCache(tmp_path / "d.sqlite")).judge(items[:1])
        assert again[0].verdict in (0, 1) and not again[0].cached


def test_ragas_faithfulness_through_a_lab_backend_counts_failures_and_runs_inside_an_event_loop(tmp_path):
    import asyncio

    from lab.judge.ragas_bridge import RagasFaithfulnessJudge

    outputs = ['{"statements": ["Hamlet was written by Christopher Marlowe."]}',
               '{"statements": [{"statement": "Hamlet was written by Christopher Marlowe.", "reason": "the '
               'context names Shakespeare", "verdict": 0}]}',
               "Sure! Here are the statements: none",                # does not validate, even repaired
               '{"statements": []}']                                  # ragas: no statements -> its NaN
    judge = RagasFaithfulnessJudge("ragas-fake", FakeBackend(outputs), cache=JudgmentCache(tmp_path / "r.sqlite"),
                                   identity={"backend": "fake", "model": "scripted"})

    async def inside_a_loop():     # a Jupyter kernel runs cells inside an event loop
        return judge.judge([ITEM, JudgeInput(question="q2", answer="a2", context="c"),
                            JudgeInput(question="q3", answer="a3", context="c")])

    got = asyncio.run(inside_a_loop())
    assert got[0].verdict == 1 and got[0].score == 1.0 and got[0].rubric.startswith("ragas.faithfulness@")
    assert got[1].verdict is None and got[1].error_kind == "parse" and "Sure!" in got[1].raw
    assert got[2].verdict is None and "no statements" in got[2].error
    assert judge.describe()["llm_parse_failures"] == 1 and tally(got)["parse_failures"] == 2
    # an unconstrained backend is shown an example instance, never the schema it would copy
    backend_prompts = [p[0]["content"] for p in judge.llm.backend.prompts]
    assert backend_prompts and all("$defs" not in p and '"properties"' not in p for p in backend_prompts)
    assert '{"statements": [{"statement": "...", "reason": "...", "verdict": 0}]}' in backend_prompts[1]


def test_ragas_schema_skeleton_resolves_refs_and_unions():
    from lab.judge.ragas_bridge import skeleton

    schema = {"$defs": {"V": {"type": "object", "properties": {"verdict": {"type": "integer"},
                                                                 "why": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}},
              "type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/V"}},
                                               "kind": {"enum": ["a", "b"]}, "ok": {"type": "boolean"}}}
    assert skeleton(schema) == {"items": [{"verdict": 0, "why": "..."}], "kind": "a", "ok": False}


def test_ragas_string_metrics_inside_an_event_loop():
    import asyncio

    from lab.judge.ragas_bridge import ragas_string_metrics

    async def inside():
        return ragas_string_metrics("in 1856", ["1856", "the year 1856"])

    got = asyncio.run(inside())
    assert got["ragas_exact_match"] == 0.0 and got["ragas_string_present"] == 1.0
    assert 0 < got["ragas_non_llm_string_similarity"] < 1


def test_paired_difference_against_the_lexical_baseline_resamples_the_same_items():
    from lab.metrics.agreement import paired_difference

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    good = np.where(rng.random(400) < 0.95, y, 1 - y)
    worse = np.where(rng.random(400) < 0.80, y, 1 - y)
    d = paired_difference(y, good, worse, statistic="accuracy", n_resamples=500)
    assert d["diff"] == pytest.approx(agreement(y, good)["accuracy"] - agreement(y, worse)["accuracy"])
    lo, hi = d["diff_ci"]
    assert 0 < lo < d["diff"] < hi and d["share_of_resamples_a_better"] == 1.0
    same = paired_difference(y, good, good, statistic="kappa", n_resamples=200)
    assert same["diff"] == 0.0 and same["diff_ci"] == [0.0, 0.0]
