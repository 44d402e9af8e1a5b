"""The environment a TensorBoard child runs with: what it needs, never the hub's secrets.

An allow-list, not a deny-list: tbhub's secrets live in variables whose names the config chooses
(``password_env``, ``url_env``, ``secret_access_key_env``, ...), so no list of names to remove can be
complete. A child that reads a local folder (a log root, or the local mirror of an ``s3://`` root,
which is how ``tbhub serve`` serves object storage) needs no credentials at all. Only a child that
reads an object-storage URL itself keeps the cloud SDKs' own variables, which boto3 or the GCS client
read inside TensorBoard.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["child_environment"]

# What a Python program and its locale, temporary files and TLS need.
_ALWAYS = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM",
        "TMPDIR", "TMP", "TEMP", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
        "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE",
        "PYTHONUTF8", "PYTHONHASHSEED", "PYTHONWARNINGS",
        "SSL_CERT_FILE", "SSL_CERT_DIR",
    }
)
_ALWAYS_PREFIXES = ("LC_", "TENSORBOARD_")  # locale; TensorBoard's own (e.g. the data server binary)

# Only for a child reading a URL itself: the SDK's credentials, endpoint and network settings.
_OBJECT_STORE = frozenset(
    {
        "S3_ENDPOINT", "S3_USE_HTTPS", "S3_VERIFY_SSL", "GOOGLE_APPLICATION_CREDENTIALS",
        "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)
_OBJECT_STORE_PREFIXES = ("AWS_", "BOTO_", "CLOUDSDK_")


def child_environment(base: Mapping[str, str], *, reads_url: bool) -> dict[str, str]:
    """The part of ``base`` a TensorBoard child may see; ``reads_url``: it reads object storage itself."""
    def kept(name: str) -> bool:
        if name in _ALWAYS or name.startswith(_ALWAYS_PREFIXES):
            return True
        return reads_url and (name in _OBJECT_STORE or name.startswith(_OBJECT_STORE_PREFIXES))

    return {name: value for name, value in base.items() if kept(name)}
