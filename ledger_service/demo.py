"""A simulated platform, booked through the same engine as the real one.

Deterministic for a seed: a referral tree with every role, online and offline
stores across regions with partners, packs, deposits, orders, transfers,
payouts (settled and cancelled), redemptions, a reversal and a daily close each
day. Refusals the rules make along the way (a merchant short of SP, say) are
counted, not hidden: they are part of what the books must handle.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Callable

from .config import Params
from .engine import Engine
from .errors import Refusal
from .rules.events import (BuyPack, Deposit, Event, OpenStore, Order, PayoutCancel, PayoutRequest, PayoutSettle,
                           Redeem, Register, Reverse, SetRole, Transfer)

REGIONS = ("441900", "440300", "440100", "310100", "110100", "330100", "510100", "420100")
ROLES = ("vip", "shop_owner", "store_owner", "service_provider")


@dataclass
class DemoStats:
    booked: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    days: int = 0


class Demo:
    def __init__(self, engine: Engine, seed: int, on_day: Callable[[date], None] | None = None) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.stats = DemoStats()
        self.members: list[str] = []
        self.active: list[str] = []
        self.merchants: list[str] = []
        self.pending_payouts: list[str] = []
        self.orders: list[str] = []
        self.partners: set[str] = set()
        self.on_day = on_day
        self.next_member = 0
        self.next_order = 0

    def book(self, event: Event, day: date) -> str | None:
        try:
            booked = self.engine.submit(event, day)
        except Refusal as refusal:
            self.stats.refused[refusal.rule] += 1
            return None
        self.stats.booked[event.kind] += 1
        return booked.event_id

    # -- the population ------------------------------------------------------------

    def register(self, day: date, count: int) -> None:
        for _ in range(count):
            member = f"m{self.next_member:07d}"
            self.next_member += 1
            referrer = self.rng.choice(self.members) if self.members and self.rng.random() < 0.85 else None
            if self.book(Register(member, referrer=referrer, region=self.rng.choice(REGIONS)), day):
                self.members.append(member)
                if self.rng.random() < 0.7 and self.book(BuyPack(member, "activation"), day):
                    self.active.append(member)

    def grade(self, day: date, count: int) -> None:
        for _ in range(min(count, len(self.active))):
            self.book(SetRole(self.rng.choice(self.active), self.rng.choice(ROLES)), day)

    def appoint_partners(self, day: date) -> None:
        for region in REGIONS:
            if region in self.partners or not self.active or self.rng.random() < 0.25:
                continue
            if self.book(BuyPack(self.rng.choice(self.active), "partner", region=region), day):
                self.partners.add(region)

    def open_stores(self, day: date, count: int) -> None:
        for _ in range(count):
            if not self.active:
                return
            merchant = f"s{len(self.merchants):05d}"
            channel = "offline" if self.rng.random() < 0.6 else "online"
            rate = Decimal(self.rng.choice(("0.05", "0.08", "0.10", "0.12", "0.15", "0.20")))
            referrer = self.rng.choice(self.members) if channel == "offline" and self.rng.random() < 0.7 else None
            event = OpenStore(merchant, self.rng.choice(self.active), self.rng.choice(REGIONS), channel, rate, referrer)
            if self.book(event, day):
                self.merchants.append(merchant)
                self.book(Deposit(Decimal(self.rng.choice((500, 1000, 2000, 5000))), merchant=merchant), day)

    # -- a business day ------------------------------------------------------------

    def trade(self, day: date, orders: int) -> None:
        if not self.merchants or not self.members:
            return
        for _ in range(orders):
            order_id = f"o{self.next_order:08d}"
            self.next_order += 1
            merchant = self.rng.choice(self.merchants)
            amount = Decimal(self.rng.randint(1000, 200000)) / 100
            ship = self.rng.choice(REGIONS)
            if self.book(Order(order_id, self.rng.choice(self.members), merchant, amount, ship_region=ship), day):
                self.orders.append(order_id)
            elif self.rng.random() < 0.5:  # the merchant tops up its deposit and tries again
                self.book(Deposit(Decimal(2000), merchant=merchant), day)
        holders = self.active + self.merchants
        for _ in range(max(1, orders // 20)):
            source, target = self.rng.sample(holders, 2) if len(holders) >= 2 else (None, None)
            if source:
                self.book(Transfer(source, target, Decimal(self.rng.randint(1, 50))), day)
        for _ in range(max(1, orders // 25)):
            payout = self.book(PayoutRequest(self.rng.choice(holders), Decimal(self.rng.randint(1, 20))), day)
            if payout:
                self.pending_payouts.append(payout)
        for _ in range(max(1, orders // 40)):
            self.book(Redeem(self.rng.choice(holders), Decimal(self.rng.randint(1, 10)), "green tea gift box"), day)
        while self.pending_payouts and self.rng.random() < 0.7:
            payout = self.pending_payouts.pop(0)
            if self.rng.random() < 0.85:
                self.book(PayoutSettle(payout, f"BANK{self.rng.randint(10**9, 10**10 - 1)}"), day)
            else:
                self.book(PayoutCancel(payout), day)
        if self.rng.random() < 0.2:
            self.book(Deposit(Decimal(self.rng.randint(100, 1000)), platform=True), day)

    def reverse_one(self, day: date) -> None:
        for order_id in reversed(self.orders[-50:]):
            event_id = self.engine.event_for_order(order_id)
            if event_id and self.book(Reverse(event_id), day):
                return


def run(books: Path, params: Params, members: int, merchants: int, days: int, seed: int,
        orders_per_day: int | None = None, progress=None, db_url: str | None = None) -> tuple[Engine, DemoStats]:
    """Simulate `days` business days ending yesterday; every day is closed."""
    from .journal import Books

    from datetime import datetime

    today = datetime.now(params.timezone).date()
    start = today - timedelta(days=days)
    if Books(books).exists():
        engine = Engine(books, db_url)
        start = max(engine.today() - timedelta(days=days), date.fromisoformat(engine.head()["open_day"]))
    else:
        engine = Engine.init(books, params, start=start, db_url=db_url)
    demo = Demo(engine, seed)
    per_day_members = max(1, members // max(1, days))
    per_day_merchants = max(1, merchants // max(1, days))
    orders = orders_per_day if orders_per_day is not None else max(10, members // 2)
    day = start
    for index in range(days):
        day = start + timedelta(days=index)
        if day >= engine.today():
            break
        demo.register(day, per_day_members if index else max(per_day_members, 10))
        demo.grade(day, max(1, per_day_members // 10))
        demo.appoint_partners(day)
        demo.open_stores(day, per_day_merchants)
        demo.trade(day, orders)
        if index == days // 2:
            demo.reverse_one(day)
        engine.close_days(day)
        demo.stats.days += 1
        if progress is not None:
            progress(day)
    return engine, demo.stats
