#!/usr/bin/env python3
"""Benchmark: mixed seed-like events per second through `Engine.submit_many`, durable commits,
on SQLite and PostgreSQL (issue 6, row 1: goal >= 20,000 events/s).

For every (backend, commit batch size) the script books FRESH books in a process of its own
(so peak RSS is that run's): `benchmarks/seeding.Seeder` generates the seed-like mix (members
registered, activation and partner packs, grades, stores opened with a deposit each, orders,
top-up deposits, transfers, payouts settled or cancelled the next day, redemptions) over 3
business days, scaled to about `--events` events, and books it through `Engine.submit_many` in
commits of up to B events (a day's last commit may be shorter; each day is then closed with
`close_days`, which is not timed). Every commit is durable: the database commit (SQLite WAL
with synchronous=FULL; PostgreSQL with fsync=on, synchronous_commit=on) and then the day's
journal file appended and fsynced, exactly as the service books.

events/s = events booked ÷ seconds inside `submit_many` (the generator's own time and the day
closes are left out). The baseline in the same run: fsync calls per second on the same disk
(append ~300 bytes to a file in a books folder under the same temporary directory, `os.fsync`,
N times), measured before and after the engine runs.

fsyncs per commit are counted in a separate, untimed pass (smaller by default, `--count-events`):
the child runs under `strace -f --seccomp-bpf -e trace=fsync,fdatasync` with a marker syscall
(`fsync(-1)` / `fsync(-2)`) around every `submit_many`, so only the calls made inside commits
are counted (client side: the SQLite WAL and the journal); for PostgreSQL the server's WAL
syncs are the delta of `pg_stat_wal.wal_sync` over the booking (sessions report it when they end),
divided by the commits and day closes (cluster-wide: another session's commits on the same server
would be counted too).

`--profile-only` profiles one SQLite run with pyinstrument (the time inside `submit_many` only;
with `--compare REF`, REF's run first) and writes the text profiles to `--profile-out`.

Before/after in one run: `--compare REF` exports `git archive REF ledger_service` to a temporary
folder and runs every measurement with that package too (first on PYTHONPATH), interleaved
with the working tree's.

    python benchmarks/engine_events.py [--quick] [--batches 1,100,1000,10000] \
        [--events 1000,20000,40000,60000] [--backends sqlite,postgresql] [--compare HEAD] \
        [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--out benchmarks/results/engine_events.json] \
        [--md benchmarks/results/engine_events.md]

Books live in a temporary folder (removed), PostgreSQL in scratch databases `bench_engine_<pid>_<n>`
(dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import loadgate  # noqa: E402
from seeding import Seeder, log, machine, peak_rss_mib  # noqa: E402

DEFAULT_BATCHES = "1,100,1000,10000"
DEFAULT_EVENTS = "1000,20000,40000,60000"
QUICK_EVENTS = "200,2000,6000,20000"
DAYS = 3


# -- the scenario --------------------------------------------------------------------------------


def scenario(events: int, batch: int, seed: int = 6) -> argparse.Namespace:
    """Seeder arguments for about `events` events over DAYS business days, the seed's mix.

    At seed scale (fava_load) about 54 % of the events are registrations (with packs and
    grades) and 45 % orders (with top-ups, transfers, payouts, redemptions); the same here.
    """
    members = max(40, round(events * 0.30))
    merchants = max(8, events // 500)
    orders_per_day = max(1, round((events - members * 1.75 - merchants * 2) / (DAYS - 1) / 1.0175))
    return argparse.Namespace(members=members, merchants=merchants, orders_per_day=orders_per_day, days=DAYS,
                              batch=batch, deposit_cny="20000", injection_cny="1000000", seed=seed)


# -- one measurement, in a process of its own ---------------------------------------------------------


class CountingSeeder(Seeder):
    """The Seeder, with every submit_many timed (and, when counting, bracketed by markers)."""

    def __init__(self, *a, mark: bool = False, profiler=None, **kw) -> None:
        super().__init__(*a, **kw)
        self.mark = mark
        self.profiler = profiler
        self.commit_ms: list[float] = []
        self.commit_sizes: list[int] = []
        self.journal_fsyncs = 0
        self.cpu_s = 0.0

    def flush(self) -> list:
        if not self.batch:
            return []
        size = len(self.batch)
        if self.mark:
            _marker(-1)
        if self.profiler is not None:
            self.profiler.start()
        fsyncs = _journal_fsyncs
        c0 = time.process_time()
        t0 = time.perf_counter()
        booked = super().flush()
        self.commit_ms.append((time.perf_counter() - t0) * 1000)
        self.cpu_s += time.process_time() - c0
        self.journal_fsyncs += _journal_fsyncs - fsyncs
        if self.profiler is not None:
            self.profiler.stop()
        if self.mark:
            _marker(-2)
        self.commit_sizes.append(size)
        return booked


def _marker(fd: int) -> None:
    """fsync(-1) / fsync(-2): a syscall strace records (EBADF), marking a commit's start and end."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).fsync(fd)


