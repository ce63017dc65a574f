"""SP leaving a holder: transfers (SPEC §4.7), payouts (§4.8), redemptions (§4.9).

Payouts and redemptions take CNY out of the pool at the day's value, rounded
down to the fen, so they never lower the value of the points left.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from .. import accounts as A
from ..amounts import CNY, exact_mul, floor, fmt
from ..entries import Transaction
from ..errors import Conflict, Invalid, NotFound
from ..state import Payout, State
from .base import Builder, Ctx, any_holder, inputs_of, require_sp
from .events import EventKind, PayoutCancel, PayoutRequest, PayoutSettle, Redeem, Transfer


def transfer(state: State, ev: Transfer, ctx: Ctx) -> Transaction:
    if ev.from_holder == ev.to_holder:
        raise Invalid("transfer.same_holder", "to: a transfer needs two different holders", "to")
    source = any_holder(state, ev.from_holder, "from")
    target = any_holder(state, ev.to_holder, "to")
    require_sp(state, source, ev.sp, "sp", "transfer.insufficient_sp")
    b = Builder(ctx, ev.kind, f"{fmt(ev.sp)} SP from {source.id} to {target.id}", inputs_of(ev))
    b.post(A.HOLDERS_SP, ev.sp, holder=source.id, leg="from")
    b.post(A.HOLDERS_SP, -ev.sp, holder=target.id, leg="to")
    return b.build()


def _cash_value(state: State, sp: Decimal, rule: str) -> Decimal:
    value = state.g.value
    cny = floor(exact_mul(sp, value), CNY)
    if cny == 0:
        raise Invalid(rule, f"sp: {fmt(sp)} SP is worth less than 0.01 CNY at {fmt(value)} CNY/SP", "sp")
    pool = state.g.balance(A.POOL)
    if cny > pool:  # cannot happen while value = pool ÷ circulating; refused rather than assumed
        raise Conflict("pool.insufficient", f"sp: the pool holds {fmt(pool)} CNY, {fmt(cny)} CNY needed", "sp")
    return cny


def _retire(state: State, holder_id: str, sp: Decimal, ctx: Ctx, kind: EventKind, inputs: list[tuple[str, str]],
            narration: Callable[[str, Decimal], str]) -> tuple[Builder, Decimal]:
    """SP leaving circulation at the day's value: the shared half of payouts and redemptions."""
    holder = any_holder(state, holder_id, "holder")
    require_sp(state, holder, sp, "sp", f"{kind}.insufficient_sp")
    cny = _cash_value(state, sp, f"{kind}.too_small")
    b = Builder(ctx, kind, narration(holder.id, cny), inputs)
    b.note("value", state.g.value)
    b.note("amount_cny", cny)
    b.post(A.HOLDERS_SP, sp, holder=holder.id, leg="redeemed")
    b.post(A.SP_REDEEMED, -sp)
    b.post(A.POOL, -cny)
    b.post(A.POOL_EQUITY, cny)
    return b, cny


def payout_request(state: State, ev: PayoutRequest, ctx: Ctx) -> Transaction:
    b, cny = _retire(state, ev.holder, ev.sp, ctx, ev.kind, inputs_of(ev),
                     lambda who, cny: f"payout {ctx.event_id}: {fmt(ev.sp)} SP of {who} for {fmt(cny)} CNY")
    b.post(A.POOL_PAYOUTS, cny)  # still in the pool's bank account, reserved for this payout
    b.post(A.PAYOUTS_PAYABLE, -cny)
    return b.build()


def _pending(state: State, payout_id: str) -> Payout:
    found = state.payout(payout_id)
    if found is None:
        raise NotFound("payout.unknown", f"payout: no payout {payout_id!r}", "payout")
    if found.status != "requested":
        raise Conflict("payout.not_pending", f"payout: {payout_id} is already {found.status}", "payout")
    return found


def payout_settle(state: State, ev: PayoutSettle, ctx: Ctx) -> Transaction:
    pay = _pending(state, ev.payout)
    b = Builder(ctx, ev.kind, f"payout {pay.id} paid by the bank, reference {ev.bank_reference}", inputs_of(ev))
    b.note("holder", pay.holder)
    b.note("amount_cny", pay.cny)
    b.post(A.POOL_PAYOUTS, -pay.cny)
    b.post(A.PAYOUTS_PAYABLE, pay.cny)
    return b.build()


def payout_cancel(state: State, ev: PayoutCancel, ctx: Ctx) -> Transaction:
    pay = _pending(state, ev.payout)
    b = Builder(ctx, ev.kind, f"payout {pay.id} cancelled: {fmt(pay.sp)} SP back to {pay.holder}", inputs_of(ev))
    b.note("holder", pay.holder)
    b.note("amount_cny", pay.cny)
    b.post(A.HOLDERS_SP, -pay.sp, holder=pay.holder, leg="restored")
    b.post(A.SP_REDEEMED, pay.sp)
    b.post(A.POOL, pay.cny)
    b.post(A.POOL_PAYOUTS, -pay.cny)
    b.post(A.POOL_EQUITY, -pay.cny)
    b.post(A.PAYOUTS_PAYABLE, pay.cny)
    return b.build()


def redeem(state: State, ev: Redeem, ctx: Ctx) -> Transaction:
    b, cny = _retire(state, ev.holder, ev.sp, ctx, ev.kind, inputs_of(ev),
                     lambda who, cny: f"{who} redeems {fmt(ev.sp)} SP for goods")
    b.post(A.PLATFORM_CASH, cny)
    b.post(A.REDEMPTION_INCOME, -cny)
    return b.build()
