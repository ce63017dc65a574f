"""Issue 13, part 4: the store deposit is points held, not cash paid.

The source: 「商家入驻需持有价值500元的共享积分作为保证金；数量低于0时，消费者无法在该商家下单」.
Under `merchant.deposit_rule = "sp_held"` (new books) a store's first order needs SP held
worth at least `merchant.deposit_value` (500.00 CNY) at the day's value, wherever the SP
came from; that order opens the store, and from then on it takes orders while it holds any
SP. Books made before keep `"cash_paid"` (deposits paid to the pool) and verify unchanged.

The expected numbers are derived by hand in the comments (profile seed-a unless said).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from importlib import resources

import pytest
from alembic import command
from alembic.migration import MigrationContext

from ledger_service import config, reports
from ledger_service.audit.verify import verify
from ledger_service.engine import Engine
from ledger_service.errors import Conflict
from ledger_service.rules.events import BuyPack, Deposit, OpenStore, Order, Register, Reverse, Transfer
from ledger_service.rules.orders import OPENING_SP, deduction, max_order_cny, opening
from ledger_service.state import MERCHANT, Globals, Holder, MemoryState
from ledger_service.store import migrate
from ledger_service.views import holder_index

from api_helpers import assert_problem, make_api, ok
from booking_helpers import custom, journal_bytes, one
from conftest import START

D = Decimal
DAY2 = START + timedelta(days=1)


def gate(engine, sid="s1") -> tuple:
    """The figures `GET /v1/merchants/{id}` shows about the deposit (engine.merchant is its source)."""
    view = engine.merchant(sid)
    return (view["sp"], view["deposit_sp"], view["opened"], view["deposit_met"], view["can_take_orders"],
            view["max_order_cny"])


def refused(engine, event, day, rule) -> Conflict:
    """`event` is refused (409 Conflict) with `rule`, and the journal is unchanged."""
    before = journal_bytes(engine)
    with pytest.raises(Conflict) as info:
        engine.submit(event, day)
    assert info.value.rule == rule, info.value
    assert journal_bytes(engine) == before
    return info.value


def members_with_sp(engine) -> None:
    """Day 1: owner `own` and seller `m1` active (599 SV each), buyer `b1` registered (inactive),
    1000.00 CNY injected into the pool, offline store `s1` (rebate 0.10) opened, no cash deposit.
    The close of day 1 releases 500 SP over 599 + 599 = 1198 active SV: 250 SP each to own and m1;
    day 2's value = pool ÷ circulating = 1000.00 ÷ 500 = 2.00 CNY/SP."""
    for mid in ("own", "m1"):
        engine.submit(Register(mid), START)
        engine.submit(BuyPack(mid, "activation"), START)
    engine.submit(Register("b1"), START)
    engine.submit(Deposit(D("1000.00"), platform=True), START)
    engine.submit(OpenStore("s1", "own", "441900", "offline", D("0.10")), START)
    engine.close_days(START)
    assert D(engine.head()["value_cny_per_sp"]) == D("2")
    assert (engine.holder("own")["sp"], engine.holder("m1")["sp"]) == (D("250"), D("250"))


# -- the worked example --------------------------------------------------------------------------

