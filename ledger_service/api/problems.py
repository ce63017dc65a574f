"""Every error answer of the API as an RFC 9457 problem document, and its OpenAPI documentation.

`problem()` builds one; `register_error_handlers(app)` maps the service's exceptions (a
refusal by the rules, a journal fault, an unwritable journal, an unreachable database,
an idempotent replay) and APIFlask's own errors onto them; `contract.document` writes the
same answers into the OpenAPI document.
"""

from __future__ import annotations

import json

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from flask import Response, g
from sqlalchemy.exc import OperationalError

from ..engine import IdempotentReplay
from ..errors import JournalFault, JournalUnavailable, Refusal
from ..logs import REQUEST_ID
from ..store.db import redact
from . import contract
from . import schemas as s
from .contract import PROBLEM, RETRY_AFTER_SECONDS

STATUS_OF = {"invalid": 422, "not_found": 404, "conflict": 409}
# Rules the rules module calls "invalid" that this document cannot state (a request matching the
# OpenAPI document, refused on what the books hold or on today's date): 409, refused by the rules.
CONFLICT_RULES = {"date.future", "deposit.too_small", "transfer.same_holder", "payout.too_small", "redeem.too_small",
                  "proof.bad_range"}
# Rules the rules module calls "invalid" that name a well-formed code the books do not hold, as an
# unknown id is (a region code the books' division table lacks): 404.
NOT_FOUND_RULES = {"region.unknown"}
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Refused by the rules", 422: "Invalid request", 500: "Internal error", 503: "Unavailable"}


def problem(status: int, rule: str, detail: str, field: str | None = None) -> Response:
    body = {"type": f"/problems/{rule}", "title": TITLES.get(status, "Error"), "status": status,
            "detail": redact(detail), "rule": rule}  # a database URL's password never leaves
    if field:
        body["field"] = field
    _with_request_id(body)
    return Response(json.dumps(body), status=status, mimetype=PROBLEM)


def _with_request_id(body: dict) -> None:
    """Every problem names the request's id (`request_log`): quote it when reporting a problem."""
    request_id = REQUEST_ID.get()
    if request_id:
        body["request_id"] = request_id


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
    _with_request_id(body)
    response = Response(json.dumps(body), status=503, mimetype=PROBLEM)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register_error_handlers(app: APIFlask) -> None:
    """The app-wide answers: APIFlask's validation and HTTP errors, the service's exceptions."""

    @app.error_processor
    def _error(error: HTTPError) -> Response:
        if error.status_code == 422 and isinstance(error.detail, dict):
            field, message = first_field(error.detail)
            rule = "input.bad_date" if message.endswith(s.DATE_ERROR) else s.RULE_OF_ERROR.get(message, "input.invalid")
            return problem(422, rule, f"{field}: {message}", field)
        if error.status_code == 413:
            return problem(422, "input.too_large", f"the body exceeds {s.MAX_BODY_BYTES} bytes")
        if error.status_code == 400:
            return problem(422, "input.malformed", "the body is not valid JSON")
        response = problem(error.status_code, f"http.{error.status_code}", str(error.message))
        allow = dict(error.headers or {}).get("Allow")
        if error.status_code == 405 and allow:  # RFC 9110 §15.5.6
            response.headers["Allow"] = allow
        return response

    @app.spec_processor
    def _document_errors(spec: dict | str) -> dict | str:
        return contract.document(spec) if isinstance(spec, dict) else spec

    @app.errorhandler(Refusal)
    def _refusal(exc: Refusal) -> Response:
        g.refused_rule = exc.rule  # (metrics: refused by a rule, or invalid input)
        status = 409 if exc.rule in CONFLICT_RULES else 404 if exc.rule in NOT_FOUND_RULES else STATUS_OF[exc.kind]
        return problem(status, exc.rule, exc.detail, exc.field)

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
