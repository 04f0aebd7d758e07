"""The team stack on real engines: PostgreSQL, moto's S3 server, MLflow with basic auth.

One stack for the module, started with the CLI in a temporary folder on free ports, as a user would;
the last test stops it and checks by PID that nothing is left. Skipped, with how to install, when
the 'team' extra or PostgreSQL's binaries are missing.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lab.team import SETUP_HINT, missing
from lab.team.daemons import Proc, alive, group_members

pytestmark = pytest.mark.team

REPO = Path(__file__).resolve().parents[1]
_LACKING = missing()
if _LACKING:
    pytest.skip(f"team stack not installed ({'; '.join(_LACKING)}): run `{SETUP_HINT}`", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def _read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            out[key] = shlex.split(value)[0]
    return out


@pytest.fixture(scope="module")
def stack():
    # not pytest's tmp_path: its folders are mode 0700, and as root PostgreSQL runs as 'postgres'
    folder = Path(tempfile.mkdtemp(prefix="lab-team-"))
    folder.chmod(0o755)
    ports = [str(_free_port()) for _ in range(3)]
    done = _lab("team", "up", "--only", "tracking", "--dir", str(folder), "--pg-port", ports[0],
                "--s3-port", ports[1], "--mlflow-port", ports[2])   # Ray: tests/test_team_ray.py
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        yield folder, _read_env(folder / "env")
    finally:
        if (folder / "state.json").exists() and _procs(folder):   # a test failed before `down`
            _lab("team", "down", "--dir", str(folder))
        shutil.rmtree(folder, ignore_errors=True)


def _procs(folder: Path) -> list[Proc]:
    state = json.loads((folder / "state.json").read_text())
    return [Proc(**p) for p in state["procs"].values()]


def _get(url: str, user: str | None = None, password: str | None = None) -> tuple[int, dict]:
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def test_up_writes_private_env_and_a_second_up_starts_nothing(stack):
    folder, env = stack
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_S3_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(env)
    for name in ("env", "secrets.json", "mlflow-auth.ini"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600, name
    before = {p.name: p.pid for p in _procs(folder)}
    assert set(before) == {"postgres", "s3", "mlflow"}
    again = _lab("team", "up", "--only", "tracking", "--dir", str(folder), timeout=120)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.pid for p in _procs(folder)} == before
    assert _lab("team", "status", "--dir", str(folder)).returncode == 0


def test_mlflow_answers_401_without_credentials_and_200_with_them(stack):
    _, env = stack
    url = f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _get(url)[0] == 401
    assert _get(url, env["MLFLOW_TRACKING_USERNAME"], "wrong")[0] == 401
    assert _get(url, env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])[0] == 200


def test_a_tracked_run_lands_in_postgres_and_its_artifact_in_s3(stack, tmp_path):
    folder, env = stack
    script = (
        "import mlflow, pathlib, sys\n"
        "from lab.tracking import stage_run\n"
        "p = pathlib.Path(sys.argv[1]); p.write_text('hello team')\n"
        "with stage_run('team_check', params={'k': 5}, root=pathlib.Path(sys.argv[2])) as run:\n"
        "    mlflow.log_metric('hit_rate', 0.5)\n"
        "    mlflow.log_artifact(str(p))\n"
        "print(run.info.run_id)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "note.txt"), str(REPO)], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.strip().splitlines()[-1]

    status, body = _get(f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/runs/get?run_id={run_id}",
                        env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    assert status == 200
    assert body["run"]["info"]["status"] == "FINISHED"
    assert {"key": "k", "value": "5"} in body["run"]["data"]["params"]
    assert any(t["key"] == "lab.stage" and t["value"] == "team_check" for t in body["run"]["data"]["tags"])

    # the server's store is the PostgreSQL database, not a file beside it
    import psycopg2

    state = json.loads((folder / "state.json").read_text())["settings"]
    secret = json.loads((folder / "secrets.json").read_text())
    conn = psycopg2.connect(host="127.0.0.1", port=state["pg_port"], user="lab", password=secret["pg_password"],
                            dbname="mlflow")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
        assert cur.fetchone() == ("FINISHED",)
    conn.close()

    import boto3

    s3 = boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lab-mlflow").get("Contents", [])]
    key = next(k for k in keys if run_id in k and k.endswith("/note.txt"))
    assert s3.get_object(Bucket="lab-mlflow", Key=key)["Body"].read() == b"hello team"


def test_dvc_push_to_the_bucket_and_pull_into_a_second_clone(stack, tmp_path):
    _, env = stack
    run_env = {**os.environ, **env, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    dvc = str(Path(sys.executable).with_name("dvc"))

    def sh(*argv: str, cwd: Path) -> str:
        done = subprocess.run(argv, cwd=cwd, env=run_env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
        return done.stdout

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    sh("git", "init", "-q", cwd=first)
    sh(dvc, "init", "-q", cwd=first)
    (first / "table.csv").write_text("id,text\n1,shared through S3\n")
    sh(dvc, "add", "-q", "table.csv", cwd=first)
    sh(dvc, "remote", "add", "-d", "team", f"{env['LAB_TEAM_DVC_URL']}/test", cwd=first)
    sh(dvc, "remote", "modify", "team", "endpointurl", env["MLFLOW_S3_ENDPOINT_URL"], cwd=first)
    sh("git", "add", "-A", cwd=first)
    sh("git", "commit", "-qm", "data", cwd=first)
    sh(dvc, "push", "-q", cwd=first)

    sh("git", "clone", "-q", str(first), str(second), cwd=tmp_path)
    assert not (second / "table.csv").exists()
    sh(dvc, "pull", "-q", cwd=second)
    assert (second / "table.csv").read_text() == "id,text\n1,shared through S3\n"


# -- the pipeline against the stack: a lab project (`lab init`), its stages tracked on the server --

_DOCS = {
    "notes/wal.md": "# Write-ahead log\n\nThe WAL file grows until a checkpoint copies its pages back into the "
                    "database. A checkpoint runs automatically when the WAL reaches 1000 pages.\n",
    "notes/locking.md": "# Locking\n\nA reader takes a SHARED lock. A writer takes a RESERVED lock first, then "
                        "PENDING, then EXCLUSIVE while it writes the database file.\n",
    "web/limits.html": "<html><head><title>Limits</title></head><body><h1>Limits</h1><p>The longest string is "
                       "one billion bytes by default; SQLITE_MAX_LENGTH raises it.</p></body></html>",
}


def _git_env(env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **env, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _sh(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def project(stack):
    """A `lab init` project of three small documents whose DVC remote is the stack's bucket."""
    _, env = stack
    run_env = _git_env(env)
    base = Path(tempfile.mkdtemp(prefix="lab-team-project-"))
    docs = base / "docs"
    for rel, text in _DOCS.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text)
    first = base / "first"
    _sh([sys.executable, "-m", "lab.cli", "init", str(first), "--docs", str(docs), "--n", "2"], base, run_env)
    dvc = str(Path(sys.executable).with_name("dvc"))
    _sh([dvc, "remote", "add", "-d", "team", f"{env['LAB_TEAM_DVC_URL']}/{base.name}"], first, run_env)
    _sh([dvc, "remote", "modify", "team", "endpointurl", env["MLFLOW_S3_ENDPOINT_URL"]], first, run_env)
    _sh(["git", "commit", "-qam", "the team's DVC remote"], first, run_env)
    try:
        yield first, run_env, dvc
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _server_runs(env: dict[str, str], stage: str) -> list[dict]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update({k: env[k] for k in saved})
    try:
        exps = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(exps, filter_string=f"tags.`lab.stage` = '{stage}'", max_results=200)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return [{"id": r.info.run_id, "status": r.info.status, "params": r.data.params} for r in runs]


