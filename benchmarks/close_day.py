#!/usr/bin/env python3
"""Benchmark: the daily close is O(1) in the number of holders (SPEC §4.6, §6).

For each size N (holders with active SV) this script

1. seeds the books through the engine: `Register` then `BuyPack(activation)` for
   every new holder, in `submit_many` batches (default 10,000 events = 5,000
   holders per commit), all dated on the open business day; the seeding rate
   (events/s) is a side figure;
2. closes that seeding day (timed and reported on its own: the day holds the 2·ΔN
   seeding events and the close counts them for its `days` row);
3. times `Engine.close_days(day)` for `--days` further consecutive days, one call
   per day (each close books one `release` and one `price` entry), and reports the
   min and median in ms;
4. times, in the same run, a NAIVE per-holder release on a snapshot of the same
   database (an SQLite online backup, taken outside the timing, so the books under
   test are never touched): read every holder row, settle it to the current
   indices, compute SV_i and SP_i = SV_i / SV_total × R, render one posting line
   pair per holder into a journal-like file (fsynced), and write every holder row
   back in ONE committed transaction, i.e. what an O(holders) release would cost;
5. records peak RSS (`resource.getrusage`, before and after the naive pass) and the
   sizes of the database and journal.

Sizes are cumulative by default: one set of books is seeded to 10^3 holders and
measured, then topped up to 10^4 and measured, and so on (the seeding of N costs
N − previous N holders). `--fresh` builds new books for every size instead.

    python benchmarks/close_day.py --sizes 1000,10000,100000,1000000 [--days 3] \
        [--out benchmarks/results/close_day.json]

Nothing under ledger_service/ is modified; the books live in a temporary
directory that is removed at the end (keep it with --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import loadgate
from sqlalchemy import bindparam, select, update

from ledger_service import accounts as A
from ledger_service import config, rules
from ledger_service.amounts import SP, SV, ZERO, add, div, floor, fmt, mul, sub
from ledger_service.engine import MAX_EVENTS_PER_COMMIT, Engine
from ledger_service.rules.events import BuyPack, Deposit, Register
from ledger_service.state import Epoch, Holder
from ledger_service.store.db import DB_FILENAME, load_globals, make_engine, sessions
from ledger_service.store.models import EpochRow, HolderRow
from ledger_service.subledger import settle, sv_active

START = date(2026, 1, 1)
# One platform injection into the pool before the first holder, so that the value of
# a point is positive and every release converts SV (the SV index moves each day).
POOL_INJECTION = Decimal("10000.00")


# -- helpers ------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def db_bytes(root: Path) -> int:
    return sum((root / name).stat().st_size for name in (DB_FILENAME, DB_FILENAME + "-wal")
               if (root / name).exists())


def holder_id(i: int) -> str:
    return f"M{i:07d}"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "platform": platform.platform(),
    }


def git_state() -> dict:
    """The package's commit, and whether ledger_service/ differs from it (what was measured)."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ledger_service"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "ledger_service_modified": bool(dirty)}


# -- seeding ------------------------------------------------------------------------


