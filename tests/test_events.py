"""SPEC §4: every event kind as booked by the engine, and every refusal booking nothing.

Unless a test says otherwise the books run on profile seed-a (SPEC §2) and every event is
booked on START, the first open day, where the value of a point is `sp.initial_value`
= 1.00 CNY. The expected amounts are derived by hand in the comments.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ledger_service import accounts as A
from ledger_service import config
from ledger_service.errors import Conflict, Invalid, NotFound, Refusal
from ledger_service.rules.events import (BuyPack, Deposit, OpenStore, Order, PayoutCancel, PayoutRequest,
                                         PayoutSettle, Redeem, Register, Reverse, SetRole, Transfer, parse)

from booking_helpers import control, custom, journal_bytes, one, postings
from conftest import START, TODAY

D = Decimal


DAY2 = START + timedelta(days=1)
DAY3 = START + timedelta(days=2)


def snapshot(engine, holders=()):
    return {
        "journal": journal_bytes(engine),
        "head": engine.head(),
        "control": control(engine),
        "holders": {h: engine.holder(h) for h in holders},
    }


def assert_refused(engine, event, day, exc_type, rule, holders=(), field=None) -> Refusal:
    """Submitting `event` raises `exc_type` with `rule`, and nothing is booked anywhere."""
    before = snapshot(engine, holders)
    with pytest.raises(exc_type) as info:
        engine.submit(event, day)
    assert info.value.rule == rule, info.value
    if field is not None:
        assert info.value.field == field
    after = snapshot(engine, holders)
    assert after["journal"] == before["journal"]
    assert after["head"] == before["head"]
    assert after["control"] == before["control"]
    assert after["holders"] == before["holders"]
    return info.value


def member(engine, mid, *, referrer=None, active=True, role=None, day=START, region=None):
    engine.submit(Register(mid, referrer=referrer, region=region), day)
    if active:
        engine.submit(BuyPack(mid, "activation"), day)
    if role:
        engine.submit(SetRole(mid, role), day)


def store(engine, sid, owner="own", *, channel="offline", region="441900", rebate="0.10", referrer=None,
          deposit="500.00", day=START):
    engine.submit(OpenStore(sid, owner, region, channel, D(rebate), referrer), day)
    if deposit:
        engine.submit(Deposit(D(deposit), merchant=sid), day)


def no_release(params):
    return custom(params, sp_daily_release=D("0"))


@pytest.fixture
def shop(engine):
    """seed-a books with an active owner `own`, offline store `s1` holding 500 SP (500 CNY at
    1.00), and an active buyer `b1` (599 active SV)."""
    member(engine, "own")
    store(engine, "s1")
    member(engine, "b1")
    return engine


# -- register ---------------------------------------------------------------------------

def test_register_without_referrer(engine):
    booked = engine.submit(Register("m1", region="441900"), START)
    assert booked.kind == "register" and booked.day == START
    assert booked.entry.get("member") == "m1"
    assert booked.entry.get("region") == "441900"
    # seed-a: 300 locked SV granted
    grant = one(booked, account=A.HOLDERS_SV_LOCKED)
    assert (grant.number, grant.holder, grant.get("leg")) == (D("-300"), "m1", "registration")
    assert one(booked, account=A.SV_GRANTED).number == D("300")
    assert len(booked.entry.postings) == 2
    m1 = engine.holder("m1")
    assert (m1["sv_locked"], m1["sv_active"], m1["sp"], m1["active"]) == (D("300"), 0, 0, False)
    assert m1["referrer"] is None and m1["region"] == "441900"


def test_register_with_referrer_seed_a(engine):
    engine.submit(Register("ref"), START)
    booked = engine.submit(Register("m1", referrer="ref"), START)
    assert booked.entry.get("referrer") == "ref"
    # seed-a: sv.referrer_registration_grant = 0, so only the new member's 300 SV
    assert [p.holder for p in booked.entry.postings if p.holder] == ["m1"]
    assert engine.holder("m1")["referrer"] == "ref"
    assert engine.holder("ref")["sv_locked"] == D("300")


def test_seed_b_referrer_grant_locked_then_active(make_books):
    engine = make_books(config.load("seed-b"))
    engine.submit(Register("ref"), START)                      # ref: 200 locked
    booked = engine.submit(Register("n1", referrer="ref"), START)
    # ref is inactive: the 200 SV referrer grant is locked
    bonus = one(booked, leg="referrer")
    assert (bonus.account, bonus.holder, bonus.number) == (A.HOLDERS_SV_LOCKED, "ref", D("-200"))
    assert one(booked, leg="registration").number == D("-200")
    assert sum(p.number for p in postings(booked, account=A.SV_GRANTED)) == D("400")   # 200 + 200
    assert engine.holder("ref")["sv_locked"] == D("400")
    assert engine.holder("ref")["sv_active"] == 0

    engine.submit(BuyPack("ref", "activation"), START)
    # activation: 400 locked -> active, + 299 SV pack return
    ref = engine.holder("ref")
    assert (ref["sv_locked"], ref["sv_active"]) == (0, D("699"))

    booked = engine.submit(Register("n2", referrer="ref"), START)
    # ref is active now: the referrer grant is active SV
    bonus = one(booked, leg="referrer")
    assert (bonus.account, bonus.holder, bonus.number) == (A.HOLDERS_SV_ACTIVE, "ref", D("-200"))
    ref = engine.holder("ref")
    assert (ref["sv_locked"], ref["sv_active"]) == (0, D("899"))  # 699 + 200
    assert engine.holder("n2")["sv_locked"] == D("200")


# -- set_role, buy_pack ------------------------------------------------------------------

def test_set_role(engine):
    engine.submit(Register("m1"), START)
    booked = engine.submit(SetRole("m1", "shop_owner"), START)
    assert booked.entry.postings == ()
    assert booked.entry.get("role") == "shop_owner"
    assert booked.entry.get("previous_role") == "member"
    assert engine.holder("m1")["role"] == "shop_owner"
    booked = engine.submit(SetRole("m1", "service_provider"), START)
    assert booked.entry.get("previous_role") == "shop_owner"
    assert engine.holder("m1")["role"] == "service_provider"


def test_buy_activation_pack_activates_and_returns_sv(engine):
    engine.submit(Register("m1"), START)
    booked = engine.submit(BuyPack("m1", "activation"), START)
    # 299 CNY to the platform (pool_share 0: nothing to the pool)
    assert one(booked, account=A.PLATFORM_CASH).number == D("299")
    assert one(booked, account=A.PACK_INCOME).number == D("-299")
    assert postings(booked, account=A.POOL) == []
    # unlock 300 locked SV, then 1 x 299 = 299 SV
    assert one(booked, leg="unlock", account=A.HOLDERS_SV_LOCKED).number == D("300")
    assert one(booked, leg="unlock", account=A.HOLDERS_SV_ACTIVE).number == D("-300")
    assert one(booked, leg="pack").number == D("-299")
    assert one(booked, account=A.SV_GRANTED).number == D("299")
    m1 = engine.holder("m1")
    assert (m1["active"], m1["sv_locked"], m1["sv_active"]) == (True, 0, D("599"))

    # a pack bought by an active member still returns its SV, with nothing to unlock
    again = engine.submit(BuyPack("m1", "activation"), START)
    assert postings(again, leg="unlock") == []
    assert one(again, leg="pack").number == D("-299")
    assert engine.holder("m1")["sv_active"] == D("898")  # 599 + 299


def test_pack_pool_share_goes_to_the_pool(make_books, params):
    engine = make_books(custom(params, pack_pool_share=D("0.10")))
    engine.submit(Register("m1"), START)
    booked = engine.submit(BuyPack("m1", "activation"), START)
    # 10 % of 299 = 29.90 CNY to the pool, 269.10 kept by the platform
    assert one(booked, account=A.POOL).number == D("29.90")
    assert one(booked, account=A.POOL_EQUITY).number == D("-29.90")
    assert one(booked, account=A.PLATFORM_CASH).number == D("269.10")
    assert one(booked, account=A.PACK_INCOME).number == D("-269.10")


def test_buy_partner_pack_appoints_region(engine):
    engine.submit(Register("p1"), START)
    booked = engine.submit(BuyPack("p1", "partner", region="441900"), START)
    assert booked.entry.get("region") == "441900"
    # 4999 CNY to the platform; 300 unlocked + 4999 SV returned
    assert one(booked, account=A.PLATFORM_CASH).number == D("4999")
    assert one(booked, leg="pack").number == D("-4999")
    assert engine.holder("p1")["sv_active"] == D("5299")
    assert engine.holder("p1")["active"] is True
    # the region is taken now (see the refusal tests) and p1 earns the region's partner share
    member(engine, "own")
    store(engine, "s1", region="441900")
    member(engine, "b1")
    order = engine.submit(Order("o1", "b1", "s1", D("1000.00")), START)
    # 0.08 x D = 0.08 x 100 SP = 8 SP
    leg = one(order, leg="partner")
    assert (leg.holder, leg.number, leg.get("region")) == ("p1", D("-8"), "441900")


# -- open_store, deposit -----------------------------------------------------------------

@pytest.mark.parametrize("channel", ["online", "offline"])
def test_open_store(engine, channel):
    member(engine, "own")
    engine.submit(Register("ref"), START)
    booked = engine.submit(OpenStore("s1", "own", "110105", channel, D("0.15"), "ref"), START)
    assert booked.entry.postings == ()
    assert booked.entry.get("channel") == channel
    s1 = engine.holder("s1")
    assert s1["kind"] == "merchant"
    assert (s1["owner"], s1["channel"], s1["region"], s1["store_referrer"]) == ("own", channel, "110105", "ref")
    assert s1["rebate_rate"] == D("0.15")
    assert (s1["deposits_cny"], s1["can_take_orders"], s1["sp"], s1["sv_active"]) == (0, False, 0, 0)


def test_merchant_deposit_buys_sp_at_value_against_cap(make_books, params):
    engine = make_books(no_release(params))
    member(engine, "own")
    store(engine, "s1", deposit=None)
    booked = engine.submit(Deposit(D("499.99"), merchant="s1"), START)
    # at 1.00 CNY/SP: 499.99 SP sold, pool +499.99
    assert one(booked, account=A.SP_SOLD).number == D("499.99")
    sold = one(booked, leg="deposit")
    assert (sold.holder, sold.number) == ("s1", D("-499.99"))
    assert one(booked, account=A.POOL).number == D("499.99")
    assert engine.holder("s1")["can_take_orders"] is False  # 499.99 < 500 deposit value
    engine.submit(Deposit(D("0.01"), merchant="s1"), START)
    s1 = engine.holder("s1")
    assert (s1["deposits_cny"], s1["can_take_orders"], s1["sp"]) == (D("500"), True, D("500"))
    engine.submit(Deposit(D("250.00"), platform=True), START)
    engine.close_days(START)
    # value(day 2) = 750 / 500 = 1.5
    assert D(engine.head()["value_cny_per_sp"]) == D("1.5")

    booked = engine.submit(Deposit(D("300.00"), merchant="s1"), DAY2)
    # 300 CNY / 1.5 = 200 SP
    assert D(booked.entry.get("value")) == D("1.5")
    assert one(booked, account=A.SP_SOLD).number == D("200")
    booked = engine.submit(Deposit(D("100.00"), merchant="s1"), DAY2)
    # 100 / 1.5 = 66.66666.. -> rounded down to 66.6666 SP (the pool keeps the crumb)
    assert one(booked, account=A.SP_SOLD).number == D("66.6666")
    s1 = engine.holder("s1")
    assert s1["sp"] == D("766.6666")               # 500 + 200 + 66.6666
    assert s1["deposits_cny"] == D("900")          # 500 + 300 + 100
    supply = engine.supply()
    assert D(supply["sold"]) == D("766.6666")
    assert D(supply["issued"]) == D("766.6666")
    assert D(supply["pool_cny"]) == D("1150")      # 500 + 250 + 300 + 100
    closed = engine.close_days(DAY2)
    # 1150 / 766.6666 = 1.500000130434788... -> 1.50000013: a sale at the value leaves it
    # unchanged but for the rounded-down crumb kept by the pool
    assert closed[-1].entry.number == D("1.50000013")


def test_platform_injection_raises_value(make_books, params):
    engine = make_books(no_release(params))
    member(engine, "own")
    store(engine, "s1")                                  # 500 CNY -> 500 SP
    booked = engine.submit(Deposit(D("100.00"), platform=True), START)
    assert booked.entry.get("platform") == "true"
    assert one(booked, account=A.POOL).number == D("100")
    assert one(booked, account=A.POOL_EQUITY).number == D("-100")
    assert postings(booked, account=A.SP_SOLD) == []
    assert len(booked.entry.postings) == 2
    assert D(engine.supply()["issued"]) == D("500")     # nothing issued
    closed = engine.close_days(START)
    # value(day 2) = 600 / 500 = 1.2 > 1.00
    assert closed[-1].entry.number == D("1.2")


# -- orders ------------------------------------------------------------------------------

def _network(engine):
    """own (active), sref (active, store referrer), p1 (partner of 441900, bought today),
    ref (active vip), buyer b1 (active, referred by ref)."""
    member(engine, "own")
    member(engine, "sref")
    engine.submit(Register("p1"), START)
    engine.submit(BuyPack("p1", "partner", region="441900"), START)
    member(engine, "ref", role="vip")
    member(engine, "b1", referrer="ref")


def test_offline_order_every_leg(make_books, db_url):
    engine = make_books(db_url=db_url)
    _network(engine)
    store(engine, "s1", region="441900", referrer="sref")
    booked = engine.submit(Order("o1", "b1", "s1", D("1000.00")), START)
    e = booked.entry
    assert (e.get("order_id"), e.get("buyer"), e.get("merchant"), e.get("channel")) == ("o1", "b1", "s1", "offline")
    # R = 1000 x 0.10 = 100 CNY; D = 100 / 1.00 = 100 SP; G (buyer's SV gain) = 10 x 100 = 1000
    assert (e.get("rebate_cny"), D(e.get("deducted_sp")), D(e.get("value"))) == ("100.00", D("100"), D("1"))
    legs = {(p.get("leg"), p.holder, p.account): p.number for p in e.postings}
    assert legs == {
        ("deduct", "s1", A.HOLDERS_SP): D("100"),
        ("referrer", "ref", A.HOLDERS_SP): D("-50"),        # 0.05 x 1000 CNY / 1.00 = 50 SP
        ("store_referrer", "sref", A.HOLDERS_SP): D("-5"),  # 0.05 x 100 SP
        ("partner", "p1", A.HOLDERS_SP): D("-8"),           # 0.08 x 100 SP
        ("burn", None, A.SP_BURNED): D("-37"),              # 100 - 50 - 5 - 8
        ("buyer", "b1", A.HOLDERS_SV_ACTIVE): D("-1000"),   # 10 x 100
        ("merchant", "s1", A.HOLDERS_SV_ACTIVE): D("-200"), # 2 x 100
        ("team", "ref", A.HOLDERS_SV_ACTIVE): D("-50"),     # vip 0.05 x 1000
        (None, None, A.SV_GRANTED): D("1250"),              # 1000 + 200 + 50
    }
    assert e.get("postings") == "9"
    assert one(booked, leg="partner").get("region") == "441900"
    assert one(booked, leg="burn").get("merchant") == "s1"

    assert engine.holder("s1")["sp"] == D("400")
    assert engine.holder("s1")["sv_active"] == D("200")
    assert engine.holder("ref")["sp"] == D("50")
    assert engine.holder("ref")["sv_active"] == D("649")    # 599 + 50
    assert engine.holder("sref")["sp"] == D("5")
    assert engine.holder("p1")["sp"] == D("8")
    assert engine.holder("b1")["sv_active"] == D("1599")    # 599 + 1000
    assert D(engine.supply()["burned"]) == D("37")
    assert engine.event(booked.event_id)["kind"] == "order"
    assert engine.event_for_order("o1") == booked.event_id


def test_offline_order_split_at_a_value_above_one(make_books, params):
    engine = make_books(no_release(params))
    _network(engine)
    store(engine, "s1", region="441900", referrer="sref")        # 500 CNY -> 500 SP
    engine.submit(Deposit(D("125.00"), platform=True), START)
    engine.close_days(START)                                     # value(day 2) = 625 / 500 = 1.25
    booked = engine.submit(Order("o1", "b1", "s1", D("1000.00")), DAY2)
    # R = 100 CNY; D = 100 / 1.25 = 80 SP; G = 10 x 100 = 1000 SV
    assert D(booked.entry.get("value")) == D("1.25")
    legs = {(p.get("leg"), p.holder): p.number for p in booked.entry.postings}
    assert legs == {
        ("deduct", "s1"): D("80"),
        ("referrer", "ref"): D("-40"),          # SP worth 0.05 x 1000 CNY at 1.25 = 50 / 1.25
        ("store_referrer", "sref"): D("-4"),    # 0.05 x 80
        ("partner", "p1"): D("-6.4"),           # 0.08 x 80
        ("burn", None): D("-29.6"),             # 80 - 40 - 4 - 6.4
        ("buyer", "b1"): D("-1000"),            # SV gains do not depend on the value
        ("merchant", "s1"): D("-200"),
        ("team", "ref"): D("-50"),
        (None, None): D("1250"),
    }


def test_submit_many_is_all_or_nothing(shop):
    before = snapshot(shop, ["s1", "b1"])
    with pytest.raises(Conflict) as info:
        shop.submit_many([
            (Register("n1"), START),
            (Transfer("s1", "b1", D("10")), START),
            (Order("o1", "b1", "s1", D("99999.00")), START),
        ])
    # s1's first order: it holds 500 - 10 = 490 SP worth 490.00 CNY < the 500.00 CNY deposit
    # (merchant.deposit_rule "sp_held")
    assert info.value.rule == "merchant.deposit_short"
    assert snapshot(shop, ["s1", "b1"]) == before
    with pytest.raises(NotFound):
        shop.holder("n1")
    booked = shop.submit_many([(Register("n1"), START), (Transfer("s1", "n1", D("10")), START)])
    assert [b.kind for b in booked] == ["register", "transfer"]
    assert booked[1].prev == booked[0].hash
    assert shop.holder("n1")["sp"] == D("10")


def test_online_order_every_leg(engine):
    _network(engine)
    # an online store in another region, with a referrer: the partner is the ship region's,
    # and an online store's referrer earns nothing
    store(engine, "w1", channel="online", region="110105", referrer="sref")
    booked = engine.submit(Order("o1", "b1", "w1", D("1000.00"), ship_region="441900"), START)
    legs = {(p.get("leg"), p.holder, p.account): p.number for p in booked.entry.postings}
    assert legs == {
        ("deduct", "w1", A.HOLDERS_SP): D("100"),
        ("partner", "p1", A.HOLDERS_SP): D("-8"),            # 0.08 x 100 SP
        ("burn", None, A.SP_BURNED): D("-92"),               # 100 - 8
        ("buyer", "b1", A.HOLDERS_SV_ACTIVE): D("-1000"),
        ("merchant", "w1", A.HOLDERS_SV_ACTIVE): D("-200"),
        ("referrer", "ref", A.HOLDERS_SV_ACTIVE): D("-400"), # 0.40 x 1000 SV
        ("team", "ref", A.HOLDERS_SV_ACTIVE): D("-50"),      # vip 0.05 x 1000
        (None, None, A.SV_GRANTED): D("1650"),               # 1000 + 200 + 400 + 50
    }
    assert engine.holder("ref")["sv_active"] == D("1049")   # 599 + 400 + 50
    assert engine.holder("ref")["sp"] == 0
    # without a ship region an online order pays no partner
    booked = engine.submit(Order("o2", "b1", "w1", D("100.00")), START)
    assert postings(booked, leg="partner") == []
    assert one(booked, leg="burn").number == D("-10")        # D = 10 SP, all burned


def test_quote_books_nothing_and_matches_the_order(shop):
    before = snapshot(shop, ["s1", "b1"])
    quote = shop.quote(Order("o1", "b1", "s1", D("250.00")), START)
    assert snapshot(shop, ["s1", "b1"]) == before
    booked = shop.submit(Order("o1", "b1", "s1", D("250.00")), START)
    assert booked.entry.postings == quote.entry.postings
    assert one(booked, leg="buyer").number == D("-250")      # 10 x 25


# -- transfer, payout, redeem ----------------------------------------------------------

def test_transfer(shop):
    booked = shop.submit(Transfer("s1", "b1", D("123.4567")), START)
    src, dst = one(booked, leg="from"), one(booked, leg="to")
    assert (src.holder, src.number, src.account) == ("s1", D("123.4567"), A.HOLDERS_SP)
    assert (dst.holder, dst.number) == ("b1", D("-123.4567"))
    assert len(booked.entry.postings) == 2
    assert shop.holder("s1")["sp"] == D("376.5433")    # 500 - 123.4567
    assert shop.holder("b1")["sp"] == D("123.4567")


def test_payout_request_and_settle(shop):
    before_pool = control(shop)[A.POOL]
    request = shop.submit(PayoutRequest("s1", D("100")), START)
    # 100 SP x 1.00 = 100.00 CNY from the pool to the payable
    assert D(request.entry.get("amount_cny")) == D("100")
    amounts = {p.account: p.number for p in request.entry.postings}
    assert amounts == {
        A.HOLDERS_SP: D("100"), A.SP_REDEEMED: D("-100"),
        A.POOL: D("-100"), A.POOL_PAYOUTS: D("100"), A.POOL_EQUITY: D("100"), A.PAYOUTS_PAYABLE: D("-100"),
    }
    assert one(request, account=A.HOLDERS_SP).holder == "s1"
    assert shop.holder("s1")["sp"] == D("400")
    assert control(shop)[A.POOL] == before_pool - 100
    assert D(shop.supply()["redeemed"]) == D("100")
    assert D(shop.supply()["circulating"]) == D("400")

    settle = shop.submit(PayoutSettle(request.event_id, "BANK-REF-0001"), START)
    assert {p.account: p.number for p in settle.entry.postings} == {
        A.POOL_PAYOUTS: D("-100"), A.PAYOUTS_PAYABLE: D("100"),
    }
    assert settle.entry.get("holder") == "s1"
    balances = control(shop)
    assert A.POOL_PAYOUTS not in balances and A.PAYOUTS_PAYABLE not in balances  # both cleared
    assert balances[A.POOL] == D("400")
    assert shop.holder("s1")["sp"] == D("400")


def test_payout_cancel_restores_exactly(make_books, params):
    engine = make_books(no_release(params))
    member(engine, "own")
    store(engine, "s1")                                  # 500 CNY -> 500 SP
    engine.submit(Deposit(D("250.00"), platform=True), START)
    engine.close_days(START)                             # value(day 2) = 750 / 500 = 1.5
    before = snapshot(engine, ["s1"])
    supply_before = engine.supply()
    request = engine.submit(PayoutRequest("s1", D("0.3333")), DAY2)
    # 0.3333 x 1.5 = 0.49995 CNY -> rounded down to 0.49
    assert D(request.entry.get("amount_cny")) == D("0.49")
    assert engine.holder("s1")["sp"] == D("499.6667")
    cancel = engine.submit(PayoutCancel(request.event_id), DAY2)
    assert {(p.account, p.holder): p.number for p in cancel.entry.postings} == {
        (A.HOLDERS_SP, "s1"): D("-0.3333"), (A.SP_REDEEMED, None): D("0.3333"),
        (A.POOL, None): D("0.49"), (A.POOL_PAYOUTS, None): D("-0.49"),
        (A.POOL_EQUITY, None): D("-0.49"), (A.PAYOUTS_PAYABLE, None): D("0.49"),
    }
    after = snapshot(engine, ["s1"])
    assert after["control"] == before["control"]
    assert after["holders"] == before["holders"]
    assert engine.supply() == supply_before


def test_redeem(make_books, params):
    engine = make_books(no_release(params))
    member(engine, "own")
    store(engine, "s1")
    engine.submit(Deposit(D("250.00"), platform=True), START)
    engine.close_days(START)                             # value 1.5
    booked = engine.submit(Redeem("s1", D("40"), "tea set"), DAY2)
    # 40 SP x 1.5 = 60 CNY from the pool to the platform
    assert booked.entry.get("goods") == "tea set"
    assert {(p.account, p.holder): p.number for p in booked.entry.postings} == {
        (A.HOLDERS_SP, "s1"): D("40"), (A.SP_REDEEMED, None): D("-40"),
        (A.POOL, None): D("-60"), (A.PLATFORM_CASH, None): D("60"),
        (A.POOL_EQUITY, None): D("60"), (A.REDEMPTION_INCOME, None): D("-60"),
    }
    assert engine.holder("s1")["sp"] == D("460")
    supply = engine.supply()
    assert (D(supply["redeemed"]), D(supply["circulating"]), D(supply["pool_cny"])) == (D("40"), D("460"), D("690"))


# -- reversals ---------------------------------------------------------------------------

def _mirror(original, reversal):
    assert len(reversal.entry.postings) == len(original.entry.postings)
    for o, r in zip(original.entry.postings, reversal.entry.postings):
        assert (r.account, r.currency, r.meta) == (o.account, o.currency, o.meta)
        assert r.number == -o.number


def test_reverse_order_is_exact_mirror(engine):
    _network(engine)
    store(engine, "s1", region="441900", referrer="sref")
    who = ["s1", "b1", "ref", "sref", "p1"]
    before = snapshot(engine, who)
    supply_before = engine.supply()
    order = engine.submit(Order("o1", "b1", "s1", D("1000.00")), START)
    reversal = engine.submit(Reverse(order.event_id), START)
    assert reversal.entry.get("reverses") == order.event_id
    assert reversal.entry.get("reversed_kind") == "order"
    _mirror(order, reversal)
    after = snapshot(engine, who)
    # the order was s1's first: it opened the store (merchant.deposit_rule "sp_held"), and a
    # reversal does not undo an opening (the store held its deposit then)
    assert (before["holders"]["s1"]["opened"], after["holders"]["s1"]["opened"]) == (None, START)
    after["holders"]["s1"]["opened"] = None
    assert after["holders"] == before["holders"]
    assert after["control"] == before["control"]
    assert engine.supply() == supply_before
    assert engine.event(order.event_id)["reversed_by"] == reversal.event_id


def test_reverse_transfer_is_exact_mirror(shop):
    before = snapshot(shop, ["s1", "b1"])
    transfer = shop.submit(Transfer("s1", "b1", D("77.7")), START)
    reversal = shop.submit(Reverse(transfer.event_id), START)
    _mirror(transfer, reversal)
    assert reversal.entry.get("reversed_kind") == "transfer"
    after = snapshot(shop, ["s1", "b1"])
    assert after["holders"] == before["holders"]
    assert after["control"] == before["control"]


# -- refusals: every one books nothing ---------------------------------------------------

UNKNOWN = [
    (Register("n1", referrer="ghost"), NotFound, "member.unknown"),
    (SetRole("ghost", "vip"), NotFound, "member.unknown"),
    (BuyPack("ghost", "activation"), NotFound, "member.unknown"),
    (OpenStore("s9", "ghost", "441900", "offline", D("0.1")), NotFound, "member.unknown"),
    (OpenStore("s9", "own", "441900", "offline", D("0.1"), "ghost"), NotFound, "member.unknown"),
    (Deposit(D("500.00"), merchant="ghost"), NotFound, "merchant.unknown"),
    (Deposit(D("500.00"), merchant="b1"), NotFound, "merchant.unknown"),   # a member, not a store
    (Order("o9", "ghost", "s1", D("10.00")), NotFound, "member.unknown"),
    (Order("o9", "b1", "ghost", D("10.00")), NotFound, "merchant.unknown"),
    (Transfer("s1", "ghost", D("1")), NotFound, "holder.unknown"),
    (Transfer("ghost", "s1", D("1")), NotFound, "holder.unknown"),
    (PayoutRequest("ghost", D("1")), NotFound, "holder.unknown"),
    (Redeem("ghost", D("1"), "tea"), NotFound, "holder.unknown"),
    (PayoutSettle("E999999999", "ref"), NotFound, "payout.unknown"),
    (PayoutCancel("E999999999"), NotFound, "payout.unknown"),
    (Reverse("E999999999"), NotFound, "event.unknown"),
]


def test_refuse_unknown_holder_or_id(shop):
    for event, exc_type, rule in UNKNOWN:
        assert_refused(shop, event, START, exc_type, rule, ["s1", "b1", "own"])


def test_refuse_duplicate_member_id(shop):
    assert_refused(shop, Register("b1"), START, Conflict, "holder.duplicate_id", ["b1"], field="member")
    # members and merchants share one id space
    assert_refused(shop, Register("s1"), START, Conflict, "holder.duplicate_id", ["s1"])
    assert_refused(shop, OpenStore("b1", "own", "441900", "online", D("0.1")), START, Conflict,
                   "holder.duplicate_id", ["b1"])


def test_refuse_duplicate_order_id(shop):
    shop.submit(Order("o1", "b1", "s1", D("10.00")), START)
    assert_refused(shop, Order("o1", "b1", "s1", D("20.00")), START, Conflict, "order.duplicate_id",
                   ["s1", "b1"], field="order_id")


def test_refuse_reverse_of_a_non_reversible_event(shop):
    """Only orders and transfers are reversed (SPEC §4.10); a register or a payout is not."""
    for booked in (shop.submit(Register("n1"), START), shop.submit(PayoutRequest("s1", D("1")), START)):
        before = snapshot(shop, ["s1", "b1", "n1"])
        with pytest.raises((NotFound, Conflict)) as info:
            shop.submit(Reverse(booked.event_id), START)
        assert info.value.rule in ("event.unknown", "reverse.not_reversible")
        assert snapshot(shop, ["s1", "b1", "n1"]) == before


def test_refuse_inactive_store_owner(engine):
    engine.submit(Register("own"), START)
    assert_refused(engine, OpenStore("s1", "own", "441900", "offline", D("0.1")), START, Conflict,
                   "store.owner_inactive", ["own"], field="owner")


def test_refuse_merchant_deposit_short(engine):
    member(engine, "own")
    member(engine, "b1")
    store(engine, "s1", deposit="499.99")   # 1 fen short of merchant.deposit_value 500
    assert_refused(engine, Order("o1", "b1", "s1", D("10.00")), START, Conflict, "merchant.deposit_short",
                   ["s1", "b1"], field="merchant")


def test_refuse_cap_reached(make_books, params):
    engine = make_books(custom(params, sp_cap=D("1000")))
    member(engine, "own")
    store(engine, "s1", deposit="600.00")    # 600 SP sold, 400 left under the cap
    assert_refused(engine, Deposit(D("400.01"), merchant="s1"), START, Conflict, "sp.cap_reached", ["s1"])
    booked = engine.submit(Deposit(D("400.00"), merchant="s1"), START)   # exactly to the cap
    assert one(booked, account=A.SP_SOLD).number == D("400")
    assert D(engine.supply()["issued"]) == D("1000")
    assert_refused(engine, Deposit(D("0.01"), merchant="s1"), START, Conflict, "sp.cap_reached", ["s1"])
    # a platform injection issues nothing, so it is still accepted
    engine.submit(Deposit(D("10.00"), platform=True), START)


def test_refuse_closed_day_and_future_date(shop):
    shop.close_days(START)
    assert_refused(shop, Register("n1"), START, Conflict, "day.closed", field="date")
    assert_refused(shop, Register("n1"), TODAY + timedelta(days=1), Invalid, "date.future", field="date")
    # today itself is open
    assert shop.submit(Register("n1"), TODAY).day == TODAY


def test_refused_event_on_a_later_day_closes_no_day(shop):
    """Days before a refused event are not closed either: the whole booking rolls back."""
    assert_refused(shop, Transfer("s1", "b1", D("501")), START + timedelta(days=3), Conflict,
                   "transfer.insufficient_sp", ["s1", "b1"])
    assert shop.head()["open_day"] == START.isoformat()


INSUFFICIENT = [
    # R = 5000.10 x 0.10 = 500.01 CNY -> 500.01 SP > 500 held
    (Order("o1", "b1", "s1", D("5000.10")), "order.insufficient_sp"),
    (Transfer("s1", "b1", D("500.0001")), "transfer.insufficient_sp"),
    (Transfer("b1", "s1", D("0.0001")), "transfer.insufficient_sp"),
    (PayoutRequest("s1", D("500.0001")), "payout.insufficient_sp"),
    (Redeem("s1", D("500.0001"), "tea"), "redeem.insufficient_sp"),
]


def test_refuse_insufficient_sp(shop):
    for event, rule in INSUFFICIENT:
        assert_refused(shop, event, START, Conflict, rule, ["s1", "b1"])
    # at the boundary each is accepted: s1 holds exactly 500 SP (its first order first: it opens
    # the store while it holds the 500.00 CNY deposit, merchant.deposit_rule "sp_held")
    shop.submit(Order("o1", "b1", "s1", D("2000.00")), START)   # D = 200 SP
    shop.submit(Transfer("s1", "b1", D("100")), START)
    shop.submit(PayoutRequest("s1", D("100")), START)
    shop.submit(Redeem("s1", D("100"), "tea"), START)           # 500 - 200 - 100 - 100 - 100 = 0
    assert shop.holder("s1")["sp"] == 0


def test_refuse_insufficient_sp_on_each_database(make_books, db_url):
    engine = make_books(db_url=db_url)
    member(engine, "own")
    store(engine, "s1")
    member(engine, "b1")
    assert_refused(engine, Order("o1", "b1", "s1", D("6000.00")), START, Conflict, "order.insufficient_sp",
                   ["s1", "b1"])
    assert_refused(engine, Register("b1"), START, Conflict, "holder.duplicate_id", ["b1"])


def test_refuse_partner_region_taken_and_pack_region_rules(engine):
    engine.submit(Register("p1"), START)
    engine.submit(BuyPack("p1", "partner", region="441900"), START)
    engine.submit(Register("p2"), START)
    assert_refused(engine, BuyPack("p2", "partner", region="441900"), START, Conflict, "region.partner_taken",
                   ["p1", "p2"], field="region")
    # the partner itself cannot take its own region twice either
    assert_refused(engine, BuyPack("p1", "partner", region="441900"), START, Conflict, "region.partner_taken",
                   ["p1"])
    assert_refused(engine, BuyPack("p2", "partner"), START, Invalid, "pack.region_required", ["p2"],
                   field="region")
    assert_refused(engine, BuyPack("p2", "activation", region="441900"), START, Invalid,
                   "pack.region_not_allowed", ["p2"])
    engine.submit(BuyPack("p2", "partner", region="110000"), START)   # another region is free


def test_refuse_payout_settled_twice_or_cancelled_after(shop):
    request = shop.submit(PayoutRequest("s1", D("10")), START)
    shop.submit(PayoutSettle(request.event_id, "BANK-1"), START)
    assert_refused(shop, PayoutSettle(request.event_id, "BANK-2"), START, Conflict, "payout.not_pending", ["s1"])
    assert_refused(shop, PayoutCancel(request.event_id), START, Conflict, "payout.not_pending", ["s1"])
    other = shop.submit(PayoutRequest("s1", D("10")), START)
    shop.submit(PayoutCancel(other.event_id), START)
    assert_refused(shop, PayoutCancel(other.event_id), START, Conflict, "payout.not_pending", ["s1"])
    assert_refused(shop, PayoutSettle(other.event_id, "BANK-3"), START, Conflict, "payout.not_pending", ["s1"])


def test_refuse_reverse_twice(shop):
    order = shop.submit(Order("o1", "b1", "s1", D("100.00")), START)
    shop.submit(Reverse(order.event_id), START)
    assert_refused(shop, Reverse(order.event_id), START, Conflict, "reverse.already_reversed", ["s1", "b1"])


def test_refuse_reversal_when_taken_back_balance_was_spent(shop):
    member(shop, "c1")
    t1 = shop.submit(Transfer("s1", "b1", D("100")), START)
    shop.submit(Transfer("b1", "c1", D("50")), START)
    # the mirror takes 100 SP back from b1, who holds 50
    err = assert_refused(shop, Reverse(t1.event_id), START, Conflict, "reverse.insufficient_balance",
                         ["s1", "b1", "c1"])
    assert "b1" in err.detail


def test_refuse_order_reversal_after_release_converted_sv_under_flip(make_books, params):
    """Books whose genesis has reverse.rule = flip (config.LEGACY: made before refunds after a
    close) keep the exact mirror, refused once a release converted the SV it takes back. (Under
    `remaining`, the default, this refund goes through: tests/test_refunds.py.)"""
    shop = make_books(custom(params, reverse_rule="flip"))
    member(shop, "own")
    store(shop, "s1")
    member(shop, "b1")
    order = shop.submit(Order("o1", "b1", "s1", D("1000.00")), START)
    shop.close_days(START)
    # active SV at the close: own 599 + b1 1599 + s1 200 = 2398; 500 SP released at 1.00
    # converts 500 SV: s1 keeps 200 x (1 - 500/2398) = 158.30 SV < the 200 SV the mirror takes
    # back (b1 keeps 1599 x 1898/2398 = 1265.6 >= 1000, so s1 is the short one)
    err = assert_refused(shop, Reverse(order.event_id), DAY2, Conflict, "reverse.insufficient_balance",
                         ["s1", "b1", "own"])
    assert "s1 holds" in err.detail


# -- malformed input ---------------------------------------------------------------------

ORDER = {"order_id": "o1", "buyer": "b1", "merchant": "s1", "amount_cny": "10.00"}


@pytest.mark.parametrize("kind, change, rule, field", [
    ("order", {"order_id": "o 1"}, "input.bad_id", "order_id"),
    ("order", {"order_id": "x" * 65}, "input.bad_id", "order_id"),
    ("order", {"buyer": "b/1"}, "input.bad_id", "buyer"),
    ("order", {"merchant": "商店"}, "input.bad_id", "merchant"),
    ("order", {"buyer": None}, "input.missing_field", "buyer"),
    ("order", {"amount_cny": "10.001"}, "input.bad_amount", "amount_cny"),
    ("order", {"amount_cny": "-10.00"}, "input.bad_amount", "amount_cny"),
    ("order", {"amount_cny": "0"}, "input.bad_amount", "amount_cny"),
    ("order", {"amount_cny": "0.00"}, "input.bad_amount", "amount_cny"),
    ("order", {"amount_cny": 10.5}, "input.bad_amount", "amount_cny"),
    ("order", {"amount_cny": "NaN"}, "input.bad_amount", "amount_cny"),
    ("order", {"amount_cny": D("NaN")}, "input.bad_amount", "amount_cny"),
    ("order", {"amount_cny": "Infinity"}, "input.bad_amount", "amount_cny"),
    ("order", {"amount_cny": "ten"}, "input.bad_amount", "amount_cny"),
    ("order", {"amount_cny": True}, "input.bad_amount", "amount_cny"),
    ("order", {"ship_region": "44190"}, "input.bad_region", "ship_region"),
    ("order", {"ship_region": "4419000"}, "input.bad_region", "ship_region"),
    ("order", {"ship_region": "44190a"}, "input.bad_region", "ship_region"),
    ("register", {"member": "m1", "region": "ABCDEF"}, "input.bad_region", "region"),
    ("transfer", {"from_holder": "a", "to_holder": "b", "sp": "1.00001"}, "input.bad_amount", "sp"),
    ("transfer", {"from_holder": "a", "to_holder": "b", "sp": 1.0}, "input.bad_amount", "sp"),
    ("transfer", {"from_holder": "a", "to_holder": "b", "sp": "-1"}, "input.bad_amount", "sp"),
    ("payout", {"holder": "a", "sp": "0"}, "input.bad_amount", "sp"),
    ("open_store", {"merchant": "s1", "owner": "o", "region": "441900", "channel": "offline",
                    "rebate_rate": "1.5"}, "input.bad_rate", "rebate_rate"),
    ("open_store", {"merchant": "s1", "owner": "o", "region": "441900", "channel": "offline",
                    "rebate_rate": "0"}, "input.bad_rate", "rebate_rate"),
    ("open_store", {"merchant": "s1", "owner": "o", "region": "441900", "channel": "offline",
                    "rebate_rate": 0.1}, "input.bad_rate", "rebate_rate"),
    ("open_store", {"merchant": "s1", "owner": "o", "region": "441900", "channel": "mail",
                    "rebate_rate": "0.1"}, "input.bad_choice", "channel"),
    ("open_store", {"merchant": "s1", "owner": "o", "region": "4419", "channel": "offline",
                    "rebate_rate": "0.1"}, "input.bad_region", "region"),
    ("set_role", {"member": "m1", "role": "king"}, "input.bad_choice", "role"),
    ("buy_pack", {"member": "m1", "pack": "gold"}, "input.bad_choice", "pack"),
    ("deposit", {"amount_cny": "1.005", "merchant": "s1"}, "input.bad_amount", "amount_cny"),
    ("redeem", {"holder": "a", "sp": "1", "goods": "line\nbreak"}, "input.bad_text", "goods"),
    ("launch", {}, "input.unknown_kind", "kind"),
])
def test_parse_refuses_malformed_input(kind, change, rule, field):
    fields = dict(ORDER) if kind == "order" else {}
    fields.update(change)
    with pytest.raises(Invalid) as info:
        parse(kind, fields)
    assert info.value.rule == rule
    assert info.value.field == field


def test_parse_accepts_well_formed_input():
    ev = parse("order", {**ORDER, "amount_cny": "10.5", "ship_region": "441900"})
    assert ev == Order("o1", "b1", "s1", D("10.50"), "441900")
    assert parse("transfer", {"from_holder": "a-1", "to_holder": "B_2", "sp": "0.0001"}).sp == D("0.0001")


MALFORMED = [
    (Order("o 1", "b1", "s1", D("10.00")), "input.bad_id"),
    (Order("o1", "b1", "s1", D("10.001")), "input.bad_amount"),
    (Order("o1", "b1", "s1", D("-10")), "input.bad_amount"),
    (Order("o1", "b1", "s1", D("10"), ship_region="1234"), "input.bad_region"),
    (Transfer("s1", "s1", D("1")), "transfer.same_holder"),
    (Deposit(D("10.00")), "deposit.payer"),
    (Deposit(D("10.00"), merchant="s1", platform=True), "deposit.payer"),
]


def test_engine_refuses_malformed_events(shop):
    for event, rule in MALFORMED:
        assert_refused(shop, event, START, Invalid, rule, ["s1", "b1"])


def test_an_empty_pool_with_points_in_circulation_refuses_deposits_and_orders_until_injected(engine):
    """Releases with nothing in the pool make a point worth 0 CNY (pool ÷ circulating = 0).
    Buying SP or deducting SP at a value of 0 would divide by zero: both are refused by the
    rule `value.zero`, and a platform injection restores a value."""
    day2 = START + timedelta(days=1)
    engine.submit(Register("m1"), START)
    engine.submit(BuyPack("m1", "activation"), START)
    engine.submit(OpenStore("s1", "m1", "441900", "offline", Decimal("0.10")), START)
    engine.close_days(START)  # releases 500 SP against an empty pool
    assert Decimal(engine.supply()["value_cny_per_sp"]) == 0
    assert_refused(engine, Deposit(Decimal("500.00"), merchant="s1"), day2, Conflict, "value.zero", holders=("s1",))
    assert_refused(engine, Order("o1", "m1", "s1", Decimal("100.00")), day2, Conflict, "merchant.deposit_short")
    engine.submit(Deposit(Decimal("100.00"), platform=True), day2)
    engine.close_days(day2)
    # pool 100.00 CNY over the 1000.0000 SP released in two days: 0.1 CNY per SP
    assert Decimal(engine.supply()["value_cny_per_sp"]) == Decimal("0.1")
    booked = engine.submit(Deposit(Decimal("500.00"), merchant="s1"), day2 + timedelta(days=1))
    sold = [p for p in booked.entry.postings if p.account == A.SP_SOLD]
    assert sold[0].number == Decimal("5000.0000")  # 500 CNY ÷ 0.1 CNY/SP
