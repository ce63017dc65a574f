"""SV for completed tasks and campaigns (issue 13, part 3): finance's `grant` event."""

from __future__ import annotations

from ..rules import events as ev
from . import schemas as s
from .common import Routes, book

bp = Routes("grants", __name__,
            tag={"name": "Grants", "description": "SV for completed tasks and campaigns"})


@bp.post("/v1/grants")
@bp.write("finance")
@bp.input(s.GrantIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Grant a member SV for a completed task or a campaign (active or locked as the member is), "
                "within the per-holder-per-day and per-campaign ceilings of the rules")
def grant(data):
    return book(ev.Grant(data["holder"], data["sv"], data["reason"], data.get("campaign"), data.get("ref")), data)
