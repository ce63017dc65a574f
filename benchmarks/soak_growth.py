"""Database and journal bytes per order (issue 17 §3): N orders through the engine, one commit each
with an Idempotency-Key (as the API books them), on fresh SQLite books; sizes from SQLite's `dbstat`
after a WAL checkpoint. `full` as a third argument keeps each whole response (the behaviour before
retention) for comparison. Prints one JSON line.

    python benchmarks/soak_growth.py /tmp/soak-books 100000 [full]
"""
import hashlib, json, os, sqlite3, sys, time
from datetime import date, timedelta
from pathlib import Path
from ledger_service import config
from ledger_service.engine import Engine, Idempotency
from ledger_service.rules.events import BuyPack, Deposit, OpenStore, Order, Register

N = int(sys.argv[2]); root = Path(sys.argv[1]); full = len(sys.argv) > 3
if full:  # the behaviour before: the whole response kept
    orig = Idempotency.store
    def store(self, session, status, body, event_id=None):
        if event_id is not None:
            from ledger_service.engine import _EVENT_BY_ID, booked_of_row
            row = session.connection().execute(_EVENT_BY_ID, {"id": event_id}).first()
            body = booked_of_row(row).to_json() if row is not None else body
        return orig(self, session, status, body)
    Idempotency.store = store
today = date(2026, 11, 30)
e = Engine.init(root, config.load("seed-a"), start=today, clock=lambda: today)
for m in ("owner", *(f"b{i}" for i in range(100))):
    e.submit(Register(m))
e.submit(BuyPack("owner", "activation"))
e.submit(OpenStore("shop", "owner", "441900", "online", "0.10"))
e.submit(Deposit("300000.00", "shop"))  # 300,000 SP: 10 % of 10.00 CNY is 1 SP an order
def sizes():
    db = root / "ledger.sqlite"
    c = sqlite3.connect(db); c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tables = dict(c.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    c.close()
    journal = sum(p.stat().st_size for p in (root / "journal").rglob("*.beancount"))
    return db.stat().st_size, journal, tables
db0, j0, t0 = sizes()
start = time.monotonic()
for i in range(N):
    body = {"id": f"o{i}", "buyer": f"b{i % 100}", "merchant": "shop", "amount_cny": "10.00"}
    h = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    e.submit(Order(f"o{i}", f"b{i % 100}", "shop", "10.00", None), idempotency=Idempotency(f"key-{i:08d}-{os.getpid()}", h, "a1b2c3d4e5f6"))
secs = time.monotonic() - start
db1, j1, t1 = sizes()
idem = t1.get("idempotency_keys", 0) + t1.get("sqlite_autoindex_idempotency_keys_1", 0) + t1.get("ix_idempotency_keys_created", 0) \
    - t0.get("idempotency_keys", 0) - t0.get("sqlite_autoindex_idempotency_keys_1", 0) - t0.get("ix_idempotency_keys_created", 0)
print(json.dumps({"mode": "full response" if full else "event id", "orders": N, "seconds": round(secs, 1),
                  "db_bytes_per_order": round((db1 - db0) / N), "journal_bytes_per_order": round((j1 - j0) / N),
                  "idempotency_bytes_per_order": round(idem / N),
                  "tables_delta": {k: round((v - t0.get(k, 0)) / N) for k, v in sorted(t1.items()) if v - t0.get(k, 0) > 0}}))
