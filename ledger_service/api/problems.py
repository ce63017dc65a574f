"""Every error answer of the API as an RFC 9457 problem document, and its OpenAPI documentation.

`problem()` builds one; `register_error_handlers(app)` maps the service's exceptions (a
refusal by the rules, a journal fault, an unwritable journal, an unreachable database,
an idempotent replay) and APIFlask's own errors onto them; `document_errors` writes the
same answers into the OpenAPI document.
"""

from __future__ import annotations

import json

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from flask import Response
from sqlalchemy.exc import OperationalError

from ..engine import IdempotentReplay
from ..errors import JournalFault, JournalUnavailable, Refusal
from ..store.db import redact
from . import schemas as s

PROBLEM = "application/problem+json"
STATUS_OF = {"invalid": 422, "not_found": 404, "conflict": 409}
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Refused by the rules", 422: "Invalid request", 500: "Internal error", 503: "Unavailable"}
# A booking refused or left unwritten by a journal that cannot be written: retry after this long.
RETRY_AFTER_SECONDS = 5


def problem(status: int, rule: str, detail: str, field: str | None = None) -> Response:
    body = {"type": f"/problems/{rule}", "title": TITLES.get(status, "Error"), "status": status,
            "detail": redact(detail), "rule": rule}  # a database URL's password never leaves
    if field:
        body["field"] = field
    return Response(json.dumps(body), status=status, mimetype=PROBLEM)


def journal_unavailable(exc: JournalUnavailable) -> Response:
    """503 `journal.unavailable`: the journal cannot be written (a read-only or full disk)."""
    lag = exc.lag_entries
    if exc.booked_now:
        detail = (f"event {exc.event_id} is booked (committed to the database) but the journal could not be "
                  f"written ({exc.cause}); retry with the same Idempotency-Key: once the journal has caught up "
                  f"the retry returns the event (201, Idempotent-Replayed: true); until then writes answer 503")
    elif exc.event_id:
        detail = (f"event {exc.event_id} was booked under this Idempotency-Key, but the journal is {lag} entries "
                  f"behind the database and cannot be written ({exc.cause}); retry later with the same "
                  f"Idempotency-Key to receive it")
    else:
        detail = (f"nothing was booked: the journal is {lag} entries behind the database and cannot be written "
                  f"({exc.cause}); no write is booked until it has caught up; retry later")
    body = {"type": "/problems/journal.unavailable", "title": TITLES[503], "status": 503, "detail": detail,
            "rule": "journal.unavailable", "booked": exc.event_id is not None, "journal_lag_entries": lag}
    if exc.event_id:
        body["event_id"] = exc.event_id
    response = Response(json.dumps(body), status=503, mimetype=PROBLEM)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register_error_handlers(app: APIFlask) -> None:
    """The app-wide answers: APIFlask's validation and HTTP errors, the service's exceptions."""

    @app.error_processor
    def _error(error: HTTPError) -> Response:
        if error.status_code == 422 and isinstance(error.detail, dict):
            field, message = first_field(error.detail)
            rule = "input.bad_date" if message.endswith(s.DATE_ERROR) else "input.invalid"
            return problem(422, rule, f"{field}: {message}", field)
        if error.status_code == 413:
            return problem(422, "input.too_large", f"the body exceeds {s.MAX_BODY_BYTES} bytes")
        if error.status_code == 400:
            return problem(422, "input.malformed", "the body is not valid JSON")
        return problem(error.status_code, f"http.{error.status_code}", str(error.message))

    @app.spec_processor
    def _document_errors(spec: dict | str) -> dict | str:
        return document_errors(spec) if isinstance(spec, dict) else spec

    @app.errorhandler(Refusal)
    def _refusal(exc: Refusal) -> Response:
        return problem(STATUS_OF[exc.kind], exc.rule, exc.detail, exc.field)

    @app.errorhandler(IdempotentReplay)
    def _replay(exc: IdempotentReplay) -> Response:
        response = Response(exc.body, status=exc.status, mimetype="application/json")
        response.headers["Idempotent-Replayed"] = "true"
        return response

    @app.errorhandler(JournalFault)
    def _fault(exc: JournalFault) -> Response:
        return problem(503, "journal.fault", f"the books need an audit before booking: {exc}")

    @app.errorhandler(JournalUnavailable)
    def _unavailable(exc: JournalUnavailable) -> Response:
        return journal_unavailable(exc)

    @app.errorhandler(OperationalError)
    def _database_unavailable(exc: OperationalError) -> Response:
        app.logger.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig is not None else exc)
        response = problem(503, "database.unavailable",
                           "the database cannot be reached or written (a full disk, a lost connection); retry later "
                           "with the same Idempotency-Key: a request that was booked returns its event, one that "
                           "was not is booked then")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def first_field(detail: dict) -> tuple[str, str]:
    """(field, message) of the first error in a marshmallow validation detail."""
    for _location, fields in detail.items():
        if isinstance(fields, dict):
            for name, messages in fields.items():
                message = messages[0] if isinstance(messages, list) and messages else str(messages)
                if isinstance(message, dict):
                    message = json.dumps(message)
                return str(name), str(message)
    return "body", json.dumps(detail)


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem document; `type` is stable per rule",
    "required": ["type", "title", "status", "detail", "rule"],
    "properties": {
        "type": {"type": "string", "example": "/problems/order.insufficient_sp"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "rule": {"type": "string"},
        "field": {"type": "string"},
        "booked": {"type": "boolean", "description": "journal.unavailable: whether the event is booked"},
        "event_id": {"type": "string", "description": "journal.unavailable: the booked event"},
        "journal_lag_entries": {"type": "integer", "description": "journal.unavailable: entries the journal lacks"},
    },
}
_ERROR_TEXT = {"400": "the request cannot be read (a broken chunked body)",
               "401": "no, unknown or revoked API key", "403": "this key's role may not use this path",
               "404": "an unknown id (or a date before the books began)", "409": "refused by the rules",
               "422": "malformed input",
               "503": "the journal cannot be written (journal.unavailable; see booked/event_id), needs an audit "
                      "(journal.fault), or the database cannot be reached (database.unavailable); Retry-After"}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": "the same key and body return the first response; another body is a 409",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}


