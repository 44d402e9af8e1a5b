"""``[s3]`` and ``[endpoints.NAME.s3]``: how to reach S3-compatible object storage."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import field_validator, model_validator

from tbhub.config.section import Section
from tbhub.errors import ConfigError

__all__ = ["S3Config"]


class S3Config(Section):
    """``[s3]`` (and ``[endpoints.NAME.s3]``): how to reach S3-compatible object storage.

    Every key is optional: what is unset comes from the enclosing ``[s3]`` and then from the usual
    AWS environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ...), which
    botocore reads itself. Secrets are never in the file: ``*_env`` names a variable, ``*_file`` a file.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None
    secret_access_key_file: str | None = None
    anon: bool | None = None
    #: Requests the mirror of an ``s3://`` root keeps in flight (``None``: the mirror's default).
    sync_requests: int | None = None

    @field_validator("sync_requests")
    @classmethod
    def _requests(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 256:
            raise ValueError(f"sync_requests must be between 1 and 256, not {value}")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"endpoint_url must be an http:// or https:// URL, not {value!r}")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> S3Config:
        if self.secret_access_key_env and self.secret_access_key_file:
            raise ValueError("set either secret_access_key_env or secret_access_key_file, not both")
        return self

    def over(self, base: S3Config) -> S3Config:
        """These settings, with every unset key taken from ``base``."""
        own = self.model_dump(exclude_none=True)
        return base.model_copy(update=own)

    def storage_options(self, where: str = "s3") -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem``, secrets read now from their variable or file.

        Raises ``ConfigError`` (naming ``where``, never a value) when a named variable is unset or a
        file unreadable. The result holds secrets: never log or print it.
        """
        options: dict[str, Any] = {}
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region:
            # Only the client's region: s3fs would also send it as a bucket LocationConstraint, and
            # tbhub never creates buckets.
            options["client_kwargs"] = {"region_name": self.region}
        if self.profile:
            options["profile"] = self.profile
        if self.anon:
            options["anon"] = True
        if self.access_key_id_env:
            options["key"] = _secret_from_env(self.access_key_id_env, f"{where}.access_key_id_env")
        if self.secret_access_key_env:
            options["secret"] = _secret_from_env(self.secret_access_key_env, f"{where}.secret_access_key_env")
        elif self.secret_access_key_file:
            path = Path(self.secret_access_key_file).expanduser()
            try:
                options["secret"] = path.read_text().strip()
            except OSError as error:
                raise ConfigError(
                    f"{where}.secret_access_key_file: cannot read {path} ({error.strerror or error})"
                ) from None
        return options


def _secret_from_env(variable: str, key: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"{key}: environment variable {variable} is not set")
    return value
