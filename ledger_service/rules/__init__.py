"""The rules: pure functions from (state, event, context) to one balanced transaction.

Nothing in this package does IO. `book` raises a `Refusal` (see `errors`) when an
event breaks a rule, and otherwise returns the transaction that records it; the
caller applies it (`apply.apply_entry`) and writes it down.
"""

from __future__ import annotations

from ..entries import Transaction
from ..state import State
from . import holdings, members, orders, reverse, stores
from .base import Ctx
from .close import genesis, price, release, release_amounts, value_of
from .events import EVENT_TYPES, Event, parse

_BOOKERS = {
    "register": members.register,
    "set_role": members.set_role,
    "buy_pack": members.buy_pack,
    "open_store": stores.open_store,
    "deposit": stores.deposit,
    "order": orders.order,
    "transfer": holdings.transfer,
    "payout": holdings.payout_request,
    "payout_settle": holdings.payout_settle,
    "payout_cancel": holdings.payout_cancel,
    "redeem": holdings.redeem,
    "reverse": reverse.reverse,
}

CLIENT_KINDS = tuple(_BOOKERS)


def book(state: State, event: Event, ctx: Ctx) -> Transaction:
    """The transaction that books `event` on `ctx.day`, or a Refusal."""
    if event.kind == "release":
        return release(state.g, ctx)
    return _BOOKERS[event.kind](state, event, ctx)


__all__ = ["Ctx", "EVENT_TYPES", "Event", "book", "genesis", "parse", "price", "release",
           "release_amounts", "value_of", "CLIENT_KINDS"]
