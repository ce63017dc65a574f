"""`ledger-service backup`: a consistent snapshot of live books in one archive (see `archive`).

Consistency: the journal and the database are read as one pair. Under the views' lock and then
the books' writer lock (the lock every booking holds from its commit to its journal append), a
read transaction is opened on the database (SQLite: `BEGIN` and a read; PostgreSQL: a
REPEATABLE READ transaction whose snapshot is exported), the size of every journal file is
recorded and the signing keys and signed checkpoints are copied. The writer lock is then released
(bookings go on) and the database is copied from that transaction (SQLite's online backup API;
`pg_dump --snapshot`), each journal file up to its recorded size (the journal is append-only),
and the ledger tier (its views cannot change: their lock is still held).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from .. import __version__
from ..config import SERVICE_FILE
from ..journal import LOCK, MAIN, Books, make_private_dirs
from ..store import migrate
from ..store.db import DB_FILENAME, database_url, make_engine, sqlite_file
from ..views.base import LEDGER_DIR
from ..views.base import LOCK as VIEWS_LOCK
from .archive import (
    FORMAT,
    MANIFEST,
    PG_DUMP,
    SQLITE_DUMP,
    BackupError,
    is_postgres,
    libpq,
    pg_tool,
    pg_tool_version,
    sha256_file,
)

LOCK_TIMEOUT_SECONDS = 60.0
# Not copied as files: the locks, the database (copied through its snapshot), SQLite's side files.
_SKIPPED_NAMES = {LOCK, VIEWS_LOCK, DB_FILENAME}
_SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".tmp")
_HEAD = "SELECT seq, head, open_day FROM ledger WHERE id = 1"
_LAST_ROW = "SELECT seq, file, \"offset\", length FROM events ORDER BY seq DESC LIMIT 1"


def backup(books: Path | str, to: Path | str, db_url: str | None = None) -> dict[str, Any]:
    """Write the archive of the books at `to` (replaced atomically); returns its manifest."""
    root, target = Path(books), Path(to)
    if not Books(root).exists():
        raise BackupError(f"no books at {root}")
    url = database_url(root, db_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=target.parent) as tmp:
        stage = Path(tmp)
        manifest = _snapshot(root, url, stage)
        manifest["files"] = {rel: _digest(stage / rel) for rel in _files_under(stage)}
        partial = stage.with_name(stage.name + ".tar.gz")
        try:
            _write_tar(stage, manifest, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return manifest


def _digest(path: Path) -> dict[str, Any]:
    digest, size = sha256_file(path)
    return {"sha256": digest, "bytes": size}


def _snapshot(root: Path, url: str, stage: Path) -> dict[str, Any]:
    books = Books(root)
    with _locked(root / LEDGER_DIR / VIEWS_LOCK, root / LOCK) as release_writer:
        with _read_snapshot(url, release_writer) as snap:
            sizes = {str(p.relative_to(root)): p.stat().st_size for p in books.journal_files()}
            for small in ("keys", "checkpoints", MAIN, SERVICE_FILE):
                _copy_tree(root / small, stage / small)
            snap.release_writer()
            snap.copy_database(stage)
        for rel, size in sizes.items():
            _copy_prefix(root / rel, stage / rel, size)
        _copy_tree(root / LEDGER_DIR, stage / LEDGER_DIR)
    for rel in _files_under(stage):
        os.chmod(stage / rel, 0o600)
    lag = _journal_lag(snap.last_row, sizes)
    return {
        "format": FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "head": snap.head, "journal_lag_entries": lag,
        "database": {"kind": "postgresql" if is_postgres(url) else "sqlite",
                     "file": PG_DUMP if is_postgres(url) else SQLITE_DUMP},
        "versions": _versions(url, snap.server_version),
        "lock_held_ms": snap.lock_held_ms,
    }


def _journal_lag(last_row: tuple[int, str, int, int] | None, sizes: dict[str, int]) -> int:
    """0 when the last committed entry is in the copied journal; else 1 (the restored books'
    first start rewrites the missing tail from the database, as after a crash)."""
    if last_row is None:
        return 0
    _seq, file, offset, length = last_row
    return 0 if sizes.get(file, 0) >= offset + length else 1


class _Snapshot:
    """A read transaction on the books' database, opened under the writer lock."""

    def __init__(self, release: Callable[[], float]) -> None:
        self._release = release
        self.head: dict[str, Any] = {}
        self.last_row: tuple[int, str, int, int] | None = None
        self.server_version: str | None = None
        self.lock_held_ms = 0.0

    def release_writer(self) -> None:
        self.lock_held_ms = self._release()

    def copy_database(self, stage: Path) -> None:
        raise NotImplementedError


class _SqliteSnapshot(_Snapshot):
    def __init__(self, release: Callable[[], float], path: Path) -> None:
        super().__init__(release)
        self.connection = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.connection.execute("BEGIN")  # the snapshot starts with the first read
        seq, head, open_day = self.connection.execute(_HEAD).fetchone()
        self.head = {"seq": seq, "hash": head, "open_day": str(open_day)}
        self.last_row = self.connection.execute(_LAST_ROW).fetchone()

    def copy_database(self, stage: Path) -> None:
        out = stage / SQLITE_DUMP
        make_private_dirs(out.parent)
        target = sqlite3.connect(out)
        try:
            self.connection.backup(target)  # one step, from this connection's read transaction
        finally:
            target.close()

    def close(self) -> None:
        self.connection.rollback()
        self.connection.close()


