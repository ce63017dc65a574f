"""Properties: a random platform driven through the engine keeps the books' invariants,
and the pure pieces (entry text, amounts, the order split) hold for any input."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path

import pytest
from beancount.core import data as bdata
from beancount.parser import parser
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger_service import accounts as A
from ledger_service import config
from ledger_service.amounts import CNY, COMMODITIES, QUANTUM, SP, SV, AmountError, parse_amount
from ledger_service.audit.verify import verify
from ledger_service.engine import Engine
from ledger_service.entries import (META_KEY_RE, Posting, Price, Transaction, canonical, entry_hash,
                                    from_beancount, meta_tuple, render)
from ledger_service.errors import Refusal
from ledger_service.journal import day_file
from ledger_service.rules import orders as order_rules
from ledger_service.rules.base import Ctx
from ledger_service.rules.events import (BuyPack, Deposit, OpenStore, Order, PayoutCancel, PayoutRequest,
                                         PayoutSettle, Redeem, Register, Reverse, SetRole, Transfer)
from ledger_service.state import MEMBER, MERCHANT, Globals, Holder, MemoryState
from ledger_service.subledger import balance
from ledger_service.text import REFUSED

from conftest import Clock

PARAMS = config.load("seed-a")
GENESIS = date(2026, 3, 31)
REGIONS = ("441900", "440300", "440305")  # 440305 南山区 lies in 440300 深圳市
ROLES = ("member", "vip", "shop_owner", "store_owner", "service_provider")
Q8 = Decimal("0.00000001")
WIDE = Context(prec=80, rounding=ROUND_HALF_EVEN)

_templates: dict[str, Path] = {}
# Every booking fsyncs; on a RAM disk (when there is one) that costs nothing.
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else None


def template_books(profile: str) -> Path:
    """Fresh books, initialised once per profile and copied per example (Alembic runs once)."""
    if profile not in _templates:
        base = Path(tempfile.mkdtemp(prefix="ledger-prop-template-", dir=SCRATCH))
        atexit.register(shutil.rmtree, base, True)
        engine = Engine.init(base / "books", config.load(profile), start=GENESIS, clock=Clock(GENESIS))
        engine.dispose()
        _templates[profile] = base / "books"
    return _templates[profile]


def expected_value(pool: Decimal, circulating: Decimal, params: config.Params) -> Decimal:
    if circulating <= 0:
        return params.sp_initial_value.quantize(Q8, context=WIDE)
    return WIDE.divide(pool, circulating).quantize(Q8, rounding=ROUND_HALF_EVEN, context=WIDE)


def parse_journal_file(path: Path) -> list:
    entries, errors, _ = parser.parse_file(str(path))
    assert not errors, errors
    return sorted(entries, key=lambda e: e.meta["lineno"])


# -- the state machine ---------------------------------------------------------------


class Platform(RuleBasedStateMachine):
    """Random events through the engine on fresh books; a fixed clock moved by closing days."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="ledger-prop-", dir=SCRATCH))
        self.root = self.tmp / "books"
        self.clock = Clock(GENESIS)
        self.engine: Engine | None = None
        self.members: list[str] = []
        self.merchants: list[str] = []
        self.pending: list[str] = []  # payout ids awaiting settle/cancel
        self.closed_payouts: list[str] = []
        self.reversible: list[str] = []  # booked orders and transfers
        self.count = 0
        self.sizes: dict[Path, int] = {}
        self.prices_checked_through = GENESIS - timedelta(days=1)
        self.latest_price: tuple[date, Decimal] | None = None
        self.booked = 0
        self.refused = 0

    # helpers

    def journal_sizes(self) -> dict[str, int]:
        return {str(p): p.stat().st_size for p in self.root.glob("journal/*/*.beancount")}

    def new_id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    @staticmethod
    def pick(items: list[str], index: int) -> str | None:
        return items[index % len(items)] if items else None

    def holders(self) -> list[str]:
        return self.members + self.merchants

    def book(self, event, day: date | None = None):
        before = (self.journal_sizes(), self.engine.head())
        try:
            booked = self.engine.submit(event, day)
        except Refusal as refusal:
            note(f"refused {event}: {refusal}")
            self.refused += 1
            assert (self.journal_sizes(), self.engine.head()) == before, f"refused {event} booked something"
            return None
        note(f"booked {event.kind} {booked.event_id}")
        self.booked += 1
        entry = booked.entry
        sums: dict[str, Decimal] = {}
        for p in entry.postings:
            sums[p.currency] = sums.get(p.currency, Decimal(0)) + p.number
        assert all(v == 0 for v in sums.values()), (event, sums)
        return booked

    # rules

    @initialize(profile=st.sampled_from(config.PROFILES), members=st.integers(2, 4),
                channel=st.sampled_from(("online", "offline")), rate=st.sampled_from(("0.05", "0.10", "0.20")),
                cents=st.integers(50_000, 300_000))
    def seed_platform(self, profile, members, channel, rate, cents):
        """Fresh books of a profile; a few members in one referral chain, most active, and one
        store that can take orders."""
        shutil.copytree(template_books(profile), self.root)
        self.engine = Engine(self.root, clock=self.clock)
        for i in range(members):
            member = self.new_id("m")
            assert self.book(Register(member, referrer=self.members[-1] if self.members else None, region=REGIONS[i % 3]))
            self.members.append(member)
            if i < members - 1:
                assert self.book(BuyPack(member, "activation"))
        store = self.new_id("s")
        assert self.book(OpenStore(store, self.members[0], REGIONS[0], channel, Decimal(rate),
                                   self.members[1] if channel == "offline" else None))
        self.merchants.append(store)
        assert self.book(Deposit(Decimal(cents) / 100, merchant=store))

    @rule(referrer=st.integers(0, 10**6) | st.none(), region=st.sampled_from(REGIONS) | st.none())
    def register(self, referrer, region):
        member = self.new_id("m")
        ref = self.pick(self.members, referrer) if referrer is not None else None
        if self.book(Register(member, referrer=ref, region=region)):
            self.members.append(member)

    @precondition(lambda self: self.members)
    @rule(who=st.integers(0, 10**6), partner=st.booleans(), region=st.sampled_from(REGIONS))
    def buy_pack(self, who, partner, region):
        member = self.pick(self.members, who)
        if member:
            self.book(BuyPack(member, "partner", region=region) if partner else BuyPack(member, "activation"))

    @precondition(lambda self: self.members)
    @rule(who=st.integers(0, 10**6), role=st.sampled_from(ROLES))
    def set_role(self, who, role):
        member = self.pick(self.members, who)
        if member:
            self.book(SetRole(member, role))

    @precondition(lambda self: self.members)
    @rule(owner=st.integers(0, 10**6), region=st.sampled_from(REGIONS), channel=st.sampled_from(("online", "offline")),
          rate=st.sampled_from(("0.05", "0.10", "0.15", "0.3333", "1")), referrer=st.integers(0, 10**6) | st.none())
    def open_store(self, owner, region, channel, rate, referrer):
        member = self.pick(self.members, owner)
        if not member:
            return
        merchant = self.new_id("s")
        ref = self.pick(self.members, referrer) if referrer is not None else None
        if self.book(OpenStore(merchant, member, region, channel, Decimal(rate), ref)):
            self.merchants.append(merchant)

    @rule(who=st.integers(0, 10**6) | st.none(), cents=st.integers(1, 500_000))
    def deposit(self, who, cents):
        amount = Decimal(cents) / 100
        merchant = self.pick(self.merchants, who) if who is not None else None
        if merchant:
            self.book(Deposit(amount, merchant=merchant))
        else:
            self.book(Deposit(amount, platform=True))

    @precondition(lambda self: self.members and self.merchants)
    @rule(buyer=st.integers(0, 10**6), store=st.integers(0, 10**6), cents=st.integers(1, 300_000),
          ship=st.sampled_from(REGIONS) | st.none())
    def order(self, buyer, store, cents, ship):
        member, merchant = self.pick(self.members, buyer), self.pick(self.merchants, store)
        if member and merchant:
            done = self.book(Order(self.new_id("o"), member, merchant, Decimal(cents) / 100, ship_region=ship))
            if done:
                self.reversible.append(done.event_id)

    @precondition(lambda self: len(self.holders()) >= 2)
    @rule(source=st.integers(0, 10**6), dest=st.integers(0, 10**6), units=st.integers(1, 2_000_000))
    def transfer(self, source, dest, units):
        a, b = self.pick(self.holders(), source), self.pick(self.holders(), dest)
        if a and b:
            done = self.book(Transfer(a, b, Decimal(units) / 10_000))
            if done:
                self.reversible.append(done.event_id)

    @precondition(lambda self: self.holders())
    @rule(who=st.integers(0, 10**6), units=st.integers(1, 1_000_000))
    def payout(self, who, units):
        holder = self.pick(self.holders(), who)
        if holder:
            done = self.book(PayoutRequest(holder, Decimal(units) / 10_000))
            if done:
                self.pending.append(done.event_id)

    @precondition(lambda self: self.pending)
    @rule(which=st.integers(0, 10**6), settle=st.booleans())
    def payout_close(self, which, settle):
        payout = self.pick(self.pending, which)
        if payout:
            event = PayoutSettle(payout, f"BANK{self.count}") if settle else PayoutCancel(payout)
            if self.book(event):
                self.pending.remove(payout)
                self.closed_payouts.append(payout)

    @precondition(lambda self: self.closed_payouts)
    @rule(which=st.integers(0, 10**6), settle=st.booleans())
    def payout_twice(self, which, settle):
        """Settling or cancelling a payout that is no longer pending is refused."""
        payout = self.pick(self.closed_payouts, which)
        if payout:
            event = PayoutSettle(payout, "BANK-again") if settle else PayoutCancel(payout)
            assert self.book(event) is None, f"{payout} closed twice"

    @precondition(lambda self: self.holders())
    @rule(who=st.integers(0, 10**6), units=st.integers(1, 500_000))
    def redeem(self, who, units):
        holder = self.pick(self.holders(), who)
        if holder:
            self.book(Redeem(holder, Decimal(units) / 10_000, "green tea gift box"))

    @precondition(lambda self: self.reversible)
    @rule(which=st.integers(0, 10**6))
    def reverse(self, which):
        event_id = self.pick(self.reversible, which)
        if event_id:
            self.book(Reverse(event_id))

    @rule(days=st.integers(1, 2))
    def close_day(self, days):
        self.clock.advance(days)
        self.engine.close_days()
        assert self.engine.head()["open_day"] == self.clock.today.isoformat()

    @rule(days=st.integers(1, 3))
    def let_days_pass(self, days):
        """The clock moves without a close: the next booking closes the days first."""
        self.clock.advance(days)

    @precondition(lambda self: self.clock.today > GENESIS)
    @rule()
    def book_in_a_closed_day(self):
        head = self.engine.head()
        open_day = date.fromisoformat(head["open_day"])
        if open_day > GENESIS:
            assert self.book(Register(self.new_id("late")), open_day - timedelta(days=1)) is None

    # invariants

    @invariant()
    def journal_transactions_balance(self):
        for path in sorted(self.root.glob("journal/*/*.beancount")):
            size = path.stat().st_size
            if self.sizes.get(path) == size:
                continue
            for entry in parse_journal_file(path):
                if isinstance(entry, bdata.Transaction):
                    sums: dict[str, Decimal] = {}
                    for p in entry.postings:
                        sums[p.units.currency] = sums.get(p.units.currency, Decimal(0)) + p.units.number
                    assert all(v == 0 for v in sums.values()), (path.name, entry.meta.get("event"), sums)
                    assert entry.meta["postings"] == str(len(entry.postings))
            self.sizes[path] = size

    @invariant()
    def supply_within_cap_and_holders_within_control(self):
        supply = self.engine.supply()
        issued, cap = Decimal(supply["issued"]), Decimal(supply["cap"])
        assert issued <= cap
        assert Decimal(supply["circulating"]) == issued - Decimal(supply["burned"]) - Decimal(supply["redeemed"])
        totals = {"sv_locked": Decimal(0), "sv_active": Decimal(0), "sp": Decimal(0)}
        # Every known holder's balances, as engine.holder() computes them (one session for all).
        with self.engine.Session() as session:
            reader = self.engine.state_reader(session)
            g = reader.g
            for holder in self.holders():
                found = reader.holder(holder)
                assert found is not None, holder
                held = balance(found, g, reader)
                for key in totals:
                    amount = getattr(held, key)
                    assert amount >= 0, (holder, key, amount)
                    totals[key] += amount
        control = {"sv_locked": -g.balance(A.HOLDERS_SV_LOCKED), "sv_active": -g.balance(A.HOLDERS_SV_ACTIVE),
                   "sp": -g.balance(A.HOLDERS_SP)}
        assert control["sp"] == Decimal(supply["circulating"])
        for key, total in totals.items():
            residue = control[key] - total
            assert residue >= 0, f"holders' {key} {total} exceed the control account {control[key]}"
            assert residue < Decimal("0.01"), f"{key} residue {residue} is not a rounding crumb"
        assert totals["sv_locked"] == control["sv_locked"]

    @invariant()
    def each_price_is_pool_over_circulating_at_the_previous_close(self):
        head = self.engine.head()
        open_day = date.fromisoformat(head["open_day"])
        day = self.prices_checked_through + timedelta(days=1)
        while day < open_day:
            closed = self.engine.supply(day)
            assert closed["closed"]
            prices = [e for e in parse_journal_file(self.root / day_file(day + timedelta(days=1)))
                      if isinstance(e, bdata.Price)]
            assert len(prices) == 1 and prices[0].date == day + timedelta(days=1), prices
            price = prices[0]
            want = expected_value(Decimal(closed["pool_cny"]), Decimal(closed["circulating"]), self.engine.params)
            assert price.amount.number == want, (day, closed, price.amount.number, want)
            assert Decimal(price.meta["pool_cny"]) == Decimal(closed["pool_cny"])
            assert Decimal(price.meta["circulating_sp"]) == Decimal(closed["circulating"])
            assert Decimal(closed["closing_value_cny_per_sp"]) == want
            self.prices_checked_through = day
            day += timedelta(days=1)
        # The value in force is the latest price directive's (read once per open day).
        if self.latest_price is None or self.latest_price[0] != open_day:
            latest = [e for e in parse_journal_file(self.root / day_file(open_day)) if isinstance(e, bdata.Price)]
            assert len(latest) == 1, latest
            self.latest_price = (open_day, latest[0].amount.number)
        assert Decimal(head["value_cny_per_sp"]) == self.latest_price[1]

    def teardown(self) -> None:
        if self.engine is None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            for holder in self.holders():  # the engine's own read of each holder
                held = self.engine.holder(holder)
                assert min(held["sv_locked"], held["sv_active"], held["sp"]) >= 0, held
            report = verify(self.root)
            assert report.ok, [str(f) for f in report.faults[:10]]
            assert report.db_checked
            assert report.head_seq == self.engine.head()["seq"]
        finally:
            self.engine.dispose()
            shutil.rmtree(self.tmp, ignore_errors=True)


