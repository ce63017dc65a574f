"""Work the extension pages do on the books, cached and in background threads.

- `HolderView`: the holder index (`holder_index`, the journal folded through the ledger's
  last closed day, written as days close) plus the entries booked since, applied on an
  overlay in a background thread and cached by the chain head. A page reads the index
  file (milliseconds) and never replays the whole journal.
- `VerifyJob`: `verify(books, use_db=False)` with the ledger-tier check, run in the
  background when the books changed since the last recorded verification
  (`audit.record`); the record is what the page shows first.
- `day_entries`: one journal day file split into its entries (text and line), cached.

One instance of each per books folder, shared by every Fava ledger and request.
"""

from __future__ import annotations

import bisect
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..journal import Books
from ..ledger_tier import journal_head

_registry: dict[tuple[str, str], Any] = {}
_registry_lock = threading.Lock()


def _shared(kind: str, root: Path, factory):
    key = (kind, str(root.resolve()))
    with _registry_lock:
        found = _registry.get(key)
        if found is None:
            found = _registry[key] = factory(root)
        return found


def holder_view(root: Path) -> "HolderView":
    return _shared("holders", root, HolderView)


def verify_job(root: Path) -> "VerifyJob":
    return _shared("verify", root, VerifyJob)


def _head_hash(root: Path) -> str:
    return journal_head(root).get("hash", "")


# -- holders ------------------------------------------------------------------------------


@dataclass
class _Since:
    """What the journal holds past the index: applied on an overlay of it."""

    head: str  # the journal's head this covers
    index_seq: int
    index_day: Any
    entries: int  # entries applied past the index
    g: Any  # the position at the head
    holders: dict  # holder id -> Holder, for the holders those entries touched
    epochs: dict  # epochs closed past the index
    recent: dict  # holder id -> [(day, event, kind, file, line)] in journal order
    built_s: float


class HolderView:
    """The Holder page's data: the holder index, and the entries booked since it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.lock = threading.Lock()
        self.since: _Since | None = None
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.done = threading.Event()

    @property
    def building(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def ensure(self, wait: float = 0.0) -> None:
        """Bring the overlay to the journal's head (in the background); wait up to `wait` s."""
        head = _head_hash(self.root)
        since = self.since
        if since is not None and since.head == head:
            return
        started = False
        with self.lock:
            if not self.building:
                self.done.clear()
                self.error = None
                self.thread = threading.Thread(target=self._run, name=f"holder-view {self.root}", daemon=True)
                self.thread.start()
                started = True
        if wait and started:
            self.done.wait(wait)

    def _run(self) -> None:
        try:
            self.since = self._build()
        except Exception:  # shown on the page; the previous overlay stays
            self.error = traceback.format_exc(limit=5)
        finally:
            self.done.set()

    def _build(self) -> _Since | None:
        from beancount.parser import parser

        from ..apply import apply_entry
        from ..entries import from_beancount
        from ..holder_index import Reader, event_rows
        from ..ledger_tier import _day_of, _relative

        started = time.monotonic()
        head = _head_hash(self.root)
        with Reader(self.root) as reader:
            if not reader.exists:
                return None
            from ..state import Overlay

            position = reader.position
            overlay = Overlay(reader.state())
            recent: dict[str, list] = {}
            applied = 0
            for path in Books(self.root).journal_files():
                day = _day_of(path.name)
                if day is not None and day <= position.closed_day:
                    continue
                rel = _relative(self.root, path)
                directives, _errors, _options = parser.parse_file(str(path))
                directives.sort(key=lambda d: d.meta.get("lineno", 0))
                for directive in directives:
                    entry = from_beancount(directive)
                    if entry is None or int(entry.get("seq") or 0) <= overlay.g.seq:
                        continue
                    apply_entry(overlay, entry)
                    applied += 1
                    for row in event_rows(entry, entry.date, rel, int(directive.meta.get("lineno", 0))):
                        recent.setdefault(row[0], []).append((row[1].isoformat(), *row[2:]))
            return _Since(head, position.seq, position.closed_day, applied, overlay.g,
                          {k: v for k, v in overlay._holders.items() if v is not None}, dict(overlay._epochs),
                          recent, time.monotonic() - started)

    def holder(self, holder_id: str) -> dict | None:
        """The holder's attributes and balances at the head (None: unknown holder, or no index)."""
        from ..amounts import CNY, exact_mul, floor
        from ..holder_index import Reader
        from ..subledger import balance

        since = self.since
        with Reader(self.root) as reader:
            if not reader.exists or since is None:
                return None
            state = _Composite(reader.state(), since)
            found = state.holder(holder_id)
            if found is None:
                return None
            g = since.g
            held = balance(found, g, state)
            out = {
                "id": found.id, "kind": found.kind, "active": found.active, "role": found.role,
                "referrer": found.referrer, "region": found.region, "created": found.created,
                "sv_locked": held.sv_locked, "sv_active": held.sv_active, "sp": held.sp,
                "sp_value_cny": floor(exact_mul(held.sp, g.value), CNY),
                "value_cny_per_sp": g.value, "open_day": g.open_day, "last_purchase": found.last_purchase,
                "events": reader.event_count(holder_id) + len(since.recent.get(holder_id, ())),
            }
            if found.kind == "merchant":
                out.update({"owner": found.owner, "channel": found.channel, "rebate_rate": found.rebate_rate,
                            "store_referrer": found.store_referrer, "deposits_cny": found.deposits_cny})
            return out

    def events(self, holder_id: str, page: int, per_page: int = 50) -> tuple[list[tuple], int]:
        """One page of the holder's events, newest first, and the number of pages."""
        from ..holder_index import Reader

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


