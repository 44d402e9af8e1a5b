"""How ``tbhub serve`` logs: ``--log-format text`` for people, ``json`` for log collectors.

One handler on the root logger, writing to stderr, carries every record: tbhub's own loggers
(``tbhub.*``), uvicorn's server log (``uvicorn.error``) and, when on, its access log
(``uvicorn.access``). In JSON each record is one object on one line::

    {"time": "2026-11-28T23:59:01.123Z", "level": "INFO", "logger": "uvicorn.access",
     "message": "127.0.0.1:50412 - \\"GET /healthz HTTP/1.1\\" 200", "client": "127.0.0.1:50412",
     "method": "GET", "path": "/healthz", "http_version": "1.1", "status": 200}

Fields passed with ``extra=`` (``log.info("...", extra={"endpoint": name})``) become keys of their
own, and so does the endpoint of a record whose message starts ``"endpoint %s"``; an exception
becomes ``exception`` (the formatted traceback, still on one line).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, Literal

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "configure_logging"]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Attributes every LogRecord has; anything else on a record was passed with ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12+
    "color_message",  # uvicorn's coloured copy of the message
}
#: Keys the formatter writes itself; an ``extra`` of the same name is prefixed rather than lost.
_OWN = frozenset({"time", "level", "logger", "message", "exception", "stack"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, then extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_access_fields(record))
        # tbhub's records about one endpoint read "endpoint %s: ..." (the supervisor's, for instance).
        args = record.args
        if isinstance(record.msg, str) and record.msg.startswith("endpoint %s") and isinstance(args, tuple) and args:
            out["endpoint"] = args[0]
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out["extra_" + key if key in _OWN else key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """uvicorn's access log passes (client, method, path, HTTP version, status) as the message args."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, path, http_version, status = args
    return {"client": client, "method": method, "path": path, "http_version": http_version, "status": status}


def configure_logging(log_format: LogFormat, level: str, *, access_log: bool, stream: Any = None) -> None:
    """Send tbhub's and uvicorn's records to one stderr handler in ``log_format``.

    ``level`` applies to tbhub's loggers and uvicorn's server log; the access log (``access_log``)
    logs every request at INFO. Other libraries log warnings and worse.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    numeric = logging.getLevelNamesMapping()[level.upper()]
    for name in ("tbhub", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(numeric)
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.setLevel(logging.INFO if access_log else logging.CRITICAL + 1)
    access.propagate = access_log
