#!/usr/bin/env python3
"""Benchmark: Fava on the ledger tier vs Fava on the flat journal, at seed scale (issue 4).

1. Seeds books through the engine on a fixed clock: `--members` members registered over
   `--days` business days (70 % buy the activation pack, 8 regional partners, some graded),
   `--merchants` stores opened on the second day with a deposit each, `--orders-per-day`
   orders a day (buyers among all members, inactive ones too; stores topped up when short
   of SP), and transfers, payouts (settled or cancelled the next day) and redemptions. Events
   go through `Engine.submit_many` in commits of up to 10,000; each day is closed with
   `Engine.close_days` and the ledger tier extended with `ledger_tier.update` (both timed:
   that is what the engine does as days close once wired). The seeding rate is reported.
2. The ledger tier: a rebuild from scratch (`update(rebuild=True)` after removing it), and
   `ledger_tier.check` (the comparison `verify` adds), timed; files and sizes.
3. In a fresh process per tier, Fava's own app (`fava.application.create_app(load=True)`,
   i.e. `FavaLedger(path)`, the Beancount load with its plugins) on
   - the ledger tier: `BOOKS/ledger/main.beancount`;
   - the flat journal: `BOOKS/main.beancount` (the project's plugin replays every entry), via
     a wrapper beside it that also declares the extension, so the same pages can be timed;
   then the first load, a reload, and the pages: the balance sheet (page and its JSON API),
   an account page (`Liabilities:Holders:SP`: page and `api/account_report`), the journal's
   first page, and the extension's Supply, Holder (first answer, then until the background
   replay is ready) and Audit pages (first answer, then until the background verify is done)
   and a day drill-down; the peak RSS of that process.

    python benchmarks/fava_load.py --members 100000 --merchants 1000 --orders-per-day 5000 --days 30 \
        [--books DIR] [--reuse] [--out benchmarks/results/fava_load.json] [--md benchmarks/results/fava_load.md]

Nothing under ledger_service/ is modified. The books live in a temporary folder removed at
the end unless --books is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START = date(2026, 1, 17)  # 30 days from here span two months: the ledger has an opening and two periods
REGIONS = ("441900", "440300", "440100", "310100", "110100", "330100", "510100", "420100")
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

    def __init__(self, root: Path, args) -> None:
        from ledger_service import config
        from ledger_service.engine import Engine

        self.args = args
        self.rng = random.Random(args.seed)
        self.today = START + timedelta(days=args.days)
        self.engine = Engine.init(root, config.load("seed-a"), start=START, clock=lambda: self.today)
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
            booked = self.engine.submit_many(events)
        except Refusal as refusal:  # rare: book one by one, counting what the rules refuse
            log(f"  batch refused ({refusal.rule}: {refusal.detail}); booking it event by event")
            booked = []
            for event, day in events:
                try:
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
        from ledger_service import ledger_tier

        self.flush()
        t0 = time.perf_counter()
        self.engine.close_days(day)
        t1 = time.perf_counter()
        ledger_tier.update(self.root)  # a no-op when the engine already extends the ledger as days close
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


# -- the ledger tier ---------------------------------------------------------------------------------


def ledger_figures(root: Path) -> dict:
    from ledger_service import ledger_tier

    shutil.rmtree(root / "ledger", ignore_errors=True)
    t0 = time.perf_counter()
    written = ledger_tier.update(root, rebuild=True)
    rebuild_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    faults = ledger_tier.check(root)
    check_s = time.perf_counter() - t0
    journal_files = list((root / "journal").rglob("*.beancount"))
    ledger_files = list((root / "ledger").rglob("*.beancount"))
    count = lambda files, pattern: sum(p.read_text(encoding="utf-8").count(pattern) for p in files)
    return {
        "rebuild_from_scratch_s": round(rebuild_s, 2), "check_s": round(check_s, 2), "check_faults": len(faults),
        "files_written": len(written),
        "journal": {"files": len(journal_files), "bytes": sum(p.stat().st_size for p in journal_files),
                    "transactions": count(journal_files, '\n  kind: "') - count(journal_files, " price SP ")},
        "ledger": {"files": len(ledger_files), "bytes": sum(p.stat().st_size for p in ledger_files),
                   "transactions": count([p for p in ledger_files if "/months/" in str(p)], '\n  events: "')},
    }


# -- Fava, in a process of its own per tier --------------------------------------------------------------


def measure(path: Path, holder: str, day: str, full: bool = True) -> dict:
    """Run in a fresh process: load Fava on `path`, time its pages, report peak RSS.

    `full`: also time a reload and wait for the extension's background work (the holder
    replay, the verification). Both read the journal whichever tier Fava opened, so the
    flat journal's run skips them (and its reload costs what its first load does).
    """
    from urllib.parse import quote

    from fava.application import create_app
    from fava.util import slugify

    out: dict = {"file": str(path)}
    rss0 = peak_rss_mib()
    t0 = time.perf_counter()
    app = create_app([str(path)], read_only=True, load=True)
    out["first_load_s"] = round(time.perf_counter() - t0, 2)
    ledger = app.config["LEDGERS"].ledgers[0]
    out["entries"] = len(ledger.all_entries)
    out["errors"] = len(ledger.errors)
    out["rss_after_load_mib"] = round(peak_rss_mib(), 1)
    if full:
        t0 = time.perf_counter()
        ledger.load_file()
        out["reload_s"] = round(time.perf_counter() - t0, 2)
    client = app.test_client()
    slug = quote(slugify(ledger.options["title"]))
    pages = {
        "balance_sheet (page)": "balance_sheet/",
        "balance_sheet (api)": "api/balance_sheet",
        "account Liabilities:Holders:SP (page)": "account/Liabilities:Holders:SP/",
        "account Liabilities:Holders:SP (api)": "api/account_report?a=Liabilities:Holders:SP",
        "journal page 1 (api)": "api/journal_page?page=1&order=desc",
        "Supply": "extension/SupplyPage/",
        "Holder (first answer)": f"extension/HolderPage/?holder={holder}",
        "Audit (first answer)": "extension/AuditPage/",
        "Audit day drill-down": f"extension/AuditPage/?day={day}&page=2",
    }
    times: dict[str, float] = {}
    sizes: dict[str, int] = {}
    started: dict[str, float] = {}
    for name, url in pages.items():
        t0 = started[name] = time.perf_counter()
        response = client.get(f"/{slug}/{url}")
        times[name] = round((time.perf_counter() - t0) * 1000, 1)
        sizes[name] = len(response.get_data())
        assert response.status_code == 200, (name, response.status_code)
    if not full:
        out["pages_ms"] = times
        out["response_bytes"] = sizes
        out["peak_rss_mib"] = round(peak_rss_mib(), 1)
        return out
    # the background work: the holder replay, the verification
    t0 = time.perf_counter()
    while b"holder-building" in client.get(f"/{slug}/extension/HolderPage/?holder={holder}").get_data():
        time.sleep(1)
    out["holder_index_ready_s"] = round(time.perf_counter() - t0 + times["Holder (first answer)"] / 1000, 1)
    t0 = time.perf_counter()
    times["Holder (ready)"] = 0.0
    client.get(f"/{slug}/extension/HolderPage/?holder={holder}")
    times["Holder (ready)"] = round((time.perf_counter() - t0) * 1000, 1)
    while b'data-ok="running"' in client.get(f"/{slug}/extension/AuditPage/").get_data():
        time.sleep(1)
    out["verify_ready_s"] = round(time.perf_counter() - started["Audit (first answer)"], 1)
    html = client.get(f"/{slug}/extension/AuditPage/").get_data(as_text=True)
    out["verify_ok"] = 'data-ok="true"' in html
    # second requests (caches warm)
    for name in ("balance_sheet (api)", "account Liabilities:Holders:SP (api)", "Supply"):
        t0 = time.perf_counter()
        client.get(f"/{slug}/{pages[name]}")
        times[name + " again"] = round((time.perf_counter() - t0) * 1000, 1)
    out["pages_ms"] = times
    out["response_bytes"] = sizes
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    out["rss_before_mib"] = round(rss0, 1)
    return out


def journal_wrapper(root: Path) -> Path:
    """The flat journal with the extension declared: main.beancount's text plus one line."""
    from ledger_service.ledger_tier import EXTENSION

    text = (root / "main.beancount").read_text(encoding="utf-8")
    first = next(line for line in text.splitlines() if " commodity " in line).split()[0]
    path = root / "fava-journal.beancount"
    path.write_text(text + f'\n{first} custom "fava-extension" "{EXTENSION}"\n', encoding="utf-8")
    return path