@pytest.mark.slow
@pytest.mark.e2e
def test_a_teammates_clone_restores_the_stages_without_running_them(project, stack, tmp_path):
    """One person runs the stages against the stack, commits dvc.lock and the git-tracked tables and
    pushes data and run cache; a teammate's fresh clone gets every output with `dvc repro --pull`
    and runs nothing."""
    first, run_env, dvc = project
    _, env = stack
    before = {r["id"] for r in _server_runs(env, "ingest")}
    out = _sh([dvc, "repro", "ingest", "data_quality"], first, run_env)
    assert "Running stage 'ingest'" in out and "Running stage 'data_quality'" in out
    landed = [r for r in _server_runs(env, "ingest") if r["id"] not in before]
    assert [r["status"] for r in landed] == ["FINISHED"]   # the stage's run is on the team's server
    _sh(["git", "add", "-A"], first, run_env)
    _sh(["git", "commit", "-qm", "ingest and data_quality"], first, run_env)
    _sh([dvc, "push", "--run-cache"], first, run_env)

    second = tmp_path / "second"
    _sh(["git", "clone", "-q", str(first), str(second)], tmp_path, run_env)
    assert not (second / "results" / "ingest" / "manifest.json").exists()
    out = _sh([dvc, "repro", "--pull", "ingest", "data_quality"], second, run_env)
    assert "Running stage" not in out, out
    assert "Pulling data for stage: 'ingest'" in out and "Data and pipelines are up to date." in out, out
    for rel in ("results/ingest/manifest.json", "results/data_quality/metrics.json",
                "results/data_quality/problems.csv"):
        assert (second / rel).read_bytes() == (first / rel).read_bytes(), rel
    assert [r for r in _server_runs(env, "ingest") if r["id"] not in before] == landed   # nothing ran again


