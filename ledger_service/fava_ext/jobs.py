"""Work the extension pages do on the journal, in background threads, cached by the chain head.

- `JournalIndex`: a replay of the journal (`audit.replay.Replay` over
  `audit.verify.journal_directives`) giving every holder's balances, plus an index
  holder -> [(date, event id, kind, file, line)]. Built at first use; afterwards the
  entries appended since (the open day's) are fed incrementally; a change anywhere
  else rebuilds it from scratch while the previous snapshot is still served.
- `VerifyJob`: `verify(books, use_db=False)` and the ledger-tier check, once per head.
- `day_entries`: one journal day file split into its entries (text and line), cached.

One instance of each per books folder, shared by every Fava ledger and request.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..journal import Books
from ..ledger_tier import journal_head

# Entry metadata naming a holder: the entry is one of that holder's events.
HOLDER_KEYS = ("member", "buyer", "merchant", "holder", "from", "to", "owner", "referrer")

_registry: dict[tuple[str, str], Any] = {}
_registry_lock = threading.Lock()


def _shared(kind: str, root: Path, factory):
    key = (kind, str(root.resolve()))
    with _registry_lock:
        found = _registry.get(key)
        if found is None:
            found = _registry[key] = factory(root)
        return found


def journal_index(root: Path) -> "JournalIndex":
    return _shared("index", root, JournalIndex)


def verify_job(root: Path) -> "VerifyJob":
    return _shared("verify", root, VerifyJob)


def _head_hash(root: Path) -> str:
    return journal_head(root).get("hash", "")


@dataclass
class _Snapshot:
    replay: Any
    index: dict[str, list[tuple[str, str, str, str, int]]]
    consumed: dict[str, int]  # journal file (relative) -> bytes fed
    head: str
    built_s: float
    faults: int = 0


class JournalIndex:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.lock = threading.RLock()  # held while the snapshot is read or changed
        self.snapshot: _Snapshot | None = None
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.progress = (0, 0)
        self.done = threading.Event()

    # -- requests ------------------------------------------------------------------------

    def ensure(self, wait: float = 0.0) -> None:
        """Start (re)building if the journal's head moved; wait up to `wait` seconds for it."""
        head = _head_hash(self.root)
        snap = self.snapshot
        if snap is not None and snap.head == head:
            return
        started = False
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.done.clear()
                self.error = None
                self.thread = threading.Thread(target=self._run, name=f"ledger-index {self.root}", daemon=True)
                self.thread.start()
                started = True
        if wait and started:  # small books answer at once; large ones say "building…"
            self.done.wait(wait)

    @property
    def building(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def holder(self, holder_id: str) -> dict | None:
        """The holder's attributes and balances from the replay (None: unknown holder)."""
        from ..amounts import CNY, exact_mul, floor
        from ..subledger import balance

        with self.lock:
            snap = self.snapshot
            if snap is None or snap.replay.state is None:
                return None
            state = snap.replay.state
            found = state.holders.get(holder_id)
            if found is None:
                return None
            held = balance(found, state.g, state)
            out = {
                "id": found.id, "kind": found.kind, "active": found.active, "role": found.role,
                "referrer": found.referrer, "region": found.region, "created": found.created,
                "sv_locked": held.sv_locked, "sv_active": held.sv_active, "sp": held.sp,
                "sp_value_cny": floor(exact_mul(held.sp, state.g.value), CNY),
                "value_cny_per_sp": state.g.value, "open_day": state.g.open_day,
                "last_purchase": found.last_purchase, "events": len(snap.index.get(holder_id, ())),
            }
            if found.kind == "merchant":
                out.update({"owner": found.owner, "channel": found.channel, "rebate_rate": found.rebate_rate,
                            "store_referrer": found.store_referrer, "deposits_cny": found.deposits_cny})
            return out

    def events(self, holder_id: str, page: int, per_page: int = 50) -> tuple[list[tuple], int]:
        """One page of the holder's events, newest first, and the number of pages."""
        with self.lock:
            snap = self.snapshot
            items = snap.index.get(holder_id, []) if snap else []
            pages = max(1, -(-len(items) // per_page))
            page = min(max(1, page), pages)
            end = len(items) - (page - 1) * per_page
            chunk = items[max(0, end - per_page):end]
            return list(reversed(chunk)), pages

    # -- building ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if not self._incremental():
                self._full()
        except Exception:  # shown on the page; the previous snapshot stays
            self.error = traceback.format_exc(limit=5)
        finally:
            self.done.set()

    def _full(self) -> None:
        from ..audit.replay import Replay
        from ..audit.verify import journal_directives

        started = time.monotonic()
        books = Books(self.root)
        files = books.journal_files()
        self.progress = (0, len(files))
        replay = Replay()
        index: dict[str, list] = {}
        consumed: dict[str, int] = {}
        sizes = {p: p.stat().st_size for p in files}
        done = 0

        def advance(path: Path) -> None:
            nonlocal done
            done += 1
            self.progress = (done, len(files))

        for path, directive, _errors in journal_directives(books, progress=advance):
            if directive is None:
                consumed[self._rel(path)] = sizes.get(path, 0)
                continue
            replay.feed(directive)
            _index(index, directive, self._rel(path))
        snap = _Snapshot(replay, index, consumed, replay.prev, time.monotonic() - started, len(replay.faults))
        with self.lock:
            self.snapshot = snap

    def _incremental(self) -> bool:
        """Feed only what was appended since the snapshot (False: a full rebuild is needed)."""
        from beancount.parser import parser

        snap = self.snapshot
        if snap is None or not snap.consumed:
            return False
        books = Books(self.root)
        files = books.journal_files()
        rels = [self._rel(p) for p in files]
        known = list(snap.consumed)
        if rels[:len(known)] != known:
            return False
        changed = []
        for path, rel in zip(files, rels):
            size = path.stat().st_size
            before = snap.consumed.get(rel)
            if before is None:
                changed.append((path, rel, size))
            elif size != before:
                if rel != known[-1] or size < before:
                    return False
                changed.append((path, rel, size))
        started = time.monotonic()
        with self.lock:
            replay = snap.replay
            for path, rel, size in changed:
                directives, errors, _options = parser.parse_file(str(path))
                directives.sort(key=lambda d: d.meta.get("lineno", 0))
                for directive in directives:
                    try:
                        seq = int(directive.meta.get("seq", 0))
                    except (TypeError, ValueError):
                        return False
                    if seq <= replay.seq:
                        continue
                    replay.feed(directive)
                    _index(snap.index, directive, rel)
                snap.consumed[rel] = size
            snap.head = replay.prev
            snap.faults = len(replay.faults)
            snap.built_s = time.monotonic() - started
        return True

    def _rel(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()


def _index(index: dict[str, list], directive: Any, rel: str) -> None:
    meta = directive.meta
    event = meta.get("event")
    if event is None:  # prices
        return
    kind = str(meta.get("kind", ""))
    holders: list[str] = []
    for key in HOLDER_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value not in holders:
            holders.append(value)
    for posting in getattr(directive, "postings", ()) or ():
        value = (posting.meta or {}).get("holder")
        if isinstance(value, str) and value not in holders:
            holders.append(value)
    item = (directive.date.isoformat(), str(event), kind, rel, int(meta.get("lineno", 0)))
    for holder in holders:
        index.setdefault(holder, []).append(item)


# -- verify -------------------------------------------------------------------------------


@dataclass
class VerifyResult:
    head: str
    ok: bool
    faults: list[str]
    ledger_faults: list[str]
    entries: int
    files: int
    head_seq: int
    seconds: float
    supply: dict = field(default_factory=dict)
    residue: dict = field(default_factory=dict)


class VerifyJob:
    MAX_SHOWN = 200

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.lock = threading.Lock()
        self.result: VerifyResult | None = None
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.progress = (0, 0)
        self.running_head = ""
        self.done = threading.Event()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def ensure(self, wait: float = 0.0) -> None:
        head = _head_hash(self.root)
        if self.result is not None and self.result.head == head:
            return
        started = False
        with self.lock:
            if not self.running:
                self.done.clear()
                self.error = None
                self.running_head = head
                self.thread = threading.Thread(target=self._run, args=(head,), name=f"ledger-verify {self.root}",
                                               daemon=True)
                self.thread.start()
                started = True
        if wait and started:
            self.done.wait(wait)

    def _run(self, head: str) -> None:
        from ..audit import verify as verify_module
        from ..ledger_tier import check

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
            ledger = [f for f in report.faults if f.rule.startswith("ledger.")]
            journal = [f for f in report.faults if not f.rule.startswith("ledger.")]
            if not hasattr(verify_module, "LedgerRebuild"):  # verify does not check the ledger tier itself
                ledger = check(self.root)
            self.result = VerifyResult(
                head=report.head_hash or head, ok=not journal and not ledger,
                faults=[str(f) for f in journal[:self.MAX_SHOWN]], ledger_faults=[str(f) for f in ledger[:self.MAX_SHOWN]],
                entries=report.entries, files=report.files, head_seq=report.head_seq,
                seconds=time.monotonic() - started, supply=report.supply, residue=report.residue,
            )
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
    """A journal day file as its entries, in order (cached by path, size and mtime)."""
    from ..ledger_tier import _HEADER, _entry_meta

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _day_lock:
        if key in _day_cache:
            _day_cache.move_to_end(key)
            return _day_cache[key]
    out: list[JournalEntry] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        text = "\n".join(lines[start:end])
        meta = _entry_meta(text)
        kind = meta.get("kind") or ("price" if " price " in lines[start] else "")
        out.append(JournalEntry(start + 1, meta.get("seq", ""), kind, meta.get("event", ""), text))
    with _day_lock:
        _day_cache[key] = out
        while len(_day_cache) > 8:
            _day_cache.popitem(last=False)
    return out