def test_a_store_funded_by_members_takes_orders_until_its_sp_runs_out_and_again_after_a_top_up(engine):
    members_with_sp(engine)
    # day 2, 2.00 CNY/SP: the deposit is 500.00 ÷ 2.00 = 250 SP. s1 holds none: closed;
    # the largest order it may take is 0
    assert gate(engine) == (0, D("250"), None, False, False, 0)
    view = engine.merchant("s1")
    assert (view["deposit_rule"], view["deposit_value_cny"], view["deposits_cny"]) == ("sp_held", D("500"), 0)
    refusal = refused(engine, Order("o0", "b1", "s1", D("10.00")), DAY2, "merchant.deposit_short")
    assert "500.00 CNY = 250.0000 SP" in refusal.detail and refusal.field == "merchant"

    # m1 sells s1 200 SP (a transfer; no cash reaches the pool): 200 x 2.00 = 400.00 CNY < 500.00
    engine.submit(Transfer("m1", "s1", D("200")), DAY2)
    assert gate(engine) == (D("200"), D("250"), None, False, False, 0)
    refusal = refused(engine, Order("o0", "b1", "s1", D("10.00")), DAY2, "merchant.deposit_short")
    assert "holds 200.0000 SP worth 400.00 CNY at 2.00000000 CNY/SP" in refusal.detail
    # 50 more: 250 x 2.00 = 500.00 CNY, the deposit exactly: it may take its first order.
    # Largest order: D ≤ 250 SP ⇔ R ≤ 500.00 CNY ⇔ amount x 0.10 rounds to ≤ 500.00: 5000.05 CNY
    # (5000.05 x 0.10 = 500.005 → 500.00 half-even; 5000.06 → 500.01 → 250.005 SP > 250)
    engine.submit(Transfer("m1", "s1", D("50")), DAY2)
    assert gate(engine) == (D("250"), D("250"), None, True, True, D("5000.05"))
    assert engine.merchant("s1")["deposits_cny"] == 0  # no cash deposit at all

    # its first order opens it: 1000.00 x 0.10 = 100.00 CNY → D = 100.00 ÷ 2.00 = 50 SP
    # (b1 is inactive: all of D is burned). The entry records the SP held when it opened.
    first = engine.submit(Order("o1", "b1", "s1", D("1000.00")), DAY2)
    assert D(first.entry.get("deducted_sp")) == D("50")
    assert D(first.entry.get(OPENING_SP)) == D("250")
    assert one(first, leg="burn").number == D("-50")
    # 250 - 50 = 200 SP worth 400.00 CNY, below the deposit, but the store is open: it takes
    # orders while its SP covers them (largest: D ≤ 200 ⇔ R ≤ 400.00 ⇔ 4000.05 CNY)
    assert gate(engine) == (D("200"), D("250"), DAY2, True, True, D("4000.05"))
    second = engine.submit(Order("o2", "b1", "s1", D("2000.00")), DAY2)  # R = 200.00, D = 100 SP
    assert second.entry.get(OPENING_SP) is None  # only the first order opens the store
    assert gate(engine) == (D("100"), D("250"), DAY2, True, True, D("2000.05"))

    # an order whose deduction its SP does not cover: 4000.00 x 0.10 = 400.00 → 200 SP > 100
    refusal = refused(engine, Order("o3", "b1", "s1", D("4000.00")), DAY2, "order.insufficient_sp")
    assert "holds 100.0000 SP, 200.0000 SP needed" in refusal.detail and "at most 2000.05 CNY" in refusal.detail
    # 2000.00 CNY deducts exactly the 100 SP left: s1 holds 0 SP and can take no order
    engine.submit(Order("o3", "b1", "s1", D("2000.00")), DAY2)
    assert gate(engine) == (0, D("250"), DAY2, True, False, 0)
    refusal = refused(engine, Order("o4", "b1", "s1", D("0.10")), DAY2, "merchant.no_sp")
    assert "holds 0 SP" in refusal.detail and "sp_held" in refusal.detail

    # a top-up by a member: own sells it 10 SP → open again (10 SP, far below the deposit value)
    engine.submit(Transfer("own", "s1", D("10")), DAY2)
    assert gate(engine) == (D("10"), D("250"), DAY2, True, True, D("200.05"))
    booked = engine.submit(Order("o4", "b1", "s1", D("200.00")), DAY2)  # R = 20.00, D = 10 SP
    assert one(booked, leg="deduct").number == D("10")
    assert gate(engine)[4] is False
    # a top-up by a cash deposit works the same: 100.00 CNY ÷ 2.00 = 50 SP
    engine.submit(Deposit(D("100.00"), merchant="s1"), DAY2)
    assert gate(engine) == (D("50"), D("250"), DAY2, True, True, D("1000.05"))

    # the books verify, and the holder index folds the same opening day
    engine.close_days(DAY2)
    report = verify(engine.books.root)
    assert report.ok, [str(f) for f in report.faults]
    assert engine.merchant("s1")["opened"] == DAY2


