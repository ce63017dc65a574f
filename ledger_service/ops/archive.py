"""What a backup archive is, and the database tools both directions need.

An archive is a tar file (gzip-compressed) whose first member is `manifest.json`:

    {"format": "ledger-backup/1", "created": "<UTC ISO time>",
     "head": {"seq": N, "hash": "<64 hex>", "open_day": "YYYY-MM-DD"},
     "database": {"kind": "sqlite" | "postgresql", "file": "db/ledger.sqlite" | "db/postgres.dump"},
     "journal_lag_entries": 0, "versions": {...},
     "files": {"<path>": {"sha256": "<64 hex>", "bytes": N}, ...}}

followed by every file the manifest names (regular files only, relative paths, sorted).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath

from sqlalchemy.engine import make_url

FORMAT = "ledger-backup/1"
MANIFEST = "manifest.json"
SQLITE_DUMP = "db/ledger.sqlite"
PG_DUMP = "db/postgres.dump"
CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup that cannot be taken, or an archive that is refused (named, never half-restored)."""


def sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def safe_member_name(name: str) -> bool:
    """A relative POSIX path with no `..`, no empty or `.` part, no backslash, no NUL."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return False
    parts = PurePosixPath(name).parts
    return bool(parts) and all(p not in ("", ".", "..") for p in parts) and "/".join(parts) == name


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def libpq(url: str) -> tuple[list[str], dict[str, str]]:
    """Command-line connection options for pg_dump/pg_restore/psql from a SQLAlchemy URL, and the
    environment holding its password (PGPASSWORD): the password never appears on a command line."""
    parsed = make_url(url)
    args = []
    if parsed.host:
        args += ["--host", parsed.host]
    if parsed.port:
        args += ["--port", str(parsed.port)]
    if parsed.username:
        args += ["--username", parsed.username]
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return args + ["--dbname", parsed.database or "postgres"], env


def pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found on PATH: install the PostgreSQL client tools, or back the "
                          "database up with a base backup and WAL archiving (README \"Operating it\")")
    return found


def pg_tool_version(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        return None
    done = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return done.stdout.strip() or None
