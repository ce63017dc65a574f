"""Work the extension pages do on the books, cached and in background threads.

- `HolderView`: the holder index (`views.holder_index`, the journal folded through the
  ledger's last closed day, written as days close) plus the entries booked since
  (`holder_index.since_index`), read in a background thread and cached by the chain head.
  A page reads the index file (milliseconds) and never replays the whole journal.
- `VerifyJob`: `verify(books, use_db=False)` with the derived views' checks, run in the
  background when the books changed since the last recorded verification
  (`audit.record`); the record is what the page shows first.
- `day_entries`: one journal day file as its entries (`journal.day_entries`), cached.

One instance of each per books folder, shared by every Fava ledger and request. The
extension only reads: the journal through `journal`, the views through their readers.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict
from datetime import date
from pathlib import Path
from typing import Any

from .. import reports
from ..audit import record
from ..audit import verify as verify_module
from ..config import Params
from ..journal import Books, JournalEntry
from ..journal import day_entries as read_day_entries
from ..journal import head as journal_head
from ..views.holder_index import AtHead, Reader, Since, since_index

_registry: dict[tuple[str, str], Any] = {}
_registry_lock = threading.Lock()


def _shared(kind: str, root: Path, factory):
    key = (kind, str(root.resolve()))
    with _registry_lock:
        found = _registry.get(key)
        if found is None:
            found = _registry[key] = factory(root)
        return found


def holder_view(root: Path) -> HolderView:
    return _shared("holders", root, HolderView)


def verify_job(root: Path) -> VerifyJob:
    return _shared("verify", root, VerifyJob)


def ranking(root: Path) -> Ranking:
    return _shared("ranking", root, Ranking)


def _head_hash(root: Path) -> str:
    return journal_head(root).get("hash", "")


# -- the background job every page's data shares -------------------------------------------


class BackgroundJob:
    """One piece of work run in a daemon thread at a time: `start` begins it unless it runs
    already, `error` holds the last failure's traceback (the page shows it; the last result
    stays), `done` is set when a run ends."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.done = threading.Event()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


    def start(self, name: str, *args: Any, wait: float = 0.0) -> None:
        """Run `self.work(*args)` in the background unless a run is under way; wait up to `wait` s."""
        started = False
        with self.lock:
            if not self.running:
                self.done.clear()
                self.error = None
                self.thread = threading.Thread(target=self._run, args=args, name=f"{name} {self.root}", daemon=True)
                self.thread.start()
                started = True
        if wait and started:
            self.done.wait(wait)

    def _run(self, *args: Any) -> None:
        try:
            self.work(*args)
        except Exception:  # noqa: BLE001  a background job: any failure is shown on the page, never lost
            self.error = traceback.format_exc(limit=5)
        finally:
            self.done.set()

    def work(self, *args: Any) -> None:
        raise NotImplementedError


# -- holders ------------------------------------------------------------------------------


class HolderView(BackgroundJob):
    """The Holder page's data: the holder index, and the entries booked since."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.since: Since | None = None

    def ensure(self, wait: float = 0.0) -> None:
        """Bring the overlay to the journal's head (in the background); wait up to `wait` s."""
        since = self.since
        if since is None or since.head != _head_hash(self.root):
            self.start("holder-view", wait=wait)

    def work(self) -> None:  # a failure keeps the previous overlay
        self.since = since_index(self.root, _head_hash(self.root))

    def holder(self, holder_id: str, params: Params) -> dict | None:
        """The holder's view at the head, as `GET /v1/holders/{id}` answers it
        (`reports.holder_view`), with when they registered and last bought, the open day and
        their number of events (None: unknown holder, or no index)."""
        since = self.since
        with Reader(self.root) as reader:
            if not reader.exists or since is None:
                return None
            state = AtHead(reader.state(), since)
            found = state.holder(holder_id)
            if found is None:
                return None
            out = reports.holder_view(found, since.g, state, params)
            out.update(created=found.created, open_day=since.g.open_day, last_purchase=found.last_purchase,
                       events=reader.event_count(holder_id) + len(since.recent.get(holder_id, ())))
            return out

    def events(self, holder_id: str, page: int, per_page: int = 50) -> tuple[list[tuple], int]:
        """One page of the holder's events, newest first, and the number of pages."""
        since = self.since
        recent = list(reversed(since.recent.get(holder_id, []))) if since else []
        with Reader(self.root) as reader:
            if not reader.exists:
                return [], 1
            total = len(recent) + reader.event_count(holder_id)
            pages = max(1, -(-total // per_page))
            page = min(max(1, page), pages)
            start = (page - 1) * per_page
            out = recent[start:start + per_page]
            if len(out) < per_page:
                out += reader.events(holder_id, max(0, start - len(recent)), per_page - len(out))
            return out, pages


class Ranking(BackgroundJob):
    """The holders with the most SP and the most active SV at the holder index's close (the
    Holder page with no id): every holder's balance computed once per closed day, in a
    background thread; `TOP` of each kept."""

    TOP = 500

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.seq: int | None = None  # the index position the lists are for
        self.day: date | None = None
        self.by_sp: list = []
        self.by_sv: list = []

    def ensure(self, wait: float = 0.0) -> None:
        """Rank again when the index moved to another close (in the background); wait up to `wait` s."""
        with Reader(self.root) as reader:
            position = reader.position
        if position is not None and position.seq != self.seq:
            self.start("ranking", wait=wait)

    def work(self) -> None:  # a failure keeps the last lists
        with Reader(self.root) as reader:
            if reader.position is not None:
                by_sp, by_sv = reader.top(self.TOP)
                self.by_sp, self.by_sv, self.day = by_sp, by_sv, reader.position.closed_day
                self.seq = reader.position.seq


# -- verify -------------------------------------------------------------------------------


class VerifyJob(BackgroundJob):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.result: record.VerifyResult | None = None
        found = record.read(self.root)
        if found is not None:
            self.result = record.VerifyResult.from_record(found)
        self.progress = (0, 0)

    def current(self) -> bool:
        """Whether the result covers the books as they are now (same fingerprint)."""
        return self.result is not None and self.result.fingerprint == record.fingerprint(self.root)

    def ensure(self, wait: float = 0.0) -> None:
        """Verify in the background unless the last result covers the books as they are."""
        fp = record.fingerprint(self.root)
        if self.result is not None and self.result.fingerprint == fp:
            return
        found = record.read(self.root)  # `ledger-service verify` may have run since
        if found is not None and found.get("fingerprint") == fp:
            self.result = record.VerifyResult.from_record(found)
            return
        self.start("ledger-verify", fp, wait=wait)

    def work(self, fp: str) -> None:
        started = time.monotonic()
        total = len(Books(self.root).journal_files())
        done = 0

        def advance(_path) -> None:
            nonlocal done
            done += 1
            self.progress = (done, total)

        self.progress = (0, total)
        report = verify_module.verify(self.root, use_db=False, progress=advance)
        self.result = record.result_of(report, fp, time.monotonic() - started, "Fava's Audit page")
        record.write(self.root, self.result)


# -- one day's entries ------------------------------------------------------------------------


_day_cache: OrderedDict[tuple, list[JournalEntry]] = OrderedDict()
_day_lock = threading.Lock()


def day_entries(path: Path) -> list[JournalEntry]:
    """`journal.day_entries(path)`, cached by path, size and mtime (the last 8 files)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _day_lock:
        if key in _day_cache:
            _day_cache.move_to_end(key)
            return _day_cache[key]
    out = read_day_entries(path)
    with _day_lock:
        _day_cache[key] = out
        while len(_day_cache) > 8:
            _day_cache.popitem(last=False)
    return out
