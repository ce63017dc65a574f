"""The engine: books events through the pure rules into the database and the journal.

One booking, under the books' writer lock (one writer across all processes):

  1. repair: the journal's tail is brought level with the database (see below);
  2. the rules turn the event into one transaction on an Overlay of the database
     (days left open before the event's day are closed first, in order);
  3. each entry is chained (prev, hash) and applied to the Overlay;
  4. the Overlay and the entries' rows, with their exact text and file offsets,
     are committed to the database in one transaction: **the commit point**;
  5. the entries are appended to their day files and fsynced; then the caller is
     answered.

A refused event raises `Refusal` in step 2: the database transaction is rolled
back and nothing is written anywhere. If the process dies after step 4, the next
booking (or the next start) finds the journal shorter than the database says and
rewrites the missing tail from the rows; a torn entry is cut off first. Bytes in
the journal that the database does not know are never guessed at: that is a
`JournalFault` for an auditor.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, delete, desc, insert, inspect, select

from . import reports, rules, signing, views
from .amounts import fmt
from .apply import apply_entry
from .config import Params, load_service
from .entries import GENESIS_PREV, Entry, Price, Transaction, chain_entry, entry_hash
from .errors import Conflict, Invalid, JournalFault, JournalUnavailable, Refusal
from .group_commit import GroupCommit, Request
from .journal import DIR_MODE, Books, day_file, make_private_dirs
from .rules import checkpoints
from .rules.events import Event, EventKind, Release, SigningKey
from .state import ClosedDay, Globals, MemoryState, Overlay, State
from .store import migrate, queries
from .store.db import (
    DbReader,
    database_url,
    ledger_row,
    load_globals,
    make_engine,
    parse_entry_text,
    persist,
    safe_url,
    sessions,
)
from .store.migrate import upgrade
from .store.models import EventRow, IdempotencyRow, LedgerRow

# Limits: a booking closes at most this many days in one database transaction
# (longer gaps are closed in several), and the books span at most this many days.
MAX_DAYS_PER_COMMIT = 366
# A limit on one commit's events (group commit from the API and importers).
MAX_EVENTS_PER_COMMIT = 10_000
# A commit of at least this many events runs with the cyclic garbage collector paused (see _gc_paused).
GC_PAUSE_FROM = 64

log = logging.getLogger(__name__)
# The engine's hook once days are closed: `hook(books_root, writer_locked=bool)` (views.on_days_closed).
DaysClosedHook = Callable[..., object]


@dataclass(frozen=True, slots=True)
class Booked:
    """An entry as booked: what the API returns and the CLI prints."""

    seq: int
    event_id: str | None
    kind: str
    day: date
    hash: str
    prev: str
    entry: Entry
    text: str
    file: str

    def to_json(self) -> dict:
        postings = []
        if isinstance(self.entry, Transaction):
            for p in self.entry.postings:
                postings.append({
                    "account": p.account, "amount": fmt(p.number), "commodity": p.currency,
                    "holder": p.holder, "leg": p.get("leg"),
                })
        return {
            "id": self.event_id, "kind": self.kind, "date": self.day.isoformat(), "seq": self.seq,
            "postings": postings, "hash": self.hash, "prev": self.prev, "file": self.file,
        }


def closed_days_json(booked: list[Booked], through: date) -> dict:
    return {
        "through": through.isoformat(),
        "closed": [
            {"date": b.day.isoformat(), "id": b.event_id, "released_sp": b.entry.get("released_sp"),
             "value_cny_per_sp": b.entry.get("value"), "hash": b.hash}
            for b in booked if b.kind == EventKind.RELEASE
        ],
    }


class IdempotentReplay(Exception):
    """The same Idempotency-Key and body came again: here is the first response."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__("replay")
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class Idempotency:
    """An Idempotency-Key and the hash of its request, checked and stored in the booking's transaction.

    `scope` is the id of the API key that sent it: equal keys of two clients are two requests
    (paths without an API key use the fixed scope "cli"). A row of the placeholder scope
    "legacy" (written before keys were scoped, migration 0002) answers any scope, as it did then.
    """

    key: str
    request_hash: str
    scope: str = "cli"

    def check(self, session, known: Mapping[str, list] | None = None) -> None:
        """Raise IdempotentReplay (or Conflict) when this key was used. `known`: the rows of the
        keys of a whole group commit, read at once (`idempotency_rows`)."""
        if known is None:
            rows = session.connection().execute(_IDEMPOTENCY_BY_KEY,
                                                {"key": self.key, "scopes": [self.scope, LEGACY_SCOPE]}).all()
        else:
            rows = [row for row in known.get(self.key, ()) if row.api_key_id in (self.scope, LEGACY_SCOPE)]
        if not rows:
            return
        row = min(rows, key=lambda r: r.api_key_id == LEGACY_SCOPE)  # the key's own row first
        if row.request_hash != self.request_hash:
            raise Conflict("idempotency.key_reused",
                           "Idempotency-Key: this key was used with another request", "Idempotency-Key")
        if row.event_id is not None:  # the answer is the event's own (rebuilt from its row)
            event = session.connection().execute(_EVENT_BY_ID, {"id": row.event_id}).first()
            if event is not None:
                raise IdempotentReplay(row.status, json.dumps(booked_of_row(event).to_json()).encode("utf-8"))
        raise IdempotentReplay(row.status, row.response)

    def row(self, status: int, body: dict | None, event_id: str | None, created: datetime) -> dict:
        """The stored row of the answer: a booking's by its event id alone (`event_id`, or no `body`), another's
        whole."""
        response = b"" if event_id is not None or body is None else json.dumps(body).encode("utf-8")
        return {"api_key_id": self.scope, "key": self.key, "request_hash": self.request_hash, "status": status,
                "response": response, "created": created, "event_id": event_id}

    def store(self, session, status: int, body: dict, event_id: str | None = None) -> None:
        """Record the answer (`row`) in the session."""
        session.add(IdempotencyRow(**self.row(status, body, event_id, _utcnow())))


