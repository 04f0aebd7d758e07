"""The judgment cache: content-addressed, on disk, shared by every study and CLI call.

A key is the sha256 of (judge identity, rubric id and digest, input digest, decoding settings);
the judge identity holds the backend, the model spec and its content revision, so a re-converted or
fine-tuned model never reuses old verdicts. Only verdicts and parse failures are stored: a judgment
whose generation failed (endpoint down, timeout) is retried on the next run, not cached.
One SQLite file (``<lab cache>/judgments.sqlite``, ``LAB_CACHE_DIR``) through :class:`lab.kvstore.SqliteStore`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.judge.base import Judgment
from lab.kvstore import SqliteStore


def cache_key(identity: dict[str, Any], rubric: str, rubric_digest: str, input_digest: str,
              decoding: dict[str, Any]) -> str:
    blob = json.dumps({"judge": identity, "rubric": rubric, "rubric_digest": rubric_digest,
                       "input": input_digest, "decoding": decoding}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgmentCache(SqliteStore):
    """Judgments by key. ``hits`` and ``misses`` count lookups since creation."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from lab.models import cache_dir

            path = cache_dir() / "judgments.sqlite"
        super().__init__(path, "judgments", "judgment")

    def get_many(self, keys: Sequence[str]) -> dict[str, Judgment]:
        out: dict[str, Judgment] = {}
        for k, v in self.get_texts(keys).items():
            j = Judgment.from_dict(json.loads(v))
            j.cached = True
            out[k] = j
        return out

    def put_many(self, items: dict[str, Judgment]) -> None:
        self.put_texts({k: json.dumps({**j.to_dict(), "cached": False}) for k, j in items.items()
                        if j.error_kind != "generation"})
