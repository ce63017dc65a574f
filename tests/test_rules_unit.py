"""The pure rules, one by one: a `MemoryState` built by hand, the rule called directly.

No engine, no database, no journal: each test puts the holders and control balances it
needs into a `MemoryState`, calls the rule (`rules/members.py`, `stores.py`, `orders.py`,
`holdings.py`, `reverse.py`, `close.py`) and checks the postings it returns, with the
arithmetic written next to each expected number (seed-a's parameters unless a test
changes one). Every transaction must balance per commodity. The same rules booked
through the engine are tested in test_worked_examples, test_events and the others.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from itertools import count

import pytest

from ledger_service import accounts as A
from ledger_service import config, rules
from ledger_service.apply import apply_entry
from ledger_service.entries import Transaction
from ledger_service.errors import Conflict, Invalid, NotFound, Refusal
from ledger_service.rules import close, holdings, members, orders, reverse, stores
from ledger_service.rules.base import Ctx
from ledger_service.rules.events import (
    BuyPack,
    Deposit,
    Event,
    EventKind,
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
    Transfer,
)
from ledger_service.state import MEMBER, MERCHANT, EventRecord, Globals, Holder, MemoryState, Payout

D = Decimal
PARAMS = config.load("seed-a")
DAY = date(2026, 3, 10)


def custom(**changes) -> config.Params:
    """seed-a with `changes`, validated as a rules file is."""
    meta = PARAMS.to_meta()
    meta.update({key: str(value) for key, value in changes.items()})
    return config.Params.from_meta(meta)


def world(value: str = "1.00", **balances: str) -> MemoryState:
    """An empty platform on DAY at `value` CNY/SP; `balances` by account constant name (POOL="100.00")."""
    g = Globals(genesis_day=DAY - timedelta(days=9), open_day=DAY, value=D(value),
                balances={getattr(A, name): D(amount) for name, amount in balances.items()})
    return MemoryState(g)


_seq = count(1)


def ctx(state: MemoryState, params: config.Params = PARAMS, day: date = DAY) -> Ctx:
    """The next event's context (its seq follows the state's, so `apply_entry` may fold it)."""
    seq = state.g.seq + 1
    return Ctx(f"E{next(_seq):09d}", seq, day, params)


def member(state: MemoryState, holder_id: str, *, active: bool = False, role: str = "member",
           referrer: str | None = None, sp: str = "0", sv_locked: str = "0",
           last_purchase: date | None = None, region: str | None = None) -> Holder:
    holder = Holder(holder_id, MEMBER, DAY, referrer=referrer, region=region, role=role, active=active,
                    sv_locked=D(sv_locked), sp_exact=D(sp), last_purchase=last_purchase)
    state.put_holder(holder)
    return holder


def store(state: MemoryState, holder_id: str = "s1", *, channel: str = "offline", rebate: str = "0.10",
          sp: str = "0", deposits: str = "500.00", store_referrer: str | None = None,
          region: str = "441900") -> Holder:
    holder = Holder(holder_id, MERCHANT, DAY, region=region, active=True, owner="own", channel=channel,
                    rebate_rate=D(rebate), store_referrer=store_referrer, sp_exact=D(sp), deposits_cny=D(deposits))
    state.put_holder(holder)
    return holder


def balanced(tx: Transaction) -> Transaction:
    """`tx`, checked to balance per commodity (and to hold no zero posting)."""
    sums: dict[str, Decimal] = {}
    for p in tx.postings:
        assert p.number != 0, p
        sums[p.currency] = sums.get(p.currency, D(0)) + p.number
    assert all(total == 0 for total in sums.values()), sums
    return tx


def lines(tx: Transaction) -> list[tuple[str, Decimal, str | None, str | None]]:
    """(account, number, holder, leg) of each posting, in order."""
    return [(p.account, p.number, p.holder, p.get("leg")) for p in balanced(tx).postings]


def fold(state: MemoryState, tx: Transaction) -> None:
    """Apply a booked transaction to the state (what the engine does after booking)."""
    apply_entry(state, tx)


def refused(kind: type[Refusal], rule: str, call) -> None:
    with pytest.raises(kind) as caught:
        call()
    assert caught.value.rule == rule


# -- members -------------------------------------------------------------------------------------

def test_register_grants_the_locked_registration_sv():
    state = world()
    tx = members.register(state, Register("m1"), ctx(state))
    assert tx.kind == "register" and tx.get("member") == "m1"
    # sv.registration_grant = 300 SV, locked until the member buys a pack
    assert lines(tx) == [(A.HOLDERS_SV_LOCKED, D("-300"), "m1", "registration"), (A.SV_GRANTED, D("300"), None, None)]


def test_register_pays_the_referrer_grant_active_or_locked():
    params = custom(sv_referrer_registration_grant="50")
    state = world()
    member(state, "active_ref", active=True)
    member(state, "new_ref")
    tx = members.register(state, Register("m1", referrer="active_ref"), ctx(state, params))
    # 300 SV locked for m1, 50 SV active for an active referrer; granted 300 + 50 = 350
    assert lines(tx) == [(A.HOLDERS_SV_LOCKED, D("-300"), "m1", "registration"), (A.SV_GRANTED, D("300"), None, None),
                         (A.HOLDERS_SV_ACTIVE, D("-50"), "active_ref", "referrer"), (A.SV_GRANTED, D("50"), None, None)]
    tx = members.register(state, Register("m2", referrer="new_ref"), ctx(state, params))
    assert (A.HOLDERS_SV_LOCKED, D("-50"), "new_ref", "referrer") in lines(tx)  # inactive: locked


def test_register_refusals():
    state = world()
    member(state, "m1")
    refused(Conflict, "holder.duplicate_id", lambda: members.register(state, Register("m1"), ctx(state)))
    refused(NotFound, "member.unknown", lambda: members.register(state, Register("m2", referrer="nobody"), ctx(state)))


def test_set_role_books_no_posting_and_notes_the_previous_role():
    state = world()
    member(state, "m1", role="vip")
    tx = members.set_role(state, SetRole("m1", "store_owner"), ctx(state))
    assert tx.postings == () and tx.get("role") == "store_owner" and tx.get("previous_role") == "vip"
    refused(NotFound, "member.unknown", lambda: members.set_role(state, SetRole("x", "vip"), ctx(state)))


def test_activation_pack_unlocks_the_locked_sv_and_feeds_the_pool():
    params = custom(pack_pool_share="0.5")
    state = world()
    member(state, "m1", sv_locked="300")
    tx = members.buy_pack(state, BuyPack("m1", "activation"), ctx(state, params))
    # price 299.00 CNY; pool 299.00 x 0.5 = 149.50; platform cash 299.00 - 149.50 = 149.50
    # the 300 locked SV become active; the pack returns 299.00 x 1 = 299 SV active
    assert lines(tx) == [
        (A.PLATFORM_CASH, D("149.50"), None, None), (A.PACK_INCOME, D("-149.50"), None, None),
        (A.POOL, D("149.50"), None, None), (A.POOL_EQUITY, D("-149.50"), None, None),
        (A.HOLDERS_SV_LOCKED, D("300"), "m1", "unlock"), (A.HOLDERS_SV_ACTIVE, D("-300"), "m1", "unlock"),
        (A.HOLDERS_SV_ACTIVE, D("-299"), "m1", "pack"), (A.SV_GRANTED, D("299"), None, None),
    ]


def test_partner_pack_needs_a_free_region():
    state = world()  # seed-a: pool share 0, so the whole 4999.00 is platform cash
    member(state, "m1", active=True)
    tx = members.buy_pack(state, BuyPack("m1", "partner", region="441900"), ctx(state))
    # partner price 4999.00 CNY, x 1 = 4999 SV returned; already active: nothing to unlock
    assert lines(tx) == [(A.PLATFORM_CASH, D("4999.00"), None, None), (A.PACK_INCOME, D("-4999.00"), None, None),
                         (A.HOLDERS_SV_ACTIVE, D("-4999"), "m1", "pack"), (A.SV_GRANTED, D("4999"), None, None)]
    refused(Invalid, "pack.region_required", lambda: members.buy_pack(state, BuyPack("m1", "partner"), ctx(state)))
    refused(Invalid, "pack.region_not_allowed",
            lambda: members.buy_pack(state, BuyPack("m1", "activation", region="441900"), ctx(state)))
    state.set_partner("441900", "m1")
    refused(Conflict, "region.partner_taken",
            lambda: members.buy_pack(state, BuyPack("m1", "partner", region="441900"), ctx(state)))


# -- stores and deposits --------------------------------------------------------------------------

def test_open_store_books_no_posting_and_needs_an_active_owner():
    state = world()
    member(state, "own", active=True)
    member(state, "lazy")
    tx = stores.open_store(state, OpenStore("s1", "own", "441900", "offline", D("0.10")), ctx(state))
    assert tx.postings == () and tx.get("merchant") == "s1" and tx.get("rebate_rate") == "0.10"
    refused(Conflict, "store.owner_inactive",
            lambda: stores.open_store(state, OpenStore("s2", "lazy", "441900", "online", D("0.10")), ctx(state)))
    refused(NotFound, "member.unknown",
            lambda: stores.open_store(state, OpenStore("s3", "nobody", "441900", "online", D("0.10")), ctx(state)))


def test_merchant_deposit_buys_sp_at_the_days_value_rounded_down():
    state = world("1.30")
    store(state, deposits="0.00")
    tx = stores.deposit(state, Deposit(D("500.00"), merchant="s1"), ctx(state))
    # 500.00 / 1.30 = 384.615384… → 384.6153 SP (down to 0.0001: the pool keeps the crumb)
    assert lines(tx) == [(A.POOL, D("500.00"), None, None), (A.POOL_EQUITY, D("-500.00"), None, None),
                         (A.SP_SOLD, D("384.6153"), None, None), (A.HOLDERS_SP, D("-384.6153"), "s1", "deposit")]
    assert tx.get("value") == "1.30"


def test_platform_injection_moves_only_the_pool():
    state = world()
    tx = stores.deposit(state, Deposit(D("2000.00"), platform=True), ctx(state))
    assert lines(tx) == [(A.POOL, D("2000.00"), None, None), (A.POOL_EQUITY, D("-2000.00"), None, None)]


def test_deposit_refusals():
    state = world(SP_RELEASED="389999.9000")  # cap 390000: 0.1 SP of room left
    store(state)
    refused(Invalid, "deposit.payer", lambda: stores.deposit(state, Deposit(D("1.00")), ctx(state)))
    refused(Invalid, "deposit.payer",
            lambda: stores.deposit(state, Deposit(D("1.00"), merchant="s1", platform=True), ctx(state)))
    refused(Conflict, "sp.cap_reached", lambda: stores.deposit(state, Deposit(D("1.00"), merchant="s1"), ctx(state)))
    state.g.value = D("1000")  # 0.01 / 1000 = 0.00001 → 0 SP
    refused(Invalid, "deposit.too_small", lambda: stores.deposit(state, Deposit(D("0.01"), merchant="s1"), ctx(state)))
    state.g.value = D(0)
    refused(Conflict, "value.zero", lambda: stores.deposit(state, Deposit(D("1.00"), merchant="s1"), ctx(state)))


# -- orders ---------------------------------------------------------------------------------------

def order_world() -> MemoryState:
    """At 2.00 CNY/SP: buyer b (active) referred by r (active member), whose referrers are
    t1 (vip 0.05) and t2 (store_owner 0.15); offline store s1 (500 SP) referred by sr;
    region 441900's partner p bought 10 days ago."""
    state = world("2.00")
    member(state, "t2", active=True, role="store_owner")
    member(state, "t1", active=True, role="vip", referrer="t2")
    member(state, "r", active=True, referrer="t1")
    member(state, "b", active=True, referrer="r")
    member(state, "sr", active=True)
    member(state, "p", active=True, last_purchase=DAY - timedelta(days=10))
    state.set_partner("441900", "p")
    store(state, sp="500", store_referrer="sr")
    return state


