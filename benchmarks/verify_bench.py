#!/usr/bin/env python3
"""Benchmark: `ledger-service verify` against plain `bean-check` on the same books (issue 6, row 4).

Goal: on about 100,000 journal events, `verify` at least 2× faster than `bean-check`, with a
lower peak memory, and a memory that grows with holders, not with events.

1. Builds books through the engine with the platform simulator `Seeder` of `seeding.py`
   (of `fava_load.py` where `seeding.py` does not exist): `--members` members,
   `--merchants` stores, `--orders-per-day` orders a day for `--days` business days, plus
   the transfers, payouts and redemptions the simulator adds. Books go to
   `--cache/books-…` (default /tmp/verify-bench), named by their parameters, and are reused
   when a finished set with the same parameters is there.
2. Measures, each command in a subprocess of its own (wall time, CPU time and peak RSS from
   `os.wait4`'s rusage of that child), `--repeat` times:
   - `ledger-service verify --books B --no-db --json`;
   - `bean-check -C B/main.beancount`, the journal (its plugin replays every entry), the
     baseline (`-C`: without Beancount's pickle cache, which would skip the check);
   - `bean-check -C B/ledger/main.beancount`, the ledger tier Fava opens (an extra row);
   - (full runs) `bean-check B/main.beancount` with the pickle cache warm, for the record.
3. Memory scaling, verify's peak RSS on other books (`--series`):
   - `days`: fixed holders, 1×, 2×, 4× the events (more days of orders, same orders a day);
   - `holders`: about the same events over the same days, 1×, 2×, 4× the holders;
   - `busier` (full runs): fixed holders and days, more orders a day (bigger day files).

    python benchmarks/verify_bench.py [--quick] [--no-main] [--no-scaling] [--series days,holders]
        [--out benchmarks/results/verify_bench.json]

`--quick` (about 2 to 3 minutes on 2 cores, books included) runs smaller books, one run each.
Results: the JSON given by `--out` and a Markdown file beside it (`--render JSON` rewrites it).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from argparse import Namespace
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
if (HERE / "seeding.py").exists():  # the simulator may move out of fava_load.py
    import seeding as _seeding  # type: ignore[import-not-found]
else:
    import fava_load as _seeding  # type: ignore[no-redef]

import loadgate  # noqa: E402

Seeder, machine, log = _seeding.Seeder, _seeding.machine, _seeding.log
BIN = Path(sys.executable).parent

# Seeder's parameters besides the population (the defaults of fava_load.py).
SEED_DEFAULTS = {"batch": 10_000, "deposit_cny": "20000", "injection_cny": "1000000", "seed": 4}


# -- books ------------------------------------------------------------------------------------------


def books_for(cache: Path, members: int, merchants: int, orders_per_day: int, days: int) -> tuple[Path, dict]:
    """Books with these parameters, built once (a `.json` beside them marks a finished build)."""
    name = f"books-m{members}-s{merchants}-o{orders_per_day}-d{days}-r{SEED_DEFAULTS['seed']}"
    root = cache / name
    marker = cache / f"{name}.json"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run building the same books: wait for it
        while root.exists() and not marker.exists() and time.time() - newest_mtime(root) < 120:
            time.sleep(10)  # being built by a run that does not take the lock
        if root.exists() and marker.exists():
            seed = json.loads(marker.read_text())
            seed["reused"] = True
            return root, seed
        return build_books(root, marker, members, merchants, orders_per_day, days)


def newest_mtime(root: Path) -> float:
    return max((p.stat().st_mtime for p in root.rglob("*") if p.is_file()), default=0.0)


def build_books(root: Path, marker: Path, members: int, merchants: int, orders_per_day: int,
                days: int) -> tuple[Path, dict]:
    shutil.rmtree(root, ignore_errors=True)
    log(f"seeding {root}: {members:,} members, {merchants:,} stores, {orders_per_day:,} orders a day, {days} days")
    args = Namespace(members=members, merchants=merchants, orders_per_day=orders_per_day, days=days,
                     **SEED_DEFAULTS)
    seed = Seeder(root, args).run()
    seed["journal_bytes"] = sum(p.stat().st_size for p in (root / "journal").rglob("*.beancount"))
    seed["holders"] = seed["members"] + seed["merchants"]
    marker.write_text(json.dumps(seed, indent=1) + "\n")
    log(f"seeded {seed['events']:,} events in {seed['seconds']:,.0f} s")
    seed["reused"] = False
    return root, seed


# -- one command in a child process ---------------------------------------------------------------------


def run_child(cmd: list[str], timeout: float) -> dict:
    """Wall time, CPU time and peak RSS of one child process (its own rusage, from wait4)."""
    out_path = Path(f"/tmp/verify-bench-{os.getpid()}.out")
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd="/tmp")
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text(errors="replace")
    out_path.unlink(missing_ok=True)
    return {"exit": proc.returncode, "wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "output_tail": text[-400:]}


def verify_cmd(root: Path) -> list[str]:
    return [str(BIN / "ledger-service"), "verify", "--books", str(root), "--no-db", "--json"]


def bean_check_cmd(path: Path, cache: bool = False) -> list[str]:
    """`bean-check`; `-C` unless `cache`: Beancount's pickle cache would skip the whole check."""
    return [str(BIN / "bean-check"), *([] if cache else ["-C"]), str(path)]


