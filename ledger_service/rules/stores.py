"""Stores and the pool's money in: opening a store (SPEC §4.3), deposits (§4.5)."""

from __future__ import annotations

from .. import accounts as A
from ..amounts import SP, div, floor, fmt
from ..entries import Transaction
from ..errors import Conflict, Invalid
from ..state import State, supply_of
from .base import Builder, Ctx, inputs_of, member, merchant, new_id, require_value
from .events import Deposit, OpenStore
from .partner_regions import require_known


def open_store(state: State, ev: OpenStore, ctx: Ctx) -> Transaction:
    new_id(state, ev.merchant, "merchant")
    owner = member(state, ev.owner, "owner")
    if not owner.active:
        raise Conflict("store.owner_inactive", f"owner: {owner.id} must be active (buy a pack) to open a store",
                       "owner")
    if ev.referrer is not None:
        member(state, ev.referrer, "referrer")
    require_known(ev.region, "region", ctx.params)
    b = Builder(ctx, ev.kind, f"open {ev.channel} store {ev.merchant} of {owner.id} in {ev.region}", inputs_of(ev))
    return b.build()


def deposit(state: State, ev: Deposit, ctx: Ctx) -> Transaction:
    if (ev.merchant is None) == (not ev.platform):
        raise Invalid("deposit.payer", "merchant: give either a merchant or \"platform\": true", "merchant")
    b = Builder(ctx, ev.kind, "", inputs_of(ev))
    b.post(A.POOL, ev.amount_cny)
    b.post(A.POOL_EQUITY, -ev.amount_cny)
    if ev.platform:
        b.narration = f"platform injects {fmt(ev.amount_cny)} CNY into the pool"
        return b.build()
    assert ev.merchant is not None  # (checked above: a merchant or the platform)
    store = merchant(state, ev.merchant, "merchant")
    value = require_value(state, "amount_cny")
    sold_sp = floor(div(ev.amount_cny, value), SP)  # rounded down: the pool keeps the crumb
    if sold_sp == 0:
        raise Invalid("deposit.too_small", f"amount_cny: buys no SP at {fmt(value)} CNY/SP", "amount_cny")
    supply = supply_of(state.g, ctx.params.sp_cap)
    room = ctx.params.sp_cap - supply["issued"]
    if sold_sp > room:
        raise Conflict("sp.cap_reached",
                       f"amount_cny: buys {fmt(sold_sp)} SP, only {fmt(room)} SP left under the cap", "amount_cny")
    b.narration = f"deposit of {store.id}: {fmt(ev.amount_cny)} CNY buys {fmt(sold_sp)} SP"
    b.note("value", value)
    b.post(A.SP_SOLD, sold_sp)
    b.post(A.HOLDERS_SP, -sold_sp, holder=store.id, leg="deposit")
    return b.build()
