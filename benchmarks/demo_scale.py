#!/usr/bin/env python3
"""Benchmark: `ledger-service demo` at scale, then `ledger-service verify --no-db` on its books (issue 6).

Issue #6's last row: "demo at 10⁶ members, 10⁴ merchants, 50,000 orders/day, 7 days | goal:
completes; peak memory and time reported". This runs, each in a child process of its own:

1. `ledger-service demo --books DIR --members M --merchants S --orders-per-day O --days D`
   (events booked through `Engine.submit_many` in commits of `--batch` events, each day closed,
   which extends the ledger tier), on fresh books in DIR (SQLite, the default);
2. `ledger-service verify --books DIR --no-db --json` (the journal re-derived alone).

For each child: wall time, CPU time (user + system) and peak RSS, from `os.wait4`. For the
demo also its own figures (`--stats`: time per phase, events booked and refused, commits),
and the sizes of the journal, the ledger tier and the database. While the demo runs, a line
every `--every` seconds logs its RSS, the journal's size and the load average.

    python benchmarks/demo_scale.py                     # the full size: 10⁶ / 10⁴ / 50,000 / 7
    python benchmarks/demo_scale.py --quick             # 10⁵ / 10³ / 5,000 / 2: a few minutes
    python benchmarks/demo_scale.py --members 200000 --merchants 2000 --orders-per-day 10000 --days 3

Results go to benchmarks/results/demo_scale.json and .md (`--quick`: demo_scale_quick.*).
The books are left in DIR (default /tmp/demo_scale/books) unless `--remove`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import loadgate  # noqa: E402
import seeding  # noqa: E402  (the machine facts, shared)

FULL = {"members": 1_000_000, "merchants": 10_000, "orders_per_day": 50_000, "days": 7}
QUICK = {"members": 100_000, "merchants": 1_000, "orders_per_day": 5_000, "days": 2}
MIB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def machine() -> dict:
    """seeding.machine(), with the names this script's results use and SQLite's version."""
    import sqlite3

    found = seeding.machine()
    return {"cpu": found["cpu"], "cores": found["nproc"], "ram_gib": found["ram_gib"], "python": found["python"],
            "sqlite": sqlite3.sqlite_version, "platform": found["platform"]}


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def tree_bytes(paths) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_child(argv: list[str], stdout: Path, books: Path | None = None, every: float = 60.0) -> dict:
    """Run `argv` to its end: wall and CPU seconds, peak RSS (os.wait4), exit status."""
    log("$ " + " ".join(argv))
    started = time.perf_counter()
    with open(stdout, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, cwd=REPO,
                                env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"COLUMNS": "120"})
        done = threading.Event()

        def watch() -> None:
            while not done.wait(every):
                journal = tree_bytes((books / "journal").rglob("*.beancount")) if books else 0
                log(f"  {time.perf_counter() - started:,.0f} s: RSS {rss_mib(proc.pid):,.0f} MiB, journal "
                    f"{journal / MIB:,.0f} MiB, load {os.getloadavg()[0]:.1f}")

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
    result = {"exit": proc.returncode, "wall_s": round(seconds, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
              "user_s": round(usage.ru_utime, 1), "system_s": round(usage.ru_stime, 1),
              "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}
    log(f"  exit {result['exit']}: {result['wall_s']:,} s wall, {result['cpu_s']:,} s CPU, "
        f"peak RSS {result['peak_rss_mib']:,} MiB")
    return result


def _without_note(argv: list[str]) -> list[str]:
    """The arguments but `--note` (recorded apart)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--note":
            skip = True
        elif not arg.startswith("--note="):
            out.append(arg)
    return out


