"""SPEC §4.6 and §6: the daily release, its edge cases, the catch-up of missed days, and the
share x index subledger behind the O(1) release.

    R_d = min(daily_release, cap - issued, active SV total / value)     (SP, 0.0001 down)
    C_d = R_d x value                                                   (SV converted)
    holder i: SP_i = SV_i / SV_total x R_d, gives up SP_i x value SV
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_DOWN, Context, Decimal

import pytest

from ledger_service import config
from ledger_service.audit.verify import verify
from ledger_service.errors import Conflict, NotFound
from ledger_service.rules.events import BuyPack, Deposit, OpenStore, Register
from ledger_service.state import Globals, Holder, MemoryState
from ledger_service.subledger import after_release, balance, grant_active, settle

from conftest import START, TODAY

D = Decimal


def custom(params, **changes):
    """`params` with `changes`, validated and normalised exactly as a rules file is on load."""
    meta = params.to_meta()
    meta.update({key: str(value) for key, value in changes.items()})
    return config.Params.from_meta(meta)
Q = D("0.0001")


def journal_bytes(engine) -> dict:
    root = engine.books.root / "journal"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_verified(engine):
    report = verify(engine.books.root)
    assert report.ok, [str(f) for f in report.faults]
    return report


def releases(booked):
    return [b for b in booked if b.kind == "release"]


# -- zero active SV ----------------------------------------------------------------

def test_zero_active_sv_releases_nothing_but_is_chained(engine):
    engine.submit(Register("m1"), START)        # 300 SV, locked: earns no release
    head = engine.head()
    closed = engine.close_days(START)
    assert [b.kind for b in closed] == ["release", "price"]
    release, price = closed
    assert release.day == START
    assert release.entry.postings == ()
    assert release.entry.get("postings") == "0"
    assert D(release.entry.get("released_sp")) == 0
    assert D(release.entry.get("converted_sv")) == 0
    # still in the chain: it follows the head, and the next price follows it
    assert release.prev == head["hash"]
    assert release.seq == head["seq"] + 1
    assert price.prev == release.hash and price.seq == release.seq + 1
    # nothing circulates: the value stays sp.initial_value
    assert price.entry.number == D("1.00")
    assert engine.holder("m1")["sv_locked"] == D("300")
    assert engine.holder("m1")["sp"] == 0
    assert_verified(engine)


# -- the cap -----------------------------------------------------------------------

def test_cap_reached_mid_release(make_books, params):
    engine = make_books(custom(params, sp_cap=D("1700"), sv_registration_grant=D("10000")))
    engine.submit(Register("own"), START)
    engine.submit(BuyPack("own", "activation"), START)        # 10000 + 299 = 10299 active SV
    engine.submit(OpenStore("s1", "own", "441900", "offline", D("0.10")), START)
    engine.submit(Deposit(D("500.00"), merchant="s1"), START)  # 500 SP sold: issued 500
    closed = engine.close_days(START + timedelta(days=3))
    rel = releases(closed)
    assert [r.day for r in rel] == [START + timedelta(days=i) for i in range(4)]
    got = [(D(r.entry.get("value")), D(r.entry.get("released_sp")), D(r.entry.get("converted_sv"))) for r in rel]
    assert got == [
        # day 1 at 1.00: min(500, 1700 - 500, 10299 / 1) = 500; converts 500 SV
        (D("1.00"), D("500"), D("500")),
        # day 2 at 500 / 1000 = 0.5: min(500, 700, 9799 / 0.5) = 500; converts 250 SV
        (D("0.5"), D("500"), D("250")),
        # day 3 at 500 / 1500 = 0.33333333: min(500, 200, ...) = 200 (cap - issued);
        # converts 200 x 0.33333333 = 66.666666 -> 66.6667 SV
        (D("0.33333333"), D("200"), D("66.6667")),
        # day 4 at 500 / 1700 = 0.29411765: the cap is reached, nothing released
        (D("0.29411765"), D("0"), D("0")),
    ]
    assert rel[-1].entry.postings == ()
    supply = engine.supply()
    assert D(supply["issued"]) == D("1700")      # exactly the cap
    assert D(supply["released"]) == D("1200")
    own = engine.holder("own")
    # own is the only active-SV holder: all 1200 released SP, 10299 - 500 - 250 - 66.6667 SV
    assert D("1199.9999") <= own["sp"] <= D("1200")
    assert abs(own["sv_active"] - D("9482.3333")) <= Q
    with pytest.raises(Conflict) as refused:
        engine.submit(Deposit(D("0.01"), merchant="s1"), TODAY)
    assert refused.value.rule == "sp.cap_reached"
    assert_verified(engine)


# -- all active SV converted: the epoch rebase, and grants after it --------------------

def test_active_sv_worth_less_than_release_converts_all_then_grants_work(make_books, params):
    rules_ = custom(params, sp_initial_value=D("2"), sp_daily_release=D("5000"))
    engine = make_books(rules_)
    engine.submit(Register("a1"), START)
    engine.submit(BuyPack("a1", "activation"), START)                 # 300 + 299 = 599 SV
    engine.submit(Register("b1"), START)
    engine.submit(BuyPack("b1", "partner", region="441900"), START)  # 300 + 4999 = 5299 SV
    engine.submit(Deposit(D("2949.00"), platform=True), START)       # pool 2949 CNY
    closed = engine.close_days(START)
    release, price = closed
    # value 2 (nothing circulates): R = min(5000, 390000, 5898 / 2 = 2949) = 2949 SP,
    # C = 2949 x 2 = 5898 SV = all active SV
    assert D(release.entry.get("sv_total")) == D("5898")
    assert D(release.entry.get("released_sp")) == D("2949")
    assert D(release.entry.get("converted_sv")) == D("5898")
    # the SV index reached zero: the epoch ends and the next one starts
    assert release.entry.get("epoch") == "1"
    assert release.entry.get("epoch_factor") is not None
    assert D(release.entry.get("epoch_factor")) == 0
    assert D(release.entry.get("sv_index")) == 1
    a1, b1 = engine.holder("a1"), engine.holder("b1")
    assert a1["sv_active"] == 0 and b1["sv_active"] == 0
    # a1: 599 / 5898 x 2949 = 299.5 SP; b1: 5299 / 5898 x 2949 = 2649.5 SP
    assert abs(a1["sp"] - D("299.5")) <= Q and abs(b1["sp"] - D("2649.5")) <= Q
    assert a1["sp"] + b1["sp"] <= D("2949")
    # value(day 2) = 2949 CNY / 2949 SP = 1.00
    assert price.entry.number == D("1")

    day2 = START + timedelta(days=1)
    engine.submit(Register("c1"), day2)
    engine.submit(BuyPack("c1", "partner", region="110000"), day2)   # 5299 active SV
    closed = engine.close_days(day2)
    release = closed[0]
    # R = min(5000, 390000 - 2949, 5299 / 1.00) = 5000; C = 5000 SV; no rebase this time
    assert D(release.entry.get("released_sp")) == D("5000")
    assert D(release.entry.get("converted_sv")) == D("5000")
    assert release.entry.get("epoch") == "1"
    assert release.entry.get("epoch_factor") is None
    c1 = engine.holder("c1")
    assert abs(c1["sp"] - D("5000")) <= Q and c1["sp"] <= D("5000")
    assert abs(c1["sv_active"] - D("299")) <= Q
    # a1 and b1 held no active SV: they earned nothing more
    assert engine.holder("a1")["sp"] == a1["sp"] and engine.holder("b1")["sp"] == b1["sp"]

    # a holder of the ended epoch is granted again: their SP is kept, the new SV counts
    day3 = START + timedelta(days=2)
    engine.submit(BuyPack("a1", "activation"), day3)
    a1_now = engine.holder("a1")
    assert a1_now["sp"] == a1["sp"]
    assert a1_now["sv_active"] == D("299")
    assert_verified(engine)


# -- long runs -------------------------------------------------------------------------

def test_close_400_days_in_one_call(engine, clock):
    engine.submit(Register("own"), START)
    engine.submit(BuyPack("own", "activation"), START)          # 599 active SV
    engine.submit(OpenStore("s1", "own", "441900", "offline", D("0.10")), START)
    engine.submit(Deposit(D("500.00"), merchant="s1"), START)
    engine.submit(Deposit(D("100000.00"), platform=True), START)   # keeps the value well above 0
    clock.today = START + timedelta(days=400)
    closed = engine.close_days()
    rel = [b for b in closed if b.kind == "release"]
    prices = [b for b in closed if b.kind == "price"]
    assert len(rel) == 400 and len(prices) == 400
    assert [b.kind for b in closed] == ["release", "price"] * 400
    assert [r.day for r in rel] == [START + timedelta(days=i) for i in range(400)]
    assert [p.day for p in prices] == [START + timedelta(days=i + 1) for i in range(400)]
    assert [b.seq for b in closed] == list(range(closed[0].seq, closed[0].seq + 800))
    for before, after in zip(closed, closed[1:]):
        assert after.prev == before.hash
    value = D("1.00")
    for r, p in zip(rel, prices):
        # each release runs at the previous price and follows the formula (cap never binds:
        # at most 400 x 500 + 500 = 200500 SP < 390000)
        assert D(r.entry.get("value")) == value
        sv_total = D(r.entry.get("sv_total"))
        expected = min(D("500"), (sv_total / value).quantize(Q, rounding=ROUND_DOWN)) if sv_total > 0 else D(0)
        assert D(r.entry.get("released_sp")) == expected
        assert D(r.entry.get("converted_sv")) == min(sv_total, (expected * value).quantize(Q))
        value = p.entry.number
    assert engine.head()["open_day"] == (START + timedelta(days=400)).isoformat()
    released = sum(D(r.entry.get("released_sp")) for r in rel)
    assert D(engine.supply()["released"]) == released
    assert D(engine.supply()["issued"]) == released + D("500")
    assert len(list((engine.books.root / "journal").rglob("*.beancount"))) == 401
    report = assert_verified(engine)
    assert report.open_day == (START + timedelta(days=400)).isoformat()


def test_closing_never_closes_today_or_the_future(engine, clock):
    engine.submit(Register("m1"), START)
    before = (journal_bytes(engine), engine.head())
    for day in (TODAY, TODAY + timedelta(days=1), TODAY + timedelta(days=365)):
        with pytest.raises(Conflict) as refused:
            engine.close_days(day)
        assert refused.value.rule == "day.not_ended"
        assert (journal_bytes(engine), engine.head()) == before
    closed = engine.close_days()                      # default: through yesterday
    assert [r.day for r in releases(closed)] == [START + timedelta(days=i) for i in range(30)]
    assert engine.head()["open_day"] == TODAY.isoformat()
    assert engine.close_days() == []                  # nothing left to close
    assert engine.close_days(START) == []             # closing a closed day again books nothing
    with pytest.raises(Conflict):
        engine.close_days(TODAY)
    # the day ends: it can be closed now
    clock.advance(1)
    closed = engine.close_days()
    assert [r.day for r in releases(closed)] == [TODAY]


def _entry_by_seq(engine, seq):
    for prefix in ("E", "P"):
        try:
            return engine.event(f"{prefix}{seq:09d}")
        except NotFound:
            continue
    raise AssertionError(seq)


def test_missed_days_are_caught_up_in_order_before_a_later_event(engine):
    engine.submit(Register("own"), START)
    engine.submit(BuyPack("own", "activation"), START)
    head = engine.head()
    day6 = START + timedelta(days=5)
    booked = engine.submit(Register("late"), day6)
    # 5 days closed first (release + price each), then the event
    assert booked.seq == head["seq"] + 5 * 2 + 1
    assert booked.day == day6
    entries = [_entry_by_seq(engine, s) for s in range(head["seq"] + 1, booked.seq + 1)]
    assert [e["kind"] for e in entries] == ["release", "price"] * 5 + ["register"]
    release_days = [e["date"] for e in entries if e["kind"] == "release"]
    assert release_days == [(START + timedelta(days=i)).isoformat() for i in range(5)]
    price_days = [e["date"] for e in entries if e["kind"] == "price"]
    assert price_days == [(START + timedelta(days=i + 1)).isoformat() for i in range(5)]
    assert engine.head()["open_day"] == day6.isoformat()
    # each closed day has its journal file with exactly one release
    for i in range(5):
        day = START + timedelta(days=i)
        text = (engine.books.root / f"journal/{day:%Y-%m}/{day.isoformat()}.beancount").read_text("utf-8")
        assert text.count('kind: "release"') == 1
        assert engine.supply(day)["closed"] is True
    # own had 599 active SV at 1.00: day 1 releases min(500, 599) = 500 SP
    assert D(engine.supply(START)["released"]) == D("500")
    assert_verified(engine)


# -- the subledger: shares x indices against the naive per-holder formula ---------------

class Naive:
    """Per-holder SV and SP by the formula itself: SP_i = SV_i / SV_total x R, SV_i -= SV_i / SV_total x C."""

    CTX = Context(prec=80)

    def __init__(self):
        self.sv: dict[str, Decimal] = {}
        self.sp: dict[str, Decimal] = {}

    def grant(self, hid, sv):
        self.sv[hid] = self.sv.get(hid, D(0)) + sv
        self.sp.setdefault(hid, D(0))

    def total(self):
        return sum(self.sv.values(), D(0))

    def release(self, r, c):
        total = self.total()
        for hid, sv in self.sv.items():
            share = self.CTX.divide(sv, total)
            self.sp[hid] = self.CTX.add(self.sp[hid], self.CTX.multiply(share, r))
            self.sv[hid] = self.CTX.subtract(sv, self.CTX.multiply(share, c))


def test_subledger_release_and_settle_match_the_formula():
    g = Globals(START, START, D(1))
    state = MemoryState(g)
    naive = Naive()

    def grant(hid, sv):
        sv = D(sv)
        holder = state.holder(hid) or Holder(hid, "member", START, active=True)
        settle(holder, g, state)
        grant_active(holder, g, sv)
        state.put_holder(holder)
        naive.grant(hid, sv)

    def release(r, c=None):
        r = D(r)
        c = naive.total() if c == "all" else D(c)
        after = after_release(g, r, c)
        if after.ended is not None:
            state.add_epoch(after.ended)
        g.sv_index, g.sp_index, g.epoch, g.total_shares = after.sv_index, after.sp_index, after.epoch, after.total_shares
        naive.release(r, c)
        check()

    def check():
        for hid in naive.sv:
            held = balance(state.holder(hid), g, state)
            assert abs(held.sv_active - naive.sv[hid]) <= Q, (hid, held.sv_active, naive.sv[hid])
            assert abs(held.sp - naive.sp[hid]) <= Q, (hid, held.sp, naive.sp[hid])
            # balances are rounded down: never more than the formula gives
            assert held.sv_active <= naive.sv[hid] + D("1e-12") and held.sp <= naive.sp[hid] + D("1e-12")

    grant("a", "1000")
    release("100", "150")                  # a alone: 100 SP, 850 SV
    grant("b", "500")
    release("200", "100")
    grant("c", "2500.1234")
    grant("a", "300")                       # a is granted again between releases
    release("500", "400")
    release("333.3333", "777.7777")
    grant("d", "12.3456")
    release("1", "0.5")
    epoch = g.epoch
    release("50", "all")                   # every active SV converted: the epoch ends
    assert g.epoch == epoch + 1
    for hid in naive.sv:
        assert balance(state.holder(hid), g, state).sv_active == 0
    grant("e", "700")                       # grants after the rebase
    grant("b", "10")
    release("70", "35")
    assert naive.sp["a"] > 0 and naive.sp["e"] > 0
    # very small indices: convert 90 % of all active SV five times (index 1e-5 > 1e-6, then
    # the sixth crosses the threshold and rebases); accuracy holds throughout
    for _ in range(6):
        release("10", naive.total() * D("0.9"))
    grant("f", "42")
    release("5", "20")
    check()
    for hid in "abcdef":
        settle(state.holder(hid), g, state)
    check()
