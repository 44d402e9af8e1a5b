"""The deployment recipes in ``deploy/``, ``Dockerfile`` and ``.dockerignore``, tested as far as this machine allows.

No Docker engine, Kubernetes cluster, systemd instance or Modal account is reachable here, so each
recipe is checked against the real pieces it names: its tbhub config loads with ``tbhub.config``, the
ports agree with that config, health checks and probes hit public routes of the real app, the command
lines parse with tbhub's own CLI (and TensorBoard's flag parser), the Docker health-check command runs
against a real ``tbhub serve``, and ``systemd-analyze verify`` and ``kubectl kustomize`` run where
they are installed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
import yaml
from sqlalchemy.engine import make_url

from tbhub.adapters.db.store import open_state
from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.config import Config, EndpointConfig, StateConfig, load_config
from tbhub.interfaces.cli.main import app as cli_app
from tbhub.interfaces.web.app import create_app
from tbhub.interfaces.web.auth import PUBLIC

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"


# -- shared checks ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def public_paths(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Paths of the real app's routes that answer without signing in (what probes can reach)."""
    tmp = tmp_path_factory.mktemp("routes")
    state = open_state(f"sqlite:///{tmp / 'state.db'}")
    try:
        config = Config(state=StateConfig(dir=tmp), endpoints={"x": EndpointConfig(logdir=str(tmp))})
        app = create_app(Hub(Services(config, state=state), None), alerts=False)
        return {getattr(r, "path", "") for r in app.routes if getattr(r, "name", None) in PUBLIC}
    finally:
        state.dispose()


def serve_args(argv: list[str]) -> dict[str, Any]:
    """``tbhub ARGV`` parsed by the real CLI (nothing runs): the serve command's parameters."""
    assert argv[0] == "serve", argv
    command = typer.main.get_command(cli_app)
    group_ctx = command.make_context("tbhub", list(argv), resilient_parsing=False)
    sub = command.get_command(group_ctx, "serve")  # type: ignore[attr-defined]
    assert sub is not None
    return dict(sub.make_context("serve", list(argv[1:])).params)


def load_toml_text(text: str, tmp_path: Path, name: str = "tbhub.toml") -> Config:
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


def local_logdirs(config: Config) -> set[str]:
    return {e.logdir for e in config.endpoints.values() if "://" not in e.logdir}


def s3_buckets(config: Config) -> set[str]:
    return {e.logdir.removeprefix("s3://").split("/")[0] for e in config.endpoints.values()
            if e.logdir.startswith("s3://")}


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


