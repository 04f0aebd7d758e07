"""The documentation site: it builds with warnings as errors, its tables come from the committed
results, and every recipe under docs_src/ runs (so the examples cannot rot)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "docs_src").glob("add_*.py"))


def _hooks():
    return load_script("docs/hooks.py")


def _env() -> dict[str, str]:
    # this checkout's lab first; no banner; nothing may reach a network
    return {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1", "HF_HUB_OFFLINE": "1"}


def test_site_builds_strict_with_tables_from_the_committed_results(tmp_path):
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)], check=False,
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    hooks = _hooks()
    for floor in hooks.floor_modules():
        assert (site / "reference" / f"{floor}.html").is_file(), floor
    page = (site / "stages" / "finetune_comparison.html").read_text(encoding="utf-8")
    assert "F1 - zero_shot [95% CI]" in page and "{{" not in page
    assert (site / "figures" / "results" / "judge_eval" / "plots" / "agreement.png").is_file()
    # nothing the pages load comes from another host (no web fonts, no CDN scripts)
    index = (site / "index.html").read_text(encoding="utf-8")
    assert not re.search(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//', index)


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs(recipe):
    if recipe.stem == "add_study" and importlib.util.find_spec("lab.stage") is None:
        pytest.skip("lab/stage.py (the study protocol) is not in this checkout yet")
    r = subprocess.run([sys.executable, str(recipe)], check=False, cwd=REPO, env=_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_recipe_is_shown_on_a_page():
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "docs").rglob("*.md"))
    for f in (REPO / "docs_src").rglob("*"):
        if f.is_file() and f.suffix in (".py", ".yaml"):
            assert f'--8<-- "{f.relative_to(REPO / "docs_src").as_posix()}"' in pages, f"{f.name} is on no page"


def test_a_directive_that_cannot_be_rendered_stops_the_build():
    from mkdocs.exceptions import PluginError

    hooks = _hooks()
    hooks.ROOT = REPO
    assert "| zero_shot |" in hooks.render('{{ finetune_table("results/finetune_comparison") }}')
    with pytest.raises(PluginError, match=r"page\.md: unknown directive 'nope'"):
        hooks.render("{{ nope() }}", "page.md")
    with pytest.raises(PluginError, match=r"results/none\.csv does not exist"):
        hooks.render('{{ csv_table("results/none.csv") }}', "page.md")
    with pytest.raises(PluginError, match=r"has no column\(s\) no_such_column"):
        hooks.render('{{ csv_table("results/retrieval_sweep/results.csv", ["no_such_column"]) }}', "page.md")


def test_the_metrics_page_lists_every_series_the_gateway_exposes():
    from prometheus_client import generate_latest

    from lab.serve.metrics import GatewayMetrics

    listed = {row["series"].strip("`") for row in _hooks().prometheus_series()}
    exposed = {line.split()[2] for line in generate_latest(GatewayMetrics().registry).decode().splitlines()
               if line.startswith("# TYPE") and not line.split()[2].endswith("_created")}
    # (prometheus_client adds a *_created timestamp to unlabelled counters and histograms by itself)
    assert exposed <= listed, exposed - listed
    assert {"lab_embedding_store_hit_ratio", "lab_vllm_up", "lab_vllm_kv_cache_usage_ratio"} <= listed


def test_readme_is_short_and_its_stage_graph_is_dvc_yaml():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import stage_graph
    finally:
        sys.path.pop(0)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert stage_graph.mermaid() in readme, "README's stage graph is stale: paste `python scripts/stage_graph.py`"
    edges = stage_graph.edges()
    assert edges[("retrieval_sweep", "finetune_comparison")] == ["winner.json"]