def test_order_with_every_split():
    state = order_world()
    tx = orders.order(state, Order("o1", "b", "s1", D("1000.00")), ctx(state))
    # R = 1000.00 x 0.10 = 100.00 CNY; D = 100.00 / 2.00 = 50 SP taken from the store
    assert tx.get("rebate_cny") == "100.00" and D(tx.get("deducted_sp")) == 50
    # buyer G = 10 x 100.00 = 1000 SV; merchant 2 x 100.00 = 200 SV
    # referrer r, offline: 0.05 x 1000 / 2.00 = 25 SP of D (left 50 - 25 = 25)
    # team walk from r: r is a member (rate 0), t1 vip: (0.05 - 0) x 1000 = 50 SV,
    #   t2 store_owner: (0.15 - 0.05) x 1000 = 100 SV
    # store referrer sr: 0.05 x 50 = 2.5 SP (left 22.5); partner p: 0.08 x 50 = 4 SP (left 18.5)
    # burn the rest: 18.5 SP; SV granted 1000 + 200 + 50 + 100 = 1350
    assert lines(tx) == [
        (A.HOLDERS_SP, D("50"), "s1", "deduct"),
        (A.HOLDERS_SP, D("-25"), "r", "referrer"),
        (A.HOLDERS_SP, D("-2.5"), "sr", "store_referrer"),
        (A.HOLDERS_SP, D("-4"), "p", "partner"),
        (A.SP_BURNED, D("-18.5"), None, "burn"),
        (A.HOLDERS_SV_ACTIVE, D("-1000"), "b", "buyer"),
        (A.HOLDERS_SV_ACTIVE, D("-200"), "s1", "merchant"),
        (A.HOLDERS_SV_ACTIVE, D("-50"), "t1", "team"),
        (A.HOLDERS_SV_ACTIVE, D("-100"), "t2", "team"),
        (A.SV_GRANTED, D("1350"), None, None),
    ]
    assert [p.get("region") for p in tx.postings if p.get("leg") == "partner"] == ["441900"]