# -- Dockerfile and .dockerignore ------------------------------------------------------------------------
def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per stage, continuation lines joined, comments dropped."""
    joined: list[str] = []
    current = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    stages: list[list[tuple[str, str]]] = []
    for line in joined:
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec form (a JSON list): {args}"
    return [str(v) for v in value]


def healthcheck_argv(args: str) -> list[str]:
    """The command of ``HEALTHCHECK [OPTIONS] CMD [...]``."""
    _, _, command = args.partition("CMD ")
    return exec_form(command)


def test_image_runs_as_a_numeric_non_root_user() -> None:
    final = dockerfile_stages()[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users, "the final stage sets no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]  # numeric: Kubernetes' runAsNonRoot can check it
    created = [args for instruction, args in final if instruction == "RUN" and "useradd" in args]
    assert created and f"--uid {uid}" in created[0]


def test_image_default_config_healthcheck_and_command_agree(public_paths: set[str]) -> None:
    final = dict(dockerfile_stages()[-1])
    copies = [args.split() for instruction, args in dockerfile_stages()[-1] if instruction == "COPY"]
    config_copy = next(c for c in copies if c[-1].endswith(".toml"))
    source, target = REPO / config_copy[0], config_copy[1]
    config = load_config(source)

    argv = exec_form(final["ENTRYPOINT"]) + exec_form(final["CMD"])
    assert argv[0] == "tbhub"
    params = serve_args(argv[1:])
    assert params["config"] == target and params["log_format"] == "json"

    assert final["EXPOSE"] == str(config.server.port)
    assert config.server.host == "0.0.0.0" and config.auth.enabled
    url = re.search(r"https?://[^'\"]+", " ".join(healthcheck_argv(final["HEALTHCHECK"])))
    assert url is not None
    assert url.group(0) == f"http://127.0.0.1:{config.server.port}/healthz"
    assert "/healthz" in public_paths
    env = final["ENV"]
    assert f"TBHUB_HOME={config.state.path}" in env
    assert str(config.state.path) in final["VOLUME"]
    # pip installs the extra the state database on PostgreSQL needs; it must exist.
    assert "'.[postgres]'" in " ".join(a for i, a in dockerfile_stages()[0] if i == "RUN")
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^postgres = \["psycopg\[binary\]==[\d.]+"\]', pyproject, re.M)


@pytest.mark.slow
def test_the_image_build_stage_makes_a_complete_wheel(tmp_path: Path) -> None:
    """What the build stage does, without Docker: the files it copies, ``pip wheel`` of the project.

    The image installs that wheel, not this editable checkout: a template, stylesheet or migration
    missing from the package data would break only the image.
    """
    build = dockerfile_stages()[0]
    context = tmp_path / "context"
    for instruction, args in build:
        if instruction == "COPY":
            *sources, target = args.split()
            for source in sources:  # relative to the stage's WORKDIR, which the context stands for
                if (REPO / source).is_dir():  # COPY src ./src: the folder's contents into the target
                    shutil.copytree(REPO / source, context / target,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
                else:  # COPY a b ./: each file into the target folder
                    assert target.endswith("/"), args
                    (context / target).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / source, context / target / Path(source).name)
    out = tmp_path / "wheels"
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(context)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    import zipfile

    (wheel,) = out.glob("tbhub-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
        metadata = archive.read(next(n for n in packaged if n.endswith(".dist-info/METADATA"))).decode()
    source = REPO / "src"
    expected = {p.relative_to(source).as_posix() for p in (source / "tbhub").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert expected - packaged == set()
    assert "Provides-Extra: postgres" in metadata


def dockerignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch(p, pattern) or fnmatch(p, pattern.removeprefix("**/")) for pattern in patterns
               for p in prefixes)


def test_dockerignore_keeps_what_the_image_copies_and_drops_the_rest() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = [args.split()[:-1] for stage in dockerfile_stages() for instruction, args in stage
              if instruction == "COPY" and "--from" not in args]
    for sources in copied:
        for source in sources:
            assert (REPO / source).exists(), source
            assert not dockerignored(source, patterns), f"{source} is copied but .dockerignore drops it"
    for heavy in (".venv", ".git", "tests", "src/tbhub/__pycache__"):
        assert dockerignored(heavy, patterns), heavy


def _serving() -> ModuleType:
    """``tests/interfaces/serving.py`` (the real ``tbhub serve`` fixture), which is not on this folder's path."""
    if "serving" in sys.modules:
        return sys.modules["serving"]
    spec = importlib.util.spec_from_file_location("serving", REPO / "tests" / "interfaces" / "serving.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serving"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_docker_healthcheck_command_against_a_real_hub(tmp_path: Path) -> None:
    from eventfiles import write_scalar_file

    serve = _serving().serve
    write_scalar_file(tmp_path / "logs" / "ds" / "r1", range(5))
    probe = healthcheck_argv(dict(dockerfile_stages()[-1])["HEALTHCHECK"])
    assert probe[0] == "python"
    with serve(tmp_path / "serve", {"logs": tmp_path / "logs"}) as server:
        command = [sys.executable, *(a.replace(":6005/", f":{server.port}/") for a in probe[1:])]
        healthy = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert healthy.returncode == 0, healthy.stderr
    down = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert down.returncode != 0


# -- docker compose -------------------------------------------------------------------------------------
def interpolate(value: Any) -> Any:
    """Compose's ``${VAR:-default}`` with nothing set in the environment (what a fresh checkout gets)."""
    if isinstance(value, str):
        value = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), value)
        assert "${" not in value, f"a variable without a default: {value}"
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    resolved: dict[str, Any] = interpolate(data)
    return resolved


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container path → (host path or volume, read-only)."""
    out = {}
    for spec in service.get("volumes", []):
        parts = spec.split(":")
        out[parts[1]] = (parts[0], len(parts) > 2 and parts[2] == "ro")
    return out


def test_compose_config_file_is_mounted_and_loads(compose: dict[str, Any], tmp_path: Path) -> None:
    hub = compose["services"]["tbhub"]
    params = serve_args(hub["command"])
    source, read_only = mounts(hub)[params["config"]]
    assert read_only
    config = load_config(DEPLOY / source)
    assert config.server.host == "0.0.0.0" and config.auth.enabled
    assert {"local", "lora"} <= set(config.endpoints)
    # Local log roots are read-only mounts; the state folder is a named volume.
    for logdir in local_logdirs(config):
        assert any(under(logdir, target) and ro for target, (_, ro) in mounts(hub).items()), logdir
    state_source, state_ro = mounts(hub)[str(config.state.path)]
    assert state_source in compose["volumes"] and not state_ro


def test_compose_ports_and_healthcheck_match_the_config(compose: dict[str, Any], public_paths: set[str]) -> None:
    hub = compose["services"]["tbhub"]
    config = load_config(DEPLOY / mounts(hub)[serve_args(hub["command"])["config"]][0])
    published = [p.split(":") for p in hub["ports"]]
    assert [int(container) for _, container in published] == [config.server.port]
    url = re.search(r"https?://[^'\"]+", " ".join(hub["healthcheck"]["test"]))
    assert url is not None and url.group(0) == f"http://127.0.0.1:{config.server.port}/healthz"
    assert "/healthz" in public_paths
    for name, service in compose["services"].items():
        if "healthcheck" in service:
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_compose_database_and_object_store_match_the_config(compose: dict[str, Any]) -> None:
    services = compose["services"]
    hub = services["tbhub"]
    config = load_config(DEPLOY / mounts(hub)[serve_args(hub["command"])["config"]][0])
    env = hub["environment"]

    url = make_url(config.state.url)
    assert url.get_backend_name() == "postgresql" and url.password is None  # no secret in the file
    postgres = services[url.host]
    assert url.port == 5432 and url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.database == postgres["environment"]["POSTGRES_DB"]
    assert env["PGPASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"]
    assert hub["depends_on"][url.host]["condition"] == "service_healthy" and "healthcheck" in postgres

    endpoint = re.fullmatch(r"http://([\w-]+):(\d+)", config.s3.endpoint_url or "")
    assert endpoint is not None
    store = services[endpoint.group(1)]
    assert f":{endpoint.group(2)}" in store["command"]
    assert env["AWS_ACCESS_KEY_ID"] == store["environment"]["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == store["environment"]["MINIO_ROOT_PASSWORD"]
    buckets = s3_buckets(config)
    assert buckets
    creators = [n for n, s in services.items() if "mc mb" in " ".join(s.get("command", []))]
    assert len(creators) == 1
    created = set(re.findall(r"mc mb (?:--ignore-existing )?\w+/([\w.-]+)", " ".join(services[creators[0]]["command"])))
    assert buckets <= created
    assert hub["depends_on"][creators[0]]["condition"] == "service_completed_successfully"


def test_docker_compose_config_validates() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if version.returncode != 0:
        first_line = (version.stderr.strip().splitlines() or ["no output"])[0]
        pytest.skip(f"the docker compose plugin is not installed here ({first_line})")
    result = subprocess.run([docker, "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- Kubernetes -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """kind → the one object of that kind in deploy/kubernetes (every file, the example Secret included)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and doc["kind"] != "Kustomization":
                assert doc["kind"] not in out, f"two {doc['kind']} objects"
                out[doc["kind"]] = doc
    return out


