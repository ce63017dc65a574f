"""What every blueprint of the API shares: the engine, the API-key auth, the write and read
guards (with the Idempotency-Key of each write), booking an event, the date parameters.

`Routes` is an `APIBlueprint` with two more decorators, `write(role)` and `read`; each
resource module (members, stores, orders, holdings, days, reads) is one `Routes`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import wraps
from typing import Any

from apiflask import APIBlueprint, HTTPTokenAuth
from apiflask.exceptions import HTTPError
from flask import Response, current_app, g, request
from sqlalchemy.exc import OperationalError

from ..amounts import fmt
from ..engine import Engine, Idempotency
from ..errors import Invalid, NotFound
from ..rules import events as ev
from ..store import keys
from ..text import describe, refused_char
from . import schemas as s
from .guards import body_problem, url_strings_problem
from .problems import problem

ENGINE = "ledger_engine"  # the app's extension holding its Engine
log = logging.getLogger(__name__)
GENESIS_DAY = "ledger_genesis_day"  # the app's extension caching the books' first day

auth = HTTPTokenAuth(scheme="Bearer", description="an API key from `ledger-service keys create`")


def engine() -> Engine:
    """The engine of the app serving this request."""
    return current_app.extensions[ENGINE]


@auth.verify_token
def _verify(token: str) -> dict | None:
    with engine().db.connect() as connection:  # one read per request, no ORM session
        found = keys.lookup(connection, token or "")
    if found and not keys.used_today(found[2]):
        try:
            with engine().Session() as session, session.begin():
                keys.touch(session, found[0])  # `keys list` shows the day (one write per key per day)
        except OperationalError as exc:  # a busy database: the request goes on, the day is recorded later
            log.warning("last use of key %s not recorded: %s", found[0], exc)
    return {"key_id": found[0], "role": found[1]} if found else None


@auth.get_user_roles
def _roles(user: dict) -> str:
    return user["role"]


@auth.error_processor
def _auth_error(error: HTTPError) -> Response:
    if error.status_code == 401:
        response = problem(401, "auth.unknown_key", "a valid API key is required: Authorization: Bearer <key>")
        response.headers["WWW-Authenticate"] = "Bearer"  # RFC 9110 §11.6.1
        return response
    return problem(403, "auth.wrong_role", "this API key's role may not use this path")


_KEY_RE = re.compile(s.IDEMPOTENCY_KEY_PATTERN)


def _idempotency_problem() -> Response | None:
    """Bind this write to its Idempotency-Key (`g.idempotency`), or the problem with the key."""
    key = request.headers.get("Idempotency-Key", "")
    bad = refused_char(key)
    if bad:
        return problem(422, "input.bad_text", f"Idempotency-Key: {describe(bad)} is not allowed", "Idempotency-Key")
    if not _KEY_RE.fullmatch(key):
        return problem(422, "idempotency.key_required",
                       f"Idempotency-Key: every write needs a key of {s.IDEMPOTENCY_KEY_ERROR}", "Idempotency-Key")
    raw = request.get_data(cache=True) or b"{}"
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):
        canonical = raw.decode("utf-8", "replace")
    digest = hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()
    user = auth.current_user
    assert user is not None  # (after auth)
    g.idempotency = Idempotency(key, digest, scope=user["key_id"])  # per API key
    return None


class Routes(APIBlueprint):
    """A blueprint of the API: its views are guarded by `write(role)` or `read`."""

    def write(self, role: str, idempotent: bool = True) -> Callable[[Callable], Callable]:
        """Auth for `role`, the body's type and size, then (for writes) a required
        Idempotency-Key bound to this exact request."""

        def decorate(view: Callable) -> Callable:
            @wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                bad = body_problem()
                if bad is None:
                    check_path_ids()
                if bad is None and idempotent:
                    bad = _idempotency_problem()
                return bad if bad is not None else view(*args, **kwargs)

            return self.auth_required(auth, roles=[role])(wrapper)

        return decorate

    def read(self, view: Callable) -> Callable:
        """Any key; then no refused character in the path or the query."""

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bad_url = url_strings_problem()
            if bad_url is None:
                check_path_ids()
            return bad_url if bad_url is not None else view(*args, **kwargs)

        return self.auth_required(auth)(wrapper)


def book(event: ev.Event, data: dict) -> tuple[dict, int]:
    """Book `event` on the body's `date` (default: today) under this write's Idempotency-Key."""
    g.booking_kind = event.kind  # (metrics)
    booked = engine().submit(event, day_of(data), g.idempotency)
    return booked.to_json(), 201


_DATE_RE = re.compile(s.DATE_PATTERN)  # exactly (fullmatch): not 20261128, 2026-W48-1 (fromisoformat's)
_ID_RE = re.compile(s.ID_PATTERN)


def check_path_ids() -> None:
    """Every `…_id` path parameter is an id (else 422 input.bad_id, named as in the OpenAPI
    document); a well-formed id the books do not hold is the view's 404."""
    for name, value in (request.view_args or {}).items():
        if name.endswith("_id") and not _ID_RE.fullmatch(str(value)):
            raise Invalid("input.bad_id", f"{name}: {s.ID_ERROR}, got {value!r}", name)


def genesis_day() -> date:
    """The books' first day (read once per app: it never changes)."""
    cached = current_app.extensions.get(GENESIS_DAY)
    if cached is None:
        with engine().Session() as session:
            cached = current_app.extensions[GENESIS_DAY] = engine().state_reader(session).g.genesis_day
    return cached


def parse_day(text: str, field: str) -> date:
    """A date of the request: YYYY-MM-DD exactly and a calendar date (else 422 input.bad_date);
    before the books' first day it is a day the books do not hold: 404 day.before_genesis, on
    every route (README, "The API contract")."""
    if not _DATE_RE.fullmatch(text):
        raise Invalid("input.bad_date", f"{field}: {text!r} {s.DATE_ERROR}", field)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise Invalid("input.bad_date", f"{field}: {text!r} is not a calendar date (YYYY-MM-DD)", field) from None
    first = genesis_day()
    if day < first:
        raise NotFound("day.before_genesis", f"{field}: {day} is before the books' first day {first}", field)
    return day


def day_of(data: dict) -> date | None:
    return parse_day(data["date"], "date") if data.get("date") else None


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
