"""Gateway traces to label: the RAG gateway run in-process (a fake upstream that answers per question)
with MLflow tracing on, three questions asked, thumbs down on one answer, and an online judge's verdict
(an LLM_JUDGE assessment, as the online evaluation logs them) on another."""

from __future__ import annotations

from pathlib import Path

from lab.export.winner import ArmScore, choose_arm
from lab.generate.domain_qa_prompt import PROMPT_VERSION
from lab.handoff.bundle import ServedModel, write_bundle
from lab.serve.upstream import Delta

CORPUS = {
    "w1": {"title": "Warsaw", "text": "Warsaw is the capital of Poland and stands on the Vistula river."},
    "n1": {"title": "Normans", "text": "The Normans gave their name to Normandy, a region in France."},
    "t1": {"title": "Tesla", "text": "Nikola Tesla was born in 1856 in Smiljan and worked on <b>alternating</b> current."},
}
#: Question -> the answer the fake upstream gives (the Tesla one is not in its passage).
ANSWERS = {"What is the capital of Poland?": "Warsaw",
           "Who gave their name to Normandy?": "the Normans",
           "When was Tesla born?": "Tesla was born in 1901 in Paris"}
#: The online judge's verdict logged on the Tesla answer's trace.
JUDGE_SOURCE = "faithfulness-cross-encoder@3482d277"
JUDGE_META = {"judge": "faithfulness-cross-encoder", "agreement_kappa": "0.92", "agreement_split": "evaluation",
              "agreement_n": "500", "agreement_kappa_ci": "[0.88, 0.95]"}


class PerQuestion:
    """An upstream that answers each question of :data:`ANSWERS`, in two deltas."""

    name = "per-question"

    async def stream(self, messages, *, max_tokens, temperature, stop=()):
        question = messages[-1]["content"].rsplit("Question: ", 1)[1].strip()
        answer = ANSWERS.get(question, "I do not know")
        yield Delta(answer[: len(answer) // 2])
        yield Delta(answer[len(answer) // 2:], prompt_tokens=9, completion_tokens=4)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def make_bundle(tmp_path: Path) -> Path:
    """A BM25 serving bundle over :data:`CORPUS`."""
    return write_bundle(tmp_path / "bundle", retrieval_config={"retriever": "bm25", "chunker": "none"},
                        corpus=CORPUS, model=ServedModel("m", spec="m"),
                        choice=choose_arm([ArmScore("rag", 0.5, 0.4, 0.6, 10, 1.0)]), k=2,
                        prompt_version=PROMPT_VERSION,
                        generation={"max_new_tokens": 24, "temperature": 0.0, "seed": 0, "stop": ["\n"]})


def make_traces(tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    """Ask :data:`ANSWERS`' questions through a traced gateway; returns (the tracking URI, question ->
    trace id, the bundle). The caller points MLflow's store at a fresh folder first (``LAB_MLFLOW_DIR``)."""
    import mlflow
    from fastapi.testclient import TestClient
    from mlflow.entities import AssessmentSource

    from lab.serve.chat import RAG, ChatService, Settings
    from lab.serve.gateway import create_app
    from lab.tracking import tracking_uri

    bundle = make_bundle(tmp_path)
    gw = ChatService(RAG(bundle), PerQuestion(), settings=Settings(
        trace=True, mlflow_feedback=False, feedback_path=tmp_path / "feedback.jsonl"))
    client = TestClient(create_app(gw))
    ids, responses = {}, {}
    for q in ANSWERS:
        body = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": q}]}).json()
        ids[q], responses[q] = body["lab"]["trace_id"], body["id"]
    mlflow.flush_trace_async_logging()   # the traces are in the store before anything is logged on them
    assert client.post("/v1/feedback", json={"response_id": responses["Who gave their name to Normandy?"],
                                             "rating": "down", "comment": "too short"}).status_code == 200
    mlflow.log_feedback(trace_id=ids["When was Tesla born?"], name="online/grounding", value=False,
                        rationale="1901 and Paris are in no passage", metadata=JUDGE_META,
                        source=AssessmentSource(source_type="LLM_JUDGE", source_id=JUDGE_SOURCE))
    return tracking_uri(), ids, bundle
