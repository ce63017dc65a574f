"""Every request's id and its one log line (issue 17 §2; the format: `ledger_service.logs`).

The id is the client's `X-Request-Id` when it is 1-64 characters of [A-Za-z0-9._:-], else a new
one; it is returned in the `X-Request-Id` header of every answer, in the `request_id` member of
every problem document, and in every log line written while the request is served. Each request
is one line (`"event": "request"`, with method, path, status and ms; never the query string nor a
header); an answer of 500 or more is also logged with its traceback when an exception caused it.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from ..logs import REQUEST_ID, REQUEST_ID_HEADER, request_id_for

log = logging.getLogger(__name__)


def install(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_answer)
    app.teardown_request(_end)


def _begin() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
    g.request_id_token = REQUEST_ID.set(g.request_id)


def _answer(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:  # (a request that failed before `_begin`)
        return response
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    status = response.status_code
    level = logging.ERROR if status >= 500 else logging.INFO
    log.log(level, "%s %s %d", request.method, request.path, status,
            extra={"fields": {"event": "request", "method": request.method, "path": request.path, "status": status,
                              "ms": ms}})
    return response


def _end(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        REQUEST_ID.reset(token)
