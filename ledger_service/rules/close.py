"""The daily close (SPEC §4.6), the value of a point (§3) and the genesis entry.

Closing business day d books, in this order:
  1. `release` of day d, dated d, at the value of day d:
         SV_total = active SV (the control account)
         R_d      = min(daily_release, cap − issued, SV_total ÷ value)   rounded down to 0.0001 SP
         C_d      = R_d × value                                            rounded to 0.0001 SV
     one transaction of four postings whatever the number of holders, carrying the
     SV and SP indices after it (see `subledger`);
  2. the `price` of day d + 1, dated d + 1: pool ÷ circulating after the release,
     8 decimals, half even; `sp.initial_value` while nothing circulates.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from .. import accounts as A
from ..amounts import SP, SV, ZERO, div, exact_mul, floor, fmt, quantize, quantize_value
from ..config import Params
from ..entries import Price, Transaction, meta_tuple
from ..state import Globals, supply_of
from ..subledger import after_release
from .base import Builder, Ctx
from .events import EventKind


def value_of(g: Globals, params: Params) -> Decimal:
    """pool CNY ÷ circulating SP, or the initial value while nothing circulates."""
    supply = supply_of(g, params.sp_cap)
    if supply["circulating"] <= 0:
        return quantize_value(params.sp_initial_value)
    return quantize_value(div(supply["pool_cny"], supply["circulating"]))


def release_amounts(g: Globals, params: Params) -> tuple[Decimal, Decimal]:
    """(SP released, SV converted) by the release of the open day."""
    active_sv = -g.balance(A.HOLDERS_SV_ACTIVE)
    issued = supply_of(g, params.sp_cap)["issued"]
    if active_sv <= 0 or g.total_shares == 0:
        return ZERO, ZERO
    limits = [params.sp_daily_release, params.sp_cap - issued]
    if g.value > 0:
        limits.append(floor(div(active_sv, g.value), SP))
    released_sp = max(ZERO, min(limits))
    converted_sv = min(active_sv, quantize(exact_mul(released_sp, g.value), SV))
    return released_sp, converted_sv


def release(g: Globals, ctx: Ctx) -> Transaction:
    released_sp, converted_sv = release_amounts(g, ctx.params)
    after = after_release(g, released_sp, converted_sv)
    b = Builder(ctx, EventKind.RELEASE, f"daily release of {ctx.day.isoformat()}: {fmt(released_sp)} SP", [])
    b.note("value", g.value)
    b.note("sv_total", -g.balance(A.HOLDERS_SV_ACTIVE))
    b.note("released_sp", released_sp)
    b.note("converted_sv", converted_sv)
    b.note("sv_index", after.sv_index)
    b.note("sp_index", after.sp_index)
    b.note("epoch", after.epoch)
    if after.ended is not None:
        b.note("epoch_factor", after.ended.factor)
    # The control accounts move once; each holder's share follows from the indices.
    b.post(A.HOLDERS_SV_ACTIVE, converted_sv, aggregate=True)
    b.post(A.SV_CONVERTED, -converted_sv)
    b.post(A.SP_RELEASED, released_sp)
    b.post(A.HOLDERS_SP, -released_sp, aggregate=True)
    return b.build()


def price(g: Globals, day: date, seq: int, params: Params) -> Price:
    supply = supply_of(g, params.sp_cap)
    meta = meta_tuple([
        ("kind", EventKind.PRICE),
        ("seq", str(seq)),
        ("pool_cny", supply["pool_cny"]),
        ("circulating_sp", supply["circulating"]),
    ])
    return Price(day, value_of(g, params), meta)


def genesis(params: Params, day: date, ctx: Ctx, absent: frozenset[str] = frozenset()) -> Transaction:
    """The genesis entry fixing `params`. `absent`: parameters added later (`config.LEGACY`) that
    an older genesis entry lacks; they are left out, so those books re-derive their genesis as written."""
    b = Builder(ctx, EventKind.GENESIS, f"genesis: rules {params.profile} in force from {day.isoformat()}", [])
    for key, value in params.to_meta().items():
        if key not in absent:
            b.note(key, value)
    return b.build()
