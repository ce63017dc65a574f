"""`ledger-service restore`: books from an archive (see `archive`), refused whole on any damage.

Refused before anything is put in place: a first member that is not the manifest, an unknown
format, a member that is not a regular file (a link, a device) or whose name is absolute or
holds `..`, a member the manifest does not name or a file it names that is missing, a SHA-256 or
size that differs, a target folder that is not empty, a target database that is not empty, and
a restored database whose chain head is not the manifest's. The files are written into a
staging folder next to the target, which is renamed into place only once everything checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import psycopg

from ..engine import Engine
from ..journal import DIR_MODE, FILE_MODE, make_private_dirs
from ..store.db import database_url, sqlite_file
from .archive import (
    CHUNK,
    FORMAT,
    MANIFEST,
    PG_DUMP,
    SQLITE_DUMP,
    BackupError,
    is_postgres,
    libpq,
    pg_tool,
    safe_member_name,
)

_HEAD = "SELECT seq, head FROM ledger WHERE id = 1"


def restore(archive: Path | str, books: Path | str, db_url: str | None = None) -> dict[str, Any]:
    """Restore the archive into the new books folder `books` (and the database `db_url`, else
    SQLite in the books); returns the manifest."""
    target = Path(books)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} exists and is not empty: restore into a new folder")
    stage = target.with_name(f".{target.name}.restoring")
    if stage.exists():
        shutil.rmtree(stage)
    make_private_dirs(stage)
    os.chmod(stage, DIR_MODE)
    try:
        manifest = _extract(Path(archive), stage)
        url = database_url(target.resolve(), db_url)
        _restore_database(manifest, stage, target.resolve(), url)
        if target.exists():
            target.rmdir()
        os.replace(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if manifest.get("journal_lag_entries"):  # opened once, as a start would: the journal's tail is written
        Engine(target, db_url).dispose()
    return manifest


def _extract(archive: Path, stage: Path) -> dict[str, Any]:
    try:
        tar = tarfile.open(archive, mode="r:*")  # noqa: SIM115 - closed by the `with` below
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{archive.name}: not a readable archive ({exc})") from None
    with tar:
        try:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise BackupError(f"{archive.name}: the first member is not {MANIFEST}")
            manifest = _read_manifest(tar, first)
            expected: dict[str, dict[str, Any]] = manifest["files"]
            seen: set[str] = set()
            while (member := tar.next()) is not None:
                _check_member(member, expected, seen)
                _write_member(tar, member, stage / member.name, expected[member.name])
                seen.add(member.name)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BackupError(f"{archive.name}: damaged archive ({type(exc).__name__}: {exc})") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"manifest mismatch: {len(missing)} file(s) missing from the archive, first {missing[0]}")
    return manifest


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    handle = tar.extractfile(member)
    if handle is None or member.size > 64 << 20:
        raise BackupError("manifest mismatch: the manifest cannot be read")
    try:
        manifest = json.loads(handle.read())
    except ValueError:
        raise BackupError("manifest mismatch: the manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"manifest mismatch: not a {FORMAT} archive")
    files = manifest.get("files")
    database = manifest.get("database")
    head = manifest.get("head")
    if not isinstance(files, dict) or not isinstance(database, dict) or not isinstance(head, dict):
        raise BackupError("manifest mismatch: files, database or head missing")
    for name, entry in files.items():
        if not safe_member_name(name) or not isinstance(entry, dict) or \
                not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("bytes"), int):
            raise BackupError(f"manifest mismatch: bad file entry {name!r}")
    if database.get("file") not in files or database.get("kind") not in ("sqlite", "postgresql"):
        raise BackupError("manifest mismatch: the database file is not in the archive")
    return manifest


def _check_member(member: tarfile.TarInfo, expected: dict[str, Any], seen: set[str]) -> None:
    name = member.name
    if not safe_member_name(name):
        raise BackupError(f"refused: unsafe path in the archive: {name!r}")
    if not member.isfile():
        raise BackupError(f"refused: {name!r} is not a regular file (links and devices are never restored)")
    if name not in expected:
        raise BackupError(f"manifest mismatch: {name!r} is not in the manifest")
    if name in seen:
        raise BackupError(f"manifest mismatch: {name!r} appears twice")
    if member.size != expected[name]["bytes"]:
        raise BackupError(f"manifest mismatch: {name}: {member.size} bytes, "
                          f"the manifest says {expected[name]['bytes']}")


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, out: Path, entry: dict[str, Any]) -> None:
    source = tar.extractfile(member)
    assert source is not None
    make_private_dirs(out.parent)
    digest = hashlib.sha256()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    if digest.hexdigest() != entry["sha256"]:
        raise BackupError(f"manifest mismatch: {member.name}: SHA-256 differs from the manifest")


def _restore_database(manifest: dict[str, Any], stage: Path, target: Path, url: str) -> None:
    kind = manifest["database"]["kind"]
    dump = stage / manifest["database"]["file"]
    if kind == "sqlite":
        if dump != stage / SQLITE_DUMP:
            raise BackupError("manifest mismatch: unexpected database file")
        path = sqlite_file(url)
        if path is None:
            raise BackupError("this archive holds a SQLite database: restore it to SQLite (leave out --db)")
        final = stage / path.relative_to(target) if path.is_relative_to(target) else path
        if final.exists() or (final == path and path.exists()):
            raise BackupError(f"{path} already exists: restore to a new database")
        make_private_dirs(final.parent)
        os.replace(dump, final)
        seq, head = _sqlite_head(final)
    else:
        if dump != stage / PG_DUMP:
            raise BackupError("manifest mismatch: unexpected database file")
        if not is_postgres(url):
            raise BackupError("this archive holds a PostgreSQL dump: name an empty PostgreSQL database with --db URL")
        seq, head = _pg_restore(dump, url)
        dump.unlink()
    shutil.rmtree(stage / "db", ignore_errors=True)
    want = manifest["head"]
    if (seq, head) != (want.get("seq"), want.get("hash")):
        raise BackupError(f"manifest mismatch: the restored database's head is seq {seq} {head}, the manifest's "
                          f"seq {want.get('seq')} {want.get('hash')}")


def _sqlite_head(path: Path) -> tuple[int, str]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = connection.execute(_HEAD).fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the archive's database cannot be read: {exc}") from None
    finally:
        connection.close()
    if row is None:
        raise BackupError("the archive's database holds no books")
    return int(row[0]), str(row[1])


def _pg_restore(dump: Path, url: str) -> tuple[int, str]:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True, connect_timeout=10) as connection:
        row = connection.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
                                 ).fetchone()
        if row is None or row[0]:
            raise BackupError("the target PostgreSQL database is not empty: restore into a new, empty database")
    args, env = libpq(url)
    done = subprocess.run([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                           "--single-transaction", *args, str(dump)],
                          capture_output=True, text=True, env=env, timeout=24 * 3600, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[-500:]}")
    with psycopg.connect(plain, autocommit=True, connect_timeout=10) as connection:
        head = connection.execute(_HEAD).fetchone()
    if head is None:
        raise BackupError("the restored database holds no books")
    return int(head[0]), str(head[1])
