"""Serving: the RAG gateway in front of vLLM (or any OpenAI-compatible server), its metrics,
user feedback and the playground page. Reads an export bundle (:mod:`lab.handoff.bundle`).

- :mod:`lab.serve.upstream`  the generator behind the gateway: an OpenAI-compatible server
  (streamed over HTTP) or an in-process lab backend; bounded retries, then the fallback.
- :mod:`lab.serve.metrics`   Prometheus series (OpenTelemetry GenAI names where one exists).
- :mod:`lab.serve.rag`       the bundle's retriever and the study's prompt (refuses another prompt version).
- :mod:`lab.serve.chat`      the chat service: retrieve -> guard -> generate -> guard, with sources; plain Python.
- :mod:`lab.serve.streamguard` a streamed answer through the output guardrails: released piece by piece
  behind a held-back window, whole-answer checks at the end, late verdicts recorded.
- :mod:`lab.serve.feedback`  where user feedback is stored (a JSON-lines file, an MLflow run).
- :mod:`lab.serve.gateway`   the thin FastAPI routes over it: ``/v1/chat/completions``, ``/v1/feedback``,
  ``/healthz``, ``/readyz``, ``/metrics``, ``/`` (playground).
"""
