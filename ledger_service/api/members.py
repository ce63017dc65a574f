"""Members: registration, gift packs, grading (SPEC §4.1, §4.1b, §4.2)."""

from __future__ import annotations

from ..rules import events as ev
from . import schemas as s
from .common import Routes, book

bp = Routes("members", __name__,
            tag={"name": "Members", "description": "Registration, gift packs and grading"})


@bp.post("/v1/members")
@bp.write("storefront")
@bp.input(s.MemberIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Register a member", responses={409: "refused by the rules", 422: "invalid input"})
def register(data):
    return book(ev.Register(data["id"], data.get("referrer"), data.get("region")), data)


@bp.post("/v1/members/<member_id>/packs")
@bp.write("storefront")
@bp.input(s.PackIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Buy a gift pack (activation or partner)")
def buy_pack(member_id, data):
    return book(ev.BuyPack(member_id, data["kind"], data.get("region")), data)


@bp.post("/v1/members/<member_id>/role")
@bp.write("finance")
@bp.input(s.RoleIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Grade a member")
def set_role(member_id, data):
    return book(ev.SetRole(member_id, data["role"]), data)
