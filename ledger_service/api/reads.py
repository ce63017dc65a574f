"""The reads: a holder, a merchant, the supply, an event, and the service's health."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from . import schemas as s
from .common import Routes, engine, jsonable, parse_day

bp = Routes("reads", __name__,
            tag={"name": "Reads", "description": "Holders, merchants, the supply, events, health"})


@bp.get("/v1/holders/<holder_id>")
@bp.read
@bp.output(s.HolderOut)
@bp.doc(summary="A holder's locked and active SV, SP and its value in CNY")
def holder(holder_id):
    return {k: jsonable(v) for k, v in engine().holder(holder_id).items()}


@bp.get("/v1/merchants/<merchant_id>")
@bp.read
@bp.output(s.MerchantOut)
@bp.doc(summary="A merchant: holder fields, deposits and whether it can take orders")
def merchant(merchant_id):
    return {k: jsonable(v) for k, v in engine().merchant(merchant_id).items()}


@bp.get("/v1/supply")
@bp.read
@bp.input(s.SupplyQuery, location="query", arg_name="query")
@bp.output(s.SupplyOut)
@bp.doc(summary="The SP supply report as of a date (cap, issued, burned, circulating, pool, value)")
def supply(query):
    day = parse_day(query["date"], "date") if query.get("date") else None
    return engine().supply(day)


@bp.get("/v1/events/<event_id>")
@bp.read
@bp.output(s.EventDetailOut)
@bp.doc(summary="A booked event with its journal entry and hash")
def event(event_id):
    return engine().event(event_id)


@bp.get("/health")
@bp.output(s.HealthOut)
@bp.doc(summary="Journal head and database state")
def health():
    try:
        journal = engine().journal_state()
        status = {"ok": "ok", "behind": "degraded", "fault": "fault"}[journal["journal"]]
        body = {"status": status, "journal_head": engine().head(), "database": "ok", **journal}
    except OperationalError:
        return {"status": "down", "database": "unavailable"}, 503
    return body, (200 if status == "ok" else 503)
