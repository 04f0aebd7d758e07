"""The team stack: PostgreSQL, an S3 API (moto's server) and an MLflow server with basic auth (the
``tracking`` group), and a Ray cluster of a head and worker nodes (the ``ray`` group,
:mod:`lab.team.raynodes`), each a separate process on 127.0.0.1, all data in one folder.

``DIR`` (default ``<project>/.team``, ignored by git) holds::

    pg/              the PostgreSQL cluster (initdb; owned by user 'postgres' when run as root)
    s3/              the buckets' objects, saved by `down` (moto keeps objects in memory only)
    logs/NAME.log    each service's output
    ray/NODE/        each Ray node's temp folder (sessions, Ray's own logs, sockets)
    ray/auth_token   the Ray cluster's token (mode 0600)
    secrets.json     generated credentials (mode 0600): MLflow admin, PostgreSQL, S3 keys, Ray token
    mlflow-auth.ini  the basic-auth app's configuration (mode 0600)
    env              what a user sources (mode 0600): MLFLOW_TRACKING_URI, credentials, S3 endpoint,
                     RAY_ADDRESS and the Ray token's path
    state.json       ports, and the PID + start time of every process started

Everything the clients use is plain: a tracking URI with basic auth, and S3 through an endpoint URL,
so moving to a managed MLflow, AWS S3 or MinIO changes settings only (docs/team.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.team import raynodes
from lab.team import s3 as s3ops
from lab.team.daemons import (
    Proc,
    TeamError,
    alive,
    as_user,
    check_port,
    group_members,
    spawn,
    stop,
    wait_until,
)

SETUP_HINT = "bash scripts/setup.sh --with team"
PG_DB_USER = "lab"
DATABASES = ("mlflow", "mlflow_auth")   # runs and models; the basic-auth app's users and permissions
TRACKING = ("postgres", "s3", "mlflow")   # start order; stop is the reverse
GROUPS = ("tracking", "ray")               # what `up --only` chooses from; both by default


@dataclass(frozen=True)
class TeamSettings:
    """Where the stack listens and what it names; kept in ``state.json`` by the first ``up``."""

    host: str = "127.0.0.1"
    pg_port: int = 5433            # not 5432: leave a system PostgreSQL alone
    s3_port: int = 9000
    mlflow_port: int = 5000
    ray_port: int = 6380           # the Ray head's GCS; the nodes use a block of ports above it (raynodes)
    ray_workers: int = 1           # worker nodes besides the head
    ray_cpus: int = 1              # CPUs each Ray node offers
    region: str = "us-east-1"
    artifacts_bucket: str = "lab-mlflow"
    dvc_bucket: str = "lab-dvc"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def ray(self) -> raynodes.RaySettings:
        return raynodes.RaySettings(host=self.host, port=self.ray_port, workers=self.ray_workers,
                                    cpus=self.ray_cpus)

    def order(self, groups: tuple[str, ...] = GROUPS) -> list[str]:
        """The services of ``groups`` in start order (stop is the reverse)."""
        return [*(TRACKING if "tracking" in groups else ()), *(self.ray.names() if "ray" in groups else ())]


def team_dir(folder: Path | None = None) -> Path:
    """``folder`` (absolute), or ``<project>/.team``."""
    from lab.paths import project_root

    return (folder or project_root() / ".team").resolve()


def missing(groups: tuple[str, ...] = GROUPS) -> list[str]:
    """What the stack's ``groups`` need and this machine lacks (empty when ready), each with what
    provides it."""
    import importlib.util

    out = []
    if "tracking" in groups:
        out += [f"Python package {mod} (extra 'team')" for mod in ("psycopg2", "moto", "boto3", "dvc_s3", "flask_wtf")
                if importlib.util.find_spec(mod) is None]
        try:
            pg_bin()
        except TeamError:
            out.append("PostgreSQL server binaries (initdb, postgres: Debian package postgresql)")
    if "ray" in groups:
        out += raynodes.missing()
    return out


def pg_bin() -> Path:
    """The folder of PostgreSQL's ``initdb`` and ``postgres``: ``LAB_TEAM_PG_BIN``, the PATH, or
    Debian's ``/usr/lib/postgresql/<newest>/bin`` (not on the PATH there)."""
    if os.environ.get("LAB_TEAM_PG_BIN"):
        chosen = Path(os.environ["LAB_TEAM_PG_BIN"])
        if not (chosen / "initdb").is_file():
            raise TeamError(f"LAB_TEAM_PG_BIN={chosen} holds no initdb")
        return chosen
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    raise TeamError(f"PostgreSQL's initdb is not installed: run `{SETUP_HINT}` (Debian: apt-get install "
                    "postgresql), or set LAB_TEAM_PG_BIN to the folder holding initdb and postgres")


