"""An order and every split of its rebate (SPEC §4.4, worked examples §8).

    R = amount × merchant's rebate rate                  (CNY, to 0.01)
    D = R ÷ value of the day                             (SP deducted from the merchant)

If the buyer is active:
    buyer             consumer_multiplier × R            SV
    merchant          merchant_multiplier × R            SV
    direct referrer   online:  online_sv_rate × G        SV      (G = buyer's SV gain)
    (if active)       offline: offline_sp_rate × G ÷ v   SP out of D
    team (级差)        (r − highest paid below) × G       SV, walking up from the referrer
    store referrer    merchant_sp_rate × D               SP out of D   (offline stores)
    region partner    partner_sp_rate × D                SP out of D   (purchase in last N days; the partner
                                                                        of the city-level unit containing the
                                                                        region under region.match "city")
    burn              the rest of D
An inactive buyer earns nothing, and then all of D is burned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from .. import accounts as A
from ..amounts import CNY, QUANTUM, SP, SV, ZERO, div, exact_mul, floor, fmt, quantize
from ..config import DEPOSIT_CASH_PAID, DEPOSIT_SP_HELD, ROLES, Params
from ..entries import Transaction
from ..errors import Conflict
from ..state import Holder, State
from ..subledger import balance
from .base import Builder, Ctx, inputs_of, member, merchant, require_value
from .events import Order
from .partner_regions import partner_region, require_known

# A limit on the 级差 walk: no referral chain is followed further than this.
MAX_TEAM_DEPTH = 10_000


# The entry metadata key of a store's first order under the "sp_held" deposit rule: the SP it
# held then (at least the deposit). `apply` records the opening (`Holder.opened`) from it.
OPENING_SP = "opening_sp"


@dataclass(frozen=True, slots=True)
class Opening:
    """Whether a store may take orders now, and the numbers that say why (`opening`)."""

    rule: str  # merchant.deposit_rule
    deposit_sp: Decimal | None  # SP worth merchant.deposit_value at the value, rounded up (None: value 0)
    deposit_met: bool  # the deposit is met: now, or (sp_held) at the store's first order
    can_take_orders: bool


def opening(store: Holder, held_sp: Decimal, value: Decimal, params: Params) -> Opening:
    """When a store may take orders (`merchant.deposit_rule`, fixed at genesis).

    "sp_held" (issue 13; the source: 「商家入驻需持有价值500元的共享积分作为保证金；数量低于0时，
    消费者无法在该商家下单」): its first order needs SP held worth at least `deposit_value` CNY at
    the day's value (held_sp × value ≥ deposit_value, i.e. held_sp ≥ deposit_sp), wherever the
    SP came from (a deposit, a transfer). That order opens the store (`Holder.opened`); from
    then on it takes orders while it holds any SP (held_sp > 0: 0.0001 SP, the smallest
    deduction), each order needing its own D (`order.insufficient_sp`).
    "cash_paid" (books made before): its deposits paid to the pool reach `deposit_value`.
    """
    need_cny = params.merchant_deposit_value
    deposit_sp = quantize(div(need_cny, value), SP, ROUND_CEILING) if value > 0 else None
    if params.merchant_deposit_rule == DEPOSIT_CASH_PAID:
        met = store.deposits_cny >= need_cny
        return Opening(DEPOSIT_CASH_PAID, deposit_sp, met, met)
    met = store.opened is not None or (value > 0 and exact_mul(held_sp, value) >= need_cny)
    return Opening(DEPOSIT_SP_HELD, deposit_sp, met, met and held_sp > 0)


def deduction(amount_cny: Decimal, rebate_rate: Decimal, value: Decimal) -> tuple[Decimal, Decimal]:
    """An order's rebate R (CNY) and the SP D it deducts from the store (module docstring)."""
    rebate_cny = quantize(exact_mul(amount_cny, rebate_rate), CNY)
    return rebate_cny, quantize(div(rebate_cny, value), SP)


