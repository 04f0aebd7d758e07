import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from lab.cli import _pairs, app

runner = CliRunner()


def _params(tmp_path: Path, section: dict) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"data_quality": section}), encoding="utf-8")
    return p


def test_params_check_reports_unknown_key(tmp_path):
    (tmp_path / "docs").mkdir()
    p = _params(tmp_path, {"corpora": [{"name": "d", "path": "docs"}], "colour": "blue"})
    res = runner.invoke(app, ["params", "check", "--params", str(p)])
    assert res.exit_code == 2
    assert "data_quality.colour: unknown key" in res.output


def test_params_check_ok(tmp_path):
    (tmp_path / "docs").mkdir()
    p = _params(tmp_path, {"corpora": [{"name": "d", "path": "docs"}]})
    res = runner.invoke(app, ["params", "check", "--params", str(p)])
    assert res.exit_code == 0, res.output
    assert "data_quality: ok" in res.output


def test_params_check_misspelt_section_is_an_error(tmp_path):
    (tmp_path / "docs").mkdir()
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"data_quality": {"corpora": [{"name": "d", "path": "docs"}]},
                                 "chunking_studdy": {"ks": [5]}}), encoding="utf-8")
    res = runner.invoke(app, ["params", "check", "--params", str(p)])
    assert res.exit_code == 2, res.output
    assert "unknown section(s) 'chunking_studdy'" in res.output and "chunking_study" in res.output
    assert "data_quality: ok" not in res.output


def test_params_check_missing_stage_section_is_an_error(tmp_path):
    (tmp_path / "docs").mkdir()
    p = _params(tmp_path, {"corpora": [{"name": "d", "path": "docs"}]})
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "data_quality": {"cmd": "lab run notebooks/data_quality.ipynb"},
        "chunking_study": {"cmd": "lab run notebooks/chunking_study.ipynb"}}}), encoding="utf-8")
    res = runner.invoke(app, ["params", "check", "--params", str(p)])
    assert res.exit_code == 2, res.output
    assert "section(s) 'chunking_study' missing" in res.output


def test_run_validates_before_starting_a_kernel(tmp_path):
    (tmp_path / "docs").mkdir()
    p = _params(tmp_path, {"corpora": [{"name": "d", "path": "docs"}]})
    nb = Path(__file__).resolve().parents[1] / "notebooks" / "data_quality.ipynb"
    res = runner.invoke(app, ["run", str(nb), "--params", str(p), "-p", "max_docs_per_corpus", "lots",
                              "--no-track"])
    assert res.exit_code == 2
    assert "data_quality.max_docs_per_corpus" in res.output and "valid integer" in res.output


def test_pairs_parses_yaml_values():
    assert _pairs(["-p", "k", "20", "--param", "x.y", "[a, b]", "-p", "s", "text"]) == {
        "k": 20, "x.y": ["a", "b"], "s": "text"}


def test_doctor_json(tmp_path):
    res = runner.invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["packages"]["torch"].startswith("2.13")
    assert {m["name"] for m in info["models"]} >= {"smollm2-135m-instruct", "all-minilm-l6-v2"}
    assert info["gpu"]["cuda_available"] == bool(info["gpu"]["devices"])  # devices listed iff CUDA works
    assert all(info["telemetry_off"].values())