_IDEMPOTENCY = IdempotencyRow.__table__
_IDEMPOTENCY_BY_KEY = select(_IDEMPOTENCY.c.api_key_id, _IDEMPOTENCY.c.request_hash, _IDEMPOTENCY.c.status,
                             _IDEMPOTENCY.c.response, _IDEMPOTENCY.c.event_id).where(
    _IDEMPOTENCY.c.key == bindparam("key"), _IDEMPOTENCY.c.api_key_id.in_(bindparam("scopes", expanding=True)))
_EVENTS = EventRow.__table__
_EVENT_BY_ID = select(_EVENTS).where(_EVENTS.c.id == bindparam("id"))
_IDEMPOTENCY_BY_KEYS = select(_IDEMPOTENCY.c.key, _IDEMPOTENCY.c.api_key_id, _IDEMPOTENCY.c.request_hash,
                              _IDEMPOTENCY.c.status, _IDEMPOTENCY.c.response, _IDEMPOTENCY.c.event_id).where(
    _IDEMPOTENCY.c.key.in_(bindparam("keys", expanding=True)))
_INSERT_IDEMPOTENCY = insert(IdempotencyRow)
# Keys read per `IN (...)` query (well under SQLite's limit on bound parameters).
_KEYS_CHUNK = 500


def idempotency_rows(session, idempotencies: Iterable[Idempotency]) -> dict[str, list]:
    """The stored rows of these keys (of any scope), by key: a group commit's checks in a few queries."""
    keys = sorted({i.key for i in idempotencies})
    found: dict[str, list] = {}
    connection = session.connection()
    for start in range(0, len(keys), _KEYS_CHUNK):
        for row in connection.execute(_IDEMPOTENCY_BY_KEYS, {"keys": keys[start:start + _KEYS_CHUNK]}):
            found.setdefault(row.key, []).append(row)
    return found


def store_idempotency(session, answered: list[tuple[Idempotency, str | None]]) -> None:
    """Record the answers of a group commit's bookings (`Idempotency.store` with an event id), in one statement."""
    if answered:
        created = _utcnow()
        session.connection().execute(_INSERT_IDEMPOTENCY, [i.row(201, None, event_id, created)
                                                           for i, event_id in answered])


_PRUNE_IDEMPOTENCY = delete(IdempotencyRow).where(_IDEMPOTENCY.c.created < bindparam("before"))
# The scope of idempotency rows written before keys were scoped (migration 0002).
LEGACY_SCOPE = "legacy"


def booked_of_row(row) -> Booked:
    """A booked entry as its event row holds it (the same answer as when it was booked)."""
    entry = parse_entry_text(row.text)
    event_id = entry.get("event") if isinstance(entry, Transaction) else None
    kind = "price" if isinstance(entry, Price) else entry.kind
    return Booked(row.seq, event_id, kind, row.day, row.hash, row.prev, entry, row.text, row.file)


def event_id_for(seq: int) -> str:
    return f"E{seq:09d}"


