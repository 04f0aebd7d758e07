"""The labelling queue: sampled gateway traces as items a person labels (``lab label`` ->
``notebooks/label.py``), and each label stored twice: in the labels file
(:mod:`lab.data.trace_labels`) and as an assessment on the trace.

**What an item holds** (:func:`item_of`, from one ``chat`` trace of :mod:`lab.serve.tracing`): the
question and the answer as sent (the root span's inputs and outputs), the sources in the response's
order with their retrieval scores (the ``retrieval`` span) and texts (the passages of the prompt in
the ``generation`` span, which the model saw; a bundle's ``passages.jsonl`` fills titles, and texts
the prompt did not hold), the guardrail rules that fired (``apply_guardrail`` spans), the thumbs
(the ``user_rating`` assessment the gateway logs from ``/v1/feedback``), any other assessment on
the trace (the online judges' verdicts, ``trace.info.assessments``), and a human label already there.

**Which traces** (:func:`sample_traces`): the experiment's traces newest first; a trace is in the
sample when a hash of its id (seeded) is below ``rate``, so the sample is a fixed function of the
ids; traces that are not the gateway's, or that ended without an answer (an upstream failure), are
skipped; ``judged_only`` keeps the traces an online judge assessed.

**A label** (:func:`label_trace`): a feedback assessment ``human_label`` (value: the label;
rationale: the comment; source ``HUMAN`` with the labeller's name; metadata: the corrected answer
and the labels file), overriding the trace's earlier human label so that one stays valid; a
corrected answer is also an ``expected_response`` expectation (MLflow's name for the reference
answer). Then the label is written to the file with the assessment's id. When the trace cannot be
written to, the label is still written to the file (``assessment_id`` None) and the error is returned.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.data.trace_labels import LABELS, Source, TraceLabel, Verdict, record_label
from lab.serve.online_eval import sampled  # the same hash sample the online judges draw

#: The gateway's root span (:meth:`lab.serve.chat.ChatService.start`).
GATEWAY_TRACE = "chat"
#: The thumbs assessment (:meth:`lab.serve.tracing.Tracer.feedback`).
THUMBS = "user_rating"
#: The human label's assessment, and the corrected answer's expectation.
LABEL = "human_label"
CORRECTED = "expected_response"
#: The marker in the metadata of what the queue logs.
MARK = {"lab.source": "label-queue"}


@dataclass(frozen=True)
class Guardrail:
    """One guardrail rule that fired on the request (an ``apply_guardrail`` span not ``allow``)."""

    stage: str      # input, context, output
    check: str
    result: str     # deny, modify, warn
    action: str     # the policy's action: block, drop, redact, fallback, warn, ...
    reason: str = ""


@dataclass(frozen=True)
class QueueItem:
    """One served answer of the queue (see the module docstring)."""

    trace_id: str
    started: str                        # ISO time of the request (UTC)
    question: str
    answer: str
    sources: tuple[Source, ...] = ()
    verdicts: tuple[Verdict, ...] = ()  # the judges' assessments on the trace (not the thumbs, not people's labels)
    thumbs: str | None = None           # up, down or None
    thumbs_comment: str | None = None
    guardrails: tuple[Guardrail, ...] = ()
    blocked: bool = False
    response_id: str = ""
    human: str | None = None            # the valid human label on the trace, if any
    human_id: str | None = None         # its assessment id


def prompt_passages(text: str) -> list[str]:
    """The passages of a RAG prompt's user message (:func:`lab.generate.domain_qa_prompt.with_context`:
    ``Passages:\\n[1] ...\\n\\n[2] ...\\n\\nAnswer with ...``), in order; ``[]`` for any other prompt."""
    head = "Passages:\n[1] "
    if not text.startswith(head):
        return []
    body = text[len(head):]
    end = body.rfind("\n\nAnswer with a short span")
    body = body[:end] if end >= 0 else body
    out, i, pos = [], 1, 0
    while True:
        nxt = body.find(f"\n\n[{i + 1}] ", pos)
        if nxt < 0:
            out.append(body[pos:])
            return out
        out.append(body[pos:nxt])
        pos, i = nxt + len(f"\n\n[{i + 1}] "), i + 1


def bundle_passages(bundle_dir: str | Path) -> dict[str, dict[str, str]]:
    """Passage id -> ``{"title", "text"}`` of a serving bundle (its ``passages.jsonl``).

    Raises
    ------
    lab.handoff.bundle.BundleError
        Not a bundle of this code's format.
    """
    from lab.handoff.bundle import read_bundle
    from lab.io import iter_jsonl

    d = Path(bundle_dir)
    read_bundle(d)   # the header checked: a foreign folder fails here, naming the file
    return {str(r.record["id"]): {"title": str(r.record.get("title", "")), "text": str(r.record.get("text", ""))}
            for r in iter_jsonl(d / "passages.jsonl") if "id" in r.record}


def _assessments(trace: Any) -> list[Any]:
    return [a for a in (trace.info.assessments or []) if getattr(a, "valid", True) is not False]


def _verdict(a: Any) -> Verdict:
    src = getattr(a, "source", None)
    value = getattr(a, "value", None)
    if not isinstance(value, bool | int | float | str) or value is None:
        value = None if value is None else str(value)
    err = getattr(a, "error", None)
    return Verdict(name=a.name, value=value, source_type=str(getattr(src, "source_type", "") or ""),
                   source_id=str(getattr(src, "source_id", "") or ""),
                   rationale=getattr(a, "rationale", None) or (getattr(err, "error_message", None) if err else None),
                   metadata={str(k): str(v) for k, v in (a.metadata or {}).items()})


def item_of(trace: Any, passages: Mapping[str, Mapping[str, str]] | None = None) -> QueueItem | None:
    """The queue item of one MLflow trace; None when it is not a gateway trace with an answer."""
    spans = list(trace.data.spans or [])
    root = next((s for s in spans if s.parent_id is None), None)
    if root is None or root.name != GATEWAY_TRACE or not isinstance(root.inputs, dict):
        return None
    out = root.outputs if isinstance(root.outputs, dict) else {}
    question, answer = root.inputs.get("question"), out.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str):
        return None
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    scores = {}
    for s in by_name.get("retrieval", []):
        for hit in s.outputs or []:
            if isinstance(hit, dict) and "id" in hit:
                scores[str(hit["id"])] = hit.get("score")
    prompted: list[str] = []
    for s in by_name.get("generation", []):
        msgs = s.inputs.get("messages") or [] if isinstance(s.inputs, dict) else []
        users = [m.get("content") for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            prompted = prompt_passages(users[-1])
    sources = []
    for i, sid in enumerate(str(x) for x in out.get("sources") or []):
        known = (passages or {}).get(sid, {})
        text = prompted[i] if i < len(prompted) else known.get("text", "")
        score = scores.get(sid)
        sources.append(Source(id=sid, score=float(score) if isinstance(score, int | float) else None,
                              title=known.get("title", ""), text=text, prompted=i < len(prompted)))
    fired = []
    for s in by_name.get("apply_guardrail", []):
        a = s.attributes or {}
        if a.get("gen_ai.guardrail.result", "allow") != "allow":
            fired.append(Guardrail(str(a.get("lab.guardrail.stage", "")), str(a.get("gen_ai.guardrail.name", "")),
                                   str(a.get("gen_ai.guardrail.result", "")), str(a.get("lab.guardrail.action", "")),
                                   str(a.get("gen_ai.guardrail.reason", "") or "")))
    thumbs = comment = human = human_id = None
    verdicts = []
    for a in sorted(_assessments(trace), key=lambda x: getattr(x, "create_time_ms", 0) or 0):
        src = str(getattr(getattr(a, "source", None), "source_type", ""))
        if a.name == THUMBS and isinstance(getattr(a, "value", None), bool):
            thumbs, comment = ("up" if a.value else "down"), getattr(a, "rationale", None)
        elif a.name == LABEL and src == "HUMAN":
            human, human_id = str(a.value), a.assessment_id
        elif a.name != CORRECTED:
            verdicts.append(_verdict(a))
    attrs = root.attributes or {}
    started = datetime.fromtimestamp((trace.info.request_time or 0) / 1000, UTC).isoformat(timespec="seconds")
    return QueueItem(trace.info.trace_id, started, question, answer, tuple(sources), tuple(verdicts), thumbs, comment,
                     tuple(fired), bool(attrs.get("blocked", False)), str(attrs.get("response_id", "") or ""),
                     human, human_id)


def _client(tracking_uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_uri)


def experiment_id(tracking_uri: str, experiment: str) -> str:
    """The id of ``experiment`` in the store at ``tracking_uri``.

    Raises
    ------
    lab.errors.DataError
        No experiment of that name in the store (the message lists the ones there).
    """
    from lab.errors import DataError

    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise DataError(f"{tracking_uri}: no experiment {experiment!r} (there: {', '.join(names) or 'none'}); "
                        "`lab serve` traces into 'lab', or pass --experiment NAME")
    return str(exp.experiment_id)


def sample_traces(tracking_uri: str, experiment: str, *, limit: int = 200, rate: float = 1.0, seed: int = 0,
                  judged_only: bool = False, passages: Mapping[str, Mapping[str, str]] | None = None,
                  page: int = 200) -> list[QueueItem]:
    """Up to ``limit`` items of the sampled gateway traces of ``experiment``, newest first (see the
    module docstring).

    Raises
    ------
    lab.errors.DataError
        No experiment of that name in the store (the message lists the ones there).
    """
    client = _client(tracking_uri)
    exp_id = experiment_id(tracking_uri, experiment)
    out: list[QueueItem] = []
    token = None
    while len(out) < limit:
        got = client.search_traces(locations=[exp_id], max_results=page, page_token=token,
                                   order_by=["timestamp_ms DESC"])
        for trace in got:
            if not sampled(trace.info.trace_id, rate, seed):
                continue
            item = item_of(trace, passages)
            if item is None or (judged_only and not any(v.source_type != "HUMAN" for v in item.verdicts)):
                continue
            out.append(item)
            if len(out) >= limit:
                break
        token = got.token
        if not token:
            break
    return out


def label_trace(labels_path: str | Path, item: QueueItem, label: str, *, comment: str = "",
                corrected_answer: str | None = None, labeller: str = "", tracking_uri: str,
                labelled_at: str | None = None) -> tuple[TraceLabel, str | None]:
    """Label ``item``: the assessment on its trace, then the labels file (see the module docstring).
    Returns the label as written and the error that kept it off the trace (None when it is there).

    Raises
    ------
    ValueError
        ``label`` is not one of :data:`lab.data.trace_labels.LABELS`.
    lab.errors.DataError
        The labels file exists but is not a readable labels file: nothing is written.
    """
    from lab.data.trace_labels import read_labels

    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
    read_labels(labels_path, missing_ok=True)   # a broken file fails before the trace is touched
    corrected = (corrected_answer or "").strip() or None
    made = TraceLabel(trace_id=item.trace_id, label=label, comment=comment.strip(),  # type: ignore[arg-type]
                      corrected_answer=corrected, question=item.question, answer=item.answer,
                      sources=list(item.sources), verdicts=list(item.verdicts), thumbs=item.thumbs,  # type: ignore[arg-type]
                      labeller=labeller, labelled_at=labelled_at or datetime.now(UTC).isoformat(timespec="seconds"))
    error = None
    try:
        made = made.model_copy(update={"assessment_id": _log_on_trace(tracking_uri, made, labels_path)})
    except Exception as exc:  # noqa: BLE001 (the file is the durable record: the label is kept, the error said)
        error = f"{type(exc).__name__}: {exc}"
    record_label(labels_path, made)
    return made, error


def _log_on_trace(tracking_uri: str, made: TraceLabel, labels_path: str | Path) -> str:
    """Log ``made`` on its trace (overriding the valid human label there) and its corrected answer;
    returns the label's assessment id."""
    from mlflow.entities import AssessmentSource, Expectation, Feedback
    from mlflow.tracing.client import TracingClient

    client = TracingClient(tracking_uri)
    trace = _client(tracking_uri).get_trace(made.trace_id)
    current = [a for a in _assessments(trace) if a.name == LABEL
               and str(getattr(a.source, "source_type", "")) == "HUMAN"]
    source = AssessmentSource(source_type="HUMAN", source_id=made.labeller or "label-queue")
    meta = {**MARK, "labels_file": str(Path(labels_path).resolve())}
    if made.corrected_answer is not None:
        meta["corrected_answer"] = made.corrected_answer
    logged = client.log_assessment(made.trace_id, Feedback(
        name=LABEL, value=made.label, rationale=made.comment or None, source=source, metadata=meta,
        overrides=current[-1].assessment_id if current else None))
    for old in _assessments(trace):   # one corrected answer of the queue's on the trace: the latest
        if old.name == CORRECTED and (old.metadata or {}).get("lab.source") == MARK["lab.source"]:
            client.delete_assessment(made.trace_id, old.assessment_id)
    if made.corrected_answer is not None:
        client.log_assessment(made.trace_id, Expectation(name=CORRECTED, value=made.corrected_answer,
                                                         source=source, metadata=dict(MARK)))
    return str(logged.assessment_id)


