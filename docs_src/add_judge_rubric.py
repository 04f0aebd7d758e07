"""Recipe: add a judge rubric. A YAML file, loaded by path, asked through any generation backend."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lab.generate import Generation
from lab.judge import JudgeInput, JudgmentCache, PromptedJudge, load_rubric

RUBRIC = Path(__file__).parent / "rubrics" / "conciseness.yaml"


class ScriptedBackend:
    """Stands in for a model here so the recipe runs anywhere in a second; in real use pass a backend
    mapping instead, e.g. {"backend": "transformers", "model": "qwen2.5-coder-0.5b-instruct"}."""

    name = "scripted"
    supports = frozenset({"choice"})   # scores verdict words, as transformers, llama.cpp and vLLM do

    def generate(self, prompts, params):
        # the rubric's verdict words are the choices; say "no" (not concise) to long answers
        return [Generation("no" if len(p[-1]["content"]) > 200 else "yes", 10, 1, 0.0, None, "stop", self.name)
                for p in prompts]

    def close(self) -> None:
        pass


def main() -> None:
    rubric = load_rubric(RUBRIC)   # checked: keys, task, labels, placeholders (a ConfigError names the file)
    print(rubric.id, rubric.choices)
    with tempfile.TemporaryDirectory() as tmp:
        judge = PromptedJudge("concise-judge", rubric, ScriptedBackend(), mode="choice",
                              cache=JudgmentCache(Path(tmp) / "judgments.sqlite"),
                              identity={"backend": "scripted", "model": "recipe"})
        verdicts = judge.judge([
            JudgeInput(question="Capital of France?", answer="Paris."),
            JudgeInput(question="Capital of France?",
                       answer="Well, that depends on what you mean, and historically speaking many cities have "
                              "been important, but today the capital of France is Paris, as most people know."),
        ])
    print([(j.label, j.verdict) for j in verdicts])
    assert [j.verdict for j in verdicts] == [0, 1]   # 1 = not concise, as the rubric's labels say


if __name__ == "__main__":
    main()
