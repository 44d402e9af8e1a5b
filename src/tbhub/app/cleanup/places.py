"""Where archives may go: never inside a log root, nor holding one."""

from __future__ import annotations

import os
from pathlib import Path

from tbhub.adapters.storage.remote import is_url
from tbhub.app.services import Services
from tbhub.core.archive_places import overlapping_endpoint, within_any
from tbhub.errors import TbhubError, UsageError

__all__ = ["Forbidden", "archive_destination", "check_archive_destination", "chosen_archive_place",
           "configured_archive_places"]


class Forbidden(TbhubError):
    """The user may not do this here."""

    http_status = 403


def archive_destination(archive_to: str | os.PathLike[str] | None) -> Path | str | None:
    """Where ``--archive-to``/``archive_to`` points: a local folder (``Path``) or a URL (``s3://...``)."""
    if archive_to is None or archive_to == "":
        return None
    text = os.fspath(archive_to)
    return text.rstrip("/") if is_url(text) else Path(text).expanduser()


def check_archive_destination(services: Services, archive_to: str | os.PathLike[str] | None) -> None:
    """Raise ``UsageError`` when ``archive_to`` overlaps a configured log root (inside it, or holding
    it): such archives would be deleted by a later cleanup of that root."""
    dest = archive_destination(archive_to)
    if dest is None:
        return
    roots = {name: e.logdir for name, e in services.config.endpoints.items()}
    endpoint = overlapping_endpoint(str(dest), roots)
    if endpoint is not None:
        raise UsageError(
            f"archive destination {dest} overlaps the log root of endpoint {endpoint!r} ({roots[endpoint]}): "
            "archive outside every log root"
        )


def configured_archive_places(services: Services, endpoint: str | None = None) -> list[str]:
    """Every ``archive_to`` of the retention policies (of ``endpoint``'s only, when given), of the
    endpoint's default or a dataset rule."""
    policies = services.config.retention_policies()
    found = []
    for name, policy in policies.items():
        if endpoint is not None and name != endpoint:
            continue
        found += [policy.default.archive_to, *(rule.archive_to for _, rule in policy.datasets)]
    return sorted({a for a in found if a})


def chosen_archive_place(services: Services, value: str | None, *, full_admin: bool) -> str | None:
    """Where a hub user asks to archive: an absolute folder on the hub's machine or an object-storage
    URL, outside every log root (and holding none). Only a full admin may name a place outside the
    configured archive folders (the ``archive_to`` of the retention policies): an admin of one endpoint
    must not choose where the hub process writes."""
    if not value:
        return None
    if is_url(value):
        dest = value.rstrip("/")
    else:
        path = Path(value).expanduser()
        if not path.is_absolute():
            raise UsageError(f"archive folder {value!r}: give an absolute path on the hub's machine")
        dest = str(path)
    roots = {spec.name: spec.logdir for spec in services.specs.values()}
    endpoint = overlapping_endpoint(dest, roots)
    if endpoint is not None:
        raise UsageError(f"archive folder {value!r} overlaps the log root of {endpoint!r}")
    if not full_admin and not within_any(dest, configured_archive_places(services)):
        raise Forbidden(
            f"archive folder {value!r} is not one of the configured archive folders: only an admin of "
            "every endpoint may choose another"
        )
    return dest