def test_online_order_pays_the_referrer_in_sv_and_the_ship_region_partner():
    state = order_world()
    state.put_holder(replace(state.holder("s1"), channel="online"))
    state.set_partner("440300", "p")
    tx = orders.order(state, Order("o1", "b", "s1", D("1000.00"), ship_region="440300"), ctx(state))
    # online: the referrer gets 0.40 x G = 0.40 x 1000 = 400 SV; no store referrer share online;
    # the partner of the ship region: 0.08 x 50 = 4 SP; burn 50 - 4 = 46 SP
    assert (A.HOLDERS_SV_ACTIVE, D("-400"), "r", "referrer") in lines(tx)
    assert (A.HOLDERS_SP, D("-4"), "p", "partner") in lines(tx)
    assert (A.SP_BURNED, D("-46"), None, "burn") in lines(tx)
    # SV granted: 1000 + 200 + 400 (referrer) + 50 + 100 (team) = 1750
    assert (A.SV_GRANTED, D("1750"), None, None) in lines(tx)


def test_inactive_buyer_earns_nothing_and_all_of_d_burns():
    state = order_world()
    state.put_holder(replace(state.holder("b"), active=False))
    tx = orders.order(state, Order("o1", "b", "s1", D("1000.00")), ctx(state))
    # D = 50 SP taken from the store, all of it burned; no SV
    assert lines(tx) == [(A.HOLDERS_SP, D("50"), "s1", "deduct"), (A.SP_BURNED, D("-50"), None, "burn")]


