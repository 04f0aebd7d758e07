"""Recipe: add a study. One registered function `run(cfg, paths) -> result`; the result writes the
stage's files and gives its metrics and finding (the protocol of `lab/stage.py`)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.stage import STAGES, StagePaths, stage
from pydantic import BaseModel, ConfigDict

from lab.io import write_json


class WordCountConfig(BaseModel):
    """The `word_count` section of params.yaml (in lab/config/sections.py for a stage of the pipeline)."""

    model_config = ConfigDict(extra="forbid")   # a misspelt key fails, with its name

    corpus: str                       # a folder of .txt files, relative to params.yaml
    out_dir: str = "results/word_count"


@dataclass
class WordCountResult:
    counts: dict[str, int]

    def write(self, out_dir: Path) -> None:
        """Every file the stage hands on: written here, by one module, never by the notebook."""
        write_json(out_dir / "counts.json", self.counts)

    def metrics(self) -> dict[str, int]:
        return {"documents": len(self.counts), "words": sum(self.counts.values())}

    def finding(self) -> str:
        longest = max(self.counts, key=self.counts.__getitem__)
        return f"{len(self.counts)} documents; the longest is **{longest}** ({self.counts[longest]} words)."


@stage("word_count")   # the stage's name = its params.yaml section
def run(cfg: WordCountConfig, paths: StagePaths) -> WordCountResult:
    folder = paths.of(cfg.corpus)
    return WordCountResult({p.stem: len(p.read_text(encoding="utf-8").split()) for p in sorted(folder.glob("*.txt"))})


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "corpus").mkdir()
        (root / "corpus" / "a.txt").write_text("one two three")
        (root / "corpus" / "b.txt").write_text("four five")
        cfg = WordCountConfig(corpus="corpus")
        paths = StagePaths.for_config(cfg, root)
        result = STAGES.get("word_count")(cfg, paths)   # what the notebook shell calls
        paths.out_dir.mkdir(parents=True)
        result.write(paths.out_dir)
        print(result.metrics(), result.finding())
        assert result.metrics() == {"documents": 2, "words": 5}
        assert (paths.out_dir / "counts.json").is_file()


if __name__ == "__main__":
    main()
