"""The ``testset.filters.max_copy_ratio`` default, fitted on human questions (training data only).

:func:`lab.testset.filters.fit_copy_threshold`: the copy ratio (longest run of question words copied
verbatim from the excerpt, over the question's words) of every SQuAD v1.1 dev question against the
sentence of its paragraph holding its answer, on the articles that no study evaluates on (the
retrieval sweep's six and the fine-tune study's three are left out); the threshold is its 95th
percentile, so the filter drops a generated question that copies more than 19 in 20 human ones do.

    python benchmarks/testset_copy_threshold.py
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import yaml

    from lab.config import TestsetFilters, load_section
    from lab.testset.filters import fit_copy_threshold

    sweep = yaml.safe_load((ROOT / "experiments" / "retrieval_sweep.yaml").read_text())["dataset"]["titles"]
    finetune = load_section("finetune_comparison", ROOT / "params.yaml", check_paths=False).titles
    data = ROOT / "data" / "squad_v1.1_dev"
    fit = fit_copy_threshold(data / "dev-v1.1.paragraphs.jsonl", data / "dev-v1.1.qa.jsonl",
                             exclude_titles=sorted({*sweep, *finetune}), quantile=0.95)
    out = {"what": __doc__.split("\n\n")[1].replace("\n", " "), "date": time.strftime("%Y-%m-%d"), **asdict(fit),
           "default_in_lab_config": TestsetFilters().max_copy_ratio}
    path = ROOT / "benchmarks" / "results" / "testset_copy_threshold.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
