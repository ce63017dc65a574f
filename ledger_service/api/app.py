"""The storefront API (SPEC §7): Flask + APIFlask, calling the engine and nothing else to book.

- OpenAPI 3.1 generated from the code at /openapi.json, interactive docs at /docs;
- `Authorization: Bearer <key>`; unknown key 401, wrong role 403;
- every write needs `Idempotency-Key`: same key and body → the first response again,
  nothing booked; same key, other body → 409; kept in the database in the booking's
  own transaction;
- errors are `application/problem+json` (RFC 9457) with a stable `type` per rule,
  `title`, `detail` and `field`; a refused write books nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Callable

from apiflask import APIFlask, HTTPTokenAuth
from apiflask.exceptions import HTTPError
from flask import Response, g, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..engine import Engine, Idempotency, IdempotentReplay
from ..errors import Invalid, JournalFault, JournalUnavailable, NotFound, Refusal
from ..rules import events as ev
from ..store import keys
from ..store.db import redact
from ..text import describe, refused_char
from . import schemas as s

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32  # arrays and objects nested deeper are refused (422 input.too_deep) before parsing
try:  # what gunicorn's body reader raises for a broken chunked framing (InvalidChunkSize, …)
    from gunicorn.http.errors import ParseException as _ServerParseError
except ImportError:  # pragma: no cover (gunicorn is a dependency; other servers raise OSError)
    class _ServerParseError(Exception):
        pass
BODY_READ_ERRORS = (OSError, ValueError, HTTPException, _ServerParseError)
PROBLEM = "application/problem+json"
STATUS_OF = {"invalid": 422, "not_found": 404, "conflict": 409}
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Refused by the rules", 422: "Invalid request", 500: "Internal error", 503: "Unavailable"}


def problem(status: int, rule: str, detail: str, field: str | None = None) -> Response:
    body = {"type": f"/problems/{rule}", "title": TITLES.get(status, "Error"), "status": status,
            "detail": redact(detail), "rule": rule}  # a database URL's password never leaves
    if field:
        body["field"] = field
    return Response(json.dumps(body), status=status, mimetype=PROBLEM)


def _jsonable(value):
    if isinstance(value, Decimal):
        from ..amounts import fmt

        return fmt(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def create_app(books: Path | str, db_url: str | None = None, clock: Callable[[], date] | None = None,
               engine: Engine | None = None) -> APIFlask:
    engine = engine or Engine(books, db_url, clock, serve_on_fault=True)  # a worker always boots: reads go on
    app = APIFlask(__name__, title="Shared-purchase points ledger API", version="1.0.0",
                   spec_path="/openapi.json", docs_path="/docs")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["INFO"] = {"description": "Post the storefront's events, read balances and the SP supply. "
                                         "Amounts are decimal strings. Errors are RFC 9457 problem documents."}
    app.extensions["ledger_engine"] = engine
    auth = HTTPTokenAuth(scheme="Bearer", description="an API key from `ledger-service keys create`")

    @auth.verify_token
    def _verify(token: str):
        with engine.Session() as session:
            found = keys.identify(session, token or "")
        return {"key_id": found[0], "role": found[1]} if found else None

    @auth.get_user_roles
    def _roles(user):
        return user["role"]

    @auth.error_processor
    def _auth_error(error: HTTPError):
        if error.status_code == 401:
            return problem(401, "auth.unknown_key", "a valid API key is required: Authorization: Bearer <key>")
        return problem(403, "auth.wrong_role", "this API key's role may not use this path")

    @app.error_processor
    def _error(error: HTTPError):
        if error.status_code == 422 and isinstance(error.detail, dict):
            field, message = _first_field(error.detail)
            rule = "input.bad_date" if message.endswith(s.DATE_ERROR) else "input.invalid"
            return problem(422, rule, f"{field}: {message}", field)
        if error.status_code == 413:
            return problem(422, "input.too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
        if error.status_code == 400:
            return problem(422, "input.malformed", "the body is not valid JSON")
        return problem(error.status_code, f"http.{error.status_code}", str(error.message))

    @app.spec_processor
    def _document_errors(spec: dict) -> dict:
        return document_errors(spec)

    @app.errorhandler(Refusal)
    def _refusal(exc: Refusal):
        return problem(STATUS_OF[exc.kind], exc.rule, exc.detail, exc.field)

    @app.errorhandler(IdempotentReplay)
    def _replay(exc: IdempotentReplay):
        response = Response(exc.body, status=exc.status, mimetype="application/json")
        response.headers["Idempotent-Replayed"] = "true"
        return response

    @app.errorhandler(JournalFault)
    def _fault(exc: JournalFault):
        return problem(503, "journal.fault", f"the books need an audit before booking: {exc}")

    @app.errorhandler(JournalUnavailable)
    def _unavailable(exc: JournalUnavailable):
        return journal_unavailable(exc)

    @app.errorhandler(OperationalError)
    def _database_unavailable(exc: OperationalError):
        app.logger.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig is not None else exc)
        response = problem(503, "database.unavailable",
                           "the database cannot be reached or written (a full disk, a lost connection); retry later "
                           "with the same Idempotency-Key: a request that was booked returns its event, one that "
                           "was not is booked then")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

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

    def write(role: str, idempotent: bool = True):
        """Auth for `role`, the body's type and size, then (for writes) a required
        Idempotency-Key bound to this exact request."""

        def decorate(view):
            @wraps(view)
            def wrapper(*args, **kwargs):
                bad_body = body_problem()
                if bad_body is not None:
                    return bad_body
                if not idempotent:
                    return view(*args, **kwargs)
                key = request.headers.get("Idempotency-Key", "")
                if not key or len(key) > 200:
                    return problem(422, "idempotency.key_required",
                                   "Idempotency-Key: every write needs a key of 1 to 200 characters", "Idempotency-Key")
                if refused_char(key):
                    return problem(422, "input.bad_text", f"Idempotency-Key: {describe(refused_char(key))} is not allowed",
                                   "Idempotency-Key")
                raw = request.get_data(cache=True) or b"{}"
                try:
                    canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
                except (ValueError, RecursionError):
                    canonical = raw.decode("utf-8", "replace")
                digest = hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()
                g.idempotency = Idempotency(key, digest, scope=auth.current_user["key_id"])  # per API key
                return view(*args, **kwargs)

            return app.auth_required(auth, roles=[role])(wrapper)

        return decorate

    def book(event: ev.Event, data: dict):
        booked = engine.submit(event, _day(data), g.idempotency)
        return booked.to_json(), 201

    def read(view):
        """Any key; then no refused character in the path or the query."""

        @wraps(view)
        def wrapper(*args, **kwargs):
            bad_url = url_strings_problem()
            return bad_url if bad_url is not None else view(*args, **kwargs)

        return app.auth_required(auth)(wrapper)

    # -- writes --------------------------------------------------------------------

    @app.post("/v1/members")
    @write("storefront")
    @app.input(s.MemberIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Register a member", responses={409: "refused by the rules", 422: "invalid input"})
    def register(data):
        return book(ev.Register(data["id"], data.get("referrer"), data.get("region")), data)

    @app.post("/v1/members/<member_id>/packs")
    @write("storefront")
    @app.input(s.PackIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Buy a gift pack (activation or partner)")
    def buy_pack(member_id, data):
        return book(ev.BuyPack(member_id, data["kind"], data.get("region")), data)

    @app.post("/v1/members/<member_id>/role")
    @write("finance")
    @app.input(s.RoleIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Grade a member")
    def set_role(member_id, data):
        return book(ev.SetRole(member_id, data["role"]), data)

    @app.post("/v1/merchants")
    @write("storefront")
    @app.input(s.MerchantIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Open a store")
    def open_store(data):
        return book(ev.OpenStore(data["id"], data["owner"], data["region"], data["channel"],
                                 data["rebate_rate"], data.get("referrer")), data)

    @app.post("/v1/deposits")
    @write("finance")
    @app.input(s.DepositIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Money into the pool: a merchant's deposit (buys SP) or a platform injection")
    def deposit(data):
        return book(ev.Deposit(data["amount_cny"], data.get("merchant"), bool(data.get("platform"))), data)

    @app.post("/v1/orders")
    @write("storefront")
    @app.input(s.OrderIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Book an order and every split of its rebate")
    def order(data):
        return book(_order(data), data)

    @app.post("/v1/orders/quote")
    @write("storefront", idempotent=False)
    @app.input(s.OrderIn, arg_name="data")
    @app.output(s.EventOut, status_code=200)
    @app.doc(summary="What an order would book, booking nothing")
    def quote(data):
        return engine.quote(_order(data), _day(data)).to_json()

    @app.post("/v1/orders/<order_id>/reverse")
    @write("finance")
    @app.input(s.DateOnlyIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Reverse an order (the exact mirror of its postings)")
    def reverse(order_id, data):
        event_id = engine.event_for_order(order_id)
        if event_id is None:
            raise NotFound("order.unknown", f"id: no order {order_id!r}", "id")
        return book(ev.Reverse(event_id), data)

    @app.post("/v1/transfers")
    @write("storefront")
    @app.input(s.TransferIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Move SP from one holder to another")
    def transfer(data):
        return book(ev.Transfer(data["from_"], data["to"], data["sp"]), data)

    @app.post("/v1/payouts")
    @write("storefront")
    @app.input(s.PayoutIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Request a cash-out at the day's value; the event id is the payout id")
    def payout(data):
        return book(ev.PayoutRequest(data["holder"], data["sp"]), data)

    @app.post("/v1/payouts/<payout_id>/settle")
    @write("finance")
    @app.input(s.SettleIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="The bank paid: clear the payable")
    def settle(payout_id, data):
        return book(ev.PayoutSettle(payout_id, data["bank_reference"]), data)

    @app.post("/v1/payouts/<payout_id>/cancel")
    @write("finance")
    @app.input(s.DateOnlyIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Cancel a pending payout: SP and CNY restored exactly")
    def cancel(payout_id, data):
        return book(ev.PayoutCancel(payout_id), data)

    @app.post("/v1/redemptions")
    @write("storefront")
    @app.input(s.RedeemIn, arg_name="data")
    @app.output(s.EventOut, status_code=201)
    @app.doc(summary="Redeem SP for platform goods at the day's value")
    def redeem(data):
        return book(ev.Redeem(data["holder"], data["sp"], data["goods"]), data)

    @app.post("/v1/days/<day>/close")
    @write("finance")
    @app.output(s.CloseOut, status_code=201)
    @app.doc(summary="Close every open business day up to this date (the daily release)")
    def close(day):
        from ..engine import closed_days_json

        through = _parse_day(day, "day")
        booked = engine.close_days(through, g.idempotency)
        return closed_days_json(booked, through), 201

    # -- reads ---------------------------------------------------------------------

    @app.get("/v1/holders/<holder_id>")
    @read
    @app.output(s.HolderOut)
    @app.doc(summary="A holder's locked and active SV, SP and its value in CNY")
    def holder(holder_id):
        return {k: _jsonable(v) for k, v in engine.holder(holder_id).items()}

    @app.get("/v1/merchants/<merchant_id>")
    @read
    @app.output(s.MerchantOut)
    @app.doc(summary="A merchant: holder fields, deposits and whether it can take orders")
    def merchant(merchant_id):
        found = engine.holder(merchant_id)
        if found["kind"] != "merchant":
            raise NotFound("merchant.unknown", f"id: no merchant {merchant_id!r}", "id")
        return {k: _jsonable(v) for k, v in found.items()}

    @app.get("/v1/supply")
    @read
    @app.input(s.SupplyQuery, location="query", arg_name="query")
    @app.output(s.SupplyOut)
    @app.doc(summary="The SP supply report as of a date (cap, issued, burned, circulating, pool, value)")
    def supply(query):
        day = _parse_day(query["date"], "date") if query.get("date") else None
        return engine.supply(day)

    @app.get("/v1/events/<event_id>")
    @read
    @app.output(s.EventDetailOut)
    @app.doc(summary="A booked event with its journal entry and hash")
    def event(event_id):
        return engine.event(event_id)

    @app.get("/health")
    @app.output(s.HealthOut)
    @app.doc(summary="Journal head and database state")
    def health():
        try:
            journal = engine.journal_state()
            status = {"ok": "ok", "behind": "degraded", "fault": "fault"}[journal["journal"]]
            body = {"status": status, "journal_head": engine.head(), "database": "ok", **journal}
        except OperationalError:
            return {"status": "down", "database": "unavailable"}, 503
        return body, (200 if status == "ok" else 503)

    return app


# A booking refused or left unwritten by a journal that cannot be written: retry after this long.
RETRY_AFTER_SECONDS = 5


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


def document_errors(spec: dict) -> dict:
    """Every operation's error answers as problem+json, and each write's Idempotency-Key header."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for schema in ("HTTPError", "ValidationError"):
        spec["components"]["schemas"].pop(schema, None)
    problem_ref = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in [s for s in responses if s.startswith("4")]:
                del responses[status]
            if path == "/health":
                if "200" in responses:  # degraded or fault: the same body, status 503
                    responses["503"] = {**responses["200"], "description": "the journal is behind or at fault"}
                continue
            wanted = {"401"}
            if method == "post":
                wanted |= {"400", "403", "409", "422"} | ({"404"} if path != "/v1/days/{day}/close" else set())
            elif "{" in path:
                wanted |= {"404", "422"}  # 422: a refused character in the path (input.bad_text)
            if path == "/v1/supply":
                wanted |= {"404", "422"}
            if method == "post" and path != "/v1/orders/quote":
                wanted |= {"503"}
            for status in sorted(wanted):
                responses[status] = {"description": _ERROR_TEXT[status], "content": problem_ref}
            if method == "post" and path != "/v1/orders/quote":
                operation.setdefault("parameters", []).append({
                    "name": "Idempotency-Key", "in": "header", "required": True,
                    "description": "the same key and body return the first response; another body is a 409",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                })
    return spec