def test_partner_without_a_recent_purchase_earns_nothing():
    state = order_world()
    # the last purchase 31 days ago: repurchase_days = 30, so it no longer qualifies
    state.put_holder(replace(state.holder("p"), last_purchase=DAY - timedelta(days=31)))
    tx = orders.order(state, Order("o1", "b", "s1", D("1000.00")), ctx(state))
    assert "partner" not in [leg for _a, _n, _h, leg in lines(tx)]
    assert (A.SP_BURNED, D("-22.5"), None, "burn") in lines(tx)  # 50 - 25 - 2.5


def test_order_refusals():
    state = order_world()
    state.orders["o0"] = "E000000000"
    refused(Conflict, "order.duplicate_id", lambda: orders.order(state, Order("o0", "b", "s1", D("1.00")), ctx(state)))
    refused(NotFound, "member.unknown", lambda: orders.order(state, Order("o1", "x", "s1", D("1.00")), ctx(state)))
    refused(NotFound, "merchant.unknown", lambda: orders.order(state, Order("o1", "b", "x", D("1.00")), ctx(state)))
    # 1,000,000.00 x 0.10 = 100,000.00 CNY → 50,000 SP; the store holds 500
    refused(Conflict, "order.insufficient_sp",
            lambda: orders.order(state, Order("o1", "b", "s1", D("1000000.00")), ctx(state)))
    # merchant.deposit_rule "sp_held": before its first order the store must hold SP worth 500.00 CNY:
    # 249.9999 SP x 2.00 = 499.9998 CNY < 500.00 (250 SP needed), whatever it deposited
    state.put_holder(replace(state.holder("s1"), sp_exact=D("249.9999"), deposits_cny=D("500.00")))
    refused(Conflict, "merchant.deposit_short",
            lambda: orders.order(state, Order("o1", "b", "s1", D("1.00")), ctx(state)))
    # the legacy rule "cash_paid" (books made before issue 13): deposits 499.99 < 500.00 CNY paid,
    # whatever SP it holds (1000 SP x 2.00 = 2000 CNY)
    state.put_holder(replace(state.holder("s1"), sp_exact=D("1000"), deposits_cny=D("499.99")))
    cash_paid = custom(merchant_deposit_rule="cash_paid")
    refused(Conflict, "merchant.deposit_short",
            lambda: orders.order(state, Order("o1", "b", "s1", D("1.00")), ctx(state, cash_paid)))


