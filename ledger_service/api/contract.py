"""The OpenAPI document as a contract a generated client and any JSON Schema validator read the
way the server does (issue 18; issue 14 point 3).

`document(spec)` completes what APIFlask generates from the routes and `schemas.py`:

- every operation's answers: its success, and each problem status it can send
  (`application/problem+json`), 503 with `Retry-After`, 401 with `WWW-Authenticate`;
  the `Idempotent-Replayed` header of a write's 201; each write's `Idempotency-Key`;
- the path parameters' patterns (`*_id`: an id; `day`: a date), with examples;
- the two shapes of a deposit and of a gift pack (`oneOf`), `required: true` request bodies,
  the fields every response carries (`required`);
- examples of every request and response body (the request examples name the ids of the
  README's world: alice, bob, carol, owner, shop1);
- links between operations (a member → its holder, packs and role; an order → its reversal;
  a payout → its settlement or cancellation; a holder → its proof; every write → its event).

The status rule it states (README, "The API contract"): 422 = the request breaks this document;
404 = a well-formed id or day the books do not hold (a date before the books' first day
included); 409 = a request this document allows, refused by a rule of the books.
"""

from __future__ import annotations

import copy
from typing import Any

from . import schemas as s

PROBLEM = "application/problem+json"
RETRY_AFTER_SECONDS = 5  # a booking refused or left unwritten by a journal that cannot be written: retry after this

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
        "request_id": {"type": "string", "description": "the request's id, also in the X-Request-Id header and "
                                                        "in the service's log lines"},
    },
}
PROBLEM_EXAMPLES = {
    "400": {"type": "/problems/request.malformed", "title": "Bad request", "status": 400,
            "detail": "the request body cannot be read: InvalidChunkSize", "rule": "request.malformed"},
    "401": {"type": "/problems/auth.unknown_key", "title": "Unauthorized", "status": 401,
            "detail": "a valid API key is required: Authorization: Bearer <key>", "rule": "auth.unknown_key"},
    "403": {"type": "/problems/auth.wrong_role", "title": "Forbidden", "status": 403,
            "detail": "this API key's role may not use this path", "rule": "auth.wrong_role"},
    "404": {"type": "/problems/member.unknown", "title": "Not found", "status": 404,
            "detail": "buyer: no member 'nobody'", "rule": "member.unknown", "field": "buyer"},
    "409": {"type": "/problems/order.insufficient_sp", "title": "Refused by the rules", "status": 409,
            "detail": "amount_cny: the merchant holds 10.0000 SP, 60.0000 SP needed", "rule": "order.insufficient_sp",
            "field": "amount_cny"},
    "422": {"type": "/problems/input.bad_amount", "title": "Invalid request", "status": 422,
            "detail": f"amount_cny: {s.CNY_ERROR}", "rule": "input.bad_amount", "field": "amount_cny"},
    "503": {"type": "/problems/journal.unavailable", "title": "Unavailable", "status": 503,
            "detail": "nothing was booked: the journal is 1 entries behind the database and cannot be written "
                      "(No space left on device); no write is booked until it has caught up; retry later",
            "rule": "journal.unavailable", "booked": False, "journal_lag_entries": 1},
}
_ERROR_TEXT = {
    "400": "the request cannot be read (a broken chunked body)",
    "401": "no, unknown or revoked API key",
    "403": "this key's role may not use this path",
    "404": "a well-formed id or day the books do not hold (an unknown id; a date before the books' first day)",
    "409": "refused by a rule of the books (the request itself matches this document)",
    "422": "the request breaks this document: a malformed id, amount, rate, region or date, a missing or unknown "
           "field, a refused character, a missing Idempotency-Key",
    "503": "the journal cannot be written (journal.unavailable; see booked/event_id), needs an audit "
           "(journal.fault), or the database cannot be reached (database.unavailable); retry after Retry-After",
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": f"{s.IDEMPOTENCY_KEY_ERROR}; the same key and body return the first response (201, "
                   "Idempotent-Replayed: true); the same key with another body is 409 idempotency.key_reused",
    "schema": {"type": "string", "pattern": s.IDEMPOTENCY_KEY_PATTERN}, "example": "order-o1001-try-1",
}
_HEADERS = {
    "Idempotent-Replayed": {"description": "`true` when this answer is the first response to the same "
                                           "Idempotency-Key and body, sent again (nothing booked now)",
                            "required": False, "schema": {"type": "string", "enum": ["true"]}},
    "Retry-After": {"description": "seconds to wait before retrying with the same Idempotency-Key "
                                   "(journal.unavailable, database.unavailable)",
                    "required": False, "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "WWW-Authenticate": {"description": "the scheme to authenticate with", "required": True,
                         "schema": {"type": "string", "example": "Bearer"}},
}

# -- operations ------------------------------------------------------------------------------------------

# Every operation by operationId: a code generator turns these into function names (create_order, …).
OPERATION_IDS = {
    ("post", "/v1/members"): "register_member",
    ("post", "/v1/members/{member_id}/packs"): "buy_pack",
    ("post", "/v1/members/{member_id}/role"): "set_member_role",
    ("post", "/v1/merchants"): "open_store",
    ("post", "/v1/deposits"): "create_deposit",
    ("post", "/v1/orders"): "create_order",
    ("post", "/v1/orders/quote"): "quote_order",
    ("post", "/v1/orders/{order_id}/reverse"): "reverse_order",
    ("post", "/v1/transfers"): "create_transfer",
    ("post", "/v1/payouts"): "request_payout",
    ("post", "/v1/payouts/{payout_id}/settle"): "settle_payout",
    ("post", "/v1/payouts/{payout_id}/cancel"): "cancel_payout",
    ("post", "/v1/redemptions"): "redeem_sp",
    ("post", "/v1/days/{day}/close"): "close_days",
    ("post", "/v1/grants"): "grant_sv",
    ("get", "/v1/holders/{holder_id}"): "get_holder",
    ("get", "/v1/merchants/{merchant_id}"): "get_merchant",
    ("get", "/v1/supply"): "get_supply",
    ("get", "/v1/events/{event_id}"): "get_event",
    ("get", "/v1/events/{event_id}/proof"): "get_event_proof",
    ("get", "/v1/holders/{holder_id}/proof"): "get_holder_proof",
    ("get", "/v1/checkpoints/latest"): "get_latest_checkpoint",
    ("get", "/v1/checkpoints/consistency"): "get_consistency_proof",
    ("get", "/v1/checkpoints/{day}"): "get_checkpoint",
    ("get", "/v1/signing-keys"): "get_signing_keys",
    ("get", "/health"): "get_health",
    ("get", "/metrics"): "get_metrics",
}

# Writes that book nothing and so take no Idempotency-Key (a quote).
NOT_IDEMPOTENT = {"/v1/orders/quote"}

# Reads that answer 409: a request the document allows that a rule refuses (a future date of the
# supply, a consistency proof from a later checkpoint to an earlier one, an event booked after the
# checkpoint asked). Every write may answer 409.
_READS_WITH_409 = {"/v1/supply", "/v1/checkpoints/consistency", "/v1/events/{event_id}/proof"}


def error_statuses(path: str, method: str) -> set[str]:
    """The problem statuses an operation can answer besides its success."""
    if path == "/health":
        return set()  # no key; a journal behind or at fault is its own 503 body
    if path == "/metrics":
        return {"401", "403", "404", "422", "503"}  # an auditor's or admin's key
    # 422: a refused character in any query string; 503: every key is read from the database
    wanted = {"401", "404", "422", "503"}
    if method == "post":
        wanted |= {"400", "403", "409"}
    elif path in _READS_WITH_409:
        wanted |= {"409"}
    return wanted


# -- examples (the ids of the README's world) ------------------------------------------------------------

_HASH = "1a37ad260d02ca2e62321bc585b213eedb672b5d8071ef1639eacb4c7e825375"
_PREV = "3f1410fff9c38b592dcf3ea86c42a2ec2c9d353a898ea949befbc06d0e8fcbfc"
EVENT_EXAMPLE = {
    "id": "E000000074", "kind": "order", "date": "2026-03-31", "seq": 74, "hash": _HASH, "prev": _PREV,
    "file": "journal/2026-03/2026-03-31.beancount",
    "postings": [
        {"account": "Liabilities:Holders:SP", "amount": "10.0000", "commodity": "SP", "holder": "shop1",
         "leg": "deduct"},
        {"account": "Equity:SP:Burned", "amount": "-10.0000", "commodity": "SP", "holder": None, "leg": "burn"},
        {"account": "Liabilities:Holders:SV:Active", "amount": "-100.0000", "commodity": "SV", "holder": "bob",
         "leg": "buyer"},
        {"account": "Liabilities:Holders:SV:Active", "amount": "-20.0000", "commodity": "SV", "holder": "shop1",
         "leg": "merchant"},
        {"account": "Liabilities:Holders:SV:Active", "amount": "-40.0000", "commodity": "SV", "holder": "alice",
         "leg": "referrer"},
        {"account": "Liabilities:Holders:SV:Active", "amount": "-5.0000", "commodity": "SV", "holder": "alice",
         "leg": "team"},
        {"account": "Equity:SV:Granted", "amount": "165.0000", "commodity": "SV", "holder": None, "leg": None},
    ],
}
_CHECKPOINT = {"version": "ledger-checkpoint-v1", "day": "2026-03-30", "last_seq": 61,
               "head": "d8c26023a70c0b94dae5ae8883ea806bf35412cb5b473a200c70eb6eb0c5b692", "log_size": 61,
               "log_root": "b9a66ad6ded383dcb46fd16e53a1d0e385aa32a6ebaade68ecd45578e6bd4159"}
_HOLDER = {"id": "bob", "kind": "member", "active": True, "role": "member", "referrer": "alice", "region": "441900",
           "sv_locked": "0.0000", "sv_active": "699.0000", "sp": "0.0000", "sp_value_cny": "0.00",
           "value_cny_per_sp": "1.00000000"}
_ORDER = {"id": "o1001", "buyer": "bob", "merchant": "shop1", "amount_cny": "100.00", "ship_region": "441900"}

METRICS_EXAMPLE = ('# HELP ledger_bookings_total Writes answered, by event kind and outcome\n'
                   '# TYPE ledger_bookings_total counter\n'
                   'ledger_bookings_total{kind="order",outcome="booked"} 42.0\n')

# operationId -> (request body example or None, success body example)
EXAMPLES: dict[str, tuple[Any, Any]] = {
    "get_metrics": (None, METRICS_EXAMPLE),
    "register_member": ({"id": "dave", "referrer": "alice", "region": "441900"}, EVENT_EXAMPLE),
    "buy_pack": ({"kind": "activation"}, EVENT_EXAMPLE),
    "set_member_role": ({"role": "vip"}, EVENT_EXAMPLE),
    "open_store": ({"id": "shop3", "owner": "owner", "region": "441900", "channel": "online",
                    "rebate_rate": "0.10"}, EVENT_EXAMPLE),
    "create_deposit": ({"merchant": "shop1", "amount_cny": "500.00"}, EVENT_EXAMPLE),
    "create_order": (_ORDER, EVENT_EXAMPLE),
    "quote_order": (_ORDER, EVENT_EXAMPLE),
    "reverse_order": ({"amount_cny": "25.00"}, EVENT_EXAMPLE),
    "grant_sv": ({"holder": "bob", "sv": "20.0000", "reason": "campaign", "campaign": "spring2026",
                  "ref": "task-77"}, EVENT_EXAMPLE),
    "create_transfer": ({"from": "shop1", "to": "alice", "sp": "1.0000"}, EVENT_EXAMPLE),
    "request_payout": ({"holder": "shop1", "sp": "1.0000"}, EVENT_EXAMPLE),
    "settle_payout": ({"bank_reference": "BANK REF 2026/03 #7"}, EVENT_EXAMPLE),
    "cancel_payout": ({}, EVENT_EXAMPLE),
    "redeem_sp": ({"holder": "shop1", "sp": "1.0000", "goods": "咖啡杯 mug"}, EVENT_EXAMPLE),
    "close_days": (None, {"through": "2026-03-30", "closed": [
        {"date": "2026-03-30", "id": "E000000060", "released_sp": "12.5000", "value_cny_per_sp": "1.00000000",
         "hash": "d8c26023a70c0b94dae5ae8883ea806bf35412cb5b473a200c70eb6eb0c5b692"}]}),
    "get_holder": (None, _HOLDER),
    "get_merchant": (None, {**_HOLDER, "id": "shop1", "kind": "merchant", "referrer": None, "sp": "489.0000",
                            "sp_value_cny": "489.00", "sv_active": "20.0000", "owner": "owner",
                            "channel": "online", "rebate_rate": "0.1000", "store_referrer": None,
                            "deposits_cny": "500.00", "deposit_rule": "sp_held", "deposit_value_cny": "500.00",
                            "deposit_sp": "500.0000", "opened": "2026-03-02", "deposit_met": True,
                            "can_take_orders": True, "max_order_cny": "4890.00"}),
    "get_supply": (None, {"cap": "390000.0000", "issued": "500.0000", "released": "0.0000", "sold": "500.0000",
                          "burned": "10.0000", "redeemed": "1.0000", "circulating": "489.0000", "pool_cny": "499.00",
                          "value_cny_per_sp": "1.00000000", "closing_value_cny_per_sp": "1.02044990",
                          "date": "2026-03-31", "closed": False}),
    "get_event": (None, {"id": "E000000074", "seq": 74, "kind": "order", "date": "2026-03-31",
                         "file": "journal/2026-03/2026-03-31.beancount", "hash": _HASH, "prev": _PREV,
                         "entry": "2026-03-31 * \"order\" \"order o1001 of bob at shop1: 100.00 CNY\"\n  …\n",
                         "reversed_by": None}),
    "get_event_proof": (None, {"version": "ledger-inclusion-v1", "event_id": "E000000003", "seq": 3,
                               "entry_hash": _HASH, "prev": _PREV,
                               "canonical": "ledger-entry-v1\nprev:" + _PREV + "\ntype:transaction\n…",
                               "leaf_index": 2, "checkpoint": _CHECKPOINT, "path": [_PREV, _HASH]}),
    "get_holder_proof": (None, {
        "version": "ledger-holder-proof-v1", "holder": "alice", "salt": _PREV, "leaf_index": 0,
        "leaf": {"base_sp": "0.0000", "shares": "300.0000", "sv_locked": "0.0000"},
        "balances": {"sp": "0.0000", "sv_active": "300.0000", "sv_locked": "0.0000"},
        "path": [{"side": "right", "hash": _HASH, "base_sp": "489.0000", "shares": "720.0000",
                  "sv_locked": "0.0000"}],
        "liabilities": {"version": "ledger-liabilities-v1", "day": "2026-03-30"}}),
    "get_latest_checkpoint": (None, _CHECKPOINT),
    "get_consistency_proof": (None, {"version": "ledger-consistency-v1",
                                     "from": {**_CHECKPOINT, "day": "2026-03-01", "last_seq": 3, "log_size": 3},
                                     "to": _CHECKPOINT, "path": [_PREV, _HASH]}),
    "get_checkpoint": (None, _CHECKPOINT),
    "get_signing_keys": (None, {
        "version": "ledger-signing-keys-v1", "genesis_key": _PREV,
        "rotations": [{"version": "ledger-key-rotation-v1", "day": "2026-03-30", "previous_key": _PREV,
                       "public_key": _HASH, "signature": _HASH + _PREV}],
        "key_in_force": _HASH}),
    "get_health": (None, {"status": "ok", "journal_head": {"seq": 75, "hash": _HASH, "open_day": "2026-03-31",
                                                             "value_cny_per_sp": "1.00000000"},
                          "database": "ok", "journal": "ok", "journal_lag_entries": 0}),
}
PATH_EXAMPLES = {"member_id": "carol", "holder_id": "alice", "merchant_id": "shop1", "order_id": "o1",
                 "payout_id": "E000000075", "event_id": "E000000003", "day": "2026-03-30"}
QUERY_EXAMPLES = {"date": "2026-03-30", "checkpoint": "2026-03-30", "from": "2026-03-01", "to": "2026-03-30"}

# -- the shapes marshmallow cannot say ---------------------------------------------------------------------

_DATE_PROPERTY = {"type": "string", "format": "date", "pattern": s.DATE_PATTERN,
                  "description": "business day YYYY-MM-DD (default: today)"}


def _deposit_in() -> dict:
    """A deposit: a merchant's (buys SP for it) or the platform's injection (buys nothing)."""
    amount = {"type": "string", "pattern": s.CNY_PATTERN, "description": "CNY paid into the pool"}
    return {
        "description": "money into the pool: give `merchant`, or `platform: true`, not both",
        "oneOf": [
            {"title": "MerchantDeposit", "type": "object", "additionalProperties": False,
             "required": ["amount_cny", "merchant"],
             "properties": {"amount_cny": amount, "merchant": {"type": "string", "pattern": s.ID_PATTERN},
                            "platform": {"type": "boolean", "enum": [False]}, "date": _DATE_PROPERTY}},
            {"title": "PlatformInjection", "type": "object", "additionalProperties": False,
             "required": ["amount_cny", "platform"],
             "properties": {"amount_cny": amount, "platform": {"type": "boolean", "enum": [True]},
                            "date": _DATE_PROPERTY}},
        ],
    }


def _pack_in() -> dict:
    """A gift pack: activation (no region) or partner (the region it appoints the partner of)."""
    return {
        "description": "an activation pack, or a partner pack with the region it appoints the partner of",
        "oneOf": [
            {"title": "ActivationPack", "type": "object", "additionalProperties": False, "required": ["kind"],
             "properties": {"kind": {"type": "string", "enum": ["activation"]}, "date": _DATE_PROPERTY}},
            {"title": "PartnerPack", "type": "object", "additionalProperties": False, "required": ["kind", "region"],
             "properties": {"kind": {"type": "string", "enum": ["partner"]},
                            "region": {"type": "string", "pattern": s.REGION_PATTERN}, "date": _DATE_PROPERTY}},
        ],
    }


# Response fields that may be absent (every other field of a response schema is always present).
OPTIONAL_FIELDS = {
    "HealthOut": {"journal_head", "journal", "journal_lag_entries", "journal_detail"},  # database down: 2 fields
    # a day closed before the books signed: the six log fields of ledger-checkpoint-v1 alone
    "CheckpointOut": {"liabilities", "supply", "key", "signature"},
    "HolderProofOut": {"checkpoint"},  # a liabilities tree without the event log's checkpoint of its day
}


# Response fields that are business days (YYYY-MM-DD): `format: date`, so a client reads a date.
DATE_FIELDS = {"date", "day", "through", "open_day"}


def _require_response_fields(schemas: dict) -> None:
    for name, schema in schemas.items():
        if name.endswith("Out") and "properties" in schema:
            schema["required"] = sorted(set(schema["properties"]) - OPTIONAL_FIELDS.get(name, set()))
            for field, prop in schema["properties"].items():
                if field in DATE_FIELDS and prop.get("type") == "string":
                    prop["format"] = "date"


# -- links ------------------------------------------------------------------------------------------------

def _link(operation_id: str, body: dict | None = None, **parameters: str) -> dict:
    """A link to `operation_id`; `body`: request body fields it takes (the rest generated)."""
    link: dict[str, Any] = {"operationId": operation_id, "parameters": parameters}
    if body:
        link["requestBody"] = body
    return link


_EVENT_ID = "$response.body#/id"
_BODY_ID = "$request.body#/id"
_LINKS: dict[str, dict[str, dict]] = {
    "register_member": {"GetHolder": _link("get_holder", holder_id=_BODY_ID),
                        "BuyPack": _link("buy_pack", member_id=_BODY_ID),
                        "SetMemberRole": _link("set_member_role", member_id=_BODY_ID)},
    "buy_pack": {"GetHolder": _link("get_holder", holder_id="$request.path.member_id")},
    "set_member_role": {"GetHolder": _link("get_holder", holder_id="$request.path.member_id")},
    "open_store": {"GetMerchant": _link("get_merchant", merchant_id=_BODY_ID),
                   "CreateDeposit": _link("create_deposit", body={"merchant": _BODY_ID})},
    "get_merchant": {"CreateOrder": _link("create_order", body={"merchant": "$response.body#/id",
                                                                "buyer": "$response.body#/owner"})},
    "create_order": {"ReverseOrder": _link("reverse_order", order_id=_BODY_ID),
                     "GetEventProof": _link("get_event_proof", event_id=_EVENT_ID)},
    "request_payout": {"SettlePayout": _link("settle_payout", payout_id=_EVENT_ID),
                       "CancelPayout": _link("cancel_payout", payout_id=_EVENT_ID)},
    "create_transfer": {"GetHolder": _link("get_holder", holder_id="$request.body#/to")},
    "close_days": {"GetCheckpoint": _link("get_checkpoint", day="$response.body#/through"),
                   "GetSupply": _link("get_supply", date="$response.body#/through")},
    "get_holder": {"GetHolderProof": _link("get_holder_proof", holder_id="$response.body#/id"),
                   "CreateTransfer": _link("create_transfer", body={"from": "$response.body#/id"}),
                   "RequestPayout": _link("request_payout", body={"holder": "$response.body#/id"}),
                   "RedeemSp": _link("redeem_sp", body={"holder": "$response.body#/id"})},
    "get_latest_checkpoint": {"GetCheckpoint": _link("get_checkpoint", day="$response.body#/day"),
                              "GetConsistencyProof": {"operationId": "get_consistency_proof", "parameters": {
                                  "from": "$response.body#/day", "to": "$response.body#/day"}}},
    "get_event": {"GetEventProof": _link("get_event_proof", event_id=_EVENT_ID)},
}


def _links(operation_id: str) -> dict[str, dict]:
    """The operations a success of `operation_id` leads to, with the values they take from it;
    every write that books an event leads to that event."""
    links = dict(_LINKS.get(operation_id, {}))
    if operation_id in _WRITES and operation_id not in ("quote_order", "close_days"):
        links["GetEvent"] = _link("get_event", event_id=_EVENT_ID)
    return links


_WRITES = {op_id for (method, _path), op_id in OPERATION_IDS.items() if method == "post"}


# -- the document -----------------------------------------------------------------------------------------

def _path_parameters(operation: dict) -> None:
    for parameter in operation.get("parameters", []):
        name = parameter.get("name", "")
        if parameter.get("in") == "path":
            if name == "day":
                parameter["schema"] = {"type": "string", "format": "date", "pattern": s.DATE_PATTERN}
                parameter["description"] = "a business day YYYY-MM-DD"
            else:
                parameter["schema"] = {"type": "string", "pattern": s.ID_PATTERN}
                parameter["description"] = s.ID_ERROR
            parameter["example"] = PATH_EXAMPLES.get(name, "alice")
        elif parameter.get("in") == "query" and name in QUERY_EXAMPLES:
            parameter["example"] = QUERY_EXAMPLES[name]


def _success(path: str, method: str, responses: dict, operation_id: str, example: Any) -> None:
    for status, response in responses.items():
        if not status.startswith("2"):
            continue
        for media in response.get("content", {}).values():
            if example is not None:
                media["example"] = copy.deepcopy(example)
        if method == "post" and path not in NOT_IDEMPOTENT:
            response["headers"] = {"Idempotent-Replayed": _HEADERS["Idempotent-Replayed"]}
        links = _links(operation_id)
        if links:
            response["links"] = links


def _problems(path: str, method: str, responses: dict) -> None:
    for status in sorted(error_statuses(path, method)):
        answer: dict[str, Any] = {"description": _ERROR_TEXT[status], "content": {PROBLEM: {
            "schema": {"$ref": "#/components/schemas/Problem"}, "example": PROBLEM_EXAMPLES[status]}}}
        if status == "503":
            answer["headers"] = {"Retry-After": _HEADERS["Retry-After"]}
        if status == "401":
            answer["headers"] = {"WWW-Authenticate": _HEADERS["WWW-Authenticate"]}
        responses[status] = answer


def _responses(path: str, method: str, operation: dict, operation_id: str) -> None:
    responses = operation.setdefault("responses", {})
    for status in [code for code in responses if code.startswith("4")]:
        del responses[status]
    request_example, success_example = EXAMPLES.get(operation_id, (None, None))
    _success(path, method, responses, operation_id, success_example)
    if path == "/health":
        if "200" in responses:  # degraded or fault: the same body, status 503
            responses["503"] = {**copy.deepcopy(responses["200"]),
                                "description": "the journal is behind or at fault, or the database is down"}
            responses["503"].pop("links", None)
        return
    _problems(path, method, responses)
    if "requestBody" in operation:
        body = operation["requestBody"]
        body["required"] = True
        for media in body.get("content", {}).values():
            if request_example is not None:
                media["example"] = copy.deepcopy(request_example)


def document(spec: dict) -> dict:
    """The generated document, completed into the contract (see the module's docstring)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPError", "ValidationError"):
        schemas.pop(name, None)
    if "DepositIn" in schemas:
        schemas["DepositIn"] = _deposit_in()
    if "PackIn" in schemas:
        schemas["PackIn"] = _pack_in()
    _require_response_fields(schemas)
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            # (an operation missing from OPERATION_IDS keeps a plain name; a test requires one there)
            operation_id = OPERATION_IDS.get((method, path)) or operation.get("operationId") or \
                f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"
            operation["operationId"] = operation_id
            _path_parameters(operation)
            _responses(path, method, operation, operation_id)
            if method == "post" and path not in NOT_IDEMPOTENT:
                operation.setdefault("parameters", []).append(dict(_IDEMPOTENCY_KEY))
    return spec