def measure(name: str, cmd: list[str], repeat: int, timeout: float) -> dict:
    runs = []
    for i in range(repeat):
        load = os.getloadavg()[0]
        run = run_child(cmd, timeout)
        run["load_1min_before"] = round(load, 2)
        runs.append(run)
        log(f"  {name} #{i + 1}: exit {run['exit']}, {run['wall_s']:,.1f} s wall, {run['cpu_s']:,.1f} s CPU, "
            f"peak RSS {run['peak_rss_mib']:,.0f} MiB (load {load:.1f})")
        if run["exit"] != 0:
            log(run["output_tail"])
    out = {"command": " ".join(cmd), "runs": runs,
           "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 2),
           "wall_s_min": min(r["wall_s"] for r in runs),
           "cpu_s_median": round(statistics.median(r["cpu_s"] for r in runs), 2),
           "peak_rss_mib_max": max(r["peak_rss_mib"] for r in runs),
           "exit_codes": sorted({r["exit"] for r in runs})}
    if name == "verify":
        try:
            report = json.loads(runs[-1]["output_tail"][runs[-1]["output_tail"].index("{"):])
            out["ok"], out["entries"], out["holders"] = report.get("ok"), report.get("entries"), report.get("holders")
        except ValueError:
            pass
    return out


# -- the plan ---------------------------------------------------------------------------------------------


# The memory-scaling series: (key, label, what the slope is per, the books).
SERIES_LABELS = {
    "days": ("fixed holders, more days of orders", "events"),
    "holders": ("about fixed events, more holders", "holders"),
    "busier": ("fixed holders, busier days (more orders a day)", "events"),
}


def plan(quick: bool) -> dict:
    """Book sizes. A member brings about 1.75 events (register, 70 % an activation pack, some a
    role), so "days" aims at 1×, 2×, 4× the events for fixed members (orders start on the
    second day), and "holders" at about the same events over the same days for 1×, 2×, 4×
    the members (orders fill the difference; its first books are the second of "days").
    "busier" (full runs only) grows the events by orders a day instead: verify parses one
    day file at a time, so its peak follows the largest day file."""
    if quick:
        return {
            "main": dict(members=3_000, merchants=100, orders_per_day=1_000, days=8),
            "repeat": 1,
            "series": {
                "days": [dict(members=1_000, merchants=50, orders_per_day=500, days=d) for d in (5, 13, 29)],
                "holders": [dict(members=m, merchants=50, orders_per_day=o, days=13)
                            for m, o in ((1_000, 500), (2_000, 340), (4_000, 50))],
            },
        }
    return {
        "main": dict(members=20_000, merchants=500, orders_per_day=3_000, days=24),
        "repeat": 2,
        "series": {
            "days": [dict(members=5_000, merchants=100, orders_per_day=2_000, days=d) for d in (7, 17, 37)],
            "holders": [dict(members=m, merchants=100, orders_per_day=o, days=17)
                        for m, o in ((5_000, 2_000), (10_000, 1_450), (20_000, 360))],
            "busier": [dict(members=5_000, merchants=100, orders_per_day=o, days=11) for o in (1_120, 3_120, 7_120)],
        },
    }


def scaling_row(key: str, root: Path, seed: dict, timeout: float) -> dict:
    run = run_child(verify_cmd(root), timeout)
    label = SERIES_LABELS[key][0]
    largest_day = max(p.stat().st_size for p in (root / "journal").rglob("*.beancount"))
    row = {"series": label, "key": key, "largest_day_file_mib": round(largest_day / 2**20, 2),
           "members": seed["members"], "merchants": seed["merchants"],
           "holders": seed["members"] + seed["merchants"], "events": seed["events"], "days": seed["days"],
           "orders": seed["events_by_kind"].get("order", 0), "journal_mib": round(seed["journal_bytes"] / 2**20, 1),
           "verify_wall_s": run["wall_s"], "verify_cpu_s": run["cpu_s"], "verify_peak_rss_mib": run["peak_rss_mib"],
           "exit": run["exit"]}
    log(f"  {label}: {row['holders']:,} holders, {row['events']:,} events: verify {run['wall_s']:,.1f} s, "
        f"peak RSS {run['peak_rss_mib']:,.0f} MiB, exit {run['exit']}")
    return row