# -- SP leaving a holder --------------------------------------------------------------------------

def test_transfer():
    state = world()
    member(state, "a", sp="10.5")
    member(state, "b")
    tx = holdings.transfer(state, Transfer("a", "b", D("10.5")), ctx(state))
    assert lines(tx) == [(A.HOLDERS_SP, D("10.5"), "a", "from"), (A.HOLDERS_SP, D("-10.5"), "b", "to")]
    refused(Invalid, "transfer.same_holder", lambda: holdings.transfer(state, Transfer("a", "a", D("1")), ctx(state)))
    refused(Conflict, "transfer.insufficient_sp",
            lambda: holdings.transfer(state, Transfer("a", "b", D("10.5001")), ctx(state)))
    refused(NotFound, "holder.unknown", lambda: holdings.transfer(state, Transfer("a", "x", D("1")), ctx(state)))


def test_payout_request_reserves_the_cash_value_rounded_down():
    state = world("1.23456789", POOL="1000.00")
    member(state, "m1", sp="100")
    tx = holdings.payout_request(state, PayoutRequest("m1", D("100")), ctx(state))
    # 100 SP x 1.23456789 = 123.456789 CNY → 123.45 (down to the fen: the pool keeps the rest)
    assert tx.get("amount_cny") == "123.45"
    assert lines(tx) == [
        (A.HOLDERS_SP, D("100"), "m1", "redeemed"), (A.SP_REDEEMED, D("-100"), None, None),
        (A.POOL, D("-123.45"), None, None), (A.POOL_EQUITY, D("123.45"), None, None),
        (A.POOL_PAYOUTS, D("123.45"), None, None), (A.PAYOUTS_PAYABLE, D("-123.45"), None, None),
    ]


def test_payout_request_refusals():
    state = world("1.00", POOL="5.00")
    member(state, "m1", sp="100")
    refused(Conflict, "payout.insufficient_sp",
            lambda: holdings.payout_request(state, PayoutRequest("m1", D("100.0001")), ctx(state)))
    refused(Invalid, "payout.too_small",
            lambda: holdings.payout_request(state, PayoutRequest("m1", D("0.0099")), ctx(state)))  # 0.0099 CNY
    refused(Conflict, "pool.insufficient",  # 10 SP x 1.00 = 10.00 CNY, the pool holds 5.00
            lambda: holdings.payout_request(state, PayoutRequest("m1", D("10")), ctx(state)))


def pending_payout(state: MemoryState) -> Payout:
    payout = Payout("E000000777", "m1", D("100"), D("123.45"), "requested", DAY)
    state.put_payout(payout)
    return payout


