"""The Docker Compose stack's tbhub config, served for real without Docker.

No Docker engine runs here, so the compose services are stood in for by the same kinds of servers on
loopback: a real PostgreSQL cluster (``tests/pg.py``) and a real S3 server (moto, ``tests/s3.py``).
``deploy/compose/tbhub.toml`` is used as it is, except for what only Docker's network provides: the
service host names and ports, and the container paths. The role, database and bucket are the ones
the compose file creates, and tbhub gets the compose file's environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml
from serving import free_port, wait_for

from eventfiles import write_scalar_file
from pg import PostgresServer, postgres_server  # noqa: F401  (pytest fixture)
from s3 import s3_client, upload_tree
from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.store import open_state
from tbhub.core.accounts import Role

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

pytestmark = pytest.mark.slow


def _compose() -> dict[str, Any]:
    text = (DEPLOY / "docker-compose.yml").read_text()
    # ${VAR:-default} with nothing set, as on a fresh checkout; $$ is a literal $.
    text = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), text).replace("$$", "$")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _local_config(tmp: Path, pg: PostgresServer, s3_url: str, logs: Path) -> Path:
    text = (DEPLOY / "compose" / "tbhub.toml").read_text()
    replaced = {
        "@postgres:5432/": f"@{pg.host}:{pg.port}/",
        '"http://minio:9000"': f'"{s3_url}"',
        'logdir = "/logs"': f'logdir = "{logs}"',
        'dir = "/var/lib/tbhub"': f'dir = "{tmp / "state"}"',
        "port = 6005": f"port = {free_port()}",
    }
    for old, new in replaced.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    # Free TensorBoard ports: 6006 and 6007 may be taken on a shared test machine.
    text = re.sub(r"^(\[endpoints\.[\w-]+\])$", lambda m: f"{m.group(1)}\nport = {free_port()}", text, flags=re.M)
    path = tmp / "tbhub.toml"
    path.write_text(text)
    return path


def test_compose_config_serves_from_postgres_and_s3(
    tmp_path: Path, postgres_server: PostgresServer, s3_endpoint: str  # noqa: F811
) -> None:
    import psycopg

    compose = _compose()
    services = compose["services"]
    db_env = services["postgres"]["environment"]
    # What the postgres image does with POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB.
    with psycopg.connect(postgres_server.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{db_env['POSTGRES_USER']}\" LOGIN PASSWORD '{db_env['POSTGRES_PASSWORD']}'")
        conn.execute(f"CREATE DATABASE \"{db_env['POSTGRES_DB']}\" OWNER \"{db_env['POSTGRES_USER']}\"")
    try:
        # What the create-bucket service does, then a trainer's upload; and logs on the "host".
        create = " ".join(services["create-bucket"]["command"])
        bucket = re.search(r"mc mb (?:--ignore-existing )?\w+/([\w.-]+)", create)
        assert bucket is not None
        s3_client(s3_endpoint).create_bucket(Bucket=bucket.group(1))
        uploads = tmp_path / "upload"
        for run in ("r8", "r16", "r32"):
            write_scalar_file(uploads / "alpaca" / run, range(40))
        upload_tree(s3_endpoint, uploads, bucket.group(1), "lora")
        logs = tmp_path / "logs"
        write_scalar_file(logs / "mnist" / "baseline", range(25))

        config = _local_config(tmp_path, postgres_server, s3_endpoint, logs)
        port = int(re.search(r"^port = (\d+)", config.read_text(), re.M).group(1))  # type: ignore[union-attr]
        env = {**os.environ, **{k: str(v) for k, v in services["tbhub"]["environment"].items()},
               "PYTHONUNBUFFERED": "1", "AWS_DEFAULT_REGION": "us-east-1"}
        log = tmp_path / "serve.log"
        argv = list(services["tbhub"]["command"])
        argv[argv.index("/etc/tbhub/tbhub.toml")] = str(config)
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "tbhub", *argv, "--host", "127.0.0.1",
                                     "--scan-interval", "1", "--alerts-warmup", "0"],
                                    stdout=out, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: httpx.get(url + "/healthz", timeout=5, trust_env=False).status_code == 200, 90,
                     "the hub to answer")
            # The hub keeps its state in the compose database: a token made there signs in.
            state = open_state(postgres_server.url(db_env["POSTGRES_DB"]))
            try:
                token, _ = AccountStore(state.engine).create_token("compose-test", Role.VIEWER, "test")
            finally:
                state.dispose()
            headers = {"authorization": f"Bearer {token}"}

            def runs() -> dict[str, int] | None:
                got = {e["name"]: e["runs"] for e in
                       httpx.get(url + "/api/endpoints", headers=headers, timeout=10, trust_env=False).json()}
                return got if got == {"lora": 3, "local": 1} else None

            wait_for(runs, 90, "both endpoints scanned (S3 and the host folder)")
        finally:
            tree = [proc, *(psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else [])]
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            for child in tree[1:]:
                with contextlib.suppress(psutil.Error):
                    child.kill()
        assert proc.returncode == 0, log.read_text()[-3000:]
    finally:
        with psycopg.connect(postgres_server.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS \"{db_env['POSTGRES_DB']}\" WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS \"{db_env['POSTGRES_USER']}\"")
