"""The TensorBoard children of a config, built without the state database or the web stack.

``tbhub serve`` starts them first: loading the event files is what a user waits for, and it need not
wait for the hub's own imports (SQLAlchemy, FastAPI) or its database.
"""

from __future__ import annotations

from pathlib import Path

from tbhub.adapters.storage.remote import is_url
from tbhub.adapters.tensorboard.supervisor import ChildSpec, SupervisorTiming, TensorBoardSupervisor
from tbhub.config import Config

__all__ = ["mirror_dir", "tensorboard_supervisor"]


def mirror_dir(config: Config, name: str) -> Path:
    """Where the local mirror of endpoint ``name``'s URL log root lives: under the state directory."""
    return config.state.path / "mirrors" / name


def tensorboard_supervisor(config: Config, *, timing: SupervisorTiming | None = None) -> TensorBoardSupervisor:
    """A (not yet started) supervisor with one child per endpoint; a URL log root's child reads its
    mirror and waits for the mirror's first sync."""
    children = [
        ChildSpec.from_endpoint(
            spec,
            state_dir=config.state.path,
            exposed=config.endpoints[spec.name].expose,
            mirror_dir=mirror_dir(config, spec.name) if is_url(spec.logdir) else None,
        )
        for spec in config.endpoint_specs()
    ]
    return TensorBoardSupervisor(children, timing=timing)
