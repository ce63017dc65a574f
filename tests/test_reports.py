"""The reports (`ledger_service.reports`): each figure computed in one function.

Unit tests of the pure functions on hand-built positions (every expected figure worked out
in the comments), then the readers: the API's holder view, the CLI's supply and Fava's
figures all call these functions and show the same figures on the same books.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
from beancount import loader
from click.testing import CliRunner

from ledger_books import CLOSED, demo_books, engine_on
from ledger_service import accounts as A
from ledger_service import config, reports
from ledger_service.api.app import create_app
from ledger_service.cli import main
from ledger_service.entries import GENESIS_PREV
from ledger_service.fava_ext import figures, jobs
from ledger_service.state import Epoch, Globals, Holder, MemoryState
from ledger_service.store import keys as key_store
from ledger_service.store.models import HolderRow
from ledger_service.views import ledger_tier

DAY = date(2026, 3, 2)
# seed-a: cap 390000 SP, initial value 1.00 CNY/SP, merchant deposit value 500.00 CNY
PARAMS = config.load("seed-a")

# Control balances: 500 SP released, 250.5 sold, 100.25 burned (the account's balance is
# negative), 50 redeemed, and a pool of 1200.505 CNY (half a fen over: shown to the fen,
# half-even: 1200.50).
BALANCES = {
    A.SP_RELEASED: D("500"), A.SP_SOLD: D("250.5"), A.SP_BURNED: D("-100.25"), A.SP_REDEEMED: D("-50"),
    A.POOL: D("1200.505"), A.HOLDERS_SP: D("-600.25"),
}


def position(value: D = D("2.50000000"), balances: dict | None = None, **kw) -> Globals:
    return Globals(genesis_day=date(2026, 2, 25), open_day=DAY, value=value,
                   balances=dict(BALANCES if balances is None else balances), **kw)


# -- supply --------------------------------------------------------------------------------------


def test_supply_figures_of_the_control_balances():
    # issued = 500 + 250.5 = 750.5; circulating = 750.5 − 100.25 − 50 = 600.25
    assert reports.supply_figures(BALANCES, D("390000")) == {
        "cap": "390000.0000", "issued": "750.5000", "released": "500.0000", "sold": "250.5000",
        "burned": "100.2500", "redeemed": "50.0000", "circulating": "600.2500", "pool_cny": "1200.50",
    }
    assert tuple(reports.supply_figures(BALANCES, D(1))) == reports.SUPPLY_FIGURES


def test_supply_figures_of_empty_books_are_zero():
    assert reports.supply_figures({}, D("390000")) == {
        "cap": "390000.0000", "issued": "0.0000", "released": "0.0000", "sold": "0.0000", "burned": "0.0000",
        "redeemed": "0.0000", "circulating": "0.0000", "pool_cny": "0.00"}


def test_supply_report_adds_the_value_of_the_day_and_the_closing_value():
    report = reports.supply_report(position(), PARAMS)
    assert tuple(report) == reports.SUPPLY_KEYS
    # the value of the open day is the position's (the last price); the close would set
    # pool ÷ circulating = 1200.505 ÷ 600.25 = 2.0000083298… → 2.00000833 (8 decimals)
    assert report["value_cny_per_sp"] == "2.50000000"
    assert report["closing_value_cny_per_sp"] == "2.00000833"
    assert reports.closing_value(BALANCES, PARAMS) == D("2.00000833")


def test_the_closing_value_is_the_initial_value_while_nothing_circulates():
    # 10 SP released and all 10 redeemed: nothing circulates, so the value stays 1.00
    balances = {A.SP_RELEASED: D("10"), A.SP_REDEEMED: D("-10"), A.POOL: D("30")}
    assert reports.closing_value(balances, PARAMS) == D("1.00000000")
    report = reports.supply_report(position(D("1.00000000"), balances), PARAMS)
    assert (report["circulating"], report["closing_value_cny_per_sp"]) == ("0.0000", "1.00000000")


def test_open_and_closed_supply():
    open_report = reports.open_supply(position(), PARAMS, date(2026, 3, 5))
    assert open_report == {**reports.supply_report(position(), PARAMS), "date": "2026-03-05", "closed": False}
    stored = {"cap": "390000.0000", "value_cny_per_sp": "2.00000000"}
    assert reports.closed_supply(DAY, stored) == {**stored, "date": "2026-03-02", "closed": True}


def test_the_genesis_position():
    g = reports.genesis_globals(DAY, PARAMS)
    assert (g.genesis_day, g.open_day, g.value) == (DAY, DAY, D("1.00000000"))
    assert (g.seq, g.head, g.epoch) == (0, GENESIS_PREV, 0)
    assert (g.sv_index, g.sp_index, g.total_shares, g.balances) == (D(1), D(0), D(0), {})
    # the initial value of the rules, whatever it is
    assert reports.genesis_globals(DAY, replace(PARAMS, sp_initial_value=D("2.5"))).value == D("2.50000000")


# -- a holder ------------------------------------------------------------------------------------


def test_a_members_view_settles_their_shares_across_an_ended_epoch():
    # epoch 0 ended with SP index 0.2, each share worth 0.5 of a share of epoch 1
    epochs = MemoryState(position())
    epochs.add_epoch(Epoch(0, D("0.2"), D("0.5")))
    g = position(epoch=1, sv_index=D("0.9"), sp_index=D("0.3"))
    alice = Holder("alice", "member", date(2026, 2, 25), referrer="bob", region="441900", active=True,
                   sv_locked=D("12.34567"), shares=D("40"), epoch=0, sp_ckpt=D("0.05"), sp_exact=D("1.5"))
    view = reports.holder_view(alice, g, epochs, PARAMS)
    # SP: 1.5 + 40 × (0.2 − 0.05) = 7.5 in epoch 0; 40 × 0.5 = 20 shares of epoch 1 earn
    # 20 × (0.3 − 0.2) = 2 more: 9.5 SP. Active SV: 20 × 0.9 = 18. Locked SV 12.34567 shown
    # rounded down: 12.3456. Worth 9.5 × 2.5 = 23.75 CNY.
    assert view == {
        "id": "alice", "kind": "member", "active": True, "role": "member", "referrer": "bob", "region": "441900",
        "sv_locked": D("12.3456"), "sv_active": D("18.0000"), "sp": D("9.5000"), "sp_value_cny": D("23.75"),
        "value_cny_per_sp": D("2.50000000"),
    }
    assert (alice.epoch, alice.shares, alice.sp_exact) == (0, D("40"), D("1.5"))  # the holder is not changed


def test_a_merchants_view_shows_its_deposits_and_whether_it_can_take_orders():
    """Under the legacy deposit rule "cash_paid" (books made before issue 13): deposits paid."""
    g = position(sp_index=D("0"))
    shop = Holder("shop", "merchant", date(2026, 2, 26), region="110000", active=True, sp_exact=D("123.45678"),
                  owner="owner", channel="offline", rebate_rate=D("0.1000"), store_referrer="carol",
                  deposits_cny=D("499.99"))
    cash_paid = replace(PARAMS, merchant_deposit_rule="cash_paid")
    view = reports.holder_view(shop, g, MemoryState(g), cash_paid)
    # 123.45678 SP shown rounded down: 123.4567, worth 123.4567 × 2.5 = 308.64175 → 308.64 CNY
    assert (view["sp"], view["sp_value_cny"]) == (D("123.4567"), D("308.64"))
    assert {k: view[k] for k in ("owner", "channel", "rebate_rate", "store_referrer", "deposits_cny",
                                 "can_take_orders")} == {
        "owner": "owner", "channel": "offline", "rebate_rate": D("0.1000"), "store_referrer": "carol",
        "deposits_cny": D("499.99"), "can_take_orders": False}  # 499.99 < 500.00
    # deposits are shown to the fen (500 → 500.00) and 500.00 is enough
    view = reports.holder_view(replace(shop, deposits_cny=D("500")), g, MemoryState(g), cash_paid)
    assert (str(view["deposits_cny"]), view["can_take_orders"]) == ("500.00", True)


def test_a_members_view_has_no_store_fields():
    g = position()
    view = reports.holder_view(Holder("dan", "member", DAY), g, MemoryState(g), PARAMS)
    assert set(view) == {"id", "kind", "active", "role", "referrer", "region", *reports.HOLDER_BALANCES,
                         "value_cny_per_sp"}
    assert (view["sv_locked"], view["sp"], view["sp_value_cny"]) == (D("0.0000"), D("0.0000"), D("0.00"))


# -- every reader shows the same figures, from these functions -------------------------------------


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return demo_books(tmp_path_factory)


class Spy:
    """Wraps a function of `reports` and keeps what each call returned."""

    def __init__(self, monkeypatch, name: str) -> None:
        self.real = getattr(reports, name)
        self.returned: list = []
        monkeypatch.setattr(reports, name, self)

    def __call__(self, *args, **kwargs):
        out = self.real(*args, **kwargs)
        self.returned.append(out)
        return out


def test_the_api_the_cli_and_fava_show_the_reports(books: Path, monkeypatch):
    holder_views = Spy(monkeypatch, "holder_view")
    figures_of = Spy(monkeypatch, "supply_figures")
    engine = engine_on(books)
    try:
        with engine.Session() as session, session.begin():
            _, secret = key_store.create(session, "auditor", "test_reports")
        client = create_app(books, engine=engine).test_client()
        headers = {"Authorization": f"Bearer {secret}"}
        with engine.Session() as session:
            ids = [session.query(HolderRow.id).filter(HolderRow.kind == kind).order_by(HolderRow.id).first()[0]
                   for kind in ("member", "merchant")]
        # the API's holder (and merchant) view is `reports.holder_view`, written as JSON
        api = {}
        for holder_id, path in zip(ids, ("holders", "merchants"), strict=True):
            response = client.get(f"/v1/{path}/{holder_id}", headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)
            api[holder_id] = response.get_json()
            returned = holder_views.returned[-1]
            assert api[holder_id] == {k: v if isinstance(v, (bool, str)) or v is None else str(v)
                                      for k, v in returned.items()}
        assert "can_take_orders" in api[ids[1]] and api[ids[1]]["deposits_cny"].count(".") == 1
        # Fava's Holder page: the same view, at the same head
        view = jobs.HolderView(books)
        view.ensure(wait=60)
        assert view.since is not None, view.error
        calls = len(holder_views.returned)
        for holder_id in ids:
            shown = view.holder(holder_id, PARAMS)
            assert shown is holder_views.returned[-1]  # the report's view, with the page's extras added
            assert {k: str(v) if not isinstance(v, (bool, str)) and v is not None else v
                    for k, v in ((k, shown[k]) for k in api[holder_id])} == api[holder_id]
        assert len(holder_views.returned) == calls + len(ids)
    finally:
        engine.dispose()
    # the CLI's supply at a close and now: `reports.supply_figures` (through the engine)
    runner = CliRunner()
    day = CLOSED[-2]
    calls = len(figures_of.returned)
    now = json.loads(runner.invoke(main, ["supply", "--books", str(books), "--json"]).output)
    assert len(figures_of.returned) == calls + 1
    assert {k: now[k] for k in reports.SUPPLY_KEYS} == figures_of.returned[-1]  # (`supply_report` adds the values)
    at_close = json.loads(runner.invoke(main, ["supply", "--books", str(books), "--json", "--date",
                                               day.isoformat()]).output)
    assert at_close["closed"] is True  # stored by the close, from `reports.supply_report`
    # Fava's Supply page reads the ledger tier: the same figures, from the same function
    entries, errors, _options = loader.load_file(str(books / ledger_tier.LEDGER_MAIN))
    supply = figures.supply_of_entries(entries)
    assert supply.params == PARAMS
    calls = len(figures_of.returned)
    for fava, cli in ((supply.report(), now), (supply.report(day), at_close)):
        assert {k: fava[k] for k in reports.SUPPLY_KEYS} == {k: cli[k] for k in reports.SUPPLY_KEYS}
    assert len(figures_of.returned) == calls + 2
