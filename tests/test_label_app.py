"""The labelling queue app (``lab label`` -> ``notebooks/label.py``) on 127.0.0.1, driven in headless
Chromium over gateway traces: label the newest answer hallucinated with a comment and a corrected
answer, and read the label back from the labels file and from the MLflow trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import browser
import label_fixture
import pytest

from lab.data.trace_labels import read_labels

ROOT = Path(__file__).parents[1]

#: marimo draws its widgets inside shadow roots: every element matching a selector, roots included.
DEEP = """const deep = (sel) => { const out = []; const walk = (n) => { if (n.shadowRoot) walk(n.shadowRoot);
  for (const c of n.children || []) { if (c.matches(sel)) out.push(c); walk(c); } }; walk(document.body); return out; };
const button = (label) => deep('button').find((b) => b.textContent.trim() === label);
const type = (tag, label, inner, proto, text) => {
  const field = deep(tag).find((e) => (e.dataset.label || '').includes(label)).shadowRoot.querySelector(inner);
  field.focus();
  Object.getOwnPropertyDescriptor(proto.prototype, 'value').set.call(field, text);
  field.dispatchEvent(new Event('input', {bubbles: true}));
  field.blur(); };
"""


def click(label: str) -> str:
    return "(() => {" + DEEP + f"button({json.dumps(label)}).click(); }})()"


def fill_then_click(comment: str, corrected: str, label: str) -> str:
    """Type the comment and the corrected answer as a user would (React reads the native setter's value
    on 'input'; marimo sends a debounced field's value when it loses focus), then click ``label``."""
    return "(() => {" + DEEP + f"""type('marimo-text', 'comment', 'input', HTMLInputElement, {json.dumps(comment)});
type('marimo-text-area', 'corrected answer', 'textarea', HTMLTextAreaElement, {json.dumps(corrected)});
setTimeout(() => button({json.dumps(label)}).click(), 500); }})()"""


@pytest.mark.skipif(browser.chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_a_label_given_in_the_browser_lands_in_the_file_and_on_the_trace(tmp_path, isolated_mlflow):
    import mlflow

    uri, ids, bundle = label_fixture.make_traces(tmp_path)
    tesla, normandy = ids["When was Tesla born?"], ids["Who gave their name to Normandy?"]
    labels = tmp_path / "labels.jsonl"
    port = browser.free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "label", uri, "--bundle", str(bundle), "--labels",
                             str(labels), "--labeller", "tester", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        browser.wait_http(f"http://127.0.0.1:{port}/", timeout=90)
        text, png = browser.render(f"http://127.0.0.1:{port}/", wait_for=f"Your label of {tesla}", timeout=180,
                                   size=(1400, 1600), steps=[
                                       (fill_then_click("1901 and Paris are in no source", "1856, in Smiljan",
                                                        "hallucinated"), f"Your label of {normandy}"),
                                       (click("← previous"), "corrected A: 1856, in Smiljan"),
                                   ])
        browser.save(png, tmp_path / "label.png")
    finally:
        proc.terminate()   # lab label exec'd marimo: this is the app's own process
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert f"saved: hallucinated {tesla} (file and trace)" in text
    assert "1 of 3 labelled" in text and "0 faithful, 1 hallucinated, 0 wrong, 0 unanswerable" in text
    assert "labelled hallucinated by tester (1901 and Paris are in no source)" in text
    assert "online/grounding" in text and "FLAGGED" in text and "offline kappa 0.92" in text   # the judge's verdict shown
    assert "source [1]: t1 · Tesla" in text and "Nikola Tesla was born in 1856" in text
    [got] = read_labels(labels).labels.values()
    assert (got.trace_id, got.label, got.comment, got.corrected_answer, got.labeller) == (
        tesla, "hallucinated", "1901 and Paris are in no source", "1856, in Smiljan", "tester")
    assert got.verdicts[0].name == "online/grounding" and got.sources[0].id == "t1"
    trace = mlflow.MlflowClient(uri).get_trace(tesla)
    [human] = [a for a in trace.info.assessments if a.name == "human_label"]
    assert (human.value, human.source.source_type, human.assessment_id) == ("hallucinated", "HUMAN", got.assessment_id)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
