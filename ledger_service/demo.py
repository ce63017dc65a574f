"""A simulated platform, booked through the same engine as the real one.

Deterministic for a seed (and a batch size): a referral tree with every role,
online and offline stores across regions with partners, packs, deposits, orders,
transfers, payouts (settled and cancelled), redemptions, a reversal and a daily
close each day. Refusals the rules make along the way (a merchant short of SP,
say) are counted, not hidden: they are part of what the books must handle.

Two ways to book:

- one by one (`Demo(engine, seed)`, batch 1): each event is its own commit, and
  the simulation sees at once whether the rules booked or refused it;
- in batches (`Demo(engine, seed, batch=10_000)`, what `run` and `ledger-service
  demo` use): events are queued and booked with `Engine.submit_many`, one durable
  commit per batch. A batch is all or nothing, so the simulation cannot wait for
  each outcome: it keeps the figures it needs to predict them (the value of the
  day, the SP each merchant surely holds, the SP left under the cap) and
  - queues what it expects to be booked, acting on it at once (a new member can
    refer the next one); should the rules refuse one anyway, the batch is split
    in halves until the refused event is alone, the rest is booked in order, and
    what the simulation did on the event's account is undone;
  - does not queue what it expects to be refused (an order a merchant cannot pay
    for, a transfer from a member without SP): once the batch is committed, the
    rules decide on each such event alone (`Engine.quote`, which books nothing);
    a refusal is counted, and those the rules would book after all are booked
    together in one more commit.
  Amounts of transfers, payouts and redemptions are then drawn worth 1–50 CNY
  rather than 1–50 SP, so that they stay affordable as the value of SP climbs.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from . import directory, regions
from .amounts import CNY, SP, ZERO, div, exact_mul, floor, quantize
from .config import Params
from .engine import MAX_EVENTS_PER_COMMIT, Booked, Engine
from .errors import Refusal
from .journal import Books
from .rules.events import (
    BuyPack,
    Deposit,
    Event,
    OpenStore,
    Order,
    PayoutCancel,
    PayoutRequest,
    PayoutSettle,
    Redeem,
    Register,
    Reverse,
    SetRole,
    Transfer,
)

# The platform's home (issue 16): members, stores and ship-to addresses in 东莞市 (441900, a city
# with no county-level division) and the districts of 深圳市 (罗湖 福田 南山 宝安 龙岗 龙华 光明);
# the region partners hold the city-level units of the Pearl River Delta (东莞 深圳 广州 佛山 惠州
# 珠海 中山 江门): an order in any 深圳 district pays the partner of 440300 (rule region.match "city").
REGIONS = ("441900", "440303", "440304", "440305", "440306", "440307", "440309", "440311")
# Display names (`directory`, BOOKS/names.tsv): drawn from the id, never from the simulation's
# random draws, so that the books are the same with or without them.
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN_NAMES = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
               "秀英", "霞", "平", "刚", "桂英", "建华", "志强", "晓东", "海燕", "小红", "丹", "子涵", "浩然")
GOODS = ("有机草莓 500克", "东莞腊肠 500克", "凤凰单丛茶 250克", "婴儿纸尿裤 L码 52片", "洗衣液 2升", "生蚝 12只",
         "五常大米 5公斤", "保温杯 500毫升", "充电宝 10000毫安时", "花生油 5升", "荔枝 2公斤", "运动鞋 42码")
SHOPS = ("鲜果便利店", "茶叶店", "母婴用品店", "美妆店", "五金店", "面包坊", "大药房", "文具店", "粮油店", "生鲜超市")


def member_name(member: str) -> str:
    """m0000042 -> 张超: a surname and a given name chosen by the member's number."""
    n = int(member.lstrip("m") or 0)
    return SURNAMES[n % len(SURNAMES)] + GIVEN_NAMES[(n // len(SURNAMES)) % len(GIVEN_NAMES)]


def store_name(store: str, region: str) -> str:
    """s00003 in 440305 -> 南山区美妆店 (the region's name, then a kind of shop by the store's number)."""
    n = int(store.lstrip("s") or 0)
    found = regions.division(region)
    place = found.name if found is not None else region
    return place + SHOPS[n % len(SHOPS)] + (f"（{n // len(SHOPS) + 1}号店）" if n >= len(SHOPS) else "")


def goods_name(order: str) -> str:
    """o00000004 -> 洗衣液 2升 ×1: what an order bought (goods and quantity by the order's number)."""
    n = int(order.lstrip("o") or 0)
    return f"{GOODS[n % len(GOODS)]} ×{n // len(GOODS) % 3 + 1}"


PARTNER_CITIES = ("441900", "440300", "440100", "440600", "441300", "440400", "442000", "440700")


@dataclass(frozen=True)
class Plan:
    """What the simulated platform does (issue 14: plausible for a shopping platform, and said).

    The value of a point is pool ÷ circulating: each order burns its rebate's worth of SP from
    its merchant (the CNY stays in the pool: the value rises), each close releases 500 SP
    backed by nothing (the value falls); deposits and payouts move CNY and SP together at the
    day's value. So the value drifts up when a day's rebates (in CNY) exceed the day's release
    times the value, and down otherwise: the order flow below keeps the two of the same order
    for a demo of a few hundred members.
    """

    orders_per_member_day: Decimal  # orders a day = members × this (unless given)
    order_median_cny: Decimal | None  # order amounts: log-normal around this, 10–2,000 CNY (None: uniform)
    rebate_rates: tuple[str, ...]  # a store's rebate rate, drawn from these
    opening_deposits: tuple[int, ...]  # CNY a store deposits when it opens, drawn from these
    top_up_cny: int  # CNY a store short of SP deposits (half of them) before its next order
    payouts_per_order: Decimal  # payout requests per order, each worth 1–`payout_max_cny` CNY
    payout_max_cny: int
    platform_injection_chance: Decimal  # a day's chance of a platform deposit of 100–1,000 CNY

    @property
    def rebate_per_order_cny(self) -> Decimal:
        """About what an order's rebate is worth: the mean amount × the mean rate."""
        if self.order_median_cny is None:
            return Decimal(120)  # (the estimate before issue 14: the ORIGINAL plan's books stay the same)
        mean_amount = self.order_median_cny * Decimal("1.377")  # a log-normal's mean: median × e^(0.8² / 2)
        mean_rate = sum((Decimal(r) for r in self.rebate_rates), ZERO) / len(self.rebate_rates)
        return quantize(mean_amount * mean_rate, CNY)

    def lines(self) -> list[str]:
        """The plan in words (the demo prints them; the README quotes them)."""
        amounts = (f"log-normal around {self.order_median_cny} CNY (10–2,000 CNY)" if self.order_median_cny
                   else "uniform 10–2,000 CNY")
        return [
            f"orders: {self.orders_per_member_day} a member a day, amounts {amounts}",
            f"stores: rebate rates {', '.join(f'{Decimal(r) * 100:g} %' for r in self.rebate_rates)}; "
            f"opening deposits {', '.join(f'{d:,}' for d in self.opening_deposits)} CNY; "
            f"a store short of SP tops up {self.top_up_cny:,} CNY half the time",
            f"payouts: {self.payouts_per_order} requests per order, 1–{self.payout_max_cny} CNY each, "
            "85 % settled and 15 % cancelled later; transfers and redemptions of a few CNY",
            f"platform: funds the pool on the first day; a day's chance of another injection "
            f"{self.platform_injection_chance * 100:g} %",
        ]


# What `ledger-service demo` and `make demo` simulate: a member orders about once in ten days
# (median 80 CNY, as on a shopping platform), rebates of 3–15 %, stores open with the minimum
# deposit or a little more, one payout request per ten orders.
PLATFORM = Plan(Decimal("0.1"), Decimal(80), ("0.03", "0.05", "0.05", "0.08", "0.08", "0.10", "0.12", "0.15"),
                (500, 500, 1000, 2000), 1000, Decimal("0.1"), 50, Decimal("0.05"))
# The draws before issue 14 (orders of 10–2,000 CNY by half the members every day, rebates up to
# 20 %: the value of a point climbed from 1 to about 12.7 CNY in ten days). The tests' fixed
# books are built with it, so that their figures stay as they were.
ORIGINAL = Plan(Decimal("0.5"), None, ("0.05", "0.08", "0.10", "0.12", "0.15", "0.20"), (500, 1000, 2000, 5000),
                2000, Decimal("0.04"), 20, Decimal("0.2"))
ROLES = ("vip", "shop_owner", "store_owner", "service_provider")
PHASES = ("init", "members", "stores", "trade", "reversal", "close")


@dataclass
class DemoStats:
    booked: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    days: int = 0
    commits: int = 0  # database commits that booked events
    split: int = 0  # batches the rules refused whole, split in halves to find the refused event
    tried_alone: int = 0  # events expected to be refused, put to the rules alone after their batch
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # per phase of `run` (PHASES)
    phase_events: Counter = field(default_factory=Counter)  # events booked per phase

    @property
    def events(self) -> int:
        return sum(self.booked.values())


class _Queued(NamedTuple):
    event: Event
    day: date
    then: Callable[[Booked], None] | None  # once booked
    undo: Callable[[], None] | None  # if refused


class Demo:
    def __init__(self, engine: Engine, seed: int, on_day: Callable[[date], None] | None = None,
                 batch: int = 1, on_commit: Callable[[DemoStats], None] | None = None, plan: Plan = PLATFORM) -> None:
        if not 1 <= batch <= MAX_EVENTS_PER_COMMIT:
            raise ValueError(f"batch: between 1 and {MAX_EVENTS_PER_COMMIT} events per commit")
        self.engine = engine
        self.plan = plan
        self.rng = random.Random(seed)
        self.stats = DemoStats()
        self.members: list[str] = []
        self.active: list[str] = []
        self.merchants: list[str] = []
        self.pending_payouts: list[str] = []
        self.orders: list[str] = []
        self.partners: set[str] = set()
        self.store_regions: dict[str, str] = {}
        self.on_day = on_day
        self.on_commit = on_commit
        self.next_member = 0
        self.next_order = 0
        self.batch = batch
        self.queue: list[_Queued] = []
        self.alone: list[_Queued] = []
        # What a batched demo predicts with (not kept one by one): see the module's docstring.
        self.value = ZERO  # CNY per SP, the open day's
        self.room = ZERO  # SP that deposits may still sell under the cap
        self.sp_floor: dict[str, Decimal] = {}  # SP a merchant surely holds (releases and transfers in left out)
        self.deposited: dict[str, Decimal] = {}  # CNY each merchant deposited
        self.rate: dict[str, Decimal] = {}  # each merchant's rebate rate
        if self.batched:
            self.refresh()

    @property
    def batched(self) -> bool:
        return self.batch > 1

    # -- booking -------------------------------------------------------------------

    def book(self, event: Event, day: date, *, expect: bool = True, apply: Callable[[], None] | None = None,
             undo: Callable[[], None] | None = None, then: Callable[[Booked], None] | None = None):
        """Book `event` on `day`.

        One by one: booked at once; `apply()` and `then(booked)` run if it is booked;
        returns its event id, or None when the rules refuse it.
        Batched: if `expect`ed to be booked, `apply()` runs now, the event is queued and
        True returned; `undo()` runs should the rules refuse it, `then(booked)` once
        booked. Otherwise False is returned, and the rules decide on it alone after the
        batch (`apply()` and `then` run if it is booked after all).
        """
        if not self.batched:
            booked = self.book_now(event, day)
            if booked is not None:
                if apply is not None:
                    apply()
                if then is not None:
                    then(booked)
            return booked.event_id if booked is not None else None
        if expect:
            if apply is not None:
                apply()
            self.queue.append(_Queued(event, day, then, undo))
        else:
            self.alone.append(_Queued(event, day, _after(apply, then), None))
        if len(self.queue) >= self.batch or len(self.alone) >= self.batch:
            self.flush()
        return expect

    def book_now(self, event: Event, day: date) -> Booked | None:
        """Book `event` in a commit of its own (after the queue): the booking, or None when refused."""
        self.flush()
        try:
            booked = self.engine.submit(event, day)
        except Refusal as refusal:
            self.stats.refused[refusal.rule] += 1
            return None
        self._booked([event], [booked])
        return booked

    def flush(self) -> None:
        """Book the queue in commits of `batch` events, then what was expected to be refused if the rules book it."""
        if not self.queue and not self.alone:
            return
        queue, self.queue = self.queue, []
        alone, self.alone = self.alone, []
        for start in range(0, len(queue), self.batch):
            self._commit(queue[start:start + self.batch])
        after_all: list[_Queued] = []
        for item in alone:  # the rules decide (a quote books nothing); what they would book is booked next
            self.stats.tried_alone += 1
            try:
                self.engine.quote(item.event, item.day)
            except Refusal as refusal:
                self.stats.refused[refusal.rule] += 1
                continue
            after_all.append(item)
        if after_all:
            self._commit(after_all)
        self.refresh()

    def _commit(self, items: list[_Queued]) -> None:
        try:
            booked = self.engine.submit_many([(item.event, item.day) for item in items])
        except Refusal as refusal:  # all or nothing: split until the refused event is alone
            if len(items) == 1:
                self.stats.refused[refusal.rule] += 1
                if items[0].undo is not None:
                    items[0].undo()
                return
            self.stats.split += 1
            half = len(items) // 2
            self._commit(items[:half])
            self._commit(items[half:])
            return
        self._booked([item.event for item in items], booked)
        for item, one in zip(items, booked, strict=True):
            if item.then is not None:
                item.then(one)

    def _booked(self, events: list[Event], booked: list[Booked]) -> None:
        self.stats.commits += 1
        for event in events:
            self.stats.booked[event.kind] += 1
        if self.on_commit is not None:
            self.on_commit(self.stats)

    # -- what a batched demo predicts with -------------------------------------------

    def refresh(self) -> None:
        """The committed figures: the value of the open day, the SP left under the cap."""
        supply = self.engine.supply()
        self.value = Decimal(supply["value_cny_per_sp"])
        self.room = self.engine.params.sp_cap - Decimal(supply["issued"])

    def sp(self, units: int) -> Decimal:
        """An amount of SP: `units` SP one by one; batched, the SP worth `units` CNY today."""
        if not self.batched or self.value <= 0:
            return Decimal(units)
        return max(Decimal("0.0001"), quantize(div(Decimal(units), self.value), SP))

    def _has(self, holder: str, sp: Decimal) -> bool:
        return self.batched and self.sp_floor.get(holder, ZERO) >= sp

    def _spend(self, holder: str, sp: Decimal) -> None:
        if self.batched:
            self.sp_floor[holder] = self.sp_floor.get(holder, ZERO) - sp

    def _sold(self, amount_cny: Decimal) -> Decimal:
        """The SP a deposit of `amount_cny` buys today (as the rules round it)."""
        return floor(div(amount_cny, self.value), SP) if self.batched and self.value > 0 else ZERO

    def _bought(self, merchant: str, amount_cny: Decimal, sold: Decimal) -> None:
        if self.batched:
            self.room -= sold
            self.sp_floor[merchant] = self.sp_floor.get(merchant, ZERO) + sold
            self.deposited[merchant] = self.deposited.get(merchant, ZERO) + amount_cny

    def _deducted(self, merchant: str, amount_cny: Decimal) -> Decimal:
        """The SP an order of `amount_cny` takes from `merchant` today (as the rules round it)."""
        if not self.batched or self.value <= 0 or merchant not in self.rate:
            return ZERO
        return quantize(div(quantize(exact_mul(amount_cny, self.rate[merchant]), CNY), self.value), SP)

    def _can_take(self, merchant: str, sp: Decimal) -> bool:
        return (self.batched and self.deposited.get(merchant, ZERO) >= self.engine.params.merchant_deposit_value
                and self._has(merchant, sp))

    def deposit(self, merchant: str, amount_cny: Decimal, day: date):
        sold = self._sold(amount_cny)
        return self.book(Deposit(amount_cny, merchant=merchant), day, expect=ZERO < sold <= self.room,
                         apply=partial(self._bought, merchant, amount_cny, sold),
                         undo=partial(self._bought, merchant, -amount_cny, -sold))

    def spend(self, event: Event, holder: str, sp: Decimal, day: date, then: Callable[[Booked], None] | None = None):
        """Book an event that takes `sp` SP from `holder` (a transfer, a payout, a redemption)."""
        return self.book(event, day, expect=self._has(holder, sp), apply=partial(self._spend, holder, sp),
                         undo=partial(self._spend, holder, -sp), then=then)

    # -- the population ------------------------------------------------------------

    def names(self) -> dict[str, str]:
        """The display names of the members, stores and orders booked (`directory`)."""
        out = {member: member_name(member) for member in self.members}
        out.update({order: goods_name(order) for order in self.orders})
        out.update({store: store_name(store, self.store_regions.get(store, "")) for store in self.merchants})
        return out

    def register(self, day: date, count: int) -> None:
        for _ in range(count):
            member = f"m{self.next_member:07d}"
            self.next_member += 1
            referrer = self.rng.choice(self.members) if self.members and self.rng.random() < 0.85 else None
            registered = self.book(Register(member, referrer=referrer, region=self.rng.choice(REGIONS)), day,
                                   apply=partial(self.members.append, member),
                                   undo=partial(_remove, self.members, member))
            if registered and self.rng.random() < 0.7:
                self.book(BuyPack(member, "activation"), day,
                          apply=partial(self.active.append, member), undo=partial(_remove, self.active, member))

    def grade(self, day: date, count: int) -> None:
        for _ in range(min(count, len(self.active))):
            self.book(SetRole(self.rng.choice(self.active), self.rng.choice(ROLES)), day)

    def appoint_partners(self, day: date) -> None:
        for region in PARTNER_CITIES:
            if region in self.partners or not self.active or self.rng.random() < 0.25:
                continue
            self.book(BuyPack(self.rng.choice(self.active), "partner", region=region), day,
                      apply=partial(self.partners.add, region), undo=partial(self.partners.discard, region))

    def open_stores(self, day: date, count: int) -> None:
        for _ in range(count):
            if not self.active:
                return
            merchant = f"s{len(self.merchants):05d}"
            channel = "offline" if self.rng.random() < 0.6 else "online"
            rate = Decimal(self.rng.choice(self.plan.rebate_rates))
            referrer = self.rng.choice(self.members) if channel == "offline" and self.rng.random() < 0.7 else None
            event = OpenStore(merchant, self.rng.choice(self.active), self.rng.choice(REGIONS), channel, rate, referrer)
            self.store_regions[merchant] = event.region
            if self.book(event, day, apply=partial(self._opened, merchant, rate),
                         undo=partial(_remove, self.merchants, merchant)):
                self.deposit(merchant, Decimal(self.rng.choice(self.plan.opening_deposits)), day)

    def _opened(self, merchant: str, rate: Decimal) -> None:
        self.merchants.append(merchant)
        self.rate[merchant] = rate

    # -- a business day ------------------------------------------------------------

    def trade(self, day: date, orders: int) -> None:
        if not self.merchants or not self.members:
            return
        for _ in range(orders):
            order_id = f"o{self.next_order:08d}"
            self.next_order += 1
            merchant = self.rng.choice(self.merchants)
            amount = self._order_amount()
            ship = self.rng.choice(REGIONS)
            need = self._deducted(merchant, amount)
            if self.book(Order(order_id, self.rng.choice(self.members), merchant, amount, ship_region=ship), day,
                         expect=self._can_take(merchant, need), apply=partial(self._took, order_id, merchant, need),
                         undo=partial(self._took, order_id, merchant, -need)):
                pass
            elif self.rng.random() < 0.5:  # the merchant tops up its deposit and tries again
                self.deposit(merchant, Decimal(self.plan.top_up_cny), day)
        holders = self.active + self.merchants
        for _ in range(max(1, orders // 20)):
            if len(holders) >= 2:
                source, target = self.rng.sample(holders, 2)
                sp = self.sp(self.rng.randint(1, 50))
                self.spend(Transfer(source, target, sp), source, sp, day)
        for _ in range(max(1, int(orders * self.plan.payouts_per_order))):
            holder = self.rng.choice(holders)
            sp = self.sp(self.rng.randint(1, self.plan.payout_max_cny))
            self.spend(PayoutRequest(holder, sp), holder, sp, day, then=self._requested)
        for _ in range(max(1, orders // 40)):
            holder = self.rng.choice(holders)
            sp = self.sp(self.rng.randint(1, 10))
            self.spend(Redeem(holder, sp, "green tea gift box"), holder, sp, day)
        self.flush()  # the payouts just requested have their ids
        while self.pending_payouts and self.rng.random() < 0.7:
            payout = self.pending_payouts.pop(0)
            if self.rng.random() < 0.85:
                self.book(PayoutSettle(payout, f"BANK{self.rng.randint(10**9, 10**10 - 1)}"), day)
            else:
                self.book(PayoutCancel(payout), day)
        if self.rng.random() < self.plan.platform_injection_chance:
            self.book(Deposit(Decimal(self.rng.randint(100, 1000)), platform=True), day)

    def _order_amount(self) -> Decimal:
        median = self.plan.order_median_cny
        if median is None:
            return Decimal(self.rng.randint(1000, 200000)) / 100
        drawn = self.rng.lognormvariate(math.log(median), 0.8)  # a long tail of larger baskets
        return quantize(Decimal(str(min(2000.0, max(10.0, drawn)))), CNY)

    def _took(self, order_id: str, merchant: str, sp: Decimal) -> None:
        """An order booked (`sp` > 0 or one by one) or undone (`sp` < 0)."""
        if sp < 0:
            _remove(self.orders, order_id)
        else:
            self.orders.append(order_id)
        self._spend(merchant, sp)

    def _requested(self, booked: Booked) -> None:
        if booked.event_id is not None:  # always, for a booked request
            self.pending_payouts.append(booked.event_id)

    def reverse_one(self, day: date) -> None:
        self.flush()
        for order_id in reversed(self.orders[-50:]):
            event_id = self.engine.event_for_order(order_id)
            if event_id and self.book_now(Reverse(event_id), day):
                return


def _after(apply: Callable[[], None] | None, then: Callable[[Booked], None] | None) -> Callable[[Booked], None]:
    def run(booked: Booked) -> None:
        if apply is not None:
            apply()
        if then is not None:
            then(booked)
    return run


def _remove(items: list[str], item: str) -> None:
    for index in range(len(items) - 1, -1, -1):  # the newest first: what is undone was just added
        if items[index] == item:
            del items[index]
            return


def platform_funding(params: Params, merchants: int, orders: int, rebate_per_order_cny: Decimal = Decimal(120)
                     ) -> Decimal:
    """CNY the platform puts in the pool on the first day, before any store opens.

    After the first close, a point is worth this ÷ the day's release; the amount is
    chosen so that the deposits the simulation will make (about 2,500 CNY to open
    each store, and the rebates of its orders, `rebate_per_order_cny` each: `Plan.rebate_per_order_cny`)
    buy at most a quarter of the cap: deposits are refused once the cap is reached.
    """
    demand = Decimal(merchants * 2500) + orders * rebate_per_order_cny
    value = max(Decimal(1), demand / (params.sp_cap / 4))
    return max(Decimal(500), quantize(value * params.sp_daily_release, CNY))


def run(books: Path, params: Params, members: int, merchants: int, days: int, seed: int,
        orders_per_day: int | None = None, progress: Callable[[date, str, DemoStats], None] | None = None,
        db_url: str | None = None, batch: int = MAX_EVENTS_PER_COMMIT, plan: Plan = PLATFORM
        ) -> tuple[Engine, DemoStats]:
    """Simulate `days` business days ending yesterday; every day is closed.

    The first day, members join and the platform funds the pool (`platform_funding`);
    stores open over the following days (all on the first when `days` is 1) and trade
    from the day they open. `progress(day, phase, stats)` is called as commits land
    (at most twice a second) and after each close.

    One function over the usual ~60 lines on purpose: it is the simulation's script, day by
    day, read top to bottom; each step it takes (members, stores, orders, payouts) is a
    function of its own.
    """
    clock = time.perf_counter
    t0 = clock()
    today = datetime.now(params.timezone).date()
    start = today - timedelta(days=days)
    if Books(books).exists():
        engine = Engine(books, db_url)
        start = max(engine.today() - timedelta(days=days), date.fromisoformat(engine.head()["open_day"]))
        if date.fromisoformat(engine.head()["open_day"]) < start:
            engine.close_days(start - timedelta(days=1))
    else:
        engine = Engine.init(books, params, start=start, db_url=db_url)
    params = engine.params
    now: dict[str, Any] = {"day": start, "phase": "init", "shown": 0.0}

    def committed(stats: DemoStats) -> None:
        if progress is not None and clock() - now["shown"] >= 0.5:
            now["shown"] = clock()
            progress(now["day"], now["phase"], stats)

    demo = Demo(engine, seed, batch=batch, on_commit=committed, plan=plan)
    stats = demo.stats
    stats.seconds["init"] += clock() - t0
    orders = orders_per_day if orders_per_day is not None else max(10, int(members * plan.orders_per_member_day))
    first_store_day = 1 if days > 1 else 0
    per_day_members = -(-members // max(1, days))
    per_day_merchants = -(-merchants // max(1, days - first_store_day))
    opened = 0
    mark = [clock(), stats.events]

    def phase(name: str) -> None:
        """End the current phase: book its queue and time it."""
        demo.flush()
        t = clock()
        stats.seconds[now["phase"]] += t - mark[0]
        stats.phase_events[now["phase"]] += stats.events - int(mark[1])
        mark[:] = [t, stats.events]
        now["phase"] = name

    for index in range(days):
        day = start + timedelta(days=index)
        if day >= engine.today():
            break
        now["day"] = day
        phase("members")
        todo = min(max(per_day_members, 10) if index == 0 else per_day_members, max(0, members - demo.next_member))
        demo.register(day, todo)
        demo.grade(day, max(1, todo // 10))
        demo.appoint_partners(day)
        if index == 0:
            demo.book(Deposit(platform_funding(params, merchants, orders * max(1, days - first_store_day),
                                               plan.rebate_per_order_cny), platform=True), day)
        if index >= first_store_day:
            phase("stores")
            count = min(per_day_merchants, merchants - opened)
            demo.open_stores(day, count)
            opened += count
            phase("trade")
            demo.trade(day, orders)
        if index == days // 2:
            phase("reversal")
            demo.reverse_one(day)
        phase("close")
        engine.close_days(day)
        demo.refresh()
        stats.days += 1
        if progress is not None:
            progress(day, "closed", stats)
    phase("close")
    directory.write(books, demo.names())
    return engine, stats
