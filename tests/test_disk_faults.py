"""A failing disk (issue 10 §3): the journal write fails after the database commit.

In-process (Flask test client, SQLite and PostgreSQL): the journal append is made to fail
(half an entry reaches the disk, then ENOSPC). The booking answers 503
`journal.unavailable` naming the booked event; no torn bytes are left; every later write is
refused with the same 503 until the journal has caught up; reads keep working; `/health`
answers 503 `degraded` with the lag. When the disk recovers the next booking rewrites the
journal's tail (and logs it), and a retry under the same Idempotency-Key returns the event.

A worker that starts while the journal cannot be repaired boots degraded instead of failing.

For real (`ledger-service serve`, gunicorn; when the tests run as root, the server runs without
the capabilities that bypass file modes, so file modes bind it as they bind an unprivileged
user): the day file is made read-only (`chmod a-w`) while the server runs.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import resource
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from beancount.parser import parser

from ledger_service.api.app import create_app
from ledger_service.journal import Books

from api_helpers import assert_problem, build_world, journal_bytes, make_api, ok
from test_api_server import _env, db_args, free_port, http_session, make_books, sqlite_url
from test_repair import assert_journal_is_the_database

ORDER = {"id": "o-fault", "buyer": "bob", "merchant": "shop1", "amount_cny": "100.00"}


class FailingAppend:
    """Replaces one engine's `books.append`: while `failing`, half of the first chunk reaches
    the disk, then the write fails with ENOSPC (a full disk)."""

    def __init__(self, books: Books) -> None:
        self.books = books
        self.real = books.append
        self.failing = True
        self.calls = 0
        books.append = self

    def __call__(self, chunks):
        self.calls += 1
        if not self.failing:
            return self.real(chunks)
        relative, data = chunks[0]
        self.real([(relative, data[:len(data) // 2])])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.books.path(relative)))


def parse_clean(root: Path) -> None:
    """Every journal file parses with no error: no torn entry anywhere."""
    for path in sorted(root.glob("journal/*/*.beancount")):
        _entries, errors, _ = parser.parse_file(str(path))
        assert not errors, (path, errors)


def health(api) -> tuple[int, dict]:
    r = api.client.get("/health")
    return r.status_code, r.get_json()


# -- in-process: the append fails after the commit ------------------------------------------------

def test_journal_write_failure_answers_503_and_reads_keep_working(tmp_path, clock, db_url, caplog):
    caplog.set_level(logging.INFO, logger="ledger_service")
    api = make_api(tmp_path / "books", clock, db_url=db_url)
    build_world(api)
    root = api.engine.books.root
    before = journal_bytes(root)
    seq_before = api.engine.head()["seq"]
    fault = FailingAppend(api.engine.books)

    r = api.post("/v1/orders", ORDER, idem="key-o-fault")
    body = assert_problem(r, 503, "journal.unavailable")
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    event_id = f"E{seq_before + 1:09d}"
    assert body["booked"] is True and body["event_id"] == event_id, body
    assert body["journal_lag_entries"] == 1, body
    assert event_id in body["detail"] and "Idempotency-Key" in body["detail"], body
    assert "/tmp" not in body["detail"] and str(root) not in body["detail"], "a server path in the answer"
    # booked in the database, not a byte left in the journal
    assert api.engine.head()["seq"] == seq_before + 1
    assert api.engine.event(event_id)["kind"] == "order"
    assert journal_bytes(root) == before, "torn bytes left in the journal"
    assert re.search(r"journal: \d+ torn bytes cut from journal/", caplog.text), caplog.text
    parse_clean(root)

    # later writes: the same 503, nothing booked; a retry of the booked order too (not yet written)
    r = api.post("/v1/members", {"id": "dave"})
    body = assert_problem(r, 503, "journal.unavailable")
    assert body["booked"] is False and body["journal_lag_entries"] == 1, body
    r = api.post("/v1/orders", ORDER, idem="key-o-fault")
    body = assert_problem(r, 503, "journal.unavailable")
    assert body["event_id"] == event_id and body["booked"] is True, body
    assert api.engine.head()["seq"] == seq_before + 1
    assert journal_bytes(root) == before

    # reads keep working from the database
    assert ok(api.get("/v1/holders/bob"), 200)["id"] == "bob"
    assert ok(api.get("/v1/merchants/shop1"), 200)["id"] == "shop1"
    assert ok(api.get("/v1/supply"), 200)["burned"] != "0.0000"
    assert ok(api.get(f"/v1/events/{event_id}"), 200)["kind"] == "order"
    status, h = health(api)
    assert status == 503, h
    assert h["status"] == "degraded" and h["journal_lag_entries"] == 1 and h["database"] == "ok", h
    assert h["journal_head"]["seq"] == seq_before + 1, h

    # the disk recovers: the next booking rewrites the tail first, then books
    fault.failing = False
    dave = ok(api.post("/v1/members", {"id": "dave"}))
    assert dave["seq"] == seq_before + 2
    assert f"journal repaired: 1 entries rewritten (seq {seq_before + 1}..{seq_before + 1})" in caplog.text
    replay = api.post("/v1/orders", ORDER, idem="key-o-fault")
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true", replay.get_data()
    assert replay.get_json()["id"] == event_id
    status, h = health(api)
    assert status == 200 and h["status"] == "ok" and h["journal_lag_entries"] == 0, h
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(root.glob("journal/*/*.beancount")))
    assert text.count('order_id: "o-fault"') == 1
    assert_journal_is_the_database(api.engine, db_url)


def test_torn_tail_left_when_the_cut_fails_too_is_cut_by_the_next_booking(tmp_path, clock, db_url, monkeypatch):
    api = make_api(tmp_path / "books", clock, db_url=db_url)
    build_world(api)
    root = api.engine.books.root
    fault = FailingAppend(api.engine.books)

    def no_truncate(self, relative, size):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(Books, "truncate", no_truncate)
    body = assert_problem(api.post("/v1/orders", ORDER), 503, "journal.unavailable")
    assert body["booked"] is True
    assert health(api)[0] == 503
    assert assert_problem(api.post("/v1/members", {"id": "dave"}), 503, "journal.unavailable")["booked"] is False
    monkeypatch.undo()
    fault.failing = False
    ok(api.post("/v1/members", {"id": "dave"}))
    parse_clean(root)
    assert_journal_is_the_database(api.engine, db_url)


def test_close_whose_journal_write_fails_is_booked_and_replayed(tmp_path, clock, db_url):
    """A close writes two files (the release into day d's, the price into d+1's): lag 2."""
    api = make_api(tmp_path / "books", clock, db_url=db_url)
    build_world(api)
    before = journal_bytes(api.engine.books.root)
    day = clock.today
    clock.advance()
    fault = FailingAppend(api.engine.books)
    r = api.post(f"/v1/days/{day.isoformat()}/close", None, role="finance", idem="close-1")
    body = assert_problem(r, 503, "journal.unavailable")
    assert body["booked"] is True and body["journal_lag_entries"] == 2, body
    assert journal_bytes(api.engine.books.root) == before
    status, h = health(api)
    assert (status, h["journal_lag_entries"]) == (503, 2), h
    fault.failing = False
    replay = api.post(f"/v1/days/{day.isoformat()}/close", None, role="finance", idem="close-1")
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true", replay.get_data()
    assert replay.get_json()["closed"][0]["date"] == day.isoformat()
    assert_journal_is_the_database(api.engine, db_url)


# -- a worker that starts while the journal cannot be repaired -------------------------------------------

def _cut_last_entry(api) -> int:
    """Cut the journal's last entry (as if the process died after its commit); its seq."""
    from test_repair import rows

    last = rows(api.engine)[-1]
    api.engine.books.truncate(last.file, last.offset)
    return last.seq


