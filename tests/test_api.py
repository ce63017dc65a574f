"""SPEC §7: the storefront API through Flask's test client.

The books run on profile seed-a and on conftest's fixed clock (today 2026-03-31, books
opened 2026-03-01): the first write of a test closes the empty days before today, and
the value of a point is `sp.initial_value` = 1.00 CNY until a day with SP in circulation
closes. Every refused write is checked to book nothing: not a journal byte, not the head.
"""

from __future__ import annotations

import dataclasses
import json
import re
from decimal import Decimal

import pytest

from ledger_service import config
from ledger_service.audit.verify import verify

from api_helpers import (Api, Clock, assert_no_numbers, assert_problem, build_world, get, make_api,
                         nothing_booked, ok, post, post_raw, postings_of)

D = Decimal
HASH = re.compile(r"^[0-9a-f]{64}$")
SP4 = re.compile(r"^-?[0-9]+\.[0-9]{4}$")
CNY2 = re.compile(r"^-?[0-9]+\.[0-9]{2}$")


@pytest.fixture
def api(tmp_path, clock):
    made = make_api(tmp_path / "books", clock)
    yield made
    made.engine.dispose()


@pytest.fixture
def api_db(tmp_path, clock, db_url):
    """The same app on the embedded SQLite database and on PostgreSQL."""
    made = make_api(tmp_path / "books", clock, db_url=db_url)
    yield made
    made.engine.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One shared world for the many refusal cases (each checks it booked nothing).

    build_world, plus: a settled payout and a pending one of alice, an order o1 of bob
    at shop1 and its reversal, and order o2 (not reversed)."""
    made = make_api(tmp_path_factory.mktemp("world") / "books", Clock())
    build_world(made)
    ok(made.post("/v1/orders", {"id": "o1", "buyer": "bob", "merchant": "shop1", "amount_cny": "100.00"}))
    ok(made.post("/v1/orders/o1/reverse", {}, role="finance"))
    ok(made.post("/v1/orders", {"id": "o2", "buyer": "bob", "merchant": "shop1", "amount_cny": "100.00"}))
    ok(made.post("/v1/transfers", {"from": "shop1", "to": "alice", "sp": "20.0000"}))
    settled = ok(made.post("/v1/payouts", {"holder": "alice", "sp": "5.0000"}))["id"]
    ok(made.post(f"/v1/payouts/{settled}/settle", {"bank_reference": "BANK-1"}, role="finance"))
    pending = ok(made.post("/v1/payouts", {"holder": "alice", "sp": "5.0000"}))["id"]
    made.settled_payout, made.pending_payout = settled, pending
    yield made
    made.engine.dispose()


def check_event(body: dict, kind: str, day: str = "2026-03-31") -> dict:
    """The shape of a booked event (SPEC §7): id, kind, date, postings, hash; amounts as strings."""
    assert re.match(r"^E[0-9]{9}$", body["id"]), body
    assert body["kind"] == kind
    assert body["date"] == day
    assert HASH.match(body["hash"]) and HASH.match(body["prev"])
    assert isinstance(body["seq"], int)
    assert isinstance(body["postings"], list)
    for p in body["postings"]:
        assert {"account", "amount", "commodity", "holder"} <= p.keys(), p
        assert p["commodity"] in ("CNY", "SV", "SP")
        assert isinstance(p["amount"], str)
        assert (CNY2 if p["commodity"] == "CNY" else SP4).match(p["amount"]), p
        assert p["holder"] is None or isinstance(p["holder"], str)
    for commodity in ("CNY", "SV", "SP"):  # balanced per commodity
        assert sum(D(p["amount"]) for p in body["postings"] if p["commodity"] == commodity) == 0, body
    assert_no_numbers(body)
    return body


def amounts(body: dict, **where) -> list[str]:
    return sorted(p["amount"] for p in postings_of(body, **where))


# -- the happy path ------------------------------------------------------------------------

def run_happy_path(api: Api) -> None:
    engine = api.engine
    # register: 300 locked SV (seed-a), nothing to the referrer (referrer grant 0 in seed-a)
    alice = check_event(ok(api.post("/v1/members", {"id": "alice"})), "register")
    assert alice["postings"] == [
        {"account": "Liabilities:Holders:SV:Locked", "amount": "-300.0000", "commodity": "SV", "holder": "alice",
         "leg": "registration"},
        {"account": "Equity:SV:Granted", "amount": "300.0000", "commodity": "SV", "holder": None, "leg": None},
    ]
    check_event(ok(api.post("/v1/members", {"id": "bob", "referrer": "alice", "region": "441900"})), "register")
    check_event(ok(api.post("/v1/members", {"id": "owner"})), "register")
    h = ok(api.get("/v1/holders/bob"), 200)
    assert (h["id"], h["sv_locked"], h["sv_active"], h["sp"], h["active"], h["referrer"]) == \
        ("bob", "300.0000", "0.0000", "0.0000", False, "alice")

    # packs: 299 CNY to revenue, locked SV unlocked, 299 SV returned
    pack = check_event(ok(api.post("/v1/members/alice/packs", {"kind": "activation"})), "buy_pack")
    assert amounts(pack, account="Income:Packs") == ["-299.00"]
    assert amounts(pack, holder="alice", leg="pack") == ["-299.0000"]
    for member in ("bob", "owner"):
        check_event(ok(api.post(f"/v1/members/{member}/packs", {"kind": "activation"})), "buy_pack")
    check_event(ok(api.post("/v1/members/alice/role", {"role": "vip"}, role="finance")), "set_role")
    h = ok(api.get("/v1/holders/alice"), 200)
    assert (h["sv_locked"], h["sv_active"], h["active"], h["role"]) == ("0.0000", "599.0000", True, "vip")

    # a merchant: no deposit yet, so no orders
    check_event(ok(api.post("/v1/merchants", {"id": "shop1", "owner": "owner", "region": "441900",
                                              "channel": "online", "rebate_rate": "0.10"})), "open_store")
    m = ok(api.get("/v1/merchants/shop1"), 200)
    assert (m["can_take_orders"], m["rebate_rate"], m["sp"]) == (False, "0.1000", "0.0000")

    # deposit: 500.00 CNY into the pool buys 500 SP at 1.00
    dep = check_event(ok(api.post("/v1/deposits", {"merchant": "shop1", "amount_cny": "500.00"}, role="finance")),
                      "deposit")
    assert amounts(dep, account="Assets:Pool:Backing") == ["500.00"]
    assert amounts(dep, holder="shop1") == ["-500.0000"]
    m = ok(api.get("/v1/merchants/shop1"), 200)
    assert (m["can_take_orders"], m["deposits_cny"], m["sp"], m["sp_value_cny"]) == (True, "500.00", "500.0000", "500.00")

    # quote: SPEC §8, 1000 CNY at 10 %: buyer 1000 SV, merchant 200 SV; D = 100 SP; books nothing
    order = {"id": "o1", "buyer": "bob", "merchant": "shop1", "amount_cny": "1000.00"}
    with nothing_booked(engine):
        quote = check_event(ok(api.post("/v1/orders/quote", order), 200), "order")
    assert amounts(quote, holder="bob", leg="buyer") == ["-1000.0000"]
    assert amounts(quote, holder="shop1", leg="merchant") == ["-200.0000"]
    assert amounts(quote, holder="shop1", leg="deduct") == ["100.0000"]
    assert amounts(quote, holder="alice", leg="referrer") == ["-400.0000"]   # online: 0.40 × 1000
    assert amounts(quote, holder="alice", leg="team") == ["-50.0000"]        # vip: 0.05 × 1000
    assert amounts(quote, account="Equity:SP:Burned") == ["-100.0000"]
    assert_problem(api.get("/v1/events/" + quote["id"]), 404, "event.unknown")  # a quote books no event

    # the order books exactly what the quote said
    booked = check_event(ok(api.post("/v1/orders", order)), "order")
    assert booked["postings"] == quote["postings"]
    assert ok(api.get("/v1/holders/bob"), 200)["sv_active"] == "1599.0000"
    assert ok(api.get("/v1/merchants/shop1"), 200)["sp"] == "400.0000"

    # transfer, payouts (settle and cancel), redemption
    tr = check_event(ok(api.post("/v1/transfers", {"from": "shop1", "to": "alice", "sp": "10.0000"})), "transfer")
    assert amounts(tr, holder="alice") == ["-10.0000"] and amounts(tr, holder="shop1") == ["10.0000"]
    pay = check_event(ok(api.post("/v1/payouts", {"holder": "alice", "sp": "4.0000"})), "payout")
    assert amounts(pay, account="Liabilities:Payouts:Payable") == ["-4.00"]
    settle = check_event(ok(api.post(f"/v1/payouts/{pay['id']}/settle", {"bank_reference": "ICBC-2026-0001"},
                                     role="finance")), "payout_settle")
    assert amounts(settle, account="Liabilities:Payouts:Payable") == ["4.00"]
    pay2 = check_event(ok(api.post("/v1/payouts", {"holder": "alice", "sp": "3.0000"})), "payout")
    assert ok(api.get("/v1/holders/alice"), 200)["sp"] == "3.0000"
    cancel = check_event(ok(api.post(f"/v1/payouts/{pay2['id']}/cancel", {}, role="finance")), "payout_cancel")
    assert amounts(cancel, holder="alice") == ["-3.0000"]
    assert ok(api.get("/v1/holders/alice"), 200)["sp"] == "6.0000"
    red = check_event(ok(api.post("/v1/redemptions", {"holder": "alice", "sp": "2.0000", "goods": "tea set"})), "redeem")
    assert amounts(red, account="Income:Redemptions") == ["-2.00"]
    assert ok(api.get("/v1/holders/alice"), 200)["sp"] == "4.0000"

    # reverse the order: the exact mirror
    rev = check_event(ok(api.post("/v1/orders/o1/reverse", {}, role="finance")), "reverse")
    assert sorted((p["account"], p["holder"], p["leg"], D(p["amount"])) for p in rev["postings"]) == \
        sorted((p["account"], p["holder"], p["leg"], -D(p["amount"])) for p in booked["postings"])
    assert ok(api.get("/v1/merchants/shop1"), 200)["sp"] == "490.0000"
    ev = ok(api.get(f"/v1/events/{booked['id']}"), 200)
    assert (ev["id"], ev["kind"], ev["hash"], ev["reversed_by"]) == (booked["id"], "order", booked["hash"], rev["id"])
    assert f'hash: "{booked["hash"]}"' in ev["entry"] and 'order_id: "o1"' in ev["entry"]
    assert_no_numbers(ev)

    # the supply today (open day): sold 500, burned 100 − 100, redeemed 4 + 2 (the 3 cancelled)
    s = ok(api.get("/v1/supply"), 200)
    assert_no_numbers(s)
    assert {k: s[k] for k in ("cap", "issued", "released", "sold", "burned", "redeemed", "circulating", "pool_cny",
                              "value_cny_per_sp", "date")} == {
        "cap": "390000.0000", "issued": "500.0000", "released": "0.0000", "sold": "500.0000", "burned": "0.0000",
        "redeemed": "6.0000", "circulating": "494.0000", "pool_cny": "494.00", "value_cny_per_sp": "1.00000000",
        "date": "2026-03-31"}

    # close the day once it has ended
    assert_problem(api.post("/v1/days/2026-03-31/close", None, role="finance"), 409, "day.not_ended")
    api.clock.advance(1)
    closed = ok(api.post("/v1/days/2026-03-31/close", None, role="finance"))
    assert closed["through"] == "2026-03-31"
    assert [c["date"] for c in closed["closed"]] == ["2026-03-31"]
    assert closed["closed"][0]["released_sp"] == "500.0000"   # min(500, cap − issued, 1797 active SV ÷ 1.00)
    assert HASH.match(closed["closed"][0]["hash"])
    assert_no_numbers(closed)
    s = ok(api.get("/v1/supply?date=2026-03-31"), 200)
    assert (s["date"], s["closed"], s["released"], s["issued"]) == ("2026-03-31", True, "500.0000", "1000.0000")
    assert D(s["circulating"]) == D(s["issued"]) - D(s["burned"]) - D(s["redeemed"])
    # the closed day takes nothing more
    with nothing_booked(engine):
        assert_problem(api.post("/v1/members", {"id": "late", "date": "2026-03-31"}), 409, "day.closed", "date")
    check_event(ok(api.post("/v1/members", {"id": "dave"})), "register", day="2026-04-01")

    health = ok(api.client.get("/health"), 200)
    assert health["journal_head"] == engine.head()
    report = verify(engine.books.root, engine.url if not engine.url.startswith("sqlite") else None)
    assert report.ok, [str(f) for f in report.faults]


def test_happy_path(api):
    run_happy_path(api)


def test_happy_path_on_both_databases(api_db):
    run_happy_path(api_db)


def test_holder_amounts_are_quantized_strings(api):
    """Every SV/SP amount a read returns carries its commodity's 4 decimals, CNY 2."""
    build_world(api)
    for path in ("/v1/holders/alice", "/v1/holders/carol", "/v1/merchants/shop1", "/v1/merchants/shop2"):
        body = ok(api.get(path), 200)
        assert_no_numbers(body)
        for key in ("sv_locked", "sv_active", "sp"):
            assert SP4.match(body[key]), (path, key, body[key])
        assert CNY2.match(body["sp_value_cny"]), (path, body["sp_value_cny"])
        if "deposits_cny" in body:
            assert CNY2.match(body["deposits_cny"]), (path, body["deposits_cny"])