def seed(engine: Engine, first: int, last: int, day: date, batch: int, inject: bool) -> dict:
    """Register and activate holders first..last-1 on `day`, `batch` events per commit."""
    events_total = 0
    t0 = time.perf_counter()
    pending: list = []
    if inject:
        pending.append((Deposit(amount_cny=POOL_INJECTION, platform=True), day))
    next_report = first + max(1, (last - first) // 10)
    for i in range(first, last):
        member = holder_id(i)
        pending.append((Register(member), day))
        pending.append((BuyPack(member, "activation"), day))
        if len(pending) >= batch - 1:
            engine.submit_many(pending)
            events_total += len(pending)
            pending = []
            if i + 1 >= next_report:
                next_report += max(1, (last - first) // 10)
                elapsed = time.perf_counter() - t0
                log(f"  seeded {i + 1 - first:,}/{last - first:,} holders in {elapsed:,.0f} s, "
                    f"{events_total / elapsed:,.0f} events/s, peak RSS {peak_rss_mib():,.0f} MiB")
    if pending:
        engine.submit_many(pending)
        events_total += len(pending)
    seconds = time.perf_counter() - t0
    return {"holders_added": last - first, "events": events_total, "seconds": round(seconds, 3),
            "events_per_s": round(events_total / seconds, 1), "batch_events": batch}


# -- the naive per-holder release -----------------------------------------------------


def snapshot(src_db: Path, dst_db: Path) -> float:
    """An SQLite online backup of the books' database (outside every timing)."""
    t0 = time.perf_counter()
    src = sqlite3.connect(f"file:{src_db}?mode=ro", uri=True)
    dst = sqlite3.connect(dst_db)
    with dst:
        src.backup(dst)
    dst.close()
    src.close()
    return time.perf_counter() - t0


_HOLDER_COLS = ["id", "kind", "created", "referrer", "region", "role", "active", "sv_locked", "shares", "epoch",
                "sp_ckpt", "sp_exact", "last_purchase", "owner", "channel", "rebate_rate", "store_referrer",
                "deposits_cny"]


def naive_release(db_path: Path, params: config.Params, out_file: Path, chunk: int = 10_000) -> dict:
    """Book the release of the open day the O(holders) way, on a copy of the database.

    Every holder row is read, settled to the current indices, gets SP_i = SV_i / SV_total × R
    and gives up SP_i × value SV; one posting pair per holder is rendered and fsynced to
    `out_file`; every holder row is written back; all in one transaction, committed.
    """
    url = f"sqlite:///{db_path}"
    db = make_engine(url)  # the package's SQLite set-up: WAL, synchronous=FULL
    Session = sessions(db)
    table = HolderRow.__table__
    upd = (update(table).where(table.c.id == bindparam("b_id"))
           .values(shares=bindparam("b_shares"), epoch=bindparam("b_epoch"),
                   sp_ckpt=bindparam("b_sp_ckpt"), sp_exact=bindparam("b_sp_exact")))
    t_read = t_compute = t_render = t_update = 0.0
    holders = paid = 0
    sum_sp = ZERO
    t0 = time.perf_counter()
    with Session() as session, session.begin(), open(out_file, "w", encoding="utf-8") as out:
        conn = session.connection()
        g = load_globals(session)
        epochs = {r.number: Epoch(r.number, r.sp_index_end, r.factor) for r in session.scalars(select(EpochRow))}

        class _Epochs:  # what `settle` needs of a State
            def epoch(self, number):
                return epochs[number]

        released_sp, converted_sv = rules.release_amounts(g, params)
        sv_total = -g.balance(A.HOLDERS_SV_ACTIVE)
        value = g.value
        out.write(f'{g.open_day} * "release" "naive per-holder release: {fmt(released_sp)} SP"\n')
        last = ""
        cols = [table.c[c] for c in _HOLDER_COLS]
        while True:
            t = time.perf_counter()
            rows = conn.execute(select(*cols).where(table.c.id > last).order_by(table.c.id).limit(chunk)).all()
            t_read += time.perf_counter() - t
            if not rows:
                break
            last = rows[-1].id
            t = time.perf_counter()
            params_out = []
            lines = []
            for row in rows:
                h = Holder(**row._mapping)
                holders += 1
                settle(h, g, _Epochs())
                if not h.active or h.shares == 0 or sv_total == 0:
                    continue
                sv_i = sv_active(h, g)
                sp_i = div(mul(sv_i, released_sp), sv_total)  # SP_i = SV_i / SV_total × R
                sv_out = mul(sp_i, value)  # gives up SP_i × value SV
                h.sp_exact = add(h.sp_exact, sp_i)
                h.shares = sub(h.shares, div(sv_out, g.sv_index))
                sum_sp += sp_i
                paid += 1
                params_out.append({"b_id": h.id, "b_shares": h.shares, "b_epoch": h.epoch,
                                   "b_sp_ckpt": h.sp_ckpt, "b_sp_exact": h.sp_exact})
                lines.append((h.id, floor(sv_out, SV), floor(sp_i, SP)))
            t_compute += time.perf_counter() - t
            t = time.perf_counter()
            out.write("".join(
                f'  Liabilities:Holders:SV:Active  {fmt(sv)} SV\n    holder: "{hid}"\n'
                f'  Liabilities:Holders:SP  -{fmt(sp)} SP\n    holder: "{hid}"\n'
                for hid, sv, sp in lines))
            t_render += time.perf_counter() - t
            t = time.perf_counter()
            if params_out:
                conn.execute(upd, params_out)
            t_update += time.perf_counter() - t
        t = time.perf_counter()
        out.write(f"  Equity:SV:Converted  -{fmt(converted_sv)} SV\n  Equity:SP:Released  {fmt(released_sp)} SP\n\n")
        out.flush()
        os.fsync(out.fileno())
        t_render += time.perf_counter() - t
        t_commit0 = time.perf_counter()
    # leaving `session.begin()` commits
    t_commit = time.perf_counter() - t_commit0
    total = time.perf_counter() - t0
    db.dispose()
    return {
        "ms": round(total * 1000, 1), "holders": holders, "holders_paid": paid,
        "read_ms": round(t_read * 1000, 1), "compute_ms": round(t_compute * 1000, 1),
        "render_write_fsync_ms": round(t_render * 1000, 1), "update_ms": round(t_update * 1000, 1),
        "commit_ms": round(t_commit * 1000, 1),
        "released_sp": fmt(released_sp), "sum_sp_i": fmt(sum_sp),
        "posting_lines": 4 * paid, "journal_bytes": out_file.stat().st_size,
    }


# -- one size -------------------------------------------------------------------------


def measure(engine: Engine, root: Path, params: config.Params, size: int, have: int, days: int,
            batch: int, skip_naive: bool, scratch: Path) -> dict:
    day = engine.head()["open_day"]
    seed_day = date.fromisoformat(day)
    log(f"N={size:,}: seeding {size - have:,} holders on {seed_day}")
    seeded = seed(engine, have, size, seed_day, batch, inject=(have == 0))
    log(f"N={size:,}: seeded in {seeded['seconds']:.1f} s ({seeded['events_per_s']:,.0f} events/s)")

    t = time.perf_counter()
    booked = engine.close_days(seed_day)
    seed_day_close = (time.perf_counter() - t) * 1000
    assert [b.kind for b in booked] == ["release", "price"], [b.kind for b in booked]

    closes, cpu = [], []
    for k in range(1, days + 1):
        d = seed_day + timedelta(days=k)
        t, c = time.perf_counter(), time.process_time()
        booked = engine.close_days(d)
        closes.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        assert [b.kind for b in booked] == ["release", "price"], [b.kind for b in booked]
        release = booked[0].entry
    log(f"N={size:,}: closes {', '.join(f'{c:.1f}' for c in closes)} ms (seed-day close {seed_day_close:.1f} ms)")
    rss_engine = peak_rss_mib()
    last_day_file = root / booked[0].file

    result = {
        "size": size,
        "loadavg_1m": round(os.getloadavg()[0], 2),  # other work on the machine during the closes
        "seed": seeded,
        "seed_day_close_ms": round(seed_day_close, 2),
        "seed_day_events": 2 * (size - have) + (1 if have == 0 else 0),
        "close_ms": [round(c, 2) for c in closes],
        "close_ms_min": round(min(closes), 2),
        "close_ms_median": round(statistics.median(closes), 2),
        "close_cpu_ms": [round(c, 2) for c in cpu],  # CPU time of this process (the rest is IO/CPU wait)
        "close_cpu_ms_median": round(statistics.median(cpu), 2),
        "last_release": {k: release.get(k) for k in ("value", "sv_total", "released_sp", "converted_sv",
                                                     "sv_index", "sp_index")},
        "peak_rss_mib_engine": round(rss_engine, 1),
        "db_bytes": db_bytes(root),
        "journal_bytes": tree_bytes(root / "journal"),
        "closed_day_file_bytes": last_day_file.stat().st_size,
    }

    if not skip_naive:
        copy = scratch / "naive.sqlite"
        for p in scratch.glob("naive*"):
            p.unlink()
        snap_s = snapshot(root / DB_FILENAME, copy)
        log(f"N={size:,}: naive pass on a snapshot ({snap_s:.1f} s to copy)")
        naive = naive_release(copy, params, scratch / "naive-release.beancount")
        naive["snapshot_s"] = round(snap_s, 2)
        result["naive"] = naive
        log(f"N={size:,}: naive per-holder release {naive['ms']:.0f} ms")
        for p in scratch.glob("naive*"):
            p.unlink()
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return result


def interleaved(big: Engine, control: Engine, rounds: int) -> dict:
    """Alternate closes on the largest books and on small control books, so that both see
    the same machine load (other processes on a shared machine make wall times drift)."""
    out = {"big_ms": [], "control_ms": [], "big_cpu_ms": [], "control_cpu_ms": []}
    for _ in range(rounds):
        for name, engine in (("control", control), ("big", big)):
            d = date.fromisoformat(engine.head()["open_day"])
            t, c = time.perf_counter(), time.process_time()
            booked = engine.close_days(d)
            out[f"{name}_ms"].append(round((time.perf_counter() - t) * 1000, 2))
            out[f"{name}_cpu_ms"].append(round((time.process_time() - c) * 1000, 2))
            assert [b.kind for b in booked] == ["release", "price"]
    for key in list(out):
        out[key + "_median"] = round(statistics.median(out[key]), 2)
        out[key + "_min"] = round(min(out[key]), 2)
    out["ratio_median"] = round(out["big_ms_median"] / out["control_ms_median"], 2)
    out["ratio_min"] = round(out["big_ms_min"] / out["control_ms_min"], 2)
    return out


# -- output ----------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    head = ("| holders | close ms median | close ms min | close CPU ms median | seed-day close ms "
            "| naive per-holder ms | naive / close | seeding events/s | peak RSS MiB (engine / +naive) "
            "| DB MiB | journal MiB | load 1m |")
    lines = [head, "|" + "|".join(["---:"] * (head.count("|") - 1)) + "|"]
    for r in results:
        naive = r.get("naive", {}).get("ms")
        ratio = f"{naive / r['close_ms_median']:,.0f}×" if naive else "—"
        lines.append(
            f"| {r['size']:,} | {r['close_ms_median']:.1f} | {r['close_ms_min']:.1f} | {r['close_cpu_ms_median']:.1f} "
            f"| {r['seed_day_close_ms']:.1f} "
            f"| {f'{naive:,.0f}' if naive else '—'} | {ratio} | {r['seed']['events_per_s']:,.0f} "
            f"| {r['peak_rss_mib_engine']:.0f} / {r['peak_rss_mib']:.0f} | {r['db_bytes'] / 2**20:,.1f} "
            f"| {r['journal_bytes'] / 2**20:,.1f} | {r['loadavg_1m']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="holder counts, ascending, comma-separated")
    ap.add_argument("--days", type=int, default=3, help="timed closes per size (after the seeding day's close)")
    ap.add_argument("--out", default="benchmarks/results/close_day.json")
    ap.add_argument("--batch", type=int, default=MAX_EVENTS_PER_COMMIT, help="events per submit_many commit")
    ap.add_argument("--profile", default="seed-a")
    ap.add_argument("--fresh", action="store_true", help="new books for every size (default: cumulative top-ups)")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive per-holder baseline")
    ap.add_argument("--workdir", default=None, help="where the temporary books go (default: $TMPDIR)")
    ap.add_argument("--control", type=int, default=1000,
                    help="after the largest size, close days alternately on it and on fresh books of this many "
                         "holders (same machine load for both); 0 to skip")
    ap.add_argument("--keep", action="store_true", help="keep the books after the run")
    loadgate.add_arguments(ap)
    args = ap.parse_args(argv)

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    assert sizes == sorted(sizes) and sizes[0] > 0, "sizes must be ascending"
    assert args.days >= 1 and 2 < args.batch <= MAX_EVENTS_PER_COMMIT
    params = config.load(args.profile)
    # Every size uses 1 + days business days; the clock stands well after all of them.
    today = START + timedelta(days=max(30, (len(sizes) + 1) * (args.days + 1) + 2))
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="close_day_", dir=args.workdir))
    doc = {
        "benchmark": "close_day", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), "git": git_state(),
        "mode": "fresh" if args.fresh else "cumulative", "profile": args.profile, "days": args.days,
        "batch_events": args.batch, "database": "sqlite (default, WAL, synchronous=FULL)",
        "start": START.isoformat(), "today": today.isoformat(), "results": [],
    }
    log(f"books under {work}; clock today = {today}")
    gate = loadgate.Gate.from_args(args).start()
    partial = out_path.with_name(out_path.stem + ".partial.json")  # after every size; the result file only at the end
    t_all = time.perf_counter()
    try:
        engine = None
        have = 0
        for n, size in enumerate(sizes):
            if engine is None or args.fresh:
                if engine is not None:
                    engine.dispose()
                root = work / f"books-{size}"
                engine = Engine.init(root, params, start=START, clock=lambda: today)
                have = 0
            scratch = work / "scratch"
            scratch.mkdir(exist_ok=True)
            result = measure(engine, root, params, size, have, args.days, args.batch, args.no_naive, scratch)
            have = size
            doc["results"].append(result)
            doc["elapsed_s"] = round(time.perf_counter() - t_all, 1)
            partial.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        if args.control and args.control < sizes[-1]:
            log(f"control: fresh books of {args.control:,} holders, closes alternating with the {sizes[-1]:,} books")
            control = Engine.init(work / "control", params, start=START, clock=lambda: today)
            seed(control, 0, args.control, START, args.batch, inject=True)
            control.close_days(START)
            res = interleaved(engine, control, args.days)
            res.update({"control_size": args.control, "big_size": sizes[-1],
                        "loadavg_1m": round(os.getloadavg()[0], 2)})
            doc["interleaved"] = res
            log(f"interleaved: {sizes[-1]:,} holders {res['big_ms']} ms; {args.control:,} holders {res['control_ms']} ms")
            control.dispose()
        engine.dispose()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"books kept under {work}")
    doc["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    partial.unlink(missing_ok=True)
    published = gate.allow(doc)
    if published:
        out_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(table(doc["results"]))
    if "interleaved" in doc:
        r = doc["interleaved"]
        print(f"\ninterleaved closes, {r['big_size']:,} vs {r['control_size']:,} holders: median {r['big_ms_median']:.1f} vs "
              f"{r['control_ms_median']:.1f} ms (ratio {r['ratio_median']:.2f}), min {r['big_ms_min']:.1f} vs "
              f"{r['control_ms_min']:.1f} ms (ratio {r['ratio_min']:.2f})")
    print(f"\n{doc['mode']} books, {args.days} timed closes per size, total {doc['elapsed_s']:.0f} s; "
          f"JSON: {out_path if published else 'not written (busy machine)'}")
    return 0 if published else 3


if __name__ == "__main__":
    sys.exit(main())
