"""The books on disk: `main.beancount` and one journal file per business day.

    BOOKS/
      main.beancount                      options, the plugin, commodities, accounts,
                                          include "journal/*/*.beancount"
      journal/2026-01/2026-01-05.beancount  every entry of that business day, in order
      ledger.sqlite                       the operational database (default engine)

Writes are whole entries appended with O_APPEND and flushed with fsync (and the
directory fsynced when a file is created) before an event is reported booked.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Iterator

from . import accounts
from .amounts import COMMODITIES

MAIN = "main.beancount"
JOURNAL_GLOB = "journal/*/*.beancount"
LOCK = ".lock"
PLUGIN = "ledger_service.plugin"
# The books are the owner's alone: every folder 0700, every file 0600 (journal, database,
# ledger tier, locks, records), whatever the umask (a umask only removes bits).
DIR_MODE = 0o700
FILE_MODE = 0o600

_COMMODITY_NAMES = {"CNY": "人民币 Chinese yuan", "SV": "共享值 share value", "SP": "共享积分 share points"}


def day_file(day: date) -> str:
    """The journal file of a business day, relative to the books."""
    return f"journal/{day:%Y-%m}/{day.isoformat()}.beancount"


def main_text(genesis_day: date, title: str = "共享购 points ledger — journal") -> str:
    d = genesis_day.isoformat()
    lines = [
        "; The journal: every event of the points platform, one transaction each, hash-chained.",
        "; Written by ledger-service. Check it with: bean-check main.beancount",
        f'option "title" "{title}"',
        'option "operating_currency" "CNY"',
        'option "booking_method" "STRICT"',
        f'plugin "{PLUGIN}"',
        "",
    ]
    for currency in COMMODITIES:
        lines += [f"{d} commodity {currency}", f'  name: "{_COMMODITY_NAMES[currency]}"']
    lines.append("")
    for account, currency, purpose in accounts.CHART:
        lines += [f"{d} open {account} {currency}", f'  purpose: "{purpose}"']
    lines += ["", f'include "{JOURNAL_GLOB}"', ""]
    return "\n".join(lines)


class Books:
    """A books folder: paths, the writer lock, whole-entry appends."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def main(self) -> Path:
        return self.root / MAIN

    def path(self, relative: str) -> Path:
        return self.root / relative

    def exists(self) -> bool:
        return self.main.is_file()

    def journal_files(self) -> list[Path]:
        return sorted(self.root.glob(JOURNAL_GLOB))

    def size(self, relative: str) -> int:
        try:
            return self.path(relative).stat().st_size
        except FileNotFoundError:
            return 0

    def lock(self):
        """The one writer at a time, across processes (gunicorn workers, CLI)."""
        return file_lock(self.root / LOCK)

    def append(self, chunks: list[tuple[str, bytes]]) -> None:
        """Append byte chunks to their files, in order, and make them durable."""
        by_file: dict[str, list[bytes]] = {}
        for relative, data in chunks:
            by_file.setdefault(relative, []).append(data)
        for relative, parts in by_file.items():
            path = self.path(relative)
            created = not path.exists()
            if created:
                make_private_dirs(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
            try:
                data = b"".join(parts)
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError as exc:  # name the file (a write or fsync error does not)
                exc.filename = exc.filename or str(path)
                raise
            finally:
                os.close(fd)
            if created:
                _fsync_dir(path.parent)
                _fsync_dir(path.parent.parent)

    def truncate(self, relative: str, size: int) -> None:
        path = self.path(relative)
        if not path.exists():
            return
        with open(path, "r+b") as handle:
            handle.truncate(size)
            handle.flush()
            os.fsync(handle.fileno())

    def cut_back(self, relative: str, size: int) -> int:
        """Undo a failed append: cut the file back to `size` bytes (remove it if it held none
        before); nothing to do when no byte was written. Returns the bytes cut."""
        path = self.path(relative)
        current = self.size(relative)
        if current <= size and (size > 0 or not path.exists()):
            return 0
        if size == 0:
            path.unlink()
            return current
        self.truncate(relative, size)
        return current - size

    def write_main(self, genesis_day: date) -> None:
        make_private_dirs(self.root)
        tmp = self.main.with_suffix(".tmp")
        write_private(tmp, main_text(genesis_day).encode("utf-8"))
        os.replace(tmp, self.main)
        _fsync_dir(self.root)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on `path`, created if missing, held for the block."""
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError:  # a read-only disk or lock file: flock works on a read-only descriptor too
        if not path.exists():
            raise
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def make_private_dirs(path: Path | str) -> None:
    """Create `path` and its missing parents, each 0700 (mkdir -p would give the parents 0777 − umask)."""
    path = Path(path)
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)


def private_file(path: Path | str) -> None:
    """Create `path` empty, 0600, unless it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)


def write_private(path: Path | str, data: bytes) -> None:
    """Write `path` whole (created or truncated), 0600, and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a leftover file keeps its mode through O_CREAT
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