def test_health_needs_no_key(api):
    body = ok(api.client.get("/health"), 200)
    assert body["status"] == "ok" and body["journal_head"] == api.engine.head()


def test_openapi_document_is_served(api):
    spec = ok(api.client.get("/openapi.json"), 200)
    assert spec["openapi"].startswith("3.")
    for path in ("/v1/members", "/v1/members/{member_id}/packs", "/v1/members/{member_id}/role", "/v1/merchants",
                 "/v1/deposits", "/v1/orders", "/v1/orders/quote", "/v1/orders/{order_id}/reverse", "/v1/transfers",
                 "/v1/payouts", "/v1/payouts/{payout_id}/settle", "/v1/payouts/{payout_id}/cancel",
                 "/v1/redemptions", "/v1/days/{day}/close", "/v1/holders/{holder_id}", "/v1/merchants/{merchant_id}",
                 "/v1/supply", "/v1/events/{event_id}", "/health"):
        assert path in spec["paths"], path
    assert api.client.get("/docs").status_code == 200


# -- idempotency -----------------------------------------------------------------------------

def run_idempotency(api: Api) -> None:
    build_world(api)
    body = {"id": "o9", "buyer": "bob", "merchant": "shop1", "amount_cny": "50.00"}
    first = api.post("/v1/orders", body, idem="order-o9")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    with nothing_booked(api.engine):
        again = api.post("/v1/orders", body, idem="order-o9")
        # the same body with other key order and spacing is the same request
        raw = post_raw(api.client, "/v1/orders", json.dumps(dict(reversed(body.items())), indent=2),
                       api.storefront, idem="order-o9")
    for replay in (again, raw):
        assert replay.status_code == 201
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.get_json() == first.get_json()
    # the same key with another body, or on another path: 409, nothing booked
    with nothing_booked(api.engine):
        other = api.post("/v1/orders", {**body, "amount_cny": "60.00"}, idem="order-o9")
        assert_problem(other, 409, "idempotency.key_reused", "Idempotency-Key")
        moved = api.post("/v1/members", {"id": "o9x"}, idem="order-o9")
        assert_problem(moved, 409, "idempotency.key_reused")
    # no key, an empty key, an overlong key: 422, nothing booked
    with nothing_booked(api.engine):
        assert_problem(api.post("/v1/members", {"id": "nokey"}, no_idem=True), 422, "idempotency.key_required",
                       "Idempotency-Key")
        assert_problem(post(api.client, "/v1/members", {"id": "nokey"}, api.storefront,
                            extra_headers={"Idempotency-Key": ""}), 422, "idempotency.key_required")
        assert_problem(api.post("/v1/members", {"id": "nokey"}, idem="k" * 201), 422, "idempotency.key_required")
    assert ok(api.get("/v1/merchants/shop1"), 200)["sp"] == "495.0000"   # one order of 5 SP, not two


