"""One inclusion proof end to end, its entry read back from a real day file of 50,000 entries.

`benchmarks/proofs.py` times the Merkle path (O(log n) node reads); this times what a proof
request costs on top: reading the proven entry back from its day's journal file, which
`event_log.Log._entry` did by parsing the whole file with Beancount's parser, and now does by
reading that entry's own lines at the line the event log recorded (`leaf_lines`, through
`journal.EntryReader`), falling back to the whole file when no line is recorded.

It writes books holding one closed day: a synthetic but valid day file of `--entries` chained
entries (the day's price, then registrations, packs and orders shaped like the demo's,
rendered with `ledger_service.entries.render` and chained with `entry_hash`, then the day's
release), then runs the event log's own update on it (`event_log.updater`, as the close hook
does). Then, on the same file:

- after: `event_log.inclusion_proof(books, id)` (the function the API and `ledger-service
  prove event` call: open the log, the checkpoint, the line, the entry read, the hash checks,
  the path), for `--samples` events (the first, the last, random ones), `--runs` times;
- before: the same calls on a copy of the books whose `leaf_lines` is emptied (an event log
  written before the table existed), so `_entry` parses the whole day file as it used to:
  `--before-samples` events, `--before-runs` times (each call takes seconds);
- the parts of the line read: `EntryReader`'s scan of the file's line starts and the parse of
  the entry's lines.

Every proof is checked with `ledger_service.merkle` before its time counts. Figures: the
median of the runs' medians. Output: JSON (`--out`) and a short markdown table on stdout.

    python benchmarks/proof_entry_read.py --out benchmarks/results/proof_entry_read.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger_service import merkle
from ledger_service.entries import Entry, Posting, Price, Transaction, entry_hash, render, with_meta
from ledger_service.journal import DayFile, EntryReader, day_file
from ledger_service.views import event_log

REPO = Path(__file__).resolve().parent.parent
DAY = date(2026, 3, 2)
ZEROS = "0" * 64


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def q4(x: float) -> Decimal:
    return Decimal(f"{x:.4f}")


def event(seq: int) -> Transaction:
    """A day's event of seq `seq`, shaped like the demo's: registrations, packs and orders (2:1:2)."""
    member, store = f"m{seq * 7919 % 10_000_000:07d}", f"s{seq % 5000:05d}"
    ref = f"m{seq * 104729 % 10_000_000:07d}"
    kind = ("register", "buy_pack", "order", "register", "order")[seq % 5]
    head = [("event", f"E{seq:09d}"), ("kind", kind), ("seq", str(seq))]
    if kind == "register":
        return Transaction(DAY, "register", f"register {member}",
                           (*head, ("member", member), ("region", "310100"), ("postings", "2")),
                           (Posting("Liabilities:Holders:SV:Locked", Decimal("-300.0000"), "SV",
                                    (("holder", member), ("leg", "registration"))),
                            Posting("Equity:SV:Granted", Decimal("300.0000"), "SV")))
    if kind == "buy_pack":
        return Transaction(DAY, "buy_pack", f"activation pack for {member}",
                           (*head, ("member", member), ("pack", "activation"), ("amount_cny", "399.00"),
                            ("postings", "3")),
                           (Posting("Assets:Pool:Backing", Decimal("399.00"), "CNY"),
                            Posting("Liabilities:Holders:SV:Active", Decimal("-399.0000"), "SV",
                                    (("holder", member), ("leg", "pack"))),
                            Posting("Equity:Pool:Contributions", Decimal("-399.00"), "CNY")))
    amount = (seq % 90_000) / 100 + 10
    deduct, partner = q4(amount / 11.5), q4(amount / 143)
    burn = deduct - partner
    buyer, merchant, referrer = q4(amount * 1.5), q4(amount * 0.3), q4(amount * 0.6)
    return Transaction(DAY, "order", f"order o{seq:08d}: {amount:.2f} CNY at {store}",
                       (*head, ("order_id", f"o{seq:08d}"), ("buyer", member), ("merchant", store),
                        ("amount_cny", f"{amount:.2f}"), ("ship_region", "330100"), ("channel", "online"),
                        ("value", "1.72439040"), ("rebate_cny", f"{amount * 0.15:.2f}"),
                        ("deducted_sp", str(deduct)), ("postings", "7")),
                       (Posting("Liabilities:Holders:SP", deduct, "SP", (("holder", store), ("leg", "deduct"))),
                        Posting("Liabilities:Holders:SP", -partner, "SP",
                                (("holder", ref), ("leg", "partner"), ("region", "330100"))),
                        Posting("Equity:SP:Burned", -burn, "SP", (("leg", "burn"), ("merchant", store))),
                        Posting("Liabilities:Holders:SV:Active", -buyer, "SV", (("holder", member), ("leg", "buyer"))),
                        Posting("Liabilities:Holders:SV:Active", -merchant, "SV",
                                (("holder", store), ("leg", "merchant"))),
                        Posting("Liabilities:Holders:SV:Active", -referrer, "SV",
                                (("holder", ref), ("leg", "referrer"))),
                        Posting("Equity:SV:Granted", buyer + merchant + referrer, "SV")))


def release(seq: int) -> Transaction:
    return Transaction(DAY, "release", f"daily release of {DAY}: 500.0000 SP",
                       (("event", f"E{seq:09d}"), ("kind", "release"), ("seq", str(seq)), ("value", "1.72439040"),
                        ("released_sp", "500.0000"), ("converted_sv", "862.1952"), ("postings", "4")),
                       (Posting("Liabilities:Holders:SV:Active", Decimal("862.1952"), "SV"),
                        Posting("Equity:SV:Converted", Decimal("-862.1952"), "SV"),
                        Posting("Equity:SP:Released", Decimal("500.0000"), "SP"),
                        Posting("Liabilities:Holders:SP", Decimal("-500.0000"), "SP")))


def write_day(root: Path, entries: int) -> Path:
    """The day file of `entries` chained entries (price, events, release); its path."""
    path = root / day_file(DAY)
    path.parent.mkdir(parents=True, exist_ok=True)
    prev = ZEROS
    with open(path, "w", encoding="utf-8") as out:
        for seq in range(1, entries + 1):
            bare: Entry
            if seq == 1:
                bare = Price(DAY, Decimal("1.72439040"), (("kind", "price"), ("seq", "1")))
            elif seq == entries:
                bare = release(seq)
            else:
                bare = event(seq)
            digest = entry_hash(bare, prev)
            out.write(render(with_meta(bare, [("prev", prev), ("hash", digest)])))
            prev = digest
    return path


def check(proof: dict) -> None:
    digest = bytes.fromhex(proof["entry_hash"])
    cp = proof["checkpoint"]
    assert hashlib.sha256(proof["canonical"].encode("utf-8")).digest() == digest
    assert merkle.verify_inclusion(merkle.leaf_hash(digest), proof["leaf_index"], cp["log_size"],
                                   [bytes.fromhex(p) for p in proof["path"]], bytes.fromhex(cp["log_root"]))


def ids(seqs: list[int]) -> list[str]:
    return [f"P{s:09d}" if s == 1 else f"E{s:09d}" for s in seqs]


def time_proofs(root: Path, event_ids: list[str], runs: int) -> dict[str, Any]:
    per_run = []
    everything = []
    for _ in range(runs):
        times = []
        for event_id in event_ids:
            started = time.perf_counter()
            proof = event_log.inclusion_proof(root, event_id)
            times.append(time.perf_counter() - started)
            check(proof)
        per_run.append(statistics.median(times))
        everything += times
    return {"median_ms": round(statistics.median(per_run) * 1e3, 2), "run_medians_ms": [round(x * 1e3, 2)
                                                                                       for x in per_run],
            "min_ms": round(min(everything) * 1e3, 2), "max_ms": round(max(everything) * 1e3, 2),
            "calls": len(everything)}


def median_ms(fn, runs: int) -> float:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return round(statistics.median(out) * 1e3, 2)


def git_state() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ledger_service", "benchmarks"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "uncommitted_work": bool(dirty)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=50_000, help="entries in the day file")
    parser.add_argument("--samples", type=int, default=30, help="events proven per run (after)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before-samples", type=int, default=5, help="events proven per run (before)")
    parser.add_argument("--before-runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "proof_entry_read.json")
    args = parser.parse_args(argv)
    if args.entries < 3:
        parser.error("--entries: at least 3 (a price, an event, the release)")
    rng = random.Random(args.seed)
    report: dict[str, Any] = {"script": "benchmarks/proof_entry_read.py", "argv": sys.argv[1:],
                              "started": datetime.now().isoformat(timespec="seconds"), "git": git_state(),
                              "nproc": os.cpu_count(), "python": sys.version.split()[0],
                              "loadavg_start": os.getloadavg(), "entries": args.entries}
    work = Path(tempfile.mkdtemp(prefix="proof-entry-bench-"))
    try:
        root, old = work / "books", work / "books-without-lines"
        log(f"writing a day file of {args.entries:,} entries")
        started = time.perf_counter()
        path = write_day(root, args.entries)
        report["write_day_s"] = round(time.perf_counter() - started, 1)
        report["day_file_bytes"] = path.stat().st_size
        with open(path, "rb") as file:
            report["day_file_lines"] = sum(1 for _ in file)
        log(f"{path.stat().st_size / 1e6:.1f} MB; the event log's update (the close hook's)")
        started = time.perf_counter()
        update = event_log.updater(root)
        try:
            day = DayFile(path, day_file(DAY), DAY)
            assert day.read_closed()
            update.add(day)
            update.finish([day])
        finally:
            update.close()
        report["update_s"] = round(time.perf_counter() - started, 1)
        shutil.copytree(root, old)
        with sqlite3.connect(event_log.log_path(old)) as c:
            c.execute("delete from leaf_lines")
        # the disk leaf_lines takes: both logs checkpointed and vacuumed, one without its rows
        sizes = []
        for books in (root, old):
            c = sqlite3.connect(event_log.log_path(books))
            c.execute("vacuum")
            c.execute("pragma wal_checkpoint(truncate)")
            c.close()
            sizes.append(event_log.log_path(books).stat().st_size)
        report["log_bytes"], report["log_bytes_without_lines"] = sizes
        report["leaf_lines_bytes_per_entry"] = round((sizes[0] - sizes[1]) / args.entries, 1)
        with sqlite3.connect(event_log.log_path(root)) as c:
            assert c.execute("select count(*) from leaf_lines").fetchone()[0] == args.entries
            line_of = dict(c.execute("select seq, line from leaf_lines").fetchall())

        n = args.entries
        after = sorted({1, n, n // 2, *rng.sample(range(1, n + 1), min(args.samples, n) - 3)})
        before = sorted({1, n, n // 2, *rng.sample(range(1, n + 1), max(args.before_samples - 3, 0))})
        log(f"after: {len(after)} proofs x {args.runs} runs (line read)")
        report["after"] = time_proofs(root, ids(after), args.runs)
        log(f"before: {len(before)} proofs x {args.before_runs} runs (whole-file parse)")
        report["before"] = time_proofs(old, ids(before), args.before_runs)
        mid = n // 2
        report["parts_ms"] = {
            "line_starts_scan": median_ms(lambda: EntryReader()._line_starts(str(path)), args.runs),
            "entry_read_fresh_reader": median_ms(lambda: EntryReader().entry(str(path), line_of[mid]), args.runs),
            "open_log": median_ms(lambda: event_log.Log(root).close(), args.runs),
        }
        report["speedup"] = round(report["before"]["median_ms"] / report["after"]["median_ms"], 1)
        report["loadavg_end"] = os.getloadavg()
        report["peak_rss_mib"] = round(__import__("resource").getrusage(
            __import__("resource").RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    b, a, p = report["before"], report["after"], report["parts_ms"]
    print(f"day file: {report['entries']:,} entries, {report['day_file_bytes']:,} bytes, "
          f"{report['day_file_lines']:,} lines\n")
    print("| one inclusion proof, end to end | median ms (runs' medians) | min–max ms | calls |")
    print("|---|---:|---:|---:|")
    print(f"| before: the whole day file parsed | {b['median_ms']:,.1f} ({', '.join(map(str, b['run_medians_ms']))})"
          f" | {b['min_ms']:,.1f}–{b['max_ms']:,.1f} | {b['calls']} |")
    print(f"| after: the entry's lines read | {a['median_ms']:,.1f} ({', '.join(map(str, a['run_medians_ms']))})"
          f" | {a['min_ms']:,.1f}–{a['max_ms']:,.1f} | {a['calls']} |")
    print(f"\nspeedup {report['speedup']}x; of the line read: line-starts scan {p['line_starts_scan']} ms, "
          f"entry read with a fresh reader {p['entry_read_fresh_reader']} ms; opening the log "
          f"{p['open_log']} ms")
    print(f"leaf_lines: {report['leaf_lines_bytes_per_entry']} bytes per entry on disk "
          f"(event_log.sqlite {report['log_bytes']:,} bytes, {report['log_bytes_without_lines']:,} without)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
