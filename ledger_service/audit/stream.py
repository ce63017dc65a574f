"""The journal as `verify` reads it: each day file parsed and converted once, possibly ahead in
worker processes (`verify --jobs N`).

A day file is independent of the others to parse: `read_day(path)` runs Beancount's parser on
it and turns what it finds into plain data — the faults of the parse (syntax errors and what a
journal file may not hold: `journal.file_faults`), and for each directive in file order its
line, date and, for an entry of the chain, the entry (`entries.from_beancount`) and the SHA-256
of its canonical form. `unpack_day` turns that back into (stand-in directive, entry, digest)
triples, the entry rebuilt field for field (numbers through their exact text, so `5.0000` stays
`5.0000`).

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
import marshal
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..entries import Entry, Posting, Price, Transaction, entry_hash, from_beancount
from ..journal import Books, Foreign, file_faults, parse_file, relative
from ..merkle import hex_leaf
from ..rules.events import EVENT_TYPES, Event
from ..rules.events import parse as parse_event
from ..state import event_rows, holders_of, row_digest_line
from .replay import whole_faults

# Files a worker parses ahead of the one the caller is replaying (a bound on memory).
LOOKAHEAD = 2
# How often (seconds) the caller checks that a worker it waits for is still alive.
POLL_SECONDS = 0.5
# The marshal format's version (`marshal.dumps`): the workers run this same interpreter.
_MARSHAL_VERSION = 4


class Directive:
    """A stand-in for a parsed Beancount directive: its date and `meta` (filename, lineno), and
    what the checks compute from its entry alone, computed in the worker (`read_day`):
    `holders` (`state.holders_of`), `index_lines` (the holder index's row digest lines,
    `state.row_digest_line` of each of `state.event_rows`), `leaf` (the event log's leaf
    hash, None when the entry's `hash` is not 64 lowercase hex digits), `whole` (the replay's
    `replay.whole_faults`) and `event` (the entry's event as the replay's rules check parses it,
    None when it does not parse). The replay and the checks read them with
    getattr(directive, name, None) and compute them themselves when they are absent."""

    __slots__ = ("date", "event", "holders", "index_lines", "leaf", "meta", "whole")

    def __init__(self, day: date | None, meta: dict[str, Any], holders: tuple[str, ...] | None = None,
                 index_lines: bytes | None = None, leaf: bytes | None = None,
                 whole: list[tuple[str, str]] | None = None, event: Event | None = None) -> None:
        self.date = day
        self.meta = meta
        self.holders = holders
        self.index_lines = index_lines
        self.leaf = leaf
        self.whole = whole
        self.event = event


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


def read_day(path: Path | str, journal: str) -> tuple:
    """(faults, items) of one journal file, plain tuples only (what `marshal` carries).

    faults: (filename, lineno, rule, message) per parse error or foreign directive, in the
    order `journal.journal_directives` gives them; items: per directive in file order,
    ("T", lineno, date ordinal, payee, narration, meta, postings, flag, tags, links, digest,
    holders, index lines, leaf, whole faults, event), ("P", lineno, date ordinal, number text,
    meta, digest, leaf)
    or ("N", lineno, date ordinal) for a directive that is not an entry of the chain (its
    fault is in faults), postings as (account, number text, currency, meta). `journal`: the
    file's path relative to the books (what the holder index's rows name).
    """
    directives, errors, options = parse_file(path, display=False)
    faults = []
    for error in file_faults(path, directives, errors, options):
        source = getattr(error, "source", None) or {}
        rule = "file.foreign" if isinstance(error, Foreign) else "syntax"
        faults.append((str(source.get("filename", path)), int(source.get("lineno", 0) or 0), rule,
                       str(getattr(error, "message", error)).strip()))
    items: list[tuple] = []
    for directive in directives:
        lineno = directive.meta.get("lineno", 0)
        day = directive.date.toordinal() if isinstance(getattr(directive, "date", None), date) else None
        entry = from_beancount(directive)
        if isinstance(entry, Transaction):
            holders = holders_of(entry)
            lines = b"".join(row_digest_line(row) for row in event_rows(entry, entry.date, journal, int(lineno),
                                                                        holders))
            items.append(("T", lineno, day, entry.payee, entry.narration, entry.meta,
                          tuple((p.account, str(p.number), p.currency, p.meta) for p in entry.postings),
                          entry.flag, entry.tags, entry.links, entry_hash(entry, entry.get("prev") or ""),
                          tuple(holders), lines, hex_leaf(entry.get("hash") or ""), whole_faults(entry),
                          _event_of(entry)))
        elif isinstance(entry, Price):
            items.append(("P", lineno, day, str(entry.number), entry.meta, entry_hash(entry, entry.get("prev") or ""),
                          hex_leaf(entry.get("hash") or "")))
        else:
            items.append(("N", lineno, day))
    return faults, items


def unpack_day(path: Path, faults: list, items: list) -> tuple[list, list[tuple[Directive, Entry | None, str]]]:
    """`read_day`'s result as (faults, [(directive stand-in, entry or None, digest or "")])."""
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
            out.append((Directive(day, meta, item[11], item[12], item[13], item[14], _event_from(item[15])),
                        Transaction(day, item[3], item[4], item[5], postings, item[7], item[8], item[9]), item[10]))
        else:
            out.append((Directive(day, meta, (), b"", item[6], []), Price(day, Decimal(item[3]), item[4]), item[5]))
    return list(faults), out


# -- the workers ---------------------------------------------------------------------------------------


def _worker(requests, results, parent_ends, parent_pid: int) -> None:
    """Parse the files asked for, in order, until asked to stop, the pipe closes or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
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
            faults, items = payload
        except (EOFError, OSError, ValueError, TypeError) as exc:  # (a broken pipe, a torn or odd answer)
            raise WorkerFailed(f"worker {self.number}: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(faults, list) and isinstance(items, list)):
            raise WorkerFailed(f"worker {self.number} answered something else than a day file")
        return faults, items

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
    line when a worker fails (its files are then read in this process)."""

    def __init__(self, books: Books, jobs: int = 0, progress: Callable[[Path], None] | None = None,
                 warnings: list[str] | None = None, files: list[Path] | None = None) -> None:
        self.root = books.root
        self.paths = list(books.journal_files() if files is None else files)
        self.progress = progress
        self.warnings = warnings
        self.workers: list[_Worker | None] = []
        self.asked = 0
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
                del raw
                yield path, faults, triples
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
