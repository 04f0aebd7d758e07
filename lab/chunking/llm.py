"""``llm``: an LLM chooses where to split (the idea of Chroma's LLMSemanticChunker).

The text is cut into pieces of about ``piece_size`` tokens (recursive splitter, no overlap). From
the current piece on, pieces are shown numbered (``<|start_chunk_7|>...<|end_chunk_7|>``, 1-based
over the whole document) until their tokens exceed ``window_tokens``; the model answers
``split_after: 9, 12`` and the next window starts after the last split, as in Chroma. A window
that reaches the end of the document is the last call.

Parsing is strict about meaning and loud about failures (nothing is silent):

* no ``split_after:`` line -> ``stats["unparsed"]`` += 1, the raw answer is kept in
  :attr:`LLMSemanticChunker.failures`, and the window gets no split (the next window starts after
  it);
* numbers outside the window -> dropped, counted in ``stats["out_of_range"]``;
* ``split_after:`` with no usable number -> ``stats["no_split"]`` += 1, no split in that window;
* numbers out of order or repeated -> sorted and de-duplicated (``stats["reordered"]``).

Chroma re-prompts on an invalid answer; here the generation callable owns retries. Statistics
accumulate over all documents a chunker instance has seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from lab.chunking.base import (
    CHUNKERS,
    DEFAULT_SEPARATORS,
    Chunk,
    callable_id,
    check_positive_int,
    check_text,
    make_chunks,
)
from lab.chunking.recursive import RecursiveTokenChunker
from lab.errors import ConfigError

Span = tuple[int, int]

PROMPT_VERSION = "llm-split-v1"
PROMPT_TEMPLATE = (
    "You split documents into thematically consistent sections. The text below is divided into "
    "numbered pieces, each wrapped in <|start_chunk_N|> and <|end_chunk_N|> tags. Decide after "
    "which pieces a new section should begin, so that consecutive pieces on the same theme stay "
    "together. For example, if pieces 1 and 2 belong together and piece 3 starts a new topic, "
    "split after piece 2.\n"
    "Respond with one line of the form 'split_after: 3, 5' listing piece numbers in ascending "
    "order, each at least {first} and at most {last}.\n\n"
    "CHUNKED_TEXT: {pieces}\n"
)
_SPLIT_LINE = re.compile(r"split[ _-]?after\s*:(.*)", re.IGNORECASE)


def parse_split_after(answer: str) -> list[int] | None:
    """Numbers on the first ``split_after:`` line of ``answer``; None when there is no such line."""
    for line in answer.splitlines():
        m = _SPLIT_LINE.search(line)
        if m:
            return [int(x) for x in re.findall(r"\d+", m.group(1))]
    return None


@CHUNKERS.register("llm")
class LLMSemanticChunker:
    """Chunks whose boundaries a generation callable chooses among piece boundaries.

    Parameters
    ----------
    generate : callable
        ``generate(prompt: str) -> str``: an LLM backend (endpoint client, local model, fake).
        Required.
    piece_size : int
        Token size of the pieces shown to the model (Chroma: 50).
    window_tokens : int
        Pieces are added to a prompt until their tokens exceed this (Chroma: 800).
    separators, encoding :
        Of the piece splitter.
    generate_id : str or None
        Name of the backend for :meth:`params`; defaults to ``callable_id(generate)``.

    Attributes
    ----------
    stats : dict of str to int
        ``calls``, ``unparsed``, ``no_split``, ``out_of_range``, ``reordered``.
    failures : list of dict
        ``{"doc_id", "first_piece", "answer"}`` for each unparsed answer.
    """

    name = "llm"
    version = 1

    def __init__(self, generate: Callable[[str], str] | None = None, piece_size: int = 50,
                 window_tokens: int = 800, separators: Sequence[str] = DEFAULT_SEPARATORS,
                 encoding: str = "cl100k_base", generate_id: str | None = None) -> None:
        if generate is None or not callable(generate):
            raise ConfigError(
                f"{self.name}: an LLM backend must be configured: pass generate=callable(prompt) -> "
                "str (for example a client of an OpenAI-compatible endpoint, or a local model)"
            )
        self.piece_size = check_positive_int(self.name, "piece_size", piece_size)
        self.window_tokens = check_positive_int(self.name, "window_tokens", window_tokens)
        self.generate = generate
        self.generate_id = callable_id(generate, generate_id)
        self._pieces = RecursiveTokenChunker(self.piece_size, 0, separators, encoding)
        from lab.tokens import get_encoding

        self._encode = get_encoding(encoding).encode_ordinary
        self.stats = {"calls": 0, "unparsed": 0, "no_split": 0, "out_of_range": 0, "reordered": 0}
        self.failures: list[dict[str, Any]] = []

    def params(self) -> dict[str, Any]:
        return {"chunker": self.name, "version": self.version, "generate": self.generate_id,
                "prompt_version": PROMPT_VERSION, "piece_size": self.piece_size,
                "window_tokens": self.window_tokens, "separators": list(self._pieces.separators),
                "encoding": self._pieces.encoding}

    def split_points(self, text: str, pieces: list[Span], doc_id: str = "") -> list[int]:
        """Sorted 1-based piece numbers after which a chunk ends (asks the model per window)."""
        n = len(pieces)
        lengths = [len(self._encode(text[s:e])) for s, e in pieces]
        splits: list[int] = []
        cur = 0
        while cur < n - 1:  # a single remaining piece has nothing to split
            end, tokens = cur, 0
            while end < n:
                tokens += lengths[end]
                end += 1
                if tokens > self.window_tokens:
                    break
            shown = "".join(f"<|start_chunk_{i + 1}|>{text[pieces[i][0]:pieces[i][1]]}<|end_chunk_{i + 1}|>"
                            for i in range(cur, end))
            prompt = PROMPT_TEMPLATE.format(first=cur + 1, last=end, pieces=shown)
            self.stats["calls"] += 1
            answer = self.generate(prompt)
            numbers = parse_split_after(answer if isinstance(answer, str) else "")
            if numbers is None:
                self.stats["unparsed"] += 1
                self.failures.append({"doc_id": doc_id, "first_piece": cur + 1, "answer": answer})
                valid: list[int] = []
            else:
                valid = sorted({x for x in numbers if cur + 1 <= x <= end})
                self.stats["out_of_range"] += sum(1 for x in numbers if not cur + 1 <= x <= end)
                if numbers and [x for x in numbers if cur + 1 <= x <= end] != valid:
                    self.stats["reordered"] += 1
                if not valid:
                    self.stats["no_split"] += 1
            splits.extend(valid)
            if end >= n:
                break
            # Next window starts right after the last split (Chroma), or after this window.
            cur = valid[-1] if valid else end
        return [x for x in splits if x < n]

    def spans(self, text: str, doc_id: str = "") -> list[Span]:
        pieces = self._pieces.spans(text)
        if len(pieces) <= 1:
            return pieces
        out, first = [], 0
        for x in [*self.split_points(text, pieces, doc_id), len(pieces)]:
            out.append((pieces[first][0], pieces[x - 1][1]))
            first = x
        return out

    def chunk(self, text: str, doc_id: str = "") -> list[Chunk]:
        text = check_text(text, doc_id)
        if not text.strip():
            return []
        return make_chunks(text, self.spans(text, doc_id), doc_id)
