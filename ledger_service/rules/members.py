"""Members: registration (SPEC §4.1), grading (§4.1b) and gift packs (§4.2)."""

from __future__ import annotations

from .. import accounts as A
from ..amounts import CNY, SV, quantize
from ..entries import Transaction
from ..errors import Conflict, Invalid
from ..state import State
from .base import Builder, Ctx, inputs_of, member, new_id
from .events import BuyPack, Register, SetRole
from .partner_regions import require_city, require_known


def register(state: State, ev: Register, ctx: Ctx) -> Transaction:
    p = ctx.params
    new_id(state, ev.member, "member")
    referrer = member(state, ev.referrer, "referrer") if ev.referrer else None
    require_known(ev.region, "region", p)
    # A new id cannot be anyone's ancestor yet, so a referral chain can never loop.
    narration = f"register {ev.member}" + (f" referred by {referrer.id}" if referrer else "")
    b = Builder(ctx, ev.kind, narration, inputs_of(ev))
    grant = p.sv_registration_grant
    b.post(A.HOLDERS_SV_LOCKED, -grant, holder=ev.member, leg="registration")
    b.post(A.SV_GRANTED, grant)
    if referrer is not None and p.sv_referrer_registration_grant:
        bonus = p.sv_referrer_registration_grant
        account = A.HOLDERS_SV_ACTIVE if referrer.active else A.HOLDERS_SV_LOCKED
        b.post(account, -bonus, holder=referrer.id, leg="referrer")
        b.post(A.SV_GRANTED, bonus)
    return b.build()


def set_role(state: State, ev: SetRole, ctx: Ctx) -> Transaction:
    who = member(state, ev.member, "member")
    b = Builder(ctx, ev.kind, f"grade {who.id} as {ev.role}", inputs_of(ev))
    b.note("previous_role", who.role)
    return b.build()


def buy_pack(state: State, ev: BuyPack, ctx: Ctx) -> Transaction:
    p = ctx.params
    who = member(state, ev.member, "member")
    if ev.pack == "partner":
        if ev.region is None:
            raise Invalid("pack.region_required", "region: a partner pack appoints the partner of one region", "region")
        require_city(ev.region, "region", p)
        taken = state.partner_of(ev.region)
        if taken is not None:
            raise Conflict("region.partner_taken", f"region: {ev.region} already has partner {taken}", "region")
    elif ev.region is not None:
        raise Invalid("pack.region_not_allowed", "region: only a partner pack takes a region", "region")

    price_cny = p.pack_price(ev.pack)
    pool_cny = quantize(price_cny * p.pack_pool_share, CNY)
    b = Builder(ctx, ev.kind, f"{ev.pack} pack for {who.id}", inputs_of(ev))
    b.post(A.PLATFORM_CASH, price_cny - pool_cny)
    b.post(A.PACK_INCOME, -(price_cny - pool_cny))
    b.post(A.POOL, pool_cny)
    b.post(A.POOL_EQUITY, -pool_cny)
    if not who.active and who.sv_locked:
        b.post(A.HOLDERS_SV_LOCKED, who.sv_locked, holder=who.id, leg="unlock")
        b.post(A.HOLDERS_SV_ACTIVE, -who.sv_locked, holder=who.id, leg="unlock")
    returned_sv = quantize(price_cny * p.pack_activation_sv_ratio, SV)
    b.post(A.HOLDERS_SV_ACTIVE, -returned_sv, holder=who.id, leg="pack")
    b.post(A.SV_GRANTED, returned_sv)
    return b.build()
