"""SPEC §8: every worked example of the seed documents, reproduced through the engine.

Every expected number below is derived by hand from SPEC §2 (parameters) and §4
(what each event books); the arithmetic is written next to it.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ledger_service import accounts as A
from ledger_service.errors import Conflict
from ledger_service.rules.events import (BuyPack, Deposit, OpenStore, Order, PayoutRequest, Redeem,
                                         Register)

from booking_helpers import control, custom, journal_bytes, one
from conftest import START

D = Decimal


DAY2 = START + timedelta(days=1)
DAY3 = START + timedelta(days=2)
DAY4 = START + timedelta(days=3)


def store_with_deposit(engine, day=START, channel="offline", rebate="0.10", deposit="500.00"):
    """Owner `own` (active), store `s1` at `rebate`, `deposit` CNY bought as SP at the day's value."""
    engine.submit(Register("own"), day)
    engine.submit(BuyPack("own", "activation"), day)
    engine.submit(OpenStore("s1", "own", "441900", channel, D(rebate)), day)
    engine.submit(Deposit(D(deposit), merchant="s1"), day)


# -- §8.1 order of 1000 CNY at a 10 % rebate ---------------------------------------------

@pytest.mark.parametrize("channel", ["offline", "online"])
def test_order_1000_cny_at_10_percent(engine, channel):
    store_with_deposit(engine, channel=channel)
    engine.submit(Register("buyer"), START)
    engine.submit(BuyPack("buyer", "activation"), START)
    buyer_before = engine.holder("buyer")
    store_before = engine.holder("s1")
    # buyer: 300 registration SV unlocked + 299 SV pack return = 599 active SV
    assert buyer_before["sv_active"] == D("599")
    # store: 500 CNY deposit at the initial value 1.00 = 500 SP
    assert store_before["sp"] == D("500")
    assert store_before["sv_active"] == 0

    booked = engine.submit(Order("o1", "buyer", "s1", D("1000.00"), ship_region=None), START)

    # R = 1000 x 0.10 = 100 CNY; D = 100 / 1.00 = 100 SP
    assert booked.entry.get("rebate_cny") == "100.00"
    assert D(booked.entry.get("deducted_sp")) == D("100")
    # buyer earns 10 x 100 = 1000 SV, merchant 2 x 100 = 200 SV
    assert one(booked, leg="buyer").number == D("-1000")
    assert one(booked, leg="buyer").holder == "buyer"
    assert one(booked, leg="buyer").account == A.HOLDERS_SV_ACTIVE
    assert one(booked, leg="merchant").number == D("-200")
    assert one(booked, leg="merchant").holder == "s1"
    assert one(booked, leg="deduct").number == D("100")
    # nobody else to pay (no referrer, no partner): all 100 SP burned
    assert one(booked, leg="burn").number == D("-100")
    assert one(booked, account=A.SV_GRANTED).number == D("1200")  # 1000 + 200

    buyer = engine.holder("buyer")
    store = engine.holder("s1")
    assert buyer["sv_active"] == buyer_before["sv_active"] + D("1000")  # 599 + 1000 = 1599
    assert buyer["sv_active"] == D("1599")
    assert buyer["sp"] == 0
    assert store["sv_active"] == D("200")
    assert store["sp"] == D("400")  # 500 - 100


# -- §8.2 release: 1000 of 100 000 active SV, daily release 500 -> 5 SP -----------------

@pytest.mark.parametrize("value", ["1.00", "1.5"])
def test_release_holder_with_1000_of_100000_active_sv(make_books, params, value):
    """Active SV totals exactly 100 000: holder a1 has 1000 (activation pack priced 1000, no
    registration grant, ratio 1), holder b1 has 99 000 (partner pack priced 99 000). Nothing
    circulates, so the day's value is `sp.initial_value` (1.00, or 1.5 for a value v != 1)."""
    rules_ = custom(
        params, sv_registration_grant=D("0"), pack_activation_price=D("1000.00"),
        pack_partner_price=D("99000.00"), sp_initial_value=D(value),
    )
    engine = make_books(rules_)
    v = D(value)
    engine.submit(Register("a1"), START)
    engine.submit(BuyPack("a1", "activation"), START)
    engine.submit(Register("b1"), START)
    engine.submit(BuyPack("b1", "partner", region="441900"), START)
    assert engine.holder("a1")["sv_active"] == D("1000")
    assert engine.holder("b1")["sv_active"] == D("99000")
    assert D(engine.head()["value_cny_per_sp"]) == v

    closed = engine.close_days(START)
    release = closed[0]
    assert release.kind == "release" and release.day == START
    # R = min(500, 390000 - 0, 100000 / v) = 500 SP (100000 / 1.5 = 66666.67 > 500)
    assert D(release.entry.get("released_sp")) == D("500")
    assert D(release.entry.get("sv_total")) == D("100000")
    # converted SV = 500 x v  (500 at v = 1, 750 at v = 1.5)
    assert D(release.entry.get("converted_sv")) == D("500") * v
    assert one(release, account=A.SP_RELEASED).number == D("500")
    assert one(release, account=A.HOLDERS_SP).number == D("-500")
    assert one(release, account=A.HOLDERS_SV_ACTIVE).number == D("500") * v
    assert one(release, account=A.SV_CONVERTED).number == -D("500") * v
    # O(1): the release carries four postings, none per holder
    assert len(release.entry.postings) == 4
    assert all(p.holder is None for p in release.entry.postings)

    a1 = engine.holder("a1")
    b1 = engine.holder("b1")
    # a1: 1000 / 100000 x 500 = 5 SP, gives up 5 x v SV
    assert a1["sp"] == D("5")
    assert a1["sv_active"] == D("1000") - D("5") * v  # 995 or 992.5
    # b1: 99000 / 100000 x 500 = 495 SP, gives up 495 x v SV
    assert b1["sp"] == D("495")
    assert b1["sv_active"] == D("99000") - D("495") * v  # 98505 or 98257.5
    assert a1["sp"] + b1["sp"] == D("500")


