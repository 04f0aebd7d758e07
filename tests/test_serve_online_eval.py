"""Online evaluation in the gateway (lab.serve.online_eval, lab.serve.online_judges): a seeded sample
of answered responses, judged on a background thread after the answer went out (streamed or not),
the verdicts as assessments on the request's MLflow trace and in Prometheus; a full queue drops and
counts, a failing judge is a counted error. Fake judges (scripted findings, a gate that holds them)
for the machinery; the real rules (refusal, claim-level lexical grounding) and the judges' handoff
files for what the gateway runs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from test_serve import BM25, CORPUS, Echo, _choice, write_bundle

from lab.errors import ConfigError
from lab.handoff import judges as handoff
from lab.handoff.bundle import ServedModel
from lab.handoff.judges import Agreement
from lab.judge.base import Judgment
from lab.serve.chat import RAG, ChatService, Settings
from lab.serve.gateway import create_app
from lab.serve.online_eval import Finding, OnlineJudge, Served, sampled
from lab.serve.online_judges import LabJudge, RefusalJudge, default_judges, grounding_judge, relevance_judge
from lab.serve.upstream import MessageUpstream

CHAT = "/v1/chat/completions"
QUESTIONS = ["What is the capital of Poland?", "When was Tesla born?", "Who were the Normans?",
             "Where was Super Bowl 50 played?"]
AGREEMENT = Agreement("fake-model", "grounded", 0.81, "evaluation", n=500, kappa_ci=(0.75, 0.86), bar=0.4,
                      rubric="fake@v1", source="judge_eval/calibration.json")
WAIT_S = 120   # a safety net for a stuck worker, not a timing claim


class FakeJudge:
    """An online judge with a scripted finding (flagged when ``flag(served)``); ``gate``, when given,
    holds every verdict until it is set; ``started`` is set when the judge first runs; ``error``
    is raised instead of a finding."""

    def __init__(self, name: str = "fake-model", aspect: str = "grounded", source_type: str = "LLM_JUDGE", *,
                 agreement: Agreement | None = AGREEMENT, flag=lambda s: False, gate: threading.Event | None = None,
                 error: Exception | None = None) -> None:
        self.name, self.aspect, self.version, self.source_type = name, aspect, "fake@v1", source_type
        self.agreement, self.flag, self.gate, self.error = agreement, flag, gate, error
        self.started = threading.Event()
        self.seen: list[Served] = []

    def assess(self, served: Served) -> Finding:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT_S), "the test never opened the gate"
        if self.error is not None:
            raise self.error
        self.seen.append(served)
        flagged = bool(self.flag(served))
        return Finding(flagged, 0.9 if flagged else 0.1, f"{self.name} says {'fail' if flagged else 'pass'}",
                       {"seen": len(self.seen)})


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle", retrieval_config=BM25, corpus=CORPUS, model=ServedModel("m", spec="m"),
                        choice=_choice(), k=2)


def _gateway(bundle: Path, tmp_path: Path, judges, upstream=None, **settings) -> ChatService:
    s = Settings(feedback_path=tmp_path / "feedback.jsonl", mlflow_feedback=False, backoff_s=0.01, **settings)
    return ChatService(RAG(bundle), upstream or Echo(), settings=s, judges=judges)


def _client(gw: ChatService):
    from fastapi.testclient import TestClient

    return TestClient(create_app(gw))


def _ask(client, question: str) -> dict:
    r = client.post(CHAT, json={"messages": [{"role": "user", "content": question}]})
    assert r.status_code == 200, r.text
    return r.json()


def _metric(client, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not on /metrics")


def _online(trace) -> dict:
    return {a.name: a for a in trace.info.assessments if a.name.startswith("online/")}


# --------------------------------------------------------------------------- the sample
def test_the_sampling_rule_is_a_seeded_function_of_the_response_id():
    ids = [f"chatcmpl-{i:05d}" for i in range(10_000)]
    picked = [sampled(r, 0.25) for r in ids]
    assert picked == [sampled(r, 0.25) for r in ids]                       # the same ids, the same sample
    assert 2300 < sum(picked) < 2700                                       # a quarter (these fixed ids: exact)
    assert picked != [sampled(r, 0.25, seed=1) for r in ids]               # another seed, another sample
    assert all(sampled(r, 0.5) for r, p in zip(ids, picked, strict=True) if p)   # nested: a larger rate keeps it
    assert not any(sampled(r, 0.0) for r in ids[:100]) and all(sampled(r, 1.0) for r in ids[:100])


def test_a_quarter_of_200_responses_is_judged_exactly_and_each_judged_trace_has_the_assessments(
        bundle: Path, tmp_path: Path, isolated_mlflow: Path):
    import mlflow

    model = FakeJudge(flag=lambda s: "Tesla" in s.question)
    rule = FakeJudge("fake-rule", "refusal", "CODE", agreement=None)
    gw = _gateway(bundle, tmp_path, [model, rule], judge_sample=0.25, trace=True)
    c = _client(gw)
    traces = {}
    for i in range(200):
        body = _ask(c, QUESTIONS[i % len(QUESTIONS)])
        traces[body["id"]] = (body["lab"]["trace_id"], QUESTIONS[i % len(QUESTIONS)])
    assert gw.online is not None and gw.online.drain(WAIT_S)
    expected = {rid for rid in traces if sampled(rid, 0.25)}
    assert 20 < len(expected) < 80                                         # about 50 (binomial, 5 sd)
    assert [s.response_id for s in model.seen] == [rid for rid in traces if rid in expected]   # in order, once each
    assert {s.response_id for s in rule.seen} == expected
    assert all(s.answer == "the answer Warsaw" and s.contexts and not s.streamed and s.route == CHAT
               and len(s.source_ids) == len(s.contexts) == len(s.scores) for s in model.seen)
    tesla = sum("Tesla" in traces[rid][1] for rid in expected)
    assert _metric(c, "lab_online_eval_sampled_total") == len(expected)
    assert _metric(c, "lab_online_eval_judged_total") == len(expected)
    assert _metric(c, "lab_online_eval_dropped_total") == 0
    assert _metric(c, 'lab_online_eval_flagged_total{judge="fake-model"}') == tesla
    assert _metric(c, 'lab_online_eval_verdicts_total{judge="fake-model"}') == len(expected)   # the flag rate's base
    assert _metric(c, 'lab_online_eval_flagged_total{judge="fake-rule"}') == 0
    assert _metric(c, 'lab_online_eval_judge_duration_seconds_count{judge="fake-rule"}') == len(expected)
    assert _metric(c, "lab_online_eval_queue_depth") == 0
    assert 'lab_errors_total{type="trace"}' not in c.get("/metrics").text   # every assessment landed
    mlflow.flush_trace_async_logging()   # the last (unsampled) traces are still on their way to the store
    for rid, (tid, question) in traces.items():
        found = _online(mlflow.get_trace(tid))
        if rid not in expected:
            assert found == {}, rid                                        # unsampled: not judged
            continue
        assert set(found) == {"online/grounded", "online/refusal"}, rid
        g, r = found["online/grounded"], found["online/refusal"]
        assert g.value is ("Tesla" not in question) and r.value is True
        assert g.source.source_type == "LLM_JUDGE" and g.source.source_id == "fake-model@fake@v1"
        assert r.source.source_type == "CODE" and r.metadata["agreement"] == "uncalibrated"
        assert g.metadata["response_id"] == rid and g.metadata["agreement_kappa"] == "0.81"
        assert g.metadata["agreement_split"] == "evaluation" and g.metadata["agreement_below_bar"] == "False"
        assert g.rationale.startswith("fake-model says")


def test_unsampled_routes_are_not_judged_and_a_route_can_have_its_own_rate(bundle: Path, tmp_path: Path):
    off = FakeJudge()
    gw = _gateway(bundle, tmp_path, [off], judge_sample=1.0, judge_sample_routes={CHAT: 0.0})
    c = _client(gw)
    for q in QUESTIONS:
        _ask(c, q)
    assert gw.online is not None and gw.online.drain(WAIT_S)
    assert off.seen == [] and _metric(c, "lab_online_eval_sampled_total") == 0
    on = FakeJudge()
    gw = _gateway(bundle, tmp_path, [on], judge_sample=0.0, judge_sample_routes={CHAT: 1.0})
    c = _client(gw)
    ids = [_ask(c, q)["id"] for q in QUESTIONS]
    assert gw.online is not None and gw.online.drain(WAIT_S)
    assert [s.response_id for s in on.seen] == ids
    assert _gateway(bundle, tmp_path, [FakeJudge()]).online is None       # rate 0: no queue, no thread


def test_a_response_whose_input_the_policy_blocked_is_not_drawn(bundle: Path, tmp_path: Path):
    from lab.guardrails import Policy, Rule, make_check

    judge = FakeJudge()
    s = Settings(feedback_path=tmp_path / "f.jsonl", mlflow_feedback=False, judge_sample=1.0)
    gw = ChatService(RAG(bundle), Echo(), settings=s, judges=[judge],
                     policy=Policy(input=[Rule(make_check("limits", max_chars=40), "block")]))
    c = _client(gw)
    blocked = _ask(c, "What is the capital of Poland? " * 3)
    answered = _ask(c, QUESTIONS[0])
    assert blocked["lab"]["blocked"] and not answered["lab"]["blocked"]
    assert gw.online is not None and gw.online.drain(WAIT_S)
    assert [x.response_id for x in judge.seen] == [answered["id"]]
    assert _metric(c, "lab_online_eval_sampled_total") == 1


def test_the_fallback_s_canned_message_is_not_drawn_but_a_model_s_answer_is(bundle: Path, tmp_path: Path):
    from test_serve import Broken

    judge = FakeJudge()
    s = Settings(feedback_path=tmp_path / "f.jsonl", mlflow_feedback=False, backoff_s=0.01, judge_sample=1.0)
    down = ChatService(RAG(bundle), Broken(), fallback=MessageUpstream("Busy; try again."), settings=s, judges=[judge])
    c = _client(down)
    assert _ask(c, QUESTIONS[0])["lab"]["generated_by"] == "message"
    up = ChatService(RAG(bundle), Echo(), fallback=MessageUpstream("Busy; try again."), settings=s, judges=[judge])
    answered = _ask(_client(up), QUESTIONS[0])["id"]
    assert down.online is not None and down.online.drain(WAIT_S) and up.online is not None and up.online.drain(WAIT_S)
    assert _metric(c, "lab_online_eval_sampled_total") == 0 and [x.response_id for x in judge.seen] == [answered]


def test_a_full_queue_drops_and_counts_and_responses_do_not_wait_for_the_judges(bundle: Path, tmp_path: Path):
    gate = threading.Event()
    slow = FakeJudge(gate=gate)
    gw = _gateway(bundle, tmp_path, [slow], judge_sample=1.0, judge_queue=2)
    c = _client(gw)
    first = _ask(c, QUESTIONS[0])["id"]
    assert slow.started.wait(WAIT_S)          # the worker holds the first response in the judge
    rest = [_ask(c, q)["id"] for q in QUESTIONS]   # answered while the judge is still held
    assert slow.seen == []
    assert _metric(c, "lab_online_eval_queue_depth") == 2
    assert _metric(c, "lab_online_eval_dropped_total") == 2
    gate.set()
    assert gw.online is not None and gw.online.drain(WAIT_S)
    assert [s.response_id for s in slow.seen] == [first, *rest[:2]]     # the queued two; the last two dropped
    assert _metric(c, "lab_online_eval_sampled_total") == 5 and _metric(c, "lab_online_eval_judged_total") == 3
    assert _metric(c, "lab_online_eval_queue_depth") == 0
    assert gw.online.close(WAIT_S) and not gw.online.submit(slow.seen[0])   # closed: dropped and counted
    assert _metric(c, "lab_online_eval_dropped_total") == 3


def test_on_shutdown_the_judges_finish_their_queue_then_stop_and_what_they_cannot_finish_is_dropped(
        bundle: Path, tmp_path: Path):
    from fastapi.testclient import TestClient

    gate = threading.Event()
    judge = FakeJudge(gate=gate)
    gw = _gateway(bundle, tmp_path, [judge], judge_sample=1.0)
    with TestClient(create_app(gw)) as c:   # leaving it runs the app's shutdown (its lifespan)
        ids = [_ask(c, q)["id"] for q in QUESTIONS[:3]]
        gate.set()
    assert gw.online is not None and gw.online._thread is not None and not gw.online._thread.is_alive()
    assert [s.response_id for s in judge.seen] == ids and _metric(c, "lab_online_eval_dropped_total") == 0
    held = threading.Event()
    stuck = FakeJudge(gate=held)
    gw = _gateway(bundle, tmp_path, [stuck], judge_sample=1.0)
    c = _client(gw)
    ids = [_ask(c, q)["id"] for q in QUESTIONS[:3]]
    assert stuck.started.wait(WAIT_S)
    assert gw.online is not None and gw.online.close(timeout_s=0.01) is False   # the held judge cannot finish
    assert _metric(c, "lab_online_eval_dropped_total") == 2                    # the two still queued
    held.set()
    assert gw.online.drain(WAIT_S) and [s.response_id for s in stuck.seen] == ids[:1]


def test_a_judge_that_raises_or_gives_no_verdict_is_a_counted_error_on_the_trace(
        bundle: Path, tmp_path: Path, isolated_mlflow: Path):
    import mlflow

    class NoVerdict:   # a lab judge whose output could not be read
        name, rubric_id, task, kind = "unparsed", "faithfulness@v2", "grounded", "prompted"

        def judge(self, items):
            return [Judgment(None, None, None, "???", self.name, self.rubric_id, error="no verdict word",
                             error_kind="parse") for _ in items]

    broken = FakeJudge("broken", "hallucination", error=RuntimeError("boom"))
    ok = FakeJudge("fine", "refusal", "CODE", agreement=None)
    gw = _gateway(bundle, tmp_path, [broken, LabJudge(NoVerdict(), "grounded", with_context=True), ok],
                  judge_sample=1.0, trace=True)
    c = _client(gw)
    tids = [_ask(c, q)["lab"]["trace_id"] for q in QUESTIONS[:3]]
    assert gw.online is not None and gw.online.drain(WAIT_S)
    mlflow.flush_trace_async_logging()
    assert _metric(c, 'lab_online_eval_errors_total{judge="broken"}') == 3
    assert _metric(c, 'lab_online_eval_errors_total{judge="unparsed"}') == 3
    assert _metric(c, "lab_online_eval_judged_total") == 3 and len(ok.seen) == 3   # the other judges still ran
    for tid in tids:
        found = _online(mlflow.get_trace(tid))
        assert set(found) == {"online/hallucination", "online/grounded", "online/refusal"}
        err = found["online/hallucination"]
        assert err.value is None and err.error.error_code == "JUDGE_ERROR" and "boom" in err.error.error_message
        assert "no verdict word" in found["online/grounded"].error.error_message
        assert found["online/refusal"].value is True


def test_a_streamed_response_is_judged_once_complete_after_the_client_has_it(bundle: Path, tmp_path: Path):
    gate = threading.Event()
    judge = FakeJudge(gate=gate)
    gw = _gateway(bundle, tmp_path, [judge], judge_sample=1.0)
    c = _client(gw)
    with c.stream("POST", CHAT, json={"messages": [{"role": "user", "content": QUESTIONS[0]}], "stream": True}) as r:
        events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert events[-1] == "[DONE]" and judge.seen == []    # the whole stream arrived; the judge is still held
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
    gate.set()
    assert gw.online is not None and gw.online.drain(WAIT_S)
    [served] = judge.seen
    assert served.streamed and served.answer == text == "the answer Warsaw" and served.response_id == chunks[0]["id"]
    assert served.contexts and served.scores and len(served.scores) == len(served.contexts)


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize(("kwargs", "words"), [
    ({"judge_sample": 1.5}, "judge_sample must be a share in"),
    ({"judge_sample": float("nan")}, "judge_sample must be a share in"),
    ({"judge_sample_routes": {"v1/chat": 0.5}}, "is not a route"),
    ({"judge_sample_routes": {CHAT: -0.1}}, "judge_sample_routes"),
    ({"judge_queue": 0}, "judge_queue must be an integer >= 1"),
    ({"refusal_min_support": 2}, "refusal_min_support"),
])
def test_online_settings_out_of_range_are_refused_by_name(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        Settings(**kwargs)


def test_route_shares_of_the_cli_are_parsed_or_refused():
    from lab.stage_outputs import route_shares

    assert route_shares([f"{CHAT}=0.5", "/other = 1"]) == {CHAT: 0.5, "/other": 1.0}
    for bad in ("0.5", f"{CHAT}=half", "=0.5"):
        with pytest.raises(ConfigError, match="expected ROUTE=SHARE"):
            route_shares([bad])


# --------------------------------------------------------------------------- the judges it runs
def _served(question: str, answer: str, contexts: tuple[str, ...] = (), scores: tuple[float, ...] = ()) -> Served:
    return Served("r1", None, CHAT, question, answer, contexts, scores or tuple(1.0 for _ in contexts))


def test_the_refusal_rule_flags_an_answer_to_a_question_the_index_cannot_answer():
    judge = RefusalJudge(min_support=0.3)
    warsaw = (CORPUS["d1"]["text"],)
    assert isinstance(judge, OnlineJudge) and judge.source_type == "CODE" and judge.agreement is None
    answered = judge.assess(_served("Who painted the Mona Lisa?", "Leonardo da Vinci painted it.", warsaw))
    assert answered.flagged and answered.details["answerable"] is False and answered.details["refused"] is False
    assert "cannot answer" in answered.rationale
    refused = judge.assess(_served("Who painted the Mona Lisa?", "I don't know: the passages do not say.", warsaw))
    assert not refused.flagged and refused.details["refused"] is True
    fine = judge.assess(_served("What is the capital of Poland?", "Warsaw.", warsaw))
    assert not fine.flagged and fine.details["answerable"] is True and fine.details["question_support"] >= 0.3
    assert judge.assess(_served("What is the capital of Poland?", "Warsaw.")).flagged          # no passage at all
    by_score = RefusalJudge(min_support=0.3, min_score=5.0)
    low = by_score.assess(_served("What is the capital of Poland?", "Warsaw.", warsaw, (1.2,)))
    assert low.flagged and "best retrieval score 1.200 < 5" in low.rationale
    assert by_score.version != judge.version                             # the settings are part of the version


def test_the_claim_level_grounding_judge_flags_unsupported_claims_and_skips_an_answer_without_passages():
    judge = grounding_judge(None)
    assert judge.name == "claims:lexical" and judge.source_type == "CODE" and judge.agreement is None
    assert judge.version.startswith("claim-support@v")
    context = (CORPUS["d1"]["text"],)
    ok = judge.assess(_served("Capital of Poland?", "Warsaw is the capital of Poland.", context))
    assert ok is not None and not ok.flagged
    bad = judge.assess(_served("Capital of Poland?", "Warsaw is the capital of Poland. It has three moons "
                                                     "orbiting the city.", context))
    assert bad is not None and bad.flagged and "three moons" in bad.rationale
    assert bad.details["claims_unsupported"] == 1 and json.loads(bad.details["unsupported"])[0]["start"] > 0
    assert judge.assess(_served("Capital of Poland?", "Warsaw.")) is None   # nothing to check against


def test_a_claim_level_default_runs_claim_by_claim_over_its_pair_scorer_s_folder(tmp_path):
    from conftest import fake_judge_model

    from lab.handoff import judges

    folder = fake_judge_model(tmp_path / "judge_eval", "claim-support-cross-encoder", 0.7)
    judges.write(tmp_path / "judge_eval", {"default": {"grounded": "claims:claim-support-cross-encoder"}})
    judge = grounding_judge(tmp_path / "judge_eval")
    assert judge.name == "claims:claim-support-cross-encoder"
    assert judge.judge.scorer.judge.folder == folder and judge.judge.threshold == pytest.approx(0.3)


def test_the_relevance_rule_asks_the_bundle_s_retriever_about_the_answer(bundle: Path):
    rag = RAG(bundle)
    judge = relevance_judge(Settings(), rag)
    assert isinstance(judge, OnlineJudge) and judge.source_type == "CODE" and judge.agreement is None
    q = "What is the capital of Poland?"
    ids = tuple(d for d, _ in rag.search([q])[0])
    assert ids == ("d1",)

    def ask(answer: str, j=judge):
        return j.assess(Served("r1", None, CHAT, q, answer, source_ids=ids))

    short = ask("Warsaw.")   # no word of the question, but it retrieves the question's passage
    assert short is not None and not short.flagged and short.details["top_passage"] == "d1"
    assert short.details["question_overlap"] == 0 and short.score == 0
    off = ask("Nikola Tesla was born in 1856.")
    assert off is not None and off.flagged and off.score == 1 and off.details["top_passage"] == "d3"
    assert "(d3) is not one the question retrieved" in off.rationale
    assert ask("I don't know: the passages do not say.") is None and ask("") is None   # the refusal judge's
    words_only = relevance_judge(Settings(relevance_min=0.5), None)
    assert words_only.version != judge.version
    bare = ask("Warsaw.", words_only)
    assert bare is not None and bare.flagged and bare.details["top_passage"] is None   # no retriever to ask
    full = ask("The capital of Poland is Warsaw.", words_only)
    assert full is not None and not full.flagged


def _judges_dir(tmp_path: Path, calibration: dict | None = None) -> Path:
    out = tmp_path / "judge_eval"
    handoff.write(out, {"default": {"grounded": "faithfulness-cross-encoder", "general": "hallucination-cross-encoder"},
                        "validation_kappa": {"grounded": {"claims:lexical": 0.55, "faithfulness-cross-encoder": 0.88}},
                        "agreement_bar": 0.4})
    if calibration is not None:
        (out / handoff.CALIBRATION).write_text(json.dumps(calibration))
    return out


def test_agreement_is_read_from_the_judges_handoff_evaluation_first_then_validation(tmp_path: Path):
    out = _judges_dir(tmp_path, {"grounded/faithfulness-cross-encoder": {
        "kappa": 0.92, "kappa_ci": [0.88, 0.95], "n": 500, "rubric": "faithfulness-cross-encoder@3482d277"}})
    a = handoff.agreement(out, "grounded", "faithfulness-cross-encoder")
    assert a is not None and (a.kappa, a.split, a.n, a.kappa_ci, a.bar) == (0.92, "evaluation", 500, (0.88, 0.95), 0.4)
    assert a.rubric == "faithfulness-cross-encoder@3482d277" and a.below_bar is False
    assert a.source == str(out / handoff.CALIBRATION)
    v = handoff.agreement(out, "grounded", "claims:lexical")
    assert v is not None and (v.kappa, v.split, v.n, v.kappa_ci) == (0.55, "validation", None, None)
    assert handoff.agreement(out, "general", "nobody") is None
    (out / handoff.CALIBRATION).write_text(json.dumps({"grounded/claims:lexical": {"kappa": "high"}}))
    with pytest.raises(Exception, match="no numeric kappa"):
        handoff.agreement(out, "grounded", "claims:lexical")


def test_the_default_judges_follow_the_judges_handoff_and_the_gateway_builds_them(bundle: Path, tmp_path: Path):
    from lab.serve.app import build

    out = _judges_dir(tmp_path)   # the trained judges' folders are not there: the rules, with their agreement
    judges = default_judges(Settings(refusal_min_support=0.5), judges_dir=out)
    assert [(j.aspect, j.name) for j in judges] == [("grounded", "claims:lexical"), ("refusal", "refusal-rule"),
                                                    ("relevance", "relevance-rule")]
    assert judges[0].agreement is not None and judges[0].agreement.kappa == 0.55
    assert judges[1].min_support == 0.5
    gw, proc = build(bundle, upstream="http://127.0.0.1:9/v1#m", fallback="none", judges_dir=out,
                     settings=Settings(judge_sample=0.25, mlflow_feedback=False))
    assert proc is None and gw.online is not None and gw.online.rate == 0.25
    assert [j.name for j in gw.online.judges] == ["claims:lexical", "refusal-rule", "relevance-rule"]
    assert gw.online.judges[2].assess(Served("r1", None, CHAT, "capital of Poland?", "Warsaw.",
                                             source_ids=("d1",))).flagged is False   # it asks the bundle's index
    gw, _ = build(bundle, upstream="http://127.0.0.1:9/v1#m", fallback="none", settings=Settings(mlflow_feedback=False))
    assert gw.online is None


def test_the_benchmark_writes_both_conditions_with_counts_that_add_up(tmp_path: Path):
    from conftest import load_script

    bench = load_script("benchmarks/online_eval.py")
    out = tmp_path / "online_eval.json"
    assert bench.main(["--n", "16", "--rounds", "2", "--warmup", "2", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    base, control, judged = got["sample_0"], got["sample_0_control"], got["sample_0.25"]
    assert base["requests"] == control["requests"] == judged["requests"] == 16
    assert base["judged"] == base["sampled"]["count"] == control["judged"] == 0
    assert judged["judged"] + judged["dropped"] == judged["sampled"]["count"]   # every sampled one judged or dropped
    assert judged["unsampled"]["count"] + judged["sampled"]["count"] == 16
    assert {j["aspect"] for j in got["judges"]} == {"grounded", "refusal", "relevance"} and got["unsampled_p50_ratio"] > 0
    assert got["control_p50_ratio"] > 0 and len(got["control_p50_ratio_ci"]) == 2
