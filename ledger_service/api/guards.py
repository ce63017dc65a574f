"""The checks every request passes before a view sees it: the body's type, size, framing,
nesting and characters, and the characters of the path and the query (SPEC §7, issue 10).

Each returns the problem answer to send, or None when the request may go on.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..text import describe, refused_char
from .problems import problem
from .schemas import MAX_BODY_BYTES, MAX_JSON_DEPTH

try:  # what gunicorn's body reader raises for a broken chunked framing (InvalidChunkSize, …)
    from gunicorn.http.errors import ParseException as _ServerParseError
except ImportError:  # pragma: no cover (gunicorn is a dependency; other servers raise OSError)
    class _ServerParseError(Exception):  # type: ignore[no-redef]
        pass
BODY_READ_ERRORS = (OSError, ValueError, HTTPException, _ServerParseError)


def body_problem() -> Response | None:
    """A POST body that is not JSON, too large, unreadable (a broken chunked framing: 400),
    nested too deep, or holding a refused character; or a refused character in the path or
    the query (checked after auth: 401/403 come first)."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    has_body = bool(request.content_length) or chunked
    if has_body and request.mimetype != "application/json":
        return problem(422, "input.content_type", "send the body as application/json")
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        return problem(422, "input.too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    bad_url = url_strings_problem()
    if bad_url is not None or not has_body:
        return bad_url
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        return problem(422, "input.too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    except BODY_READ_ERRORS as exc:
        return problem(400, "request.malformed", f"the request body cannot be read: {type(exc).__name__}")
    return json_problem(raw)


def text_problem(field: str, ch: str) -> Response:
    return problem(422, "input.bad_text", f"{field}: {describe(ch)} is not allowed", field)


def url_strings_problem() -> Response | None:
    """A refused character (`ledger_service.text`) in a path parameter (named as in the
    OpenAPI document), a query parameter's value (named) or name (field `query`)."""
    for name, value in (request.view_args or {}).items():
        ch = refused_char(value) if isinstance(value, str) else None
        if ch:
            return text_problem(name, ch)
    for name, value in request.args.items(multi=True):
        bad_name = refused_char(name)
        if bad_name:
            return text_problem("query", bad_name)
        bad_value = refused_char(value)
        if bad_value:
            return text_problem(name, bad_value)
    return None


# One pass, linear: a string token (to its closing quote, or to the end when unterminated) or a bracket.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` (brackets inside strings ignored),
    found in one linear scan, without a recursive parse."""
    depth = 0
    for found in _JSON_TOKEN.finditer(text):
        token = found.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def refused_in(value: Any, field: str) -> tuple[str, str] | None:
    """(field, character) of the first refused character in a parsed JSON value's strings:
    a value is named by its key (`goods`, nested `a.b`, `a[0]`), a bad key by `body`."""
    if isinstance(value, str):
        ch = refused_char(value)
        return (field, ch) if ch else None
    if isinstance(value, dict):
        for key, item in value.items():
            bad_key = refused_char(key)
            if bad_key:
                return ("body", bad_key)
            found = refused_in(item, key if field == "body" else f"{field}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = refused_in(item, f"{field}[{index}]")
            if found:
                return found
    return None


def json_problem(raw: bytes) -> Response | None:
    """A JSON body nested deeper than MAX_JSON_DEPTH (422 input.too_deep), not JSON in UTF-8
    (422 input.malformed), or holding a refused character (422 input.bad_text)."""
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return problem(422, "input.malformed", "the body is not valid JSON (UTF-8)")
    if json_depth_exceeds(text, MAX_JSON_DEPTH):
        return problem(422, "input.too_deep", f"the body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return problem(422, "input.malformed", "the body is not valid JSON")
    found = refused_in(value, "body")
    return text_problem(*found) if found else None
