"""The seed-like platform the benchmarks book through the engine (shared by fava_load.py and
engine_events.py).

`Seeder` generates a platform's events day by day with a fixed random seed: members registered
(70 % buy the activation pack, 8 regional partners, some graded), stores opened with a deposit
each, orders (stores topped up when short of SP), transfers, payouts (settled or cancelled the
next day) and redemptions. Events go through `Engine.submit_many` in commits of up to
`args.batch` events; each day is closed with `Engine.close_days`. `args` needs: members,
merchants, orders_per_day, days, batch, deposit_cny, injection_cny, seed.
"""

from __future__ import annotations

import os
import platform
import random
import resource
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

START = date(2026, 1, 17)  # 30 days from here span two months: the ledger has an opening and two periods
REGIONS = ("441900", "440300", "440100", "310000", "110000", "330100", "510100", "420100")
ROLES = ("vip", "shop_owner", "store_owner", "service_provider")
RATES = ("0.05", "0.08", "0.10", "0.12", "0.15", "0.20")


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def machine() -> dict:
    cpu, mem_kib = "unknown", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kib / 1024 / 1024, 1),
            "python": platform.python_version(), "platform": platform.platform()}


# -- seeding -------------------------------------------------------------------------------------


class Seeder:
    """Generates a platform's events day by day, books them in batches, closes each day."""

    def __init__(self, root: Path, args, db_url: str | None = None, update_ledger: bool = True) -> None:
        from ledger_service import config
        from ledger_service.engine import Engine

        self.args = args
        self.rng = random.Random(args.seed)
        self.today = START + timedelta(days=args.days)
        self.engine = Engine.init(root, config.load("seed-a"), start=START, db_url=db_url, clock=lambda: self.today)
        self.update_ledger = update_ledger
        self.root = root
        self.members: list[str] = []
        self.active: list[str] = []
        self.merchants: list[str] = []
        self.channel: dict[str, str] = {}
        self.rate: dict[str, Decimal] = {}
        self.sp_est: dict[str, Decimal] = {}
        self.pending_payouts: list[str] = []
        self.batch: list = []
        self.booked = 0
        self.kinds: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.book_s = 0.0
        self.commits = 0  # submit_many calls (a refused batch counts once per call made)
        self.refused_batches = 0
        self.close_ms: list[float] = []
        self.update_ms: list[float] = []
        self.value = Decimal(1)
        self.next_order = 0

    # batches ----------------------------------------------------------------

    def add(self, event, day: date) -> None:
        self.batch.append((event, day))
        if len(self.batch) >= self.args.batch:
            self.flush()

    def flush(self) -> list:
        from ledger_service.errors import Refusal

        if not self.batch:
            return []
        events, self.batch = self.batch, []
        t0 = time.perf_counter()
        try:
            self.commits += 1
            booked = self.engine.submit_many(events)
        except Refusal as refusal:  # rare: book one by one, counting what the rules refuse
            log(f"  batch refused ({refusal.rule}: {refusal.detail}); booking it event by event")
            self.refused_batches += 1
            booked = []
            for event, day in events:
                try:
                    self.commits += 1
                    booked += self.engine.submit_many([(event, day)])
                except Refusal as one:
                    self.refused[one.rule] = self.refused.get(one.rule, 0) + 1
        self.book_s += time.perf_counter() - t0
        self.booked += len(booked)
        for b in booked:
            self.kinds[b.kind] = self.kinds.get(b.kind, 0) + 1
            if b.kind == "payout":
                self.pending_payouts.append(b.event_id)
        return booked

    # the population -----------------------------------------------------------

    def register(self, day: date, count: int) -> None:
        from ledger_service.rules.events import BuyPack, Register

        for _ in range(count):
            member = f"m{len(self.members):07d}"
            referrer = self.rng.choice(self.members) if self.members and self.rng.random() < 0.85 else None
            self.add(Register(member, referrer=referrer, region=self.rng.choice(REGIONS)), day)
            self.members.append(member)
            if self.rng.random() < 0.7:
                self.add(BuyPack(member, "activation"), day)
                self.active.append(member)

    def grade(self, day: date, count: int) -> None:
        from ledger_service.rules.events import SetRole

        for _ in range(min(count, len(self.active))):
            self.add(SetRole(self.rng.choice(self.active), self.rng.choice(ROLES)), day)

    def partners(self, day: date) -> None:
        from ledger_service.rules.events import BuyPack

        for region, member in zip(REGIONS, self.rng.sample(self.active, len(REGIONS))):
            self.add(BuyPack(member, "partner", region=region), day)

    def open_stores(self, day: date, count: int) -> None:
        from ledger_service.rules.events import Deposit, OpenStore

        for _ in range(count):
            merchant = f"s{len(self.merchants):05d}"
            channel = "offline" if self.rng.random() < 0.5 else "online"
            rate = Decimal(self.rng.choice(RATES))
            referrer = self.rng.choice(self.members) if channel == "offline" and self.rng.random() < 0.7 else None
            self.add(OpenStore(merchant, self.rng.choice(self.active), self.rng.choice(REGIONS), channel, rate,
                               referrer), day)
            self.merchants.append(merchant)
            self.channel[merchant], self.rate[merchant] = channel, rate
            self.sp_est[merchant] = Decimal(0)
            self.deposit(merchant, day)

    def deposit(self, merchant: str, day: date) -> None:
        from ledger_service.rules.events import Deposit

        amount = Decimal(self.args.deposit_cny)
        self.add(Deposit(amount, merchant=merchant), day)
        self.sp_est[merchant] += (amount / self.value * Decimal("0.99")).quantize(Decimal("0.0001"), ROUND_DOWN)

    # a business day -------------------------------------------------------------

    def trade(self, day: date, orders: int) -> None:
        from ledger_service.rules.events import (Order, PayoutCancel, PayoutRequest, PayoutSettle, Redeem,
                                                 Transfer)

        for payout in self.pending_payouts:  # yesterday's payouts: the bank paid most of them
            if self.rng.random() < 0.85:
                self.add(PayoutSettle(payout, f"BANK{self.rng.randint(10**9, 10**10 - 1)}"), day)
            else:
                self.add(PayoutCancel(payout), day)
        self.pending_payouts = []
        for i in range(orders):
            merchant = self.rng.choice(self.merchants)
            amount = Decimal(self.rng.randint(1000, 200000)) / 100
            need = amount * self.rate[merchant] / self.value * Decimal("1.02") + Decimal("0.0002")
            if self.sp_est[merchant] < need:
                self.deposit(merchant, day)
            self.sp_est[merchant] -= need
            ship = self.rng.choice(REGIONS) if self.channel[merchant] == "online" else None
            self.add(Order(f"o{self.next_order:09d}", self.rng.choice(self.members), merchant, amount,
                           ship_region=ship), day)
            self.next_order += 1
            if i % 100 == 0:
                rich = [m for m in self.rng.sample(self.merchants, 5) if self.sp_est[m] > 1]
                for m in rich[:1]:
                    self.add(Transfer(m, self.rng.choice(self.active), Decimal("0.0100")), day)
                    self.sp_est[m] -= Decimal("0.0100")
            if i % 200 == 50:
                rich = [m for m in self.rng.sample(self.merchants, 5) if self.sp_est[m] > 1]
                for m in rich[:1]:
                    self.add(PayoutRequest(m, Decimal("0.0500")), day)
                    self.sp_est[m] -= Decimal("0.0500")
            if i % 400 == 150:
                rich = [m for m in self.rng.sample(self.merchants, 5) if self.sp_est[m] > 1]
                for m in rich[:1]:
                    self.add(Redeem(m, Decimal("0.0200"), "green tea gift box"), day)
                    self.sp_est[m] -= Decimal("0.0200")

    def close(self, day: date) -> None:
        from ledger_service import views

        self.flush()
        t0 = time.perf_counter()
        self.engine.close_days(day)
        t1 = time.perf_counter()
        if self.update_ledger:
            views.update(self.root)  # a no-op when the engine already extends the ledger as days close
        t2 = time.perf_counter()
        self.close_ms.append((t1 - t0) * 1000)
        self.update_ms.append((t2 - t1) * 1000)
        self.value = Decimal(self.engine.head()["value_cny_per_sp"])

    def run(self) -> dict:
        from ledger_service.rules.events import Deposit

        args = self.args
        per_day = -(-args.members // args.days)
        t0 = time.perf_counter()
        for index in range(args.days):
            day = START + timedelta(days=index)
            todo = min(per_day, args.members - len(self.members))
            if index == 0:
                self.add(Deposit(Decimal(args.injection_cny), platform=True), day)
            self.register(day, todo)
            self.grade(day, max(1, todo // 20))
            if index == 0:
                self.partners(day)
            if index == 1:
                self.open_stores(day, args.merchants)
            if index >= 1:
                self.trade(day, args.orders_per_day)
            self.close(day)
            elapsed = time.perf_counter() - t0
            log(f"day {day} closed: {self.booked:,} events booked in {elapsed:,.0f} s "
                f"({self.booked / elapsed:,.0f}/s), close {self.close_ms[-1]:.0f} ms, ledger update "
                f"{self.update_ms[-1]:.0f} ms, value {self.value}, peak RSS {peak_rss_mib():,.0f} MiB")
        seconds = time.perf_counter() - t0
        self.engine.dispose()
        return {
            "members": len(self.members), "active_members": len(self.active), "merchants": len(self.merchants),
            "days": args.days, "orders_per_day": args.orders_per_day, "events": self.booked,
            "events_by_kind": dict(sorted(self.kinds.items())), "refused": self.refused,
            "seconds": round(seconds, 1), "booking_seconds": round(self.book_s, 1),
            "events_per_s": round(self.booked / seconds, 1), "batch_events": args.batch,
            "close_ms_median": round(statistics.median(self.close_ms), 1),
            "ledger_update_ms_median": round(statistics.median(self.update_ms[1:] or self.update_ms), 1),
            "ledger_update_ms_max": round(max(self.update_ms), 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
        }