def test_worker_start_with_an_unwritable_journal_boots_degraded(tmp_path, clock, db_url, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="ledger_service")
    api = make_api(tmp_path / "books", clock, db_url=db_url)
    build_world(api)
    root = api.engine.books.root
    missing = _cut_last_entry(api)

    def refused(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Books, "truncate", refused)
    monkeypatch.setattr(Books, "append", refused)
    app = create_app(root, db_url, clock)  # a worker start: must not raise
    assert "journal not repaired at start" in caplog.text
    client = app.test_client()
    auth = {"Authorization": f"Bearer {api.auditor}"}
    assert client.get("/v1/holders/alice", headers=auth).status_code == 200
    assert client.get("/v1/supply", headers=auth).status_code == 200
    r = client.get("/health")
    assert r.status_code == 503 and r.get_json()["status"] == "degraded", r.get_json()
    assert r.get_json()["journal_lag_entries"] == 1
    sf = {"Authorization": f"Bearer {api.storefront}", "Idempotency-Key": uuid.uuid4().hex}
    r = client.post("/v1/members", json={"id": "erin"}, headers=sf)
    assert_problem(r, 503, "journal.unavailable")

    monkeypatch.undo()  # the disk recovered
    sf["Idempotency-Key"] = uuid.uuid4().hex
    r = client.post("/v1/members", json={"id": "erin"}, headers=sf)
    assert r.status_code == 201, r.get_data(as_text=True)
    assert f"journal repaired: 1 entries rewritten (seq {missing}..{missing})" in caplog.text
    assert client.get("/health").status_code == 200
    app.extensions["ledger_engine"].dispose()
    assert_journal_is_the_database(api.engine, db_url)