def test_the_opening_is_checked_at_the_days_value(make_books, params):
    """The deposit is SP worth 500.00 CNY at the day's value: the same SP opens a store on a day
    the value is higher. Day 1 at 1.00 CNY/SP, s1 buys 400 SP for 400.00 CNY: 400.00 < 500.00.
    A platform injection of 200.00 CNY makes day 2's value (400 + 200) ÷ 400 = 1.50 CNY/SP
    (releases are turned off, so the owner's active SV issues nothing)."""
    engine = make_books(custom(params, sp_daily_release=D("0")))
    engine.submit(Register("own"), START)
    engine.submit(BuyPack("own", "activation"), START)
    engine.submit(Register("b1"), START)
    engine.submit(OpenStore("s1", "own", "441900", "offline", D("0.10")), START)
    engine.submit(Deposit(D("400.00"), merchant="s1"), START)
    # 500.00 ÷ 1.00 = 500 SP needed, 400 held
    assert gate(engine) == (D("400"), D("500"), None, False, False, 0)
    refused(engine, Order("o1", "b1", "s1", D("10.00")), START, "merchant.deposit_short")
    engine.submit(Deposit(D("200.00"), platform=True), START)
    engine.close_days(START)
    assert D(engine.head()["value_cny_per_sp"]) == D("1.5")
    # day 2: 400 x 1.50 = 600.00 CNY ≥ 500.00; the deposit is 500 ÷ 1.5 = 333.3333.. → 333.3334 SP
    # (rounded up: 333.3333 SP is worth 499.99995 CNY, short of 500.00)
    assert gate(engine)[1:5] == (D("333.3334"), None, True, True)
    engine.submit(Order("o1", "b1", "s1", D("10.00")), DAY2)
    assert engine.merchant("s1")["opened"] == DAY2


def test_an_opening_order_reversed_leaves_the_store_open(engine):
    """The opening is a fact of the day the store held its deposit: a reversal of that order
    gives the SP back and leaves `opened` set (decision: README, "The store deposit")."""
    engine.submit(Register("own"), START)
    engine.submit(BuyPack("own", "activation"), START)
    engine.submit(Register("b1"), START)
    engine.submit(OpenStore("s1", "own", "441900", "offline", D("0.10")), START)
    engine.submit(Deposit(D("500.00"), merchant="s1"), START)  # 500 SP at 1.00
    order = engine.submit(Order("o1", "b1", "s1", D("1000.00")), START)  # D = 100 SP
    engine.submit(Transfer("s1", "own", D("400")), START)  # s1: 500 - 100 - 400 = 0 SP
    assert gate(engine)[2:5] == (START, True, False)
    engine.submit(Reverse(order.event_id), START)  # the 100 SP come back
    assert gate(engine) == (D("100"), D("500"), START, True, True, D("1000.05"))


# -- the rule as a pure function -------------------------------------------------------------------

PARAMS = config.load("seed-a")
CASH_PAID = dataclasses.replace(PARAMS, merchant_deposit_rule="cash_paid")


def shop(**kw) -> Holder:
    return Holder("s1", MERCHANT, START, active=True, owner="own", channel="offline", rebate_rate=D("0.10"), **kw)


@pytest.mark.parametrize("held, value, opened, met, can", [
    ("0", "1.00", None, False, False),
    ("499.9999", "1.00", None, False, False),      # 499.9999 x 1.00 < 500.00
    ("500", "1.00", None, True, True),             # 500 x 1.00 = 500.00
    ("333.3333", "1.5", None, False, False),       # 499.99995 CNY
    ("333.3334", "1.5", None, True, True),         # 500.0001 CNY
    ("1000000", "0", None, False, False),          # a point worth nothing holds no deposit
    ("0.0001", "1.00", START, True, True),         # open: any SP
    ("0", "1.00", START, True, False),             # open, no SP: no order (数量低于0)
])
def test_opening_under_sp_held(held, value, opened, met, can):
    gate_ = opening(shop(opened=opened, deposits_cny=D("1000")), D(held), D(value), PARAMS)
    assert (gate_.rule, gate_.deposit_met, gate_.can_take_orders) == ("sp_held", met, can)


def test_opening_under_cash_paid_is_the_old_rule():
    """Deposits paid ≥ 500.00 CNY, whatever SP is held (0 SP included, as before issue 13)."""
    assert opening(shop(deposits_cny=D("499.99")), D("100000"), D("1"), CASH_PAID).can_take_orders is False
    assert opening(shop(deposits_cny=D("500")), D("0"), D("1"), CASH_PAID).can_take_orders is True


def test_a_deposit_value_of_zero_opens_a_store_with_any_sp():
    free = dataclasses.replace(PARAMS, merchant_deposit_value=D("0"))
    assert opening(shop(), D("0"), D("1"), free).can_take_orders is False  # still no order at 0 SP
    assert opening(shop(), D("0.0001"), D("1"), free).can_take_orders is True


