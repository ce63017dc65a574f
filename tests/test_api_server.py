"""The API served for real: `ledger-service serve` (gunicorn, 4 worker processes) on books made
by `ledger-service init`, driven over HTTP with `requests`.

- a basic flow over HTTP;
- a race: 8 clients post 200 orders each against one merchant whose deposit covers exactly
  100 of them: exactly 100 are booked, the rest refused, the merchant never below zero;
- crashes: the server's process group is killed with SIGKILL under a load of registrations;
  on restart every registration that was answered 2xx is in the journal exactly once and in
  the database, and the books verify and pass bean-check.

The server runs on the real clock (today in Asia/Shanghai): events carry no "date".
Everything here has a timeout.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from ledger_service.audit.verify import verify
from ledger_service.store import keys as key_store
from ledger_service.store.db import DB_FILENAME, make_engine, sessions

pytestmark = pytest.mark.slow

HTTP_TIMEOUT = 20
START_TIMEOUT = 40


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)  # the books' own SQLite database
    env["PYTHONUNBUFFERED"] = "1"
    return env


_DB_OF: dict[Path, str] = {}  # books made on PostgreSQL: their database URL


def sqlite_url(root: Path) -> str:
    """The books' database: their own SQLite file ($DATABASE_URL being unset for the server),
    or the PostgreSQL database they were made on."""
    return _DB_OF.get(root) or f"sqlite:///{(root / DB_FILENAME).resolve()}"


def db_args(root: Path) -> list[str]:
    return ["--db", _DB_OF[root]] if root in _DB_OF else []


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "ledger_service.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def make_books(root: Path, keys_via_cli: bool = False, db_url: str | None = None) -> dict[str, str]:
    """`init` two days back (the first write closes those empty days), and a key per role:
    the storefront's with `ledger-service keys create` (the secret is its last line) when
    `keys_via_cli`, the others in-process (each CLI start costs seconds)."""
    start = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=2)
    if db_url:
        _DB_OF[root] = db_url
    cli("init", "--books", str(root), "--start", start.isoformat(), *db_args(root))
    keys = {}
    for role in ("storefront", "finance", "auditor"):
        if keys_via_cli and role == "storefront":
            out = cli("keys", "create", "--books", str(root), "--role", role, *db_args(root)).stdout
            keys[role] = out.strip().splitlines()[-1].strip()
        else:
            db = make_engine(sqlite_url(root))
            with sessions(db)() as session, session.begin():
                keys[role] = key_store.create(session, role, "server test")[1]
            db.dispose()
        assert keys[role].startswith("lsk_"), keys[role]
    return keys


def http_session(key: str | None = None) -> requests.Session:
    """A requests session to the local server: no proxy from the environment, the key if any."""
    session = requests.Session()
    session.trust_env = False
    if key:
        session.headers["Authorization"] = f"Bearer {key}"
    return session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bean_check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "beancount.scripts.check", "-C", str(root / "main.beancount")],
                          capture_output=True, text=True, timeout=120, env=_env())


def assert_books_sound(root: Path) -> None:
    report = verify(root, sqlite_url(root))
    assert report.ok, [str(f) for f in report.faults]
    checked = bean_check(root)
    assert checked.returncode == 0, (checked.stdout[-3000:], checked.stderr[-3000:])


class Server:
    """`ledger-service serve` in its own session (process group), so it can be killed whole."""

    def __init__(self, root: Path, log: Path, workers: int = 4, threads: int = 1) -> None:
        self.root, self.log_path, self.workers, self.threads = root, log, workers, threads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledger_service.cli", "serve", "--books", str(self.root),
             "--port", str(self.port), "--workers", str(self.workers), "--threads", str(self.threads),
             *db_args(self.root)],
            stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http_session().get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"the server did not answer /health within {START_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL the whole process group (master and every worker)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=15)
        self._reap_group()
        self.proc = None

    def stop(self) -> None:
        """A graceful stop (SIGTERM to the master), SIGKILL after a timeout."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self._reap_group()
        self.proc = None

    def _reap_group(self) -> None:
        """Wait until no process of the group is left (workers die with the master)."""
        pgid = self.proc.pid
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def session(self, key: str) -> requests.Session:
        return http_session(key)

    def post(self, session: requests.Session, path: str, body: dict | None, idem: str | None = None):
        return session.post(f"{self.url}{path}", json=body,
                            headers={"Idempotency-Key": idem or uuid.uuid4().hex}, timeout=HTTP_TIMEOUT)

    def get(self, session: requests.Session, path: str):
        return session.get(f"{self.url}{path}", timeout=HTTP_TIMEOUT)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def books(tmp_path, request):
    """Books served on the embedded default, and on the local PostgreSQL."""
    root = tmp_path / "books"
    db_url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    return root, make_books(root, db_url=db_url)


