"""The environment of a TensorBoard child: what it needs, none of the hub's secrets."""

from __future__ import annotations

from pathlib import Path

from tbhub.adapters.tensorboard.environment import child_environment
from tbhub.adapters.tensorboard.supervisor import ChildSpec
from tbhub.core.models import EndpointSpec

HUB = {
    "PATH": "/usr/bin",
    "HOME": "/home/hub",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "S3_ENDPOINT": "http://127.0.0.1:9000",
    "TBHUB_CONFIG": "/etc/tbhub.toml",
    "SLACK_URL_FOR_ALERTS": "https://hooks.example/secret",  # named by a config's url_env
    "DATABASE_PASSWORD": "pw",
}


def test_a_local_child_gets_no_secret() -> None:
    env = child_environment(HUB, reads_url=False)
    assert env == {"PATH": "/usr/bin", "HOME": "/home/hub", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                   "PYTHONUNBUFFERED": "1"}


def test_a_child_reading_object_storage_itself_keeps_only_the_sdk_variables() -> None:
    env = child_environment(HUB, reads_url=True)
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_ENDPOINT"} <= set(env)
    assert not {"TBHUB_CONFIG", "SLACK_URL_FOR_ALERTS", "DATABASE_PASSWORD"} & set(env)


def test_an_s3_root_served_from_its_mirror_reads_a_local_folder(tmp_path: Path) -> None:
    endpoint = EndpointSpec(name="lake", logdir="s3://bucket/logs", port=6100, reload_interval=5)
    mirrored = ChildSpec.from_endpoint(endpoint, state_dir=tmp_path, mirror_dir=tmp_path / "mirror")
    direct = ChildSpec.from_endpoint(endpoint, state_dir=tmp_path)
    assert not mirrored.is_remote and direct.is_remote  # so only the direct one would get credentials
