"""Reversal (SPEC §4.10): the exact mirror of an earlier order or transfer.

Every posting of the original is booked again with its sign flipped, with the
same holder and leg. It is refused if any holder no longer holds what the mirror
takes back (SV since converted by releases, SP since spent). Nothing is edited.
"""

from __future__ import annotations

from decimal import Decimal

from .. import accounts as A
from ..amounts import SP, SV, ZERO, fmt
from ..entries import Transaction
from ..errors import Conflict, NotFound
from ..state import State
from ..subledger import balance
from .base import Builder, Ctx, inputs_of
from .events import EventKind, Reverse

REVERSIBLE = (EventKind.ORDER, EventKind.TRANSFER)


def reverse(state: State, ev: Reverse, ctx: Ctx) -> Transaction:
    original = state.event_record(ev.event)
    if original is None:
        raise NotFound("event.unknown", f"event: no reversible event {ev.event!r}", "event")
    if original.kind not in REVERSIBLE:
        raise Conflict("reverse.not_reversible", f"event: a {original.kind} cannot be reversed", "event")
    if original.reversed_by is not None:
        raise Conflict("reverse.already_reversed", f"event: {ev.event} was reversed by {original.reversed_by}", "event")

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
