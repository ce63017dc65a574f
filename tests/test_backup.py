"""`ledger-service backup` / `restore` (issue 17 §1).

- under write load (8 clients posting orders to a real gunicorn server) a backup restores to books
  whose head is a prefix of the live chain and that hold every order acknowledged before the backup
  started; the restored books pass verify and bean-check and serve (SQLite; PostgreSQL when reachable);
- a damaged archive is refused whole: a changed byte, a path traversal, a link, a file the manifest
  does not name, a missing file, a non-empty target.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger_service.ops.archive import MANIFEST, BackupError
from ledger_service.ops.backup import backup
from ledger_service.ops.restore import restore
from ledger_service.store.db import make_engine
from test_api_server import _DB_OF, Server, _env, assert_books_sound, cli, db_args, make_books, sqlite_url

CLIENTS = 8
LOAD_SECONDS = 1.5


def _created(response) -> dict:
    assert response.status_code == 201, (response.status_code, response.text)
    return response.json()


def _post(server: Server, session, path: str, body: dict, idem: str) -> object:
    return session.post(f"{server.url}{path}", json=body, headers={"Idempotency-Key": idem}, timeout=30)


def _event_rows(url: str) -> dict[int, str]:
    db = make_engine(url)
    with db.connect() as connection:
        rows = {seq: h for seq, h in connection.execute(text("SELECT seq, hash FROM events"))}
    db.dispose()
    return rows


def _order_events(url: str) -> set[str]:
    db = make_engine(url)
    with db.connect() as connection:
        found = {o for (o,) in connection.execute(text("SELECT order_id FROM events WHERE order_id IS NOT NULL"))}
    db.dispose()
    return found


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target_db(request):
    if request.param == "sqlite":
        return None, None
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore not installed")
    return request.getfixturevalue("pg_url"), request.getfixturevalue("second_pg_url")


def test_backup_under_load_restores_verifies_and_serves(tmp_path, target_db):
    live_db, restored_db = target_db
    root = tmp_path / "books"
    keys = make_books(root, db_url=live_db)
    server = Server(root, tmp_path / "server.log", workers=3).start()
    try:
        sf, fi = server.session(keys["storefront"]), server.session(keys["finance"])
        _created(_post(server, sf, "/v1/members", {"id": "buyer"}, "m1"))
        _created(_post(server, sf, "/v1/members", {"id": "owner"}, "m2"))
        _created(_post(server, sf, "/v1/members/owner/packs", {"kind": "activation"}, "p1"))
        _created(_post(server, sf, "/v1/merchants", {"id": "shop", "owner": "owner", "region": "441900",
                                                     "channel": "online", "rebate_rate": "0.10"}, "s1"))
        _created(_post(server, fi, "/v1/deposits", {"merchant": "shop", "amount_cny": "100000.00"}, "d1"))

        acked: list[tuple[float, str, int]] = []
        errors: list[BaseException] = []
        stop = threading.Event()
        lock = threading.Lock()

        def client(n: int) -> None:
            session = server.session(keys["storefront"])
            i = 0
            try:
                while not stop.is_set():
                    order = f"o-{n}-{i}"
                    r = _post(server, session, "/v1/orders", {"id": order, "buyer": "buyer", "merchant": "shop",
                                                              "amount_cny": "50.00"}, order)
                    assert r.status_code == 201, r.text
                    with lock:
                        acked.append((time.monotonic(), order, r.json()["seq"]))
                    i += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(LOAD_SECONDS)
        started = time.monotonic()
        archive = tmp_path / "backup.tar.gz"
        out = cli("backup", "--books", str(root), "--to", str(archive), *db_args(root), timeout=120).stdout
        time.sleep(0.3)  # bookings go on after the snapshot
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors[:3]
        assert "writer lock held" in out
        before = [(order, seq) for at, order, seq in acked if at < started]
        assert len(before) >= CLIENTS, len(before)  # the load really ran
        live_rows = _event_rows(sqlite_url(root))
    finally:
        server.stop()

    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    head = manifest["head"]
    assert max(seq for seq, _h in live_rows.items()) > head["seq"], "bookings went on after the snapshot"
    assert live_rows[head["seq"]] == head["hash"]  # the backup's head is on the live chain

    restored = tmp_path / "restored"
    if restored_db:
        _DB_OF[restored] = restored_db
    done = subprocess.run([sys.executable, "-m", "ledger_service.cli", "restore", "--from", str(archive),
                           "--books", str(restored), *db_args(restored)],
                          capture_output=True, text=True, timeout=180, env=_env())
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "verify: ok" in done.stdout
    restored_rows = _event_rows(sqlite_url(restored))
    assert max(restored_rows) == head["seq"]
    assert all(live_rows[seq] == h for seq, h in restored_rows.items())  # a prefix of the live chain
    orders = _order_events(sqlite_url(restored))
    assert {order for order, _seq in before} <= orders  # every order acknowledged before the backup began
    assert_books_sound(restored)

    again = Server(restored, tmp_path / "restored.log", workers=1).start()
    try:
        health = again.session(keys["storefront"]).get(f"{again.url}/health", timeout=20).json()
        assert health["journal_head"]["seq"] == head["seq"]
        r = _post(again, again.session(keys["storefront"]), "/v1/orders",
                  {"id": "after-restore", "buyer": "buyer", "merchant": "shop", "amount_cny": "50.00"}, "ar1")
        assert _created(r)["seq"] == head["seq"] + 1
    finally:
        again.stop()


# -- refusals ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    from ledger_service import config
    from ledger_service.engine import Engine
    from ledger_service.rules.events import Register

    base = tmp_path_factory.mktemp("small")
    engine = Engine.init(base / "books", config.load("seed-a"))
    engine.submit(Register("alice"))
    engine.dispose()
    out = base / "small.tar.gz"
    backup(base / "books", out)
    return out


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()]  # type: ignore[union-attr]


def _rewrite(path: Path, out: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out


def test_a_clean_archive_restores(archive, tmp_path):
    manifest = restore(archive, tmp_path / "ok")
    assert (tmp_path / "ok" / "ledger.sqlite").is_file()
    assert not (tmp_path / "ok" / "db").exists()
    assert (tmp_path / "ok" / "keys" / "signing.key").stat().st_mode & 0o777 == 0o600
    assert manifest["head"]["seq"] >= 3


def _refused(archive_path: Path, tmp_path: Path, message: str) -> None:
    target = tmp_path / "target"
    with pytest.raises(BackupError, match=message):
        restore(archive_path, target)
    assert not target.exists()
    assert not (tmp_path / ".target.restoring").exists()


def test_a_changed_byte_is_refused(archive, tmp_path):
    members = _members(archive)
    members = [(m, (d[:-2] + b"X\n") if m.name.startswith("journal/") and m.name.endswith(".beancount") else d)
               for m, d in members]
    _refused(_rewrite(archive, tmp_path / "bad.tar.gz", members), tmp_path, "SHA-256 differs")


def test_path_traversal_is_refused(archive, tmp_path):
    members = _members(archive)
    evil = tarfile.TarInfo("../evil")
    members.append((evil, b"owned"))
    _refused(_rewrite(archive, tmp_path / "bad.tar.gz", members), tmp_path, "unsafe path")
    assert not (tmp_path / "evil").exists()


def test_a_link_is_refused(archive, tmp_path):
    members = _members(archive)
    link = tarfile.TarInfo("keys/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members.insert(1, (link, b""))
    _refused(_rewrite(archive, tmp_path / "bad.tar.gz", members), tmp_path, "not a regular file")


def test_a_file_missing_or_unlisted_is_refused(archive, tmp_path):
    members = _members(archive)
    dropped = [(m, d) for m, d in members if not m.name.startswith("keys/")]
    _refused(_rewrite(archive, tmp_path / "a.tar.gz", dropped), tmp_path, "missing from the archive")
    extra = members + [(tarfile.TarInfo("journal/extra.beancount"), b"; extra\n")]
    _refused(_rewrite(archive, tmp_path / "b.tar.gz", extra), tmp_path, "not in the manifest")


def test_a_truncated_archive_and_a_full_target_are_refused(archive, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    _refused(cut, tmp_path, "damaged archive|missing|not a readable")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        restore(archive, full)


def test_a_journal_behind_its_database_is_written_on_restore(tmp_path):
    """A backup of books whose last committed entry never reached the journal (a crash between
    the commit and the append): the manifest says so, and the restore writes the tail as a start would."""
    from ledger_service import config
    from ledger_service.audit.verify import verify
    from ledger_service.engine import Engine
    from ledger_service.rules.events import Register

    engine = Engine.init(tmp_path / "books", config.load("seed-a"))
    booked = engine.submit(Register("late"))
    engine.dispose()
    journal = tmp_path / "books" / booked.file
    journal.write_bytes(journal.read_bytes()[: -len(booked.text.encode("utf-8"))])
    manifest = backup(tmp_path / "books", tmp_path / "b.tar.gz")
    assert manifest["journal_lag_entries"] == 1 and manifest["head"]["seq"] == booked.seq
    restore(tmp_path / "b.tar.gz", tmp_path / "restored")
    assert (tmp_path / "restored" / booked.file).read_bytes().endswith(booked.text.encode("utf-8"))
    report = verify(tmp_path / "restored")
    assert report.ok and report.head_seq == booked.seq, [str(f) for f in report.faults]