def test_idempotency(api):
    run_idempotency(api)


def test_idempotency_on_both_databases(api_db):
    run_idempotency(api_db)


def test_idempotent_replay_of_every_write_kind(api):
    build_world(api)
    writes = [
        ("storefront", "/v1/members", {"id": "zed"}),
        ("storefront", "/v1/members/carol/packs", {"kind": "activation"}),
        ("finance", "/v1/members/bob/role", {"role": "shop_owner"}),
        ("storefront", "/v1/merchants", {"id": "shop9", "owner": "owner", "region": "441900", "channel": "online",
                                         "rebate_rate": "0.05"}),
        ("finance", "/v1/deposits", {"platform": True, "amount_cny": "10.00"}),
        ("storefront", "/v1/orders", {"id": "o5", "buyer": "bob", "merchant": "shop1", "amount_cny": "10.00"}),
        ("finance", "/v1/orders/o5/reverse", {}),
        ("storefront", "/v1/transfers", {"from": "shop1", "to": "bob", "sp": "1.0000"}),
        ("storefront", "/v1/payouts", {"holder": "bob", "sp": "0.5000"}),
        ("storefront", "/v1/redemptions", {"holder": "bob", "sp": "0.2500", "goods": "soap"}),
    ]
    for role, path, body in writes:
        first = api.post(path, body, role=role, idem=f"k-{path}")
        assert first.status_code == 201, (path, first.get_data(as_text=True))
        with nothing_booked(api.engine):
            again = api.post(path, body, role=role, idem=f"k-{path}")
        assert (again.status_code, again.get_json()) == (201, first.get_json()), path
        assert again.headers.get("Idempotent-Replayed") == "true", path
    pay = api.post("/v1/payouts", {"holder": "bob", "sp": "0.1000"}).get_json()["id"]
    for action, body in (("settle", {"bank_reference": "R-1"}), ("cancel", {})):
        pid = pay if action == "settle" else api.post("/v1/payouts", {"holder": "bob", "sp": "0.1000"}).get_json()["id"]
        first = api.post(f"/v1/payouts/{pid}/{action}", body, role="finance", idem=f"k-{action}")
        assert first.status_code == 201
        with nothing_booked(api.engine):
            again = api.post(f"/v1/payouts/{pid}/{action}", body, role="finance", idem=f"k-{action}")
        assert (again.status_code, again.get_json()) == (201, first.get_json())
    # closing days: the same key returns the first closing, not "nothing to close"
    api.clock.advance(1)
    first = api.post("/v1/days/2026-03-31/close", None, role="finance", idem="close-0331")
    assert first.status_code == 201 and len(first.get_json()["closed"]) == 1
    with nothing_booked(api.engine):
        again = api.post("/v1/days/2026-03-31/close", None, role="finance", idem="close-0331")
    assert (again.status_code, again.get_json()) == (201, first.get_json())
    assert again.headers.get("Idempotent-Replayed") == "true"