Platform.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPlatform = Platform.TestCase


# -- entries: render -> Beancount -> canonical form -----------------------------------

_CONTROL = set(map(chr, range(0x20))) | {"\x7f"}
# (and none of the code points the text rule refuses: the engine never writes them, entries assert it)
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=_CONTROL)
                .filter(lambda ch: not REFUSED.match(ch)), max_size=24)
IGNORED = {"filename", "lineno", "prev", "hash"}
# Keys of two characters or more (a one-letter key has a test of its own below).
meta_keys = st.from_regex(META_KEY_RE, fullmatch=True).filter(lambda k: k not in IGNORED and 2 <= len(k) <= 20)
metas = st.dictionaries(meta_keys, texts, max_size=4).map(lambda d: meta_tuple(d.items()))


@st.composite
def numbers(draw, max_places: int = 8) -> Decimal:
    places = draw(st.integers(0, max_places))
    units = draw(st.integers(-10**13, 10**13))
    return Decimal(units).scaleb(-places)


@st.composite
def transactions(draw) -> Transaction:
    """Any transaction the engine can write (the Builder leaves zero amounts out; those have
    a test of their own below)."""
    chart = [account for account, _, _ in A.CHART] + ["Assets:Other:Thing"]
    postings = tuple(
        Posting(draw(st.sampled_from(chart)), draw(numbers().filter(lambda n: n != 0)),
                draw(st.sampled_from(COMMODITIES)), draw(metas))
        for _ in range(draw(st.integers(0, 4)))
    )
    marks = st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,8}", fullmatch=True), max_size=3, unique=True)
    return Transaction(draw(st.dates(date(1990, 1, 1), date(2199, 12, 31))), draw(texts), draw(texts),
                       draw(metas), postings, draw(st.sampled_from("*!")),
                       tuple(sorted(draw(marks))), tuple(sorted(draw(marks))))


