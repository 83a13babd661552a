"""Structured logging: one JSON object per line, each carrying the request id.

Operators grep and ship logs by field, so every line is a JSON object with a
timestamp, level, logger, message, the request id of the request being served
(when there is one) and whatever ``extra`` the caller passed.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from flask import g, has_request_context

from config.settings import Settings

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


def configure_logging(settings: Settings, *, to_file: bool = False) -> None:
    """Send the root logger's records to stderr (servers, the worker) or to the data home's
    log file (one-shot commands, whose stderr is kept for one-line errors); idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "altcredit", False):
            root.removeHandler(handler)
    handler: logging.Handler
    if to_file:
        handler = logging.FileHandler(settings.path("logs", "altcredit.log"), encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.altcredit = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    use_json = to_file or settings.log_format == "json"
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Alembic announces its dialect on every migration check; only its warnings matter here.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