FORGED = b'2026-03-31 * "transfer" "not written by the service"\n  Liabilities:Holders:SP  1.0000 SP\n\n'


def test_worker_start_on_unknown_journal_bytes_serves_reads_and_refuses_writes(tmp_path, clock, db_url):
    api = make_api(tmp_path / "books", clock, db_url=db_url)
    build_world(api)
    root = api.engine.books.root
    last = sorted(root.glob("journal/*/*.beancount"))[-1]
    with open(last, "ab") as handle:
        handle.write(FORGED)
    before = journal_bytes(root)
    app = create_app(root, db_url, clock)  # boots: the API keeps serving reads
    client = app.test_client()
    assert client.get("/v1/holders/alice", headers={"Authorization": f"Bearer {api.auditor}"}).status_code == 200
    r = client.get("/health")
    assert r.status_code == 503 and r.get_json()["status"] == "fault", r.get_json()
    sf = {"Authorization": f"Bearer {api.storefront}", "Idempotency-Key": uuid.uuid4().hex}
    assert_problem(client.post("/v1/members", json={"id": "erin"}, headers=sf), 503, "journal.fault")
    assert journal_bytes(root) == before
    app.extensions["ledger_engine"].dispose()


# -- for real: gunicorn bound by file modes (a read-only day file and lock), or by a file-size limit ---

START_TIMEOUT = 40
HTTP_TIMEOUT = 20


# Root's capabilities that bypass file modes: without them, `chmod a-w` binds the server as it
# would an unprivileged user. (Dropped from the bounding and inheritable sets, so they are gone
# from the exec'd server; setpriv execs, so the server keeps the same pid.)
_DROP = "-dac_override,-dac_read_search"


def _unprivileged() -> list[str]:
    """The command prefix that makes file modes bind the server when the tests run as root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--bounding-set={_DROP}", f"--inh-caps={_DROP}"]


class FaultyServer:
    """`ledger-service serve` (2 workers) in its own process group, as an unprivileged user."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root, self.log_path = root, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, file_size_limit: int | None = None) -> "FaultyServer":
        """Start; with `file_size_limit` (bytes) no file of the server may grow past it (RLIMIT_FSIZE,
        SIGXFSZ ignored so a write past it fails with EFBIG: a full disk)."""
        def limit() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.RLIM_INFINITY))

        env = _env()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*_unprivileged(), sys.executable, "-m", "ledger_service.cli", "serve", "--books", str(self.root),
                 "--port", str(self.port), "--workers", "2", *db_args(self.root)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                preexec_fn=limit if file_size_limit is not None else None)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the server exited with {self.proc.returncode}:\n{self.log()}"
            try:
                if http_session().get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"no /health within {START_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def workers(self) -> set[int]:
        pid = self.proc.pid
        try:
            return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
        except FileNotFoundError:
            return set()

    def stop(self) -> None:
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
        self.proc = None

    def post(self, key: str, path: str, body: dict, idem: str | None = None):
        return http_session(key).post(f"{self.url}{path}", json=body,
                                      headers={"Idempotency-Key": idem or uuid.uuid4().hex}, timeout=HTTP_TIMEOUT)

    def get(self, key: str | None, path: str):
        return http_session(key).get(f"{self.url}{path}", timeout=HTTP_TIMEOUT)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served_books(tmp_path, request):
    """Books made by `ledger-service init`, on SQLite and on PostgreSQL."""
    db_url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    root = tmp_path / "books"
    return root, make_books(root, db_url=db_url)