def _container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _k8s_config(manifests: dict[str, dict[str, Any]], tmp_path: Path) -> tuple[Config, str]:
    """The ConfigMap's tbhub.toml, loaded, and the path the container reads it from."""
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    params = serve_args(_container(manifests)["args"])
    mount = next(m for m in _container(manifests)["volumeMounts"] if under(params["config"], m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = manifests["ConfigMap"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"] and mount["readOnly"]
    key = params["config"][len(mount["mountPath"]):].lstrip("/")
    return load_toml_text(configmap["data"][key], tmp_path), params["config"]


def test_kubernetes_configmap_loads_and_ports_match(manifests: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    config, _ = _k8s_config(manifests, tmp_path)
    assert config.server.host == "0.0.0.0" and config.auth.enabled
    ports = {p["name"]: p["containerPort"] for p in _container(manifests)["ports"]}
    assert ports == {"http": config.server.port}
    service = manifests["Service"]["spec"]
    assert [p["targetPort"] for p in service["ports"]] == ["http"]
    backend = manifests["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == manifests["Service"]["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["ports"]}
    labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert manifests["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_kubernetes_probes_hit_public_routes(manifests: dict[str, dict[str, Any]], public_paths: set[str]) -> None:
    container = _container(manifests)
    ports = {p["name"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in public_paths, f"{probe}: {get['path']} needs a login the kubelet does not have"
        assert get["port"] in ports


def test_kubernetes_runs_non_root_with_read_only_logs(manifests: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    container = _container(manifests)
    assert pod["securityContext"]["runAsNonRoot"] is True
    image_user = [a for i, a in dockerfile_stages()[-1] if i == "USER"][-1].split(":")[0]
    assert pod["securityContext"]["runAsUser"] == int(image_user) != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    config, _ = _k8s_config(manifests, tmp_path)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts_ = {m["mountPath"]: m for m in container["volumeMounts"]}
    claim = manifests["PersistentVolumeClaim"]["metadata"]["name"]
    assert local_logdirs(config), "the example shows a log root on a volume"
    for logdir in local_logdirs(config):
        mount = next(m for path, m in mounts_.items() if under(logdir, path))
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    # Writable only where tbhub writes: its state folder and /tmp (the root filesystem is read-only).
    state = mounts_[str(config.state.path)]
    assert "emptyDir" in volumes[state["name"]] and not state.get("readOnly", False)
    assert "emptyDir" in volumes[mounts_["/tmp"]["name"]]


def test_kubernetes_secrets_come_from_the_secret(manifests: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    config, _ = _k8s_config(manifests, tmp_path)
    secret = manifests["Secret"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in _container(manifests)["env"] if "valueFrom" in e}
    for name, ref in env.items():
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], name
    assert make_url(config.state.url).password is None and "PGPASSWORD" in env
    assert s3_buckets(config), "the example shows a log root in object storage"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
    toml = manifests["ConfigMap"]["data"]["tbhub.toml"]
    assert not [value for value in secret["stringData"].values() if value in toml]


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == files
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests were parsed, not rendered")
    rendered = subprocess.run([kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc}
    assert kinds == {"Namespace", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "Ingress"}


# -- systemd --------------------------------------------------------------------------------------------
def unit_file(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section → key → values (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_matches_its_example_config() -> None:
    unit = unit_file(DEPLOY / "systemd" / "tbhub.service")
    service = unit["Service"]
    assert service["User"] != ["root"] and service["User"]
    assert service["Restart"] == ["always"]
    argv = shlex.split(service["ExecStart"][0])
    params = serve_args(argv[1:])
    config = load_config(DEPLOY / "systemd" / "tbhub.toml")
    assert params["config"] == "/etc/tbhub/tbhub.toml"
    read_only = {p.lstrip("-") for value in service["ReadOnlyPaths"] for p in value.split()}
    assert read_only == local_logdirs(config)
    assert service["StateDirectory"] == ["tbhub"] and config.state.path == Path("/var/lib/tbhub")
    assert "TBHUB_HOME=/var/lib/tbhub" in service["Environment"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit was parsed, not verified")
    text = (DEPLOY / "systemd" / "tbhub.service").read_text()
    tbhub = Path(sys.executable).with_name("tbhub")
    assert tbhub.exists()
    # verify checks that ExecStart's program exists: point it at this checkout's tbhub.
    unit = tmp_path / "tbhub.service"
    unit.write_text(text.replace("/opt/tbhub/bin/tbhub", str(tbhub)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


# -- Modal ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def modal_app() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("tbhub_modal_app", DEPLOY / "modal_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the app; talks to nobody until `modal deploy`
    yield module


def _web_config(function: Any) -> Any:
    # Modal has no public accessor for a web endpoint's label and port before deployment; the
    # underlying function object holds them (modal is pinned, so this does not drift unseen).
    from modal._utils.async_utils import synchronizer

    return synchronizer._translate_in(function)._webhook_config


def test_modal_app_has_one_tensorboard_per_trainer_and_the_hub(modal_app: ModuleType) -> None:
    import modal

    assert modal_app.app.name == "tbhub"
    functions = {name for name, value in vars(modal_app).items() if isinstance(value, modal.Function)}
    assert functions == set(modal_app.TRAINERS) | {"hub"}
    labels = set()
    for name, volume_name in modal_app.TRAINERS.items():
        function = getattr(modal_app, name)
        info = function.info()
        mount = f"{modal_app.LOGS}/{name}"
        assert {p: (v.name, v.read_only) for p, v in info.volumes.items()} == {mount: (volume_name, True)}
        assert info.web_info is not None
        web = _web_config(function)
        assert web.requested_suffix == modal_app.TENSORBOARD_LABEL.format(name=name)
        labels.add(web.requested_suffix)
        # TensorBoard's own flag parser reads the command: the port Modal forwards, the mounted logs.
        with warnings.catch_warnings():  # TensorBoard's vendored html5lib warns as its plugins load
            warnings.simplefilter("ignore", DeprecationWarning)
            from tensorboard import program

            board = program.TensorBoard()
            board.configure(argv=["tensorboard", *modal_app.tensorboard_command(name)[3:]])
        assert board.flags.port == web.web_server_port and board.flags.host == "0.0.0.0"
        assert board.flags.logdir == mount and board.flags.reload_interval == modal_app.RELOAD_INTERVAL_S
    hub_web = _web_config(modal_app.hub)
    labels.add(hub_web.requested_suffix)
    assert len(labels) == len(modal_app.TRAINERS) + 1  # stable, distinct URLs


def test_modal_hub_serves_every_trainer_from_read_only_volumes(modal_app: ModuleType, tmp_path: Path) -> None:
    info = modal_app.hub.info()
    volumes = {p: (v.name, v.read_only) for p, v in info.volumes.items()}
    config = load_toml_text(modal_app.hub_config(), tmp_path)
    assert set(config.endpoints) == set(modal_app.TRAINERS)
    for name, endpoint in config.endpoints.items():
        assert volumes[endpoint.logdir] == (modal_app.TRAINERS[name], True)
        assert endpoint.reload_interval == modal_app.RELOAD_INTERVAL_S
    # The state database is the only thing written, on its own Volume.
    database = make_url(config.state.url).database or ""
    state_mount = next(p for p, (_, ro) in volumes.items() if not ro)
    assert under(database, state_mount) and volumes[state_mount] == (modal_app.STATE_VOLUME, False)
    assert config.server.port == _web_config(modal_app.hub).web_server_port and config.server.host == "0.0.0.0"
    assert config.auth.enabled
    with_pg = load_toml_text(modal_app.hub_config("postgresql+psycopg://u@db:5432/tbhub"), tmp_path, "pg.toml")
    assert make_url(with_pg.state.url).host == "db"
    command = modal_app.hub_command(tmp_path / "tbhub.toml")
    assert command[1:3] == ["-m", "tbhub"]
    assert serve_args(command[3:])["config"] == str(tmp_path / "tbhub.toml")


def test_modal_volumes_reload_every_interval_and_survive_a_failure(modal_app: ModuleType) -> None:
    # A stand-in for modal.Volume: a real one needs a Modal container. The loop is the real code.
    stop = threading.Event()

    class Volume:
        def __init__(self, fails: bool) -> None:
            self.calls = 0
            self.fails = fails

        def reload(self) -> None:
            self.calls += 1
            if self.calls >= 3 and not self.fails:
                stop.set()
            if self.fails:
                raise RuntimeError("there are open files preventing the operation")

    busy, quiet = Volume(fails=True), Volume(fails=False)
    thread = threading.Thread(target=modal_app.reload_forever, args=({"lora": busy, "router": quiet}, 0.01, stop))
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert busy.calls == quiet.calls == 3  # the failing Volume never stopped the other from reloading
