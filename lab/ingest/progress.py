"""Progress of an ingestion a person can follow: a bar per file (and per page of a long PDF) on a
terminal, or one line per file on standard error (``lines``: what the DVC stage prints, readable in
a log), or nothing."""

from __future__ import annotations

import sys
from typing import Any, Literal

ProgressMode = Literal["auto", "bar", "lines", "off"]
#: In ``lines`` mode, a long PDF reports every this many pages.
PAGE_LINE_EVERY = 100


class IngestProgress:
    """Reports files (and pages) as they are ingested.

    Parameters
    ----------
    total:
        Number of files.
    mode:
        ``bar`` (:func:`lab.progress.bar`), ``lines`` (one line per file on stderr), ``off``, or
        ``auto`` (a bar on a terminal, else lines).
    """

    def __init__(self, total: int, mode: ProgressMode = "auto") -> None:
        from lab.progress import enabled

        if mode == "auto":
            mode = "bar" if enabled() and getattr(sys.stderr, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.total = total
        self._files: Any = None
        self._pages: Any = None
        self._current = ""
        self._index = 0
        if mode == "bar":
            from lab.progress import bar

            self._files = bar(total=total, desc="ingest", unit="file")

    def start(self, index: int, doc_id: str) -> None:
        """File ``index`` (1-based) of :attr:`total`, ``doc_id``, begins."""
        self._current, self._index = doc_id, index
        if self._files is not None:
            self._files.set_postfix_str(doc_id[-40:], refresh=False)

    def page(self, done: int, total: int) -> None:
        """``done`` of the current file's ``total`` pages are read."""
        if total < 2:
            return
        if self.mode == "bar":
            if self._pages is None:
                from lab.progress import bar

                self._pages = bar(total=total, desc=self._current[-30:], unit="page", leave=False, position=1)
            self._pages.update(done - self._pages.n)
        elif self.mode == "lines" and (done % PAGE_LINE_EVERY == 0 and done < total):
            self._line(f"page {done}/{total}")

    def done(self, summary: str) -> None:
        """The current file is finished; ``summary`` says how (pages, chars, seconds, cached or failed)."""
        if self._pages is not None:
            self._pages.close()
            self._pages = None
        if self._files is not None:
            self._files.update(1)
        elif self.mode == "lines":
            self._line(summary)

    def close(self) -> None:
        """Close the bars."""
        if self._pages is not None:
            self._pages.close()
        if self._files is not None:
            self._files.close()

    def _line(self, text: str) -> None:
        width = len(str(self.total))
        print(f"ingest [{self._index:>{width}}/{self.total}] {self._current}: {text}", file=sys.stderr, flush=True)
