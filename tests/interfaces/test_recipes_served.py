"""The Docker Compose, Kubernetes and Modal recipes' tbhub configs, served for real without Docker,
a cluster or Modal.

No Docker engine or Kubernetes cluster runs here, so what the recipes connect tbhub to is stood in for
by the same kinds of servers on loopback: a real PostgreSQL cluster (``tests/pg.py``) and a real S3
server (moto, ``tests/s3.py``). Each recipe's ``tbhub.toml`` is used as it is, except for what only
the container network provides: service host names, ports and container paths. tbhub runs with the
recipe's own arguments and environment; the database role and name, the password and the buckets
are the recipe's. The Modal hub's generated config and command run with its Volumes as folders.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from serving import free_port, stop, wait_for
from sqlalchemy.engine import make_url

from eventfiles import write_scalar_file
from pg import PostgresServer, postgres_server  # noqa: F401  (pytest fixture)
from s3 import s3_client, upload_tree
from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.store import open_state
from tbhub.config import load_config
from tbhub.core.accounts import Role

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONFIG_PATH = "/etc/tbhub/tbhub.toml"

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    config: str  # the recipe's tbhub.toml
    argv: list[str]  # what the recipe runs after `tbhub`
    env: dict[str, str]  # what the recipe puts in tbhub's environment
    db_password: str  # what the recipe gives the database server as the role's password
    database_host: str  # "host:port" of the database in the recipe's network
    state_dir: str  # container paths the recipe mounts
    logs: str


def _compose() -> Stack:
    text = (DEPLOY / "docker-compose.yml").read_text()
    # ${VAR:-default} with nothing set, as on a fresh checkout; $$ is a literal $.
    text = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), text).replace("$$", "$")
    services: dict[str, Any] = yaml.safe_load(text)["services"]
    hub = services["tbhub"]
    mounts = {spec.split(":")[1]: spec.split(":")[0] for spec in hub["volumes"]}
    return Stack(
        config=(DEPLOY / mounts[CONFIG_PATH]).read_text(),
        argv=list(hub["command"]),
        env={k: str(v) for k, v in hub["environment"].items()},
        db_password=services["postgres"]["environment"]["POSTGRES_PASSWORD"],
        database_host="postgres:5432",
        state_dir="/var/lib/tbhub",
        logs="/logs",
    )


def _kubernetes() -> Stack:
    docs = {doc["kind"]: doc for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc and "kind" in doc}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    secret = docs["Secret"]["stringData"]
    env = {e["name"]: secret[e["valueFrom"]["secretKeyRef"]["key"]] for e in container["env"]}
    return Stack(
        config=docs["ConfigMap"]["data"]["tbhub.toml"],
        argv=list(container["args"]),
        env=env,
        db_password=secret["postgres-password"],
        database_host="postgres.tbhub.svc.cluster.local:5432",
        state_dir="/var/lib/tbhub",
        logs="/logs",
    )


def _on_loopback(stack: Stack, tmp: Path, pg: PostgresServer, s3_url: str) -> str:
    text = stack.config
    for old, new in {
        f"@{stack.database_host}/": f"@{pg.host}:{pg.port}/",
        f'dir = "{stack.state_dir}"': f'dir = "{tmp / "state"}"',
    }.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    text = text.replace(f'logdir = "{stack.logs}', f'logdir = "{tmp / "logs"}')
    # The S3 server: the recipe's endpoint_url replaced, or set where the recipe relies on AWS's.
    text, found = re.subn(r'^endpoint_url = ".*"$', f'endpoint_url = "{s3_url}"', text, flags=re.M)
    if not found:
        text = text.replace("[s3]\n", f'[s3]\nendpoint_url = "{s3_url}"\n', 1)
    # Free ports: the hub's 6005 and TensorBoard's 6006, 6007 may be taken on a shared test machine.
    text = re.sub(r"^port = 6005$", f"port = {free_port()}", text, flags=re.M)
    return re.sub(r"^(\[endpoints\.[\w-]+\])$", lambda m: f"{m.group(1)}\nport = {free_port()}", text, flags=re.M)


@pytest.mark.parametrize("recipe", [_compose, _kubernetes], ids=["compose", "kubernetes"])
def test_recipe_config_serves_from_postgres_and_s3(
    recipe: Any, tmp_path: Path, postgres_server: PostgresServer, s3_endpoint: str  # noqa: F811
) -> None:
    import psycopg

    stack: Stack = recipe()
    path = tmp_path / "tbhub.toml"
    path.write_text(_on_loopback(stack, tmp_path, postgres_server, s3_endpoint))
    config = load_config(path)
    url = make_url(config.state.url)
    assert url.password is None and url.username and url.database
    # What the database server is given: the role with the recipe's password, and the database.
    with psycopg.connect(postgres_server.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{url.username}\" LOGIN PASSWORD '{stack.db_password}'")
        conn.execute(f'CREATE DATABASE "{url.database}" OWNER "{url.username}"')
    try:
        expected: dict[str, int] = {}
        buckets: set[str] = set()
        for name, endpoint in config.endpoints.items():
            if endpoint.logdir.startswith("s3://"):
                bucket, _, prefix = endpoint.logdir.removeprefix("s3://").partition("/")
                if bucket not in buckets:  # two endpoints may share a bucket
                    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
                    buckets.add(bucket)
                upload = tmp_path / "upload" / name
                for run in ("r8", "r16", "r32"):
                    write_scalar_file(upload / "alpaca" / run, range(40))
                upload_tree(s3_endpoint, upload, bucket, prefix)
                expected[name] = 3
            else:
                write_scalar_file(Path(endpoint.logdir) / "mnist" / "baseline", range(25))
                expected[name] = 1
        assert len(set(expected.values())) == 2, "the recipe shows a log root in S3 and one on disk"

        env = {**os.environ, **stack.env, "PYTHONUNBUFFERED": "1", "AWS_DEFAULT_REGION": "us-east-1"}
        argv = [str(path) if a == CONFIG_PATH else a for a in stack.argv]
        log = tmp_path / "serve.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "tbhub", *argv, "--host", "127.0.0.1",
                                     "--scan-interval", "1", "--alerts-warmup", "0"],
                                    stdout=out, stderr=subprocess.STDOUT, env=env)
        hub = f"http://127.0.0.1:{config.server.port}"
        try:
            wait_for(lambda: httpx.get(hub + "/healthz", timeout=5, trust_env=False).status_code == 200, 90,
                     "the hub to answer")
            # The hub keeps its state in the recipe's database: a token made there signs in.
            state = open_state(postgres_server.url(url.database))
            try:
                token, _ = AccountStore(state.engine).create_token("recipe-test", Role.VIEWER, "test")
            finally:
                state.dispose()
            headers = {"authorization": f"Bearer {token}"}

            def runs() -> dict[str, int] | None:
                got = {e["name"]: e["runs"] for e in
                       httpx.get(hub + "/api/endpoints", headers=headers, timeout=10, trust_env=False).json()}
                return got if got == expected else None

            wait_for(runs, 90, f"every endpoint scanned ({expected})")
        finally:
            stop(proc, wait=20)
        assert proc.returncode == 0, log.read_text()[-3000:]
    finally:
        with psycopg.connect(postgres_server.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{url.username}"')


def test_modal_hub_config_and_command_serve_every_trainer(tmp_path: Path) -> None:
    """The Modal hub's generated config and command, run here with the Volume mounts as folders."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tbhub_modal_app", DEPLOY / "modal_app.py")
    assert spec is not None and spec.loader is not None
    modal_app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(modal_app)  # defines the Modal app; contacts nobody

    text = modal_app.hub_config()
    text = text.replace(f'"{modal_app.LOGS}/', f'"{tmp_path / "logs"}/')  # each trainer's Volume
    text = text.replace(f"sqlite:///{modal_app.STATE}/", f"sqlite:///{tmp_path / 'state-volume'}/")
    text = text.replace('dir = "/tmp/tbhub"', f'dir = "{tmp_path / "state"}"')
    text = re.sub(rf"^port = {modal_app.HUB_PORT}$", f"port = {free_port()}", text, flags=re.M)
    text = re.sub(r"^(\[endpoints\.[\w-]+\])$", lambda m: f"{m.group(1)}\nport = {free_port()}", text, flags=re.M)
    path = tmp_path / "tbhub.toml"
    path.write_text(text)
    config = load_config(path)
    for i, name in enumerate(modal_app.TRAINERS):
        for run in range(i + 1):
            write_scalar_file(tmp_path / "logs" / name / "sft" / f"r{run}", range(30))

    command = modal_app.hub_command(path)
    assert command[0] == sys.executable
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        # --host: the container's 0.0.0.0 stays inside Modal; here, loopback.
        proc = subprocess.Popen([*command, "--host", "127.0.0.1", "--scan-interval", "1", "--alerts-warmup", "0"],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    hub = f"http://127.0.0.1:{config.server.port}"
    try:
        wait_for(lambda: httpx.get(hub + "/healthz", timeout=5, trust_env=False).status_code == 200, 90,
                 "the hub to answer")
        state = open_state(config.state.url)
        try:
            token, _ = AccountStore(state.engine).create_token("modal-test", Role.VIEWER, "test")
        finally:
            state.dispose()
        headers = {"authorization": f"Bearer {token}"}
        expected = {name: i + 1 for i, name in enumerate(modal_app.TRAINERS)}

        def runs() -> dict[str, int] | None:
            got = {e["name"]: e["runs"] for e in
                   httpx.get(hub + "/api/endpoints", headers=headers, timeout=10, trust_env=False).json()}
            return got if got == expected else None

        wait_for(runs, 90, f"every trainer scanned ({expected})")
        wait_for(lambda: httpx.get(hub + "/readyz", timeout=5, trust_env=False).status_code == 200, 90,
                 "every trainer's TensorBoard up")
    finally:
        stop(proc, wait=20)
    assert proc.returncode == 0, log.read_text()[-3000:]
    # Every line the hub wrote is JSON (what `modal app logs` shows).
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any(r.get("setup_url") for r in records)  # sign-in is on: the first admin's link is logged
