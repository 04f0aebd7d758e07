"""The team stack (``lab team up/down/status``): PostgreSQL-backed MLflow with basic auth, an S3 API
for artifacts and the DVC remote; see :mod:`lab.team.stack`."""

from lab.team.daemons import TeamError
from lab.team.stack import SETUP_HINT, TeamSettings, down, missing, status, up

__all__ = ["SETUP_HINT", "TeamError", "TeamSettings", "down", "missing", "status", "up"]