@st.composite
def prices(draw) -> Price:
    number = Decimal(draw(st.integers(1, 10**12))).scaleb(-draw(st.integers(0, 8)))
    return Price(draw(st.dates(date(1990, 1, 1), date(2199, 12, 31))), number, draw(metas))


@settings(max_examples=100, deadline=None)
@given(entry=st.one_of(transactions(), prices()), prev=st.text("0123456789abcdef", min_size=64, max_size=64))
def test_render_parse_round_trip_keeps_the_hash(entry, prev):
    text = render(entry)
    directives, errors, _ = parser.parse_string(text)
    assert not errors, (text, errors)
    assert len(directives) == 1, text
    back = from_beancount(directives[0])
    assert back is not None
    assert canonical(back, prev) == canonical(entry, prev), text
    assert entry_hash(back, prev) == entry_hash(entry, prev)
    assert render(back) == text


def test_zero_amount_posting_round_trips():
    """A posting of zero keeps its commodity through render -> parse -> from_beancount
    (beancount's Amount is falsy when its number is zero)."""
    entry = Transaction(date(2026, 3, 1), "p", "n", meta_tuple([("kind", "x")]),
                        (Posting(A.POOL, Decimal("0.00"), CNY, ()), Posting(A.POOL_EQUITY, Decimal("0.00"), CNY, ())))
    directives, errors, _ = parser.parse_string(render(entry))
    assert not errors
    back = from_beancount(directives[0])
    assert [p.currency for p in back.postings] == [CNY, CNY]
    assert entry_hash(back, "0" * 64) == entry_hash(entry, "0" * 64)


