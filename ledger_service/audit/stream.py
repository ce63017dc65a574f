"""The journal as `verify` reads it: each day file parsed and converted once, possibly ahead in
worker processes (`verify --jobs N`).

A day file is independent of the others to parse: `read_day(path)` runs Beancount's parser on
it and turns what it finds into plain data — the faults of the parse (syntax errors and what a
journal file may not hold: `journal.file_faults`), for each directive in file order its line,
date and, for an entry of the chain, the entry (`entries.from_beancount`), the SHA-256 of its
canonical form and what the checks compute from the entry alone (`Directive`), and the file's
sums for the ledger tier's check (`day_sums`). `unpack_day` turns that back into (stand-in
directive, entry, digest) triples, the entry rebuilt field for field (numbers through their
exact text, so `5.0000` stays `5.0000`). What needs no position is done there, in the worker:
the caller's process, which replays in order, is verify's critical path.

`day_stream(books, jobs)` yields the days in journal order. With `jobs` = 0 it reads each file
in this process when it is reached. With `jobs` = N ≥ 1, N worker processes parse upcoming
files (file i in worker i mod N) while the caller replays the current one; each worker is at
most `LOOKAHEAD` files ahead (what is parsed ahead waits in memory: at most N × LOOKAHEAD day
files), and a result crosses the pipe as one `marshal` blob (plain tuples, strings and
integers: about 15 times cheaper to load than pickled directives). The result is the same
either way: the same function reads every file, the caller sees the same triples in the same
order. A worker that fails, dies or answers nonsense is not trusted for anything more: that
file and the rest of its files are read in this process (a warning says so), so a fault in a
worker never turns into an OK and never hangs the caller; Ctrl-C stops the workers (they ignore
SIGINT themselves and exit when their pipe closes or their parent is gone).
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..amounts import EXACT_CONTEXT, ZERO
from ..entries import Entry, Posting, Price, Transaction, entry_hash, from_beancount
from ..journal import Books, Foreign, file_faults, parse_file, relative
from ..merkle import hex_leaf
from ..rules.events import EVENT_TYPES, Event, EventKind
from ..rules.events import parse as parse_event
from ..state import event_rows, holders_of, row_digest_line
from .replay import whole_faults

# Files a worker parses ahead of the one the caller is replaying (a bound on memory).
LOOKAHEAD = 2
# How often (seconds) the caller checks that a worker it waits for is still alive.
POLL_SECONDS = 0.5
# The marshal format's version (`marshal.dumps`): the workers run this same interpreter.
_MARSHAL_VERSION = 4
# Container objects allocated, net of those freed, between two collections of the youngest
# generation while verify runs, in its process and its workers. Python's default, 700, made the
# collector about 15 % of the main process (each day file's entries, alive while it is replayed,
# were traversed again and again; 50,000: 6 %, 200,000: under 1 % on the quick books). Memory is
# unaffected: acyclic garbage is freed at once, and the replay makes next to no cycles.
GC_THRESHOLD = 200_000


_gc_lock = threading.Lock()
_gc_runs: list[tuple[tuple[int, ...], bool]] = []  # verifications running: the first one's saved settings


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """While verify runs: the youngest generation collected every GC_THRESHOLD allocations, and the
    objects that existed before (imports, a server's own) left out of the collections (`gc.freeze`,
    unless something froze objects already). The settings are restored when the last of the
    verifications running in this process (Fava's Audit page runs it in a thread) ends."""
    with _gc_lock:
        if not _gc_runs:
            saved = gc.get_threshold()
            freeze = gc.get_freeze_count() == 0
            if freeze:
                gc.freeze()
            gc.set_threshold(max(saved[0], GC_THRESHOLD), *saved[1:])
            _gc_runs.append((saved, freeze))
        else:
            _gc_runs.append(_gc_runs[0])
    try:
        yield
    finally:
        with _gc_lock:
            first, frozen = _gc_runs.pop()
            if not _gc_runs:
                gc.set_threshold(*first)
                if frozen:
                    gc.unfreeze()


class Directive:
    """A stand-in for a parsed Beancount directive: its date and `meta` (filename, lineno), and
    what the checks compute from its entry alone, computed in the worker (`read_day`):
    `holders` (`state.holders_of`), `index_lines` (the holder index's row digest lines,
    `state.row_digest_line` of each of `state.event_rows`), `leaf` (the event log's leaf
    hash, None when the entry's `hash` is not 64 lowercase hex digits), `whole` (the replay's
    `replay.whole_faults`), `event` (the entry's event as the replay's rules check parses it,
    None when it does not parse) and `chain` (the entry's `seq`, `prev`, `hash`, `kind` and
    `event` metadata values, each None when absent: what the replay's chain check and its
    fault labels read, without searching the metadata). The replay and the checks read them
    with getattr(directive, name, None) and compute them themselves when they are absent."""

    __slots__ = ("chain", "date", "event", "holders", "index_lines", "leaf", "meta", "whole")

    def __init__(self, day: date | None, meta: dict[str, Any], holders: tuple[str, ...] | None = None,
                 index_lines: bytes | None = None, leaf: bytes | None = None,
                 whole: list[tuple[str, str]] | None = None, event: Event | None = None,
                 chain: tuple[str | None, ...] | None = None) -> None:
        self.date = day
        self.meta = meta
        self.holders = holders
        self.index_lines = index_lines
        self.leaf = leaf
        self.whole = whole
        self.event = event
        self.chain = chain


# The metadata `Directive.chain` holds, in order.
CHAIN_KEYS = ("seq", "prev", "hash", "kind", "event")
_CHAIN_SET = frozenset(CHAIN_KEYS)


def chain_of(meta: tuple[tuple[str, str], ...]) -> tuple[str | None, ...]:
    """The values of CHAIN_KEYS in an entry's metadata (`Entry.get` of each), in one pass."""
    found: dict[str, str] = {}
    for key, value in meta:
        if key in _CHAIN_SET and key not in found:  # the first, as `meta_get`
            found[key] = value
    return tuple(found.get(key) for key in CHAIN_KEYS)


def _event_of(entry: Transaction) -> tuple | None:
    """The entry's event as the replay's rules check parses it (`rules.parse(kind, meta)`), as plain
    data: (kind, ((field, value), ...)), a Decimal value as the 1-tuple of its text; None when it
    does not parse (the replay parses it again and reports why) or holds another type."""
    kind = entry.kind
    if kind not in EVENT_TYPES:
        return None
    try:
        event = parse_event(kind, dict(entry.meta), by_meta_key=True)
    except Exception:  # noqa: BLE001 - the replay parses it again and reports the fault
        return None
    values = []
    for name in event.FIELDS:
        value = getattr(event, name)
        if isinstance(value, Decimal):
            value = (str(value),)
        elif value is not None and type(value) not in (str, int, bool):
            return None
        values.append((name, value))
    return kind, tuple(values)


def _event_from(data: tuple | None) -> Event | None:
    if data is None:
        return None
    kind, values = data
    return EVENT_TYPES[kind](**{name: Decimal(value[0]) if type(value) is tuple else value
                                for name, value in values})


# -- one day file, as plain data ---------------------------------------------------------------------


def day_sums(entries: list[Entry | None]) -> tuple:
    """What the ledger tier's check adds up of one day file (`views.ledger_tier.DayAggregator`,
    fed each entry with `feed_entry`), as plain data: (first entry's date ordinal or None, counts
    ((kind, events), ...) in order of first appearance, sums ((kind, ((account, currency, total
    text), ...)), ...), the indices in `entries` of its prices, of its genesis entry (-1: none),
    the last entry's kind or None, the last entry's hash, entries). `verify` rebuilds the
    aggregator from it (`audit.verify._ledger_day`): the worker adds up, the main process does not."""
    counts: dict[str, int] = {}
    sums: dict[str, dict[tuple[str, str], Decimal]] = {}
    prices: list[int] = []
    first: int | None = None
    genesis = -1
    last_kind: str | None = None
    last_hash = ""
    fed = 0
    add = EXACT_CONTEXT.add
    for index, entry in enumerate(entries):
        if entry is None:
            continue
        fed += 1
        if first is None:
            first = entry.date.toordinal()
        last_hash = entry.get("hash") or ""
        if isinstance(entry, Price):
            prices.append(index)
            last_kind = "price"
            continue
        kind = entry.kind or "unknown"
        if kind == EventKind.GENESIS and genesis < 0:
            genesis = index
        last_kind = kind
        counts[kind] = counts.get(kind, 0) + 1
        kind_sums = sums.setdefault(kind, {})
        for p in entry.postings:
            if not p.number.is_finite():  # an elided amount: verify reports it
                continue
            key = (p.account, p.currency)
            kind_sums[key] = add(kind_sums.get(key, ZERO), p.number)
    return (first, tuple(counts.items()),
            tuple((kind, tuple((account, currency, str(total)) for (account, currency), total in totals.items()))
                  for kind, totals in sums.items()),
            tuple(prices), genesis, last_kind, last_hash, fed)


def read_day(path: Path | str, journal: str) -> tuple:
    """(faults, items, sums) of one journal file, plain tuples only (what `marshal` carries).

    faults: (filename, lineno, rule, message) per parse error or foreign directive, in the
    order `journal.journal_directives` gives them; items: per directive in file order,
    ("T", lineno, date ordinal, payee, narration, meta, postings, flag, tags, links, digest,
    holders, index lines, leaf, whole faults, event, chain), ("P", lineno, date ordinal, number
    text, meta, digest, leaf, chain) or ("N", lineno, date ordinal) for a directive that is not an
    entry of the chain (its fault is in faults), postings as (account, number text, currency, meta). `journal`: the
    file's path relative to the books (what the holder index's rows name). sums: `day_sums` of
    its directives' entries (indices: of items).
    """
    directives, errors, options = parse_file(path, display=False)
    faults = []
    for error in file_faults(path, directives, errors, options):
        source = getattr(error, "source", None) or {}
        rule = "file.foreign" if isinstance(error, Foreign) else "syntax"
        faults.append((str(source.get("filename", path)), int(source.get("lineno", 0) or 0), rule,
                       str(getattr(error, "message", error)).strip()))
    items: list[tuple] = []
    entries: list[Entry | None] = []
    for directive in directives:
        lineno = directive.meta.get("lineno", 0)
        day = directive.date.toordinal() if isinstance(getattr(directive, "date", None), date) else None
        entry = from_beancount(directive)
        entries.append(entry if day is not None else None)  # (`unpack_day`: no date, no entry of the chain)
        if isinstance(entry, Transaction):
            chain = chain_of(entry.meta)
            holders = holders_of(entry)
            lines = b"".join(row_digest_line(row) for row in event_rows(entry, entry.date, journal, int(lineno),
                                                                        holders))
            items.append(("T", lineno, day, entry.payee, entry.narration, entry.meta,
                          tuple((p.account, str(p.number), p.currency, p.meta) for p in entry.postings),
                          entry.flag, entry.tags, entry.links, entry_hash(entry, chain[1] or ""),
                          tuple(holders), lines, hex_leaf(chain[2] or ""), whole_faults(entry),
                          _event_of(entry), chain))
        elif isinstance(entry, Price):
            chain = chain_of(entry.meta)
            items.append(("P", lineno, day, str(entry.number), entry.meta, entry_hash(entry, chain[1] or ""),
                          hex_leaf(chain[2] or ""), chain))
        else:
            items.append(("N", lineno, day))
            entries[-1] = None
    return faults, items, day_sums(entries)


def unpack_day(path: Path, faults: list, items: list,
               sums: tuple | None = None) -> tuple[list, list[tuple[Directive, Entry | None, str]]]:
    """`read_day`'s result as (faults, [(directive stand-in, entry or None, digest or "")]) (`sums`
    stays as it is: see `DayStream`)."""
    filename = str(path)
    days: dict[int, date] = {}
    out: list[tuple[Directive, Entry | None, str]] = []
    for item in items:
        tag, lineno, ordinal = item[0], item[1], item[2]
        day = days.get(ordinal) if ordinal is not None else None
        if day is None and ordinal is not None:
            day = days[ordinal] = date.fromordinal(ordinal)
        meta = {"filename": filename, "lineno": lineno}
        if day is None or tag not in ("T", "P"):  # a directive without a date is not an entry of the chain
            out.append((Directive(day, meta), None, ""))
        elif tag == "T":
            postings = tuple(Posting(account, Decimal(number), currency, pmeta)
                             for account, number, currency, pmeta in item[6])
            out.append((Directive(day, meta, item[11], item[12], item[13], item[14], _event_from(item[15]),
                                  item[16]),
                        Transaction(day, item[3], item[4], item[5], postings, item[7], item[8], item[9]), item[10]))
        else:
            out.append((Directive(day, meta, (), b"", item[6], [], None, item[7]),
                        Price(day, Decimal(item[3]), item[4]), item[5]))
    return list(faults), out


# -- the workers ---------------------------------------------------------------------------------------


def _worker(requests, results, parent_ends, parent_pid: int) -> None:
    """Parse the files asked for, in order, until asked to stop, the pipe closes or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # What the worker inherited is never garbage it made: left out of every collection, and the
    # youngest generation collected less often (`fewer_collections`; the worker ends with verify).
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    for end in parent_ends:  # the parent's ends, inherited by fork: closed, so EOF means the parent closed
        end.close()
    try:
        while True:
            while not requests.poll(POLL_SECONDS):
                if os.getppid() != parent_pid:
                    return
            message = requests.recv_bytes()
            if not message:
                return
            index, path, journal = marshal.loads(message)
            try:
                payload = marshal.dumps((index, "ok", read_day(path, journal)), _MARSHAL_VERSION)
            except Exception as exc:  # noqa: BLE001 - reported; the parent reads the file itself
                payload = marshal.dumps((index, "error", f"{type(exc).__name__}: {exc}"), _MARSHAL_VERSION)
            results.send_bytes(payload)
    except (EOFError, OSError, KeyboardInterrupt):
        return


class WorkerFailed(Exception):
    pass


class _Worker:
    def __init__(self, context, number: int, others: Sequence[_Worker | None] = ()) -> None:
        """Start worker `number`; `others`: the workers started before it, whose pipe ends this
        process holds (the new worker closes its copies: a worker's pipe then closes when this
        process closes it, whatever other workers hold)."""
        self.number = number
        requests_recv, self.requests = context.Pipe(duplex=False)
        self.results, results_send = context.Pipe(duplex=False)
        ends = [self.requests, self.results]
        ends += [end for other in others if other is not None for end in (other.requests, other.results)]
        self.process = context.Process(target=_worker, name=f"verify-parse-{number}", daemon=True,
                                       args=(requests_recv, results_send, tuple(ends), os.getpid()))
        self.process.start()
        requests_recv.close()
        results_send.close()
        self.pending: list[int] = []  # indices asked for, in order

    def ask(self, index: int, path: Path, journal: str) -> None:
        self.requests.send_bytes(marshal.dumps((index, str(path), journal), _MARSHAL_VERSION))
        self.pending.append(index)

    def take(self, index: int) -> tuple:
        """The result of file `index` (the oldest asked for), or WorkerFailed."""
        if not self.pending or self.pending[0] != index:
            raise WorkerFailed(f"file {index} was not asked of worker {self.number}")
        while not self.results.poll(POLL_SECONDS):
            if not self.process.is_alive():
                raise WorkerFailed(f"worker {self.number} exited ({self.process.exitcode})")
        try:
            got_index, status, payload = marshal.loads(self.results.recv_bytes())
            self.pending.pop(0)
            if got_index != index:
                raise WorkerFailed(f"worker {self.number} answered file {got_index} for file {index}")
            if status != "ok":
                raise WorkerFailed(f"worker {self.number}: {payload}")
            faults, items, sums = payload
        except (EOFError, OSError, ValueError, TypeError) as exc:  # (a broken pipe, a torn or odd answer)
            raise WorkerFailed(f"worker {self.number}: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(faults, list) and isinstance(items, list) and isinstance(sums, tuple)):
            raise WorkerFailed(f"worker {self.number} answered something else than a day file")
        return faults, items, sums

    def stop(self) -> None:
        for end in (self.requests, self.results):
            with contextlib.suppress(OSError):
                end.close()
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def default_jobs() -> int:
    """1 worker when this process may use 2 or more CPUs, else 0 (everything in this process)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 1 if cpus >= 2 else 0


class DayStream:
    """The journal's files in order, each as (file, its faults, its (directive, entry, digest)
    triples); `progress(file)` after each file has been consumed. The workers (`jobs` > 0) start
    here, at once; `close()` stops them (iterating to the end does too). `warnings` receives a
    line when a worker fails (its files are then read in this process). `sums`: while a file is
    being consumed, its `day_sums` (the ledger tier's sums; indices: of its triples)."""

    def __init__(self, books: Books, jobs: int = 0, progress: Callable[[Path], None] | None = None,
                 warnings: list[str] | None = None, files: list[Path] | None = None) -> None:
        self.root = books.root
        self.paths = list(books.journal_files() if files is None else files)
        self.progress = progress
        self.warnings = warnings
        self.workers: list[_Worker | None] = []
        self.asked = 0
        self.sums: tuple | None = None
        if jobs > 0 and len(self.paths) > 1:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(method)
            try:
                for number in range(min(jobs, len(self.paths))):
                    self.workers.append(_Worker(context, number, self.workers))
                self._ask_ahead(LOOKAHEAD * len(self.workers))
            except BaseException:
                self.close()
                raise

    def journal(self, index: int) -> str:
        """File `index`'s path relative to the books."""
        return relative(self.root, self.paths[index])

    def _ask_ahead(self, upto: int) -> None:
        workers = self.workers
        while self.asked < min(upto, len(self.paths)):
            number = self.asked % len(workers)
            worker = workers[number]
            if worker is not None:
                try:
                    worker.ask(self.asked, self.paths[self.asked], self.journal(self.asked))
                except OSError as exc:
                    self._fail(number, f"{type(exc).__name__}: {exc}")
            self.asked += 1

    def _fail(self, number: int, why: str) -> None:
        worker = self.workers[number]
        if worker is None:
            return
        self.workers[number] = None
        worker.stop()
        if self.warnings is not None:
            self.warnings.append(f"the journal's parse worker {number} failed ({why}); its files were parsed by "
                                 "verify's own process")

    def __iter__(self) -> Iterator[tuple[Path, list, list[tuple[Directive, Entry | None, str]]]]:
        workers = self.workers
        try:
            for index, path in enumerate(self.paths):
                raw = None
                if workers:
                    number = index % len(workers)
                    worker = workers[number]
                    if worker is not None:
                        try:
                            raw = worker.take(index)
                        except WorkerFailed as exc:
                            self._fail(number, str(exc))
                    self._ask_ahead(index + 1 + LOOKAHEAD * len(workers))
                if raw is None:
                    raw = read_day(path, self.journal(index))
                faults, triples = unpack_day(path, *raw)
                self.sums = raw[2]
                del raw
                yield path, faults, triples
                self.sums = None
                if self.progress is not None:
                    self.progress(path)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        for number, worker in enumerate(self.workers):
            if worker is not None:
                self.workers[number] = None
                worker.stop()
