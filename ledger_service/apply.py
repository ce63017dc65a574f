"""What a booked entry does to the position: the one place where state changes.

`apply_entry` is used everywhere an entry is read or written: the engine after
booking, `verify` and the plugin while replaying the journal. So the service's
database and an auditor's rebuild cannot drift apart by construction: both are
this function folded over the same entries.
"""

from __future__ import annotations

from datetime import timedelta

from . import accounts as A
from .amounts import exact_add, sub
from .entries import Entry, Price, Transaction
from .rules.events import parse
from .state import MEMBER, MERCHANT, EventRecord, Holder, Payout, State
from .subledger import after_release, grant_active, settle, take_sp


def apply_entry(state: State, entry: Entry) -> None:
    g = state.g
    if isinstance(entry, Price):
        g.value = entry.number
        _chain(state, entry)
        return
    kind = entry.kind
    if kind in ("genesis", "release"):
        _apply_postings(state, entry)
        if kind == "release":
            _apply_release(state, entry)
        _chain(state, entry)
        return

    ev = parse(kind, dict(entry.meta), by_meta_key=True)
    event_id = entry.get("event")
    assert event_id is not None
    if kind == "register":
        state.put_holder(Holder(ev.member, MEMBER, entry.date, referrer=ev.referrer, region=ev.region))
    elif kind == "open_store":
        state.put_holder(Holder(
            ev.merchant, MERCHANT, entry.date, region=ev.region, active=True, owner=ev.owner,
            channel=ev.channel, rebate_rate=ev.rebate_rate, store_referrer=ev.referrer,
        ))

    _apply_postings(state, entry)

    if kind == "set_role":
        _update(state, ev.member, role=ev.role)
    elif kind == "buy_pack":
        _update(state, ev.member, active=True, last_purchase=entry.date)
        if ev.pack == "partner":
            state.set_partner(ev.region, ev.member)
    elif kind == "deposit" and ev.merchant is not None:
        store = state.holder(ev.merchant)
        _update(state, ev.merchant, deposits_cny=exact_add(store.deposits_cny, ev.amount_cny))
    elif kind == "order":
        state.record_event(EventRecord(event_id, kind, entry.postings), ev.order_id)
        _update(state, ev.buyer, last_purchase=entry.date)
    elif kind == "transfer":
        state.record_event(EventRecord(event_id, kind, entry.postings), None)
    elif kind == "payout":
        state.put_payout(Payout(event_id, ev.holder, ev.sp, _meta_amount(entry, "amount_cny"), "requested", entry.date))
    elif kind in ("payout_settle", "payout_cancel"):
        pay = state.payout(ev.payout)
        pay.status = "settled" if kind == "payout_settle" else "cancelled"
        pay.bank_reference = getattr(ev, "bank_reference", None)
        state.put_payout(pay)
    elif kind == "reverse":
        record = state.event_record(ev.event)
        record.reversed_by = event_id
        state.put_event_record(record)
    _chain(state, entry)


def _chain(state: State, entry: Entry) -> None:
    g = state.g
    seq = int(entry.get("seq") or 0)
    assert seq == g.seq + 1, (seq, g.seq)
    g.seq = seq
    g.head = entry.get("hash") or g.head


def _meta_amount(entry: Transaction, key: str):
    from decimal import Decimal

    return Decimal(entry.get(key))


def _update(state: State, holder_id: str, **changes) -> None:
    holder = state.holder(holder_id)
    assert holder is not None, holder_id
    for key, value in changes.items():
        setattr(holder, key, value)
    state.put_holder(holder)


def _apply_postings(state: State, entry: Transaction) -> None:
    g = state.g
    touched: dict[str, Holder] = {}
    for posting in entry.postings:
        g.balances[posting.account] = exact_add(g.balance(posting.account), posting.number)
        holder_id = posting.holder
        if holder_id is None or posting.account not in A.HOLDER_ACCOUNTS:
            continue
        holder = touched.get(holder_id)
        if holder is None:
            holder = state.holder(holder_id)
            assert holder is not None, holder_id
            settle(holder, g, state)
            touched[holder_id] = holder
        if posting.account == A.HOLDERS_SV_LOCKED:
            holder.sv_locked = sub(holder.sv_locked, posting.number)
            assert holder.sv_locked >= 0, holder
        elif posting.account == A.HOLDERS_SV_ACTIVE:
            grant_active(holder, g, -posting.number)
        elif posting.number > 0:
            take_sp(holder, posting.number)
        else:
            holder.sp_exact = sub(holder.sp_exact, posting.number)
    for holder in touched.values():
        state.put_holder(holder)


def _apply_release(state: State, entry: Transaction) -> None:
    g = state.g
    released_sp = next((p.number for p in entry.postings if p.account == A.SP_RELEASED), None)
    converted_sv = next((p.number for p in entry.postings if p.account == A.HOLDERS_SV_ACTIVE), None)
    from .amounts import ZERO

    after = after_release(g, released_sp or ZERO, converted_sv or ZERO)
    if after.ended is not None:
        state.add_epoch(after.ended)
    g.sv_index, g.sp_index, g.epoch, g.total_shares = after.sv_index, after.sp_index, after.epoch, after.total_shares
    g.open_day = entry.date + timedelta(days=1)