@pytest.mark.parametrize("value", ["0.5", "1.00", "1.5", "2.00000001", "3.14159265", "0.00012345", "987.65432101"])
@pytest.mark.parametrize("rate", ["0.01", "0.0333", "0.10", "0.15", "0.5", "1"])
@pytest.mark.parametrize("held", ["0", "0.0001", "1", "17.3333", "250", "99999.9999"])
def test_max_order_is_the_largest_order_the_sp_covers(value, rate, held):
    """D(max) ≤ held < D(max + 0.01): the order rule's own arithmetic (`deduction`)."""
    v, r, sp = D(value), D(rate), D(held)
    largest = max_order_cny(sp, r, v)
    assert largest is not None and largest >= 0
    assert deduction(largest, r, v)[1] <= sp
    assert deduction(largest + D("0.01"), r, v)[1] > sp


def test_max_order_without_a_rebate_has_no_limit():
    assert max_order_cny(D("0"), D("0"), D("1")) is None


def test_the_view_of_a_merchant_explains_the_rule():
    g = Globals(genesis_day=START, open_day=DAY2, value=D("2"))
    view = reports.holder_view(shop(sp_exact=D("250")), g, MemoryState(g), PARAMS)
    assert {k: view[k] for k in ("sp", "deposit_rule", "deposit_value_cny", "deposit_sp", "opened", "deposit_met",
                                 "can_take_orders", "max_order_cny")} == {
        "sp": D("250"), "deposit_rule": "sp_held", "deposit_value_cny": D("500"), "deposit_sp": D("250"),
        "opened": None, "deposit_met": True, "can_take_orders": True, "max_order_cny": D("5000.05")}
    old = reports.holder_view(shop(sp_exact=D("250")), g, MemoryState(g), CASH_PAID)
    assert (old["deposit_rule"], old["deposit_met"], old["can_take_orders"], old["max_order_cny"]) == (
        "cash_paid", False, False, 0)


# -- the API ----------------------------------------------------------------------------------------

def test_the_api_shows_the_numbers_and_refuses_with_the_rule(tmp_path, clock):
    api = make_api(tmp_path / "books", clock)
    try:
        members_with_sp(api.engine)
        day2 = DAY2.isoformat()
        view = ok(api.get("/v1/merchants/s1"), 200)
        assert {k: view[k] for k in ("sp", "deposit_rule", "deposit_value_cny", "deposit_sp", "opened",
                                     "deposit_met", "can_take_orders", "max_order_cny", "deposits_cny")} == {
            "sp": "0.0000", "deposit_rule": "sp_held", "deposit_value_cny": "500.00", "deposit_sp": "250.0000",
            "opened": None, "deposit_met": False, "can_take_orders": False, "max_order_cny": "0.00",
            "deposits_cny": "0.00"}
        order = {"id": "o1", "buyer": "b1", "merchant": "s1", "amount_cny": "5000.00", "date": day2}
        assert_problem(api.post("/v1/orders", order), 409, "merchant.deposit_short", "merchant")
        ok(api.post("/v1/transfers", {"from": "m1", "to": "s1", "sp": "250.0000", "date": day2}))
        # 5000.00 x 0.10 = 500.00 CNY → 250 SP: all it holds
        ok(api.post("/v1/orders", order))
        view = ok(api.get("/v1/merchants/s1"), 200)
        assert (view["sp"], view["opened"], view["deposit_met"], view["can_take_orders"]) == (
            "0.0000", day2, True, False)
        problem = assert_problem(api.post("/v1/orders", {**order, "id": "o2", "amount_cny": "1.00"}), 409,
                                 "merchant.no_sp", "merchant")
        assert "merchant.deposit_rule sp_held" in problem["detail"]
        ok(api.post("/v1/transfers", {"from": "own", "to": "s1", "sp": "1.0000", "date": day2}))
        assert ok(api.get("/v1/merchants/s1"), 200)["can_take_orders"] is True
        ok(api.post("/v1/orders", {**order, "id": "o2", "amount_cny": "20.00"}))  # D = 2.00 ÷ 2 = 1 SP
    finally:
        api.engine.dispose()


# -- books made before: the old rule, unchanged ----------------------------------------------------