def test_one_letter_meta_keys_are_refused_since_beancount_cannot_parse_them():
    """Beancount's lexer rejects a one-letter metadata key (`a:`), so the writer refuses one."""
    assert not META_KEY_RE.match("a")
    assert META_KEY_RE.match("ab")
    with pytest.raises(AssertionError):
        meta_tuple([("a", "x")])
    entry = Transaction(date(2026, 3, 1), "p", "n", meta_tuple([("ab", "x")]), ())
    directives, errors, _ = parser.parse_string(render(entry))
    assert not errors, [e.message for e in errors]
    assert entry_hash(from_beancount(directives[0]), "0" * 64) == entry_hash(entry, "0" * 64)


# -- amounts ------------------------------------------------------------------------------


@given(number=st.floats(allow_nan=True, allow_infinity=True), currency=st.sampled_from(COMMODITIES))
def test_parse_amount_refuses_floats(number, currency):
    with pytest.raises(AmountError):
        parse_amount(number, currency, field="amount")


@given(currency=st.sampled_from(COMMODITIES), units=st.integers(1, 10**9), extra=st.integers(1, 6))
def test_parse_amount_refuses_more_decimals_than_the_commodity(currency, units, extra):
    assume(units % 10 != 0)
    places = -QUANTUM[currency].as_tuple().exponent + extra
    text = format(Decimal(units).scaleb(-places), "f")
    with pytest.raises(AmountError):
        parse_amount(text, currency, field="amount")


