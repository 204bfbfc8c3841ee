"""Logging setup: human ``text`` or one-JSON-object-per-line ``json``.

Inside ``with reconcile_context(key):`` every record carries the Service key and a short
reconcile id (contextvars, so concurrent reconciles on one event loop do not mix)::

    2024-05-01T12:00:00.123Z INFO lbctl.controller: ensured key=default/web reconcile=1a2b3c4d
    {"time": "...", "level": "INFO", "logger": "lbctl.controller", "message": "ensured",
     "key": "default/web", "reconcile_id": "1a2b3c4d"}
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any, Literal

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "current_key",
    "current_reconcile_id",
    "reconcile_context",
]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_key: contextvars.ContextVar[str | None] = contextvars.ContextVar("lbctl_key", default=None)
_reconcile_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lbctl_reconcile_id", default=None
)
_HANDLER_MARK = "_lbctl_telemetry_handler"


def current_key() -> str | None:
    """The Service key of the reconcile running in this context, if any."""
    return _key.get()


def current_reconcile_id() -> str | None:
    """The id of the reconcile running in this context, if any."""
    return _reconcile_id.get()


@contextmanager
def reconcile_context(key: str) -> Iterator[str]:
    """Tag log records with ``key`` and a fresh 8-hex-digit reconcile id (yielded)."""
    rid = secrets.token_hex(4)
    key_token = _key.set(key)
    rid_token = _reconcile_id.set(rid)
    try:
        yield rid
    finally:
        _reconcile_id.reset(rid_token)
        _key.reset(key_token)


class _ContextFilter(logging.Filter):
    """Copies the reconcile context onto each record (``record.key``, ``record.reconcile_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "key"):
            record.key = _key.get()
        if not hasattr(record, "reconcile_id"):
            record.reconcile_id = _reconcile_id.get()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    t = datetime.fromtimestamp(record.created, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class TextFormatter(logging.Formatter):
    """``time level logger: message [key=… reconcile=…]`` (+ traceback lines)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        key = getattr(record, "key", None)
        rid = getattr(record, "reconcile_id", None)
        if key is not None:
            line += f" key={key}"
        if rid is not None:
            line += f" reconcile={rid}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, and
    ``key``/``reconcile_id`` when set, ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        key = getattr(record, "key", None)
        rid = getattr(record, "reconcile_id", None)
        if key is not None:
            out["key"] = str(key)
        if rid is not None:
            out["reconcile_id"] = str(rid)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(
    level: str,
    fmt: Literal["text", "json"] | str = "text",
    *,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install one handler on the root logger (replacing one installed earlier).

    ``level`` is DEBUG, INFO, WARNING or ERROR (any case; a ``LogLevel`` works);
    ``fmt`` is ``text`` or ``json`` (a ``LogFormat`` works). Writes to ``stream``
    (default ``sys.stderr``). Returns the handler.
    """
    level_name = str(level).upper()
    if level_name not in LEVELS:
        raise ValueError(f"log_level must be one of {', '.join(LEVELS)}, got {level!r}")
    fmt_name = str(fmt).lower()
    formatter: logging.Formatter
    if fmt_name == "text":
        formatter = TextFormatter()
    elif fmt_name == "json":
        formatter = JsonFormatter()
    else:
        raise ValueError(f"log_format must be text or json, got {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_ContextFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level_name)
    return handler
