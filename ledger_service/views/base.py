"""What every derived view is: a module with the same small interface.

A derived view is a pure function of the journal kept on disk beside it (the ledger tier's
summaries, the holder index, the event log and its checkpoints). Each is a module
of this package that provides:

    updater(books_root, rebuild=False) -> Update   extend the view from the days closed
    checker(books_root) -> Check                   compare the view with a rebuild, as the
                                                   journal streams by
    compare(books_root) -> list[Fault]             the same, reading the journal itself

`views.update` (the engine's `on_days_closed` hook) reads the journal's day files once and
feeds each view's `Update` the days it wants; `verify` streams the journal once and feeds
each view's `Check`. A view never imports the engine, `audit` or the Fava extension.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, MetaData, create_engine, event

from ..entries import Entry
from ..faults import Fault
from ..journal import DayFile, make_private_dirs, private_file, relative, write_private
from ..state import State

LEDGER_DIR = "ledger"  # every view lives in BOOKS/ledger/
LOCK = ".lock"  # BOOKS/ledger/.lock: one writer of the views at a time


class ViewError(Exception):
    """The journal cannot be folded into a view (the view is left as it was; the others are written)."""


class Update(Protocol):
    """One view's update in progress: fed the days it wants, in journal order, then finished."""

    def wants(self, day: DayFile) -> bool:
        """Whether this view reads `day` (asked under the books' writer lock, `day.closed` unread)."""

    def add(self, day: DayFile) -> None:
        """Take in one day (`day.closed` read). Raises ViewError when the journal does not allow it."""

    def finish(self, days: Sequence[DayFile]) -> list[str]:
        """Write the view (`days`: every day file of the journal); the files written, relative to the books."""

    def close(self) -> None:
        """Release what the update holds (an unfinished update writes nothing)."""


class Check(Protocol):
    """One view compared with what the journal gives, fed every directive as the journal streams by."""

    def feed(self, path: Path, directive: Any, entry: Entry | None, state: State | None) -> None:
        """`directive` of journal file `path`; `entry` its conversion (None: not an entry of the
        chain) and `state` the position after it was applied (None: no position)."""

    def finish(self) -> list[Fault]:
        """Every difference between the view on disk and a rebuild."""


class View(Protocol):
    """A view module (see the module docstring)."""

    def updater(self, books_root: Path, rebuild: bool = False) -> Update: ...

    def checker(self, books_root: Path) -> Check: ...

    def compare(self, books_root: Path | str) -> list[Fault]: ...


def sqlite_engine(path: Path, metadata: MetaData | None = None) -> Engine:
    """A SQLAlchemy engine on a view's SQLite file (created 0600, its folder 0700; SQLite gives
    its -wal and -shm files the same mode), its tables created from `metadata` if given. WAL:
    readers never block the writer; synchronous=NORMAL: derived data."""
    make_private_dirs(path.parent)
    if not path.exists():
        private_file(path)
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    if metadata is not None:
        metadata.create_all(engine)
    return engine


def write_if_changed(path: Path, text: str) -> bool:
    """Write a view's published file atomically (0600, its folder 0700) unless it holds `text`
    already; True when it was written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    make_private_dirs(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    write_private(tmp, text.encode("utf-8"))
    os.replace(tmp, path)
    return True


def dated_files(folder: Path, suffix: str) -> dict[date, Path]:
    """The files `YYYY-MM-DD<suffix>` in `folder`, by day, oldest first (other names left out)."""
    out: dict[date, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*" + suffix)):
            try:
                out[date.fromisoformat(path.name[: -len(suffix)])] = path
            except ValueError:
                continue
    return out


def publish_dated(root: Path, wanted: dict[date, tuple[Path, str]], stale: dict[date, Path] | None) -> list[str]:
    """Write each day's published file (`write_if_changed`); on a rebuild, `stale` holds the files
    present before it, and those of days not in `wanted` (days the journal has not closed) are
    removed. Returns the files written, relative to the books."""
    written = [relative(root, path) for path, text in wanted.values() if write_if_changed(path, text)]
    for day, path in (stale or {}).items():
        if day not in wanted:
            path.unlink()
    return written
