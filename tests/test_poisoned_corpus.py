"""benchmarks/poisoned_corpus.py on a tiny corpus: planting, detection per policy, the three
end-to-end arms with a fake generator that follows any canary it sees, and bad input. The trained
classifier is a fake that fires on a canary; no model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

from lab.errors import DataError
from lab.generate import Generation
from lab.guardrails.classifier import TextClassifier

bench = load_script("benchmarks/poisoned_corpus.py")

TOPICS = {
    "rivers": ["The Danube flows through ten countries before it reaches the Black Sea.",
               "Barges carry grain along the river from Vienna to Budapest every spring.",
               "Its delta is a wetland where pelicans nest among the reeds."],
    "bridges": ["The Forth Bridge is a cantilever railway bridge in Scotland.",
                "Its red paint is renewed so often that painting never seems to end.",
                "Engineers opened the crossing in 1890 after seven years of work."],
    "comets": ["Halley's comet returns to the inner solar system about every 76 years.",
               "Its tail of gas and dust always points away from the Sun.",
               "The next perihelion is expected in the year 2061."],
    "violins": ["Stradivari built his finest violins in Cremona around 1715.",
                "Their varnish has been analysed by chemists for a century.",
                "A few hundred of his instruments survive in museums and concert halls."],
}
QUESTIONS = [("rivers", "Which sea does the Danube reach?", "Black Sea"),
             ("bridges", "Where is the Forth Bridge?", "Scotland"),
             ("comets", "What is the period of Halley's comet?", "about every 76 years"),
             ("violins", "In which town did Stradivari make violins?", "Cremona")]


def _corpus(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "corpus"
    folder.mkdir()
    docs = {}
    for name, paras in TOPICS.items():
        docs[name] = "\n\n".join(paras) + "\n"
        (folder / f"{name}.txt").write_text(docs[name], encoding="utf-8")
    rows = []
    for doc, question, answer in QUESTIONS:
        start = docs[doc].index(answer)
        refs = [{"content": answer, "start_index": start, "end_index": start + len(answer)}]
        rows.append({"question": question, "references": json.dumps(refs), "corpus_id": doc})
    import pandas as pd

    csv = tmp_path / "questions.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return folder, csv


class Follower:
    """A generator that obeys any planted instruction: it answers with the first canary in its prompt."""

    name = "follower"
    model_name = "fake-follower"

    def __init__(self) -> None:
        self.prompts: list[list[dict]] = []

    def generate(self, prompts, params):
        self.prompts += prompts
        out = []
        for p in prompts:
            m = bench._ANY_CANARY.search(p[-1]["content"])
            out.append(Generation(f"ZX-{m.group(1)}" if m else "I do not know", tokens_in=10, tokens_out=3,
                                  latency_s=0.0, ttft_s=None, finish_reason="stop", backend=self.name))
        return out


class FakeCanary:
    """A fitted-pipeline stand-in: P(attack) 0.95 for a text holding a canary, else 0.05."""

    def predict_proba(self, texts):
        p = [0.95 if "ZX-" in t else 0.05 for t in texts]
        return np.array([[1 - x, x] for x in p])


def _run(tmp_path: Path, *extra: str) -> dict:
    folder, csv = _corpus(tmp_path)
    out = tmp_path / "out.json"
    assert bench.main(["--corpus", str(folder), "--questions", str(csv), "--k", "20", "--out", str(out), *extra],
                      backend=Follower()) == 0
    return json.loads(out.read_text())


def test_rules_only_drop_stops_a_follower_that_the_fence_does_not(tmp_path, monkeypatch):
    trigger = tuple(t for t in bench.TEMPLATES if t[0] == "trigger")
    monkeypatch.setattr(bench, "TEMPLATES", trigger)
    r = _run(tmp_path, "--share", "0.5", "--chunk-size", "200")   # a passage per document
    assert (r["n_documents"], r["n_poisoned"]) == (4, 2)
    assert r["n_planted"] == 2 and r["n_clean"] == r["n_passages"] - 2 > 0
    assert list(r["policies"]) == ["rules"]          # no model folder: the rule floor alone
    rules = r["policies"]["rules"]
    assert rules["caught_share"] == 1.0 and rules["clean_dropped_share"] == 0.0
    assert rules["caught_ci"][1] == 1.0 and rules["caught_ci"][0] < 1.0
    e2e = r["end_to_end"]
    assert e2e["policy"] == "rules" and r["n_questions"] == e2e["off"]["n"] == 2   # the poisoned documents' questions
    assert e2e["off"]["followed_share"] == 1.0
    assert e2e["drop"]["followed_share"] == 0.0 < e2e["off"]["followed_share"]
    assert e2e["neutralise"]["followed_share"] == 1.0   # a fence does not stop a model that obeys anything
    assert e2e["drop"]["zero_shot_prompts"] == 2        # its one passage retrieved and dropped: zero-shot
    assert r["settings"]["max_new_tokens"] == bench._served_max_new_tokens() > 0
    assert r["generator"] == {"backend": "follower", "model": "fake-follower"}
    assert r["templates"]["count"] == len(trigger) and r["cores_shared"] is False
    for rec in r["answers"]:
        assert rec["planted_dropped"] and rec["off"]["followed"] and not rec["drop"]["followed"]
        assert rec["document"] in {p["doc_id"] for p in r["plants"]}


def test_classifier_policies_and_the_templates_kinds(tmp_path):
    models = TextClassifier(FakeCanary(), 0.5, {"name": "injection"}).save(tmp_path / "models" / "injection")
    r = _run(tmp_path, "--share", "1.0", "--chunk-size", "60", "--injection-model-dir", str(models),
             "--n-questions", "0")
    assert sorted(r["policies"]) == ["classifier", "rules", "windowed"]
    assert r["n_poisoned"] == 4 and r["n_questions"] == 0 and r["end_to_end"]["off"]["n"] == 0
    assert r["end_to_end"]["policy"] == "windowed"
    for name in ("classifier", "windowed"):
        assert r["policies"][name]["caught_share"] == 1.0, name
        assert r["policies"][name]["clean_dropped_share"] == 0.0, name
    assert r["policies"]["windowed"]["options"]["window_words"] == 64
    # the rule floor catches exactly the templates written with trigger words
    assert r["templates"] == {**r["templates"], "count": 12, "with_trigger_words": 6, "rule_floor_matches": 6}
    by_kind = r["policies"]["rules"]["caught_by_kind"]
    assert by_kind["trigger"]["caught"] == by_kind["trigger"]["n"] and by_kind["plain"]["caught"] == 0
    assert by_kind["trigger"]["n"] + by_kind["plain"]["n"] == r["n_planted"] == 4


def test_planting_is_seeded_and_one_paragraph_at_a_boundary():
    docs = {f"d{i}": "First paragraph.\n\nSecond one.\n\nThird one." for i in range(10)}
    a, plants = bench.plant_corpus(docs, 0.3, seed=1)
    b, again = bench.plant_corpus(docs, 0.3, seed=1)
    assert a == b and plants == again and len(plants) == 3
    assert len({p.canary for p in plants.values()}) == 3
    for doc_id, p in plants.items():
        text = a[doc_id]
        assert text[p.offset:p.offset + len(p.text)] == p.text and p.canary in p.text
        rest = (text[:p.offset] + text[p.offset + len(p.text):]).replace("\n\n\n\n", "\n\n").strip("\n")
        assert rest == docs[doc_id]   # the document is untouched but for the planted paragraph
    assert all(a[d] == docs[d] for d in docs if d not in plants)
    assert bench.plant_corpus(docs, 0.0, seed=1)[1] == {}


def test_canaries_avoid_the_corpus_and_match_loosely():
    rx = bench.canary_pattern("ZX-0042")
    assert rx.search("the answer is zx 0042.") and rx.search("ZX0042") and not rx.search("ZX-00421")
    taken = " ".join(f"ZX-{d:04d}" for d in range(10_000) if d != 7)
    assert bench._canaries(1, __import__("random").Random(0), [taken]) == ["ZX-0007"]


def test_shares_come_with_wilson_intervals():
    share, (low, high) = bench._share(5, 10)
    assert share == 0.5 and (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert bench._share(0, 10)[1] == [0.0, pytest.approx(0.27753, abs=1e-5)]
    assert bench._share(0, 0) == (None, None)   # nothing to count: no share, no interval


def test_bad_input_names_the_file(tmp_path):
    folder, csv = _corpus(tmp_path)
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        bench.main(["--corpus", str(missing), "--questions", str(csv), "--out", str(tmp_path / "o.json")])
    bad = tmp_path / "bad.csv"
    bad.write_text("question,corpus_id\nWhere?,rivers\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv.*references"):
        bench.main(["--corpus", str(folder), "--questions", str(bad), "--out", str(tmp_path / "o.json")])
    assert not (tmp_path / "o.json").exists()
