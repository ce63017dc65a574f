"""Reversal (SPEC §4.10, issue 13 part 2): taking back an earlier order or transfer.

Two rules, fixed at genesis (`reverse.rule`):

- `flip` (books made before refunds after a close): every posting of the original is
  booked again with its sign flipped, with the same holder and leg. It is refused if any
  holder no longer holds what the mirror takes back (SV since converted by releases, SP
  since spent).
- `remaining` (new books): an order is taken back as what remains of what it gave, after
  the releases since (see `_remaining`); `amount_cny` refunds part of it, proportionally.
  A transfer is still reversed by `flip`.

Before any release, with every holder still holding what the order gave, `remaining`
books exactly the `flip` entry. Nothing is ever edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .. import accounts as A
from ..amounts import SP, SV, ZERO, add, div, exact_mul, fmt, mul, quantize, sub
from ..entries import Posting, Transaction
from ..errors import Conflict, Invalid, NotFound
from ..state import EventRecord, Indices, State
from ..subledger import balance
from .base import Builder, Ctx, inputs_of
from .events import EventKind, Reverse

REVERSIBLE = (EventKind.ORDER, EventKind.TRANSFER)
ONE = Decimal(1)


def reverse(state: State, ev: Reverse, ctx: Ctx) -> Transaction:
    original = state.event_record(ev.event)
    if original is None:
        raise NotFound("event.unknown", f"event: no reversible event {ev.event!r}", "event")
    if original.kind not in REVERSIBLE:
        raise Conflict("reverse.not_reversible", f"event: a {original.kind} cannot be reversed", "event")
    if original.reversed_by is not None:
        raise Conflict("reverse.already_reversed", f"event: {ev.event} was reversed by {original.reversed_by}", "event")
    if ev.amount_cny is not None:
        if original.kind != EventKind.ORDER:
            raise Invalid("reverse.partial_not_order",
                          f"amount_cny: only an order is refunded in part, {ev.event} is a {original.kind}",
                          "amount_cny")
        if ctx.params.reverse_rule == "flip":
            raise Conflict("reverse.partial_not_allowed",
                           "amount_cny: these books' rules (reverse.rule = flip) reverse whole orders only",
                           "amount_cny")
    if original.kind == EventKind.ORDER and ctx.params.reverse_rule == "remaining":
        return _remaining(state, ev, original, ctx)
    return _flip(state, ev, original, ctx)


def _flip(state: State, ev: Reverse, original: EventRecord, ctx: Ctx) -> Transaction:
    """The exact mirror, refused when a holder no longer holds what it takes back."""
    taken: dict[tuple[str, str], Decimal] = {}
    for p in original.postings:
        if p.holder is not None and p.number < 0:  # the holder gained it; the mirror takes it back
            key = (p.holder, p.account)
            taken[key] = taken.get(key, ZERO) - p.number
    for (holder_id, account), amount in sorted(taken.items()):
        holder = state.holder(holder_id)
        assert holder is not None, holder_id
        held = balance(holder, state.g, state)
        have = {A.HOLDERS_SP: held.sp, A.HOLDERS_SV_ACTIVE: held.sv_active,
                A.HOLDERS_SV_LOCKED: held.sv_locked}[account]
        if have < amount:
            currency = SP if account == A.HOLDERS_SP else SV
            raise Conflict(
                "reverse.insufficient_balance",
                f"event: {holder_id} holds {fmt(have)} {currency} in {account}, the reversal takes back {fmt(amount)}",
                "event",
            )

    b = Builder(ctx, ev.kind, f"reversal of {original.kind} {original.id}", inputs_of(ev))
    b.note("reversed_kind", original.kind)
    for p in original.postings:
        b.postings.append(type(p)(p.account, -p.number, p.currency, p.meta))
    return b.build()


@dataclass(frozen=True, slots=True)
class SinceOrder:
    """What one SV granted at the order has become by now: `sv_left` SV still active, and
    `sp_earned` SP paid to it by the releases since."""

    sv_left: Decimal
    sp_earned: Decimal


def since(state: State, at: Indices) -> SinceOrder:
    """Per SV granted when the indices were `at`: the SV left now and the SP it earned.

    One SV granted at SV index D0 is 1 ÷ D0 shares. Through each epoch ended since, those
    shares earned (S at its end − S where they started) SP per share and carried over × the
    epoch's factor; in the current epoch they earned (S − S at its start) and are worth D now.
    """
    g = state.g
    if (at.epoch, at.sv_index, at.sp_index) == (g.epoch, g.sv_index, g.sp_index):
        return SinceOrder(ONE, ZERO)  # no release since: nothing converted, nothing earned
    carry, earned, start = ONE, ZERO, at.sp_index
    for number in range(at.epoch, g.epoch):
        ended = state.epoch(number)
        earned = add(earned, mul(carry, sub(ended.sp_index_end, start)))
        carry, start = mul(carry, ended.factor), ended.sp_index_end
    earned = add(earned, mul(carry, sub(g.sp_index, start)))
    return SinceOrder(div(mul(carry, g.sv_index), at.sv_index), div(earned, at.sv_index))


class _Available:
    """What each holder still holds, as the entry's postings take from it in order."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.sv: dict[str, Decimal] = {}
        self.sp: dict[str, Decimal] = {}

    def _load(self, holder_id: str) -> None:
        if holder_id not in self.sv:
            holder = self.state.holder(holder_id)
            assert holder is not None, holder_id
            held = balance(holder, self.state.g, self.state)
            self.sv[holder_id], self.sp[holder_id] = held.sv_active, held.sp

    def take(self, holder_id: str, currency: str, wanted: Decimal) -> Decimal:
        """At most `wanted`, never more than the holder holds; the rest stays with them."""
        self._load(holder_id)
        pot = self.sv if currency == SV else self.sp
        got = min(wanted, pot[holder_id])
        pot[holder_id] -= got
        return got

    def give(self, holder_id: str, sp: Decimal) -> None:
        self._load(holder_id)
        self.sp[holder_id] += sp


