from pathlib import Path

import pytest
import yaml
from conftest import REPO

from lab.config import DataQualityConfig, load_section, read_params
from lab.errors import ConfigError


def _write_params(tmp_path: Path, section: dict) -> Path:
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "docs" / "a.txt").write_text("hello world", encoding="utf-8")
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"data_quality": section}), encoding="utf-8")
    return p


def _base() -> dict:
    return {"corpora": [{"name": "docs", "path": "docs", "glob": "*.txt"}]}


def test_repository_params_validate():
    cfg = load_section("data_quality", REPO / "params.yaml", check_paths=False)
    assert isinstance(cfg, DataQualityConfig)
    assert {c.name for c in cfg.corpora} >= {"chroma", "cuad"}


def test_valid_section_loads_with_defaults(tmp_path):
    cfg = load_section("data_quality", _write_params(tmp_path, _base()))
    assert cfg.near_duplicate_threshold == 0.8 and cfg.on_bad_file == "error"
    assert len(cfg.params_hash()) == 16


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    p = _write_params(tmp_path, {**_base(), "near_dup_treshold": 0.5})
    with pytest.raises(ConfigError) as err:
        load_section("data_quality", p)
    msg = str(err.value)
    assert "params.yaml" in msg and "data_quality.near_dup_treshold" in msg and "unknown key" in msg
    assert "near_duplicate_threshold" in msg  # the allowed keys are listed


def test_unknown_nested_key(tmp_path):
    section = {"corpora": [{"name": "docs", "path": "docs", "pattern": "*.txt"}]}
    with pytest.raises(ConfigError) as err:
        load_section("data_quality", _write_params(tmp_path, section))
    assert "data_quality.corpora[0].pattern" in str(err.value)
    assert "glob" in str(err.value)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("near_duplicate_threshold", "high", "valid number"),
    ("max_docs_per_corpus", "50", "valid integer"),        # a quoted number is a string: strict
    ("max_docs_per_corpus", 2.5, "valid integer"),
    ("on_bad_file", "skip", "'error' or 'report'"),
    ("near_duplicate_threshold", 1.5, "less than or equal to 1"),
])
def test_wrong_type_names_key_and_expectation(tmp_path, key, value, expected):
    with pytest.raises(ConfigError) as err:
        load_section("data_quality", _write_params(tmp_path, {**_base(), key: value}))
    msg = str(err.value)
    assert f"data_quality.{key}" in msg and expected in msg and "params.yaml" in msg


def test_missing_path_is_named(tmp_path):
    section = {"corpora": [{"name": "docs", "path": "no/such/folder"}]}
    with pytest.raises(ConfigError) as err:
        load_section("data_quality", _write_params(tmp_path, section))
    msg = str(err.value)
    assert "data_quality.corpora[0].path" in msg and "no/such/folder" in msg and "dvc pull" in msg


