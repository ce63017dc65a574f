#!/usr/bin/env python3
"""Benchmark: the whole close of a day that touches 10⁴ holders, in books of 11,000 vs 10⁶ holders
(issue 12 §3 and its "Done when": close time with the trees at 10³ vs 10⁶ holders, 10⁴ touched).

`liabilities_close.py` times the liabilities tree alone, on synthetic trees. This script times
what a finance team waits for: `Engine.close_days(day)` on real books, booked through the engine,
with every view the close extends (event log, holder index, ledger tier, liabilities tree) and
the signed checkpoint it books.

For each size N of `--sizes` (default 11,000 = 10³ + the 10⁴ a day touches, and 10⁶):

1. Seeding, not timed: `Engine.init` (signing from genesis), one platform deposit, then N
   holders, each a `Register`, every 10th also a `BuyPack(activation)` (so that a tenth hold
   shares and the tree's sums are the books' shape), `--per-day` events per business day at
   most (default 200,000: a business day is folded in memory by the views, README "How big a
   business day can be"), each day closed with `close_days` as it ends.
2. `--runs` measured days per size, the sizes alternating (A B, B A, …) so both see the same
   machine: each day books, not timed, `--touched` events touching one holder each (default
   10⁴: a tenth `Register` of new holders, appended to the tree, and nine tenths `Grant` of
   10 SV, reason "task", to distinct existing holders drawn at random, seed `--seed`), in
   commits of 10,000; then `Engine.close_days(day)` is timed: wall and this process's CPU
   time, split into the booking (release, price: `_catch_up`), the views' update
   (`views.on_days_closed`: per view, its `add` of the day and its `finish`; inside the
   liabilities view, `Tree.set_leaves` and `Tree.flush`) and the signed checkpoint
   (`book_checkpoints`).

Figures: per size the median over the runs of each part; the ratio of the largest size to the
first, of the medians and per run (the runs are paired: run i of each size ran back to back).
Publication follows `benchmarks/loadgate.py` (exit 3 and nothing written on a busy machine,
unless `--force`). `--quick`: 3,000 vs 100,000 holders, 2,000 touched, 2 runs, written to
`results/close_touched_quick.*`.

    python benchmarks/close_touched.py --out benchmarks/results/close_touched.json \\
        --md benchmarks/results/close_touched.md
    python benchmarks/close_touched.py --quick --force      # a check that it works, a few minutes
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import loadgate
from close_day import POOL_INJECTION, START, git_state, log, machine, peak_rss_mib

from ledger_service import config, views
from ledger_service.engine import MAX_EVENTS_PER_COMMIT, Engine
from ledger_service.rules.events import BuyPack, Deposit, Grant, Register
from ledger_service.views import liabilities

GRANT_SV = Decimal("10")


def holder_id(i: int) -> str:
    return f"M{i:07d}"


class Timer:
    """Seconds (wall, CPU) summed per name while the patched functions run."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    def reset(self) -> None:
        self.wall.clear()
        self.cpu.clear()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[name] += time.perf_counter() - w
                self.cpu[name] += time.process_time() - c
        return timed


TIMER = Timer()


class TimedUpdate:
    """A view's `Update`, its `add` and `finish` timed under the view's name."""

    def __init__(self, name: str, inner: Any) -> None:
        self.name, self.inner = name, inner

    def wants(self, day: Any) -> bool:
        return self.inner.wants(day)

    def add(self, day: Any) -> None:
        TIMER.wrap(f"view {self.name}: add", self.inner.add)(day)

    def finish(self, days: Any) -> list[str]:
        return TIMER.wrap(f"view {self.name}: finish", self.inner.finish)(days)

    def close(self) -> None:
        self.inner.close()


def instrument() -> None:
    """Time each view's update and the liabilities tree's two steps (module attributes patched)."""
    for view in views.VIEWS:
        name = view.__name__.rsplit(".", 1)[-1]
        original = view.updater

        def updater(root: Any, rebuild: bool = False, _original: Any = original, _name: str = name) -> Any:
            return TimedUpdate(_name, _original(root, rebuild=rebuild))
        view.updater = updater
    liabilities.Tree.set_leaves = TIMER.wrap("liabilities Tree.set_leaves", liabilities.Tree.set_leaves)
    liabilities.Tree.flush = TIMER.wrap("liabilities Tree.flush", liabilities.Tree.flush)


def submit(engine: Engine, events: list[tuple[Any, date]]) -> None:
    for start in range(0, len(events), MAX_EVENTS_PER_COMMIT):
        engine.submit_many(events[start:start + MAX_EVENTS_PER_COMMIT])