def _remaining(state: State, ev: Reverse, original: EventRecord, ctx: Ctx) -> Transaction:
    """An order taken back as what remains of what it gave (README "Refunds after the day closed").

    With f = amount_cny ÷ the order's amount (1 for a whole refund), each original posting is
    booked again, sign flipped, with:
      SV grant g to a holder     → the SV left of f × g: f × g × (SV left per SV since the order),
                                   at most the holder's active SV                (un-granted)
      SP share x to a holder     → f × x, at most the holder's SP                (recovered)
      burn b                     → f × b                                          (un-burned)
      the merchant's deduction   → the un-burned f × b + every recovered share
    and, after the SP postings, per holder of an SV grant, the SP those grants earned since
    (f × g × SP per SV), at most what the holder holds after the shares above, taken back and
    burned (leg `earned`).
    Whatever a holder could not give back is stated in `unrecovered_sp` (holder:SP, ...); it is
    not created again anywhere: the merchant gets back only what was recovered.
    """
    order_cny, at = original.amount_cny, original.booked_at
    assert order_cny is not None and at is not None, original.id  # every order is recorded with both
    refund_cny = order_cny if ev.amount_cny is None else ev.amount_cny
    if refund_cny > order_cny:
        raise Invalid("reverse.amount_exceeds_order",
                      f"amount_cny: {fmt(refund_cny)} CNY is more than the order's {fmt(order_cny)} CNY", "amount_cny")
    fraction = ONE if refund_cny == order_cny else div(refund_cny, order_cny)
    refund = _Refund(_Available(state))
    refund.mirror(original.postings, fraction, since(state, at))

    b = Builder(ctx, ev.kind, _narration(original, refund_cny, order_cny), inputs_of(ev))
    b.note("reversed_kind", original.kind)
    mirrored = [Posting(p.account, number, p.currency, p.meta)
                for p, number in zip(original.postings, refund.amounts, strict=True) if number != 0]
    # SP postings first, then SV, as in the order (Beancount's booking regroups an entry's
    # postings by commodity; the entry must read back in the order it was hashed)
    first_sv = next((i for i, p in enumerate(mirrored) if p.currency == SV), len(mirrored))
    b.postings.extend(mirrored[:first_sv])
    burned_earned = ZERO
    for holder_id, sp in refund.take_earned():
        b.post(A.HOLDERS_SP, sp, holder=holder_id, leg="earned")
        burned_earned += sp
    b.post(A.SP_BURNED, -burned_earned, leg="earned")
    b.postings.extend(mirrored[first_sv:])
    if refund.unrecovered:
        b.note("unrecovered_sp", ",".join(f"{h}:{fmt(sp)}" for h, sp in sorted(refund.unrecovered.items())))
    return b.build()


class _Refund:
    """The amounts of a `remaining` reversal, posting by posting (see `_remaining`)."""

    def __init__(self, available: _Available) -> None:
        self.available = available
        self.amounts: list[Decimal] = []  # the new number of each original posting, in order
        self.earned: dict[str, Decimal] = {}  # holder -> SP their grants earned since (exact)
        self.unrecovered: dict[str, Decimal] = {}

    def _short(self, holder_id: str, owed: Decimal, got: Decimal) -> None:
        if owed > got:
            self.unrecovered[holder_id] = self.unrecovered.get(holder_id, ZERO) + owed - got

    def mirror(self, postings: tuple[Posting, ...], fraction: Decimal, grown: SinceOrder) -> None:
        merchant_refund = sv_taken = ZERO
        for p in postings:
            holder_id, number = p.holder, ZERO
            if p.account == A.HOLDERS_SV_ACTIVE and holder_id is not None:
                granted = exact_mul(-p.number, fraction)
                number = self.available.take(holder_id, SV, quantize(mul(granted, grown.sv_left), SV))
                self.earned[holder_id] = add(self.earned.get(holder_id, ZERO), mul(granted, grown.sp_earned))
                sv_taken += number
            elif p.account == A.HOLDERS_SP and holder_id is not None and p.number < 0:
                owed = quantize(exact_mul(-p.number, fraction), SP)
                number = self.available.take(holder_id, SP, owed)
                self._short(holder_id, owed, number)
                merchant_refund += number
            elif p.account == A.SP_BURNED:
                number = quantize(exact_mul(-p.number, fraction), SP)
                merchant_refund += number
            self.amounts.append(number)
        for i, p in enumerate(postings):
            if p.account == A.HOLDERS_SP and p.number > 0:  # the merchant's deduction: what came back
                assert p.holder is not None, p
                self.amounts[i] = -merchant_refund
                self.available.give(p.holder, merchant_refund)
            elif p.account == A.SV_GRANTED:
                self.amounts[i] = -sv_taken

    def take_earned(self) -> list[tuple[str, Decimal]]:
        """(holder, SP) taken back of what their grants earned, after the postings above."""
        out = []
        for holder_id, exact in self.earned.items():
            owed = quantize(exact, SP)
            taken = self.available.take(holder_id, SP, owed)
            self._short(holder_id, owed, taken)
            out.append((holder_id, taken))
        return out


def _narration(original: EventRecord, refund_cny: Decimal, order_cny: Decimal) -> str:
    if refund_cny == order_cny:
        return f"reversal of {original.kind} {original.id}"
    return f"reversal of {fmt(refund_cny)} of {fmt(order_cny)} CNY of {original.kind} {original.id}"

