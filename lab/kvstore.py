"""A key -> text store in one SQLite file: the on-disk layer of lab's content-addressed caches
(judgments, test-set generations).

One connection per process and thread (SQLite connections must not cross either; a pickled store
reconnects), WAL journal so readers and a writer can share the file, lookups in chunks of 500 keys
(SQLite's bound-variable limit), ``INSERT OR REPLACE`` writes. ``hits`` and ``misses`` count lookups
since the store was created; what a value means is the caller's (:mod:`lab.judge.cache`,
:mod:`lab.testset.cache`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class SqliteStore:
    """Text values by key in table ``table`` (columns ``key`` and ``value_column``) of ``path``."""

    def __init__(self, path: str | Path, table: str, value_column: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.table, self.value_column = table, value_column
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
            con.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, {self.value_column} TEXT)")
            con.commit()
            self._conns[key] = con
        return con

    def get_texts(self, keys: Sequence[str]) -> dict[str, str]:
        """The stored values of those ``keys`` that have one (counted as hits, the rest as misses)."""
        out: dict[str, str] = {}
        con = self._db()
        for start in range(0, len(keys), 500):
            part = list(keys[start:start + 500])
            rows = con.execute(f"SELECT key, {self.value_column} FROM {self.table} "
                               f"WHERE key IN ({','.join('?' * len(part))})", part).fetchall()
            out.update(rows)
        self.hits += len(out)
        self.misses += len(keys) - len(out)
        return out

    def put_texts(self, items: Mapping[str, str]) -> None:
        """Store (or replace) every ``key -> value`` of ``items`` in one transaction."""
        if items:
            with self._db() as con:
                con.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?)", list(items.items()))

    def count(self) -> int:
        """Stored entries."""
        return int(self._db().execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def close(self) -> None:
        """Close this process's connections (other processes' are only forgotten)."""
        for key, con in list(self._conns.items()):
            if key[0] == os.getpid():
                con.close()
            del self._conns[key]