def bean_check(root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "beancount.scripts.check", "-C", str(root / "main.beancount")],
                          capture_output=True, text=True, timeout=300)


def test_books_made_before_keep_the_cash_paid_rule_and_verify(make_books, params):
    """Books as the code before issue 13 wrote them: a genesis entry without the parameter (the
    LEGACY value "cash_paid" is left out of it), a database at schema revision 0002 (no
    `holders.opened`). The code of today reads them with the old rule, upgrades the database,
    and they pass verify and bean-check."""
    engine = make_books(dataclasses.replace(params, merchant_deposit_rule="cash_paid"))
    root = engine.books.root
    genesis = engine.event("E000000001")["entry"]
    assert "merchant_deposit_value" in genesis and "merchant_deposit_rule" not in genesis
    engine.submit(Register("own"), START)
    engine.submit(BuyPack("own", "activation"), START)
    engine.submit(Register("b1"), START)
    for sid in ("paid", "held"):
        engine.submit(OpenStore(sid, "own", "441900", "offline", D("0.10")), START)
    # "paid" deposits 500.00 CNY (500 SP at 1.00); "held" gets 500 SP by a transfer, no cash
    engine.submit(Deposit(D("500.00"), merchant="paid"), START)
    engine.submit(Transfer("paid", "held", D("500")), START)
    # the old rule: cash paid counts, SP held does not; and a store at 0 SP shows it can take
    # orders (then an order is refused for its SP, order.insufficient_sp)
    assert gate(engine, "paid")[3:5] == (True, True)
    assert gate(engine, "held")[3:5] == (False, False)
    refused(engine, Order("o1", "b1", "held", D("10.00")), START, "merchant.deposit_short")
    refused(engine, Order("o1", "b1", "paid", D("10.00")), START, "order.insufficient_sp")
    engine.submit(Transfer("held", "paid", D("500")), START)
    booked = engine.submit(Order("o1", "b1", "paid", D("1000.00")), START)  # D = 100 SP
    assert booked.entry.get(OPENING_SP) is None  # no opening is recorded under the old rule
    engine.close_days(START)
    assert engine.merchant("paid")["opened"] is None

    # the database as revision 0002 left it (no holders.opened), and the holder index file as
    # written before the column existed
    with engine.db.begin() as connection:
        cfg = migrate.config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0002")
    engine.dispose()
    index = holder_index.index_path(root)
    assert index.exists()  # folded at the close of day 1
    with sqlite3.connect(index) as c:
        c.execute("ALTER TABLE holders DROP COLUMN opened")

    again = Engine(root)  # opening the books upgrades the database first
    try:
        with again.db.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == migrate.head()
        assert again.params.merchant_deposit_rule == "cash_paid"
        assert gate(again, "paid")[2:5] == (None, True, True)
        report = verify(root)
        assert report.ok, [str(f) for f in report.faults]
        checked = bean_check(root)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        again.dispose()
    with holder_index.Reader(root) as reader:  # the index gained the column (NULL: never opened)
        paid = reader.state().holder("paid")
        assert paid is not None and paid.opened is None


# -- the parameter ----------------------------------------------------------------------------------

def test_the_rules_file_parameter():
    """`[merchant] deposit_rule`: "sp_held" or "cash_paid"; a rules file without it (written
    before issue 13) gets the new books' rule; the genesis metadata leaves the legacy value out."""
    text = resources.files("ledger_service.profiles").joinpath("seed-a.toml").read_text("utf-8")
    assert config.parse_toml(text).merchant_deposit_rule == "sp_held"
    older = "\n".join(line for line in text.splitlines() if not line.startswith("deposit_rule"))
    assert "deposit_rule" not in older.split("[merchant]")[1].split("[")[0]
    assert config.parse_toml(older).merchant_deposit_rule == "sp_held"  # config.DEFAULTS
    with pytest.raises(config.ConfigError) as bad:
        config.parse_toml(text.replace('deposit_rule = "sp_held"', 'deposit_rule = "held"'))
    assert bad.value.key == "merchant.deposit_rule"
    assert PARAMS.to_meta()["merchant_deposit_rule"] == "sp_held"
    meta = CASH_PAID.to_meta()
    assert "merchant_deposit_rule" not in meta  # as books made before wrote their genesis entry
    assert config.Params.from_meta(meta) == CASH_PAID
