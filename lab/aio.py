"""Running a coroutine from plain (synchronous) code."""

from __future__ import annotations

import asyncio
from typing import Any


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion, also where an event loop is already running (a notebook's
    kernel, where ``asyncio.run`` refuses): then on a fresh loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
