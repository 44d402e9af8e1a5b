"""How often the supervisor looks at its children, how long it waits for them, and its backoff."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SupervisorTiming"]


@dataclass(frozen=True, slots=True)
class SupervisorTiming:
    """Intervals in seconds. Defaults suit production; tests shorten them.

    A hung child is restarted after about ``health_interval * health_failures`` (plus timeouts); a
    crashing one is relaunched after ``backoff_initial * 2**n`` capped at ``backoff_max``, where ``n``
    resets once the child has been up for ``healthy_reset``.
    """

    tick: float = 0.25
    health_interval: float = 5.0
    health_timeout: float = 2.0
    health_failures: int = 3
    startup_timeout: float = 60.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    healthy_reset: float = 60.0
    root_check_interval: float = 5.0
    stop_grace: float = 5.0

    def backoff(self, attempts: int) -> float:
        """The wait before relaunching a child that failed ``attempts`` times in a row."""
        return float(min(self.backoff_initial * 2 ** min(attempts, 30), self.backoff_max))