@pytest.fixture
def books_cli_keys(tmp_path):
    root = tmp_path / "books"
    return root, make_books(root, keys_via_cli=True)


@pytest.fixture(params=[1, 8], ids=["sync", "threads8"])
def server(books, tmp_path, request):
    """The server with sync workers, and with 8 request threads per worker (group commit)."""
    root, _keys = books
    srv = Server(root, tmp_path / "server.log", threads=request.param)
    yield srv
    srv.stop()


def created(response) -> dict:
    assert response.status_code == 201, (response.status_code, response.text)
    return response.json()


def journal_text(root: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted(root.glob("journal/*/*.beancount")))


# -- (a) a basic flow over HTTP ----------------------------------------------------------------------

def test_basic_flow_over_http(books_cli_keys, tmp_path):
    root, keys = books_cli_keys
    server = Server(root, tmp_path / "server.log")
    try:
        _basic_flow(root, keys, server)
    finally:
        server.stop()


def _basic_flow(root: Path, keys: dict[str, str], server: Server) -> None:
    server.start()
    sf, fi, au = server.session(keys["storefront"]), server.session(keys["finance"]), server.session(keys["auditor"])
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()

    reg = created(server.post(sf, "/v1/members", {"id": "alice"}))
    assert (reg["kind"], reg["date"]) == ("register", today) and re.match(r"^[0-9a-f]{64}$", reg["hash"])
    created(server.post(sf, "/v1/members", {"id": "owner"}))
    created(server.post(sf, "/v1/members/alice/packs", {"kind": "activation"}))
    created(server.post(sf, "/v1/members/owner/packs", {"kind": "activation"}))
    created(server.post(sf, "/v1/merchants", {"id": "shop", "owner": "owner", "region": "441900",
                                              "channel": "offline", "rebate_rate": "0.10"}))
    created(server.post(fi, "/v1/deposits", {"merchant": "shop", "amount_cny": "500.00"}))
    quote = server.post(sf, "/v1/orders/quote", {"id": "o1", "buyer": "alice", "merchant": "shop",
                                                 "amount_cny": "1000.00"})
    assert quote.status_code == 200
    order = server.post(sf, "/v1/orders", {"id": "o1", "buyer": "alice", "merchant": "shop", "amount_cny": "1000.00"},
                        idem="http-o1")
    assert created(order)["postings"] == quote.json()["postings"]
    replay = server.post(sf, "/v1/orders", {"id": "o1", "buyer": "alice", "merchant": "shop", "amount_cny": "1000.00"},
                         idem="http-o1")
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == order.json()
    refused = server.post(sf, "/v1/orders", {"id": "o2", "buyer": "alice", "merchant": "shop", "amount_cny": 1.5})
    assert refused.status_code == 422 and refused.headers["Content-Type"].startswith("application/problem+json")
    assert server.post(http_session(), "/v1/members", {"id": "anon"}).status_code == 401
    assert server.post(au, "/v1/members", {"id": "anon"}).status_code == 403

    holder = server.get(au, "/v1/holders/alice")
    assert holder.status_code == 200 and holder.json()["sv_active"] == "1599.0000"   # 300 + 299 + 10 × 100
    shop = server.get(au, "/v1/merchants/shop").json()
    assert (shop["sp"], shop["can_take_orders"]) == ("400.0000", True)
    supply = server.get(au, "/v1/supply").json()
    assert (supply["issued"], supply["burned"], supply["circulating"]) == ("500.0000", "100.0000", "400.0000")
    event = server.get(au, f"/v1/events/{order.json()['id']}").json()
    assert event["hash"] == order.json()["hash"]
    assert server.get(au, "/openapi.json").status_code == 200

    server.stop()
    assert journal_text(root).count('order_id: "o1"') == 1
    assert_books_sound(root)


# -- (b) the race: 8 clients, one merchant, room for exactly 100 orders ------------------------------------

CLIENTS = 8
ORDERS_PER_CLIENT = 200
FITS = 100