def _order(data: dict) -> ev.Order:
    return ev.Order(data["id"], data["buyer"], data["merchant"], data["amount_cny"], data.get("ship_region"))


_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")  # exactly: not 20261128, 2026-W48-1 (fromisoformat's)


def _parse_day(text: str, field: str) -> date:
    if not _DATE_RE.match(text):
        raise Invalid("input.bad_date", f"{field}: {text!r} {s.DATE_ERROR}", field)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid("input.bad_date", f"{field}: {text!r} is not a calendar date (YYYY-MM-DD)", field) from None


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
        if refused_char(name):
            return text_problem("query", refused_char(name))
        if refused_char(value):
            return text_problem(name, refused_char(value))
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


def _refused_in(value, field: str) -> tuple[str, str] | None:
    """(field, character) of the first refused character in a parsed JSON value's strings:
    a value is named by its key (`goods`, nested `a.b`, `a[0]`), a bad key by `body`."""
    if isinstance(value, str):
        ch = refused_char(value)
        return (field, ch) if ch else None
    if isinstance(value, dict):
        for key, item in value.items():
            if refused_char(key):
                return ("body", refused_char(key))
            found = _refused_in(item, key if field == "body" else f"{field}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _refused_in(item, f"{field}[{index}]")
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
    found = _refused_in(value, "body")
    return text_problem(*found) if found else None


def _day(data: dict) -> date | None:
    return _parse_day(data["date"], "date") if data.get("date") else None


def _first_field(detail: dict) -> tuple[str, str]:
    for _location, fields in detail.items():
        if isinstance(fields, dict):
            for name, messages in fields.items():
                message = messages[0] if isinstance(messages, list) and messages else str(messages)
                if isinstance(message, dict):
                    message = json.dumps(message)
                return str(name), str(message)
    return "body", json.dumps(detail)
