"""The judgment cache: content-addressed, on disk, shared by every study and CLI call.

A key is the sha256 of (judge identity, rubric id and digest, input digest, decoding settings);
the judge identity holds the backend, the model spec and its content revision, so a re-converted or
fine-tuned model never reuses old verdicts. Only verdicts and parse failures are stored: a judgment
whose generation failed (endpoint down, timeout) is retried on the next run, not cached.
One SQLite file (``<lab cache>/judgments.sqlite``, ``LAB_CACHE_DIR``), one connection per process
and thread, as the embedding store does.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.judge.base import Judgment


def cache_key(identity: dict[str, Any], rubric: str, rubric_digest: str, input_digest: str,
              decoding: dict[str, Any]) -> str:
    blob = json.dumps({"judge": identity, "rubric": rubric, "rubric_digest": rubric_digest,
                       "input": input_digest, "decoding": decoding}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgmentCache:
    """Judgments by key. ``hits`` and ``misses`` count lookups since creation."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from lab.models import cache_dir

            path = cache_dir() / "judgments.sqlite"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self._conns: dict[tuple[int, int], sqlite3.Connection] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_conns"] = {}
        return state

    def _db(self) -> sqlite3.Connection:
        key = (os.getpid(), threading.get_ident())
        con = self._conns.get(key)
        if con is None:
            con = sqlite3.connect(self.path, timeout=60)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, judgment TEXT)")
            con.commit()
            self._conns[key] = con
        return con

    def get_many(self, keys: Sequence[str]) -> dict[str, Judgment]:
        out: dict[str, Judgment] = {}
        con = self._db()
        for start in range(0, len(keys), 500):
            part = list(keys[start:start + 500])
            rows = con.execute(f"SELECT key, judgment FROM judgments WHERE key IN ({','.join('?' * len(part))})",
                               part).fetchall()
            for k, v in rows:
                j = Judgment.from_dict(json.loads(v))
                j.cached = True
                out[k] = j
        self.hits += len(out)
        self.misses += len(keys) - len(out)
        return out

    def put_many(self, items: dict[str, Judgment]) -> None:
        rows = [(k, json.dumps({**j.to_dict(), "cached": False})) for k, j in items.items()
                if j.error_kind != "generation"]
        if rows:
            with self._db() as con:
                con.executemany("INSERT OR REPLACE INTO judgments VALUES (?, ?)", rows)

    def count(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM judgments").fetchone()[0])

    def close(self) -> None:
        for key, con in list(self._conns.items()):
            if key[0] == os.getpid():
                con.close()
            del self._conns[key]
