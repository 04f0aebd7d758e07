"""The team stack (``lab team up/down/status``): PostgreSQL-backed MLflow with basic auth, an S3 API
for artifacts and the DVC remote (:mod:`lab.team.stack`), and a Ray cluster of a head and worker
nodes (:mod:`lab.team.raynodes`)."""

from lab.team.daemons import TeamError
from lab.team.raynodes import RaySettings
from lab.team.stack import GROUPS, SETUP_HINT, TeamSettings, down, missing, status, up

__all__ = ["GROUPS", "SETUP_HINT", "RaySettings", "TeamError", "TeamSettings", "down", "missing", "status", "up"]