def _problem(r) -> dict:
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), (r.status_code, r.text)
    return r.json()


@pytest.mark.slow
def test_served_read_only_journal_answers_503_and_keeps_serving(served_books, tmp_path):
    root, keys = served_books
    sf, fi, au = keys["storefront"], keys["finance"], keys["auditor"]
    server = FaultyServer(root, tmp_path / "server.log")
    acked: list[str] = []
    day_file: Path | None = None
    try:
        server.start()
        day_file = root / _world(server, sf, fi)["file"]
        acked.append("o-1")

        # the disk goes read-only for the service: the day file, and the writer lock's file
        read_only = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        os.chmod(day_file, read_only)
        os.chmod(root / ".lock", read_only)
        journal_before = day_file.read_bytes()
        fault_order = {"id": "o-2", "buyer": "buyer", "merchant": "shop", "amount_cny": "50.00"}
        r = server.post(sf, "/v1/orders", fault_order, idem="k-o-2")
        assert r.status_code == 503, (r.status_code, r.text, server.log()[-3000:])
        body = _problem(r)
        assert body["type"] == "/problems/journal.unavailable" and body["booked"] is True, body
        booked_id = body["event_id"]
        assert r.headers.get("Retry-After", "").isdigit()
        r = server.post(sf, "/v1/orders", {"id": "o-3", "buyer": "buyer", "merchant": "shop", "amount_cny": "50.00"})
        assert r.status_code == 503 and _problem(r)["rule"] == "journal.unavailable", r.text
        assert day_file.read_bytes() == journal_before
        assert server.get(au, "/v1/holders/buyer").status_code == 200
        assert server.get(au, "/v1/supply").status_code == 200
        assert server.get(au, f"/v1/events/{booked_id}").json()["kind"] == "order"
        h = server.get(None, "/health")
        assert h.status_code == 503 and h.json()["status"] == "degraded" and h.json()["journal_lag_entries"] == 1, h.text

        # a worker dies during the fault: the arbiter stays up, the new worker boots degraded
        workers = server.workers()
        assert len(workers) == 2, workers
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and (len(server.workers()) < 2 or victim in server.workers()):
            time.sleep(0.1)
        new = server.workers() - workers
        assert new, f"no new worker:\n{server.log()[-3000:]}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and "journal not repaired at start" not in server.log():
            assert server.proc.poll() is None, f"the arbiter exited:\n{server.log()[-3000:]}"
            time.sleep(0.1)
        assert "journal not repaired at start" in server.log(), server.log()[-3000:]
        for _ in range(6):  # both workers answer reads
            assert server.get(au, "/v1/holders/buyer").status_code == 200
            assert server.get(None, "/health").status_code == 503
        assert server.proc.poll() is None, server.log()[-3000:]

        # the disk recovers: the next order repairs the journal and is booked
        os.chmod(day_file, 0o644)
        os.chmod(root / ".lock", 0o644)
        r = server.post(sf, "/v1/orders", {"id": "o-4", "buyer": "buyer", "merchant": "shop", "amount_cny": "50.00"})
        assert r.status_code == 201, r.text
        acked.append("o-4")
        assert re.search(r"journal repaired: 1 entries rewritten \(seq \d+\.\.\d+\)", server.log()), server.log()[-3000:]
        replay = server.post(sf, "/v1/orders", fault_order, idem="k-o-2")
        assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true", replay.text
        assert replay.json()["id"] == booked_id
        acked.append("o-2")
        assert server.get(None, "/health").status_code == 200
    finally:
        server.stop()
        if day_file is not None:
            os.chmod(day_file, 0o644)
            os.chmod(root / ".lock", 0o644)

    text = "".join(p.read_text(encoding="utf-8") for p in sorted(root.glob("journal/*/*.beancount")))
    for order_id in acked:
        assert text.count(f'order_id: "{order_id}"') == 1, order_id
    assert 'order_id: "o-3"' not in text  # refused with 503: booked nowhere
    from ledger_service.audit.verify import verify

    report = verify(root, sqlite_url(root))
    assert report.ok, [str(f) for f in report.faults]
    checked = subprocess.run([sys.executable, "-m", "beancount.scripts.check", "-C", str(root / "main.beancount")],
                             capture_output=True, text=True, timeout=120, env=_env())
    assert checked.returncode == 0, (checked.stdout[-3000:], checked.stderr[-3000:])