def max_order_cny(held_sp: Decimal, rebate_rate: Decimal, value: Decimal) -> Decimal | None:
    """The largest order amount (CNY, to the fen) whose deduction `held_sp` covers at `value`:
    D(max) ≤ held_sp < D(max + 0.01). None: no limit (a rebate rate of 0 deducts nothing)."""
    if rebate_rate == 0:
        return None
    fen, half_sp = QUANTUM[CNY], QUANTUM[SP] / 2
    # D = round(R ÷ value) ≤ held_sp  ⇔  R ≤ (held_sp + 0.00005) × value (the last step: half-even)
    rebate_cny = floor(exact_mul(held_sp + half_sp, value), CNY)
    for _ in range(3):
        if quantize(div(rebate_cny, value), SP) <= held_sp:
            break
        rebate_cny -= fen
    # R = round(amount × rate) ≤ rebate_cny  ⇔  amount ≤ (rebate_cny + 0.005) ÷ rate (idem)
    amount_cny = floor(div(rebate_cny + fen / 2, rebate_rate), CNY)
    for _ in range(3):
        if quantize(exact_mul(amount_cny, rebate_rate), CNY) <= rebate_cny:
            break
        amount_cny -= fen
    assert amount_cny >= 0 and deduction(amount_cny, rebate_rate, value)[1] <= held_sp, (held_sp, rebate_rate, value)
    return amount_cny


def _refuse_closed(store: Holder, held_sp: Decimal, value: Decimal, gate: Opening, params: Params) -> Conflict:
    """The refusal of an order at a store that may not take orders (`opening`)."""
    need_cny = fmt(params.merchant_deposit_value)
    if gate.rule == DEPOSIT_CASH_PAID:
        return Conflict("merchant.deposit_short", f"merchant: {store.id} has deposited {fmt(store.deposits_cny)} CNY, "
                                                  f"{need_cny} CNY needed before taking orders", "merchant")
    if gate.deposit_met:  # opened, and holds no SP now
        return Conflict("merchant.no_sp", f"merchant: {store.id} holds 0 SP; a store takes no orders while it holds "
                                          "no SP (merchant.deposit_rule sp_held): top it up with a deposit or a "
                                          "transfer", "merchant")
    held_cny = floor(exact_mul(held_sp, value), CNY)
    need_sp = f" = {fmt(gate.deposit_sp)} SP" if gate.deposit_sp is not None else ""
    return Conflict("merchant.deposit_short",
                    f"merchant: {store.id} holds {fmt(held_sp)} SP worth {fmt(held_cny)} CNY at {fmt(value)} CNY/SP; "
                    f"a store takes its first order once it holds SP worth {need_cny} CNY{need_sp} "
                    "(merchant.deposit_rule sp_held)", "merchant")


def partner_qualifies(partner: Holder, day, params: Params) -> bool:
    """SPEC §4.4: a partner earns only with a purchase in the last `repurchase_days` days.

    A purchase on day p qualifies on days p .. p + repurchase_days (inclusive).
    """
    if partner.last_purchase is None or not partner.active:
        return False
    return (day - partner.last_purchase).days <= params.region_repurchase_days


# The team rates of the Params last used (`Params.team_rate` by role, `Params.top_team_rate`): a
# Params is frozen, so its rates are read once rather than at every ancestor of every order.
_team_rates: tuple[Params, dict[str, Decimal], Decimal] | None = None


def _rates_of(params: Params) -> tuple[dict[str, Decimal], Decimal]:
    global _team_rates
    cached = _team_rates
    if cached is None or cached[0] is not params:
        cached = _team_rates = (params, {role: params.team_rate(role) for role in ROLES}, params.top_team_rate)
    return cached[1], cached[2]


def team_rewards(state: State, first: str | None, gain_sv: Decimal, params: Params) -> list[tuple[str, Decimal]]:
    """The differential walk: each active ancestor whose rate beats the highest paid below."""
    rates, top = _rates_of(params)
    highest = ZERO
    paid: list[tuple[str, Decimal]] = []
    node = first
    for _ in range(MAX_TEAM_DEPTH):
        if node is None or highest >= top:
            break
        ancestor = state.holder(node)
        assert ancestor is not None, node  # referrers are checked to exist at registration
        rate = rates.get(ancestor.role)
        if rate is None:  # (a role outside ROLES: as Params.team_rate reads it)
            rate = params.team_rate(ancestor.role)
        if ancestor.active and rate > highest:
            paid.append((ancestor.id, quantize((rate - highest) * gain_sv, SV)))
            highest = rate
        node = ancestor.referrer
    return paid


