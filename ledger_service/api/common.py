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
from ..errors import Invalid
from ..rules import events as ev
from ..store import keys
from ..text import describe, refused_char
from . import schemas as s
from .guards import body_problem, url_strings_problem
from .problems import problem

ENGINE = "ledger_engine"  # the app's extension holding its Engine
log = logging.getLogger(__name__)

auth = HTTPTokenAuth(scheme="Bearer", description="an API key from `ledger-service keys create`")


def engine() -> Engine:
    """The engine of the app serving this request."""
    return current_app.extensions[ENGINE]


@auth.verify_token
def _verify(token: str) -> dict | None:
    with engine().Session() as session:
        found = keys.identify(session, token or "")
    if found:
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
        return problem(401, "auth.unknown_key", "a valid API key is required: Authorization: Bearer <key>")
    return problem(403, "auth.wrong_role", "this API key's role may not use this path")


def _idempotency_problem() -> Response | None:
    """Bind this write to its Idempotency-Key (`g.idempotency`), or the problem with the key."""
    key = request.headers.get("Idempotency-Key", "")
    if not key or len(key) > 200:
        return problem(422, "idempotency.key_required",
                       "Idempotency-Key: every write needs a key of 1 to 200 characters", "Idempotency-Key")
    bad = refused_char(key)
    if bad:
        return problem(422, "input.bad_text", f"Idempotency-Key: {describe(bad)} is not allowed", "Idempotency-Key")
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
            return bad_url if bad_url is not None else view(*args, **kwargs)

        return self.auth_required(auth)(wrapper)


def book(event: ev.Event, data: dict) -> tuple[dict, int]:
    """Book `event` on the body's `date` (default: today) under this write's Idempotency-Key."""
    booked = engine().submit(event, day_of(data), g.idempotency)
    return booked.to_json(), 201


_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")  # exactly: not 20261128, 2026-W48-1 (fromisoformat's)


def parse_day(text: str, field: str) -> date:
    if not _DATE_RE.match(text):
        raise Invalid("input.bad_date", f"{field}: {text!r} {s.DATE_ERROR}", field)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid("input.bad_date", f"{field}: {text!r} is not a calendar date (YYYY-MM-DD)", field) from None


def day_of(data: dict) -> date | None:
    return parse_day(data["date"], "date") if data.get("date") else None


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