def _world(server: FaultyServer, sf: str, fi: str) -> dict:
    """A buyer, a store with 500 SP, one order booked: its response."""
    for body in ({"id": "buyer"}, {"id": "owner"}):
        assert server.post(sf, "/v1/members", body).status_code == 201
    assert server.post(sf, "/v1/members/owner/packs", {"kind": "activation"}).status_code == 201
    assert server.post(sf, "/v1/merchants", {"id": "shop", "owner": "owner", "region": "441900",
                                             "channel": "online", "rebate_rate": "0.10"}).status_code == 201
    assert server.post(fi, "/v1/deposits", {"merchant": "shop", "amount_cny": "500.00"}).status_code == 201
    first = server.post(sf, "/v1/orders", {"id": "o-1", "buyer": "buyer", "merchant": "shop", "amount_cny": "50.00"})
    assert first.status_code == 201, first.text
    return first.json()


def _order(order_id: str) -> dict:
    return {"id": order_id, "buyer": "buyer", "merchant": "shop", "amount_cny": "50.00"}


@pytest.mark.slow
@pytest.mark.postgres
def test_served_full_disk_answers_503_leaves_no_torn_bytes_and_recovers(pg_url, tmp_path):
    """A full disk for real: RLIMIT_FSIZE just above the day file, so the order's entry is written
    in part (the kernel stops at the limit) and then fails with EFBIG. PostgreSQL only: SQLite's
    own files in the books folder would hit the limit too (the read-only case covers SQLite)."""
    root = tmp_path / "books"
    keys = make_books(root, db_url=pg_url)
    sf, fi, au = keys["storefront"], keys["finance"], keys["auditor"]
    server = FaultyServer(root, tmp_path / "server.log")
    try:
        server.start()
        day_file = root / _world(server, sf, fi)["file"]
        server.stop()
        before = day_file.read_bytes()
        server.log_path = tmp_path / "server-full.log"  # a log file of its own, far below the limit
        server.start(file_size_limit=len(before) + 100)  # the next entry gets 100 bytes in, then EFBIG

        r = server.post(sf, "/v1/orders", _order("o-2"), idem="k-o-2")
        assert r.status_code == 503, (r.status_code, r.text, server.log()[-3000:])
        body = _problem(r)
        assert (body["rule"], body["booked"], body["journal_lag_entries"]) == ("journal.unavailable", True, 1), body
        assert f"{day_file.relative_to(root)}: File too large" in body["detail"], body
        booked_id = body["event_id"]
        assert day_file.read_bytes() == before, "torn bytes left in the journal"
        assert re.search(rf"journal: 100 torn bytes cut from {re.escape(str(day_file.relative_to(root)))}",
                         server.log()), server.log()[-3000:]  # the kernel wrote up to the limit, then EFBIG
        r = server.post(sf, "/v1/orders", _order("o-3"))
        assert r.status_code == 503 and _problem(r)["booked"] is False, r.text
        assert day_file.read_bytes() == before, "the repair attempt left torn bytes"
        assert server.get(au, "/v1/holders/buyer").status_code == 200
        assert server.get(au, f"/v1/events/{booked_id}").status_code == 200
        h = server.get(None, "/health")
        assert h.status_code == 503 and h.json()["journal_lag_entries"] == 1, h.text

        workers = server.workers()
        os.kill(min(workers), signal.SIGKILL)  # a worker restarts during the fault
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and "journal not repaired at start" not in server.log():
            assert server.proc.poll() is None, f"the arbiter exited:\n{server.log()[-3000:]}"
            time.sleep(0.1)
        assert "journal not repaired at start" in server.log(), server.log()[-3000:]
        assert server.proc.poll() is None
        for _ in range(4):
            assert server.get(au, "/v1/supply").status_code == 200
        assert day_file.read_bytes() == before

        # a file-size limit cannot be lifted from a running process: restart without it;
        # the workers' start-up repair writes the missing entry
        server.stop()
        server.log_path = tmp_path / "server-after.log"
        server.start()
        assert "journal repaired: 1 entries rewritten" in server.log(), server.log()[-3000:]
        replay = server.post(sf, "/v1/orders", _order("o-2"), idem="k-o-2")
        assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true", replay.text
        assert replay.json()["id"] == booked_id
        assert server.post(sf, "/v1/orders", _order("o-4")).status_code == 201
    finally:
        server.stop()

    text = "".join(p.read_text(encoding="utf-8") for p in sorted(root.glob("journal/*/*.beancount")))
    for order_id in ("o-1", "o-2", "o-4"):
        assert text.count(f'order_id: "{order_id}"') == 1, order_id
    assert 'order_id: "o-3"' not in text
    from ledger_service.audit.verify import verify

    report = verify(root, pg_url)
    assert report.ok, [str(f) for f in report.faults]
    checked = subprocess.run([sys.executable, "-m", "beancount.scripts.check", "-C", str(root / "main.beancount")],
                             capture_output=True, text=True, timeout=120, env=_env())
    assert checked.returncode == 0, (checked.stdout[-3000:], checked.stderr[-3000:])


