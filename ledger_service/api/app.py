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
from datetime import date
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Callable

from apiflask import APIFlask, HTTPTokenAuth
from apiflask.exceptions import HTTPError
from flask import Response, g, request

from ..engine import Engine, Idempotency, IdempotentReplay
from ..errors import Invalid, JournalFault, NotFound, Refusal
from ..rules import events as ev
from ..store import keys
from . import schemas as s

MAX_BODY_BYTES = 64 * 1024
PROBLEM = "application/problem+json"
STATUS_OF = {"invalid": 422, "not_found": 404, "conflict": 409}
TITLES = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Refused by the rules", 422: "Invalid request", 500: "Internal error", 503: "Unavailable"}


def problem(status: int, rule: str, detail: str, field: str | None = None) -> Response:
    body = {"type": f"/problems/{rule}", "title": TITLES.get(status, "Error"), "status": status,
            "detail": detail, "rule": rule}
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
    engine = engine or Engine(books, db_url, clock)
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
            role = keys.role_of(session, token or "")
        return {"role": role} if role else None

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
            return problem(422, "input.invalid", f"{field}: {message}", field)
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

    def body_problem() -> Response | None:
        """A POST body that is not JSON, or too large (checked after auth: 401/403 come first)."""
        if request.content_length and request.mimetype != "application/json":
            return problem(422, "input.content_type", "send the body as application/json")
        if request.content_length and request.content_length > MAX_BODY_BYTES:
            return problem(422, "input.too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
        return None

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
                raw = request.get_data(cache=True) or b"{}"
                try:
                    canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
                except ValueError:
                    canonical = raw.decode("utf-8", "replace")
                digest = hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()
                g.idempotency = Idempotency(key, digest)
                return view(*args, **kwargs)

            return app.auth_required(auth, roles=[role])(wrapper)

        return decorate

    def book(event: ev.Event, data: dict):
        booked = engine.submit(event, _day(data), g.idempotency)
        return booked.to_json(), 201

    read = app.auth_required(auth)

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

        through = _parse_day(day, "date")
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
        return {"status": "ok", "journal_head": engine.head(), "database": "ok"}

    return app


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
    },
}
_ERROR_TEXT = {"401": "no, unknown or revoked API key", "403": "this key's role may not use this path",
               "404": "an unknown id (or a date before the books began)", "409": "refused by the rules",
               "422": "malformed input"}


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
                continue
            wanted = {"401"}
            if method == "post":
                wanted |= {"403", "409", "422"} | ({"404"} if path != "/v1/days/{day}/close" else set())
            elif "{" in path:
                wanted |= {"404"}
            if path == "/v1/supply":
                wanted |= {"404", "422"}
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


def _parse_day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid("input.bad_date", f"{field}: {text!r} is not a date YYYY-MM-DD", field) from None


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
