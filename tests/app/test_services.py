"""``Services``: the single composition root, lazy and built once per process."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventfiles import write_scalar_file
from tbhub.app.services import Services, build_log_store
from tbhub.config import load_config
from tbhub.errors import UnknownEndpoint, UsageError


def test_nothing_is_opened_until_asked(tmp_path: Path) -> None:
    services = Services(load_config(None, logdirs=[f"lora={tmp_path / 'lora'}"]))
    assert "state" not in services.__dict__  # no database file yet
    assert not any(Path(services.config.state.path).glob("*.db"))
    store = services.store("lora")
    assert services.store("lora") is store  # one store (one connection pool) per endpoint
    assert services.state is services.state
    services.close()
    assert "state" not in services.__dict__


def test_unknown_endpoints_name_the_known_ones(tmp_path: Path) -> None:
    services = Services(load_config(None, logdirs=[f"lora={tmp_path}", f"router={tmp_path}"]))
    with pytest.raises(UnknownEndpoint, match="known: lora, router"):
        services.spec("nope")
    with pytest.raises(UsageError, match="no endpoints configured"):
        _ = Services(load_config(None)).specs


def test_a_given_state_database_is_shared_and_left_open(tmp_path: Path) -> None:
    first = Services(load_config(None, logdirs=[f"lora={tmp_path}"]))
    state = first.state
    second = Services(first.config, state=state)
    assert second.state is state and second.accounts.has_admin() is False
    second.close()
    assert state.pins() == []  # still open: the owner closes it
    first.close()


def test_log_stores_answer_the_same_verbs_local_and_remote(tmp_path: Path) -> None:
    write_scalar_file(tmp_path / "lora" / "ds" / "r1", range(3))
    spec = load_config(None, logdirs=[f"lora={tmp_path / 'lora'}"]).endpoint_specs()[0]
    store = build_log_store(spec, {})
    assert store.exists("ds/r1") and not store.exists("ds/r2")
    assert store.url("ds/r1") == str(tmp_path / "lora" / "ds" / "r1")
