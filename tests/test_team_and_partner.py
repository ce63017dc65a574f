"""SPEC §4.4: the 级差 team walk, the direct referrer, the store referrer, the regional
partner's 30-day repurchase rule, and the inactive buyer.

Orders are 1000 CNY at a 10 % rebate at value 1.00 unless stated: R = 100 CNY,
D = 100 SP deducted, buyer's SV gain G = 10 x 100 = 1000 SV.
Team rates (seed-a): vip 0.05, shop_owner 0.10, store_owner 0.15, service_provider 0.20.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ledger_service import accounts as A
from ledger_service import config
from ledger_service.errors import NotFound
from ledger_service.rules.events import BuyPack, Deposit, OpenStore, Order, Register, SetRole

from conftest import START

D = Decimal


def custom(params, **changes):
    """`params` with `changes`, validated and normalised exactly as a rules file is on load."""
    meta = params.to_meta()
    meta.update({key: str(value) for key, value in changes.items()})
    return config.Params.from_meta(meta)


def legs(booked, leg):
    """{holder: amount} of the postings of one leg."""
    out = {}
    for p in booked.entry.postings:
        if p.get("leg") == leg:
            assert p.holder not in out, (leg, p.holder)
            out[p.holder] = p.number
    return out


def member(engine, mid, referrer=None, *, active=True, role=None, day=START):
    engine.submit(Register(mid, referrer=referrer), day)
    if active:
        engine.submit(BuyPack(mid, "activation"), day)
    if role:
        engine.submit(SetRole(mid, role), day)


def store(engine, sid, channel, *, region="441900", referrer=None, day=START, deposit="5000.00"):
    if not _has(engine, "own"):
        member(engine, "own", day=day)
    engine.submit(OpenStore(sid, "own", region, channel, D("0.10"), referrer), day)
    engine.submit(Deposit(D(deposit), merchant=sid), day)


def _has(engine, holder_id):
    try:
        engine.holder(holder_id)
        return True
    except NotFound:
        return False


def chain(engine, spec):
    """spec: [(id, role, active)] from the top of the chain down; each refers the next."""
    above = None
    for mid, role, active in spec:
        member(engine, mid, above, active=active, role=role)
        above = mid


# -- the differential walk ----------------------------------------------------------

@pytest.mark.parametrize("channel", ["online", "offline"])
def test_team_walk_mixed_roles_and_inactive_ancestor(engine, channel):
    # buyer <- A(vip) <- B(inactive service_provider) <- C(shop_owner) <- D(store_owner)
    #       <- E(service_provider) <- F(service_provider)
    chain(engine, [
        ("F", "service_provider", True),
        ("E", "service_provider", True),
        ("D", "store_owner", True),
        ("C", "shop_owner", True),
        ("B", "service_provider", False),
        ("A", "vip", True),
        ("buyer", None, True),
    ])
    store(engine, "s1", channel)
    before = {h: engine.holder(h)["sv_active"] for h in "ABCDEF"}
    booked = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    # A: vip 0.05 - 0 = 0.05 G = 50; B inactive: skipped (highest stays 0.05);
    # C: 0.10 - 0.05 = 0.05 G = 50; D: 0.15 - 0.10 = 50; E: 0.20 - 0.15 = 50;
    # F: the top rate 0.20 is already paid: nothing
    assert legs(booked, "team") == {"A": D("-50"), "C": D("-50"), "D": D("-50"), "E": D("-50")}
    for p in booked.entry.postings:
        if p.get("leg") == "team":
            assert p.account == A.HOLDERS_SV_ACTIVE
    after = {h: engine.holder(h)["sv_active"] for h in "ABCDEF"}
    # the direct referrer earns the direct reward on top of the team reward
    if channel == "online":
        assert legs(booked, "referrer") == {"A": D("-400")}           # 0.40 x 1000 SV
        assert after["A"] - before["A"] == D("450")                    # 400 + 50
    else:
        assert legs(booked, "referrer") == {"A": D("-50")}             # SP worth 0.05 x 1000 CNY at 1.00
        assert one_account(booked, "referrer") == A.HOLDERS_SP
        assert after["A"] - before["A"] == D("50")
        assert engine.holder("A")["sp"] == D("50")
    for h in "CDE":
        assert after[h] - before[h] == D("50")
    assert after["B"] == before["B"] and after["F"] == before["F"]
    assert engine.holder("B")["sv_locked"] == D("300")   # B's own locked grant untouched


def one_account(booked, leg):
    accounts = {p.account for p in booked.entry.postings if p.get("leg") == leg}
    assert len(accounts) == 1
    return accounts.pop()


def test_direct_referrer_at_top_rate_is_the_only_one_paid(engine):
    chain(engine, [
        ("C", "store_owner", True),
        ("B", "service_provider", True),
        ("A", "service_provider", True),
        ("buyer", None, True),
    ])
    store(engine, "s1", "online")
    booked = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    # A: 0.20 x 1000 = 200 SV, and the walk stops: B and C get nothing
    assert legs(booked, "team") == {"A": D("-200")}
    assert legs(booked, "referrer") == {"A": D("-400")}
    assert engine.holder("A")["sv_active"] == D("1199")   # 599 + 400 + 200
    assert engine.holder("B")["sv_active"] == D("599")


def test_lower_rate_above_a_higher_one_earns_nothing(engine):
    # buyer <- A(store_owner) <- B(vip) <- C(shop_owner) <- E(service_provider)
    chain(engine, [
        ("E", "service_provider", True),
        ("C", "shop_owner", True),
        ("B", "vip", True),
        ("A", "store_owner", True),
        ("buyer", None, True),
    ])
    store(engine, "s1", "online")
    booked = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    # A 0.15 x 1000 = 150; B 0.05 and C 0.10 do not beat 0.15: nothing; E 0.20 - 0.15 = 50
    assert legs(booked, "team") == {"A": D("-150"), "E": D("-50")}


def test_plain_member_referrer_gets_direct_reward_only_and_walk_continues(engine):
    chain(engine, [
        ("B", "shop_owner", True),
        ("A", None, True),          # role member: team rate 0
        ("buyer", None, True),
    ])
    store(engine, "s1", "online")
    booked = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    assert legs(booked, "referrer") == {"A": D("-400")}
    assert legs(booked, "team") == {"B": D("-100")}   # 0.10 x 1000


def test_inactive_direct_referrer_gets_nothing_and_walk_continues(engine):
    chain(engine, [
        ("B", "vip", True),
        ("A", "service_provider", False),
        ("buyer", None, True),
    ])
    store(engine, "s1", "offline")
    booked = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    assert legs(booked, "referrer") == {}
    assert legs(booked, "team") == {"B": D("-50")}
    # offline, no referrer share, no store referrer, no partner: all of D burned
    assert legs(booked, "burn") == {None: D("-100")}


def test_team_rewards_with_a_non_round_gain(engine):
    # 333.33 CNY at 10 % -> R = 33.333 -> 33.33 CNY (half even); G = 333.3 SV
    chain(engine, [
        ("B", "service_provider", True),
        ("A", "vip", True),
        ("buyer", None, True),
    ])
    store(engine, "s1", "online")
    booked = engine.submit(Order("o1", "buyer", "s1", D("333.33")), START)
    assert booked.entry.get("rebate_cny") == "33.33"
    assert legs(booked, "buyer") == {"buyer": D("-333.3")}
    # A 0.05 x 333.3 = 16.665; B 0.15 x 333.3 = 49.995; referrer 0.40 x 333.3 = 133.32
    assert legs(booked, "team") == {"A": D("-16.665"), "B": D("-49.995")}
    assert legs(booked, "referrer") == {"A": D("-133.32")}


# -- the store referrer: offline stores only ------------------------------------------

def test_store_referrer_rewarded_only_for_offline_stores(engine):
    member(engine, "sref")
    member(engine, "buyer")
    store(engine, "s1", "offline", region="110105", referrer="sref")
    store(engine, "w1", "online", region="110105", referrer="sref")
    offline = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    # 0.05 x D = 0.05 x 100 SP = 5 SP; the rest (95) burned
    assert legs(offline, "store_referrer") == {"sref": D("-5")}
    assert legs(offline, "burn") == {None: D("-95")}
    online = engine.submit(Order("o2", "buyer", "w1", D("1000.00")), START)
    assert legs(online, "store_referrer") == {}
    assert legs(online, "burn") == {None: D("-100")}
    assert engine.holder("sref")["sp"] == D("5")


# -- the regional partner's 30-day repurchase rule ------------------------------------

def test_partner_qualifies_through_day_p_plus_30_not_p_plus_31(make_books, params, clock):
    # no daily release: the value moves only with the orders' burns
    engine = make_books(custom(params, sp_daily_release=D("0")))
    p = START
    engine.submit(Register("p1"), p)
    engine.submit(BuyPack("p1", "partner", region="441900"), p)      # purchase on day p
    member(engine, "buyer")
    store(engine, "s1", "offline", region="441900")

    same_day = engine.submit(Order("o0", "buyer", "s1", D("100.00")), p)
    # D = 10 / 1.00 = 10 SP; partner 0.08 x 10 = 0.8 SP
    assert legs(same_day, "partner") == {"p1": D("-0.8")}

    day30 = p + timedelta(days=30)
    assert clock.today == day30  # conftest: START 2026-03-01, today 2026-03-31
    booked = engine.submit(Order("o30", "buyer", "s1", D("100.00")), day30)
    deducted = D(booked.entry.get("deducted_sp"))
    # value moved with the burn (pool 5000 / circulating below 5000): D = 10 / value
    assert deducted == (D("10") / D(booked.entry.get("value"))).quantize(D("0.0001"))
    assert legs(booked, "partner") == {"p1": -(D("0.08") * deducted).quantize(D("0.0001"))}

    clock.advance(1)
    day31 = p + timedelta(days=31)
    booked = engine.submit(Order("o31", "buyer", "s1", D("100.00")), day31)
    assert legs(booked, "partner") == {}
    # buyer has no referrer, no store referrer: all of D burned
    assert legs(booked, "burn") == {None: -D(booked.entry.get("deducted_sp"))}

    # a new purchase by the partner (any pack) qualifies them again from that day
    engine.submit(BuyPack("p1", "activation"), day31)
    booked = engine.submit(Order("o31b", "buyer", "s1", D("100.00")), day31)
    assert set(legs(booked, "partner")) == {"p1"}


def test_partner_of_an_online_order_is_the_ship_regions(engine):
    engine.submit(Register("p1"), START)
    engine.submit(BuyPack("p1", "partner", region="441900"), START)
    engine.submit(Register("p2"), START)
    engine.submit(BuyPack("p2", "partner", region="110000"), START)   # 北京市, a municipality
    member(engine, "buyer")
    store(engine, "w1", "online", region="110105")                   # 朝阳区, in 北京市
    booked = engine.submit(Order("o1", "buyer", "w1", D("1000.00"), ship_region="441900"), START)
    assert legs(booked, "partner") == {"p1": D("-8")}         # 0.08 x 100 SP, ship region's partner
    offline = engine.submit(OpenStore("s1", "own", "110105", "offline", D("0.10")), START)
    assert offline.kind == "open_store"
    engine.submit(Deposit(D("500.00"), merchant="s1"), START)
    booked = engine.submit(Order("o2", "buyer", "s1", D("1000.00"), ship_region="441900"), START)
    assert legs(booked, "partner") == {"p2": D("-8")}         # offline: the store's region's city, 110000


# -- an inactive buyer earns nothing, all of D is burned ------------------------------

def test_inactive_buyer_earns_nothing_and_all_is_burned(engine):
    member(engine, "sref")
    engine.submit(Register("p1"), START)
    engine.submit(BuyPack("p1", "partner", region="441900"), START)
    member(engine, "ref", role="service_provider")
    member(engine, "buyer", "ref", active=False)
    store(engine, "s1", "offline", region="441900", referrer="sref")
    who = ["buyer", "ref", "sref", "p1", "s1"]
    before = {h: engine.holder(h) for h in who}
    booked = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    # only the deduction and its burn: 100 SP
    assert {(p.get("leg"), p.account): p.number for p in booked.entry.postings} == {
        ("deduct", A.HOLDERS_SP): D("100"),
        ("burn", A.SP_BURNED): D("-100"),
    }
    after = {h: engine.holder(h) for h in who}
    for h in ["buyer", "ref", "sref", "p1"]:
        assert after[h] == before[h], h
    assert after["s1"]["sv_active"] == 0                  # the merchant earns no SV either
    assert after["s1"]["sp"] == before["s1"]["sp"] - D("100")
    assert D(engine.supply()["burned"]) == D("100")
