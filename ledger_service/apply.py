"""What a booked entry does to the position: the one place where state changes.

`apply_entry` is used everywhere an entry is read or written: the engine after
booking, `verify` and the plugin while replaying the journal. So the service's
database and an auditor's rebuild cannot drift apart by construction: both are
this function folded over the same entries.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from . import accounts as A
from .amounts import EXACT_CONTEXT, ZERO, exact_add, sub
from .entries import Entry, Price, Transaction
from .rules.events import (
    BuyPack,
    Deposit,
    Event,
    EventKind,
    Grant,
    OpenStore,
    Order,
    PayoutCancel,
    PayoutRequest,
    PayoutSettle,
    Register,
    Reverse,
    SetRole,
    Transfer,
    parse,
)
from .rules.orders import OPENING_SP
from .state import MEMBER, MERCHANT, EventRecord, Holder, Indices, Payout, State
from .subledger import after_release, grant_active, settle, take_sp

_exact_add = EXACT_CONTEXT.add  # amounts.exact_add, without its call


def apply_entry(state: State, entry: Entry, event: Event | None = None) -> None:
    """Fold one chained entry into `state`: a price sets the value; the genesis and the daily
    release move the control balances (the release also the indices and the open day); an
    event's own effects are dispatched on its parsed type. `event`: the entry's event, when the
    caller parsed it already (`parse(entry.kind, dict(entry.meta), by_meta_key=True)`)."""
    if isinstance(entry, Price):
        state.g.value = entry.number
        _chain(state, entry)
        return
    kind = entry.kind
    if kind in (EventKind.GENESIS, EventKind.RELEASE):
        _apply_postings(state, entry)
        if kind == EventKind.RELEASE:
            _apply_release(state, entry)
        _chain(state, entry)
        return

    ev = event if event is not None and event.kind == kind else parse(kind, dict(entry.meta), by_meta_key=True)
    event_id = entry.get("event")
    assert event_id is not None
    _open_holder(state, ev, entry)
    _apply_postings(state, entry)
    _apply_event(state, ev, entry, event_id)
    _chain(state, entry)


def _open_holder(state: State, ev: Event, entry: Transaction) -> None:
    """The holder a registration or a new store creates, before its postings name it."""
    match ev:
        case Register():
            state.put_holder(Holder(ev.member, MEMBER, entry.date, referrer=ev.referrer, region=ev.region))
        case OpenStore():
            state.put_holder(Holder(
                ev.merchant, MERCHANT, entry.date, region=ev.region, active=True, owner=ev.owner,
                channel=ev.channel, rebate_rate=ev.rebate_rate, store_referrer=ev.referrer,
            ))


def _apply_event(state: State, ev: Event, entry: Transaction, event_id: str) -> None:  # noqa: C901 - one arm per type
    """What an event changes besides its postings: roles, activity, deposits, the records a
    reversal mirrors, the payouts' status, the SV granted per holder and day and per campaign."""
    match ev:
        case SetRole():
            _update(state, ev.member, role=ev.role)
        case BuyPack():
            _update(state, ev.member, active=True, last_purchase=entry.date)
            if ev.pack == "partner":
                assert ev.region is not None  # the rule refuses a partner pack without a region
                state.set_partner(ev.region, ev.member)
        case Deposit(merchant=str(merchant)):
            store = state.holder(merchant)
            assert store is not None, merchant
            _update(state, merchant, deposits_cny=exact_add(store.deposits_cny, ev.amount_cny))
        case Order():
            g = state.g  # an order moves no index: these are the ones its grants were made at
            state.record_event(EventRecord(event_id, entry.kind, entry.postings, amount_cny=ev.amount_cny,
                                           booked_at=Indices(g.epoch, g.sv_index, g.sp_index)), ev.order_id)
            _update(state, ev.buyer, last_purchase=entry.date)
            if entry.get(OPENING_SP) is not None:  # its first order under the "sp_held" deposit rule
                _update(state, ev.merchant, opened=entry.date)
        case Transfer():
            state.record_event(EventRecord(event_id, entry.kind, entry.postings), None)
        case PayoutRequest():
            state.put_payout(Payout(event_id, ev.holder, ev.sp, _meta_amount(entry, "amount_cny"), "requested",
                                    entry.date))
        case PayoutSettle():
            _close_payout(state, ev.payout, "settled", ev.bank_reference)
        case PayoutCancel():
            _close_payout(state, ev.payout, "cancelled", None)
        case Grant():
            state.add_grant(ev.holder, entry.date, ev.campaign, ev.sv)
        case Reverse():
            record = state.event_record(ev.event)
            assert record is not None, ev.event
            record.reversed_by = event_id
            state.put_event_record(record)


def _close_payout(state: State, payout_id: str, status: str, bank_reference: str | None) -> None:
    pay = state.payout(payout_id)
    assert pay is not None, payout_id
    pay.status = status
    pay.bank_reference = bank_reference
    state.put_payout(pay)


def _chain(state: State, entry: Entry) -> None:
    g = state.g
    seq = int(entry.get("seq") or 0)
    assert seq == g.seq + 1, (seq, g.seq)
    g.seq = seq
    g.head = entry.get("hash") or g.head


def _meta_amount(entry: Transaction, key: str) -> Decimal:
    text = entry.get(key)
    assert text is not None, (entry.get("event"), key)
    return Decimal(text)


def _update(state: State, holder_id: str, **changes) -> None:
    holder = state.holder(holder_id)
    assert holder is not None, holder_id
    for key, value in changes.items():
        setattr(holder, key, value)
    state.put_holder(holder)


def _apply_postings(state: State, entry: Transaction) -> None:
    g = state.g
    balances = g.balances
    holder_accounts = A.HOLDER_ACCOUNTS
    touched: dict[str, Holder] = {}
    for posting in entry.postings:
        account = posting.account
        number = posting.number
        balances[account] = _exact_add(balances.get(account, ZERO), number)  # g.balance(account) + number
        if account not in holder_accounts:
            continue
        holder_id = posting.holder
        if holder_id is None:
            continue
        holder = touched.get(holder_id)
        if holder is None:
            holder = state.holder(holder_id)
            assert holder is not None, holder_id
            settle(holder, g, state)
            touched[holder_id] = holder
        if account == A.HOLDERS_SV_LOCKED:
            holder.sv_locked = sub(holder.sv_locked, number)
            assert holder.sv_locked >= 0, holder
        elif account == A.HOLDERS_SV_ACTIVE:
            grant_active(holder, g, -number)
        elif number > 0:
            take_sp(holder, number)
        else:
            holder.sp_exact = sub(holder.sp_exact, number)
    for holder in touched.values():
        state.put_holder(holder)


def _apply_release(state: State, entry: Transaction) -> None:
    g = state.g
    released_sp = next((p.number for p in entry.postings if p.account == A.SP_RELEASED), None)
    converted_sv = next((p.number for p in entry.postings if p.account == A.HOLDERS_SV_ACTIVE), None)
    after = after_release(g, released_sp or ZERO, converted_sv or ZERO)
    if after.ended is not None:
        state.add_epoch(after.ended)
    g.sv_index, g.sp_index, g.epoch, g.total_shares = after.sv_index, after.sp_index, after.epoch, after.total_shares
    g.open_day = entry.date + timedelta(days=1)
    state.forget_grant_days(entry.date)  # the day is closed: its grant totals are never read again