class _Composite:
    """The index's position with the overlay's holders and epochs on top (read-only)."""

    def __init__(self, index_state, since: _Since) -> None:
        self.index_state = index_state
        self.since = since
        self.g = since.g

    def holder(self, holder_id: str):
        found = self.since.holders.get(holder_id)
        return found if found is not None else self.index_state.holder(holder_id)

    def epoch(self, number: int):
        found = self.since.epochs.get(number)
        return found if found is not None else self.index_state.epoch(number)


# -- verify -------------------------------------------------------------------------------


class VerifyJob:
    def __init__(self, root: Path) -> None:
        from ..audit import record

        self.root = Path(root)
        self.lock = threading.Lock()
        self.result: record.VerifyResult | None = None
        found = record.read(self.root)
        if found is not None:
            self.result = record.VerifyResult.from_record(found)
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.progress = (0, 0)
        self.done = threading.Event()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def current(self) -> bool:
        """Whether the result covers the books as they are now (same fingerprint)."""
        from ..audit.record import fingerprint

        return self.result is not None and self.result.fingerprint == fingerprint(self.root)

    def ensure(self, wait: float = 0.0) -> None:
        """Verify in the background unless the last result covers the books as they are."""
        from ..audit import record

        fp = record.fingerprint(self.root)
        if self.result is not None and self.result.fingerprint == fp:
            return
        found = record.read(self.root)  # `ledger-service verify` may have run since
        if found is not None and found.get("fingerprint") == fp:
            self.result = record.VerifyResult.from_record(found)
            return
        started = False
        with self.lock:
            if not self.running:
                self.done.clear()
                self.error = None
                self.thread = threading.Thread(target=self._run, args=(fp,), name=f"ledger-verify {self.root}",
                                               daemon=True)
                self.thread.start()
                started = True
        if wait and started:
            self.done.wait(wait)

    def _run(self, fp: str) -> None:
        from ..audit import record
        from ..audit import verify as verify_module

        try:
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
        except Exception:
            self.error = traceback.format_exc(limit=5)
        finally:
            self.done.set()


# -- one day's entries ------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalEntry:
    lineno: int
    seq: str
    kind: str
    event: str
    text: str


_day_cache: "OrderedDict[tuple, list[JournalEntry]]" = OrderedDict()
_day_lock = threading.Lock()


def day_entries(path: Path) -> list[JournalEntry]:
    """A journal day file as its entries, in order (cached by path, size and mtime).

    The entries are the directives Beancount's parser reads from the file (not its lines:
    `str.splitlines` would break a string at U+2028, U+2029 or U+0085 and list what follows
    as an entry of its own). An entry's text is its lines ("\n" ends a line, as for
    Beancount) from its first up to the next blank line or the next entry.
    """
    from beancount.core import data
    from beancount.parser import parser

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _day_lock:
        if key in _day_cache:
            _day_cache.move_to_end(key)
            return _day_cache[key]
    text = path.read_text(encoding="utf-8", errors="replace")
    directives, _errors, _options = parser.parse_string(text)
    lines = text.split("\n")
    starts = sorted({d.meta["lineno"] for d in directives if d.meta and d.meta.get("lineno")})
    out: list[JournalEntry] = []
    for directive in sorted(directives, key=lambda d: d.meta.get("lineno", 0)):
        first = directive.meta.get("lineno", 0)
        after = bisect.bisect_right(starts, first)
        end = starts[after] - 1 if after < len(starts) else len(lines)  # 1-based: the last line it may hold
        last = first
        while last < end and lines[last].strip(" \t\r"):  # lines[last] is line last + 1
            last += 1
        meta = directive.meta or {}
        kind = str(meta.get("kind") or ("price" if isinstance(directive, data.Price) else ""))
        out.append(JournalEntry(first, str(meta.get("seq", "")), kind, str(meta.get("event", "")),
                                "\n".join(lines[first - 1:last])))
    with _day_lock:
        _day_cache[key] = out
        while len(_day_cache) > 8:
            _day_cache.popitem(last=False)
    return out
