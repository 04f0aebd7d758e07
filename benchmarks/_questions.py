"""Short factual questions shared by the generation benchmarks (dtype, llama.cpp), and the chat
prompts they become. Imported by scripts run as ``python benchmarks/<name>.py`` (this folder is
then first on ``sys.path``)."""

from __future__ import annotations

from pathlib import Path

QUESTIONS = [
    "What is the capital of France?",
    "Who wrote the play Hamlet?",
    "What is the boiling point of water in Celsius at sea level?",
    "Name the largest planet of the solar system.",
    "In which year did the first moon landing take place?",
    "What gas do plants take up from the air for photosynthesis?",
    "Which language is mostly spoken in Brazil?",
    "What is the square root of 81?",
]


def chat_prompts(path: Path | None) -> tuple[list[str], list[list[dict]]]:
    """The questions (from ``path``, one per line, or the built-in ones) and their chat prompts."""
    lines = path.read_text(encoding="utf-8").split("\n") if path else QUESTIONS
    questions = [q.strip() for q in lines if q.strip()]
    if not questions:
        raise SystemExit(f"{path}: no questions (one per line)")
    return questions, [[{"role": "user", "content": f"{q} Answer in a few words."}] for q in questions]
