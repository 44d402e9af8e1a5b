"""Start several Python processes and release them at the same moment (for races between processes)."""

from __future__ import annotations

import subprocess
import sys


def run_together(code: str, args: list[str], n: int, timeout: float = 120) -> list[tuple[int, str, str]]:
    """Run ``python -c code *args`` ``n`` times. Each process must print ``ready`` and then read a line
    from stdin: all are told to go as close together as the OS allows. Their (exit code, stdout, stderr)."""
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]