@given(currency=st.sampled_from(COMMODITIES), units=st.integers(1, 10**12), places=st.integers(0, 4))
def test_parse_amount_accepts_exact_strings(currency, units, places):
    allowed = -QUANTUM[currency].as_tuple().exponent
    assume(places <= allowed)
    text = format(Decimal(units).scaleb(-places), "f")
    number = parse_amount(text, currency, field="amount")
    assert number == Decimal(text)
    assert number.as_tuple().exponent == QUANTUM[currency].as_tuple().exponent
    with pytest.raises(AmountError):
        parse_amount("-" + text, currency, field="amount")


@given(text=st.sampled_from(["NaN", "nan", "Infinity", "-Infinity", "sNaN", "", " ", "1,00", "abc", "0x10", "1e400"]),
       currency=st.sampled_from(COMMODITIES))
def test_parse_amount_refuses_non_amounts(text, currency):
    with pytest.raises(AmountError):
        parse_amount(text, currency, field="amount")


# -- the order split ---------------------------------------------------------------------


@st.composite
def order_params(draw) -> config.Params:
    multiplier = Decimal(draw(st.integers(0, 20)))
    offline = Decimal(draw(st.integers(0, 1000))) / 10_000  # up to 0.10
    assume(offline * multiplier <= 1)
    room = 1 - offline * multiplier
    merchant_rate = (Decimal(draw(st.integers(0, 10_000))) / 10_000 * room).quantize(Decimal("0.0001"), rounding="ROUND_DOWN")
    partner_rate = (Decimal(draw(st.integers(0, 10_000))) / 10_000 * (room - merchant_rate)).quantize(
        Decimal("0.0001"), rounding="ROUND_DOWN")
    meta = PARAMS.to_meta()
    meta.update(sv_consumer_multiplier=str(multiplier), referral_offline_sp_rate=str(offline),
                referral_merchant_sp_rate=str(merchant_rate), region_partner_sp_rate=str(partner_rate))
    return config.Params.from_meta(meta)  # validated exactly as at genesis


