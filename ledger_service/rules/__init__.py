"""The rules: pure functions from (state, event, context) to one balanced transaction.

Nothing in this package does IO. `book` raises a `Refusal` (see `errors`) when an
event breaks a rule, and otherwise returns the transaction that records it; the
caller applies it (`apply.apply_entry`) and writes it down.
"""

from __future__ import annotations

from ..entries import Transaction
from ..state import State
from . import checkpoints, grants, holdings, members, orders, reverse, stores
from .base import Ctx
from .close import genesis, price, release, release_amounts, value_of
from .events import (
    EVENT_TYPES,
    BuyPack,
    Checkpoint,
    Deposit,
    Event,
    EventKind,
    Grant,
    OpenStore,
    Order,
    PayoutCancel,
    PayoutRequest,
    PayoutSettle,
    Redeem,
    Register,
    Release,
    Reverse,
    SetRole,
    SigningKey,
    Transfer,
    parse,
)

# The kinds only the engine books: a closed day's signed checkpoint and a signing key's rotation.
ENGINE_KINDS = (EventKind.CHECKPOINT, EventKind.SIGNING_KEY)
# The kinds a client may post (every event but the daily release and the engine's own).
CLIENT_KINDS = tuple(kind for kind in EVENT_TYPES if kind != EventKind.RELEASE and kind not in ENGINE_KINDS)


def book(state: State, event: Event, ctx: Ctx) -> Transaction:  # noqa: C901 - one flat arm per event type
    """The transaction that books `event` on `ctx.day`, or a Refusal: dispatched by `match` on
    the event's type, one arm per type (the mccabe count is the number of event types)."""
    match event:
        case Register():
            return members.register(state, event, ctx)
        case SetRole():
            return members.set_role(state, event, ctx)
        case BuyPack():
            return members.buy_pack(state, event, ctx)
        case OpenStore():
            return stores.open_store(state, event, ctx)
        case Deposit():
            return stores.deposit(state, event, ctx)
        case Order():
            return orders.order(state, event, ctx)
        case Transfer():
            return holdings.transfer(state, event, ctx)
        case PayoutRequest():
            return holdings.payout_request(state, event, ctx)
        case PayoutSettle():
            return holdings.payout_settle(state, event, ctx)
        case PayoutCancel():
            return holdings.payout_cancel(state, event, ctx)
        case Redeem():
            return holdings.redeem(state, event, ctx)
        case Reverse():
            return reverse.reverse(state, event, ctx)
        case Grant():
            return grants.grant(state, event, ctx)
        case Release():
            return release(state.g, ctx)
        case Checkpoint():
            return checkpoints.checkpoint(state, event, ctx)
        case SigningKey():
            return checkpoints.signing_key(state, event, ctx)
    raise TypeError(f"no rule books a {type(event).__name__}")  # pragma: no cover - every Event subclass is above


__all__ = ["Ctx", "EVENT_TYPES", "Event", "EventKind", "book", "genesis", "parse", "price", "release",
           "release_amounts", "value_of", "CLIENT_KINDS", "ENGINE_KINDS"]
