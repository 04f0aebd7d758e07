"""Guardrails: input classifiers, retrieved-passage checks and output validators as one policy layer.

>>> from lab.guardrails import Policy
>>> policy = Policy.from_config({"input": [{"check": "limits", "action": "block"},
...                                        {"check": "pii", "action": "redact"}]})   # doctest: +SKIP
>>> policy.apply("Mail me at jane@example.com", "input").text                      # doctest: +SKIP
'Mail me at <EMAIL_ADDRESS>'

Checks (:data:`CHECKS`; plugins through the entry-point group ``lab.guardrail_checks``):

``limits``       input size and encoding (characters, bytes, lone surrogates, control characters)
``pii``          Presidio's analyzer on spaCy's offline NER pipeline; redaction through its anonymizer
``secrets``      API keys, tokens, private keys, passwords (detect-secrets)
``json_schema``  output JSON validated by jsonschema, one repair attempt (json-repair)
``refusal``      the model declined or said it does not know
``injection``    prompt injection: a classifier trained on labelled prompts, named rules as a floor
``toxicity``     toxic or offensive text: a classifier trained on labelled comments
``grounding``    the answer supported by its context, judged by the judge layer's trained faithfulness model

A policy has three sides: ``input`` (the user's message), ``context`` (each retrieved passage,
:mod:`lab.guardrails.context`: dropped, neutralised or flagged; its offline measure is
``lab.guardrails.context.evaluate_context``) and ``output`` (the answer), and ``exceptions``
(allow-lists, :class:`lab.guardrails.policy.Allowlist`).

Importing this package is cheap: Presidio, spaCy and detect-secrets load on first use.
"""

from __future__ import annotations

from lab.guardrails import grounding, injection, pii, rules, secrets  # noqa: F401  (register the checks)
from lab.guardrails.base import CHECKS, Check, Decision, Span, make_check, safe_text
from lab.guardrails.policy import (
    ACTIONS,
    CONTEXT_ACTIONS,
    ContextResult,
    Outcome,
    PassageResult,
    Policy,
    PolicyResult,
    Rule,
    neutralise,
)

__all__ = ["ACTIONS", "CHECKS", "CONTEXT_ACTIONS", "Check", "ContextResult", "Decision", "Outcome", "PassageResult",
           "Policy", "PolicyResult", "Rule", "Span", "make_check", "neutralise", "safe_text"]