# --------------------------------------------------------------------------- files in DIR


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start (no window where others can read)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    tmp.replace(path)


def load_secrets(d: Path) -> dict[str, str]:
    """``DIR/secrets.json``, generated on first use. ``LAB_TEAM_ADMIN_USERNAME`` /
    ``LAB_TEAM_ADMIN_PASSWORD`` and ``LAB_TEAM_S3_ACCESS_KEY`` / ``LAB_TEAM_S3_SECRET_KEY`` choose the
    values instead of random ones; they count only when the file is created (MLflow keeps the admin's
    password in its own database from its first start; change it there with the update-password API)."""
    path = d / "secrets.json"
    if path.exists():
        values = json.loads(path.read_text(encoding="utf-8"))
        if "ray_auth_token" not in values:   # a DIR from before the stack had Ray
            values["ray_auth_token"] = raynodes.new_token()
            _write_private(path, json.dumps(values, indent=2) + "\n")
        return values
    env = os.environ
    values = {
        "admin_username": env.get("LAB_TEAM_ADMIN_USERNAME") or "admin",
        "admin_password": env.get("LAB_TEAM_ADMIN_PASSWORD") or secrets.token_urlsafe(18),
        "pg_password": secrets.token_urlsafe(18),
        "flask_secret_key": secrets.token_hex(32),
        "s3_access_key": env.get("LAB_TEAM_S3_ACCESS_KEY") or "lab" + secrets.token_hex(8),
        "s3_secret_key": env.get("LAB_TEAM_S3_SECRET_KEY") or secrets.token_urlsafe(24),
        "ray_auth_token": raynodes.new_token(),
    }
    _write_private(path, json.dumps(values, indent=2) + "\n")
    return values