class _PgSnapshot(_Snapshot):
    def __init__(self, release: Callable[[], float], url: str) -> None:
        super().__init__(release)
        self.url = url
        parsed = url.replace("postgresql+psycopg://", "postgresql://")
        self.connection = psycopg.connect(parsed, autocommit=True, connect_timeout=10)
        self.connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = self.connection.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        self.snapshot_id = row[0]
        head = self.connection.execute(_HEAD).fetchone()
        assert head is not None
        self.head = {"seq": head[0], "hash": head[1], "open_day": str(head[2])}
        self.last_row = self.connection.execute(_LAST_ROW).fetchone()
        self.server_version = str(self.connection.info.server_version)

    def copy_database(self, stage: Path) -> None:
        out = stage / PG_DUMP
        make_private_dirs(out.parent)
        args, env = libpq(self.url)
        done = subprocess.run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                               f"--snapshot={self.snapshot_id}", "--file", str(out), *args],
                              capture_output=True, text=True, env=env, timeout=24 * 3600, check=False)
        if done.returncode != 0:
            raise BackupError(f"pg_dump failed: {done.stderr.strip()[-500:]}")

    def close(self) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


@contextmanager
def _read_snapshot(url: str, release: Callable[[], float]) -> Iterator[_Snapshot]:
    path = sqlite_file(url)
    if is_postgres(url):
        pg_tool("pg_dump")  # refused before anything is held
        snap: _SqliteSnapshot | _PgSnapshot = _PgSnapshot(release, url)
    elif path is not None:
        if not path.is_file():
            raise BackupError(f"no database at {path}")
        snap = _SqliteSnapshot(release, path)
    else:
        raise BackupError("backup: the database must be a SQLite file or PostgreSQL")
    try:
        yield snap
    finally:
        snap.release_writer()
        snap.close()


@contextmanager
def _locked(views_lock: Path, writer_lock: Path) -> Iterator[Callable[[], float]]:
    """The views' lock, then the books' writer lock (the order `views.update` takes them). The
    writer lock is tried without blocking and, while it is busy, both are let go and taken again
    (a repair holds the writer lock and then asks for the views' lock). Yields the function that
    lets the writer lock go early (it returns the milliseconds the lock was held)."""
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        views_fd = _flock(views_lock)
        assert views_fd is not None  # (a blocking lock is always taken)
        writer_fd = _flock(writer_lock, block=False)
        if writer_fd is not None:
            break
        _unlock(views_fd)
        if time.monotonic() > deadline:
            raise BackupError(f"the books' writer lock stayed busy for {LOCK_TIMEOUT_SECONDS:.0f} s")
        time.sleep(0.01)
    taken = time.monotonic()
    held: list[int] = [writer_fd]
    held_ms: list[float] = [0.0]

    def release() -> float:
        if held:
            _unlock(held.pop())
            held_ms[0] = round((time.monotonic() - taken) * 1000, 1)
        return held_ms[0]

    try:
        yield release
    finally:
        release()
        _unlock(views_fd)


def _flock(path: Path, block: bool = True) -> int | None:
    make_private_dirs(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _skipped(path: Path) -> bool:
    return path.name in _SKIPPED_NAMES or path.name.endswith(_SKIPPED_SUFFIXES) or path.name.startswith(".backup-")


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a file or folder (SQLite files through the online backup API; locks and side files left out)."""
    if source.is_file():
        if not _skipped(source):
            _copy_file(source, target)
        return
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.is_symlink() and not _skipped(path):
            _copy_file(path, target / path.relative_to(source))


def _copy_file(source: Path, target: Path) -> None:
    make_private_dirs(target.parent)
    if source.suffix == ".sqlite":
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return
    with open(source, "rb") as inp, open(target, "wb") as out:
        while chunk := inp.read(1 << 20):
            out.write(chunk)


def _copy_prefix(source: Path, target: Path, size: int) -> None:
    make_private_dirs(target.parent)
    with open(source, "rb") as inp, open(target, "wb") as out:
        left = size
        while left > 0:
            chunk = inp.read(min(left, 1 << 20))
            if not chunk:
                raise BackupError(f"{source.name} shrank while it was copied")
            out.write(chunk)
            left -= len(chunk)


def _files_under(stage: Path) -> list[str]:
    return sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())


def _write_tar(stage: Path, manifest: dict[str, Any], out: Path) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        body = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(body), 0o600, int(time.time())
        tar.addfile(info, _Bytes(body))
        for rel in manifest["files"]:
            info = tar.gettarinfo(str(stage / rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o600
            with open(stage / rel, "rb") as handle:
                tar.addfile(info, handle)
        raw.flush()
        os.fsync(raw.fileno())


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.pos + size
        out, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return out


def _versions(url: str, server_version: str | None) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        schema = migrate.current(engine)
    finally:
        engine.dispose()
    out: dict[str, Any] = {"ledger_service": __version__, "python": platform.python_version(),
                           "sqlite": sqlite3.sqlite_version, "schema_revision": schema, "platform": sys.platform}
    if is_postgres(url):
        out["postgresql_server"] = server_version
        out["pg_dump"] = pg_tool_version("pg_dump")
    return out