class Engine:
    """The books (journal + database) of one platform."""

    def __init__(self, books: Path | str, db_url: str | None = None,
                 clock: Callable[[], date] | None = None, serve_on_fault: bool = False,
                 on_days_closed: DaysClosedHook = views.on_days_closed) -> None:
        """Open the books and bring the journal level with the database.

        `on_days_closed(books_root, writer_locked=...)` is called once days are closed (or a
        repair rewrote a close) to extend the derived views (default: `views.on_days_closed`).

        A journal that cannot be written now (a read-only or full disk) is left behind and
        logged: the engine opens degraded (reads work; every booking first retries the
        repair and answers JournalUnavailable until it succeeds). A JournalFault (bytes the
        database does not know) raises, unless `serve_on_fault` (the API: it keeps serving
        reads and answers bookings with the fault).
        """
        self.books = Books(books)
        self.on_days_closed = on_days_closed
        self.group: GroupCommit | None = None  # `enable_group_commit`: the API's request threads share commits
        self._group_booked: list[Booked] = []  # the last batch's entries, for `_after_group`
        self._checkpoints_pending = False  # a repair rewrote a close: its checkpoint is booked once the lock is free
        self.on_lock_wait: Callable[[float], object] | None = None  # told the seconds each booking waited for the lock
        self.url = database_url(self.books.root, db_url)
        if self.url == database_url(self.books.root, None) and self.url.startswith("sqlite:///") \
                and not Path(self.url[len("sqlite:///"):]).is_file():
            raise FileNotFoundError(f"no books at {self.books.root}; run `ledger-service init --books "
                                    f"{self.books.root}` (no database found: books on another database need "
                                    "--db URL or $DATABASE_URL)")
        self.db = make_engine(self.url)
        self.Session = sessions(self.db)
        with self.Session() as session:
            row = session.get(LedgerRow, 1) if self._has_schema() else None
        if row is None:
            raise FileNotFoundError(f"no books at {self.books.root} (database {safe_url(self.url)}); "
                                    "run `ledger-service init`")
        if migrate.current(self.db) != migrate.head():  # books of an older schema: upgraded first
            with self.books.lock():
                upgrade(self.db)
        self.params = Params.from_meta(json.loads(row.rules_json))
        self.idempotency_retention = timedelta(days=load_service(self.books.root).idempotency_retention_days)
        self._clock = clock
        if not self.books.exists():
            self.books.write_main(row.genesis_day)
        try:
            with self._writer(), self.Session() as session:
                self._repair(session, deep=True)
        except (JournalUnavailable, OSError) as exc:
            log.warning("journal not repaired at start: %s; serving reads, bookings answer 503 until the "
                        "journal can be written",
                        exc if isinstance(exc, JournalUnavailable) else _cause(exc, self.books.root))
        except JournalFault as exc:
            if not serve_on_fault:
                log.error("start refused: journal fault: %s", exc, extra={"fields": {"event": "start.refused"}})
                raise
            log.error("journal fault at start: %s; serving reads, bookings refused until an audit", exc,
                      extra={"fields": {"event": "start.fault"}})

    def _has_schema(self) -> bool:
        return inspect(self.db).has_table("ledger")

    # -- set-up --------------------------------------------------------------------

    @classmethod
    def init(cls, books: Path | str, params: Params, start: date | None = None, db_url: str | None = None,
             clock: Callable[[], date] | None = None) -> Engine:
        """Create the books: schema, genesis entry with the rules, the first day's price."""
        params = Params.from_meta(params.to_meta())  # validated and normalised before anything is written
        root = Path(books)
        url = database_url(root, db_url)
        today = clock() if clock else _today(params)
        start = start or today
        if start > today:
            raise Invalid("date.future", f"start: {start} is in the future", "start")
        book = Books(root)
        if book.exists():
            raise Conflict("books.exist", f"books: {root} already holds a journal", "books")
        make_private_dirs(root)
        os.chmod(root, DIR_MODE)  # the books are the owner's alone (journal.DIR_MODE, FILE_MODE)
        db = make_engine(url, create=True)
        upgrade(db)
        Session = sessions(db)
        with book.lock(), Session() as session, session.begin():
            if session.get(LedgerRow, 1) is not None:
                raise Conflict("books.exist", f"books: database {safe_url(url)} already holds books", "books")
            state = Overlay(MemoryState(reports.genesis_globals(start, params)))
            seq = 1
            ctx = rules.Ctx(event_id_for(seq), seq, start, params)
            key = signing.load(root) or signing.create(root)  # BOOKS/keys/signing.key, 0600; its public half in genesis
            booked = [_chain(state, rules.genesis(params, start, ctx, signing.public_hex(key)), params)]
            booked.append(_chain(state, rules.price(state.g, start, state.g.seq + 1, params), params))
            session.add(ledger_row(state.g, json.dumps(params.to_meta(), sort_keys=True)))
            session.flush()
            rows = _rows(booked, book, {})
            persist(session, state.changes(), rows)
        book.write_main(start)
        book.append([(r["file"], r["text"].encode("utf-8")) for r in rows])
        db.dispose()
        return cls(root, db_url, clock)

    # -- time ------------------------------------------------------------------------

    def today(self) -> date:
        return self._clock() if self._clock else _today(self.params)

    # -- booking ---------------------------------------------------------------------

    def submit(self, event: Event, day: date | None = None, idempotency: Idempotency | None = None) -> Booked:
        """Book one event on `day` (default today); days before it are closed first. With group
        commit on, in one commit with the other requests waiting (`book_group`)."""
        if self.group is not None:
            return self.group.submit(Request((event, day, idempotency)))
        booked = self.submit_many([(event, day)], idempotency)
        return booked[-1]

    def enable_group_commit(self, max_batch: int = 256) -> None:
        """Let the threads of this process that `submit` at the same time share one commit."""
        self.group = GroupCommit(self._book_group_locked, max_batch, lock=self._writer, after=self._after_group)

    def book_group(self, batch: list[Request]) -> list[Request]:
        """Book the requests of a group commit, each `(event, day, idempotency)`, in one commit:
        one writer lock, one transaction, one journal append and fsync. Each event is planned on
        an overlay of its own over the batch's: a refused one (or a replayed or reused
        Idempotency-Key) is answered alone and leaves no trace, the others go on. A request with
        the Idempotency-Key of an earlier one in the batch is returned, to be tried in the next
        batch (where the first one's answer is stored). An error of the batch as a whole (the
        database, the journal) is every request's."""
        try:
            with self._writer():
                return self._book_group_locked(batch)
        finally:
            self._after_group()

    def _after_group(self) -> None:
        """Once the lock is released: the views of the days a batch closed."""
        booked, self._group_booked = self._group_booked, []
        if booked:
            self._update_ledger(booked)

    def _book_group_locked(self, batch: list[Request]) -> list[Request]:
        """`book_group` with the writer lock held (the group commit's leader took it)."""
        assert batch
        today = self.today()
        first_day = min(min(day or today for _e, day, _i in (r.payload for r in batch)), today)
        retry: list[Request] = []
        answered: list[tuple[Request, Booked]] = []
        with _gc_paused(len(batch) >= GC_PAUSE_FROM):
            if (first_day - self._open_day()).days > MAX_DAYS_PER_COMMIT:
                self._catch_up(first_day - timedelta(days=MAX_DAYS_PER_COMMIT))
            with self.Session() as session:
                with session.begin():
                    try:
                        self._repair(session)
                    except JournalUnavailable as exc:
                        for request in batch:
                            request.fail(JournalUnavailable(exc.lag_entries, exc.cause,
                                                            _booked_under(request.payload[2], session)))
                        return []
                    overlay, booked, answered, retry = self._plan_group(session, batch, today)
                    if not answered:
                        return retry
                    rows = self._persist(session, overlay, booked)
                    store_idempotency(session, [(request.payload[2], one.event_id) for request, one in answered
                                                if request.payload[2] is not None])
                    pruned = self._prune_if_closed(session, booked)
                self._log_closed(booked, pruned)
                try:
                    self._append_committed(rows, answered[-1][1].event_id)
                except JournalUnavailable as exc:  # booked, not written: each request names its own event
                    for request, one in answered:
                        request.fail(JournalUnavailable(exc.lag_entries, exc.cause, one.event_id, booked_now=True))
                    return retry
        for request, one in answered:
            request.succeed(one)
        self._group_booked = booked
        return retry

    def _plan_group(self, session, batch: list[Request], today: date):
        """The batch's overlay and entries, the requests booked with their entry, those to retry."""
        g = load_globals(session)
        reader = DbReader(session, g)
        reader.prefetch([r.payload[0] for r in batch])
        overlay = Overlay(reader)
        booked: list[Booked] = []
        answered: list[tuple[Request, Booked]] = []
        retry: list[Request] = []
        keys: set[tuple[str, str]] = set()
        known = idempotency_rows(session, [r.payload[2] for r in batch if r.payload[2] is not None])
        for request in batch:
            event, day, idempotency = request.payload
            if idempotency is not None:
                key = (idempotency.scope, idempotency.key)
                if key in keys:
                    retry.append(request)
                    continue
                keys.add(key)
            child = Overlay(overlay)
            try:
                if idempotency is not None:
                    idempotency.check(session, known)
                mine = self._plan_one(child, event, day or today)  # a day in the future is refused here
            except (Refusal, IdempotentReplay) as exc:
                request.fail(exc)
                continue
            overlay.absorb(child)
            booked += mine
            answered.append((request, mine[-1]))
        return overlay, booked, answered, retry

    def submit_many(self, events: Iterable[tuple[Event, date | None]],
                    idempotency: Idempotency | None = None) -> list[Booked]:
        """Book events in order in one commit; all or none (a refusal books nothing).

        Days left open before an event's day are closed in the same commit, so a
        refused event leaves the journal as it was. (A gap longer than
        MAX_DAYS_PER_COMMIT days is first closed in commits of its own.)
        """
        events = list(events)
        assert events and len(events) <= MAX_EVENTS_PER_COMMIT, len(events)
        today = self.today()
        for _event, day in events:
            if day is not None and day > today:
                raise Invalid("date.future", f"date: {day} is in the future (today is {today})", "date")
        first_day = events[0][1] or today
        with _gc_paused(len(events) >= GC_PAUSE_FROM), self._writer():
            if (first_day - self._open_day()).days > MAX_DAYS_PER_COMMIT:  # rare: close the gap in its own commits
                self._catch_up(first_day - timedelta(days=MAX_DAYS_PER_COMMIT))
            with self.Session() as session:
                with session.begin():
                    self._repair_or_unavailable(session, idempotency)
                    if idempotency is not None:
                        idempotency.check(session)
                    overlay, booked = self._plan(session, events)
                    rows = self._persist(session, overlay, booked)
                    events_booked = [b for b in booked if b.kind not in (EventKind.RELEASE, EventKind.PRICE)]
                    if idempotency is not None:
                        idempotency.store(session, 201, {}, event_id=events_booked[-1].event_id)
                    pruned = self._prune_if_closed(session, booked)
                self._log_closed(booked, pruned)
                self._append_committed(rows, events_booked[-1].event_id)
        self._update_ledger(booked)
        return events_booked

    @contextmanager
    def _writer(self):
        """The books' writer lock; once released (an answer or an error alike), the checkpoints of
        the closes a repair rewrote meanwhile are booked (they need the lock themselves)."""
        asked = time.perf_counter()
        try:
            with self.books.lock():
                if self.on_lock_wait is not None:
                    self.on_lock_wait(time.perf_counter() - asked)
                yield
        finally:
            if self._checkpoints_pending:
                self._checkpoints_pending = False
                self.book_checkpoints()

    def _prune_if_closed(self, session, booked: list[Booked]) -> int:
        """As days close (in the commit that closes them): delete the idempotency records older
        than the retention; the rows deleted."""
        if not any(b.kind == EventKind.RELEASE for b in booked):
            return 0
        before = _utcnow() - self.idempotency_retention
        return session.connection().execute(_PRUNE_IDEMPOTENCY, {"before": before}).rowcount or 0

    def _log_closed(self, booked: list[Booked], pruned: int) -> None:
        """One log line per day closed, and one for the idempotency records pruned (after the commit)."""
        for b in booked:
            if b.kind == EventKind.RELEASE:
                log.info("day closed: %s (seq %d, released %s SP at %s CNY/SP)", b.day, b.seq,
                         b.entry.get("released_sp"), b.entry.get("value"),
                         extra={"fields": {"event": "day.closed", "day": b.day.isoformat(), "seq": b.seq}})
        if pruned:
            log.info("idempotency records pruned: %d older than %d days", pruned, self.idempotency_retention.days,
                     extra={"fields": {"event": "idempotency.pruned", "rows": pruned}})

    def _open_day(self) -> date:
        with self.db.connect() as connection:
            return queries.open_day(connection)

    def _persist(self, session, overlay: Overlay, booked: list[Booked]) -> list[dict]:
        """The booked entries' rows, written with the overlay's changes (and the days it closed)."""
        rows = _rows(booked, self.books, {})
        reader = overlay.base
        persist(session, overlay.changes(), rows, reader.stored if isinstance(reader, DbReader) else None)
        return rows

    def _plan(self, session, events) -> tuple[Overlay, list[Booked]]:
        g = load_globals(session)
        reader = DbReader(session, g)
        if len(events) > 1:  # read ahead, in a few queries, the rows the rules will look up
            reader.prefetch([event for event, _day in events])
        overlay = Overlay(reader)
        booked: list[Booked] = []
        for event, day in events:
            booked += self._plan_one(overlay, event, day or self.today())
        return overlay, booked

    def _plan_one(self, overlay: Overlay, event: Event, day: date) -> list[Booked]:
        """Book one event on `overlay` on `day`: the closes of the days before it, then its entry (last)."""
        # Validated and normalised exactly as a verifier will read it back from the journal.
        event = rules.parse(event.kind, dict(event.to_meta()), by_meta_key=True)
        day = self._check_day(overlay.g, day, event)
        booked: list[Booked] = []
        while overlay.g.open_day < day:
            booked += self._close(overlay)
        seq = overlay.g.seq + 1
        ctx = rules.Ctx(event_id_for(seq), seq, day, self.params)
        # the entry's metadata holds the event's fields as to_meta wrote them: the same event parses from it
        booked.append(_chain(overlay, rules.book(overlay, event, ctx), self.params, event))
        return booked

    def quote(self, event: Event, day: date | None = None) -> Booked:
        """What `event` would book now, booking nothing."""
        with self.Session() as session:
            _overlay, booked = self._plan(session, [(event, day)])
            session.rollback()
        return booked[-1]

    def close_days(self, through: date | None = None, idempotency: Idempotency | None = None) -> list[Booked]:
        # (a gap of days is closed in commits of at most MAX_DAYS_PER_COMMIT days)
        """Close every open business day up to `through` (default: yesterday)."""
        today = self.today()
        through = through or today - timedelta(days=1)
        if through >= today:
            raise Conflict("day.not_ended", f"date: {through} has not ended yet (today is {today})", "date")
        with self._writer():
            booked = self._catch_up(through, idempotency)
        self._update_ledger(booked)
        return booked

    def _update_ledger(self, booked: list[Booked]) -> None:
        """Extend the ledger tier (what Fava opens) with the days just closed, writer lock released.

        Never fails a booking: the ledger is derived; the next update (or `ledger-service fava`)
        catches up, and `verify` reports a ledger that lags or differs.
        """
        if not any(b.kind == EventKind.RELEASE for b in booked):
            return
        try:
            self.on_days_closed(self.books.root, writer_locked=False)
        except Exception as exc:  # noqa: BLE001
            log.warning("ledger tier not updated: %s", exc)
        self.book_checkpoints()

    # -- the signed checkpoints (issue 12 §4; `rules.checkpoints`, `views.signed`) ---------------------

    def book_checkpoints(self) -> list[Booked]:
        """Book the signed checkpoint of every closed day that lacks one, once the views hold its roots.

        Books that sign from genesis checkpoint every closed day; books made before signing existed
        start with the last closed day (and first book their key: `signing_key` without a previous
        key). Each checkpoint is one chained entry dated the open day, then its file is published.
        Never fails the caller: a day left without one (views behind, a disk error) is booked by
        the next close, and `verify` names a closed day without one.
        """
        try:
            with self.books.lock():
                booked, objects = self._book_checkpoints_locked()
            if objects:
                views.signed.publish(self.books.root, objects)
            return booked
        except Exception as exc:  # noqa: BLE001 - the checkpoint is derived: booked later, never a failed booking
            log.warning("checkpoints not booked: %s", exc)
            return []

    def _book_checkpoints_locked(self) -> tuple[list[Booked], list[dict]]:
        with self.Session() as session:
            with session.begin():
                self._repair(session)
                connection = session.connection()
                last = queries.last_checkpoint_day(connection)
                in_force, from_genesis = queries.signing_key_in_force(connection)
                days = queries.closed_days_after(connection, last)
                if last is None and not from_genesis:
                    days = days[-1:]  # books that start signing now: from their last closed day
                ready = []
                for row in days:
                    found = views.signed.inputs(self.books.root, row.day)
                    if found is None:
                        break  # the views have not closed this day yet: the next close books it
                    if (found[0]["last_seq"], found[0]["head"]) != (row.last_seq, row.closing_hash):
                        raise JournalFault(f"the event log's checkpoint of {row.day} (seq {found[0]['last_seq']}) "
                                           f"is not the day's close (seq {row.last_seq}); run verify")
                    ready.append((row, *found))
                if not ready:
                    return [], []
                key, introduce = self._signing_key(in_force)
                public_key = signing.public_hex(key)
                overlay = Overlay(DbReader(session, load_globals(session)))
                booked: list[Booked] = []
                if introduce:
                    booked.append(self._book_on(overlay, SigningKey(public_key=public_key)))
                objects = []
                for row, log_cp, liabilities in ready:
                    obj = checkpoints.checkpoint_object(log_cp, liabilities, json.loads(row.supply_json), public_key)
                    obj["signature"] = signing.sign(key, obj)
                    booked.append(self._book_on(overlay, checkpoints.event_of(obj)))
                    objects.append(obj)
                rows = self._persist(session, overlay, booked)
            self._append_committed(rows, booked[-1].event_id)
        return booked, objects

    def _book_on(self, overlay: Overlay, event: Event) -> Booked:
        """Chain one engine event on the open day (no day is closed by it)."""
        day = overlay.g.open_day
        seq = overlay.g.seq + 1
        return _chain(overlay, rules.book(overlay, event, rules.Ctx(event_id_for(seq), seq, day, self.params)),
                      self.params)

    def _signing_key(self, in_force: str | None):
        """(the private key in force, whether it must first be booked): the key file must hold the key
        the journal puts in force (a rotation cut short between its commit and the key's swap is
        finished here); books without one get a new key, introduced by a booked entry."""
        if in_force is None:
            return (signing.load(self.books.root) or signing.create(self.books.root)), True
        key = signing.in_force(self.books.root, in_force)
        if key is None:
            raise signing.SigningKeyError(f"{signing.KEY_FILE} does not hold the key the journal puts in force "
                                          f"({in_force}); restore it from the backup")
        return key, False

    def rotate_signing_key(self) -> Booked:
        """Book a new signing key, signed by the key in force, and put it in force (BOOKS/keys/)."""
        with self.books.lock(), self.Session() as session:
            with session.begin():
                self._repair_or_unavailable(session, None)
                in_force, _from_genesis = queries.signing_key_in_force(session.connection())
                old, introduce = self._signing_key(in_force)
                new = signing.generate()
                g = load_globals(session)
                overlay = Overlay(DbReader(session, g))
                booked = []
                if introduce:
                    booked.append(self._book_on(overlay, SigningKey(public_key=signing.public_hex(old))))
                rotation = checkpoints.rotation_object(overlay.g.open_day, signing.public_hex(old),
                                                       signing.public_hex(new))
                booked.append(self._book_on(overlay, SigningKey(
                    public_key=rotation["public_key"], previous_key=rotation["previous_key"],
                    signature=signing.sign(old, rotation))))
                rows = self._persist(session, overlay, booked)
                # the new key is on disk before the commit that puts it in force
                signing.stage(self.books.root, new)
            signing.commit_staged(self.books.root, old, new)
            self._append_committed(rows, booked[-1].event_id)
        log.info("signing key rotated: %s -> %s", rotation["previous_key"], rotation["public_key"])
        return booked[-1]

    def _catch_up(self, through: date, idempotency: Idempotency | None = None) -> list[Booked]:
        """Close open days up to `through`, at most MAX_DAYS_PER_COMMIT per commit (lock held).

        An idempotency key is checked first and stored in the commit that closes the last day.
        """
        out: list[Booked] = []
        while True:
            with self.Session() as session:
                with session.begin():
                    self._repair_or_unavailable(session, idempotency if not out else None)
                    if idempotency is not None and not out:
                        idempotency.check(session)
                    g = load_globals(session)
                    overlay = Overlay(DbReader(session, g))
                    booked: list[Booked] = []
                    for _ in range(MAX_DAYS_PER_COMMIT):
                        if overlay.g.open_day > through:
                            break
                        booked += self._close(overlay)
                    rows = self._persist(session, overlay, booked)
                    pruned = self._prune_if_closed(session, booked)
                    done = overlay.g.open_day > through
                    if done and idempotency is not None:
                        idempotency.store(session, 201, closed_days_json(out + booked, through))
                self._log_closed(booked, pruned)
                self._append_committed(rows, next((b.event_id for b in reversed(booked) if b.event_id), None))
            out += booked
            if done:
                return out

    def _check_day(self, g: Globals, day: date, event: Event) -> date:
        today = self.today()
        if day > today:
            raise Invalid("date.future", f"date: {day} is in the future (today is {today})", "date")
        if day < g.open_day:
            raise Conflict("day.closed", f"date: {day} is closed; the first open day is {g.open_day}", "date")
        return day

    def _close(self, overlay: Overlay) -> list[Booked]:
        """Book the release of the open day and the next day's price on `overlay`."""
        day = overlay.g.open_day
        assert day < self.today(), day  # never close a day that has not ended
        seq = overlay.g.seq + 1
        ctx = rules.Ctx(event_id_for(seq), seq, day, self.params)
        release = _chain(overlay, rules.book(overlay, Release(), ctx), self.params)
        # the report after the release: the day's value (a release leaves it: the release's
        # `value`) and the value its close sets (the next day's price, booked below)
        supply = reports.supply_report(overlay.g, self.params)
        value = overlay.g.value
        price = _chain(overlay, rules.price(overlay.g, day + timedelta(days=1), overlay.g.seq + 1, self.params),
                       self.params)
        overlay.close_day(ClosedDay(day, release.file, release.hash, release.seq, value, supply))
        return [release, price]

    # -- repair ----------------------------------------------------------------------

    def _repair(self, session, deep: bool = False) -> None:
        """Bring the journal level with the committed rows (lock held)."""
        head = queries.last_event_row(session.connection())
        if head is None:
            return
        end = head.offset + head.length
        size = self.books.size(head.file)
        if size == end and not deep:
            return
        if size > end:
            raise JournalFault(
                f"{head.file}: {size - end} bytes after the last entry the database knows (seq {head.seq}); run verify"
            )
        if size == end:
            with open(self.books.path(head.file), "rb") as handle:
                handle.seek(head.offset)
                if handle.read(head.length) != head.text.encode("utf-8"):
                    raise JournalFault(f"{head.file}: the last entry (seq {head.seq}) differs from the database; "
                                       "run verify")
            return
        missing: list[EventRow] = []
        below: EventRow | None = None  # the last row the journal still holds
        for row in session.scalars(select(EventRow).order_by(desc(EventRow.seq))):
            if self.books.size(row.file) >= row.offset + row.length:
                below = row
                break
            missing.append(row)
        missing.reverse()
        _check_rows_to_rewrite(missing, below.hash if below is not None else GENESIS_PREV,
                               queries.ledger_head(session.connection()))
        cut: dict[str, int] = {}
        for row in missing:
            cut.setdefault(row.file, row.offset)
        try:
            for file, offset in cut.items():
                self.books.truncate(file, offset)
            self._append_rows([(r.file, r.offset, r.text) for r in missing])
        except OSError as exc:
            raise JournalUnavailable(len(missing), _cause(exc, self.books.root)) from exc
        log.warning("journal repaired: %d entries rewritten (seq %d..%d)", len(missing), missing[0].seq,
                    missing[-1].seq, extra={"fields": {"event": "journal.repaired", "entries": len(missing),
                                                       "first_seq": missing[0].seq, "last_seq": missing[-1].seq}})
        if any(row.kind == EventKind.RELEASE for row in missing):  # a close rewritten: the ledger tier gets its days
            self._update_ledger_locked()
            self._checkpoints_pending = True  # and its checkpoint, once the writer lock is released

    def _update_ledger_locked(self) -> None:
        """The ledger tier's update after a repair rewrote a close (writer lock held; never fails the caller)."""
        try:
            self.on_days_closed(self.books.root, writer_locked=True)
        except Exception as exc:  # noqa: BLE001
            log.warning("ledger tier not updated after the repair: %s", exc)

    # -- a journal that cannot be written (a read-only or full disk) ------------------------------

    def _repair_or_unavailable(self, session, idempotency: Idempotency | None) -> None:
        """Repair before booking; while the journal cannot be brought level, book nothing and
        name the event this request's Idempotency-Key already booked, if any."""
        try:
            self._repair(session)
        except JournalUnavailable as exc:
            exc.event_id = _booked_under(idempotency, session)
            raise

    def _append_committed(self, rows: list[dict], event_id: str | None) -> None:
        """Append the entries just committed; a disk error is a JournalUnavailable (the event is booked)."""
        try:
            self._append_rows([(r["file"], r["offset"], r["text"]) for r in rows])
        except OSError as exc:
            cause = _cause(exc, self.books.root)
            log.warning("journal write failed after the commit (%s): seq %d..%d booked, not written; bookings "
                        "answer 503 until the journal has caught up", cause, rows[0]["seq"], rows[-1]["seq"])
            raise JournalUnavailable(len(rows), cause, event_id, booked_now=True) from exc

    def _append_rows(self, rows: list[tuple[str, int, str]]) -> None:
        """Append entries (file, offset, text) in order and fsync; on a disk error cut every file
        back to where these entries begin (no torn bytes are left), then raise the OSError.
        A cut that fails too is logged: the next repair cuts the torn tail."""
        try:
            self.books.append([(file, text.encode("utf-8")) for file, _offset, text in rows])
        except OSError:
            starts: dict[str, int] = {}
            for file, offset, _text in rows:
                starts.setdefault(file, offset)
            for file, offset in starts.items():
                try:
                    cut = self.books.cut_back(file, offset)
                    if cut:
                        log.warning("journal: %d torn bytes cut from %s (back to %d bytes)", cut, file, offset)
                except OSError as cut_error:
                    log.warning("journal: %s not cut back to %d bytes (%s); the next repair cuts it",
                                file, offset, _cause(cut_error, self.books.root))
            raise

    def journal_state(self) -> dict:
        """The journal against the database, for /health: `journal` ok | behind | fault,
        `journal_lag_entries` (committed entries not yet in the journal), `journal_detail` on a fault."""
        lag, fault = self._journal_state_now()
        if lag or fault:  # perhaps a booking between its commit and its append: look again under the lock
            try:
                with self.books.lock():
                    lag, fault = self._journal_state_now()
            except OSError:
                pass
        out: dict = {"journal": "fault" if fault else "behind" if lag else "ok", "journal_lag_entries": lag}
        if fault:
            out["journal_detail"] = fault
        return out

    def _journal_state_now(self) -> tuple[int, str | None]:
        with self.Session() as session:
            head = queries.last_event_row(session.connection())
            if head is None:
                return 0, None
            size = self.books.size(head.file)
            end = head.offset + head.length
            if size > end:
                return 0, f"{head.file}: {size - end} bytes after the last entry the database knows (seq {head.seq})"
            if size == end:
                with open(self.books.path(head.file), "rb") as handle:
                    handle.seek(head.offset)
                    if handle.read(head.length) != head.text.encode("utf-8"):
                        return 0, f"{head.file}: the last entry (seq {head.seq}) differs from the database"
                return 0, None
            lag, below = 0, head.seq + 1
            while True:
                batch = queries.event_rows_below(session.connection(), below)
                for row in batch:
                    if self.books.size(row.file) >= row.offset + row.length:
                        return lag, None
                    lag += 1
                if len(batch) < queries.LAG_BATCH_ROWS:
                    return lag, None
                below = batch[-1].seq

    # -- reads -----------------------------------------------------------------------

    def state_reader(self, session) -> DbReader:
        return DbReader(session, load_globals(session))

    def holder(self, holder_id: str) -> dict:
        """`GET /v1/holders/{id}` (`reports.holder_view`)."""
        with self.Session() as session:
            return queries.holder(session, holder_id, self.params)

    def merchant(self, merchant_id: str) -> dict:
        """`GET /v1/merchants/{id}` (`reports.holder_view` of a merchant)."""
        with self.Session() as session:
            return queries.merchant(session, merchant_id, self.params)

    def supply(self, day: date | None = None) -> dict:
        """The supply report at the close of `day` (or now, for an open or absent day)."""
        with self.Session() as session:
            return queries.supply(session, self.params, day, self.today())

    def event(self, event_id: str) -> dict:
        with self.Session() as session:
            return queries.event(session, event_id)

    def event_for_order(self, order_id: str) -> str | None:
        with self.Session() as session:
            return queries.event_for_order(session, order_id)

    def head(self) -> dict:
        with self.Session() as session:
            return queries.head(session)

    def signing_keys(self) -> dict:
        """`GET /v1/signing-keys` (`queries.signing_keys`)."""
        with self.db.connect() as connection:
            return queries.signing_keys(connection)

    def dispose(self) -> None:
        self.db.dispose()


