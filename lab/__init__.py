"""lab: a notebook-first research lab for LLM and RAG systems.

Importing ``lab`` is cheap (no torch, mlflow, ray or faiss); it only sets the
privacy defaults of :mod:`lab.env` so that no tool of the stack phones home.
"""

from lab.env import apply_defaults as _apply_env_defaults

_apply_env_defaults()

__version__ = "0.1.0"
