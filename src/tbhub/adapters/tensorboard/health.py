"""Whether a TensorBoard child is well: its health check, and the verdicts on a hung or exited child.

A child is up once it answers its health URL; it is hung when it has not answered within
``startup_timeout`` of its launch, or has failed ``health_failures`` checks in a row since. A child that
exited is described by its exit status and the telling error line of its latest launch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from tbhub.adapters.storage.mirror.listing import one_line
from tbhub.adapters.tensorboard.childlog import LOG_TAIL_BYTES, error_line, read_tail
from tbhub.adapters.tensorboard.command import ChildSpec
from tbhub.adapters.tensorboard.process import describe_exit
from tbhub.adapters.tensorboard.records import Child, ChildState
from tbhub.adapters.tensorboard.timing import SupervisorTiming

__all__ = ["exit_report", "judge", "probe"]

# The supervisor's logger, named as it was when the supervisor was one module.
logger = logging.getLogger("tbhub.adapters.tensorboard.supervisor")


def probe(http: httpx.Client | None, spec: ChildSpec) -> str | None:
    """One health check; ``None`` when the child answered 200, else why not (one line)."""
    if http is None:
        return "no HTTP client"
    try:
        response = http.get(spec.health_url)
    except httpx.HTTPError as exc:
        return one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if response.status_code != 200:
        return f"HTTP {response.status_code} from {spec.health_url}"
    return None


def judge(child: Child, error: str | None, now: float, timing: SupervisorTiming) -> str | None:
    """Apply one health check's result (``probe``) to ``child`` and schedule its next check; returns
    why the child is hung and must be replaced, or ``None``. Caller holds the supervisor's lock."""
    t = timing
    if error is None:
        if child.state is ChildState.STARTING:
            child.state = ChildState.UP
            child.up_since = now
            child.last_error = None
            logger.info("endpoint %s: TensorBoard is up", child.spec.name)
        child.failures = 0
        child.next_health_at = now + t.health_interval
        return None
    if child.state is ChildState.STARTING:
        child.next_health_at = now + t.tick
        if now - child.started_mono < t.startup_timeout:
            return None
        return f"did not answer within {t.startup_timeout:g} s ({error})"
    child.failures += 1
    child.next_health_at = now + t.health_interval
    if child.failures < t.health_failures:
        return None
    return f"stopped answering ({child.failures} failed health checks: {error})"


def exit_report(rc: int | None, log_path: Path) -> tuple[str, str]:
    """Why a child that exited by itself ended (``rc``: its exit code), and the one-line error to show."""
    reason = describe_exit(rc)
    detail = error_line(read_tail(log_path, LOG_TAIL_BYTES))
    return reason, one_line(f"TensorBoard {reason}: {detail}" if detail else f"TensorBoard {reason}")