# -- report -------------------------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "## `verify` vs `bean-check` (issue 6, row 4)",
        "",
        f"`{result['command']}` on {m['cpu']} ({m['nproc']} CPUs, {m['ram_gib']} GiB), Python {m['python']}, "
        f"{result['started'][:16]} UTC, load average {result['load_start']} at the start. Commit {result['commit']}."
        + (f" {result['label']}." if result.get("label") else ""),
        "",
    ]
    if "verify" in result:
        lines += main_table(result)
    if result.get("other_runs"):
        lines += [
            "Other runs of the comparison on the same books (`--no-scaling`, other code or load):",
            "",
            "| run | verify wall s | verify CPU s | verify peak RSS MiB | bean-check wall s | bean-check CPU s | "
            "bean-check peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for other in result["other_runs"]:
            v, bc = other["verify"], other["bean_check_journal"]
            lines.append(f"| {other['label']} | {v['wall_s_median']:,.1f} | {v['cpu_s_median']:,.1f} | "
                         f"{v['peak_rss_mib_max']:,.0f} | {bc['wall_s_median']:,.1f} | {bc['cpu_s_median']:,.1f} | "
                         f"{bc['peak_rss_mib_max']:,.0f} |")
        lines.append("")
    if result.get("scaling"):
        lines += scaling_table(result)
    lines.append("")
    return "\n".join(lines)


def main_table(result: dict) -> list[str]:
    s = result["books"]
    v, bc, bl = result["verify"], result["bean_check_journal"], result["bean_check_ledger"]
    lines = [
        f"**Books**: {s['members']:,} members, {s['merchants']:,} stores, {s['days']} business days, "
        f"{s['orders_per_day']:,} orders a day: **{s['events']:,} journal events** "
        f"({', '.join(f'{k} {n:,}' for k, n in s['events_by_kind'].items())}); journal "
        f"{s['journal_bytes'] / 2**20:,.1f} MiB.",
        "",
        f"Each command in its own process, {len(v['runs'])} run(s) each; wall and CPU time and peak RSS from the "
        "child's rusage (`os.wait4`).",
        "",
        "| command | exit | wall s (median) | wall s (min) | CPU s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = [("`ledger-service verify --books B --no-db`", v),
            ("`bean-check -C B/main.beancount` (journal, baseline)", bc),
            ("`bean-check -C B/ledger/main.beancount` (ledger tier)", bl)]
    if result.get("bean_check_journal_cached"):
        rows.append(("`bean-check B/main.beancount`, Beancount's pickle cache warm (checks nothing again)",
                     result["bean_check_journal_cached"]))
    for label, r in rows:
        lines.append(f"| {label} | {','.join(map(str, r['exit_codes']))} | {r['wall_s_median']:,.1f} | "
                     f"{r['wall_s_min']:,.1f} | {r['cpu_s_median']:,.1f} | {r['peak_rss_mib_max']:,.0f} |")
    g = result["goal"]
    lines += [
        "",
        "`bean-check -C` disables Beancount's pickle cache"
        + (": with the cache warm (the last row), bean-check reads back the result of an earlier run and checks "
           "nothing again." if result.get("bean_check_journal_cached") else ", which would skip the check."),
        "",
        f"**Goal** (≥ 2× faster than bean-check on the journal, lower peak memory): verify runs "
        f"**{g['speedup_wall']:.2f}×** as fast as bean-check (wall time; CPU time {g['speedup_cpu']:.2f}×) with "
        f"**{g['rss_ratio']:.2f}×** its peak RSS: speed goal {'met' if g['speed_met'] else 'not met'}, "
        f"memory goal {'met' if g['memory_met'] else 'not met'}.",
        "",
    ]
    return lines


def scaling_table(result: dict) -> list[str]:
    lines = [
        "### Memory scaling: verify's peak RSS",
        "",
        "| series | holders | events | orders | days | journal MiB | largest day file MiB | verify s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["scaling"]:
        lines.append(f"| {row['series']} | {row['holders']:,} | {row['events']:,} | {row['orders']:,} | {row['days']} | "
                     f"{row['journal_mib']:,.1f} | {row.get('largest_day_file_mib', 0):,.1f} | "
                     f"{row['verify_wall_s']:,.1f} | {row['verify_peak_rss_mib']:,.0f} |")
    slopes = result.get("slopes", {})
    if slopes:
        lines += ["", "Slopes of verify's peak RSS (least squares within each series): " + "; ".join(
            f"{SERIES_LABELS[key][0]}: **{value:+.2f} MiB per 10,000 {SERIES_LABELS[key][1]}**"
            for key, value in slopes.items()) + "."]
    lines += ["", "verify parses one journal file (one business day) at a time, so its peak RSS also holds the "
                  "parse of the largest day file (its column)."]
    return lines


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller books, one run each (about 3 minutes)")
    parser.add_argument("--members", type=int, help="main books: members (default 20,000; quick 3,000)")
    parser.add_argument("--merchants", type=int)
    parser.add_argument("--orders-per-day", type=int)
    parser.add_argument("--days", type=int)
    parser.add_argument("--repeat", type=int, help="runs of each command on the main books")
    parser.add_argument("--no-scaling", action="store_true", help="skip the memory-scaling experiment")
    parser.add_argument("--series", help="only these scaling series (comma-separated: days, holders, busier)")
    parser.add_argument("--no-main", action="store_true", help="skip the verify vs bean-check comparison")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/verify-bench"), help="where the books are built")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--label", default="", help="a note kept in the results (e.g. 'before the fix')")
    parser.add_argument("--render", type=Path, help="only write the Markdown of an existing results JSON")
    loadgate.add_arguments(parser)
    args = parser.parse_args()
    if args.render:
        args.render.with_suffix(".md").write_text(markdown(json.loads(args.render.read_text())))
        return
    out = args.out or REPO / "benchmarks/results" / ("verify_bench_quick.json" if args.quick else "verify_bench.json")

    p = plan(args.quick)
    for key in ("members", "merchants", "orders_per_day", "days"):
        if getattr(args, key) is not None:
            p["main"][key] = getattr(args, key)
    repeat = args.repeat or p["repeat"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "ledger_service"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    result = {"benchmark": "verify_bench",
              "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "commit": commit + (" + uncommitted changes under ledger_service/" if dirty else ""),
              "load_start": round(os.getloadavg()[0], 2), "label": args.label,
              "pythonpath": os.environ.get("PYTHONPATH", "")}
    gate = loadgate.Gate.from_args(args).start()
    result["load_start"] = gate.load_before
    t_start = time.perf_counter()

    if not args.no_main:
        root, seed = books_for(args.cache, **p["main"])
        result["books"] = {**seed, "path": str(root), "orders_per_day": p["main"]["orders_per_day"]}
        log(f"books {root}: {seed['events']:,} events")
        result["verify"] = measure("verify", verify_cmd(root), repeat, args.timeout)
        result["bean_check_journal"] = measure("bean-check journal", bean_check_cmd(root / "main.beancount"), repeat,
                                               args.timeout)
        result["bean_check_ledger"] = measure("bean-check ledger", bean_check_cmd(root / "ledger" / "main.beancount"),
                                              repeat, args.timeout)
        if not args.quick:  # for the record: Beancount's own pickle cache, warm (written by a first run)
            cache_file = root / ".main.beancount.picklecache"
            run_child(bean_check_cmd(root / "main.beancount", cache=True), args.timeout)
            result["bean_check_journal_cached"] = measure("bean-check journal, cache warm",
                                                          bean_check_cmd(root / "main.beancount", cache=True), 1,
                                                          args.timeout)
            cache_file.unlink(missing_ok=True)
        v, bc = result["verify"], result["bean_check_journal"]
        result["goal"] = {
            "speedup_wall": round(bc["wall_s_median"] / v["wall_s_median"], 2),
            "speedup_cpu": round(bc["cpu_s_median"] / v["cpu_s_median"], 2),
            "rss_ratio": round(v["peak_rss_mib_max"] / bc["peak_rss_mib_max"], 2),
        }
        result["goal"]["speed_met"] = result["goal"]["speedup_wall"] >= 2
        result["goal"]["memory_met"] = result["goal"]["rss_ratio"] < 1

    result["scaling"] = []
    wanted = args.series.split(",") if args.series else list(p["series"])
    if not args.no_scaling:
        for key in wanted:
            for params in p["series"][key]:
                b, sd = books_for(args.cache, **params)
                result["scaling"].append(scaling_row(key, b, sd, args.timeout))
        result["slopes"] = {}
        for key in wanted:
            rows = [r for r in result["scaling"] if r["key"] == key]
            x = SERIES_LABELS[key][1]
            result["slopes"][key] = round(slope([r[x] / 1e4 for r in rows],
                                                [r["verify_peak_rss_mib"] for r in rows]), 2)
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if not gate.allow(result):
        print(markdown(result))
        raise SystemExit(3)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    log(f"written {out} and {out.with_suffix('.md')} in {result['seconds']:,.0f} s")


if __name__ == "__main__":
    main()
