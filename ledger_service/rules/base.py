"""What every rule shares: the booking context, the transaction builder, the lookups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from ..accounts import COMMODITY_OF, HOLDER_ACCOUNTS
from ..amounts import ZERO, fmt
from ..config import Params
from ..entries import META_KEY_RE, Meta, Posting, Transaction, meta_tuple
from ..errors import Conflict, NotFound
from ..state import MEMBER, MERCHANT, Holder, State
from ..subledger import balance
from .events import Event, EventKind


@dataclass(frozen=True, slots=True)
class Ctx:
    """Where the event is booked: its id and sequence number, its business day, the rules."""

    event_id: str
    seq: int
    day: date
    params: Params


assert META_KEY_RE.match("holder") and META_KEY_RE.match("leg")  # (Builder.post's fast path)


class Builder:
    """Collects one transaction's postings; zero amounts are left out."""

    def __init__(self, ctx: Ctx, kind: EventKind, narration: str, inputs: list[tuple[str, str]]) -> None:
        self.ctx = ctx
        self.kind = kind
        self.narration = narration
        self.meta: list[tuple[str, object]] = [("event", ctx.event_id), ("kind", kind), ("seq", str(ctx.seq))]
        self.meta += inputs
        self.postings: list[Posting] = []

    def note(self, key: str, value: object) -> None:
        self.meta.append((key, value))

    def post(self, account: str, number: Decimal, *, holder: str | None = None, leg: str | None = None,
             aggregate: bool = False, **extra: str) -> None:
        """Add a posting. A holder control account needs the holder's id, unless
        `aggregate` (the daily release moves the control totals, not a holder)."""
        if number == 0:
            return
        currency = COMMODITY_OF.get(account)
        assert currency is not None, account
        assert (holder is not None) == (account in HOLDER_ACCOUNTS and not aggregate), (account, holder)
        if (not extra and holder.__class__ is str and leg.__class__ is str and holder.isprintable()
                and leg.isprintable()):  # the usual case: meta_tuple's result, without its loop
            meta: Meta = (("holder", holder), ("leg", leg))
        else:
            items = [("holder", holder), ("leg", leg)]
            if extra:
                items += extra.items()
            meta = meta_tuple(items)
        self.postings.append(Posting(account, number, currency, meta))

    def build(self) -> Transaction:
        sums: dict[str, Decimal] = {}
        for p in self.postings:
            sums[p.currency] = sums.get(p.currency, ZERO) + p.number
        assert all(v == 0 for v in sums.values()), (self.kind, sums)  # balanced per commodity
        meta = meta_tuple([*self.meta, ("postings", str(len(self.postings)))])
        return Transaction(self.ctx.day, str(self.kind), self.narration, meta, tuple(self.postings))  # plain text


def inputs_of(event: Event) -> list[tuple[str, str]]:
    return event.to_meta()


def member(state: State, holder_id: str, field: str) -> Holder:
    found = state.holder(holder_id)
    if found is None or found.kind != MEMBER:
        raise NotFound("member.unknown", f"{field}: no member {holder_id!r}", field)
    return found


def merchant(state: State, holder_id: str, field: str) -> Holder:
    found = state.holder(holder_id)
    if found is None or found.kind != MERCHANT:
        raise NotFound("merchant.unknown", f"{field}: no merchant {holder_id!r}", field)
    return found


def any_holder(state: State, holder_id: str, field: str) -> Holder:
    found = state.holder(holder_id)
    if found is None:
        raise NotFound("holder.unknown", f"{field}: no holder {holder_id!r}", field)
    return found


def new_id(state: State, holder_id: str, field: str) -> None:
    if state.holder(holder_id) is not None:
        raise Conflict("holder.duplicate_id", f"{field}: holder {holder_id!r} already exists", field)


def require_value(state: State, field: str) -> Decimal:
    """The day's value, refused when it is zero (an empty pool while points circulate)."""
    value = state.g.value
    if value <= 0:
        raise Conflict("value.zero", f"{field}: the pool is empty while points circulate, so a point is worth 0 CNY "
                                     "today; a platform injection must back the points first", field)
    return value


def require_sp(state: State, holder: Holder, sp: Decimal, field: str, rule: str) -> None:
    held = balance(holder, state.g, state).sp
    if held < sp:
        raise Conflict(rule, f"{field}: {holder.id} holds {fmt(held)} SP, {fmt(sp)} SP needed", field)