@pytest.mark.slow
@pytest.mark.e2e
def test_two_queued_experiments_run_at_once_and_both_land(project, stack):
    """`dvc exp run --queue` twice, `dvc queue start -j 2`: both experiments complete, in
    `dvc exp show` and as finished runs on the MLflow server with their own parameters."""
    import time

    first, run_env, dvc = project
    _, env = stack
    before = {r["id"] for r in _server_runs(env, "ingest")}
    for suffix in ("md", "html"):   # two corpora: one without the Markdown notes, one without the web page
        _sh([dvc, "exp", "run", "--queue", "-S", f'ingest.exclude=["*.{suffix}"]', "-n", f"no-{suffix}", "ingest"],
            first, run_env)
    _sh([dvc, "queue", "start", "-j", "2"], first, run_env)
    deadline = time.monotonic() + 900
    while True:
        status = _sh([dvc, "queue", "status"], first, run_env)
        if not any(w in status for w in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(5)
    assert status.count("Success") >= 2 and "Failed" not in status, status
    done = subprocess.run([dvc, "exp", "show", "--json"], cwd=first, env=run_env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    names = json.dumps(shown)
    assert "no-md" in names and "no-html" in names
    runs = [r for r in _server_runs(env, "ingest") if r["id"] not in before]
    excluded = sorted(v for r in runs for k, v in r["params"].items() if k.endswith("exclude"))
    assert [r["status"] for r in runs] == ["FINISHED", "FINISHED"], runs
    assert excluded == ['["*.html"]', '["*.md"]'], runs
    _sh([dvc, "queue", "stop"], first, run_env)


def test_two_registrations_at_once_give_two_versions(stack, tmp_path):
    """Two stages registering the same model at the same moment: two versions, no error."""
    _, env = stack
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{}")
    name = f"race-{tmp_path.name}"[:60]
    go = tmp_path / "go"
    script = ("import pathlib, sys, time\n"
              "from lab.export.registry import register\n"
              "go = pathlib.Path(sys.argv[3])\n"
              "while not go.exists(): time.sleep(0.01)\n"
              "print(register(sys.argv[1], sys.argv[2], root=pathlib.Path(sys.argv[4])))\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(bundle), name, str(go), str(REPO)], cwd=REPO,
                              env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    go.write_text("now")
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    versions = sorted(int(o[0].strip().splitlines()[-1]) for o in outs)
    assert versions == [1, 2]


def test_a_port_in_use_is_an_error_naming_it(tmp_path):
    folder = tmp_path / "busy"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = _lab("team", "up", "--only", "tracking", "--dir", str(folder), "--mlflow-port", str(port),
                    "--pg-port", str(_free_port()), "--s3-port", str(_free_port()), timeout=120)
    assert done.returncode == 2
    assert f"port {port}" in done.stderr and "mlflow" in done.stderr and "--mlflow-port" in done.stderr
    assert not (folder / "pg").exists()   # nothing was started


def test_buckets_saved_to_a_folder_come_back_into_an_empty_store(tmp_path):
    """What `down` and `up` do around moto's in-memory store, on moto's in-process S3."""
    from moto import mock_aws

    from lab.team import s3 as s3ops

    with mock_aws():
        s3 = s3ops.client("https://s3.amazonaws.com", "k", "s", "us-east-1")
        s3ops.ensure_buckets(s3, ["alpha", "beta"])
        s3.put_object(Bucket="alpha", Key="x/y.txt", Body=b"one")
        s3.put_object(Bucket="beta", Key="z", Body=b"two")
        assert s3ops.save(s3, ["alpha", "beta"], tmp_path / "s3") == 2
    with mock_aws():   # a fresh, empty store
        s3 = s3ops.client("https://s3.amazonaws.com", "k", "s", "us-east-1")
        s3ops.ensure_buckets(s3, ["beta"])
        s3.put_object(Bucket="beta", Key="newer", Body=b"kept")
        assert s3ops.restore(s3, tmp_path / "s3") == 1   # beta holds data already: left alone
        assert s3.get_object(Bucket="alpha", Key="x/y.txt")["Body"].read() == b"one"
        assert s3ops.keys(s3, "beta") == ["newer"]


def test_down_stops_every_process_and_keeps_the_data(stack):
    folder, _ = stack
    procs = _procs(folder)
    assert all(alive(p) for p in procs)
    done = _lab("team", "down", "--dir", str(folder), timeout=180)
    assert done.returncode == 0, done.stderr
    for p in procs:
        assert not alive(p), p
        assert group_members(p.pgid) == [], p
    assert (folder / "pg" / "PG_VERSION").exists()
    assert any((folder / "s3" / "lab-dvc").rglob("*")), "the DVC bucket was saved"
    assert any((folder / "s3" / "lab-mlflow").rglob("note.txt")), "the artifact bucket was saved"
    assert _lab("team", "status", "--dir", str(folder)).stdout.strip().endswith("nothing started")