def test_race_for_one_merchants_sp(books, server):
    root, keys = books
    server.start()
    sf, fi = server.session(keys["storefront"]), server.session(keys["finance"])
    created(server.post(sf, "/v1/members", {"id": "buyer"}))
    created(server.post(sf, "/v1/members", {"id": "owner"}))
    created(server.post(sf, "/v1/members/owner/packs", {"kind": "activation"}))
    created(server.post(sf, "/v1/merchants", {"id": "shop", "owner": "owner", "region": "441900",
                                              "channel": "online", "rebate_rate": "0.10"}))
    created(server.post(fi, "/v1/deposits", {"merchant": "shop", "amount_cny": "500.00"}))  # 500 SP at 1.00
    assert server.get(sf, "/v1/merchants/shop").json()["sp"] == "500.0000"
    # an order of 50.00 CNY at 10 % deducts 5.00 ÷ 1.00 = 5 SP: exactly 100 fit in 500 SP

    outcomes: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(n: int) -> None:
        try:
            session = server.session(keys["storefront"])
            barrier.wait(timeout=30)
            for i in range(ORDERS_PER_CLIENT):
                r = server.post(session, "/v1/orders", {"id": f"o-{n}-{i}", "buyer": "buyer", "merchant": "shop",
                                                        "amount_cny": "50.00"})
                rule = r.json().get("rule", "") if r.status_code != 201 else ""
                with lock:
                    outcomes.append((r.status_code, rule))
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=150 - (time.monotonic() - began))
    assert not any(t.is_alive() for t in threads), "clients still running after the timeout"
    assert not errors, errors[:3]

    counts = Counter(outcomes)
    assert len(outcomes) == CLIENTS * ORDERS_PER_CLIENT
    assert counts[(201, "")] == FITS, counts
    # the 100 orders that fit take all 500 SP: every other one finds the store at 0 SP, where it
    # takes no order (merchant.deposit_rule "sp_held": merchant.no_sp)
    assert counts[(409, "merchant.no_sp")] == CLIENTS * ORDERS_PER_CLIENT - FITS, counts
    shop = server.get(sf, "/v1/merchants/shop").json()
    assert shop["sp"] == "0.0000", shop
    supply = server.get(sf, "/v1/supply").json()
    assert (supply["burned"], supply["circulating"]) == ("500.0000", "0.0000"), supply

    server.stop()
    assert len(re.findall(r'^  kind: "order"$', journal_text(root), flags=re.M)) == FITS
    assert_books_sound(root)


# -- (c) crashes: SIGKILL mid-load, restart, nothing lost or doubled ---------------------------------------

CRASH_DELAYS = (0.2, 0.5, 1.0)
WRITERS = 6


def _load(server: Server, key: str, prefix: str, acked: list[str], stop: threading.Event) -> None:
    """Register members until the server dies; record every id answered 2xx."""
    session = server.session(key)
    i = 0
    while not stop.is_set():
        member = f"{prefix}-{i}"
        i += 1
        try:
            r = session.post(f"{server.url}/v1/members", json={"id": member},
                             headers={"Idempotency-Key": member}, timeout=5)
        except requests.RequestException:
            return  # the server is gone
        if 200 <= r.status_code < 300:
            acked.append(member)
        elif r.status_code >= 500:
            return


def _check_acknowledged(server: Server, root: Path, key: str, acked: list[str], tried_prefixes: list[str]) -> None:
    text = journal_text(root)
    session = server.session(key)
    for member in acked:
        assert text.count(f'member: "{member}"') == 1, member
        r = server.get(session, f"/v1/holders/{member}")
        assert r.status_code == 200, (member, r.status_code, r.text)
    # nothing doubled, acknowledged or not
    for prefix in tried_prefixes:
        found = Counter(re.findall(rf'member: "({re.escape(prefix)}-[0-9]+)"', text))
        assert all(n == 1 for n in found.values()), [m for m, n in found.items() if n != 1]


def test_crash_under_load_loses_nothing_answered(books, server):
    root, keys = books
    all_acked: list[str] = []
    prefixes: list[str] = []
    server.start()
    for round_no, delay in enumerate(CRASH_DELAYS):
        acked: list[str] = []
        stop = threading.Event()
        threads = []
        for w in range(WRITERS):
            prefix = f"c{round_no}w{w}"
            prefixes.append(prefix)
            threads.append(threading.Thread(target=_load, args=(server, keys["storefront"], prefix, acked, stop),
                                            daemon=True))
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30              # the load is flowing (every worker booted) ...
        while len(acked) < 3 * WRITERS and time.monotonic() < deadline:
            time.sleep(0.02)
        assert acked, f"no registration answered within 30 s:\n{server.log()}"
        time.sleep(delay)                             # ... then, `delay` later,
        server.kill()                                 # kill -9, master and workers, mid-load
        stop.set()
        for t in threads:
            t.join(timeout=15)
        assert not any(t.is_alive() for t in threads)
        all_acked += acked
        print(f"crash round {round_no}: killed {delay}s into the load, {len(acked)} registrations answered 2xx")

        # answered means written: in the journal before the answer, even before any repair
        text = journal_text(root)
        assert [m for m in acked if text.count(f'member: "{m}"') != 1] == []

        server.start()                                # the workers repair the journal at start
        _check_acknowledged(server, root, keys["storefront"], all_acked, prefixes)
        report = verify(root, sqlite_url(root))       # the server is idle: the books are whole
        assert report.ok, (round_no, [str(f) for f in report.faults])

    assert all_acked, "no registration was answered before the kills: the load did not run"
    # and the books take new writes after the crashes
    session = server.session(keys["storefront"])
    assert server.post(session, "/v1/members", {"id": "after-crashes"}).status_code == 201
    server.stop()
    assert journal_text(root).count('member: "after-crashes"') == 1
    assert_books_sound(root)
