"""The Overlay's change set (`state.ChangeSet`): what `store.db.persist` writes back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from ledger_service import accounts as A
from ledger_service.state import ChangeSet, ClosedDay, Epoch, EventRecord, Globals, Holder, MemoryState, Overlay, Payout

DAY = date(2026, 3, 2)


def base() -> MemoryState:
    state = MemoryState(Globals(DAY, DAY, D("1.00000000"), balances={A.POOL: D("10.00"), A.SP_SOLD: D("5")}))
    state.put_holder(Holder("alice", "member", DAY))
    state.put_holder(Holder("bob", "member", DAY))
    return state


def test_an_untouched_overlay_changes_nothing():
    changes = Overlay(base()).changes()
    assert isinstance(changes, ChangeSet)
    assert (dict(changes.changed_balances), dict(changes.added_balances), dict(changes.holders)) == ({}, {}, {})
    assert (changes.new_holders, changes.closed_days) == (frozenset(), ())


def test_the_change_set_names_what_changed_and_what_is_new():
    state = base()
    overlay = Overlay(state)
    overlay.g.balances[A.POOL] = D("12.00")           # changed
    overlay.g.balances[A.SP_RELEASED] = D("3")         # added
    alice = overlay.holder("alice")
    alice.active = True
    overlay.put_holder(Holder("carol", "member", DAY))
    assert overlay.holder("nobody") is None             # looked up, not there
    overlay.set_partner("441900", "alice")
    overlay.add_epoch(Epoch(0, D("0.5"), D("0.25")))
    overlay.put_payout(Payout("p1", "alice", D("1"), D("1.00"), "requested", DAY))
    overlay.record_event(EventRecord("E000000009", "order", ()), "order-1")
    supply = {"cap": "390000.0000"}
    overlay.close_day(ClosedDay(DAY, "journal/2026-03/2026-03-02.beancount", "ab" * 32, 9, D("1.00000000"), supply))
    changes = overlay.changes()
    assert changes.g is overlay.g
    assert dict(changes.changed_balances) == {A.POOL: D("12.00")}
    assert dict(changes.added_balances) == {A.SP_RELEASED: D("3")}
    assert {k: v is not None for k, v in changes.holders.items()} == {"alice": True, "carol": True, "nobody": False}
    assert changes.new_holders == {"carol", "nobody"}
    assert changes.holders["alice"].active and not state.holder("alice").active  # the base is not written
    assert dict(changes.partners) == {"441900": "alice"}
    assert list(changes.epochs) == [0] and list(changes.payouts) == ["p1"]
    assert dict(changes.orders) == {"order-1": "E000000009"} and list(changes.records) == ["E000000009"]
    assert [c.day for c in changes.closed_days] == [DAY] and overlay.closed_days == changes.closed_days
    with pytest.raises(TypeError):  # read-only views
        changes.holders["mallory"] = None  # type: ignore[index]