@contextmanager
def _gc_paused(pause: bool):
    """Pause Python's cyclic garbage collector for one group commit, then restore it.

    A commit of thousands of events keeps all of them alive until it is written (entries,
    rows, the Overlay), and the collector would otherwise rescan that growing set many times
    (about a tenth of the booking time at 1,000 events per commit). Garbage without cycles
    is still freed at once; cycles made meanwhile are collected once the collector resumes.
    A commit is bounded (MAX_EVENTS_PER_COMMIT), and so is what waits. Nothing else changes.
    """
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _cause(exc: OSError, root: Path) -> str:
    """What failed, for logs and answers: the journal file relative to the books and the OS's
    reason (never an absolute server path)."""
    reason = exc.strerror or type(exc).__name__
    if exc.filename:
        try:
            return f"{Path(exc.filename).resolve().relative_to(root.resolve())}: {reason}"
        except ValueError:
            return f"{Path(exc.filename).name}: {reason}"
    return reason


def _booked_under(idempotency: Idempotency | None, session) -> str | None:
    """The id of the event an Idempotency-Key (with this same request) already booked, if any."""
    if idempotency is None:
        return None
    try:
        idempotency.check(session)
    except IdempotentReplay as replay:
        try:
            return json.loads(replay.body).get("id")
        except (ValueError, AttributeError):
            return None
    except Refusal:
        return None
    return None