_journal_fsyncs = 0


def _count_fsyncs() -> None:
    """Count the journal's os.fsync calls (Python level: free, so also in timed runs)."""
    real = os.fsync

    def counted(fd):
        global _journal_fsyncs
        if fd >= 0:
            _journal_fsyncs += 1
        return real(fd)

    os.fsync = counted


def child(spec: dict) -> dict:
    import sqlite3

    import ledger_service

    _count_fsyncs()
    root = Path(spec["books"])
    url = spec.get("db_url")
    pg_stat = None
    if spec.get("count") and url:
        import psycopg

        stat_conn = psycopg.connect(spec["pg_admin"], autocommit=True)
        pg_stat = lambda: stat_conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0]  # noqa: E731
    profiler = None
    if spec.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
    args = argparse.Namespace(**spec["scenario"])
    load0 = os.getloadavg()[0]
    cpu0 = time.process_time()
    seeder = CountingSeeder(root, args, db_url=url, update_ledger=False, mark=bool(spec.get("count")),
                            profiler=profiler)
    rss_after_init = peak_rss_mib()
    fsyncs0 = _journal_fsyncs
    if pg_stat is not None:
        time.sleep(1.0)  # the init's server processes have exited and reported their WAL statistics
        wal0 = pg_stat()
    t0 = time.perf_counter()
    summary = seeder.run()  # ends with engine.dispose(): the server processes exit and report
    wall = time.perf_counter() - t0
    if pg_stat is not None:
        time.sleep(1.0)
        wal_syncs = pg_stat() - wal0
    if profiler is not None:
        session = profiler.last_session
        text = "\n".join([
            breakdown(session.root_frame(), seeder.booked),
            profiler.output_text(unicode=True, color=False, show_all=False),
            "Flat: self time by function (top 45)",
            "",
            "\n".join(profiler.output_text(unicode=True, color=False, flat=True).splitlines()[:60]),
        ])
        Path(spec["profile"]).write_text(text)
    db_bytes = None
    if url is None:
        db_bytes = sum(p.stat().st_size for p in root.glob("ledger.sqlite*"))
    journal_bytes = sum(p.stat().st_size for p in (root / "journal").rglob("*.beancount"))
    sizes = seeder.commit_sizes
    out = {
        "package": str(Path(ledger_service.__file__).parent),
        "events": seeder.booked, "events_by_kind": summary["events_by_kind"], "refused": summary["refused"],
        "refused_batches": seeder.refused_batches, "commits": seeder.commits,
        "mean_events_per_commit": round(seeder.booked / max(1, seeder.commits), 1),
        "full_commits": sum(1 for s in sizes if s == spec["scenario"]["batch"]),
        "submit_seconds": round(seeder.book_s, 3),
        "events_per_s": round(seeder.booked / seeder.book_s, 1) if seeder.book_s else None,
        "submit_cpu_seconds": round(seeder.cpu_s, 3),
        "events_per_cpu_s": round(seeder.booked / seeder.cpu_s, 1) if seeder.cpu_s else None,
        "commit_ms_median": round(sorted(seeder.commit_ms)[len(seeder.commit_ms) // 2], 3),
        "wall_seconds": round(wall, 2), "cpu_seconds": round(time.process_time() - cpu0, 2),
        "close_ms_median": summary["close_ms_median"],
        "journal_fsyncs_in_commits": seeder.journal_fsyncs, "journal_fsyncs_total": _journal_fsyncs - fsyncs0,
        "peak_rss_mib": round(peak_rss_mib(), 1), "rss_after_init_mib": round(rss_after_init, 1),
        "db_bytes": db_bytes, "journal_bytes": journal_bytes,
        "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "sqlite_version": sqlite3.sqlite_version,
    }
    if pg_stat is not None:
        out["pg_wal_syncs_total"] = wal_syncs  # commits, day closes, and the server's own syncs
        out["closes"] = len(seeder.close_ms)
    return out


# Where the time inside submit_many goes: (label, file suffix, function names); each is the
# inclusive time of the outermost frames matching it (categories overlap where they nest).
CATEGORIES = [
    ("Engine._plan: the rules, chaining, applying (all)", "ledger_service/engine.py", ("_plan",)),
    ("  rules.book: the rules (incl. their DB reads)", "ledger_service/rules/__init__.py", ("book",)),
    ("  DB reads by the rules (DbReader.*, load_globals)", "ledger_service/store/db.py",
     ("holder", "partner_of", "order_event", "payout", "epoch", "event_record", "load_globals", "prefetch")),
    ("  event parse + validation (rules.events.parse)", "ledger_service/rules/events.py", ("parse",)),
    ("  entries.meta_tuple (building metadata)", "ledger_service/entries.py", ("meta_tuple",)),
    ("  hashing: canonical form + SHA-256 (entry_hash)", "ledger_service/entries.py", ("entry_hash",)),
    ("  render: the journal text", "ledger_service/entries.py", ("render",)),
    ("  chain_entry: hash + text in one pass (the engine's)", "ledger_service/entries.py", ("chain_entry",)),
    ("  apply_entry: the position (incl. its parse)", "ledger_service/apply.py", ("apply_entry",)),
    ("Engine._persist: rows, SQL statements (all)", "ledger_service/engine.py", ("_persist",)),
    ("Engine._repair + _open_day (per commit)", "ledger_service/engine.py", ("_repair", "_open_day")),
    ("database commit (Session/Connection commit)", "sqlalchemy/orm/session.py", ("commit",)),
    ("journal append + fsync (Books.append)", "ledger_service/journal.py", ("append",)),
    ("writer lock (file_lock)", "ledger_service/journal.py", ("file_lock", "__enter__")),
    ("all SQLAlchemy code (inclusive, outermost)", "/sqlalchemy/", None),
]


def breakdown(root, events: int) -> str:
    total = root.time
    lines = [f"Breakdown of {total:.2f} s inside submit_many for {events:,} events "
             f"({total / events * 1e6:,.0f} µs per event while profiled):", ""]
    for label, suffix, names in CATEGORIES:
        spent = _inclusive(root, suffix, names)
        lines.append(f"  {label:<58} {spent:8.2f} s  {spent / total:6.1%}  {spent / events * 1e6:7.0f} µs/event")
    lines.append("")
    return "\n".join(lines)


def _inclusive(frame, suffix: str, names) -> float:
    path = (frame.file_path or "").replace("\\", "/")
    if suffix in path and (names is None or frame.function in names):
        return frame.time
    return sum(_inclusive(child, suffix, names) for child in frame.children)


# -- the parent ----------------------------------------------------------------------------------------


def fsync_baseline(folder: Path, n: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fsync-baseline.bin"
    record = b"x" * 299 + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(fd, record)
            os.fsync(fd)
        seconds = time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink()
    return {"fsyncs": n, "bytes_per_append": len(record), "seconds": round(seconds, 3),
            "fsyncs_per_s": round(n / seconds, 1), "loadavg_1m": round(os.getloadavg()[0], 2)}


class Postgres:
    def __init__(self, admin_url: str) -> None:
        import psycopg

        self.admin_url = admin_url
        self.conn = psycopg.connect(admin_url, autocommit=True)
        self.created: list[str] = []
        self.n = 0

    def version(self) -> str:
        return self.conn.execute("SHOW server_version").fetchone()[0]

    def settings(self) -> dict:
        return {name: self.conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes", "data_directory")}

    def create(self) -> str:
        self.n += 1
        name = f"bench_engine_{os.getpid()}_{self.n}"
        self.conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        self.conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            self.conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.conn.close()


def run_child(spec: dict, pythonpath: str | None, strace_out: Path | None, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    if strace_out is not None:
        cmd = ["strace", "-f", "--seccomp-bpf", "-e", "trace=fsync,fdatasync", "-o", str(strace_out), *cmd]
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if strace_out is not None:
        result["client_fsyncs_in_commits"] = _count_marked(strace_out)
        strace_out.unlink()
    return result


def _count_marked(path: Path) -> int:
    """fsync/fdatasync calls (fd >= 0) between fsync(-1) and fsync(-2) markers of the same process."""
    inside: set[str] = set()
    count = 0
    for line in path.read_text().splitlines():
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        pid, call = parts
        if call.startswith("fsync(-1)"):
            inside.add(pid)
        elif call.startswith("fsync(-2)"):
            inside.discard(pid)
        elif (call.startswith("fsync(") or call.startswith("fdatasync(")) and inside and "resumed" not in call:
            count += 1
        elif "<... fsync resumed>" in call or "<... fdatasync resumed>" in call:
            pass
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default=DEFAULT_BATCHES, help="events per commit, comma-separated")
    parser.add_argument("--events", default=None,
                        help=f"about how many events to book per batch size (one number or one per batch; "
                             f"default {DEFAULT_EVENTS}, --quick {QUICK_EVENTS})")
    parser.add_argument("--quick", action="store_true", help="small sizes: about 2 minutes on 2 cores")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
                        help="an existing database to connect to for creating the scratch databases")
    parser.add_argument("--compare", default=None, metavar="REF",
                        help="also measure the ledger_service of this git ref (before), interleaved")
    parser.add_argument("--repeat", type=int, default=1, help="runs per (variant, backend, batch)")
    parser.add_argument("--fsyncs", type=int, default=3000, help="fsync baseline: appends + fsyncs")
    parser.add_argument("--count-events", type=int, default=None,
                        help="events per batch size in the fsync-counting pass (default: min(events, 3 x batch, "
                             "20000), --quick: min(events, 2 x batch, 3000); at least about 100); 0 skips the pass")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/engine_events.json")
    parser.add_argument("--md", type=Path, default=REPO / "benchmarks/results/engine_events.md")
    parser.add_argument("--profile-only", action="store_true",
                        help="only profile one SQLite run (pyinstrument) at --profile-batch / --profile-events")
    parser.add_argument("--profile-batch", type=int, default=1000)
    parser.add_argument("--profile-events", type=int, default=20000)
    parser.add_argument("--profile-out", type=Path, default=REPO / "benchmarks/results/engine_events_profile.txt")
    parser.add_argument("--md-only", action="store_true", help="rewrite --md from the JSON at --out, measuring nothing")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    loadgate.add_arguments(parser)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    if args.md_only:
        args.md.write_text(markdown(json.loads(args.out.read_text())))
        return
    if args.profile_only:
        profile(args)
        return
    batches = [int(b) for b in args.batches.split(",")]
    events_arg = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    events = [int(e) for e in events_arg.split(",")]
    if len(events) == 1:
        events = events * len(batches)
    if len(events) != len(batches):
        raise SystemExit("--events: one number, or one per batch size")
    backends = args.backends.split(",")
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    result: dict = {"benchmark": "engine_events", "command": command,
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()}
    import sqlite3

    import sqlalchemy

    result["machine"].update(sqlite=sqlite3.sqlite_version, sqlalchemy=sqlalchemy.__version__)
    result["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                   cwd=REPO).stdout.strip()
    result["git_dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "ledger_service"], capture_output=True,
                                              text=True, cwd=REPO).stdout.strip())
    gate = loadgate.Gate.from_args(args).start()
    result["load_1m_before"] = gate.load_before
    temp = Path(tempfile.mkdtemp(prefix="engine-events-"))
    pg = None
    try:
        if "postgresql" in backends:
            pg = Postgres(args.pg_url)
            result["machine"]["postgresql"] = pg.version()
            result["postgresql_settings"] = pg.settings()
        variants: list[tuple[str, str | None]] = [("after", None)]
        if args.compare:
            src = export(args.compare, temp / "before-src")
            rev = git_rev(args.compare)
            variants = [("before", str(src)), ("after", None)]
            result["compare"] = {"before": f"{args.compare} ({rev})", "after": "working tree"}
        result["fsync_baseline"] = [fsync_baseline(temp / "books-fsync", args.fsyncs)]
        log(f"fsync baseline: {result['fsync_baseline'][0]['fsyncs_per_s']:,.0f} fsyncs/s")
        runs: list[dict] = []
        result["runs"] = runs
        n = 0
        for batch, target in zip(batches, events):
            for backend in backends:
                for rep in range(args.repeat):
                    for label, pythonpath in variants:
                        n += 1
                        books = temp / f"books-{n}"
                        url = pg.create() if backend == "postgresql" else None
                        spec = {"books": str(books), "db_url": url, "scenario": vars(scenario(target, batch, args.seed))}
                        log(f"{label}: {backend}, batch {batch:,}, ~{target:,} events …")
                        try:
                            out = run_child(spec, pythonpath, None, args.timeout)
                        finally:
                            if url:
                                pg.drop(url)
                            shutil.rmtree(books, ignore_errors=True)
                        out.update(variant=label, backend=backend, batch=batch, target_events=target, repeat=rep)
                        runs.append(out)
                        log(f"  {out['events']:,} events in {out['commits']:,} commits: {out['events_per_s']:,.0f} events/s "
                            f"({out['events_per_cpu_s']:,.0f} per CPU-s), "
                            f"commit median {out['commit_ms_median']:.1f} ms, peak RSS {out['peak_rss_mib']:.0f} MiB, "
                            f"load {out['loadavg_1m']}")
        result["fsync_baseline"].append(fsync_baseline(temp / "books-fsync", args.fsyncs))
        log(f"fsync baseline (after): {result['fsync_baseline'][1]['fsyncs_per_s']:,.0f} fsyncs/s")
        counts: list[dict] = []
        result["fsync_counts"] = counts
        if args.count_events != 0 and shutil.which("strace"):
            for batch, target in zip(batches, events):
                size = args.count_events or (min(target, 2 * batch, 3_000) if args.quick
                                             else min(target, 3 * batch, 20_000))
                for backend in backends:
                    n += 1
                    books = temp / f"books-{n}"
                    url = pg.create() if backend == "postgresql" else None
                    spec = {"books": str(books), "db_url": url, "count": True, "pg_admin": args.pg_url,
                            "scenario": vars(scenario(size, batch, args.seed))}
                    log(f"counting fsyncs: {backend}, batch {batch:,}, ~{max(size, 100):,} events (strace) …")
                    try:
                        out = run_child(spec, None, temp / f"strace-{n}.txt", args.timeout)
                    finally:
                        if url:
                            pg.drop(url)
                        shutil.rmtree(books, ignore_errors=True)
                    commits = out["commits"]
                    row = {"backend": backend, "batch": batch, "events": out["events"], "commits": commits,
                           "client_fsyncs_per_commit": round(out["client_fsyncs_in_commits"] / commits, 2),
                           "journal_fsyncs_per_commit": round(out["journal_fsyncs_in_commits"] / commits, 2)}
                    if "pg_wal_syncs_total" in out:
                        row["pg_wal_syncs_per_commit"] = round(out["pg_wal_syncs_total"] / (commits + out["closes"]), 2)
                    counts.append(row)
                    log(f"  {row}")
        result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if not gate.allow(result):
            print(markdown(result))
            raise SystemExit(3)
        write(args, result)
        log(f"written {args.out} and {args.md}")
    finally:
        if pg is not None:
            pg.close()
        shutil.rmtree(temp, ignore_errors=True)


def profile(args) -> None:
    """Profile one SQLite run (pyinstrument); with --compare REF, the REF package's run first."""
    temp = Path(tempfile.mkdtemp(prefix="engine-events-profile-"))
    try:
        variants: list[tuple[str, str | None]] = [("working tree", None)]
        if args.compare:
            src = export(args.compare, temp / "before-src")
            variants.insert(0, (f"before: {args.compare} ({git_rev(args.compare)})", str(src)))
        command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        parts = [f"# {command}\n"]
        for n, (label, pythonpath) in enumerate(variants):
            out_txt = temp / f"profile-{n}.txt"
            spec = {"books": str(temp / f"books-{n}"), "db_url": None, "profile": str(out_txt),
                    "scenario": vars(scenario(args.profile_events, args.profile_batch, args.seed))}
            log(f"profiling ({label}): sqlite, batch {args.profile_batch:,}, ~{args.profile_events:,} events …")
            out = run_child(spec, pythonpath, None, args.timeout)
            parts.append(
                f"{'=' * 100}\n# {label}: ledger_service from {out['package']}\n"
                f"# pyinstrument (time inside Engine.submit_many only), SQLite, commits of up to "
                f"{args.profile_batch:,} events: {out['events']:,} events in {out['commits']:,} commits, "
                f"{out['submit_seconds']} s in submit_many ({out['events_per_s']:,.0f} events/s while profiled; "
                f"the profiler itself slows call-heavy code 2-3x)\n\n" + out_txt.read_text())
            shutil.rmtree(temp / f"books-{n}", ignore_errors=True)
        args.profile_out.parent.mkdir(parents=True, exist_ok=True)
        args.profile_out.write_text("\n".join(parts))
        log(f"written {args.profile_out}")
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def export(ref: str, dest: Path) -> Path:
    """`git archive REF ledger_service` into `dest` (a folder to put first on PYTHONPATH)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref, "ledger_service"], capture_output=True, check=True, cwd=REPO).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def git_rev(ref: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", ref], capture_output=True, text=True, cwd=REPO).stdout.strip()


# -- report ------------------------------------------------------------------------------------------


def write(args, result: dict) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.md.write_text(markdown(result))


def markdown(result: dict) -> str:
    m = result["machine"]
    base = result.get("fsync_baseline", [])
    lines = [
        "## Engine: mixed seed-like events per second, durable commits (issue 6, row 1)",
        "",
        f"`{result['command']}`, commit `{result.get('git')}`{' + working-tree changes' if result.get('git_dirty') else ''}, "
        f"{result['started'][:16].replace('T', ' ')} UTC.",
        "",
        f"Machine: {m['cpu']}, {m['nproc']} cores, {m['ram_gib']} GiB; Python {m['python']}, SQLite {m.get('sqlite')}, "
        f"SQLAlchemy {m.get('sqlalchemy')}"
        + (f", PostgreSQL {m['postgresql']} on loopback ({_pg_settings(result)})" if m.get("postgresql") else "")
        + f"; {m['platform']}.",
        "",
        "**Baseline, same run, same disk:** "
        + "; ".join(f"{b['fsyncs_per_s']:,.0f} fsyncs/s ({b['fsyncs']:,} appends of {b['bytes_per_append']} bytes + "
                    f"`os.fsync`, load {b['loadavg_1m']})" for b in base)
        + " (before / after the engine runs).",
        "",
    ]
    if result.get("compare"):
        lines += [f"Variants: **before** = `ledger_service` of {result['compare']['before']}, **after** = "
                  f"{result['compare']['after']}; run interleaved, each in a fresh process on fresh books.", ""]
    lines += [
        "| variant | backend | events/commit (max) | mean events/commit | events | commits | **events/s** | "
        "events per CPU-s (client) | commit ms (median) | events/s ÷ fsyncs/s (higher baseline) | peak RSS MiB | load 1m |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    fsyncs_per_s = max(b["fsyncs_per_s"] for b in base) if base else None  # the disk at its least busy
    for r in result.get("runs", []):
        ratio = f"{r['events_per_s'] / fsyncs_per_s:.2f}" if fsyncs_per_s and r["events_per_s"] else "—"
        lines.append(
            f"| {r['variant']} | {r['backend']} | {r['batch']:,} | {r['mean_events_per_commit']:,.0f} | {r['events']:,} | "
            f"{r['commits']:,} | **{r['events_per_s']:,.0f}** | {r['events_per_cpu_s']:,.0f} | {r['commit_ms_median']:,.1f} | {ratio} | "
            f"{r['peak_rss_mib']:,.0f} | {r['loadavg_1m'][0]}–{r['loadavg_1m'][1]} |")
    lines += ["", "events/s counts only the time inside `Engine.submit_many` (each commit: the writer lock, the rules, "
              "the database transaction and its durable commit, the journal append and its fsync). The machine may be "
              "shared (the load column): \"events per CPU-s\" is the booking process's own CPU time, less sensitive "
              "to load (for PostgreSQL the server's work, on the other core, is not in it)."]
    lines += _summary(result)
    counts = result.get("fsync_counts") or []
    if counts:
        lines += [
            "",
            "fsyncs per commit (separate untimed pass under strace, working tree; client = every fsync/fdatasync "
            "of the booking process inside `submit_many`, journal = the journal's own `os.fsync` calls among them; "
            "PostgreSQL WAL syncs = the `pg_stat_wal.wal_sync` delta over the whole booking ÷ (commits + day closes), cluster-wide):",
            "",
            "| backend | events/commit (max) | events | commits | client fsyncs/commit | of which journal | "
            "PostgreSQL WAL syncs/commit |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for c in counts:
            lines.append(f"| {c['backend']} | {c['batch']:,} | {c['events']:,} | {c['commits']:,} | "
                         f"{c['client_fsyncs_per_commit']} | {c['journal_fsyncs_per_commit']} | "
                         f"{c.get('pg_wal_syncs_per_commit', '—')} |")
    kinds = next((r["events_by_kind"] for r in reversed(result.get("runs", []))), None)
    if kinds:
        total = sum(kinds.values())
        lines += ["", "Mix of the last run: " + ", ".join(f"{k} {v / total:.1%}" for k, v in kinds.items()) + "."]
    lines.append("")
    return "\n".join(lines)


def _summary(result: dict) -> list[str]:
    """Before/after per backend and batch (medians of the repeats), and the goal."""
    runs = result.get("runs", [])
    if not runs:
        return []
    import statistics

    cells: dict[tuple, dict[str, list[float]]] = {}
    for r in runs:
        cells.setdefault((r["backend"], r["batch"]), {}).setdefault(r["variant"], []).append(r["events_per_s"])
    out = ["", "| backend | events/commit (max) | before events/s | after events/s | after ÷ before | "
                "after ÷ goal (20,000/s) |", "|---|---:|---:|---:|---:|---:|"]
    for (backend, batch), by in cells.items():
        before = statistics.median(by["before"]) if by.get("before") else None
        after = statistics.median(by["after"]) if by.get("after") else None
        ratio = f"{after / before:.2f}×" if before and after else "—"
        out.append(f"| {backend} | {batch:,} | {before and f'{before:,.0f}' or '—'} | {after and f'{after:,.0f}' or '—'} | "
                   f"{ratio} | {after and f'{after / 20000:.1%}' or '—'} |")
    return out


def _pg_settings(result: dict) -> str:
    s = result.get("postgresql_settings") or {}
    return ", ".join(f"{k}={v}" for k, v in s.items() if k != "data_directory")


if __name__ == "__main__":
    main()
