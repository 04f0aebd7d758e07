"""The judges' choice (lab.handoff.judges): one writer, one strict reader, and the lookup by name over
the judge stage's outputs (lab.stage_outputs), which follows the section's out_dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lab.errors import DataError
from lab.handoff import judges

REPO = Path(__file__).resolve().parents[1]
CHOICES = {"default": {"grounded": "lexical", "general": "majority"}, "thresholds": {"p": {"general": 0.5}},
           "agreement_bar": 0.4}


def test_written_choices_read_back_with_format_and_version(tmp_path):
    f = judges.write(tmp_path / "out", CHOICES)
    assert f == tmp_path / "out" / judges.FILE
    data = json.loads(f.read_text())
    assert data["format"] == judges.FORMAT and data["version"] == judges.VERSION
    got = judges.read(f)
    assert got.default == CHOICES["default"] and got.thresholds == CHOICES["thresholds"] and got.data == CHOICES
    assert judges.dumps(CHOICES) == judges.dumps(dict(reversed(list(CHOICES.items()))))   # same bytes, any order
    with pytest.raises(ValueError, match="the file's own keys"):
        judges.dumps({**CHOICES, "version": 2})


@pytest.mark.parametrize(("text", "why"), [
    (json.dumps(CHOICES), "not a lab.judges file"),                                        # before versions
    (json.dumps({**CHOICES, "format": "lab.winner", "version": 1}), "not a lab.judges file"),   # foreign
    (json.dumps({**CHOICES, "format": judges.FORMAT, "version": judges.VERSION + 1}), "version 2"),
    (json.dumps({"format": judges.FORMAT, "version": judges.VERSION, "default": ["lexical"]}), "'default' must map"),
    ("{not json", "not valid JSON"),
])
def test_an_old_or_foreign_file_is_refused_with_how_to_regenerate_it(tmp_path, text, why):
    f = tmp_path / judges.FILE
    f.write_text(text)
    with pytest.raises(DataError, match=why) as err:
        judges.read(f)
    assert str(f) in str(err.value) and "dvc repro judge_eval" in str(err.value)
    with pytest.raises(DataError, match="not found; `dvc repro judge_eval` writes it"):
        judges.read(tmp_path / "missing.json")


def test_the_committed_choice_is_what_the_writer_writes():
    f = REPO / "results" / "judge_eval" / judges.FILE
    got = judges.read(f)
    assert f.read_text(encoding="utf-8") == judges.dumps(got.data)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project whose judge stage writes to a non-default out_dir, with a tiny labelled set."""
    d = tmp_path / "data"
    d.mkdir()
    grounded = [{"knowledge": f"{c} is the capital of {k}.", "question": f"{c} is the capital of what?",
                 "right_answer": k, "hallucinated_answer": f"{c} is the capital of Atlantis."}
                for c, k in [("Paris", "France"), ("Rome", "Italy"), ("Oslo", "Norway"), ("Riga", "Latvia")]]
    (d / "g.jsonl").write_text("".join(json.dumps(r) + "\n" for r in grounded))
    section = {"data": {"grounded_train": str(d / "g.jsonl"), "grounded_eval": str(d / "g.jsonl"),
                        "general": str(d / "g.jsonl")}, "judges": [], "trained": {}, "answers": None,
               "ragas": None, "mlflow_evaluate": False, "n_resamples": 100, "out_dir": "elsewhere/judges"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"judge_eval": section}))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_default_judge_comes_from_the_choice_in_the_sections_out_dir(project):
    from typer.testing import CliRunner

    from lab.cli import app
    from lab.stage_outputs import judge_by_name

    with pytest.raises(DataError, match=r"elsewhere/judges/judges.json: not found"):
        judge_by_name("default", "grounded", project)
    judges.write(project / "elsewhere" / "judges", CHOICES)
    assert judge_by_name("default", "grounded", project).name == "lexical"
    with pytest.raises(Exception, match="not built yet.*dvc repro judge_eval"):
        judge_by_name("faithfulness-cross-encoder", "grounded", project)
    res = CliRunner().invoke(app, ["judge", "calibrate", str(project / "data" / "g.jsonl")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["judge"] == "lexical"
    (project / "elsewhere" / "judges" / judges.FILE).write_text(json.dumps(CHOICES))   # a pre-version file
    res = CliRunner().invoke(app, ["judge", "calibrate", str(project / "data" / "g.jsonl")])
    assert res.exit_code == 2 and "dvc repro judge_eval" in res.output
