"""gunicorn's sync worker, answering the requests gunicorn itself refuses as problem+json.

gunicorn answers a request it cannot parse (a bad request line or header, raw non-ASCII
bytes in the URL, a broken chunked body it reads itself, a request line over its limit)
before the app sees it, with an HTML page. This worker sends the same status as an RFC 9457
problem document instead: `request.malformed` for a 400, `http.<status>` otherwise
(414, 431, 501, …). `ledger-service serve` runs gunicorn with `ProblemWorker` (sync, one
request at a time per process) or, with `--threads N` > 1, `ProblemThreadWorker` (gthread: N
request threads per process, whose bookings share commits: `group_commit`).
"""

from __future__ import annotations

import json
import uuid

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

_TITLES = {400: "Bad request", 403: "Forbidden", 414: "URI too long", 417: "Expectation failed",
           431: "Request header fields too large", 500: "Internal error", 501: "Not implemented"}


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """`gunicorn.util.write_error`, with a problem+json body (ASCII: JSON escapes the rest)."""
    rule = "request.malformed" if status_int == 400 else f"http.{status_int}"
    body = json.dumps({"type": f"/problems/{rule}", "title": _TITLES.get(status_int, reason), "status": status_int,
                       "detail": mesg or reason, "rule": rule, "request_id": uuid.uuid4().hex}).encode("ascii")
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class ProblemWorker(SyncWorker):
    """A sync worker whose own error answers are problem+json (one request at a time, so
    swapping gunicorn's writer for the duration of one `handle_error` is safe)."""

    def handle_error(self, req, client, addr, exc):
        original = util.write_error
        util.write_error = write_problem
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            util.write_error = original


class ProblemThreadWorker(ThreadWorker):
    """gunicorn's gthread worker with problem+json error answers. Its threads share the process,
    so gunicorn's writer is replaced once for the worker's life (this process serves this app
    only), never swapped per error."""

    def init_process(self) -> None:
        util.write_error = write_problem
        super().init_process()
