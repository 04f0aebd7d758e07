"""lab: a notebook-first research lab for LLM and RAG systems.

Importing ``lab`` is cheap (no torch, mlflow, ray or faiss); it only sets the
privacy defaults of :mod:`lab.env` so that no tool of the stack phones home, and, inside a
stage run by ``lab run``, routes standard error to the stage's progress log (:mod:`lab.progress`)
so that progress and warnings reach the terminal instead of the report.
"""

import os as _os

from lab.env import apply_defaults as _apply_env_defaults

_apply_env_defaults()
if _os.environ.get("LAB_PROGRESS_LOG"):
    from lab.progress import route_stderr as _route_stderr

    _route_stderr()

__version__ = "0.1.0"
