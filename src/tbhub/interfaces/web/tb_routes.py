"""Which TensorBoard route a proxied path reaches, decided the way TensorBoard would decide it.

The proxy redacts ``/data/environment`` (server paths and flags). Comparing the raw path is not enough:
between the browser and TensorBoard's route table the path is percent-decoded (by uvicorn, and again
by werkzeug for what httpx re-encodes), dot segments are resolved (httpx), ``;params``, ``?query`` and
``#fragment`` are split off (TensorBoard's ``urlparse`` of the decoded path, so ``environment%3Fx``
and ``environment;x`` reach the route), a trailing slash is dropped, empty segments are tolerated
and ``/experiment/ID/`` is stripped (TensorBoard's experiment-id middleware). The normalisation here
is deliberately wider than any one of those steps: calling something the environment route when it
is not costs nothing (only a 200 JSON body is rewritten), missing it leaks the server's paths.
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["is_environment", "normalised_route"]

#: Decoding rounds: each layer decodes once; more than a few means a deliberate attempt.
_MAX_DECODES = 8


def normalised_route(path: str) -> str:
    """``path`` as one canonical route: decoded, cut at ``?``/``#``, without ``;params``, dot or empty
    segments and a trailing slash, lower-cased (TensorBoard's routes are, and case is no defence)."""
    for _ in range(_MAX_DECODES):
        decoded = unquote(path, errors="replace")
        if decoded == path:
            break
        path = decoded
    for stop in ("?", "#"):
        path = path.split(stop, 1)[0]
    path = path.replace("\\", "/")
    segments: list[str] = []
    for raw in path.split("/"):
        segment = raw.split(";", 1)[0].strip().lower()
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def is_environment(path: str) -> bool:
    """Whether TensorBoard could answer ``path`` (its own path, prefix included) with its environment."""
    return normalised_route(path).endswith("/data/environment")
