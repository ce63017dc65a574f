"""Issue 13 part 1: a regional partner holds a city-level unit and earns on every division in it.

Rule `region.match` (genesis): "city" for new books, "exact" for books made before it.
Regions are GB/T 2260 codes of the table shipped in the package (ledger_service/regions.tsv,
the Ministry of Civil Affairs' list at 2024-12-31).

Orders are 1000 CNY at a 10 % rebate at value 1.00 unless stated:
    R = 1000 x 0.10 = 100 CNY, D = 100 / 1.00 = 100 SP deducted from the store,
    partner 0.08 x D = 8 SP; no referrer, no store referrer: burn = 100 - 8 = 92 SP.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest

from ledger_service import config, regions
from ledger_service.audit.verify import verify
from ledger_service.engine import Engine
from ledger_service.errors import Conflict, Invalid, NotFound
from ledger_service.rules.events import BuyPack, Deposit, OpenStore, Order, Register

from api_helpers import assert_problem, make_api, nothing_booked, ok
from conftest import START

D = Decimal


def legs(booked, leg):
    """{holder: amount} of the postings of one leg."""
    return {p.holder: p.number for p in booked.entry.postings if p.get("leg") == leg}


def partner_posting(booked):
    found = [p for p in booked.entry.postings if p.get("leg") == "partner"]
    assert len(found) == 1, found
    return found[0]


def member(engine, mid, *, active=True):
    engine.submit(Register(mid), START)
    if active:
        engine.submit(BuyPack(mid, "activation"), START)


def partner(engine, mid, region):
    engine.submit(Register(mid), START)
    return engine.submit(BuyPack(mid, "partner", region=region), START)


def store(engine, sid, channel, region):
    """An open store of member "own" (registered on first use), with 5000 CNY of SP deposited."""
    try:
        engine.holder("own")
    except NotFound:
        member(engine, "own")
    engine.submit(OpenStore(sid, "own", region, channel, D("0.10")), START)
    engine.submit(Deposit(D("5000.00"), merchant=sid), START)


def refused(engine, event, kind, rule):
    head = engine.head()
    with pytest.raises(kind) as err:
        engine.submit(event, START)
    assert err.value.rule == rule
    assert engine.head() == head  # a refused event books nothing
    return err.value


# -- the table ---------------------------------------------------------------------------

def test_the_table_names_each_code_its_level_and_its_city_level_unit():
    cases = {
        # code: (name, level, city-level unit)
        "440300": ("深圳市", regions.PREFECTURE_CITY, "440300"),
        "440305": ("南山区", regions.DISTRICT, "440300"),
        "440281": ("乐昌市", regions.COUNTY_CITY, "440281"),      # counts for itself, not for 440200 韶关市
        "440203": ("武江区", regions.DISTRICT, "440200"),
        "110000": ("北京市", regions.MUNICIPALITY, "110000"),
        "110105": ("朝阳区", regions.DISTRICT, "110000"),         # a municipality's district: the municipality
        "500229": ("城口县", regions.COUNTY, "500000"),           # a municipality's county too
        "441900": ("东莞市", regions.PREFECTURE_CITY, "441900"),  # a prefecture-level city without districts
        "520203": ("六枝特区", regions.COUNTY, "520200"),
        "440000": ("广东省", regions.PROVINCE, None),
        "222400": ("延边朝鲜族自治州", regions.PREFECTURE, None),  # prefecture-level, not a city
        "222401": ("延吉市", regions.COUNTY_CITY, "222401"),
        "222426": ("安图县", regions.COUNTY, None),               # a county of a 自治州: in no city
        "469021": ("定安县", regions.COUNTY, None),               # directly under 海南省
        "429021": ("神农架林区", regions.COUNTY, None),
    }
    for code, (name, level, city) in cases.items():
        found = regions.division(code)
        assert found is not None, code
        assert (found.name, found.level, found.city) == (name, level, city), code
        assert regions.city_of(code) == city
    # not in the list: no 110100 (a municipality has the one code 110000), no made-up code
    for code in ("110100", "310100", "999999", "440399", "000000"):
        assert regions.division(code) is None and regions.city_of(code) is None


def test_the_table_counts_and_its_derivation_from_the_source_list():
    table = regions.table()
    assert len(table) == 3213
    levels = [d.level for d in table.values()]
    # 4 municipalities + 293 prefecture-level cities + 397 county-level cities = 694 city-level units
    assert (levels.count(regions.MUNICIPALITY), levels.count(regions.PREFECTURE_CITY),
            levels.count(regions.COUNTY_CITY)) == (4, 293, 397)
    assert sum(d.is_city for d in table.values()) == 694
    # the shipped columns are exactly what `derive` makes of the (code, name) list
    assert regions.derive((d.code, d.name) for d in table.values()) == list(table.values())
    # every city column names a city-level unit of the table
    assert all(table[d.city].is_city for d in table.values() if d.city)
    # loaded once
    assert regions.table() is table


def test_the_shipped_file_states_its_source_and_date():
    text = (regions.resources.files("ledger_service") / regions.TABLE).read_text("utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert regions.TABLE_DATE == "2024-12-31" and "2024-12-31" in header
    assert "yescallop/areacodes" in header and "CC0" in header and "民政部" in header
    assert text == regions.render(regions.table().values())


def test_derive_reads_levels_from_the_list_alone():
    listing = [("110000", "北京市"), ("110105", "朝阳区"), ("440000", "广东省"), ("440300", "深圳市"),
               ("440305", "南山区"), ("440200", "韶关市"), ("440281", "乐昌市"), ("460000", "海南省"),
               ("469021", "定安县")]
    got = {d.code: (d.level, d.city, d.parent) for d in regions.derive(listing)}
    assert got == {
        "110000": (regions.MUNICIPALITY, "110000", None),
        "110105": (regions.DISTRICT, "110000", "110000"),   # 110100 is not listed: its parent is 110000
        "440000": (regions.PROVINCE, None, None),
        "440300": (regions.PREFECTURE_CITY, "440300", "440000"),
        "440305": (regions.DISTRICT, "440300", "440300"),
        "440200": (regions.PREFECTURE_CITY, "440200", "440000"),
        "440281": (regions.COUNTY_CITY, "440281", "440200"),
        "460000": (regions.PROVINCE, None, None),
        "469021": (regions.COUNTY, None, "460000"),
    }
    with pytest.raises(ValueError, match="its province 440000"):
        regions.derive([("440305", "南山区")])
    with pytest.raises(ValueError, match="6-digit"):
        regions.derive([("4403", "深圳")])


# -- worked examples: the partner of a city earns in every district of it ----------------

def test_shenzhen_partner_earns_8_percent_of_D_from_a_store_in_nanshan(engine):
    partner(engine, "p1", "440300")                      # 深圳市
    member(engine, "buyer")
    store(engine, "s1", "offline", "440305")             # 南山区, in 深圳市
    booked = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    # R = 1000 x 0.10 = 100 CNY; D = 100 / 1.00 = 100 SP; partner 0.08 x 100 = 8 SP; burn 100 - 8 = 92
    assert booked.entry.get("rebate_cny") == "100.00" and D(booked.entry.get("deducted_sp")) == D("100")
    assert legs(booked, "partner") == {"p1": D("-8")}
    assert legs(booked, "burn") == {None: D("-92")}
    assert partner_posting(booked).get("region") == "440300"   # the partner's city, not the store's district
    assert engine.holder("p1")["sp"] == D("8")
    # a store in 深圳市's own code pays the same partner: 333.33 CNY -> R = 33.33 CNY, D = 33.33 SP,
    # partner 0.08 x 33.33 = 2.6664 SP
    store(engine, "s2", "offline", "440300")
    booked = engine.submit(Order("o2", "buyer", "s2", D("333.33")), START)
    assert legs(booked, "partner") == {"p1": D("-2.6664")}
    assert engine.holder("p1")["sp"] == D("10.6664")          # 8 + 2.6664
    # a store in another city (东莞市) pays no partner of 深圳市: all of D burned
    store(engine, "s3", "offline", "441900")
    booked = engine.submit(Order("o3", "buyer", "s3", D("1000.00")), START)
    assert legs(booked, "partner") == {} and legs(booked, "burn") == {None: D("-100")}


def test_online_order_pays_the_partner_of_the_city_of_its_ship_region(engine):
    partner(engine, "p1", "440300")                      # 深圳市
    partner(engine, "p2", "110000")                      # 北京市, a municipality
    member(engine, "buyer")
    store(engine, "w1", "online", "441900")              # the online store's own region does not count
    to_nanshan = engine.submit(Order("o1", "buyer", "w1", D("1000.00"), ship_region="440305"), START)
    assert legs(to_nanshan, "partner") == {"p1": D("-8")}                # 0.08 x 100 SP
    assert partner_posting(to_nanshan).get("region") == "440300"
    to_chaoyang = engine.submit(Order("o2", "buyer", "w1", D("1000.00"), ship_region="110105"), START)
    assert legs(to_chaoyang, "partner") == {"p2": D("-8")}               # 朝阳区 -> 北京市 110000
    # a county of a 自治州 lies in no city-level unit: no partner, all of D burned
    nowhere = engine.submit(Order("o3", "buyer", "w1", D("1000.00"), ship_region="222426"), START)
    assert legs(nowhere, "partner") == {} and legs(nowhere, "burn") == {None: D("-100")}
    assert (engine.holder("p1")["sp"], engine.holder("p2")["sp"]) == (D("8"), D("8"))


def test_a_county_level_city_counts_for_itself(engine):
    partner(engine, "lc", "440281")                      # 乐昌市, a county-level city of 韶关市
    partner(engine, "sg", "440200")                      # 韶关市 itself: a different partner
    member(engine, "buyer")
    store(engine, "s1", "offline", "440281")
    store(engine, "s2", "offline", "440203")             # 武江区, a district of 韶关市
    in_lechang = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    assert legs(in_lechang, "partner") == {"lc": D("-8")}       # not 韶关市's partner
    in_wujiang = engine.submit(Order("o2", "buyer", "s2", D("1000.00")), START)
    assert legs(in_wujiang, "partner") == {"sg": D("-8")}       # not 乐昌市's partner


# -- partner packs: a city-level unit only -----------------------------------------------

def test_district_partner_pack_is_refused_naming_its_city(engine):
    engine.submit(Register("p1"), START)
    err = refused(engine, BuyPack("p1", "partner", region="440305"), Invalid, "region.not_city")
    assert err.field == "region"
    assert "440305 南山区 is a district of 440300 深圳市" in err.detail
    assert "here 440300" in err.detail
    err = refused(engine, BuyPack("p1", "partner", region="110105"), Invalid, "region.not_city")
    assert "110105 朝阳区 is a district of 110000 北京市" in err.detail
    err = refused(engine, BuyPack("p1", "partner", region="500229"), Invalid, "region.not_city")
    assert "500229 城口县 is a county of 500000 重庆市" in err.detail
    # the city itself is accepted, and then taken
    engine.submit(BuyPack("p1", "partner", region="440300"), START)
    engine.submit(Register("p2"), START)
    refused(engine, BuyPack("p2", "partner", region="440300"), Conflict, "region.partner_taken")


def test_province_prefecture_and_county_outside_a_city_are_refused(engine):
    engine.submit(Register("p1"), START)
    err = refused(engine, BuyPack("p1", "partner", region="440000"), Invalid, "region.not_city")
    assert "440000 广东省 is a province-level unit" in err.detail
    assert "440100 广州市" in err.detail                     # one of its city-level units, as an example
    err = refused(engine, BuyPack("p1", "partner", region="222400"), Invalid, "region.not_city")
    assert "222400 延边朝鲜族自治州 is a prefecture-level unit that is not a city" in err.detail
    assert "222401 延吉市" in err.detail
    err = refused(engine, BuyPack("p1", "partner", region="469021"), Invalid, "region.not_city")
    assert "469021 定安县 is a county, in no city-level unit" in err.detail


def test_municipality_and_county_level_city_packs_are_accepted(engine):
    for mid, code in (("bj", "110000"), ("cq", "500000"), ("lc", "440281"), ("yj", "222401"), ("dg", "441900")):
        booked = partner(engine, mid, code)
        assert booked.kind == "buy_pack" and booked.entry.get("region") == code
        # 4999 CNY paid; 4999 SV returned, and the 300 SV locked at registration unlocked: 5299 SV active
        assert engine.holder(mid)["sv_active"] == D("5299")


def test_codes_not_in_the_table_are_refused_wherever_a_region_is_given(engine):
    err = refused(engine, Register("m1", region="999999"), Invalid, "region.unknown")
    assert err.field == "region" and "2024-12-31" in err.detail
    err = refused(engine, Register("m1", region="110100"), Invalid, "region.unknown")
    assert "110000" in err.detail                             # the municipality's one code, as a hint
    member(engine, "m1")
    refused(engine, OpenStore("s1", "m1", "440399", "offline", D("0.10")), Invalid, "region.unknown")
    refused(engine, BuyPack("m1", "partner", region="310100"), Invalid, "region.unknown")
    store(engine, "w1", "online", "441900")
    err = refused(engine, Order("o1", "m1", "w1", D("10.00"), ship_region="123456"), Invalid, "region.unknown")
    assert err.field == "ship_region"


def test_the_api_answers_a_district_partner_pack_with_422_naming_the_city(tmp_path, clock):
    api = make_api(tmp_path / "books", clock)
    try:
        ok(api.post("/v1/members", {"id": "p1"}))
        with nothing_booked(api.engine):
            body = assert_problem(api.post("/v1/members/p1/packs", {"kind": "partner", "region": "440305"}),
                                  422, "region.not_city", "region")
        assert "440300 深圳市" in body["detail"]
        ok(api.post("/v1/members/p1/packs", {"kind": "partner", "region": "440300"}))
    finally:
        api.engine.dispose()


# -- books made before the rule: "exact", replayed unchanged --------------------------------

def bean_check(root) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "beancount.scripts.check", "-C", str(root / "main.beancount")],
                          capture_output=True, text=True, timeout=300, env=env)


def test_books_made_before_the_rule_book_exactly_as_before_and_verify(make_books, params):
    # Books made before this change have no region_match in their genesis entry (nor in the
    # database's rules column). Rules at the LEGACY value are written the same way, so these
    # books are, byte for byte, what the code before the change wrote.
    engine = make_books(dataclasses.replace(params, region_match=config.LEGACY["region_match"]))
    genesis = (engine.books.root / f"journal/{START:%Y-%m}/{START.isoformat()}.beancount").read_text("utf-8")
    assert "region_match" not in genesis and "region_repurchase_days" in genesis
    assert engine.params.region_match == "exact"
    new_books = make_books(params, name="new")
    new_genesis = (new_books.books.root / f"journal/{START:%Y-%m}/{START.isoformat()}.beancount").read_text("utf-8")
    assert 'region_match: "city"' in new_genesis

    # the old rule: a partner pack may name a district, or any 6 digits ...
    partner(engine, "city", "440300")
    partner(engine, "district", "440305")
    engine.submit(Register("odd", region="999999"), START)
    member(engine, "buyer")
    store(engine, "s1", "offline", "440305")
    store(engine, "s2", "offline", "440304")                  # 福田区, also in 深圳市
    # ... and an order pays the partner of exactly its region: 0.08 x 100 SP = 8 SP to 440305's partner
    booked = engine.submit(Order("o1", "buyer", "s1", D("1000.00")), START)
    assert legs(booked, "partner") == {"district": D("-8")}
    assert partner_posting(booked).get("region") == "440305"
    # 福田区 has no partner of its own: 深圳市's partner earns 0, all of D = 100 SP burned
    booked = engine.submit(Order("o2", "buyer", "s2", D("1000.00")), START)
    assert legs(booked, "partner") == {} and legs(booked, "burn") == {None: D("-100")}
    assert engine.holder("city")["sp"] == 0
    engine.close_days(START)
    root = engine.books.root
    engine.dispose()

    again = Engine(root)                                      # the upgraded code path opens the old books
    try:
        assert again.params.region_match == "exact"
        booked = again.submit(Order("o3", "buyer", "s1", D("1000.00")), START + timedelta(days=1))
        assert set(legs(booked, "partner")) == {"district"}
    finally:
        again.dispose()
    report = verify(root)
    assert report.ok, [str(f) for f in report.faults]
    checked = bean_check(root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