# -- every 4xx: 422 invalid input ---------------------------------------------------------------

ORDER = {"id": "onew", "buyer": "bob", "merchant": "shop1", "amount_cny": "10.00"}
TRANSFER = {"from": "shop1", "to": "alice", "sp": "1.0000"}
MERCHANT = {"id": "shopnew", "owner": "owner", "region": "441900", "channel": "online", "rebate_rate": "0.10"}

BAD_AMOUNTS = [
    pytest.param(10.5, id="json-float"),
    pytest.param(10, id="json-int"),
    pytest.param("10.001", id="3-decimal-cny"),
    pytest.param("-10.00", id="negative"),
    pytest.param("0", id="zero"),
    pytest.param("0.00", id="zero-2dp"),
    pytest.param("NaN", id="nan"),
    pytest.param("Infinity", id="infinity"),
    pytest.param("-Infinity", id="minus-infinity"),
    pytest.param("1e30", id="exponent-1e30"),
    pytest.param("1E2", id="exponent-1E2"),
    pytest.param("12345678901234567890", id="20-digits"),
    pytest.param("99999999999999.99", id="above-max-amount"),
    pytest.param("", id="empty"),
    pytest.param(" 10.00", id="leading-space"),
    pytest.param("10,00", id="comma"),
    pytest.param("0x10", id="hex"),
    pytest.param(None, id="null"),
    pytest.param(True, id="bool"),
    pytest.param(["10.00"], id="list"),
]