def _load_state(d: Path) -> tuple[TeamSettings | None, dict[str, Proc]]:
    path = d / "state.json"
    if not path.exists():
        return None, {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return TeamSettings(**data["settings"]), {k: Proc(**v) for k, v in data.get("procs", {}).items()}


def _save_state(d: Path, settings: TeamSettings, procs: dict[str, Proc]) -> None:
    data = {"settings": asdict(settings), "procs": {k: v.to_dict() for k, v in procs.items()}}
    tmp = d / ".state.json.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(d / "state.json")


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    """One ``up``/``down`` at a time per DIR."""
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TeamError(f"another `lab team up/down` is running on {d}") from None
        yield


def client_env(settings: TeamSettings, sec: dict[str, str]) -> dict[str, str]:
    """The variables a client of the tracking services needs (what ``DIR/env`` exports for them)."""
    return {
        "MLFLOW_TRACKING_URI": settings.mlflow_uri,
        "MLFLOW_TRACKING_USERNAME": sec["admin_username"],
        "MLFLOW_TRACKING_PASSWORD": sec["admin_password"],
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_ACCESS_KEY_ID": sec["s3_access_key"],
        "AWS_SECRET_ACCESS_KEY": sec["s3_secret_key"],
        "AWS_DEFAULT_REGION": settings.region,
        "LAB_TEAM_DVC_URL": f"s3://{settings.dvc_bucket}",
    }


def _write_env(d: Path, settings: TeamSettings, sec: dict[str, str], names: set[str]) -> Path:
    """``DIR/env``: the variables of the services in ``names`` (those the stack has started)."""
    lines = [f"# lab team stack in {d}: `. {d / 'env'}`; `lab team status` shows what runs"]
    if names & set(TRACKING):
        lines += [*(f"export {k}={shlex.quote(v)}" for k, v in client_env(settings, sec).items()),
                  "# DVC remote on the stack's bucket (credentials come from the AWS_* variables above):",
                  f"#   dvc remote add -d team s3://{settings.dvc_bucket}/lab",
                  f"#   dvc remote modify team endpointurl {settings.s3_endpoint}"]
    if names & set(settings.ray.names()):
        lines += raynodes.env_lines(d, settings.ray)
    _write_private(d / "env", "\n".join(lines) + "\n")
    return d / "env"


# --------------------------------------------------------------------------- PostgreSQL


def _pg_user() -> str | None:
    """The account PostgreSQL runs as: None (this one) unless we are root, which it refuses."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise TeamError("PostgreSQL refuses to run as root and there is no 'postgres' account: run "
                        f"`{SETUP_HINT}` (Debian's package creates it) or run lab as a normal user") from None
    return "postgres"


def _init_pg(d: Path, sec: dict[str, str], user: str | None) -> None:
    """``initdb`` the cluster in ``DIR/pg`` once: password login (scram) for user 'lab', no other."""
    data = d / "pg"
    if (data / "PG_VERSION").exists():
        return
    shutil.rmtree(data, ignore_errors=True)   # what a failed initdb left
    data.mkdir(mode=0o700, parents=True)
    pwfile = d / ".pg-password"
    _write_private(pwfile, sec["pg_password"] + "\n")
    if user is not None:
        uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
        os.chown(data, uid, gid)
        os.chown(pwfile, uid, gid)
        probe = subprocess.run(["test", "-w", str(data)], check=False, **as_user(user))
        if probe.returncode != 0:
            pwfile.unlink(missing_ok=True)
            raise TeamError(f"PostgreSQL runs as user '{user}' (root cannot run it) and that user cannot "
                            f"reach {data}: let it traverse the folders above (chmod o+x) or choose "
                            "another --dir")
    try:
        out = subprocess.run([str(pg_bin() / "initdb"), "-D", str(data), "-U", PG_DB_USER,
                              f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale"],
                             check=False, capture_output=True, text=True, **as_user(user))
    finally:
        pwfile.unlink(missing_ok=True)
    if out.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise TeamError(f"initdb failed:\n{out.stdout}{out.stderr}")


def _pg_connect(settings: TeamSettings, sec: dict[str, str], db: str = "postgres"):
    import psycopg2

    return psycopg2.connect(host=settings.host, port=settings.pg_port, user=PG_DB_USER,
                            password=sec["pg_password"], dbname=db, connect_timeout=3)


def _create_databases(settings: TeamSettings, sec: dict[str, str]) -> None:
    conn = _pg_connect(settings, sec)
    conn.autocommit = True   # CREATE DATABASE cannot run in a transaction
    try:
        with conn.cursor() as cur:
            for name in DATABASES:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def _start_pg(d: Path, settings: TeamSettings, sec: dict[str, str]) -> Proc:
    user = _pg_user()
    _init_pg(d, sec, user)
    log = d / "logs" / "postgres.log"
    # TCP on the one address only; no Unix socket (its folder would need to exist for that user)
    argv = [str(pg_bin() / "postgres"), "-D", str(d / "pg"), "-h", settings.host, "-p", str(settings.pg_port),
            "-c", "unix_socket_directories="]
    proc = spawn("postgres", argv, log, user=user)
    wait_until(lambda: _pg_connect(settings, sec).close() is None, "postgres", 60, proc, log)
    _create_databases(settings, sec)
    return proc


# --------------------------------------------------------------------------- S3 and MLflow


def _s3_client(settings: TeamSettings, sec: dict[str, str]):
    return s3ops.client(settings.s3_endpoint, sec["s3_access_key"], sec["s3_secret_key"], settings.region)


def _start_s3(d: Path, settings: TeamSettings, sec: dict[str, str]) -> Proc:
    log = d / "logs" / "s3.log"
    argv = [sys.executable, "-m", "moto.server", "-H", settings.host, "-p", str(settings.s3_port)]
    proc = spawn("s3", argv, log, env=_service_env())
    s3 = _s3_client(settings, sec)
    wait_until(lambda: s3.list_buckets() is not None, "the S3 emulator (moto)", 90, proc, log)
    s3ops.restore(s3, d / "s3")   # what the last `down` saved: this emulator starts empty
    s3ops.ensure_buckets(s3, [settings.artifacts_bucket, settings.dvc_bucket])
    return proc


def _service_env(**extra: str) -> dict[str, str]:
    from lab.env import TELEMETRY_OFF

    return {**os.environ, **TELEMETRY_OFF, **extra}


def _start_mlflow(d: Path, settings: TeamSettings, sec: dict[str, str]) -> Proc:
    import base64
    import urllib.error
    import urllib.request

    # the database password goes through PGPASSWORD (libpq), never on a command line others can list
    # +psycopg2: SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, which the extra does not carry
    pg = f"postgresql+psycopg2://{PG_DB_USER}@{settings.host}:{settings.pg_port}"
    ini = d / "mlflow-auth.ini"
    _write_private(ini, "\n".join([
        "[mlflow]", "default_permission = READ", f"database_uri = {pg}/mlflow_auth",
        f"admin_username = {sec['admin_username']}", f"admin_password = {sec['admin_password']}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access = false", ""]))
    env = _service_env(
        PGPASSWORD=sec["pg_password"], MLFLOW_AUTH_CONFIG_PATH=str(ini),
        MLFLOW_FLASK_SERVER_SECRET_KEY=sec["flask_secret_key"], MLFLOW_S3_ENDPOINT_URL=settings.s3_endpoint,
        AWS_ACCESS_KEY_ID=sec["s3_access_key"], AWS_SECRET_ACCESS_KEY=sec["s3_secret_key"],
        AWS_DEFAULT_REGION=settings.region)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(var, None)
    # MLflow's job runner (GenAI online scoring) starts seven huey consumers, each importing mlflow
    # (about 250 MB each, minutes of CPU on a busy machine); tracking needs none. Export it true to keep it.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    argv = [sys.executable, "-m", "mlflow", "server", "--host", settings.host, "--port", str(settings.mlflow_port),
            "--workers", "1", "--backend-store-uri", f"{pg}/mlflow",
            "--artifacts-destination", f"s3://{settings.artifacts_bucket}", "--app-name", "basic-auth"]
    log = d / "logs" / "mlflow.log"
    proc = spawn("mlflow", argv, log, env=env, cwd=d)
    token = base64.b64encode(f"{sec['admin_username']}:{sec['admin_password']}".encode()).decode()
    req = urllib.request.Request(f"{settings.mlflow_uri}/api/2.0/mlflow/experiments/search?max_results=1",
                                 headers={"Authorization": f"Basic {token}"})

    def answers() -> bool:
        try:
            return urllib.request.urlopen(req, timeout=5).status == 200
        except urllib.error.HTTPError as exc:
            if exc.code == 401:   # the auth database keeps the admin password of its first start
                raise TeamError(f"the MLflow server refuses the admin credentials of {d / 'secrets.json'}: "
                                "its user store (database mlflow_auth) holds another password for "
                                f"'{sec['admin_username']}'") from None
            raise

    # the first start creates the schema in PostgreSQL (dozens of migrations): minutes on a busy machine
    wait_until(answers, "the MLflow server", 300, proc, log)
    return proc


_STARTERS = {"postgres": _start_pg, "s3": _start_s3, "mlflow": _start_mlflow}


def _start(name: str, d: Path, settings: TeamSettings, sec: dict[str, str]) -> Proc:
    if name in _STARTERS:
        return _STARTERS[name](d, settings, sec)
    raynodes.token_file(d, sec)
    return raynodes.start_node(d, settings.ray, settings.ray.names().index(name))


def _ports(settings: TeamSettings) -> dict[str, tuple[int, str]]:
    return {"postgres": (settings.pg_port, "--pg-port"), "s3": (settings.s3_port, "--s3-port"),
            "mlflow": (settings.mlflow_port, "--mlflow-port")}


# --------------------------------------------------------------------------- commands


def _groups(only: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(only or GROUPS))
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown:
        raise TeamError(f"--only {unknown[0]}: not a part of the stack; choose from {', '.join(GROUPS)}")
    return chosen


def up(folder: Path | None = None, settings: TeamSettings | None = None,
       only: tuple[str, ...] | list[str] | None = None) -> dict:
    """Start what is not running yet (a second ``up`` only checks); returns :func:`status`.

    ``only``: parts of the stack (``tracking``: PostgreSQL, S3, MLflow; ``ray``: the Ray head and
    worker nodes), all by default. The settings of the first ``up`` are kept in ``state.json``;
    later ones use them. Raises :class:`TeamError` when something is missing, a port is taken, or a
    service does not come up (with the last lines of its log)."""
    groups = _groups(only)
    lacking = missing(groups)
    if lacking:
        raise TeamError("the team stack needs: " + "; ".join(lacking) + f". Install them with `{SETUP_HINT}`")
    d = team_dir(folder)
    with _locked(d):
        saved, procs = _load_state(d)
        settings = saved or settings or TeamSettings()
        sec = load_secrets(d)
        names = settings.order(groups)
        ports = _ports(settings)
        running = {n for n in procs if alive(procs[n])}
        for name in names:   # every port first: fail before starting anything
            if name in ports and name not in running:
                check_port(name, settings.host, *ports[name])
        if "ray" in groups:
            raynodes.check_ports(settings.ray, running)
        try:
            for name in names:
                if name in procs and alive(procs[name]):
                    continue
                procs[name] = _start(name, d, settings, sec)
                _save_state(d, settings, procs)   # recorded at once: a later failure can still be stopped
        except TeamError as exc:
            started = [n for n in procs if alive(procs[n])]
            if started:
                raise TeamError(f"{exc}\n(running: {', '.join(started)}; `lab team down --dir {d}` stops them)") \
                    from None
            raise
        finally:
            _save_state(d, settings, procs)
        _write_env(d, settings, sec, set(procs))
    return status(d)


def down(folder: Path | None = None) -> list[dict]:
    """Stop every process ``up`` started (Ray's worker nodes, its head, then the tracking services
    in reverse), saving the S3 buckets into ``DIR/s3`` before the emulator stops; the data stays.
    Returns what was stopped. Raises :class:`TeamError` when a process (or a child of it) is still there afterwards.
    """
    d = team_dir(folder)
    stopped = []
    with _locked(d):
        settings, procs = _load_state(d)
        if settings is None:
            return []
        ray_names = [n for n in procs if n not in TRACKING]
        for name in [*reversed(ray_names), *reversed(TRACKING)]:
            proc = procs.get(name)
            if proc is None:
                continue
            if name == "s3" and alive(proc):
                s3 = _s3_client(settings, load_secrets(d))
                buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
                s3ops.save(s3, buckets, d / "s3")
            if name in TRACKING:
                # PostgreSQL: SIGINT is its fast shutdown (SIGTERM waits for every client to leave)
                stop(proc, signal.SIGINT if name == "postgres" else signal.SIGTERM, timeout=60)
            else:
                raynodes.stop_node(proc)
            stopped.append(proc.to_dict())
            del procs[name]
            _save_state(d, settings, procs)
    left = [p for p in stopped if group_members(p["pgid"])]
    if left:
        raise TeamError(f"still running after down: {left}")
    return stopped


def status(folder: Path | None = None, ask_ray: bool = True) -> dict:
    """What runs: each service's PID, whether it is alive, and where it listens; the env file; and,
    when the Ray head runs (and ``ask_ray``), the cluster's nodes as its GCS knows them (``ray``:
    node id, name, alive, address; or ``error``)."""
    d = team_dir(folder)
    settings, procs = _load_state(d)
    if settings is None:
        return {"dir": str(d), "services": {}, "env": None}
    where = {"postgres": f"postgresql://{PG_DB_USER}@{settings.host}:{settings.pg_port}/mlflow",
             "s3": settings.s3_endpoint, "mlflow": settings.mlflow_uri, **raynodes.addresses(settings.ray)}
    services = {name: {"pid": p.pid, "running": alive(p), "at": where.get(name, "?")} for name, p in procs.items()}
    env = d / "env"
    out: dict = {"dir": str(d), "services": services, "env": str(env) if env.exists() else None}
    if ask_ray and services.get("ray-head", {}).get("running"):
        out["ray"] = raynodes.cluster_status(d, settings.ray, services)
    return out
