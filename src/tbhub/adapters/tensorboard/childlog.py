"""The log file of one TensorBoard child: launch markers, rotation, its tail and its telling error line.

Each child's stdout and stderr are appended to ``state_dir/logs/tensorboard-NAME.log``, every launch
and every restart decision preceded by a ``--- tbhub:`` marker line, so the error that ended the latest
launch can be found in the tail and shown as one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import IO

from tbhub.adapters.storage.mirror.listing import one_line

__all__ = ["LAUNCH_MARKER", "LOG_TAIL_BYTES", "error_line", "read_tail", "rotate", "write_marker"]

LAUNCH_MARKER = "--- tbhub: launching"
# Rotate a child's log when it grows past this at launch: a crash loop must not fill the disk.
_LOG_ROTATE_BYTES = 5 * 1024 * 1024
LOG_TAIL_BYTES = 16 * 1024
# absl log prefix, e.g. "E1128 21:00:34.789965 139989772221312 program.py:300] ".
_ABSL_PREFIX = re.compile(r"^[EWIF]\d{4} [\d:.]+ +\d+ [^\]]+\] ")
_ERROR_LINE = re.compile(r"^(ERROR:|E\d{4} |[\w.]*(Error|Exception)\b|.*\berror: )")


def error_line(tail: str) -> str | None:
    """The most telling error line of the latest launch in a log tail, without absl's prefix."""
    latest = tail.rsplit(LAUNCH_MARKER, 1)[-1]
    for raw in reversed(latest.splitlines()):
        line = raw.strip()
        if not line or line.startswith("--- tbhub:"):
            continue
        if _ERROR_LINE.match(line):
            return one_line(_ABSL_PREFIX.sub("", line).removeprefix("ERROR:").strip())
    return None


def read_tail(path: Path, max_bytes: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if len(data) == max_bytes and size > max_bytes:
        text = text.split("\n", 1)[-1]  # drop the partial first line
    return text


def rotate(log_path: Path) -> None:
    with contextlib.suppress(OSError):
        if log_path.stat().st_size > _LOG_ROTATE_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))


def write_marker(log_file: IO[bytes], text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    log_file.write(f"{text} ({stamp})\n".encode())
    log_file.flush()