def test_openapi_documents_the_503s(tmp_path, clock):
    api = make_api(tmp_path / "books", clock)
    spec = api.client.get("/openapi.json").get_json()
    order = spec["paths"]["/v1/orders"]["post"]["responses"]["503"]
    assert "journal.unavailable" in order["description"]
    assert order["content"]["application/problem+json"]["schema"]["$ref"] == "#/components/schemas/Problem"
    assert {"booked", "event_id", "journal_lag_entries"} <= set(spec["components"]["schemas"]["Problem"]["properties"])
    assert "503" in spec["paths"]["/health"]["get"]["responses"]
    assert "journal_lag_entries" in json.dumps(spec["components"]["schemas"])


def test_health_names_a_last_entry_that_differs_from_the_database(tmp_path, clock):
    api = make_api(tmp_path / "books", clock)
    build_world(api)
    path = sorted(api.engine.books.root.glob("journal/*/*.beancount"))[-1]
    data = bytearray(path.read_bytes())
    at = data.rindex(b"500.00")  # the deposit's amount, the same length
    data[at:at + 1] = b"9"
    path.write_bytes(bytes(data))
    status, h = health(api)
    assert status == 503 and h["status"] == "fault" and "differs from the database" in h["journal_detail"], h


def test_database_that_cannot_be_written_answers_503_not_500(tmp_path, clock, db_url, monkeypatch):
    """The same disk full under the database (SQLite's file in the books folder): nothing is
    booked, the answer is 503 `database.unavailable`, not a generic 500; /health says so."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    api = make_api(tmp_path / "books", clock, db_url=db_url)
    build_world(api)
    before = journal_bytes(api.engine.books.root)
    seq = api.engine.head()["seq"]

    def full(*args, **kwargs):
        raise OperationalError("INSERT INTO events ...", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(api.engine, "_persist", full)
    r = api.post("/v1/members", {"id": "dave"}, idem="k-dave")
    body = assert_problem(r, 503, "database.unavailable")
    assert r.headers.get("Retry-After", "").isdigit() and "Idempotency-Key" in body["detail"], body
    assert "INSERT" not in body["detail"], body
    monkeypatch.setattr(api.engine, "head", full)
    r = api.client.get("/health")
    assert r.status_code == 503 and r.get_json()["status"] == "down" and r.get_json()["database"] == "unavailable"
    monkeypatch.undo()
    assert api.engine.head()["seq"] == seq and journal_bytes(api.engine.books.root) == before
    assert ok(api.post("/v1/members", {"id": "dave"}, idem="k-dave"))["seq"] == seq + 1