def run_measure(path: Path, holder: str, day: str, timeout: float, full: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(path), "--holder", holder, "--day", day]
    if not full:
        cmd.append("--quick")
    log(f"measuring Fava on {path} …")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        log(proc.stderr[-3000:])
        return {"file": str(path), "failed": proc.stderr[-2000:], "wall_s": round(time.perf_counter() - t0, 1)}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(time.perf_counter() - t0, 1)
    log(f"  {json.dumps(result)[:600]}")
    return result


# -- report -------------------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    s, lt = result.get("seed", {}), result["ledger_tier"]
    fl, fj = result["fava"].get("ledger", {}), result["fava"].get("journal", {})
    lines = [
        "## Fava on the ledger tier vs the flat journal (issue 4)",
        "",
        f"`{result['command']}` on {result['machine']['cpu']} ({result['machine']['nproc']} CPUs, "
        f"{result['machine']['ram_gib']} GiB), Python {result['machine']['python']}, {result['started'][:10]}.",
        "",
    ]
    if s:
        lines += [
            f"**Books**: {s['members']:,} members ({s['active_members']:,} active), {s['merchants']:,} stores, "
            f"{s['days']} business days, {s['orders_per_day']:,} orders a day: **{s['events']:,} events** "
            f"({', '.join(f'{k} {v:,}' for k, v in s['events_by_kind'].items())}).",
            "",
            f"**Seeding** through `Engine.submit_many` (commits of {s['batch_events']:,} events, SQLite, "
            f"fsync per commit): {s['seconds']:,.0f} s, **{s['events_per_s']:,.0f} events/s**; closing a day "
            f"(`close_days`) median {s['close_ms_median']:,.0f} ms; extending the ledger after a close "
            f"(`ledger_tier.update`) median **{s['ledger_update_ms_median']:,.0f} ms** (max {s['ledger_update_ms_max']:,.0f} ms); "
            f"peak RSS {s['peak_rss_mib']:,.0f} MiB.",
            "",
        ]
    lines += [
        f"**The two tiers**: journal {lt['journal']['transactions']:,} transactions in {lt['journal']['files']} files, "
        f"{lt['journal']['bytes'] / 2**20:,.1f} MiB; ledger {lt['ledger']['transactions']:,} summary transactions in "
        f"{lt['ledger']['files']} files, {lt['ledger']['bytes'] / 2**20:,.2f} MiB. Rebuilding the ledger from scratch: "
        f"{lt['rebuild_from_scratch_s']:,.1f} s; `ledger_tier.check` (what `verify` adds): {lt['check_s']:,.1f} s, "
        f"{lt['check_faults']} fault(s).",
        "",
    ]
    again = result.get("ledger_tier_remeasured")
    if again:
        lines += [
            f"Re-measured on the same books after the summariser's fast path (transactions summed as parsed, "
            f"no per-entry conversion): extending the ledger by one closed day **{again['one_day_update_s']:,.2f} s** "
            f"(the day file parsed by Beancount), a rebuild of all {lt['journal']['files']} days "
            f"{again['rebuild_all_s']:,.1f} s (same bytes), `check` {again['check_s']:,.1f} s.",
            "",
        ]
    lines += [
        "| Fava (`create_app(load=True)`, one process per tier) | ledger tier | flat journal |",
        "|---|---:|---:|",
    ]

    def row(label, key, fmt="{:,.2f}", scale=1.0):
        a, b = fl.get(key), fj.get(key)
        show = lambda v: "—" if v is None else fmt.format(v * scale)
        lines.append(f"| {label} | {show(a)} | {show(b)} |")

    row("entries loaded", "entries", "{:,.0f}")
    row("first load (FavaLedger: parse, plugins, booking) s", "first_load_s")
    row("reload after a change s", "reload_s")
    row("RSS after load MiB", "rss_after_load_mib", "{:,.0f}")
    for name in (fl.get("pages_ms") or fj.get("pages_ms") or {}):
        a = (fl.get("pages_ms") or {}).get(name)
        b = (fj.get("pages_ms") or {}).get(name)
        show = lambda v: "—" if v is None else f"{v:,.0f}"
        lines.append(f"| {name} ms | {show(a)} | {show(b)} |")
    row("Holder page: background replay ready, from the first request s", "holder_index_ready_s", "{:,.1f}")
    row("Audit page: background verify (+ ledger check) done, from the first request s", "verify_ready_s",
        "{:,.1f}")
    row("peak RSS of the Fava process MiB", "peak_rss_mib", "{:,.0f}")
    acc = "account Liabilities:Holders:SP (api)"
    a, b = (fl.get("response_bytes") or {}).get(acc), (fj.get("response_bytes") or {}).get(acc)
    if a and b:
        lines.append(f"| account page's JSON (`{acc.split(' (')[0]}`) MiB | {a / 2**20:,.1f} | {b / 2**20:,.0f} |")
    lines += [
        "",
        "The balance sheet and account pages are rendered in the browser from the JSON API (`api/…`), whose "
        "time is the server's work; the account page of `Liabilities:Holders:SP` lists every posting of the "
        "account (Fava does not paginate it): one per holder movement in the journal, one per day and kind in "
        "the ledger. The Holder and Audit pages read the journal whichever tier Fava opened (a replay, and "
        "`verify --no-db`, in background threads); their first answer is served at once (\"building…\"), "
        "so their background times are measured once, in the ledger tier's process (\"—\" for the journal; the "
        "replay and the verification run at the same time, in threads of one interpreter), and so is the reload "
        "(Fava reloads a changed file whole: on the flat journal that costs a first load).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=1_000)
    parser.add_argument("--orders-per-day", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--deposit-cny", default="20000")
    parser.add_argument("--injection-cny", default="1000000")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--books", type=Path, default=None, help="keep the books here (default: a temp folder)")
    parser.add_argument("--reuse", action="store_true", help="measure books already at --books (no seeding)")
    parser.add_argument("--skip-journal", action="store_true", help="do not open the flat journal in Fava")
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fava_load.json")
    parser.add_argument("--md", type=Path, default=REPO / "benchmarks/results/fava_load.md")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--holder", default="m0000002", help=argparse.SUPPRESS)
    parser.add_argument("--day", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--journal-full", action="store_true",
                        help="on the flat journal too: time a reload and the background work")
    args = parser.parse_args()

    if args.measure:
        print(json.dumps(measure(args.measure, args.holder, args.day, full=not args.quick)))
        return

    result = {"benchmark": "fava_load", "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()}
    temp = None
    root = args.books
    if root is None:
        temp = Path(tempfile.mkdtemp(prefix="fava-load-"))
        root = temp / "books"
    try:
        if not args.reuse:
            if root.exists():
                raise SystemExit(f"{root} exists: remove it or pass --reuse")
            log(f"seeding {root}: {args.members:,} members, {args.merchants:,} stores, {args.orders_per_day:,} "
                f"orders a day, {args.days} days")
            result["seed"] = Seeder(root, args).run()
            log(f"seeded: {json.dumps(result['seed'])}")
        log("ledger tier: rebuild from scratch and check …")
        result["ledger_tier"] = ledger_figures(root)
        log(f"  {json.dumps(result['ledger_tier'])}")
        day = args.day or (START + timedelta(days=min(args.days - 1, 5))).isoformat()
        result["fava"] = {"ledger": run_measure(root / "ledger" / "main.beancount", args.holder, day, args.timeout)}
        if not args.skip_journal:
            result["fava"]["journal"] = run_measure(journal_wrapper(root), args.holder, day, args.timeout,
                                                    full=args.journal_full)
        result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        args.md.write_text(markdown(result))
        log(f"written {args.out} and {args.md}")
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
