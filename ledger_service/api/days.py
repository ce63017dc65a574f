"""The daily close (SPEC §4.6): close every open business day up to a date."""

from __future__ import annotations

from flask import g

from ..engine import closed_days_json
from . import schemas as s
from .common import Routes, engine, parse_day

bp = Routes("days", __name__,
            tag={"name": "Days", "description": "The daily close and release"})


@bp.post("/v1/days/<day>/close")
@bp.write("finance")
@bp.output(s.CloseOut, status_code=201)
@bp.doc(summary="Close every open business day up to this date (the daily release)")
def close(day):
    through = parse_day(day, "day")
    g.booking_kind = "close"  # (metrics)
    booked = engine().close_days(through, g.idempotency)
    return closed_days_json(booked, through), 201