class Books:
    """One set of books of the benchmark: its engine, its next holder number, its open day."""

    def __init__(self, root: Path, params: config.Params, today: date) -> None:
        self.root = root
        self.engine = Engine.init(root, params, start=START, clock=lambda: today)
        self.holders = 0
        self.day = START

    def seed(self, size: int, per_day: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        events, days, closes = 0, 0, []
        pending: list[tuple[Any, date]] = [(Deposit(amount_cny=POOL_INJECTION, platform=True), self.day)]
        while self.holders < size:
            member = holder_id(self.holders)
            pending.append((Register(member), self.day))
            if self.holders % 10 == 0:
                pending.append((BuyPack(member, "activation"), self.day))
            self.holders += 1
            if len(pending) >= per_day - 1 or self.holders == size:
                submit(self.engine, pending)
                events += len(pending)
                t = time.perf_counter()
                self.engine.close_days(self.day)
                closes.append(time.perf_counter() - t)
                days += 1
                log(f"  {self.root.name}: {self.holders:,}/{size:,} holders, day {self.day} "
                    f"({len(pending):,} events) closed in {closes[-1]:.1f} s; peak RSS {peak_rss_mib():,.0f} MiB")
                pending = []
                self.day += timedelta(days=1)
        seconds = time.perf_counter() - t0
        return {"holders": size, "events": events, "days": days, "seconds": round(seconds, 1),
                "close_seconds": [round(c, 1) for c in closes]}

    def touch(self, touched: int, rng: random.Random) -> None:
        """Book the open day's events: touched/10 new holders, the rest grants to distinct existing ones."""
        new = touched // 10
        existing = rng.sample(range(self.holders), touched - new)
        events: list[tuple[Any, date]] = [(Grant(holder_id(i), GRANT_SV, "task"), self.day) for i in existing]
        for _ in range(new):
            events.append((Register(holder_id(self.holders)), self.day))
            self.holders += 1
        rng.shuffle(events)
        submit(self.engine, events)

    def close(self) -> dict[str, Any]:
        """`close_days` of the open day, timed; its parts from the patched functions."""
        engine = self.engine
        TIMER.reset()
        views_hook = engine.on_days_closed
        checkpoints = engine.book_checkpoints
        engine.on_days_closed = TIMER.wrap("views (on_days_closed)", views_hook)
        engine.book_checkpoints = TIMER.wrap("signed checkpoint (book_checkpoints)", checkpoints)
        try:
            w, c = time.perf_counter(), time.process_time()
            booked = engine.close_days(self.day)
            wall, cpu = time.perf_counter() - w, time.process_time() - c
        finally:
            engine.on_days_closed, engine.book_checkpoints = views_hook, checkpoints
        kinds = [b.kind for b in booked]
        assert kinds[:2] == ["release", "price"], kinds
        assert TIMER.wall["signed checkpoint (book_checkpoints)"] > 0, "no signed checkpoint step"
        parts = {"total": wall, **TIMER.wall}
        parts["booking (release, price)"] = wall - TIMER.wall["views (on_days_closed)"] - TIMER.wall[
            "signed checkpoint (book_checkpoints)"]
        self.day += timedelta(days=1)
        return {"day": (self.day - timedelta(days=1)).isoformat(), "holders": self.holders,
                "wall_ms": {k: round(v * 1000, 1) for k, v in parts.items()},
                "cpu_ms": {"total": round(cpu * 1000, 1), **{k: round(v * 1000, 1) for k, v in TIMER.cpu.items()}}}


def summarize(sizes: list[int], runs: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    first, last = sizes[0], sizes[-1]
    out: dict[str, Any] = {"median_wall_ms": {}, "median_cpu_ms": {}}
    for size in sizes:
        names = runs[size][0]["wall_ms"].keys()
        out["median_wall_ms"][str(size)] = {n: round(statistics.median(r["wall_ms"][n] for r in runs[size]), 1)
                                            for n in names}
        out["median_cpu_ms"][str(size)] = {n: round(statistics.median(r["cpu_ms"].get(n, 0.0) for r in runs[size]), 1)
                                           for n in runs[size][0]["cpu_ms"]}
    a, b = out["median_wall_ms"][str(first)], out["median_wall_ms"][str(last)]
    out["ratio_of_medians"] = {n: round(b[n] / a[n], 2) for n in a if a[n] > 0}
    out["ratio_per_run"] = [round(rb["wall_ms"]["total"] / ra["wall_ms"]["total"], 2)
                            for ra, rb in zip(runs[first], runs[last], strict=True)]
    return out


def markdown(doc: dict[str, Any]) -> str:
    sizes, s = doc["sizes"], doc["summary"]
    first, last = str(sizes[0]), str(sizes[-1])
    head = (f"| close of one day, {doc['touched']:,} holders touched, median ms | {int(first):,} holders "
            f"| {int(last):,} holders | {int(last):,} / {int(first):,} |")
    lines = [head, "|---|---:|---:|---:|"]
    a, b = s["median_wall_ms"][first], s["median_wall_ms"][last]
    for name in a:
        label = f"**{name}** (runs)" if name == "total" else name
        runs_a = ", ".join(f"{r['wall_ms']['total']:,.0f}" for r in doc["runs"][first]) if name == "total" else ""
        runs_b = ", ".join(f"{r['wall_ms']['total']:,.0f}" for r in doc["runs"][last]) if name == "total" else ""
        ratio = s["ratio_of_medians"].get(name)
        ratio_text = f"{ratio:.2f}" if ratio is not None else "—"
        if name == "total":
            per_run = ", ".join(f"{x:.2f}" for x in s["ratio_per_run"])
            lines.append(f"| {label} | **{a[name]:,.1f}** ({runs_a}) | **{b[name]:,.1f}** ({runs_b}) "
                         f"| **{ratio_text}** (per run {per_run}) |")
        else:
            lines.append(f"| {label} | {a[name]:,.1f} | {b[name]:,.1f} | {ratio_text} |")
    ca, cb = s["median_cpu_ms"][first]["total"], s["median_cpu_ms"][last]["total"]
    lines.append(f"| CPU time of the process, total | {ca:,.1f} | {cb:,.1f} | {cb / ca:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="11000,1000000", help="holders of each set of books, ascending")
    ap.add_argument("--touched", type=int, default=10_000, help="holders each measured day touches")
    ap.add_argument("--runs", type=int, default=3, help="measured days per size")
    ap.add_argument("--per-day", type=int, default=200_000, help="seeding events per business day at most")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--profile", default="seed-a")
    ap.add_argument("--quick", action="store_true", help="3,000 vs 100,000 holders, 2,000 touched, 2 runs")
    ap.add_argument("--out", default=None)
    ap.add_argument("--md", default=None)
    ap.add_argument("--workdir", default=None, help="where the temporary books go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the books after the run")
    loadgate.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.touched, args.runs = "3000,100000", 2_000, 2
        args.out = args.out or "benchmarks/results/close_touched_quick.json"
        args.md = args.md or "benchmarks/results/close_touched_quick.md"
    args.out = args.out or "benchmarks/results/close_touched.json"
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    assert sizes == sorted(sizes) and len(sizes) >= 2 and sizes[0] >= args.touched - args.touched // 10, sizes
    assert 1 <= args.runs <= 20 and 2 < args.per_day <= 1_000_000
    params = config.load(args.profile)
    seeding_days = max(s * 1.1 / (args.per_day - 1) + 1 for s in sizes)
    today = START + timedelta(days=int(seeding_days) + args.runs + 10)
    rng = random.Random(args.seed)
    instrument()
    work = Path(tempfile.mkdtemp(prefix="close_touched_", dir=args.workdir))
    doc: dict[str, Any] = {
        "benchmark": "close_touched", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
        "git": git_state(), "sizes": sizes, "touched": args.touched, "runs_per_size": args.runs,
        "per_day": args.per_day, "profile": args.profile, "database": "sqlite (the embedded default)",
    }
    log(f"books under {work}; clock today = {today}")
    t_all = time.perf_counter()
    books: dict[int, Books] = {}
    try:
        doc["seeding"] = {}
        for size in sizes:  # seeding is not measured: it runs before the gate starts
            log(f"seeding {size:,} holders")
            books[size] = Books(work / f"books-{size}", params, today)
            doc["seeding"][str(size)] = books[size].seed(size, args.per_day)
        gate = loadgate.Gate.from_args(args).start()
        runs: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
        for r in range(args.runs):
            for size in (sizes if r % 2 == 0 else list(reversed(sizes))):
                books[size].touch(args.touched, rng)
                result = books[size].close()
                runs[size].append(result)
                wall = result["wall_ms"]
                tree_ms = wall.get("liabilities Tree.set_leaves", 0) + wall.get("liabilities Tree.flush", 0)
                log(f"run {r + 1}, {size:,} holders: close {wall['total']:,.0f} ms "
                    f"(views {wall['views (on_days_closed)']:,.0f}, liabilities tree {tree_ms:,.0f})")
        for b in books.values():
            b.engine.dispose()
    finally:
        if args.keep:
            log(f"books kept under {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    doc["runs"] = {str(size): runs[size] for size in sizes}
    doc["summary"] = summarize(sizes, runs)
    doc["elapsed_s"] = round(time.perf_counter() - t_all, 1)
    doc["peak_rss_mib"] = round(peak_rss_mib(), 1)
    doc["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    text = markdown(doc)
    published = gate.allow(doc)
    print(text)
    if published:
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        if args.md:
            Path(args.md).write_text(text + "\n", encoding="utf-8")
    print(f"\ntotal {doc['elapsed_s']:.0f} s; JSON: {args.out if published else 'not written (busy machine)'}")
    return 0 if published else 3


if __name__ == "__main__":
    sys.exit(main())