# -- §8.3 value = pool / circulating -------------------------------------------------

def _no_release(params):
    # no daily release, so only the events under test move the value
    return custom(params, sp_daily_release=D("0"))


def test_burn_with_pool_unchanged_raises_value_and_payout_leaves_it(make_books, params):
    engine = make_books(_no_release(params))
    store_with_deposit(engine)                    # pool 500 CNY, 500 SP sold at 1.00
    engine.submit(Register("guest"), START)       # inactive buyer: all of D is burned
    engine.close_days(START)
    # value(day 2) = 500 CNY / 500 SP = 1.00
    assert D(engine.head()["value_cny_per_sp"]) == D("1.00")

    pool_before = control(engine)[A.POOL]
    booked = engine.submit(Order("o1", "guest", "s1", D("1000.00")), DAY2)
    # R = 100 CNY, D = 100 SP, all burned; the pool is untouched
    assert one(booked, leg="burn").number == D("-100")
    assert control(engine)[A.POOL] == pool_before == D("500")
    closed = engine.close_days(DAY2)
    price = closed[-1]
    assert price.kind == "price" and price.day == DAY3
    # value(day 3) = 500 / (500 - 100) = 1.25 > 1.00: the burn raised it
    assert price.entry.number == D("1.25")
    assert D(engine.head()["value_cny_per_sp"]) == D("1.25")

    # payout of 100 SP at 1.25 = 125 CNY out of the pool
    payout = engine.submit(PayoutRequest("s1", D("100")), DAY3)
    assert D(payout.entry.get("amount_cny")) == D("125.00")
    # and a redemption of 40 SP at 1.25 = 50 CNY out of the pool
    redeem = engine.submit(Redeem("s1", D("40"), "tea"), DAY3)
    assert D(redeem.entry.get("amount_cny")) == D("50.00")
    assert control(engine)[A.POOL] == D("325")     # 500 - 125 - 50
    closed = engine.close_days(DAY3)
    # value(day 4) = 325 / (400 - 100 - 40) = 325 / 260 = 1.25: unchanged
    assert closed[-1].entry.number == D("1.25")
    assert engine.supply(DAY3)["closing_value_cny_per_sp"] == "1.25000000"
    assert D(engine.supply(DAY3)["circulating"]) == D("260")


def test_platform_injection_raises_value_and_release_lowers_it(make_books, params):
    engine = make_books(_no_release(params))
    store_with_deposit(engine)                               # 500 CNY / 500 SP
    engine.submit(Deposit(D("250.00"), platform=True), START)
    closed = engine.close_days(START)
    # value(day 2) = (500 + 250) / 500 = 1.5
    assert closed[-1].entry.number == D("1.5")


# -- §8.4 a merchant whose SP is below the order's deduction cannot take it ----------

def test_merchant_below_deduction_cannot_take_order(engine):
    store_with_deposit(engine)                    # s1 holds 500 SP
    engine.submit(Register("buyer"), START)
    engine.submit(BuyPack("buyer", "activation"), START)
    before = (journal_bytes(engine), engine.head(), engine.holder("s1"), engine.holder("buyer"))

    # 6000 CNY x 0.10 = 600 CNY -> D = 600 SP > 500 SP held: refused
    with pytest.raises(Conflict) as refused:
        engine.submit(Order("big", "buyer", "s1", D("6000.00")), START)
    assert refused.value.rule == "order.insufficient_sp"
    assert (journal_bytes(engine), engine.head(), engine.holder("s1"), engine.holder("buyer")) == before
    assert engine.event_for_order("big") is None

    # the boundary: D = 500 SP exactly equals what the store holds, so it is taken
    booked = engine.submit(Order("exact", "buyer", "s1", D("5000.00")), START)
    assert one(booked, leg="deduct").number == D("500")
    assert engine.holder("s1")["sp"] == 0
    # and now even the smallest order is refused: at 0 SP a store takes no orders (issue 13,
    # 「数量低于0时，消费者无法在该商家下单」; 0.10 x 0.10 = 0.01 CNY -> 0.01 SP > 0 anyway)
    assert engine.holder("s1")["can_take_orders"] is False
    with pytest.raises(Conflict) as refused:
        engine.submit(Order("tiny", "buyer", "s1", D("0.10")), START)
    assert refused.value.rule == "merchant.no_sp"
