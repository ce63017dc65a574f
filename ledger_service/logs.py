"""Structured logs: one JSON object per line on stderr, with the request's id.

Every line holds `ts` (UTC, ISO 8601 with milliseconds), `level` (debug … critical), `logger`,
`pid`, `msg`, `request_id` when logged while a request is served, the fields a caller passes as
`extra={"fields": {...}}` (e.g. `"event": "day.closed"`), and `exc` (the formatted traceback)
when an exception is logged. Secrets never leave: an API key (`lsk_…`) and a URL's password are
masked (`***`) in the message, the fields and the traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("ledger_request_id", default=None)
REQUEST_ID_HEADER = "X-Request-Id"
_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_API_KEY = re.compile(r"lsk_[A-Za-z0-9_-]+")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&][^=&\s]*password[^=&\s]*=)[^&\s]*", re.I)
_HANDLER_NAME = "ledger_service.json"


def mask(text: str) -> str:
    """`text` with API keys and URL passwords masked."""
    text = _API_KEY.sub("lsk_***", text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***@", text)
    return _QUERY_PASSWORD.sub(lambda m: m.group("head") + "***", text)


def request_id_for(incoming: str | None) -> str:
    """The id of a request: the client's X-Request-Id when it is 1-64 characters of
    [A-Za-z0-9._:-], else a new one (32 hex digits)."""
    if incoming and _INCOMING_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "pid": record.process,
            "msg": mask(record.getMessage()),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if key not in out:
                    out[key] = mask(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send the `ledger_service` loggers' lines (and Flask's, which are under it) to `stream`
    (default stderr) as JSON; replaces a handler installed before. Returns the handler."""
    root = logging.getLogger("ledger_service")
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler
