"""The derived views of the journal, in one place: what Fava and the Holder page read.

    views/
      base.py          the interface every view has (`Update`, `Check`), the views' folder and lock
      ledger_tier.py   the summary ledger Fava opens (ledger/main.beancount, months, periods)
      holder_index.py  every holder's position at the last closed day (ledger/holders.sqlite)
      event_log.py     the RFC 6962 Merkle tree over the chain and the daily checkpoints
                       (ledger/event_log.sqlite, checkpoints/YYYY-MM-DD.json), and their proofs
      liabilities.py   the Merkle-sum tree over holders (ledger/liabilities.sqlite,
                       checkpoints/YYYY-MM-DD.liabilities.json) and the holder proof
      signed.py        the signed checkpoints the chain books after each close
                       (checkpoints/YYYY-MM-DD.json) and their check

Each view is a pure function of the journal's closed days, extended as days close and
compared with a rebuild by `verify`. This module is the one entry point:

- `update(books_root)` — extend every view with the days closed since (`on_days_closed`, the
  hook the engine calls after a close, is the same); `rebuild(books_root)` writes them again;
- `checkers(books_root)` — one `Check` per view, for `verify` to feed as it streams the
  journal; `compare(books_root)` — every difference, reading the journal itself.

Views sit below the engine and `audit`, and above the store: they read the journal
(`journal`), fold it (`apply`) and never import the engine, `audit` or Fava.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from ..entries import from_beancount
from ..faults import Fault
from ..journal import Books, DayFile, day_files, file_lock, journal_directives
from . import event_log, holder_index, ledger_tier, liabilities, signed
from .base import LEDGER_DIR, LOCK, Check, Update, View, ViewError

# The views, in the order they are written (the summaries before the index, then the event log, then the
# liabilities tree, whose checkpoint files name the event log's root, then the signed checkpoints' files).
VIEWS: tuple[View, ...] = (ledger_tier, holder_index, event_log, liabilities, signed)

__all__ = ["VIEWS", "ViewError", "checkers", "compare", "on_days_closed", "rebuild", "update"]


def views_lock(root: Path):
    """The views' own writer lock (BOOKS/ledger/.lock): one update at a time."""
    return file_lock(root / LEDGER_DIR / LOCK)


def update(books_root: Path | str, *, rebuild: bool = False, writer_locked: bool = False) -> list[str]:
    """Extend every view with the journal's days it lacks; the files written (relative to the books).

    Deterministic and idempotent: each view is a function of the journal's closed days (and
    the open day's price). Which days are closed is read under the books' writer lock (a day
    being closed by another process is never read half-written); pass `writer_locked=True`
    when the caller already holds it. Each day file is parsed once, for every view that wants
    it. A view the journal cannot be folded into is left as it was, the others are written,
    then its `ViewError` is raised. `rebuild=True` writes every view again from the journal.
    """
    root = Path(books_root)
    books = Books(root)
    if not books.exists():
        raise FileNotFoundError(f"no books at {root}")
    with views_lock(root):
        updates = [view.updater(root, rebuild=rebuild) for view in VIEWS]
        written: list[str] = []
        try:
            with (nullcontext() if writer_locked else books.lock()):
                days = day_files(books)
                wanted = _wanted(days, updates)
            if not days:
                return []
            failed = _feed(wanted, updates)
            for i, u in enumerate(updates):
                if i not in failed:
                    written += u.finish(days)
        finally:
            for u in updates:
                u.close()
        if failed:
            raise failed[min(failed)]
        return written


def _wanted(days: list[DayFile], updates: list[Update]) -> list[tuple[DayFile, list[int]]]:
    """The days some view wants, each with the views that want it, their `closed` read (the
    caller holds the books' writer lock)."""
    wanted = []
    for day in days:
        readers = [i for i, u in enumerate(updates) if u.wants(day)]
        if readers:
            day.read_closed()
            wanted.append((day, readers))
    return wanted


def _feed(wanted: list[tuple[DayFile, list[int]]], updates: list[Update]) -> dict[int, ViewError]:
    """Feed each view its days in order; a view that raises ViewError gets no more (its error returned)."""
    failed: dict[int, ViewError] = {}
    for day, readers in wanted:
        for i in readers:
            if i not in failed:
                try:
                    updates[i].add(day)
                except ViewError as exc:
                    failed[i] = exc
        day.forget()  # one day's directives in memory at a time
    return failed


def on_days_closed(books_root: Path | str, *, writer_locked: bool = False) -> list[str]:
    """The engine's hook after it closed days (or a repair rewrote a close): `update`."""
    return update(books_root, writer_locked=writer_locked)


def rebuild(books_root: Path | str) -> list[str]:
    """Every view written again from the journal (`update(rebuild=True)`)."""
    return update(books_root, rebuild=True)


def checkers(books_root: Path | str) -> list[Check]:
    """One `Check` per view, for a caller that streams the journal (`verify`). The signed checkpoints'
    check reads the liabilities check's recomputed roots."""
    root = Path(books_root)
    checks = [view.checker(root) for view in VIEWS if view is not signed]
    liabilities_check = next(c for c in checks if isinstance(c, liabilities.LiabilitiesCheck))
    return [*checks, signed.SignedCheck(root, liabilities_check)]


def compare(books_root: Path | str) -> list[Fault]:
    """Every view against a rebuild from the journal, in one pass over it (the positions from
    `holder_index.Fold`: the rules are not checked here, `verify` does that)."""
    root = Path(books_root)
    checks = checkers(root)
    fold = holder_index.Fold()
    for path, directive, _errors in journal_directives(Books(root)):
        if directive is not None:
            entry = from_beancount(directive)
            state = fold.apply(entry)
            for check in checks:
                check.feed(path, directive, entry, state)
    return [fault for check in checks for fault in check.finish()]