# --------------------------------------------------------------------------- what the app shows


def _figure(value: Any) -> str:
    """A figure a verdict's metadata carries (a string on the trace) to 3 decimals; other text as it is."""
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value)


def _value(v: Verdict) -> str:
    if isinstance(v.value, bool):
        return "pass" if v.value else '<b style="color: #c92a2a">FLAGGED</b>'
    return "error" if v.value is None else html.escape(str(v.value))


def item_html(item: QueueItem, label: TraceLabel | None = None) -> str:
    """The item card of the app: time, trace, the question, the answer, the label so far, the thumbs,
    the judges' verdicts, the guardrails that fired and each source; all text from the trace is escaped."""
    e = html.escape
    said = "unlabelled"
    if label is not None:
        said = f"labelled <b>{e(label.label)}</b>" + (f" by {e(label.labeller)}" if label.labeller else "")
        said += f" ({e(label.comment)})" if label.comment else ""
    elif item.human is not None:
        said = f"labelled <b>{e(item.human)}</b> on the trace (not in this labels file)"
    facts = [e(item.started), f"<code>{e(item.trace_id)}</code>", said]
    parts = [f'<p>{" &middot; ".join(facts)}</p>', f'<p style="font-size: 1.15em"><b>Q:</b> {e(item.question)}</p>',
             f'<p><b>A:</b> {e(item.answer)}' + (" <i>(blocked by the input guardrails)</i>" if item.blocked else "")
             + "</p>"]
    if label is not None and label.corrected_answer:
        parts.append(f'<p style="color: #1864ab"><b>corrected A:</b> {e(label.corrected_answer)}</p>')
    thumbs = "no thumbs" if item.thumbs is None else f"thumbs {item.thumbs}" + (
        f": {e(item.thumbs_comment)}" if item.thumbs_comment else "")
    parts.append(f"<p><b>user:</b> {thumbs}</p>")
    if item.verdicts:
        rows = "".join(f"<li><b>{e(v.name)}</b>: {_value(v)} <small>({e(v.source_type)} {e(v.source_id)}"
                       + (f", offline kappa {e(_figure(v.metadata['agreement_kappa']))}" if "agreement_kappa" in v.metadata
                          else "")
                       + ")</small>" + (f" &mdash; {e(v.rationale)}" if v.rationale else "") + "</li>" for v in item.verdicts)
        parts.append(f"<p><b>judges:</b></p><ul>{rows}</ul>")
    else:
        parts.append("<p><b>judges:</b> no verdict on this trace</p>")
    if item.guardrails:
        rows = "".join(f"<li>{e(g.stage)}: <b>{e(g.check)}</b> {e(g.result)} ({e(g.action)})"
                       + (f" &mdash; {e(g.reason)}" if g.reason else "") + "</li>" for g in item.guardrails)
        parts.append(f"<p><b>guardrails fired:</b></p><ul>{rows}</ul>")
    if not item.sources:
        parts.append("<p><i>No source: nothing was retrieved for this answer.</i></p>")
    for i, s in enumerate(item.sources, start=1):
        head = " &middot; ".join(x for x in (f"<code>{e(s.id)}</code>", e(s.title),
                                             f"score {s.score:.3f}" if s.score is not None else "",
                                             "" if s.prompted else "<b>dropped by the context guardrails</b>") if x)
        body = e(s.text) if s.text else "<i>(text not in the trace; pass the bundle to see it)</i>"
        parts.append(f'<p>source [{i}]: {head}</p><div style="white-space: pre-wrap; padding: 0.5em; '
                     f'border: 1px solid #ccc; border-radius: 4px">{body}</div>')
    return "\n".join(parts)


@dataclass
class QueueCounts:
    """How far the labelling has got, for the app's header."""

    items: int
    labelled: int
    by_label: dict[str, int] = field(default_factory=dict)


def queue_counts(items: list[QueueItem], labels: Mapping[str, TraceLabel]) -> QueueCounts:
    """Items shown, those with a label in the file, and the labels by kind (of those items)."""
    mine = [labels[i.trace_id] for i in items if i.trace_id in labels]
    return QueueCounts(len(items), len(mine), {k: sum(x.label == k for x in mine) for k in LABELS})