def markdown(r: dict) -> str:
    d, v, s = r["demo"], r["verify"], r["demo"].get("stats") or {}
    m = r["machine"]
    sizes = r["sizes"]
    lines = [
        f"## `ledger-service demo` at {r['size']['members']:,} members, {r['size']['merchants']:,} merchants, "
        f"{r['size']['orders_per_day']:,} orders a day, {r['size']['days']} days (issue 6)",
        "",
        f"`{r['command']}` on {m['cpu']} ({m['cores']} cores, {m['ram_gib']} GiB), Python {m['python']}, "
        f"SQLite {m['sqlite']}, commit {r['commit']}, {r['date']}. Load average (1 min) {r['load_before']:.1f} "
        f"before, {r['load_after']:.1f} after: the machine is shared, so wall times are noisy; CPU time is the "
        "child's user + system time." + (f" {r['note']}" if r.get("note") else ""),
        "",
        f"Demo: `{' '.join(d['argv'][1:])}`",
        "",
        f"Verify: `{' '.join(v['argv'][1:])}`",
        "",
        "| | demo | verify --no-db |",
        "|---|---:|---:|",
        f"| exit status | {d['exit']} | {v['exit']} |",
        f"| wall s | {d['wall_s']:,} | {v['wall_s']:,} |",
        f"| CPU s | {d['cpu_s']:,} | {v['cpu_s']:,} |",
        f"| peak RSS MiB | {d['peak_rss_mib']:,} | {v['peak_rss_mib']:,} |",
    ]
    if s:
        entries = v.get("entries") or 0
        lines += [
            f"| events booked (demo) / entries read (verify) | {s['events']:,} | {entries:,} |",
            f"| events/s, entries/s (wall) | {s['events'] / max(d['wall_s'], 1e-9):,.0f} | "
            f"{entries / max(v['wall_s'], 1e-9):,.0f} |",
            "",
            "Inside the demo (its own clock, `--stats`; a phase's time includes booking its events; `close` is "
            "`Engine.close_days`, which also extends the ledger tier: Beancount parses the day's journal file and "
            "the holder index folds it):",
            "",
            "| demo phase | seconds | events | events/s |",
            "|---|---:|---:|---:|",
        ]
        for name, phase in s["phases"].items():
            rate = f"{phase['events'] / phase['seconds']:,.0f}" if phase["events"] and phase["seconds"] else ""
            lines.append(f"| {name} | {phase['seconds']:,.1f} | {phase['events']:,} | {rate} |")
        lines += [
            "",
            f"Booked: {', '.join(f'{k} {n:,}' for k, n in s['booked'].items())}.",
            "",
            f"Refused by the rules (nothing booked): {', '.join(f'{k} {n:,}' for k, n in s['refused'].items()) or 'none'}.",
            "",
            f"Commits: {s['commits']:,} (batches of up to {s['batch']:,} events; {s['split_batches']:,} batch "
            f"splits to isolate a refusal; {s['tried_alone']:,} events expected to be refused put to the rules alone).",
        ]
    lines += [
        "",
        f"Sizes: journal {sizes['journal_bytes'] / MIB:,.1f} MiB in {sizes['journal_files']} files "
        f"({sizes['journal_bytes'] / max(1, s.get('events', 1)):,.0f} bytes per event); ledger tier "
        f"{sizes['ledger_bytes'] / MIB:,.1f} MiB; SQLite database {sizes['sqlite_bytes'] / MIB:,.1f} MiB.",
        "",
        f"Verify: {'verified: the books are consistent' if v.get('ok') else 'FAULTS: ' + str(v.get('faults'))}"
        + (f"; {v['entries']:,} entries in {v['files']} files, {v['holders']:,} holders." if v.get("entries") else "."),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10⁵ members, 10³ merchants, 5,000 orders/day, 2 days")
    parser.add_argument("--members", type=int)
    parser.add_argument("--merchants", type=int)
    parser.add_argument("--orders-per-day", type=int)
    parser.add_argument("--days", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--books", type=Path, default=Path("/tmp/demo_scale/books"))
    parser.add_argument("--remove", action="store_true", help="remove the books at the end")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between progress lines")
    parser.add_argument("--note", default="", help="recorded with the results (e.g. which source tree ran)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--md", type=Path)
    loadgate.add_arguments(parser)
    args = parser.parse_args()
    size = dict(QUICK if args.quick else FULL)
    for key in size:
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    stem = "demo_scale_quick" if args.quick else "demo_scale"
    out = args.out or REPO / "benchmarks" / "results" / f"{stem}.json"
    md = args.md or out.with_suffix(".md")

    books = args.books.resolve()
    if books.exists():
        shutil.rmtree(books)
    books.parent.mkdir(parents=True, exist_ok=True)
    stats_file = books.parent / "demo_stats.json"
    stats_file.unlink(missing_ok=True)
    cli = [sys.executable, "-m", "ledger_service.cli"]
    gate = loadgate.Gate.from_args(args).start()
    result = {
        "command": shlex.join(["python", "benchmarks/demo_scale.py", *_without_note(sys.argv[1:])]), "size": size,
        "machine": machine(), "commit": commit(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": gate.load_before, "books": str(books), "note": args.note,
    }
    log(f"demo at {size}; books {books}")
    demo_argv = [*cli, "demo", "--books", str(books), "--members", str(size["members"]), "--merchants",
                 str(size["merchants"]), "--orders-per-day", str(size["orders_per_day"]), "--days", str(size["days"]),
                 "--seed", str(args.seed), "--batch", str(args.batch), "--stats", str(stats_file)]
    result["demo"] = run_child(demo_argv, books.parent / "demo.out", books, args.every) | {"argv": demo_argv}
    if stats_file.is_file():
        result["demo"]["stats"] = json.loads(stats_file.read_text())
    result["sizes"] = {
        "journal_files": len(list((books / "journal").rglob("*.beancount"))),
        "journal_bytes": tree_bytes((books / "journal").rglob("*.beancount")),
        "ledger_bytes": tree_bytes((books / "ledger").rglob("*")),
        "sqlite_bytes": tree_bytes(books.glob("ledger.sqlite*")),
    }
    log(f"  sizes {result['sizes']}")
    verify_argv = [*cli, "verify", "--books", str(books), "--no-db", "--json"]
    result["verify"] = {"argv": verify_argv, "exit": None, "wall_s": 0, "cpu_s": 0, "peak_rss_mib": 0}
    if result["demo"]["exit"] == 0 and not args.no_verify:
        verify_out = books.parent / "verify.json"
        result["verify"] |= run_child(verify_argv, verify_out, None, args.every)
        try:
            report = json.loads(verify_out.read_text())
            result["verify"] |= {k: report.get(k) for k in ("ok", "entries", "files", "holders")}
            result["verify"]["faults"] = len(report.get("faults") or [])
        except (OSError, ValueError) as exc:
            result["verify"]["report_error"] = str(exc)
    result["load_after"] = os.getloadavg()[0]
    published = gate.allow(result)
    if published:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        md.write_text(markdown(result))
        log(f"written {out} and {md}")
    else:
        print(markdown(result))
    if args.remove:
        shutil.rmtree(books, ignore_errors=True)
    if not published:
        sys.exit(3)
    sys.exit(0 if result["demo"]["exit"] == 0 and result["verify"]["exit"] in (0, None) else 1)


if __name__ == "__main__":
    main()