def test_missing_section_and_file(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("other: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="section 'data_quality' is missing"):
        load_section("data_quality", p)
    with pytest.raises(ConfigError, match="file not found"):
        read_params(tmp_path / "nope.yaml")
    p.write_text("data_quality: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_params(p)


def test_qa_set_must_name_a_known_corpus(tmp_path):
    (tmp_path / "q.csv").write_text("question\n", encoding="utf-8")
    section = {**_base(), "qa_sets": [{"name": "q", "format": "chroma", "path": "q.csv", "corpus": "nope"}]}
    with pytest.raises(ConfigError, match=r"qa_sets\[0\].corpus 'nope'"):
        load_section("data_quality", _write_params(tmp_path, section))


def test_overrides_are_validated_too(tmp_path):
    p = _write_params(tmp_path, _base())
    assert load_section("data_quality", p, {"max_docs_per_corpus": 7}).max_docs_per_corpus == 7
    with pytest.raises(ConfigError, match="data_quality.max_docs_per_corpus"):
        load_section("data_quality", p, {"max_docs_per_corpus": "many"})


def test_unknown_section_lists_known(tmp_path):
    p = _write_params(tmp_path, _base())
    with pytest.raises(ConfigError, match="known sections"):
        load_section("no_such_stage", p)


def test_repository_chunking_baseline_is_the_default_fixed_chunker():
    cfg = load_section("chunking_study", REPO / "params.yaml", check_paths=False)
    # the paired comparisons of the report are against "the default everywhere", the first chunker
    assert cfg.baseline == cfg.chunkers[0].label == "token-512-50"
    assert cfg.n_resamples >= 100


def test_override_args_are_read_back_by_dvc_as_written(tmp_path):
    """`lab params overrides FILE` gives `dvc exp run -S` arguments; DVC's own parser applies them to
    params.yaml and the section equals params.yaml deep-merged with the file, types kept."""
    import shutil
    from pathlib import Path

    import yaml
    from dvc.utils.hydra import apply_overrides

    from lab.config import load_section, read_params
    from lab.dvcparams import override_args

    root = Path(__file__).resolve().parents[1]
    params = tmp_path / "params.yaml"
    shutil.copy(root / "params.yaml", params)
    args = override_args(root / "experiments" / "finetune_qwen05.yaml", params)
    assert args[0::2] == ["-S"] * (len(args) // 2)
    apply_overrides(params, args[1::2])
    got = read_params(params)["finetune_comparison"]  # DVC writes 1e-05: read as a float (YAML 1.2)
    profile = yaml.safe_load((root / "experiments" / "finetune_qwen05.yaml").read_text())["finetune_comparison"]
    assert got["model"] == profile["model"] and got["n_heldout"] == profile["n_heldout"]
    for k, v in profile["training"].items():
        assert got["training"][k] == v and type(got["training"][k]) is type(v), k
    assert load_section("finetune_comparison", params, check_paths=False).training.full_learning_rate == 1e-5


def _stage_profiles() -> list[str]:
    from pathlib import Path

    import yaml

    folder = Path(__file__).resolve().parents[1] / "experiments"
    return sorted(p.name for p in folder.glob("*.yaml") if "version" not in yaml.safe_load(p.read_text()))


@pytest.mark.parametrize("name", _stage_profiles())
def test_every_stage_profile_applies_through_dvc_to_a_valid_section(tmp_path, name):
    """Each experiments/ profile (not a sweep file) becomes -S arguments that DVC applies, and every
    section it overrides then validates (a profile that drifted from the config fails here, not hours
    into `make`)."""
    import shutil
    from pathlib import Path

    import yaml
    from dvc.utils.hydra import apply_overrides

    from lab.config import load_section, read_params
    from lab.dvcparams import override_args

    root = Path(__file__).resolve().parents[1]
    params = tmp_path / "params.yaml"
    shutil.copy(root / "params.yaml", params)
    apply_overrides(params, override_args(root / "experiments" / name, params)[1::2])
    profile = yaml.safe_load((root / "experiments" / name).read_text())
    assert profile
    for section in profile:
        load_section(section, params, check_paths=False)
    if name == "chunking_cuad.yaml":
        assert [b["name"] for b in read_params(params)["chunking_study"]["benchmarks"]] == ["chroma", "cuad"]


def test_override_args_fail_on_a_typo_naming_the_file(tmp_path):
    from pathlib import Path

    from lab.dvcparams import override_args

    root = Path(__file__).resolve().parents[1]
    bad = tmp_path / "profile.yaml"
    bad.write_text("finetune_comparison:\n  training: {max_stpes: 3}\n")
    with pytest.raises(ConfigError, match=r"(?s)profile\.yaml .*training\.max_stpes: unknown key"):
        override_args(bad, root / "params.yaml")
    bad.write_text("finetune_comparisn:\n  n_train: 3\n")
    with pytest.raises(ConfigError, match=r"unknown section 'finetune_comparisn'"):
        override_args(bad, root / "params.yaml")


# ------------------------------------------------------------------ one typed model per concept
def _params_with_policy(tmp_path: Path, rule: dict) -> Path:
    """A copy of the repository's params.yaml whose export policy gets ``rule`` as its first input rule."""
    from lab.config import read_params

    params = read_params(REPO / "params.yaml")
    params["export"]["guardrails"]["input"].insert(0, rule)
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return p


@pytest.mark.parametrize(("rule", "key", "allowed"), [
    ({"check": "pii_detector", "action": "block"}, "export.guardrails.input[0].check", ["limits", "pii", "toxicity"]),
    ({"check": "pii", "action": "blocks"}, "export.guardrails.input[0].action", ["'block'", "'redact'", "'warn'"]),
    ({"check": "pii", "action": "redact", "options": {"entity": ["EMAIL_ADDRESS"]}},
     "export.guardrails.input[0].options.entity", ["entities", "nlp_model", "threshold"]),
])
def test_params_check_rejects_a_misspelt_guardrail_check_action_or_option(tmp_path, rule, key, allowed):
    from typer.testing import CliRunner

    from lab.cli import app

    params = _params_with_policy(tmp_path, rule)
    result = CliRunner().invoke(app, ["params", "check", "export", "--params", str(params)])
    assert result.exit_code == 2
    msg = result.output
    assert str(params) in msg and key in msg and "allowed" in msg
    assert all(a in msg for a in allowed), msg


def test_the_repository_policy_is_typed_and_rebuilt_as_written():
    from lab.config import GuardrailPolicySpec

    cfg = load_section("export", REPO / "params.yaml", check_paths=False)
    assert isinstance(cfg.guardrails, GuardrailPolicySpec)
    assert cfg.guardrails_config() == read_params(REPO / "params.yaml")["export"]["guardrails"]
    assert all(k.endswith(".model_dir") for k in cfg.guardrails.model_folders())


def test_guardrail_options_models_name_the_checks_parameters():
    """One definition: the options models name exactly what each check's constructor takes (its
    defaults stay in the check: an option left out is not passed)."""
    import inspect

    from lab.config.guardrails import CHECK_OPTIONS
    from lab.guardrails import CHECKS

    for name, model in CHECK_OPTIONS.items():
        fields = {f.alias or n for n, f in model.model_fields.items()}
        params = set(inspect.signature(CHECKS.get(name).__init__).parameters) - {"self"}
        assert fields == params, name
        assert model.STAGES == CHECKS.get(name).stages, name


def test_a_cli_value_reads_as_params_yaml_reads_it():
    """``lab run -p training.lora_learning_rate 1e-4`` reaches the config as a float."""
    from lab.cli import _pairs

    overrides = _pairs(["-p", "training.lora_learning_rate", "1e-4", "-p", "arms", "[lora, rag]"])
    assert overrides == {"training.lora_learning_rate": 1e-4, "arms": ["lora", "rag"]}
    cfg = load_section("finetune_comparison", REPO / "params.yaml", overrides, check_paths=False)
    assert cfg.training.lora_learning_rate == 1e-4 and isinstance(cfg.training.lora_learning_rate, float)


def test_training_settings_have_one_definition():
    """The finetune trainer takes the model the params section makes; the trained judge takes the section itself."""
    import inspect

    from lab.config import FinetuneConfig, JudgeEvalConfig, TrainedJudgeSpec, TrainingSpec
    from lab.config.training import TrainingKnobs
    from lab.finetune import FinetuneConfig as TrainerConfig
    from lab.judge.trained import train_cross_encoder

    assert TrainerConfig is FinetuneConfig
    assert issubclass(TrainingSpec, TrainingKnobs) and issubclass(FinetuneConfig, TrainingKnobs)
    spec = load_section("finetune_comparison", REPO / "params.yaml", check_paths=False).training
    run = spec.finetune_config(method="full", model="m", seed=3, rag=True)
    assert isinstance(run, FinetuneConfig)
    assert (run.learning_rate, run.max_length, run.lora_alpha) == (spec.full_learning_rate, spec.rag_max_length,
                                                                    2 * spec.lora_r)
    assert all(getattr(run, k) == getattr(spec, k) for k in TrainingKnobs.model_fields)
    for name in set(TrainingSpec.model_fields) & set(FinetuneConfig.model_fields):   # one default each
        assert TrainingSpec.model_fields[name].default == FinetuneConfig.model_fields[name].default, name
    assert JudgeEvalConfig.model_fields["trained"].annotation is TrainedJudgeSpec
    assert inspect.signature(train_cross_encoder).parameters["settings"].annotation in (TrainedJudgeSpec,
                                                                                          "TrainedJudgeSpec")


def test_backend_specs_are_one_typed_model(tmp_path):
    from lab.config import BackendSpec, GenerationSpec

    judge = load_section("judge_eval", REPO / "params.yaml", check_paths=False)
    ft = load_section("finetune_comparison", REPO / "params.yaml", check_paths=False)
    assert all(isinstance(j.backend, BackendSpec) for j in judge.judges)
    assert isinstance(judge.ragas.backend, BackendSpec) and isinstance(ft.generation, GenerationSpec)
    assert issubclass(GenerationSpec, BackendSpec)
    params = read_params(REPO / "params.yaml")
    params["judge_eval"]["judges"][0]["backend"]["backend"] = "transformer"
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"judge_eval\.judges\[0\]\.backend\.backend: .*allowed values: transformers"):
        load_section("judge_eval", p, check_paths=False)


def test_one_yaml_loader_yaml_1_2():
    from lab.config import load_yaml

    assert load_yaml("lr: 1e-4\nverdict: {yes: 1, no: 0}\nflag: true") == {
        "lr": 1e-4, "verdict": {"yes": 1, "no": 0}, "flag": True}


def test_another_stage_s_output_need_not_exist_yet_but_other_paths_must(tmp_path):
    from lab.config import load_section
    from lab.errors import ConfigError

    (tmp_path / "data").mkdir()
    params = {"retrieval_sweep": {"out_dir": "moved/sweep"},
              "finetune_comparison": {"titles": ["Normans"], "arms": ["rag"],
                                      "paragraphs": "data", "qa": "data", "winner": "moved/sweep/winner.json"}}
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(params))
    # the winner does not exist yet: it is the sweep's output, which the pipeline makes (no error)
    assert load_section("finetune_comparison", f).winner == "moved/sweep/winner.json"
    params["finetune_comparison"]["winner"] = "elsewhere/winner.json"
    f.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="finetune_comparison.winner: 'elsewhere/winner.json' does not exist"):
        load_section("finetune_comparison", f)


def test_dvc_yaml_templates_resolve_from_params_and_unknown_references_are_named():
    from lab.config.base import interpolate
    from lab.errors import ConfigError

    params = {"retrieval_sweep": {"out_dir": "moved/sweep"}}
    assert interpolate({"${retrieval_sweep.out_dir}/x": ["${retrieval_sweep.out_dir}/y"]}, params, "dvc.yaml") == \
        {"moved/sweep/x": ["moved/sweep/y"]}
    with pytest.raises(ConfigError, match=r"dvc.yaml: .*\$\{retrieval_sweep.outdir\} names no key"):
        interpolate("${retrieval_sweep.outdir}/x", params, "dvc.yaml")
    with pytest.raises(ConfigError, match="is a dict, not a value"):
        interpolate("${retrieval_sweep}/x", params, "dvc.yaml")


def test_an_override_mapping_key_hydra_cannot_read_is_named():
    from lab.dvcparams import _override_value

    assert _override_value([{"name": "cuad", "include": ["a b"], "n": 2}]) == '[{name:"cuad",include:["a b"],n:2}]'
    with pytest.raises(ConfigError, match="'a b'"):
        _override_value({"a b": 1})
