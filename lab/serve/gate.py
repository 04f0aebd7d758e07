"""The promotion gate: a canary evaluation through the gateway before the ``champion`` alias moves.

The bundle's held-out questions (``eval.jsonl``: question, references, topic, the offline answer and
the passages the offline evaluation retrieved) are sent through the running gateway with the
study's ``k`` and topic. Two conditions, both logged with the model version:

- **no training-serving skew**: for every question the gateway's sources are the passages the
  offline evaluation put in the prompt, in the same order;
- **quality**: the gateway's mean token F1 lies inside the 95% bootstrap CI of the offline F1 of the
  same questions (and the offline mean inside the gateway's CI).

A bundle whose index was built from other data fails the first; a model that answers differently
fails the second.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lab.io import read_jsonl


def read_eval(bundle_dir: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(bundle_dir) / "eval.jsonl")


async def _ask_all(client: Any, items: list[dict[str, Any]], k: int, max_tokens: int, concurrency: int,
                   headers: dict[str, str]) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(concurrency)

    async def one(item: dict[str, Any]) -> dict[str, Any]:
        async with sem:
            r = await client.post("/v1/chat/completions", headers=headers, json={
                "messages": [{"role": "user", "content": item["question"]}], "k": k,
                "topic": item.get("title", "").replace("_", " ") or None, "max_tokens": max_tokens})
            if r.status_code != 200:
                return {"error": f"HTTP {r.status_code}: {r.text[:200]}"}
            return r.json()

    return await asyncio.gather(*[one(i) for i in items])


def canary(bundle_dir: str | Path, *, app: Any = None, url: str | None = None, api_key: str | None = None,
           max_tokens: int | None = None, concurrency: int = 8, n_resamples: int = 2000, seed: int = 0,
           timeout_s: float = 600.0) -> dict[str, Any]:
    """Run the gate against a gateway (an ASGI ``app`` in process, or its ``url``); the result dict
    has ``passed`` and the figures behind it. ``max_tokens`` defaults to the bundle's
    ``generation.max_new_tokens`` (the answer length the offline scores were measured with)."""
    import httpx

    from lab.generate.domain_qa_prompt import clean_prediction
    from lab.handoff.bundle import read_bundle
    from lab.metrics.qa import token_f1
    from lab.metrics.stats import bootstrap_ci

    meta = read_bundle(bundle_dir)
    items = read_eval(bundle_dir)
    if len(items) < 2:
        return {"passed": False, "reason": f"{bundle_dir}: eval.jsonl has {len(items)} question(s); the gate needs 2+"}
    k = int(meta["retrieval"]["k"])
    max_tokens = max_tokens or int(meta["generation"]["max_new_tokens"])
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def run() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=app) if app is not None else None
        async with httpx.AsyncClient(transport=transport, base_url=url or "http://gateway", timeout=timeout_s) as c:
            return await _ask_all(c, items, k, max_tokens, concurrency, headers)

    answers = asyncio.run(run())
    errors = [a["error"] for a in answers if "error" in a]
    if errors:
        return {"passed": False, "reason": f"{len(errors)} request(s) failed, e.g. {errors[0]}", "errors": len(errors)}
    served, offline, skew = [], [], []
    for item, a in zip(items, answers, strict=True):
        pred = clean_prediction(a["choices"][0]["message"]["content"])
        served.append(token_f1(pred, item["answers"]))
        offline.append(token_f1(item.get("offline_prediction") or "", item["answers"]))
        want = item.get("offline_contexts")
        if want is not None and retrieved_texts(a["sources"]) != want:
            skew.append(item["id"])
    s_mean, s_lo, s_hi = bootstrap_ci(served, n_resamples=n_resamples, seed=seed)
    o_mean, o_lo, o_hi = bootstrap_ci(offline, n_resamples=n_resamples, seed=seed)
    quality = o_lo <= s_mean <= o_hi and s_lo <= o_mean <= s_hi
    reasons = []
    if skew:
        reasons.append(f"retrieval skew on {len(skew)} of {len(items)} questions (e.g. {skew[0]}): the served "
                       "index does not return the passages of the offline evaluation")
    if not quality:
        reasons.append(f"served F1 {s_mean:.3f} [{s_lo:.3f}, {s_hi:.3f}] does not match offline F1 {o_mean:.3f} "
                       f"[{o_lo:.3f}, {o_hi:.3f}]")
    return {"passed": not reasons, "reason": "; ".join(reasons) or "served quality matches offline, no skew",
            "n": len(items), "served_f1": s_mean, "served_f1_ci": [s_lo, s_hi], "offline_f1": o_mean,
            "offline_f1_ci": [o_lo, o_hi], "skew_questions": len(skew), "bundle_id": meta["provenance"].get("bundle_id")}


def retrieved_texts(sources: list[dict[str, Any]]) -> list[str]:
    """The texts of a response's ``sources`` in retrieval order (best score first). The gateway lists
    the prompted passages first and the passages its context policy dropped after them, so the
    listed order alone would count every dropped passage as retrieval skew; a stable sort by score
    undoes that (each source carries its retrieval score)."""
    return [s["text"] for s in sorted(sources, key=lambda s: -float(s["score"]))]