@settings(max_examples=200, deadline=None)
@given(
    params=order_params(),
    cents=st.integers(1, 10**8),
    rate=st.integers(1, 10_000),
    value=st.integers(10_000, 10**10),
    channel=st.sampled_from(("online", "offline")),
    buyer_active=st.booleans(),
    referrer_active=st.booleans(),
    roles=st.tuples(st.sampled_from(ROLES), st.sampled_from(ROLES)),
    store_referrer=st.booleans(),
    partner=st.sampled_from(("none", "recent", "stale")),
    ship=st.sampled_from(REGIONS) | st.none(),
)
def test_order_split_pays_out_exactly_the_deducted_sp(params, cents, rate, value, channel, buyer_active,
                                                      referrer_active, roles, store_referrer, partner, ship):
    day = date(2026, 3, 20)
    v = Decimal(value).scaleb(-8)  # 0.0001 .. 100 CNY/SP
    state = MemoryState(Globals(genesis_day=date(2026, 1, 1), open_day=day, value=v))
    state.put_holder(Holder("r2", MEMBER, day, role=roles[1], active=True))
    state.put_holder(Holder("r1", MEMBER, day, referrer="r2", role=roles[0], active=referrer_active))
    state.put_holder(Holder("b", MEMBER, day, referrer="r1", active=buyer_active))
    state.put_holder(Holder("sr", MEMBER, day, active=True))
    state.put_holder(Holder("s", MERCHANT, day, region="441900", active=True, owner="r2", channel=channel,
                            rebate_rate=Decimal(rate) / 10_000, store_referrer="sr" if store_referrer else None,
                            deposits_cny=Decimal("500.00"), sp_exact=Decimal(10**12)))
    if partner != "none":
        state.put_holder(Holder("p", MEMBER, day, active=True,
                                last_purchase=day - timedelta(days=5 if partner == "recent" else 400)))
        state.set_partner("441900", "p")
        if ship:
            state.set_partner(ship, "p")
    amount = Decimal(cents) / 100
    ctx = Ctx("E000000009", 9, day, params)
    tx = order_rules.order(state, Order("o1", "b", "s", amount, ship_region=ship), ctx)

    rebate = (amount * Decimal(rate) / 10_000).quantize(QUANTUM[CNY], rounding=ROUND_HALF_EVEN)
    deducted = WIDE.divide(rebate, v).quantize(QUANTUM[SP], rounding=ROUND_HALF_EVEN)
    assert Decimal(tx.get("deducted_sp")) == deducted
    sp = [p for p in tx.postings if p.currency == SP]
    deduct = sum((p.number for p in sp if p.get("leg") == "deduct"), Decimal(0))
    assert deduct == deducted
    assert all(p.number < 0 for p in sp if p.get("leg") != "deduct")
    paid = -sum((p.number for p in sp if p.get("leg") != "deduct"), Decimal(0))
    assert paid == deducted, "the SP legs do not add up to D"
    burns = [p for p in sp if p.account == A.SP_BURNED]
    assert len(burns) <= 1
    burn = -burns[0].number if burns else Decimal(0)
    assert burn >= 0
    if not buyer_active:
        assert burn == deducted and not [p for p in tx.postings if p.currency == SV]
    for currency in (CNY, SV, SP):
        assert sum((p.number for p in tx.postings if p.currency == currency), Decimal(0)) == 0