def _today(params: Params) -> date:
    return datetime.now(params.timezone).date()


def _chain(state: State, entry: Entry, params: Params, event: Event | None = None) -> Booked:
    """Give `entry` its place in the chain and apply it to `state`. `event`: the entry's event, parsed
    as `apply_entry` would parse it from the entry (the event the rules booked it from), or None."""
    prev = state.g.head
    digest, full, text = chain_entry(entry, prev)  # entry_hash, with_meta and render, in one pass
    apply_entry(state, full, event)
    kind = "price" if isinstance(full, Price) else full.kind
    event_id = full.get("event") if isinstance(full, Transaction) else None
    file = _DAY_FILES.get(full.date)
    if file is None:
        if len(_DAY_FILES) > 4096:
            _DAY_FILES.clear()
        file = _DAY_FILES[full.date] = day_file(full.date)
    seq = full.get("seq")
    assert seq is not None, full
    return Booked(int(seq), event_id, kind, full.date, digest, prev, full, text, file)


_DAY_FILES: dict[date, str] = {}  # journal.day_file, remembered (strftime is slow)


def _check_rows_to_rewrite(rows: list[EventRow], prev: str, head: str | None) -> None:
    """Repair writes a row's text only if it hashes to the chain the database records.

    Each row's text must be one entry whose seq is the row's, whose `prev` is the row's and
    the previous row's hash (`prev` for the first), and whose `hash` is the row's and the
    SHA-256 of its content; the last row's hash must be the ledger's head. Anything else is
    a JournalFault, raised before a byte is written.
    """
    for row in rows:
        try:
            entry = parse_entry_text(row.text)
        except AssertionError:
            entry = None
        if entry is None:
            problem = "its text is not one journal entry"
        elif entry.get("seq") != str(row.seq):
            problem = f"its text has seq {entry.get('seq')}"
        elif row.prev != prev or entry.get("prev") != prev:
            problem = f"its prev ({row.prev}, text {entry.get('prev')}) is not the previous row's hash {prev}"
        elif entry.get("hash") != row.hash or entry_hash(entry, prev) != row.hash:
            problem = f"its text does not hash to the row's hash {row.hash}"
        else:
            prev = row.hash
            continue
        raise JournalFault(f"{row.file}: the database row of seq {row.seq} cannot be rewritten: {problem}; "
                           "nothing written; run verify")
    if rows and prev != head:
        raise JournalFault(f"{rows[-1].file}: the database row of seq {rows[-1].seq} hashes to {prev}, not to the "
                           f"ledger's head {head}; nothing written; run verify")


def _rows(booked: list[Booked], books: Books, sizes: dict[str, int]) -> list[dict]:
    rows = []
    for b in booked:
        data = b.text.encode("utf-8")
        offset = sizes.get(b.file)
        if offset is None:
            offset = books.size(b.file)
        sizes[b.file] = offset + len(data)
        rows.append(dict(
            seq=b.seq, id=b.event_id or f"P{b.seq:09d}", kind=b.kind, day=b.day, order_id=None, file=b.file,
            offset=offset, length=len(data), prev=b.prev, hash=b.hash, text=b.text, reversible=False, reversed_by=None,
        ))
    return rows


def _utcnow() -> datetime:
    """Naive UTC now, as stored in the database's DateTime columns."""

    return datetime.now(UTC).replace(tzinfo=None)