BAD_IDS = [
    pytest.param("", id="empty"),
    pytest.param("a" * 65, id="65-chars"),
    pytest.param("has space", id="space"),
    pytest.param("dot.ted", id="dot"),
    pytest.param("slash/ed", id="slash"),
    pytest.param("quote\"d", id="quote"),
    pytest.param("é", id="non-ascii"),
    pytest.param("会员", id="cjk"),
    pytest.param("m1\n", id="trailing-newline"),
    pytest.param("m1\r\n", id="trailing-crlf"),
    pytest.param(7, id="number"),
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
@pytest.mark.parametrize("path,body,field,role", [
    ("/v1/orders", ORDER, "amount_cny", "storefront"),
    ("/v1/orders/quote", ORDER, "amount_cny", "storefront"),
    ("/v1/deposits", {"merchant": "shop1", "amount_cny": "500.00"}, "amount_cny", "finance"),
    ("/v1/transfers", TRANSFER, "sp", "storefront"),
    ("/v1/payouts", {"holder": "alice", "sp": "1.0000"}, "sp", "storefront"),
    ("/v1/redemptions", {"holder": "alice", "sp": "1.0000", "goods": "tea"}, "sp", "storefront"),
], ids=["order", "quote", "deposit", "transfer", "payout", "redemption"])
def test_bad_amount_is_422(world, path, body, field, role, amount):
    if field == "sp" and amount == "10.001":
        amount = "10.00001"  # SP has 4 decimals: one more than it allows
    with nothing_booked(world.engine):
        r = world.post(path, {**body, field: amount}, role=role)
        assert_problem(r, 422, field=field)


@pytest.mark.parametrize("sp", ["1.00001", "0.00005", "-1.0000", "0.0000"])
def test_sp_beyond_its_quantization_is_422(world, sp):
    with nothing_booked(world.engine):
        assert_problem(world.post("/v1/transfers", {**TRANSFER, "sp": sp}), 422, field="sp")


@pytest.mark.parametrize("rate", ["1.5", "0", "0.00", "0.12345", "-0.10", 0.1, "NaN", "1e-1"])
def test_bad_rebate_rate_is_422(world, rate):
    with nothing_booked(world.engine):
        assert_problem(world.post("/v1/merchants", {**MERCHANT, "rebate_rate": rate}), 422, field="rebate_rate")


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("path,body,field,role", [
    ("/v1/members", {"id": "x"}, "id", "storefront"),
    ("/v1/members", {"id": "newbie", "referrer": "alice"}, "referrer", "storefront"),
    ("/v1/merchants", MERCHANT, "id", "storefront"),
    ("/v1/merchants", MERCHANT, "owner", "storefront"),
    ("/v1/orders", ORDER, "id", "storefront"),
    ("/v1/orders", ORDER, "buyer", "storefront"),
    ("/v1/deposits", {"merchant": "shop1", "amount_cny": "1.00"}, "merchant", "finance"),
    ("/v1/transfers", TRANSFER, "to", "storefront"),
    ("/v1/payouts", {"holder": "alice", "sp": "1.0000"}, "holder", "storefront"),
], ids=["member-id", "referrer", "merchant-id", "owner", "order-id", "buyer", "deposit-merchant", "transfer-to",
        "payout-holder"])
def test_id_outside_the_alphabet_is_422(world, path, body, field, role, bad):
    with nothing_booked(world.engine):
        r = world.post(path, {**body, field: bad}, role=role)
        assert r.status_code == 422, (r.status_code, r.get_data(as_text=True))
        assert_problem(r, 422)


@pytest.mark.parametrize("region", ["44190", "4419000", "abcdef", "441900\n", "", 441900])
def test_bad_region_is_422(world, region):
    with nothing_booked(world.engine):
        assert_problem(world.post("/v1/members", {"id": "regioned", "region": region}), 422, field="region")
        assert_problem(world.post("/v1/merchants", {**MERCHANT, "region": region}), 422, field="region")


@pytest.mark.parametrize("bad", ["bad.id", "x" * 65, "%C3%A9", "a%0A", "a%20b"])
def test_path_id_outside_the_alphabet_is_422(world, bad):
    with nothing_booked(world.engine):
        assert_problem(world.post(f"/v1/members/{bad}/packs", {"kind": "activation"}), 422)
        assert_problem(world.post(f"/v1/members/{bad}/role", {"role": "vip"}, role="finance"), 422)


@pytest.mark.parametrize("path,body,role", [
    ("/v1/members", {"id": "x", "nickname": "X"}, "storefront"),
    ("/v1/members/carol/packs", {"kind": "activation", "colour": "red"}, "storefront"),
    ("/v1/orders", {**ORDER, "currency": "CNY"}, "storefront"),
    ("/v1/orders/quote", {**ORDER, "discount": "1.00"}, "storefront"),
    ("/v1/transfers", {**TRANSFER, "from_": "shop1"}, "storefront"),
    ("/v1/deposits", {"merchant": "shop1", "amount_cny": "1.00", "currency": "USD"}, "finance"),
    ("/v1/orders/o2/reverse", {"reason": "x"}, "finance"),
], ids=["member", "pack", "order", "quote", "transfer", "deposit", "reverse"])
def test_unknown_field_is_422(world, path, body, role):
    with nothing_booked(world.engine):
        assert_problem(world.post(path, body, role=role), 422, "input.invalid")


@pytest.mark.parametrize("path,body,role,field", [
    ("/v1/members", {}, "storefront", "id"),
    ("/v1/members/carol/packs", {}, "storefront", "kind"),
    ("/v1/members/carol/packs", {"kind": "gold"}, "storefront", "kind"),
    ("/v1/members/carol/packs", {"kind": "activation", "region": "441900"}, "storefront", "region"),
    ("/v1/members/carol/packs", {"kind": "partner"}, "storefront", "region"),
    ("/v1/members/carol/role", {"role": "king"}, "finance", "role"),
    ("/v1/merchants", {**MERCHANT, "channel": "both"}, "storefront", "channel"),
    ("/v1/deposits", {"amount_cny": "1.00"}, "finance", "merchant"),
    ("/v1/deposits", {"amount_cny": "1.00", "merchant": "shop1", "platform": True}, "finance", "merchant"),
    ("/v1/redemptions", {"holder": "alice", "sp": "1.0000", "goods": ""}, "storefront", "goods"),
    ("/v1/redemptions", {"holder": "alice", "sp": "1.0000", "goods": "tea\nset"}, "storefront", "goods"),
    ("/v1/redemptions", {"holder": "alice", "sp": "1.0000", "goods": "g" * 201}, "storefront", "goods"),
    ("/v1/members", {"id": "dated", "date": "2026-02-31"}, "storefront", "date"),
    ("/v1/members", {"id": "dated", "date": "31/03/2026"}, "storefront", "date"),
], ids=["missing-id", "missing-kind", "bad-kind", "region-on-activation", "partner-without-region", "bad-role",
        "bad-channel", "deposit-no-payer", "deposit-two-payers", "empty-goods",
        "goods-newline", "goods-too-long", "impossible-date", "bad-date-format"])
def test_other_invalid_input_is_422(world, path, body, role, field):
    with nothing_booked(world.engine):
        assert_problem(world.post(path, body, role=role), 422, field=field)


@pytest.mark.parametrize("path,body,rule,field", [
    ("/v1/transfers", {**TRANSFER, "to": "shop1"}, "transfer.same_holder", "to"),
    ("/v1/members", {"id": "dated", "date": "2026-04-01"}, "date.future", "date"),
    ("/v1/orders", {**ORDER, "date": "2999-01-01"}, "date.future", "date"),
], ids=["transfer-to-self", "future-date", "far-future-date"])
def test_a_request_the_document_allows_refused_by_a_rule_is_409(world, path, body, rule, field):
    """The OpenAPI document cannot say "not to oneself" or "not after today": such a request
    matches it, and is refused by the rules (409), not as malformed (422)."""
    with nothing_booked(world.engine):
        assert_problem(world.post(path, body), 409, rule, field)


def test_bank_reference_with_control_characters_is_422(world):
    with nothing_booked(world.engine):
        assert_problem(world.post(f"/v1/payouts/{world.pending_payout}/settle", {"bank_reference": "A\x00B"},
                                  role="finance"), 422, field="bank_reference")
        assert_problem(world.post(f"/v1/payouts/{world.pending_payout}/settle", {"bank_reference": ""},
                                  role="finance"), 422, field="bank_reference")


@pytest.mark.parametrize("day", ["not-a-date", "2026-13-01", "2026-02-30"])
def test_close_bad_date_is_422(world, day):
    with nothing_booked(world.engine):
        assert_problem(world.post(f"/v1/days/{day}/close", None, role="finance"), 422, "input.bad_date")


def test_body_over_64_kib_is_422(world):
    big = {"id": "big", "referrer": "alice", "region": "441900"}
    big_body = json.dumps({**big, "padding": "x" * (64 * 1024)})
    with nothing_booked(world.engine):
        assert_problem(post_raw(world.client, "/v1/members", big_body, world.storefront), 422, "input.too_large")
        assert_problem(post_raw(world.client, "/v1/redemptions",
                                json.dumps({"holder": "alice", "sp": "1.0000", "goods": "g" * 70000}),
                                world.storefront), 422, "input.too_large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                                          "multipart/form-data; boundary=x"])
def test_wrong_content_type_is_422(world, content_type):
    with nothing_booked(world.engine):
        r = post_raw(world.client, "/v1/members", json.dumps({"id": "typed"}), world.storefront, content_type)
        assert_problem(r, 422, "input.content_type")


@pytest.mark.parametrize("data", ["{bad", '{"id": "x",}', "{'id': 'x'}", '{"id": "x"', "\xff\xfe", "[]", '"x"',
                                  "null", "42", '[{"id": "x"}]'],
                         ids=["brace", "trailing-comma", "single-quotes", "unclosed", "bad-utf8", "array", "string",
                              "null", "number", "array-of-object"])
def test_malformed_json_is_422(world, data):
    with nothing_booked(world.engine):
        r = post_raw(world.client, "/v1/members", data.encode("latin-1"), world.storefront)
        assert_problem(r, 422)


def test_duplicate_json_keys_do_not_smuggle_a_second_value(world):
    """{"id": "a", "id": "b"}: whatever the parser keeps, the booking and its idempotency hash agree."""
    r = post_raw(world.client, "/v1/members", '{"id": "dupkey1", "id": "dupkey2"}', world.storefront)
    assert r.status_code in (201, 422), r.get_data(as_text=True)
    if r.status_code == 201:
        assert ok(world.get("/v1/holders/dupkey2"), 200)["id"] == "dupkey2"


# -- every 4xx: 404 unknown ids ----------------------------------------------------------------------

@pytest.mark.parametrize("path,body,role,rule,field", [
    ("/v1/members/nobody/packs", {"kind": "activation"}, "storefront", "member.unknown", "member"),
    ("/v1/members/nobody/role", {"role": "vip"}, "finance", "member.unknown", "member"),
    ("/v1/members/shop1/packs", {"kind": "activation"}, "storefront", "member.unknown", "member"),
    ("/v1/members", {"id": "newbie", "referrer": "nobody"}, "storefront", "member.unknown", "referrer"),
    ("/v1/merchants", {**MERCHANT, "owner": "nobody"}, "storefront", "member.unknown", "owner"),
    ("/v1/merchants", {**MERCHANT, "referrer": "nobody"}, "storefront", "member.unknown", "referrer"),
    ("/v1/deposits", {"merchant": "nobody", "amount_cny": "500.00"}, "finance", "merchant.unknown", "merchant"),
    ("/v1/deposits", {"merchant": "alice", "amount_cny": "500.00"}, "finance", "merchant.unknown", "merchant"),
    ("/v1/orders", {**ORDER, "buyer": "nobody"}, "storefront", "member.unknown", "buyer"),
    ("/v1/orders", {**ORDER, "merchant": "nobody"}, "storefront", "merchant.unknown", "merchant"),
    ("/v1/orders", {**ORDER, "merchant": "alice"}, "storefront", "merchant.unknown", "merchant"),
    ("/v1/orders/quote", {**ORDER, "merchant": "nobody"}, "storefront", "merchant.unknown", "merchant"),
    ("/v1/orders/nosuchorder/reverse", {}, "finance", "order.unknown", "id"),
    ("/v1/transfers", {**TRANSFER, "from": "nobody"}, "storefront", "holder.unknown", "from"),
    ("/v1/transfers", {**TRANSFER, "to": "nobody"}, "storefront", "holder.unknown", "to"),
    ("/v1/payouts", {"holder": "nobody", "sp": "1.0000"}, "storefront", "holder.unknown", "holder"),
    ("/v1/payouts/E999999999/settle", {"bank_reference": "R"}, "finance", "payout.unknown", "payout"),
    ("/v1/payouts/E999999999/cancel", {}, "finance", "payout.unknown", "payout"),
    ("/v1/payouts/nosuchpayout/cancel", {}, "finance", "payout.unknown", "payout"),
    ("/v1/redemptions", {"holder": "nobody", "sp": "1.0000", "goods": "tea"}, "storefront", "holder.unknown", "holder"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None)
def test_unknown_id_in_a_write_is_404(world, path, body, role, rule, field):
    with nothing_booked(world.engine):
        assert_problem(world.post(path, body, role=role), 404, rule, field)


def test_a_payout_id_that_is_another_event_is_404(world):
    event_id = world.engine.event_for_order("o2")
    with nothing_booked(world.engine):
        assert_problem(world.post(f"/v1/payouts/{event_id}/settle", {"bank_reference": "R"}, role="finance"), 404,
                       "payout.unknown")


@pytest.mark.parametrize("path,rule", [
    ("/v1/holders/nobody", "holder.unknown"),
    ("/v1/merchants/nobody", None),  # holder.unknown or merchant.unknown
    ("/v1/merchants/alice", "merchant.unknown"),
    ("/v1/events/E999999999", "event.unknown"),
    ("/v1/events/nosuchevent", "event.unknown"),
    ("/v1/supply?date=2020-01-01", "day.before_genesis"),
])
def test_unknown_id_in_a_read_is_404(world, path, rule):
    body = assert_problem(world.get(path), 404, rule)
    assert body["rule"].endswith(".unknown") or body["rule"] == "day.before_genesis"


def test_unknown_path_and_method_are_problems(world):
    assert_problem(world.get("/v1/nothing"), 404)
    assert_problem(world.client.get("/v1/members", headers={"Authorization": f"Bearer {world.storefront}"}), 405)


# -- every 4xx: 409 refused by the rules ----------------------------------------------------------------

@pytest.mark.parametrize("path,body,role,rule,field", [
    ("/v1/members", {"id": "alice"}, "storefront", "holder.duplicate_id", "member"),
    ("/v1/members", {"id": "shop1"}, "storefront", "holder.duplicate_id", "member"),      # one id space
    ("/v1/merchants", {**MERCHANT, "id": "shop1"}, "storefront", "holder.duplicate_id", "merchant"),
    ("/v1/merchants", {**MERCHANT, "id": "bob"}, "storefront", "holder.duplicate_id", "merchant"),
    ("/v1/merchants", {**MERCHANT, "owner": "carol"}, "storefront", "store.owner_inactive", "owner"),
    ("/v1/orders", {**ORDER, "id": "o2"}, "storefront", "order.duplicate_id", "order_id"),
    ("/v1/orders", {**ORDER, "id": "o1"}, "storefront", "order.duplicate_id", "order_id"),   # even reversed
    ("/v1/orders/quote", {**ORDER, "id": "o2"}, "storefront", "order.duplicate_id", "order_id"),
    ("/v1/orders", {**ORDER, "merchant": "shop2"}, "storefront", "merchant.deposit_short", "merchant"),
    ("/v1/orders", {**ORDER, "amount_cny": "1000000.00"}, "storefront", "order.insufficient_sp", "merchant"),
    ("/v1/orders/quote", {**ORDER, "amount_cny": "1000000.00"}, "storefront", "order.insufficient_sp", "merchant"),
    ("/v1/transfers", {**TRANSFER, "sp": "100000.0000"}, "storefront", "transfer.insufficient_sp", "sp"),
    ("/v1/transfers", {"from": "carol", "to": "alice", "sp": "0.0001"}, "storefront", "transfer.insufficient_sp", "sp"),
    ("/v1/payouts", {"holder": "alice", "sp": "100000.0000"}, "storefront", "payout.insufficient_sp", "sp"),
    ("/v1/redemptions", {"holder": "bob", "sp": "1.0000", "goods": "tea"}, "storefront", "redeem.insufficient_sp", "sp"),
    ("/v1/orders/o1/reverse", {}, "finance", "reverse.already_reversed", "event"),
    ("/v1/members", {"id": "late", "date": "2026-03-30"}, "storefront", "day.closed", "date"),
    ("/v1/orders", {**ORDER, "date": "2026-03-01"}, "storefront", "day.closed", "date"),
    ("/v1/deposits", {"merchant": "shop1", "amount_cny": "1.00", "date": "2026-03-15"}, "finance", "day.closed", "date"),
    ("/v1/days/2026-03-31/close", None, "finance", "day.not_ended", "date"),
    ("/v1/days/2026-12-31/close", None, "finance", "day.not_ended", "date"),
], ids=lambda v: v if isinstance(v, str) and "." in v and "/" not in v else None)
def test_rule_refusal_is_409(world, path, body, role, rule, field):
    with nothing_booked(world.engine):
        assert_problem(world.post(path, body, role=role), 409, rule, field)


def test_payout_not_pending_is_409(world):
    with nothing_booked(world.engine):
        assert_problem(world.post(f"/v1/payouts/{world.settled_payout}/settle", {"bank_reference": "again"},
                                  role="finance"), 409, "payout.not_pending")
        assert_problem(world.post(f"/v1/payouts/{world.settled_payout}/cancel", {}, role="finance"), 409,
                       "payout.not_pending")


def test_cap_reached_is_409(tmp_path, clock):
    small = dataclasses.replace(config.load("seed-a"), sp_cap=D("1000"))
    api = make_api(tmp_path / "books", clock, params=small)
    try:
        build_world(api)                                               # shop1 bought 500 SP: 500 left
        ok(api.post("/v1/merchants", {**MERCHANT, "id": "shop3"}))
        with nothing_booked(api.engine):
            assert_problem(api.post("/v1/deposits", {"merchant": "shop3", "amount_cny": "500.01"}, role="finance"),
                           409, "sp.cap_reached", "amount_cny")
        ok(api.post("/v1/deposits", {"merchant": "shop3", "amount_cny": "500.00"}, role="finance"))  # to the cap
        with nothing_booked(api.engine):
            assert_problem(api.post("/v1/deposits", {"merchant": "shop3", "amount_cny": "0.01"}, role="finance"),
                           409, "sp.cap_reached", "amount_cny")
        assert ok(api.get("/v1/supply"), 200)["issued"] == "1000.0000"
    finally:
        api.engine.dispose()


def test_partner_region_taken_is_409(api):
    build_world(api)
    ok(api.post("/v1/members/alice/packs", {"kind": "partner", "region": "441900"}))
    with nothing_booked(api.engine):
        assert_problem(api.post("/v1/members/bob/packs", {"kind": "partner", "region": "441900"}), 409,
                       "region.partner_taken", "region")


@pytest.mark.parametrize("rule", ["flip", "remaining"])
def test_reversal_after_a_release_of_spent_sp(tmp_path, clock, rule):
    """Under the legacy rule `flip` the exact mirror is refused (409) once a release converted
    the SV it takes back; under `remaining` (new books) the refund goes through."""
    rules = dataclasses.replace(config.load("seed-a"), reverse_rule=rule)
    api = make_api(tmp_path / "books", clock, rules)
    try:
        build_world(api)
        order = ok(api.post("/v1/orders", {**ORDER, "id": "o7", "amount_cny": "100.00"}))
        assert order["kind"] == "order"
        ok(api.post("/v1/transfers", {"from": "shop1", "to": "bob", "sp": "490.0000"}))   # shop1 holds 0 SP, 2 SV
        api.clock.advance(1)
        ok(api.post("/v1/days/2026-03-31/close", None, role="finance"))     # releases convert the SV it gave
        if rule == "flip":
            with nothing_booked(api.engine):
                r = api.post("/v1/orders/o7/reverse", {}, role="finance")
                assert_problem(r, 409, "reverse.insufficient_balance", "event")
        else:
            r = ok(api.post("/v1/orders/o7/reverse", {}, role="finance"))
            assert r["kind"] == "reverse"
            assert D(ok(api.get("/v1/merchants/shop1"), 200)["sv_active"]) == 0   # the 2 SV's remainder taken back
    finally:
        api.engine.dispose()


def test_refusals_book_nothing_on_both_databases(api_db):
    api = api_db
    build_world(api)
    cases = [
        ({"id": "alice"}, "/v1/members", 409, "holder.duplicate_id"),
        ({**ORDER, "merchant": "shop2"}, "/v1/orders", 409, "merchant.deposit_short"),
        ({**ORDER, "amount_cny": "6000.00"}, "/v1/orders", 409, "order.insufficient_sp"),
        ({**ORDER, "amount_cny": "1.001"}, "/v1/orders", 422, "input.bad_amount"),
        ({**ORDER, "amount_cny": 1.5}, "/v1/orders", 422, "input.invalid"),
        ({**ORDER, "buyer": "nobody"}, "/v1/orders", 404, "member.unknown"),
        ({"id": "late", "date": "2026-03-02"}, "/v1/members", 409, "day.closed"),
    ]
    for body, path, status, rule in cases:
        with nothing_booked(api.engine):
            assert_problem(api.post(path, body), status, rule)
    ok(api.post("/v1/orders", {**ORDER, "id": "o8"}))
    with nothing_booked(api.engine):
        assert_problem(api.post("/v1/orders", {**ORDER, "id": "o8"}), 409, "order.duplicate_id")
    with nothing_booked(api.engine):
        assert_problem(api.client.post("/v1/members", data=json.dumps({"id": "anon"}),
                                       content_type="application/json", headers={"Idempotency-Key": "a"}), 401)


def test_stable_type_per_rule(world):
    """The same rule gives the same `type` whatever the request; problem+json every time."""
    seen: dict[str, set[str]] = {}
    for path, body, role in [
        ("/v1/members", {"id": "alice"}, "storefront"),
        ("/v1/members", {"id": "bob"}, "storefront"),
        ("/v1/transfers", {**TRANSFER, "sp": "999999.0000"}, "storefront"),
        ("/v1/transfers", {"from": "carol", "to": "bob", "sp": "1.0000"}, "storefront"),
        ("/v1/orders", {**ORDER, "buyer": "x1"}, "storefront"),
        ("/v1/orders", {**ORDER, "buyer": "x2"}, "storefront"),
    ]:
        r = world.post(path, body, role=role)
        body_out = assert_problem(r, r.status_code)
        seen.setdefault(body_out["rule"], set()).add(body_out["type"])
    assert seen == {"holder.duplicate_id": {"/problems/holder.duplicate_id"},
                    "transfer.insufficient_sp": {"/problems/transfer.insufficient_sp"},
                    "member.unknown": {"/problems/member.unknown"}}


# -- auth --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", "Bearer lsk_0000_unknown",
                                           "Bearer not-even-a-key", "Basic dXNlcjpwYXNz", "Token lsk_x",
                                           "Bearer " + "x" * 500])
def test_no_or_unknown_key_is_401(world, authorization):
    extra = {} if authorization is None else {"Authorization": authorization}
    with nothing_booked(world.engine):
        r = world.client.post("/v1/members", data=json.dumps({"id": "anon"}), content_type="application/json",
                              headers={"Idempotency-Key": "anon-1", **extra})
        assert_problem(r, 401, "auth.unknown_key")
    assert_problem(world.client.get("/v1/holders/alice", headers=extra), 401, "auth.unknown_key")
    assert_problem(world.client.get("/v1/supply", headers=extra), 401, "auth.unknown_key")


def test_revoked_key_is_401(api):
    key_id, secret = api.new_key("storefront")
    ok(post(api.client, "/v1/members", {"id": "before"}, secret))
    ok(get(api.client, "/v1/holders/before", secret), 200)
    api.revoke(key_id)
    with nothing_booked(api.engine):
        assert_problem(post(api.client, "/v1/members", {"id": "after"}, secret), 401, "auth.unknown_key")
    assert_problem(get(api.client, "/v1/holders/before", secret), 401, "auth.unknown_key")
    ok(api.get("/v1/holders/before", role="storefront"), 200)   # other keys still work


def test_key_of_other_books_is_401(tmp_path, clock, api):
    other = make_api(tmp_path / "other", clock)
    try:
        with nothing_booked(api.engine):
            assert_problem(post(api.client, "/v1/members", {"id": "stranger"}, other.storefront), 401)
    finally:
        other.engine.dispose()


def test_replay_needs_a_valid_key_too(api):
    body = {"id": "replayed"}
    first = api.post("/v1/members", body, idem="replay-auth")
    assert first.status_code == 201
    r = api.client.post("/v1/members", data=json.dumps(body), content_type="application/json",
                        headers={"Idempotency-Key": "replay-auth"})
    assert_problem(r, 401)
    assert_problem(api.post("/v1/members", body, role="auditor", idem="replay-auth"), 403, "auth.wrong_role")
