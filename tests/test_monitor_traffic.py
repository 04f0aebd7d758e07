"""benchmarks/monitor_traffic.py's choice of questions: in-domain ones are the bundle's articles'
questions minus its offline questions; too few questions is an error naming the file."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import monitor_traffic


def _bundle(tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    b.mkdir(parents=True)
    (b / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"question": "Who founded Normandy?", "title": "Normans"},
        {"question": "When was Tesla born?", "title": "Nikola_Tesla"})))
    return b


def test_in_domain_questions_are_the_articles_questions_less_the_offline_ones(tmp_path):
    qa = tmp_path / "qa.jsonl"
    rows = [{"title": "Normans", "question": "who founded normandy? "}, {"title": "Normans", "question": "Where is Rouen?"},
            {"title": "Nikola_Tesla", "question": "What did Tesla invent?"}, {"title": "Oxygen", "question": "What is O?"}]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = monitor_traffic.in_domain_questions(_bundle(tmp_path), qa, 2, seed=0)
    assert sorted(got) == ["What did Tesla invent?", "Where is Rouen?"]
    with pytest.raises(SystemExit, match="qa.jsonl: only 2 questions"):
        monitor_traffic.in_domain_questions(_bundle(tmp_path / "b"), qa, 3, seed=0)


def test_other_questions_are_a_seeded_sample(tmp_path):
    f = tmp_path / "other.jsonl"
    f.write_text("".join(json.dumps({"question": f"q{i}"}) + "\n" for i in range(10)))
    assert monitor_traffic.other_questions(f, 4, seed=1) == monitor_traffic.other_questions(f, 4, seed=1)
    assert len(set(monitor_traffic.other_questions(f, 4, seed=1))) == 4
    with pytest.raises(SystemExit, match="other.jsonl: only 10"):
        monitor_traffic.other_questions(f, 11, seed=0)
