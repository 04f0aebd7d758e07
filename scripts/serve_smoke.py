"""Smoke-check a running `lab serve` (the serving issue's fresh-clone acceptance, by hand or in CI).

    make serve &                      # or: lab serve results/export/bundle
    python scripts/serve_smoke.py --url http://127.0.0.1:8080 --out results/serve/smoke.json

Waits for /healthz and /readyz, asks the bundle's first evaluation questions through
/v1/chat/completions and compares each answer's sources with the chunks the offline evaluation
retrieved (``offline_contexts`` in the bundle's eval.jsonl), scrapes /metrics for the gateway's
series, drives the playground page in headless Chromium (question, streamed answer, thumbs up) and
saves a screenshot, then reads back the stored feedback. Prints a summary and writes it as JSON.
Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

#: Series the gateway must expose (OpenTelemetry GenAI names where one exists, lab_ otherwise).
SERIES = ("gen_ai_server_time_to_first_token_seconds", "gen_ai_server_time_per_output_token_seconds",
          "gen_ai_client_token_usage", "gen_ai_server_request_duration_seconds", "lab_requests", "lab_errors",
          "lab_requests_in_flight", "lab_queue_depth", "lab_retrieval_duration_seconds", "lab_embedding_store_hit_ratio",
          "lab_guardrail_decisions", "lab_fallbacks", "lab_feedback")


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _post(url: str, body: dict, key: str | None, timeout: float = 600) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json",
                                                                  **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--bundle", type=Path, default=ROOT / "results/export/bundle")
    ap.add_argument("--questions", type=int, default=3)
    ap.add_argument("--key", default=None, help="the gateway's API key, if it has one")
    ap.add_argument("--wait", type=float, default=900, help="seconds to wait for /readyz")
    ap.add_argument("--screenshot", type=Path, default=ROOT / "results/serve/playground.png")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    url, ok, report = a.url.rstrip("/"), True, {"url": a.url}
    end = time.monotonic() + a.wait
    while True:
        try:
            if _get(f"{url}/healthz")[0] == 200 and _get(f"{url}/readyz")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > end:
            print(f"{url} not ready within {a.wait:.0f} s", file=sys.stderr)
            return 1
        time.sleep(2)
    report["ready_after_s"] = round(a.wait - (end - time.monotonic()), 1)
    from lab.serve.gate import read_eval

    items = read_eval(a.bundle)[: a.questions]
    answers = []
    for it in items:
        t0 = time.perf_counter()
        status, body = _post(f"{url}/v1/chat/completions",
                             {"messages": [{"role": "user", "content": it["question"]}], "max_tokens": 48}, a.key)
        row = {"question": it["question"], "status": status, "seconds": round(time.perf_counter() - t0, 2),
               "gold": it.get("answers"), "offline_prediction": it.get("offline_prediction")}
        if status == 200:
            row["answer"] = body["choices"][0]["message"]["content"]
            row["sources"] = [s["id"] for s in body.get("sources", [])]
            offline = it.get("offline_contexts")   # the chunk texts the offline evaluation retrieved
            row["sources_equal_offline"] = ([s["text"] for s in body["sources"]] == offline
                                            if offline is not None else None)
            row["generated_by"] = body.get("lab", {}).get("generated_by")
            ok &= bool(row["sources"]) and row["sources_equal_offline"] is not False
        else:
            row["error"] = body
            ok = False
        answers.append(row)
    report["answers"] = answers
    status, text = _get(f"{url}/metrics")
    # declared (# TYPE) or sampled: a labelled counter has no sample before its first event
    present = {s: any(line.startswith((s, f"# TYPE {s}")) for line in text.splitlines()) for s in SERIES}
    report["metrics_series"] = present
    report["vllm_series"] = sorted({line.split("{")[0].split(" ")[0] for line in text.splitlines()
                                    if line.startswith(("vllm:", "vllm_"))})[:20]
    ok &= all(present.values())
    import browser

    if browser.chromium() is None:
        report["playground"] = "skipped: chromium not installed (apt-get install chromium)"
        ok = False
    else:
        q = items[0]["question"].replace("\\", "\\\\").replace("'", "\\'")
        ask = ((f"document.getElementById('key').value='{a.key}';" if a.key else "")
               + f"document.getElementById('q').value='{q}';document.getElementById('ask').click();")
        page, png = browser.render(f"{url}/", wait_for="lab playground", timeout=600,
                                   steps=[(ask, "done (chatcmpl-"),
                                          ("document.getElementById('up').click();", "thanks: feedback stored (up)")])
        browser.save(png, a.screenshot)
        report["playground"] = {"screenshot": str(a.screenshot), "text": page[:1500]}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("serve smoke:", "OK" if ok else "FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