def test_payout_settle_clears_the_payable():
    state = world()
    member(state, "m1")
    pending_payout(state)
    tx = holdings.payout_settle(state, PayoutSettle("E000000777", "BANK-1"), ctx(state))
    assert lines(tx) == [(A.POOL_PAYOUTS, D("-123.45"), None, None), (A.PAYOUTS_PAYABLE, D("123.45"), None, None)]
    assert tx.get("holder") == "m1" and tx.get("bank_reference") == "BANK-1"
    refused(NotFound, "payout.unknown", lambda: holdings.payout_settle(state, PayoutSettle("E1", "B"), ctx(state)))
    state.put_payout(replace(state.payout("E000000777"), status="settled"))
    refused(Conflict, "payout.not_pending",
            lambda: holdings.payout_settle(state, PayoutSettle("E000000777", "B"), ctx(state)))


def test_payout_cancel_restores_sp_and_cny_exactly():
    state = world()
    member(state, "m1")
    pending_payout(state)
    tx = holdings.payout_cancel(state, PayoutCancel("E000000777"), ctx(state))
    # the request's six postings mirrored: 100 SP back to m1, 123.45 CNY back into the pool
    assert lines(tx) == [
        (A.HOLDERS_SP, D("-100"), "m1", "restored"), (A.SP_REDEEMED, D("100"), None, None),
        (A.POOL, D("123.45"), None, None), (A.POOL_PAYOUTS, D("-123.45"), None, None),
        (A.POOL_EQUITY, D("-123.45"), None, None), (A.PAYOUTS_PAYABLE, D("123.45"), None, None),
    ]


def test_redeem_pays_the_platform_at_the_days_value():
    state = world("2.50", POOL="1000.00")
    member(state, "m1", sp="40")
    tx = holdings.redeem(state, Redeem("m1", D("40"), "a cup"), ctx(state))
    # 40 SP x 2.50 = 100.00 CNY out of the pool, into the platform's cash
    assert lines(tx) == [
        (A.HOLDERS_SP, D("40"), "m1", "redeemed"), (A.SP_REDEEMED, D("-40"), None, None),
        (A.POOL, D("-100.00"), None, None), (A.POOL_EQUITY, D("100.00"), None, None),
        (A.PLATFORM_CASH, D("100.00"), None, None), (A.REDEMPTION_INCOME, D("-100.00"), None, None),
    ]
    refused(Conflict, "redeem.insufficient_sp", lambda: holdings.redeem(state, Redeem("m1", D("41"), "x"), ctx(state)))


# -- reversal -------------------------------------------------------------------------------------

def test_reverse_mirrors_a_folded_order():
    state = order_world()
    booked = orders.order(state, Order("o1", "b", "s1", D("1000.00")), ctx(state))
    fold(state, booked)
    event_id = booked.get("event")
    tx = reverse.reverse(state, Reverse(event_id), ctx(state))
    # every posting again, sign flipped, same holder and leg
    assert lines(tx) == [(a, -n, h, leg) for a, n, h, leg in lines(booked)]
    assert tx.get("reverses") == event_id and tx.get("reversed_kind") == "order"
    fold(state, tx)
    refused(Conflict, "reverse.already_reversed", lambda: reverse.reverse(state, Reverse(event_id), ctx(state)))


def test_reverse_refusals():
    state = order_world()
    refused(NotFound, "event.unknown", lambda: reverse.reverse(state, Reverse("E000000404"), ctx(state)))
    state.record_event(EventRecord("E000000405", "deposit", ()), None)
    refused(Conflict, "reverse.not_reversible", lambda: reverse.reverse(state, Reverse("E000000405"), ctx(state)))
    booked = holdings.transfer(state, Transfer("s1", "b", D("10")), ctx(state))
    fold(state, booked)
    state.put_holder(replace(state.holder("b"), sp_exact=D("9.9999")))  # b spent some of it
    refused(Conflict, "reverse.insufficient_balance",
            lambda: reverse.reverse(state, Reverse(booked.get("event")), ctx(state)))


# -- the daily close ------------------------------------------------------------------------------