# The proofs' answers (api/proofs.py): no checkpoint yet or an unknown one (404), a malformed
# date (422), an event booked after the checkpoint (409), an entry that does not hash to its leaf (503).
_PROOF_ERRORS = {"/v1/checkpoints/latest": {"404"}, "/v1/checkpoints/consistency": {"404", "422"},
                 "/v1/checkpoints/{day}": {"404", "422"}, "/v1/events/{event_id}/proof": {"404", "409", "422", "503"}}


def _error_statuses(path: str, method: str) -> set[str]:
    """The problem answers an operation documents (besides its own success)."""
    wanted = {"401"}
    if method == "post":
        wanted |= {"400", "403", "409", "422"} | ({"404"} if path != "/v1/days/{day}/close" else set())
    elif "{" in path:
        wanted |= {"404", "422"}  # 422: a refused character in the path (input.bad_text)
    if path == "/v1/supply":
        wanted |= {"404", "422"}
    wanted |= _PROOF_ERRORS.get(path, set())
    if method == "post" and path != "/v1/orders/quote":
        wanted |= {"503"}
    return wanted


def document_errors(spec: dict) -> dict:
    """Every operation's error answers as problem+json, and each write's Idempotency-Key header."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for schema in ("HTTPError", "ValidationError"):
        spec["components"]["schemas"].pop(schema, None)
    problem_ref = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in [code for code in responses if code.startswith("4")]:
                del responses[status]
            if path == "/health":
                if "200" in responses:  # degraded or fault: the same body, status 503
                    responses["503"] = {**responses["200"], "description": "the journal is behind or at fault"}
                continue
            for status in sorted(_error_statuses(path, method)):
                responses[status] = {"description": _ERROR_TEXT[status], "content": problem_ref}
            if method == "post" and path != "/v1/orders/quote":
                operation.setdefault("parameters", []).append(dict(_IDEMPOTENCY_KEY))
    return spec