def order(state: State, ev: Order, ctx: Ctx) -> Transaction:
    p = ctx.params
    if state.order_event(ev.order_id) is not None:
        raise Conflict("order.duplicate_id", f"order_id: order {ev.order_id!r} is already booked", "order_id")
    buyer = member(state, ev.buyer, "buyer")
    store = merchant(state, ev.merchant, "merchant")
    require_known(ev.ship_region, "ship_region", p)
    held_sp = balance(store, state.g, state).sp
    gate = opening(store, held_sp, state.g.value, p)
    if not gate.can_take_orders:
        raise _refuse_closed(store, held_sp, state.g.value, gate, p)
    value = require_value(state, "merchant")
    assert store.rebate_rate is not None, store.id  # every store opens with its rate
    rebate_cny, deducted_sp = deduction(ev.amount_cny, store.rebate_rate, value)
    if held_sp < deducted_sp:
        largest = max_order_cny(held_sp, store.rebate_rate, value)
        assert largest is not None  # a rebate rate of 0 deducts nothing
        raise Conflict("order.insufficient_sp", f"merchant: {store.id} holds {fmt(held_sp)} SP, {fmt(deducted_sp)} SP "
                                                f"needed (it covers an order of at most {fmt(largest)} CNY today)",
                       "merchant")

    b = Builder(ctx, ev.kind, f"order {ev.order_id}: {fmt(ev.amount_cny)} CNY at {store.id}", inputs_of(ev))
    b.note("channel", store.channel)
    b.note("value", value)
    b.note("rebate_cny", rebate_cny)
    b.note("deducted_sp", deducted_sp)
    if gate.rule == DEPOSIT_SP_HELD and store.opened is None:
        b.note(OPENING_SP, held_sp)  # its first order: it opens holding at least the deposit
    b.post(A.HOLDERS_SP, deducted_sp, holder=store.id, leg="deduct")
    split = _Split(b, deducted_sp)
    if buyer.active:
        _split_rebate(state, ev, ctx, buyer, store, split, rebate_cny, value)

    assert split.left_sp >= 0, (ev, split.left_sp)
    b.post(A.SP_BURNED, -split.left_sp, leg="burn", merchant=store.id)
    total_sv = ZERO
    for holder_id, leg, sv in split.granted_sv:
        b.post(A.HOLDERS_SV_ACTIVE, -sv, holder=holder_id, leg=leg)
        total_sv += sv
    b.post(A.SV_GRANTED, total_sv)
    return b.build()


@dataclass
class _Split:
    """An order's rebate being split: D's SP shares are posted as they are found (what is left
    is burned); the SV grants are collected and posted after the burn."""

    b: Builder
    left_sp: Decimal
    granted_sv: list[tuple[str, str, Decimal]] = field(default_factory=list)  # (holder, leg, SV)

    def grant(self, holder_id: str, leg: str, sv: Decimal) -> None:
        self.granted_sv.append((holder_id, leg, sv))

    def share(self, holder_id: str, leg: str, sp: Decimal, region: str | None = None) -> None:
        """Post `sp` (at most what is left of D) to the holder (a partner's with its region)."""
        share = min(self.left_sp, sp)
        if region is None:
            self.b.post(A.HOLDERS_SP, -share, holder=holder_id, leg=leg)
        else:
            self.b.post(A.HOLDERS_SP, -share, holder=holder_id, leg=leg, region=region)
        self.left_sp -= share


def _split_rebate(state: State, ev: Order, ctx: Ctx, buyer: Holder, store: Holder, split: _Split,
                  rebate_cny: Decimal, value: Decimal) -> None:
    """The splits of an active buyer's order, in the order of the module docstring."""
    p = ctx.params
    deducted_sp = split.left_sp
    gain_sv = quantize(p.sv_consumer_multiplier * rebate_cny, SV)
    split.grant(buyer.id, "buyer", gain_sv)
    split.grant(store.id, "merchant", quantize(p.sv_merchant_multiplier * rebate_cny, SV))

    referrer = state.holder(buyer.referrer) if buyer.referrer else None
    if referrer is not None and referrer.active:
        if store.channel == "online":
            split.grant(referrer.id, "referrer", quantize(p.referral_online_sv_rate * gain_sv, SV))
        else:
            split.share(referrer.id, "referrer", quantize(div(p.referral_offline_sp_rate * gain_sv, value), SP))

    for ancestor, reward_sv in team_rewards(state, buyer.referrer, gain_sv, p):
        split.grant(ancestor, "team", reward_sv)

    if store.channel == "offline" and store.store_referrer:
        store_referrer = state.holder(store.store_referrer)
        if store_referrer is not None and store_referrer.active:
            split.share(store_referrer.id, "store_referrer", quantize(p.referral_merchant_sp_rate * deducted_sp, SP))

    # region.match "city": the partner of the city-level unit containing the region; "exact": of the region itself
    region = partner_region(store.region if store.channel == "offline" else ev.ship_region, p)
    partner_id = state.partner_of(region) if region else None
    partner = state.holder(partner_id) if partner_id else None
    if partner is not None and partner_qualifies(partner, ctx.day, p):
        assert region is not None  # a partner is found by a region
        split.share(partner.id, "partner", quantize(p.region_partner_sp_rate * deducted_sp, SP), region=region)