def active_world(value: str, active_sv: str, **balances: str) -> MemoryState:
    """`active_sv` active SV held as shares at SV index 1."""
    state = world(value, HOLDERS_SV_ACTIVE=f"-{active_sv}", **balances)
    state.g.total_shares = D(active_sv)
    return state


def test_release_converts_active_sv_at_the_days_value():
    state = active_world("2.00", "1000")
    tx = close.release(state.g, ctx(state))
    # R = min(daily 500, cap 390000 - issued 0, 1000 SV / 2.00 = 500) = 500 SP; C = 500 x 2.00 = 1000 SV
    assert lines(tx) == [(A.HOLDERS_SV_ACTIVE, D("1000"), None, None), (A.SV_CONVERTED, D("-1000"), None, None),
                         (A.SP_RELEASED, D("500"), None, None), (A.HOLDERS_SP, D("-500"), None, None)]
    assert tx.kind == EventKind.RELEASE and tx.get("released_sp") == "500.0000"
    # the indices after: SP index 0 + 500 / 1000 shares = 0.5; SV index 1 - 1000 / 1000 = 0 → a new epoch
    assert D(tx.get("sp_index")) == D("0.5") and tx.get("epoch") == "1"


def test_release_is_capped_by_the_daily_amount_and_the_cap():
    state = active_world("0.50", "1000")
    # 1000 SV / 0.50 = 2000 SP > daily 500: R = 500 SP, C = 500 x 0.50 = 250 SV
    assert close.release_amounts(state.g, PARAMS) == (D("500"), D("250.0000"))
    state = active_world("1.00", "1000", SP_SOLD="389900")
    # cap 390000 - issued 389900 = 100 SP: R = 100 SP, C = 100 SV
    assert close.release_amounts(state.g, PARAMS) == (D("100"), D("100.0000"))
    assert close.release_amounts(world().g, PARAMS) == (0, 0)  # no active SV: nothing to release


def test_price_is_pool_over_circulating():
    state = world(POOL="1000.00", SP_RELEASED="400", SP_SOLD="150", SP_BURNED="-30", SP_REDEEMED="-20")
    price = close.price(state.g, DAY + timedelta(days=1), 9, PARAMS)
    # circulating = 400 + 150 - 30 - 20 = 500 SP; value = 1000.00 / 500 = 2.00000000
    assert price.number == D("2.00000000") and price.date == DAY + timedelta(days=1)
    assert price.get("circulating_sp") == "500" and price.get("kind") == "price"
    # nothing circulating: sp.initial_value 1.00
    assert close.price(world().g, DAY, 1, PARAMS).number == D("1.00000000")


def test_genesis_carries_the_rules_and_no_posting():
    state = world()
    tx = close.genesis(PARAMS, DAY, ctx(state))
    assert tx.postings == () and tx.kind == "genesis" and tx.get("sp_cap") == PARAMS.to_meta()["sp_cap"]


# -- dispatch -------------------------------------------------------------------------------------

@pytest.mark.parametrize("event, rule", [
    (Register("n1"), members.register), (SetRole("b", "vip"), members.set_role),
    (BuyPack("b", "activation"), members.buy_pack),
    (OpenStore("s9", "b", "441900", "online", D("0.1")), stores.open_store),
    (Deposit(D("100.00"), platform=True), stores.deposit), (Order("o9", "b", "s1", D("10.00")), orders.order),
    (Transfer("s1", "b", D("1")), holdings.transfer), (PayoutRequest("s1", D("1")), holdings.payout_request),
    (Redeem("s1", D("1"), "x"), holdings.redeem),
])
def test_book_dispatches_each_event_type_to_its_rule(event: Event, rule):
    state = order_world()
    state.g.balances[A.POOL] = D("1000.00")
    context = ctx(state)
    assert rules.book(state, event, context) == rule(state, event, context)


def test_every_event_kind_is_an_enum_member_equal_to_its_string():
    assert [kind for kind in rules.EVENT_TYPES] == [*rules.CLIENT_KINDS, EventKind.RELEASE, *rules.ENGINE_KINDS]
    assert all(isinstance(kind, str) and kind == kind.value for kind in EventKind)
    assert Release.kind == "release" and Order.kind == EventKind.ORDER
