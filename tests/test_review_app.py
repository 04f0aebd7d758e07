"""The review app (``lab review`` -> ``notebooks/review.py``) on 127.0.0.1, driven in headless Chromium:
accept one item, edit the next one's question, and read the decisions file it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import browser
import pytest
import review_fixture

from lab.testset import review

ROOT = Path(__file__).parents[1]

#: marimo draws its widgets inside shadow roots: every element matching a selector, roots included.
DEEP = """const deep = (sel) => { const out = []; const walk = (n) => { if (n.shadowRoot) walk(n.shadowRoot);
  for (const c of n.children || []) { if (c.matches(sel)) out.push(c); walk(c); } }; walk(document.body); return out; };
const button = (label) => deep('button').find((b) => b.textContent.trim() === label);
"""


def click(label: str) -> str:
    return "(() => {" + DEEP + f"button({json.dumps(label)}).click(); }})()"


def type_question_then_click(text: str, label: str) -> str:
    """Type into the question field as a user would (React reads the native setter's value on
    'input'; marimo sends a debounced field's value when it loses focus), then click."""
    return "(() => {" + DEEP + f"""const area = deep('marimo-text-area').find((e) => e.dataset.label.includes('question'))
  .shadowRoot.querySelector('textarea');
area.focus();
Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set.call(area, {json.dumps(text)});
area.dispatchEvent(new Event('input', {{bubbles: true}}));
area.blur();
setTimeout(() => button({json.dumps(label)}).click(), 500); }})()"""


@pytest.mark.skipif(browser.chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_decisions_made_in_the_browser_land_in_the_decisions_file(tmp_path):
    testset, corpus = review_fixture.make(tmp_path)
    port = browser.free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "review", "--testset", str(testset), "--corpus",
                             str(corpus), "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        browser.wait_http(f"http://127.0.0.1:{port}/", timeout=90)
        text, png = browser.render(f"http://127.0.0.1:{port}/", wait_for="Your decision on q-single", timeout=150,
                                   size=(1400, 1300), steps=[
                                       (click("accept"), "Your decision on q-multi"),
                                       (type_question_then_click("Who selects the security controls?", "save edit"),
                                        "2 of 3 reviewed"),
                                       (click("← previous"), "edited Q: Who selects the security controls?"),
                                   ])
        browser.save(png, tmp_path / "review.png")
    finally:
        proc.terminate()   # lab review exec'd marimo: this is the app's own process
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "1 accepted, 1 edited, 0 rejected, 1 unreviewed" in text
    assert "saved: edit q-multi" in text and "item 2 of 3" in text   # the edit moved on; previous came back
    assert "page 1" in text and "section Intro > Scope" in text   # both excerpts of the multi item, located
    assert "<script>alert(1)</script>" in text   # the document's markup shown as text, not run
    data = json.loads(review.decisions_path(testset).read_text(encoding="utf-8"))
    assert data["format"] == "lab.testset-review" and data["testset_sha256"] == review.file_sha256(testset)
    decided = {d["id"]: d for d in data["decisions"]}
    assert set(decided) == {"q-single", "q-multi"} and decided["q-single"]["decision"] == "accept"
    assert decided["q-multi"]["decision"] == "edit" and decided["q-multi"]["question"] == "Who selects the security controls?"
    assert "answer" not in decided["q-multi"]   # the answer was left as it was
    rows = review.reviewed_rows(testset)
    assert [r["review"] for r in rows] == ["accepted", "edited", "unreviewed"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_lab_review_defaults_to_the_stages_outputs_and_starts_marimo_on_localhost(tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from lab.cli import app

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({}), encoding="utf-8")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["review"])
    assert res.exit_code == 2 and "dvc repro testset" in res.output
    assert str(tmp_path / "results" / "testset" / "testset.csv") in res.output.replace("\n", "")
    testset, corpus = review_fixture.make(tmp_path)
    ran: list = []
    monkeypatch.setattr(os, "execv", lambda exe, argv: ran.append(argv))
    assert CliRunner().invoke(app, ["review", "--testset", str(testset), "--corpus", str(corpus),
                                    "--port", "2799"]).exit_code == 0
    argv = ran[0]
    assert argv[1:4] == ["-m", "marimo", "run"] and argv[4].endswith("notebooks/review.py")
    assert argv[5:] == ["--host", "127.0.0.1", "--port", "2799", "--headless", "--", "--testset", str(testset),
                        "--corpus", str(corpus)]
