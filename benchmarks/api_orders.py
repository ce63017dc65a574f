"""Orders per second and latency through the real API server (issue #3, #6).

Starts `ledger-service serve --workers W` on fresh books (SQLite by default, or
--db URL), opens one merchant with a deposit large enough for every order, then
C concurrent clients each post N orders. Baseline in the same run: the same
clients calling GET /health on the same server. Prints a table and writes JSON.

    python benchmarks/api_orders.py --workers 2 --clients 8 --orders 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import loadgate
import requests

CLI = [sys.executable, "-m", "ledger_service.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def load(base: str, clients: int, per_client: int, make_request) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def worker(index: int) -> None:
        session = requests.Session()
        mine = []
        codes: dict[int, int] = {}
        for n in range(per_client):
            method, path, body, headers = make_request(index, n)
            start = time.perf_counter()
            response = session.request(method, base + path, json=body, headers=headers, timeout=60)
            mine.append(time.perf_counter() - start)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies), "seconds": round(elapsed, 3), "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2), "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=str, default="8", help="comma-separated client counts, e.g. 8,64")
    parser.add_argument("--orders", type=int, default=200, help="orders per client")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default SQLite in the books)")
    parser.add_argument("--out", type=Path, default=None)
    loadgate.add_arguments(parser)
    args = parser.parse_args()
    gate = loadgate.Gate.from_args(args).start()

    books = Path(tempfile.mkdtemp(prefix="bench-api-"))
    shutil.rmtree(books)
    db = ["--db", args.db] if args.db else []
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    run(CLI + ["init", "--books", str(books), "--start", (today - timedelta(days=1)).isoformat()] + db)
    storefront = run(CLI + ["keys", "create", "--books", str(books), "--role", "storefront"] + db).strip().splitlines()[-1]
    finance = run(CLI + ["keys", "create", "--books", str(books), "--role", "finance"] + db).strip().splitlines()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(CLI + ["serve", "--books", str(books), "--port", str(port), "--workers", str(args.workers)] + db,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "processor": platform.processor() or platform.machine()},
                     "workers": args.workers, "database": args.db or "sqlite", "runs": []}
    try:
        for _ in range(100):
            try:
                if requests.get(base + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)

        def post(path, body, key):
            response = requests.post(base + path, json=body, timeout=60,
                                     headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex})
            assert response.status_code == 201, (path, response.status_code, response.text)

        post("/v1/members", {"id": "owner"}, storefront)
        post("/v1/members/owner/packs", {"kind": "activation"}, storefront)
        post("/v1/merchants", {"id": "shop", "owner": "owner", "region": "441900", "channel": "offline",
                               "rebate_rate": "0.01"}, storefront)
        post("/v1/deposits", {"merchant": "shop", "amount_cny": "300000.00"}, finance)
        for n in range(8):
            post("/v1/members", {"id": f"buyer{n}"}, storefront)

        for clients in [int(c) for c in args.clients.split(",")]:
            run_id = uuid.uuid4().hex[:6]
            auth = {"Authorization": f"Bearer {storefront}"}
            health = load(base, clients, args.orders, lambda i, n: ("GET", "/health", None, auth))
            orders = load(base, clients, args.orders, lambda i, n: (
                "POST", "/v1/orders",
                {"id": f"o{run_id}-{i}-{n}", "buyer": f"buyer{i % 8}", "merchant": "shop", "amount_cny": "100.00"},
                {**auth, "Idempotency-Key": f"{run_id}-{i}-{n}"}))
            results["runs"].append({"clients": clients, "health": health, "orders": orders})
            print(f"{clients:>3} clients  orders {orders['per_second']:>8}/s  p50 {orders['p50_ms']:>7} ms  "
                  f"p99 {orders['p99_ms']:>7} ms  {orders['statuses']}   |   GET /health {health['per_second']:>8}/s  "
                  f"p50 {health['p50_ms']} ms  p99 {health['p99_ms']} ms")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    verify = subprocess.run(CLI + ["verify", "--books", str(books)] + db, capture_output=True, text=True)
    results["verify_exit_code"] = verify.returncode
    print(f"verify after the load: exit {verify.returncode}")
    published = gate.allow(results)
    if args.out and published:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    shutil.rmtree(books, ignore_errors=True)
    if not published:
        raise SystemExit(3)


if __name__ == "__main__":
    main()
