"""tbhub: the self-hosted, always-on home for an ML team's TensorBoard logs."""

from __future__ import annotations

import sys

from tbhub import errors
from tbhub.errors import *  # noqa: F403  (the error tree is public: its own __all__ names it)

# httpx's package imports its command-line client, which imports rich, click and pygments when they are
# installed (made lazy only in the httpx2 fork, pydantic/httpx2#947): ~4 MB and ~60 ms in every tbhub
# process, for a tool tbhub never runs. A module marked absent makes httpx fall back to the stub it
# has for installs without those libraries.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__version__ = "0.1.0"

# The public API: the error tree (``tbhub.errors`` lists it) and the version.
__all__ = ["__version__"]
__all__ += errors.__all__
