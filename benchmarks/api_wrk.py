#!/usr/bin/env python3
"""Orders per second through the real API, loaded by a C load generator (issue 15 §1, §2).

The load comes from `wrk` (Debian's package; installed with apt-get when missing and the
script runs as root), scripted in Lua (`benchmarks/wrk/load.lua`): each wrk thread posts
the lines of its own request file, each with its own order id and Idempotency-Key. No Python
client competes for the two cores (`api_orders.py` stays as a cross-check).

Books: a seed-like platform booked through the engine (`seeding.Seeder`: members registered in
referral chains, 70 % with the activation pack, some graded, 8 regional partners, stores online
and offline with referrers, a deposit each), its last day closed yesterday. The order mix posted:
buyers drawn from every member, stores from every store (online orders carry a ship region),
amounts 10.00–200.00 (the stores hold 30 SP each at ~2,000 CNY/SP: a few thousand orders each); `--refused` of them (default 5 %) go to two stores drained to 0 SP
(refused 409 merchant.no_sp); `--replays` (default 2 %) repeat an earlier request of the same
file (same key, same body: answered 201 with Idempotent-Replayed, nothing booked).

For each database (`--db sqlite,postgresql`), each server mode (`--modes`: `sync` =
`serve --workers 2` with gunicorn's sync worker, one request at a time per process;
`threadsN` = `serve --workers 2 --threads N`, request threads whose bookings share commits)
and each client count (`--clients 8,64`), `--runs` times, in this order within a run:
1. `GET /health` of the same server (wrk, the same script without a request file) — the server's own baseline;
2. the stack's ceiling: `benchmarks/wrk/ceiling_app.py` (APIFlask, the same `OrderIn`
   schema, an order-shaped endpoint that validates and books nothing) on gunicorn with the
   same worker class, workers and threads;
3. the orders.
Each for `--duration` seconds after a 2-second warm-up of the same kind. Orders/s counts the
201s that booked (not the replays, not the 409s); the fraction of the ceiling is orders/s ÷
the ceiling's requests/s of the same run. After each database's runs, `ledger-service verify`
checks the books (exit code recorded).

The machine must be idle: the 1-minute load average before the runs must be at most
`--max-load` (default 1.5). During the runs the load average says nothing about others (the
servers and wrk load both cores themselves, the load reaches 2–3), so each measurement also
records the CPU **other** processes used meanwhile: the machine's busy time (/proc/stat) minus
the CPU time of this script, every process it started (servers, wrk) and the PostgreSQL
server's processes (the database under test), in cores averaged over the measurement. Above `--max-others` (default 0.3 cores) in any measurement, or a busy machine
before, the results are not written to `--out` (exit 3) unless `--force`: figures from a
machine others are using are not published. The load averages are recorded too.

    python benchmarks/api_wrk.py --out benchmarks/results/api_wrk.json --md benchmarks/results/api_wrk.md
    python benchmarks/api_wrk.py --quick --force     # a check that it works (about 2 minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from argparse import Namespace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import loadgate  # noqa: E402
import seeding  # noqa: E402
from loadgate import OthersCpu, load1  # noqa: E402

BIN = Path(sys.executable).parent
SCRIPT = str(HERE / "wrk" / "load.lua")
PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        log("installing wrk (apt-get install wrk)")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=dict(os.environ,
                                                                                    DEBIAN_FRONTEND="noninteractive"))
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed: apt-get install wrk")
    return found


# -- books ---------------------------------------------------------------------------------------------------


def pg_database() -> tuple[str, str]:
    import psycopg

    name = f"bench_wrk_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
    return name, f"postgresql+psycopg://{base}/{name}"


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_books(root: Path, db_url: str | None, args: Namespace) -> dict[str, Any]:
    """A seed-like platform whose last seeded day closed yesterday; two stores drained to 0 SP."""
    from ledger_service.rules.events import Deposit, OpenStore, Order
    from ledger_service.store import keys

    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    seeding.START = today - timedelta(days=args.days)
    seed_args = Namespace(members=args.members, merchants=args.merchants, orders_per_day=args.seed_orders,
                          days=args.days, batch=10_000, deposit_cny="60000", injection_cny="1000000", seed=4)
    seeder = seeding.Seeder(root, seed_args, db_url=db_url, update_ledger=False)
    seeder.run()
    engine = seeder.engine.__class__(root, db_url, clock=lambda: today)
    owner = seeder.active[0]
    for dry in ("dry0", "dry1"):  # a store whose deposit one order takes whole: every later order is refused
        engine.submit(OpenStore(dry, owner, "441900", "offline", Decimal("0.10")))
        engine.submit(Deposit(Decimal("1000.00"), merchant=dry))
        sp, value = Decimal(engine.merchant(dry)["sp"]), Decimal(engine.head()["value_cny_per_sp"])
        amount = (sp * value / Decimal("0.10")).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        engine.submit(Order(f"drain-{dry}", seeder.members[1], dry, amount))
        assert Decimal(engine.merchant(dry)["sp"]) < Decimal("0.0005"), engine.merchant(dry)
    with engine.Session() as session, session.begin():
        _key_id, secret = keys.create(session, "storefront", "wrk")
    channel = dict(seeder.channel)
    engine.dispose()
    return {"key": secret, "members": list(seeder.members), "merchants": list(seeder.merchants), "channel": channel}


def request_files(work: Path, books: dict[str, Any], tag: str, threads: int, per_thread: int,
                  args: Namespace) -> str:
    """One file per wrk thread: `key TAB body` lines, order ids unique to this run."""
    rng = random.Random(f"{tag}")
    regions = seeding.REGIONS
    prefix = work / f"requests-{tag}-"
    for t in range(threads):
        lines: list[str] = []
        for i in range(per_thread):
            if lines and rng.random() < args.replays:
                lines.append(lines[rng.randrange(max(0, len(lines) - 50), len(lines))])  # a recent request again
                continue
            if rng.random() < args.refused:
                merchant = rng.choice(("dry0", "dry1"))
            else:
                merchant = rng.choice(books["merchants"])
            body: dict[str, str] = {"id": f"{tag}-{t}-{i}", "buyer": rng.choice(books["members"]),
                                    "merchant": merchant, "amount_cny": f"{rng.randint(1000, 20000) / 100:.2f}"}
            if books["channel"].get(merchant) == "online":
                body["ship_region"] = rng.choice(regions)
            lines.append(f"{tag}-{t}-{i}\t{json.dumps(body, separators=(',', ':'))}")
        (Path(f"{prefix}{t}")).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(prefix)


# -- servers -------------------------------------------------------------------------------------------------


class Server:
    def __init__(self, cmd: list[str], env: dict[str, str], port: int, log_path: Path) -> None:
        self.port = port
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    time.sleep(1.0)  # the workers boot after the master listens
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def api_server(root: Path, db_url: str | None, threads: int, workers: int, work: Path) -> Server:
    port = free_port()
    cmd = [str(BIN / "ledger-service"), "serve", "--books", str(root), "--port", str(port), "--workers",
           str(workers), "--threads", str(threads)] + (["--db", db_url] if db_url else [])
    return Server(cmd, dict(os.environ), port, work / "api.log")


def ceiling_server(threads: int, workers: int, work: Path) -> Server:
    port = free_port()
    worker = "ProblemThreadWorker" if threads > 1 else "ProblemWorker"
    cmd = [str(BIN / "gunicorn"), "--chdir", str(HERE / "wrk"), "--workers", str(workers), "--threads", str(threads),
           "--bind", f"127.0.0.1:{port}", "--no-control-socket", "--access-logfile", "-",
           "--worker-class", f"ledger_service.api.gunicorn_worker.{worker}", "ceiling_app:app"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return Server(cmd, env, port, work / "ceiling.log")


def wrk(binary: str, port: int, script: str, clients: int, seconds: float, env: dict[str, str]) -> dict[str, Any]:
    threads = min(2, clients)
    cmd = [binary, f"-t{threads}", f"-c{clients}", f"-d{round(seconds)}s", "--timeout", "10s", "-s", script,
           f"http://127.0.0.1:{port}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env), timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk said: {done.stdout}\n{done.stderr}")
    out = json.loads(line[len("WRK_JSON "):])
    out["seconds"] = out["duration_us"] / 1e6
    out["per_second"] = round(out["requests"] / out["seconds"], 1)
    return out


# -- the runs ------------------------------------------------------------------------------------------------


def measure(args: Namespace, binary: str, db: str, mode: str, clients: int, books: dict[str, Any], root: Path,
            db_url: str | None, work: Path, run_no: int) -> dict[str, Any]:
    threads = 1 if mode == "sync" else int(mode[len("threads"):])
    loads = [load1()]
    row: dict[str, Any] = {"db": db, "mode": mode, "clients": clients, "run": run_no}
    api = api_server(root, db_url, threads, args.workers, work)
    try:
        get_env = {"WRK_API_KEY": books["key"], "WRK_PATH": "/health"}
        wrk(binary, api.port, SCRIPT, clients, 2, get_env)
        with OthersCpu() as others:
            row["health"] = wrk(binary, api.port, SCRIPT, clients, args.duration, get_env)
        row["health"]["others_cores"] = others.cores
        loads.append(load1())
        ceiling = ceiling_server(threads, args.workers, work)
        try:
            tag = f"c{run_no}{db[0]}{mode}{clients}{uuid.uuid4().hex[:4]}"
            prefix = request_files(work, books, tag, 2, args.per_thread, args)
            env = {"WRK_API_KEY": books["key"], "WRK_REQUESTS_PREFIX": prefix}
            wrk(binary, ceiling.port, SCRIPT, clients, 2, env)
            with OthersCpu() as others:
                row["ceiling"] = wrk(binary, ceiling.port, SCRIPT, clients, args.duration, env)
            row["ceiling"]["others_cores"] = others.cores
        finally:
            ceiling.stop()
        loads.append(load1())
        tag = f"r{run_no}{db[0]}{mode}{clients}{uuid.uuid4().hex[:4]}"
        prefix = request_files(work, books, tag, 2, args.per_thread, args)
        env = {"WRK_API_KEY": books["key"], "WRK_REQUESTS_PREFIX": prefix}
        wrk(binary, api.port, SCRIPT, clients, 2, env)  # warm-up: its own orders
        tag = f"m{run_no}{db[0]}{mode}{clients}{uuid.uuid4().hex[:4]}"
        prefix = request_files(work, books, tag, 2, args.per_thread, args)
        env["WRK_REQUESTS_PREFIX"] = prefix
        with OthersCpu() as others:
            orders = wrk(binary, api.port, SCRIPT, clients, args.duration, env)
        orders["others_cores"] = others.cores
        loads.append(load1())
    finally:
        api.stop()
    booked = orders["statuses"].get("201", 0) - orders["replayed"]
    orders["booked_per_second"] = round(booked / orders["seconds"], 1)
    row["orders"] = orders
    row["fraction_of_ceiling"] = round(orders["booked_per_second"] / row["ceiling"]["per_second"], 3)
    row["loads"] = loads
    row["max_load"] = max(loads)
    row["others_cores"] = max(row[k]["others_cores"] for k in ("health", "ceiling", "orders"))
    log(f"{db:10} {mode:9} {clients:>3} clients: orders {orders['booked_per_second']:>7.1f}/s "
        f"(p50 {orders['latency_us']['p50'] / 1e3:.1f} ms, p99 {orders['latency_us']['p99'] / 1e3:.1f} ms, "
        f"{orders['statuses']}, replayed {orders['replayed']}) = {row['fraction_of_ceiling']:.0%} of the ceiling "
        f"{row['ceiling']['per_second']:.0f}/s; health {row['health']['per_second']:.0f}/s; load {loads}; "
        f"others' CPU {row['others_cores']} cores")
    return row


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["db"], r["mode"], r["clients"]) for r in rows}, key=lambda k: (k[0], k[1], k[2]))
    for db, mode, clients in keys:
        mine = [r for r in rows if (r["db"], r["mode"], r["clients"]) == (db, mode, clients)]
        med = statistics.median
        out.append({
            "db": db, "mode": mode, "clients": clients, "runs": len(mine),
            "orders_per_second": med(r["orders"]["booked_per_second"] for r in mine),
            "p50_ms": med(r["orders"]["latency_us"]["p50"] for r in mine) / 1e3,
            "p99_ms": med(r["orders"]["latency_us"]["p99"] for r in mine) / 1e3,
            "ceiling_per_second": med(r["ceiling"]["per_second"] for r in mine),
            "fraction_of_ceiling": med(r["fraction_of_ceiling"] for r in mine),
            "health_per_second": med(r["health"]["per_second"] for r in mine),
            "health_p99_ms": med(r["health"]["latency_us"]["p99"] for r in mine) / 1e3,
            "statuses": mine[-1]["orders"]["statuses"], "replayed": mine[-1]["orders"]["replayed"],
            "max_load": max(r["max_load"] for r in mine),
            "others_cores": max(r["others_cores"] for r in mine),
        })
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"`{report['command']}` — commit {report['commit']}, {report['machine']}, "
        f"{report['started']}; load (1 min) {report['load_before']} before, {report['load_after']} after.",
        "",
        "| database | server | clients | orders/s (median) | p50 ms | p99 ms | ceiling req/s | of ceiling "
        "| GET /health/s | statuses (last run) | others' CPU, cores (max) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for s in report["summary"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(s["statuses"].items()))
        lines.append(f"| {s['db']} | {s['mode']} | {s['clients']} | {s['orders_per_second']:,.1f} | {s['p50_ms']:.1f} "
                     f"| {s['p99_ms']:.1f} | {s['ceiling_per_second']:,.0f} | {s['fraction_of_ceiling']:.0%} "
                     f"| {s['health_per_second']:,.0f} | {statuses} ({s['replayed']} replayed) | {s['others_cores']} |")
    lines.append("")
    lines.append("verify after the load: " + ", ".join(f"{db} exit {code}" for db, code in report["verify"].items()))
    return "\n".join(lines) + "\n"


def arguments(argv: list[str] | None) -> Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="sqlite,postgresql", help="sqlite,postgresql")
    p.add_argument("--modes", default="sync,threads8", help="sync and/or threadsN (request threads per worker)")
    p.add_argument("--clients", default="8,64")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    p.add_argument("--per-thread", type=int, default=40_000, help="requests in each wrk thread's file")
    p.add_argument("--members", type=int, default=5_000)
    p.add_argument("--merchants", type=int, default=100)
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--seed-orders", type=int, default=2_000)
    p.add_argument("--refused", type=float, default=0.05)
    p.add_argument("--replays", type=float, default=0.02)
    loadgate.add_arguments(p)  # --max-others here applies to each measurement (averaged over it)
    p.add_argument("--quick", action="store_true", help="1 run of 4 s each, smaller books")
    p.add_argument("--out", type=Path)
    p.add_argument("--md", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.per_thread, args.members, args.merchants = 1, 4, 15_000, 1_000, 40
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    binary = ensure_wrk()
    waited = 0
    while load1() > args.max_load and waited < args.wait:  # a run of our own may have just ended: let it decay
        log(f"1-minute load {load1()} > {args.max_load}: waiting")
        time.sleep(15)
        waited += 15
    report: dict[str, Any] = {
        "command": "python benchmarks/api_wrk.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=REPO).stdout.strip(),
        "machine": seeding.machine(), "started": datetime.now().isoformat(timespec="seconds"),
        "load_before": load1(), "rows": [], "verify": {},
    }
    work = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    try:
        for db in args.db.split(","):
            pg_name, db_url = pg_database() if db == "postgresql" else (None, None)
            try:
                root = work / f"books-{db}"
                log(f"{db}: seeding {args.members:,} members, {args.merchants} stores, {args.days} days")
                books = make_books(root, db_url, args)
                for run_no in range(args.runs):
                    for mode in args.modes.split(","):
                        for clients in (int(c) for c in args.clients.split(",")):
                            report["rows"].append(measure(args, binary, db, mode, clients, books, root, db_url,
                                                          work, run_no))
                done = subprocess.run([str(BIN / "ledger-service"), "verify", "--books", str(root)]
                                      + (["--db", db_url] if db_url else []), capture_output=True, text=True)
                report["verify"][db] = done.returncode
                log(f"{db}: verify exit {done.returncode}")
            finally:
                if pg_name:
                    drop_pg(pg_name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_after"] = load1()
    report["summary"] = summarize(report["rows"])
    text = markdown(report)
    print(text)
    others = max((r["others_cores"] for r in report["rows"]), default=0.0)
    if (report["load_before"] > args.max_load or others > args.max_others) and not args.force:
        log(f"NOT PUBLISHED: the 1-minute load before the runs was {report['load_before']} (limit {args.max_load}) "
            f"and other processes used up to {others} cores during a measurement (limit {args.max_others}): "
            "the machine was busy")
        return 3
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.md:
        args.md.write_text(text, encoding="utf-8")
    return 0 if all(code == 0 for code in report["verify"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
