#!/usr/bin/env python3
"""Profile: where `ledger-service verify --no-db` spends its time, step by step (issue 15 §4).

`verify` parses the day files in worker processes (`--jobs N`) while its main process replays
them in order: the main process is the critical path. This script runs `verify --no-db --json`
in a child process of its own, with every step of the main process (and of the parse workers)
wrapped in a timer, and prints a table per process: each step's CPU seconds (the process's own,
`time.process_time`, exclusive of the steps it calls), wall seconds, calls and share of the
process's CPU. Waiting for a worker's next day file shows as the wall time of
`stream: receive a day file` beyond its CPU time.

The timers cost about 1 µs a call (a few % of the CPU); each run is in a fresh process, so the
imports are counted. `--pyinstrument` also writes pyinstrument's call tree of one run (wall
time; its own overhead doubles the CPU time, so use its shares, not its seconds).

    python benchmarks/verify_steps.py --books B [--jobs 1] [--repeat 3] [--pyinstrument]
        [--out benchmarks/results/verify_steps.txt]
    python benchmarks/verify_steps.py --quick ...    (B: verify_bench.py --quick's books, built if absent)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# -- the child: verify, instrumented ----------------------------------------------------------------

_clock, _wall = time.process_time, time.perf_counter
_stats: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])  # label -> [cpu, wall, calls] (exclusive)
_stack: list[list[float]] = [[0.0, 0.0]]  # per open step: [cpu, wall] of the steps it called


def _timed(label: str, fn):
    def wrapper(*args, **kwargs):
        c0, w0 = _clock(), _wall()
        _stack.append([0.0, 0.0])
        try:
            return fn(*args, **kwargs)
        finally:
            cpu, wall = _clock() - c0, _wall() - w0
            inner = _stack.pop()
            row = _stats[label]
            row[0] += cpu - inner[0]
            row[1] += wall - inner[1]
            row[2] += 1
            outer = _stack[-1]
            outer[0] += cpu
            outer[1] += wall

    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def _patch(owner, name: str, label: str) -> None:
    if hasattr(owner, name):
        setattr(owner, name, _timed(label, getattr(owner, name)))


def _instrument(worker_stats: str) -> None:
    from ledger_service import apply, cli, rules, views  # noqa: F401 - the imports are a step of their own
    from ledger_service.audit import replay, stream
    from ledger_service.audit import verify as verify_mod
    from ledger_service.views import event_log, holder_index, ledger_tier, liabilities, signed

    # the main process
    _patch(stream._Worker, "take", "stream: receive a day file (pipe, marshal.loads)")
    _patch(stream, "unpack_day", "stream: unpack a day file (entries rebuilt)")
    _patch(stream, "read_day", "stream: read_day (parse + convert; in main only with --jobs 0 or a failed worker)")
    _patch(verify_mod, "_replay", "verify: the stream loop (file dates, dispatch)")
    _patch(replay.Replay, "feed", "replay: feed (rest)")
    _patch(replay.Replay, "_check_chain", "replay: chain (seq, prev, hash)")
    _patch(replay.Replay, "_check_whole", "replay: whole entry")
    _patch(replay.Replay, "_genesis", "replay: genesis")
    _patch(replay.Replay, "_check_rules", "replay: rules check (rest: overlay, ctx)")
    _patch(replay.Replay, "_compare", "replay: compare with the rules' entry")
    _patch(replay.Replay, "_apply", "replay: apply (rest: cap, holders below zero)")
    _patch(replay, "apply_entry", "apply.apply_entry")
    for name in ("book", "release", "price", "parse"):
        _patch(rules, name, f"rules.{name}")
    _patch(replay.ReplayState, "_flush", "replay: reversible events to disk")
    for cls in (ledger_tier.LedgerRebuild, holder_index.IndexCheck, event_log.LogCheck, liabilities.LiabilitiesCheck,
                signed.SignedCheck):
        _patch(cls, "feed", f"check {cls.__name__}.feed")
        _patch(cls, "finish", f"check {cls.__name__}.finish")
    _patch(views, "checkers", "checks: set up (views.checkers)")
    _patch(verify_mod, "_residue", "verify: residue")
    _patch(verify_mod, "_check_main", "verify: main.beancount")
    _patch(verify_mod.reports, "supply_report", "verify: supply report")
    _patch(verify_mod, "pickle_cache_warnings", "verify: pickle cache warnings")
    from ledger_service.audit import record

    _patch(record, "fingerprint", "record: fingerprint")
    _patch(record, "write", "record: write verified.json")

    # the parse workers (forked: they inherit these wrappers and write their table when they end)
    from ledger_service import entries, journal, merkle, state

    _patch(stream, "parse_file", "worker: Beancount's parser")
    _patch(stream, "file_faults", "worker: file faults")
    _patch(stream, "from_beancount", "worker: from_beancount")
    _patch(stream, "holders_of", "worker: holders_of")
    _patch(stream, "event_rows", "worker: event_rows")
    _patch(stream, "row_digest_line", "worker: row_digest_line")
    _patch(stream, "entry_hash", "worker: entry_hash")
    _patch(stream, "hex_leaf", "worker: hex_leaf")
    _patch(stream, "whole_faults", "worker: whole_faults")
    _patch(stream, "_event_of", "worker: event parse")
    for name in ("_ledger_day", "_chain_of", "_pack_entry"):  # (helpers that may or may not exist)
        _patch(stream, name, f"worker: {name}")
    del entries, journal, merkle, state, apply, cli
    worker = stream._worker

    def worker_with_stats(*args, **kwargs):
        _stats.clear()
        _gc[:2] = [0.0, 0]
        c0, w0 = _clock(), _wall()
        try:
            return worker(*args, **kwargs)
        finally:
            total = [_clock() - c0, _wall() - w0]
            with open(f"{worker_stats}.{os.getpid()}", "w") as out:
                json.dump({"total": total, "steps": dict(_stats), "gc": _gc[:2]}, out)

    stream._worker = worker_with_stats


_gc = [0.0, 0, 0.0]  # CPU seconds in the collector, collections, start of the current one


def _gc_callback(phase: str, _info: dict) -> None:
    if phase == "start":
        _gc[2] = _clock()
    else:
        _gc[0] += _clock() - _gc[2]
        _gc[1] += 1


def child(books: str, jobs: int | None, worker_stats: str, out: str, plain: bool = False) -> None:
    import gc

    c0, w0 = _clock(), _wall()
    if not plain:
        _instrument(worker_stats)
    gc.callbacks.append(_gc_callback)
    import ledger_service
    imports = [_clock() - c0, _wall() - w0]
    from ledger_service.cli import main

    args = ["verify", "--books", books, "--no-db", "--json", *([] if jobs is None else ["--jobs", str(jobs)])]
    c1, w1 = _clock(), _wall()
    with open(os.devnull, "w") as devnull:
        saved, sys.stdout = sys.stdout, devnull
        try:
            main(args, standalone_mode=False)
        except SystemExit:
            pass
        finally:
            sys.stdout = saved
    run = [_clock() - c1, _wall() - w1]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(out).write_text(json.dumps({
        "imports": imports, "run": run, "steps": dict(_stats),
        "main_cpu_s": usage.ru_utime + usage.ru_stime, "children_cpu_s": children.ru_utime + children.ru_stime,
        "wall_s": _wall() - w0, "peak_rss_mib": usage.ru_maxrss / 1024, "gc": _gc[:2],
        "package": str(Path(ledger_service.__file__).parent)}))


# -- the parent: runs and tables ----------------------------------------------------------------------


def one_run(books: Path, jobs: int | None, plain: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "main.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(books), "--child-out", str(out),
               "--worker-stats", str(Path(tmp) / "worker"), *([] if jobs is None else ["--jobs", str(jobs)]),
               *(["--plain"] if plain else [])]
        subprocess.run(cmd, check=True, cwd="/tmp")
        result = json.loads(out.read_text())
        result["workers"] = [json.loads(p.read_text()) for p in sorted(Path(tmp).glob("worker.*"))]
    return result


def merge(runs: list[dict]) -> dict:
    """The median run by main-process CPU (one real run, not a mix)."""
    runs = sorted(runs, key=lambda r: r["main_cpu_s"])
    return runs[len(runs) // 2]


def table(title: str, total_cpu: float, rows: list[tuple[str, float, float, int]]) -> list[str]:
    lines = [title, f"{'step':<92} {'CPU s':>7} {'share':>6} {'wall s':>7} {'calls':>8}"]
    for label, cpu, wall, calls in sorted(rows, key=lambda r: -r[1]):
        share = 100 * cpu / total_cpu if total_cpu else 0
        lines.append(f"{label:<92} {cpu:7.3f} {share:5.1f}% {wall:7.3f} {calls:8,}")
    return lines


def render(result: dict, runs: list[dict], command: str, books: Path, plain: bool = False) -> str:
    main_cpu = result["main_cpu_s"]
    steps = result["steps"]
    rows = [(label, cpu, wall, int(calls)) for label, (cpu, wall, calls) in steps.items() if not label.startswith(
        "worker:")]
    imports = result["imports"]
    rows.append(("imports (ledger_service, click, sqlalchemy, beancount: before verify starts)", imports[0],
                 imports[1], 1))
    accounted = sum(r[1] for r in rows)
    rows.append(("the rest (cli, JSON output, unattributed)", main_cpu - accounted, float("nan"), 1))
    package = Path(result["package"])
    out = [f"# `verify --no-db` step by step: {command}",
           f"# {datetime.now(UTC):%Y-%m-%dT%H:%M} UTC, books {books}, ledger_service from {package} "
           f"(commit {_commit(package.parent)})",
           f"# runs: {len(runs)}; main-process CPU s of each: "
           + ", ".join(f"{r['main_cpu_s']:.2f}" for r in runs)
           + "; workers' CPU s: " + ", ".join(f"{r['children_cpu_s']:.2f}" for r in runs)
           + "; wall s: " + ", ".join(f"{r['wall_s']:.2f}" for r in runs) + f"; load {os.getloadavg()[0]:.1f}",
           "# the median run by main-process CPU below; CPU: the process's own, exclusive of the steps listed "
           "under it",
           ""]
    if plain:  # (no timers: the CPU of each run and the collector's)
        cpus = sorted(r["main_cpu_s"] for r in runs)
        return "\n".join([*out[:3], f"# main-process CPU s: median {cpus[len(cpus) // 2]:.2f}, min {cpus[0]:.2f}; "
                          "collector in the main process, s: " + ", ".join(f"{r['gc'][0]:.3f}" for r in runs)]) + "\n"
    out += table(f"main process: {main_cpu:.2f} s CPU, {result['wall_s']:.2f} s wall", main_cpu, rows)
    out.append(f"(of which the garbage collector, inside the steps above: {result['gc'][0]:.3f} s CPU, "
               f"{100 * result['gc'][0] / main_cpu:.1f}%, in {result['gc'][1]:,} collections)")
    for number, worker in enumerate(result["workers"]):
        wcpu = worker["total"][0]
        wrows = [(label, cpu, wall, int(calls)) for label, (cpu, wall, calls) in worker["steps"].items()]
        accounted = sum(r[1] for r in wrows)
        wrows.append(("the rest (marshal, pipe, loop, unattributed)", wcpu - accounted, float("nan"), 1))
        out += ["", *table(f"parse worker {number}: {wcpu:.2f} s CPU, {worker['total'][1]:.2f} s wall", wcpu, wrows)]
        out.append(f"(of which the garbage collector, inside the steps above: {worker['gc'][0]:.3f} s CPU, "
                   f"in {worker['gc'][1]:,} collections)")
    return "\n".join(out) + "\n"


def _commit(repo: Path = REPO) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "ledger_service")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=Path)
    parser.add_argument("--quick", action="store_true", help="verify_bench.py --quick's books")
    parser.add_argument("--jobs", type=int, default=None, help="verify --jobs (default: verify's)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pyinstrument", action="store_true", help="also pyinstrument's tree of one run")
    parser.add_argument("--plain", action="store_true",
                        help="no timers: only each run's CPU seconds (main process, workers) and the collector's")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--worker-stats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.jobs, args.worker_stats, args.child_out, args.plain)
        return
    books = args.books
    if books is None:
        if not args.quick:
            parser.error("--books B or --quick")
        sys.path.insert(0, str(HERE))
        import verify_bench  # type: ignore[import-not-found]

        books, _seed = verify_bench.books_for(Path("/tmp/verify-bench"), **verify_bench.plan(True)["main"])
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    runs = [one_run(books, args.jobs, args.plain) for _ in range(args.repeat)]
    text = render(merge(runs), runs, command, books, args.plain)
    if args.pyinstrument:
        jobs = [] if args.jobs is None else ["--jobs", str(args.jobs)]
        profile = subprocess.run([sys.executable, "-m", "pyinstrument", "-r", "text", "--", str(BIN / "ledger-service"),
                                  "verify", "--books", str(books), "--no-db", "--json", *jobs],
                                 capture_output=True, text=True, cwd="/tmp").stdout
        start = profile.find("\n  _ ")  # the profile, after verify's JSON
        text += "\n# pyinstrument (wall time of the main process; its overhead about doubles the CPU)\n"
        text += profile[start + 1 if start >= 0 else 0:]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


BIN = Path(sys.executable).parent

if __name__ == "__main__":
    main()
