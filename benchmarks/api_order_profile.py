"""Where one API order's time goes: N orders through the Flask app in-process, under pyinstrument.

    python benchmarks/api_order_profile.py --orders 500

No HTTP server and no concurrency: the per-request cost of the application itself (routing,
validation, auth, idempotency, the engine's booking, commit and fsync). Writes the text
profile to benchmarks/results/api_order_profile.txt and prints ms per order.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/api_order_profile.txt")
    args = parser.parse_args()
    from pyinstrument import Profiler

    from ledger_service import config
    from ledger_service.api.app import create_app
    from ledger_service.engine import Engine
    from ledger_service.store import keys as key_store

    books = Path(tempfile.mkdtemp(prefix="api-profile-")) / "books"
    today = date.today()
    Engine.init(books, config.load("seed-a"), start=today - timedelta(days=1), clock=lambda: today).dispose()
    app = create_app(books, clock=lambda: today)
    engine = app.extensions["ledger_engine"]
    with engine.Session() as session, session.begin():
        _, storefront = key_store.create(session, "storefront", "profile")
        _, finance = key_store.create(session, "finance", "profile")
    client = app.test_client()

    def post(path, body, key, expect=201):
        response = client.post(path, json=body, headers={"Authorization": f"Bearer {key}",
                                                         "Idempotency-Key": uuid.uuid4().hex})
        assert response.status_code == expect, (path, response.status_code, response.get_data(as_text=True))

    post("/v1/members", {"id": "owner"}, storefront)
    post("/v1/members/owner/packs", {"kind": "activation"}, storefront)
    post("/v1/merchants", {"id": "shop", "owner": "owner", "region": "441900", "channel": "offline",
                           "rebate_rate": "0.01"}, storefront)
    post("/v1/deposits", {"merchant": "shop", "amount_cny": "300000.00"}, finance)
    for n in range(8):
        post("/v1/members", {"id": f"buyer{n}"}, storefront)
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    profiler.start()
    for n in range(args.orders):
        post("/v1/orders", {"id": f"o{n}", "buyer": f"buyer{n % 8}", "merchant": "shop", "amount_cny": "100.00"},
             storefront)
    profiler.stop()
    elapsed = time.perf_counter() - started
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    header = (f"# {args.orders} orders through the Flask app in-process (test client, SQLite, fsync on): "
              f"{elapsed * 1000 / args.orders:.2f} ms per order ({args.orders / elapsed:.0f} orders/s on one core)\n"
              f"# command: python {' '.join(sys.argv)}\n\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + text)
    print(header.strip())
    engine.dispose()
    shutil.rmtree(books.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
