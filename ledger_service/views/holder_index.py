"""The holder index: every holder's position at the ledger's last closed day (ledger tier).

Fava's Holder page must answer in milliseconds on books of millions of events, and it may
not read the service's database. So the ledger tier keeps, beside the summary ledger, a
small SQLite file derived from the journal alone:

    BOOKS/ledger/holders.sqlite
      position   one row: the seq, hash and day of the last closed day's release, and the
                 platform position after it (value, indices, control-account balances)
      holders    every holder's subledger row (the `state.Holder` fields)
      epochs     the closed epochs of the SV index (a holder's balance needs them)
      payouts    every payout and its status
      events     holder -> (day, event id, kind, journal file, line), in journal order

It is a derived view (`views.base`): extended as days close (`views.update` feeds its
`updater()` each closed day's entries) by folding them with `apply.apply_entry` — the same
function the engine and `verify` use, so a holder's figures here are the ones an auditor's
replay gives. `verify` checks it (`checker()`, an `IndexCheck`): when its replay reaches
the index's seq it compares the position, every holder and a digest of the event rows;
`compare()` does the same on its own fold of the journal. The index keeps no reversal
records (they grow with events and the page does not need them); `apply` marks reversals on
a throwaway record.

Readers (the Holder page): `Reader` (the index as written) and `since_index()`, the entries
booked past the index folded on top of it — a holder as of the journal's head.

Limits: one writer at a time (the views' lock); readers see whole days only (one SQLite
transaction per update).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from ..amounts import ZERO, fmt
from ..apply import apply_entry
from ..config import ConfigError, Params
from ..entries import Entry, Transaction, from_beancount
from ..faults import Fault
from ..journal import Books, DayFile, day_files, journal_directives, relative
from ..reports import genesis_globals
from ..rules.events import EventKind
from ..state import (
    Epoch,
    EventRecord,
    Globals,
    Holder,
    MemoryState,
    Payout,
    State,
    event_rows,
    holders_of,
    row_digest_line,
)
from ..store.db import HolderRows, RowWriter, dbapi_cursor
from ..store.models import DecimalText
from ..subledger import balance
from .base import LEDGER_DIR, Check, Update, ViewError, sqlite_engine

INDEX_NAME = "holders.sqlite"
# Rows written per statement (a limit on one executemany's memory), holders read per statement.
WRITE_BATCH = 10_000
PREFETCH_BATCH = 500

_meta = MetaData()
POSITION = Table(
    "position", _meta,
    Column("id", Integer, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("head", String(64), nullable=False),
    Column("closed_day", Date, nullable=False),
    Column("journal", String(128), nullable=False),
    Column("genesis_day", Date, nullable=False),
    Column("open_day", Date, nullable=False),
    Column("value", DecimalText, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("sv_index", DecimalText, nullable=False),
    Column("sp_index", DecimalText, nullable=False),
    Column("total_shares", DecimalText, nullable=False),
    Column("balances_json", Text, nullable=False),
)
_HOLDER_TYPES = {"created": Date, "last_purchase": Date, "opened": Date, "active": Boolean, "epoch": Integer}
# Holder fields added after index files were first written (SQL type of the column added to
# an older file; NULL is their value there: `Holder.opened` is None in every older book).
_ADDED_HOLDER_COLUMNS = {"opened": "DATE"}
_DECIMALS = {"sv_locked", "shares", "sp_ckpt", "sp_exact", "rebate_rate", "deposits_cny"}
HOLDER_FIELDS = [f.name for f in fields(Holder)]
HOLDERS = Table(
    "holders", _meta,
    *(Column(name, String(64), primary_key=True) if name == "id" else
      Column(name, DecimalText if name in _DECIMALS else _HOLDER_TYPES.get(name, String(64)))
      for name in HOLDER_FIELDS),
)
_HOLDER_ROWS = HolderRows("sqlite", HOLDERS)  # the index is a SQLite file
EPOCHS = Table(
    "epochs", _meta,
    Column("number", Integer, primary_key=True),
    Column("sp_index_end", DecimalText, nullable=False),
    Column("factor", DecimalText, nullable=False),
)
PAYOUT_FIELDS = [f.name for f in fields(Payout)]
PAYOUTS = Table(
    "payouts", _meta,
    Column("id", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("sp", DecimalText, nullable=False),
    Column("cny", DecimalText, nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested", Date, nullable=False),
    Column("bank_reference", String(200)),
)
EVENTS = Table(
    "events", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("holder", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("event", String(64), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("file", String(128), nullable=False),
    Column("line", Integer, nullable=False),
    Index("events_by_holder", "holder", "id"),
)
EVENT_FIELDS = ("holder", "day", "event", "kind", "file", "line")  # `state.event_rows`' tuples
_EVENT_WRITER = RowWriter("sqlite", EVENTS, EVENT_FIELDS)


class HolderIndexError(ViewError):
    """The journal cannot be folded into the index (a gap, or an entry apply refuses)."""


def index_path(books_root: Path | str) -> Path:
    return Path(books_root) / LEDGER_DIR / INDEX_NAME


def open_engine(path: Path) -> Engine | None:
    """A SQLAlchemy engine on the index file (None: no index)."""
    return _engine(path, create=False) if path.is_file() else None


def _engine(path: Path, create: bool) -> Engine:
    """A SQLAlchemy engine on the index file, the file and its tables created if `create`; an
    index written before a holder field existed gains its column (`_ADDED_HOLDER_COLUMNS`)."""
    engine = sqlite_engine(path, _meta if create else None)
    with engine.connect() as c:
        present = {row[1] for row in c.exec_driver_sql("PRAGMA table_info(holders)")}
    missing = [name for name in _ADDED_HOLDER_COLUMNS if present and name not in present]
    if missing:
        with engine.begin() as c:
            for name in missing:
                c.exec_driver_sql(f"ALTER TABLE holders ADD COLUMN {name} {_ADDED_HOLDER_COLUMNS[name]}")
    return engine


# -- which holders an entry concerns: `state.holders_of`, `state.event_rows`, `state.row_digest_line`


def _seq_of(entry: Entry) -> int:
    """An entry's `seq` as a number (0: none; a number written otherwise is read as Beancount would)."""
    text = entry.get("seq") or "0"
    try:
        return int(text)
    except ValueError:
        try:
            return int(Decimal(text))
        except (ArithmeticError, ValueError):
            return 0


# -- the position, as a `State` ---------------------------------------------------------------


class IndexState:
    """The index as a `state.State`: reads from the file, keeps changes until `flush`."""

    def __init__(self, connection, g: Globals) -> None:
        self.connection = connection
        self.g = g
        self._holders: dict[str, Holder] = {}
        self._absent: set[str] = set()  # prefetched and not found (new holders of the day)
        self._dirty: set[str] = set()
        self._new: set[str] = set()
        self._epochs: dict[int, Epoch] = {}
        self._new_epochs: list[Epoch] = []
        self._payouts: dict[str, Payout] = {}
        self._dirty_payouts: set[str] = set()
        self._new_payouts: set[str] = set()

    # reads
    def holder(self, holder_id: str) -> Holder | None:
        found = self._holders.get(holder_id)
        if found is None:
            if holder_id in self._absent:
                return None
            rows = _HOLDER_ROWS.fetch(dbapi_cursor(self.connection), [holder_id])
            if not rows:
                return None
            found = self._holders[holder_id] = Holder(*_HOLDER_ROWS.values(rows[0]))
        return found

    def prefetch(self, holder_ids: Iterable[str]) -> None:
        """Load these holders in a few statements (a day's holders, before its entries are applied),
        through the connection's DBAPI cursor (`HolderRows`: SQLAlchemy's per-row processing cost
        more than the query)."""
        wanted = sorted({h for h in holder_ids if h not in self._holders})
        cursor = dbapi_cursor(self.connection)
        for start in range(0, len(wanted), PREFETCH_BATCH):
            chunk = wanted[start:start + PREFETCH_BATCH]
            found = set()
            for raw in _HOLDER_ROWS.fetch(cursor, chunk):
                holder = Holder(*_HOLDER_ROWS.values(raw))
                self._holders[holder.id] = holder
                found.add(holder.id)
            self._absent.update(h for h in chunk if h not in found)

    def epoch(self, number: int) -> Epoch:
        found = self._epochs.get(number)
        if found is None:
            row = self.connection.execute(select(EPOCHS).where(EPOCHS.c.number == number)).first()
            assert row is not None, number
            found = self._epochs[number] = Epoch(row.number, row.sp_index_end, row.factor)
        return found

    def payout(self, payout_id: str) -> Payout | None:
        found = self._payouts.get(payout_id)
        if found is None:
            row = self.connection.execute(select(PAYOUTS).where(PAYOUTS.c.id == payout_id)).first()
            if row is None:
                return None
            found = self._payouts[payout_id] = Payout(**row._mapping)
        return found

    def partner_of(self, region: str) -> str | None:
        return None  # the rules ask this; applying booked entries never does

    def order_event(self, order_id: str) -> str | None:
        return None

    def event_record(self, event_id: str) -> EventRecord | None:
        return EventRecord(event_id, "", ())  # reversal records are not kept (see the module)

    # writes
    def put_holder(self, holder: Holder) -> None:
        if holder.id not in self._holders and self.holder(holder.id) is None:
            self._new.add(holder.id)
        self._absent.discard(holder.id)
        self._holders[holder.id] = holder
        self._dirty.add(holder.id)

    def add_epoch(self, epoch: Epoch) -> None:
        self._epochs[epoch.number] = epoch
        self._new_epochs.append(epoch)

    def put_payout(self, payout: Payout) -> None:
        if payout.id not in self._payouts and self.payout(payout.id) is None:
            self._new_payouts.add(payout.id)
        self._payouts[payout.id] = payout
        self._dirty_payouts.add(payout.id)

    def set_partner(self, region: str, holder_id: str) -> None:
        pass

    def record_event(self, record: EventRecord, order_id: str | None) -> None:
        pass

    def put_event_record(self, record: EventRecord) -> None:
        pass

    def sv_granted_on(self, holder_id: str, day: date) -> Decimal:
        return ZERO  # the grant rule asks this; applying booked entries never does

    def sv_granted_to_campaign(self, campaign: str) -> Decimal:
        return ZERO

    def add_grant(self, holder_id: str, day: date, campaign: str | None, sv: Decimal) -> None:
        pass  # the grant totals are the service database's (and a replay's), not the index's

    def forget_grant_days(self, through: date) -> None:
        pass

    def read(self) -> tuple[dict[str, Holder], dict[int, Epoch]]:
        """The holders and epochs read or changed since the last `flush` (nothing written)."""
        return dict(self._holders), dict(self._epochs)

    def flush(self) -> None:
        """Write the changed holders, epochs and payouts (in the caller's transaction)."""
        c = self.connection
        cursor = dbapi_cursor(c)  # the holders' rows as `HolderRows` stores them (the column types' forms)
        for chunk in _chunks(sorted(self._new)):
            _HOLDER_ROWS.writer.insert(cursor, [_HOLDER_ROWS.params(self._holders[i]) for i in chunk])
        for chunk in _chunks(sorted(self._dirty - self._new)):
            _HOLDER_ROWS.writer.update(cursor, [_HOLDER_ROWS.params(self._holders[i]) for i in chunk])
        if self._new_epochs:
            c.execute(insert(EPOCHS), [{"number": e.number, "sp_index_end": e.sp_index_end, "factor": e.factor}
                                       for e in self._new_epochs])
        for payout_id in sorted(self._dirty_payouts):
            values = _values(self._payouts[payout_id], PAYOUT_FIELDS)
            if payout_id in self._new_payouts:
                c.execute(insert(PAYOUTS), [values])
            else:
                c.execute(update(PAYOUTS).where(PAYOUTS.c.id == payout_id).values(**values))
        self._dirty.clear()
        self._absent.clear()
        self._new.clear()
        self._new_epochs.clear()
        self._dirty_payouts.clear()
        self._new_payouts.clear()
        self._holders.clear()  # a limit: the cache holds one update's holders at most


def _genesis_globals(entry: Transaction) -> Globals:
    """The position before genesis is applied, as `audit.replay.Replay` starts it."""
    try:
        params = Params.from_meta(dict(entry.meta))
    except ConfigError as exc:
        raise HolderIndexError(f"the rules fixed at genesis are unreadable: {exc}") from exc
    return genesis_globals(entry.date, params)


def _values(obj: Any, names: list[str]) -> dict:
    return {name: getattr(obj, name) for name in names}


def _chunks(rows: list, size: int = WRITE_BATCH) -> Iterator[list]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


# -- the position row ---------------------------------------------------------------------------


def _globals(row) -> Globals:
    balances = {account: Decimal(amount) for account, amount in json.loads(row.balances_json).items()}
    return Globals(genesis_day=row.genesis_day, open_day=row.open_day, value=row.value, seq=row.seq, head=row.head,
                   epoch=row.epoch, sv_index=row.sv_index, sp_index=row.sp_index, total_shares=row.total_shares,
                   balances=balances)


def _position_values(g: Globals, closed_day: date, journal: str) -> dict:
    return {"id": 1, "seq": g.seq, "head": g.head, "closed_day": closed_day, "journal": journal,
            "genesis_day": g.genesis_day, "open_day": g.open_day, "value": g.value, "epoch": g.epoch,
            "sv_index": g.sv_index, "sp_index": g.sp_index, "total_shares": g.total_shares,
            "balances_json": json.dumps({a: fmt(v) for a, v in sorted(g.balances.items())})}


class Position:
    """Where the index stands: after the release of `closed_day` (seq, head)."""

    def __init__(self, row) -> None:
        self.seq: int = row.seq
        self.head: str = row.head
        self.closed_day: date = row.closed_day
        self.journal: str = row.journal
        self.g = _globals(row)


def read_position(connection) -> Position | None:
    row = connection.execute(select(POSITION).where(POSITION.c.id == 1)).first()
    return Position(row) if row is not None else None


# -- writing: fold closed days in ----------------------------------------------------------------


class Writer:
    """Folds closed journal days into the index, one SQLite transaction per `update`.

        with Writer(books_root) as writer:
            if writer.wants(day):
                writer.feed_day(journal_relpath, day, directives)
    """

    def __init__(self, books_root: Path | str, rebuild: bool = False) -> None:
        if rebuild:
            delete_index(books_root)
        self.engine = _engine(index_path(books_root), create=True)
        self.connection = self.engine.connect()
        self.transaction = self.connection.begin()
        self.position = read_position(self.connection)
        self.state: IndexState | None = (IndexState(self.connection, self.position.g)
                                         if self.position is not None else None)
        self.days = 0

    @property
    def closed_day(self) -> date | None:
        return self.position.closed_day if self.position is not None else None

    def wants(self, day: date) -> bool:
        return self.position is None or day > self.position.closed_day

    def feed_day(self, journal: str, day: date, directives: Iterable[Any]) -> None:
        """Apply one closed day's entries (Beancount directives, in file order)."""
        rows: list[tuple] = []
        last_kind = None
        pairs = [(d, e, holders_of(e)) for d, e in ((d, from_beancount(d)) for d in directives) if e is not None]
        if self.state is None:
            first = pairs[0][1] if pairs else None
            if not (isinstance(first, Transaction) and first.kind == EventKind.GENESIS):
                raise HolderIndexError(f"{journal}: the journal must open with the genesis entry")
            self.state = IndexState(self.connection, _genesis_globals(first))
        self.state.prefetch(h for _d, _e, holders in pairs for h in holders)
        for directive, entry, holders in pairs:
            seq = int(entry.get("seq") or 0)
            if seq != self.state.g.seq + 1:
                raise HolderIndexError(f"{journal}: seq {seq} follows {self.state.g.seq}; the index is not "
                                       "extended across a gap")
            try:
                apply_entry(self.state, entry)
            except (AssertionError, KeyError, ValueError, TypeError, AttributeError) as exc:
                raise HolderIndexError(f"{journal}:{directive.meta.get('lineno', 0)}: the entry cannot be applied "
                                       f"({type(exc).__name__}: {exc})") from exc
            rows += event_rows(entry, entry.date, journal, int(directive.meta.get("lineno", 0)), holders)
            last_kind = entry.kind if isinstance(entry, Transaction) else "price"
        if last_kind != EventKind.RELEASE:
            raise HolderIndexError(f"{journal}: the day is not closed (its last entry is not its release)")
        self.state.flush()
        cursor = dbapi_cursor(self.connection)  # a day as ISO text, as SQLAlchemy's SQLite `Date` stores it
        for chunk in _chunks(rows):
            _EVENT_WRITER.insert(cursor, [(h, d.isoformat(), e, k, f, n) for h, d, e, k, f, n in chunk])
        values = _position_values(self.state.g, day, journal)
        if self.position is None:
            self.connection.execute(insert(POSITION), [values])
        else:
            self.connection.execute(update(POSITION).where(POSITION.c.id == 1).values(**values))
        self.position = read_position(self.connection)
        self.days += 1

    def commit(self) -> None:
        self.transaction.commit()

    def close(self) -> None:
        if self.transaction.is_active:
            self.transaction.rollback()
        self.connection.close()
        self.engine.dispose()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        self.close()


# -- reading: what the Holder page shows -------------------------------------------------------------

# Holder ids are [A-Za-z0-9_-]: every id starting with P lies in [P, P + a character above them all).
ID_AFTER = "\x7f"


@dataclass(frozen=True)
class Ranked:
    """A holder as the Holder page lists them: id, kind, whether active, SP and active SV."""

    id: str
    kind: str
    active: bool
    sp: Decimal
    sv_active: Decimal


def ranked(holder: Holder, state: IndexState) -> Ranked:
    held = balance(holder, state.g, state)
    return Ranked(holder.id, holder.kind, holder.active, held.sp, held.sv_active)


def _rev(text: str) -> tuple[int, ...]:
    """A key that sorts ids backwards (so that, largest first, ties come in id order)."""
    return (*(-ord(c) for c in text), 0)  # the 0: "m1" before "m10"


def _keep(heap: list, item: tuple, limit: int) -> None:
    if len(heap) < limit:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)


class Reader:
    """Read-only access for the Holder page (one per request; cheap to open)."""

    def __init__(self, books_root: Path | str) -> None:
        self.root = Path(books_root)
        self.engine = open_engine(index_path(books_root))
        self.connection = self.engine.connect() if self.engine is not None else None
        self.position = read_position(self.connection) if self.connection is not None else None

    @property
    def exists(self) -> bool:
        return self.position is not None

    def _connection(self) -> Connection:
        if self.connection is None:
            raise HolderIndexError(f"no holder index at {index_path(self.root)}")
        return self.connection

    def state(self) -> IndexState:
        if self.position is None:
            raise HolderIndexError(f"no holder index at {index_path(self.root)}")
        return IndexState(self._connection(), self.position.g.copy())

    def event_count(self, holder_id: str) -> int:
        return int(self._connection().execute(
            select(func.count()).select_from(EVENTS).where(EVENTS.c.holder == holder_id)).scalar() or 0)

    def events(self, holder_id: str, offset: int, limit: int) -> list[tuple]:
        """The holder's events, newest first: (day, event, kind, file, line)."""
        rows = self._connection().execute(
            select(EVENTS.c.day, EVENTS.c.event, EVENTS.c.kind, EVENTS.c.file, EVENTS.c.line)
            .where(EVENTS.c.holder == holder_id).order_by(EVENTS.c.id.desc()).offset(offset).limit(limit))
        return [(r.day.isoformat(), r.event, r.kind, r.file, r.line) for r in rows]

    def holder_count(self) -> int:
        return int(self._connection().execute(select(func.count()).select_from(HOLDERS)).scalar() or 0)

    def search(self, prefix: str, offset: int, limit: int) -> tuple[list[Ranked], int]:
        """The holders whose id starts with `prefix` (case-sensitive, in id order: a range of the
        primary key, so fast at any size), one page of them with their balances at the index's
        close, and how many there are."""
        ids = HOLDERS.c.id
        where = (ids >= prefix) & (ids < prefix + ID_AFTER) if prefix else ids.is_not(None)
        connection = self._connection()
        total = int(connection.execute(select(func.count()).select_from(HOLDERS).where(where)).scalar() or 0)
        rows = connection.execute(select(HOLDERS).where(where).order_by(ids).offset(offset).limit(limit))
        state = self.state()
        return [ranked(Holder(**row._mapping), state) for row in rows], total

    def _every_holder(self) -> Iterator[Holder]:
        """Every holder, in id order, read WRITE_BATCH rows per statement (keyset pages)."""
        last = ""
        while True:
            rows = self._connection().execute(
                select(HOLDERS).where(HOLDERS.c.id > last).order_by(HOLDERS.c.id).limit(WRITE_BATCH)).all()
            for row in rows:
                yield Holder(**row._mapping)
            if len(rows) < WRITE_BATCH:
                return
            last = rows[-1].id

    def top(self, limit: int) -> tuple[list[Ranked], list[Ranked]]:
        """The `limit` holders with the most SP and the `limit` with the most active SV at the
        index's close (ties: by id). Every holder's balance is computed once (streamed, in
        batches): about a second per 100,000 holders, so callers run it in the background."""
        state = self.state()
        by_sp: list[tuple] = []
        by_sv: list[tuple] = []
        for holder in self._every_holder():  # two bounded heaps in one pass
            r = ranked(holder, state)
            _keep(by_sp, (r.sp, _rev(r.id), r), limit)
            _keep(by_sv, (r.sv_active, _rev(r.id), r), limit)
        return ([e[2] for e in sorted(by_sp, reverse=True)], [e[2] for e in sorted(by_sv, reverse=True)])

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.engine is not None:
            self.engine.dispose()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


# -- checking: what `verify` compares ----------------------------------------------------------------


class IndexCheck:
    """Compares the index with a fold of the journal as it streams by (a `Check`).

        check = IndexCheck(books_root)          # reads the index's position, if any
        for each directive: replay.feed(directive); check.feed(path, directive, replay.entry, replay.state)
        faults = check.finish()

    `state`: the position after the entry (`verify`'s replay, or `Fold` in `compare`).
    """

    MAX_FAULTS = 100

    def __init__(self, books_root: Path | str) -> None:
        self.root = Path(books_root)
        self.path = index_path(books_root)
        self.faults: list[Fault] = []
        self.target: Position | None = None
        self.digest = hashlib.sha256()
        self.compared = False
        self.last_release: int | None = None  # seq of the last release seen
        self._path: Path | None = None  # the journal file being fed, and its path relative to the books
        self._journal = ""
        self.engine = open_engine(self.path)
        if self.engine is not None:
            with self.engine.connect() as c:
                try:
                    self.target = read_position(c)
                except Exception as exc:  # noqa: BLE001 - an unreadable index is a fault, not a crash
                    self._fault("-", "index.unreadable", f"{type(exc).__name__}: {exc}")

    def _fault(self, event_id: str, rule: str, message: str) -> None:
        if len(self.faults) < self.MAX_FAULTS:
            self.faults.append(Fault(str(self.path), 0, event_id, rule, message))

    def feed(self, path: Path, directive: Any, entry: Entry | None, state: State | None) -> None:
        """Called after the fold was fed `directive` (`entry`: its conversion, `state`: the position after it)."""
        if entry is None:  # not an entry of the chain
            return
        if isinstance(entry, Transaction) and entry.kind == EventKind.RELEASE:
            self.last_release = _seq_of(entry)
        if self.target is None or self.compared:
            return
        lines = getattr(directive, "index_lines", None)  # computed by verify's parse worker, when there
        if lines is None:
            if path != self._path:
                self._path, self._journal = path, relative(self.root, path)
            lines = b"".join(row_digest_line(row) for row in event_rows(entry, entry.date, self._journal,
                                                                         int(directive.meta.get("lineno", 0))))
        self.digest.update(lines)
        if state is not None and state.g.seq == self.target.seq:
            self._compare(state)
            self.compared = True

    def _compare(self, state: Any) -> None:
        target, engine = self.target, self.engine
        if target is None or engine is None:
            return
        g = state.g
        if target.head != g.head:
            self._fault("-", "index.head", f"index stands at seq {target.seq} {target.head}; the journal's entry "
                                           f"{target.seq} has hash {g.head}")
            return
        for name in ("open_day", "value", "epoch", "sv_index", "sp_index", "total_shares", "balances"):
            if getattr(target.g, name) != getattr(g, name):
                self._fault("-", "index.position",
                            f"{name}: index {getattr(target.g, name)}, journal {getattr(g, name)}")
        with engine.connect() as c:
            index_state = IndexState(c, target.g)
            seen = 0
            for row in c.execute(select(HOLDERS)).yield_per(10_000):
                seen += 1
                theirs = Holder(**row._mapping)
                mine = state.holders.get(theirs.id)
                if mine is None:
                    self._fault(theirs.id, "index.holder", "holder in the index, not in the journal")
                elif theirs != mine:
                    what = ("balances" if balance(theirs, target.g, index_state) != balance(mine, g, state)
                            else "attributes" if _attrs(theirs) != _attrs(mine) else "subledger fields")
                    self._fault(theirs.id, "index.holder", f"{what} differ from the journal's replay")
            if seen != len(state.holders):
                self._fault("-", "index.holders", f"index holds {seen} holders, the journal {len(state.holders)}")
            digest = hashlib.sha256()
            rows = c.execute(select(EVENTS.c.holder, EVENTS.c.day, EVENTS.c.event, EVENTS.c.kind, EVENTS.c.file,
                                    EVENTS.c.line).order_by(EVENTS.c.id))
            for row in rows.yield_per(5_000):
                digest.update(row_digest_line(tuple(row)))
            if digest.hexdigest() != self.digest.hexdigest():
                self._fault("-", "index.events", "the holders' event rows differ from the journal's entries")

    def finish(self) -> list[Fault]:
        if self.engine is not None:
            self.engine.dispose()
        if self.target is None:
            return self.faults
        if not self.compared:
            self._fault("-", "index.ahead", f"index stands at seq {self.target.seq}, which the journal does not reach")
        elif self.last_release is not None and self.last_release != self.target.seq:
            self._fault("-", "index.lags", f"index stands at seq {self.target.seq} ({self.target.closed_day}); the "
                                           f"journal's last closed day ends at seq {self.last_release}")
        return self.faults


def _attrs(holder: Holder) -> tuple:
    return (holder.kind, holder.created, holder.referrer, holder.region, holder.role, holder.active,
            holder.last_purchase, holder.owner, holder.channel, holder.rebate_rate, holder.store_referrer,
            holder.deposits_cny, holder.opened)


def delete_index(books_root: Path | str) -> None:
    path = index_path(books_root)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


# -- the view's interface (`views.base`) --------------------------------------------------------------


class _IndexUpdate:
    """Folds the closed days past the index's position in (one SQLite transaction)."""

    def __init__(self, root: Path, rebuild: bool) -> None:
        self.root = root
        self.writer = Writer(root, rebuild=rebuild)

    def wants(self, day: DayFile) -> bool:
        return self.writer.wants(day.day)

    def add(self, day: DayFile) -> None:
        if day.closed:
            self.writer.feed_day(day.relpath, day.day, day.directives())

    def finish(self, days: Sequence[DayFile]) -> list[str]:
        if not self.writer.days:
            return []
        self.writer.commit()
        return [relative(self.root, index_path(self.root))]

    def close(self) -> None:
        self.writer.close()


def updater(books_root: Path, rebuild: bool = False) -> Update:
    """The index's update (see `views.update`, which holds the locks and feeds it the days)."""
    return _IndexUpdate(Path(books_root), rebuild)


def checker(books_root: Path) -> Check:
    return IndexCheck(books_root)


class Fold:
    """The position the journal's entries give, folded with `apply_entry` (the rules are not
    checked here: that is the replay's). `state` is None before genesis and once an entry
    cannot be applied."""

    def __init__(self) -> None:
        self.state: MemoryState | None = None
        self.broken = False

    def apply(self, entry: Entry | None) -> MemoryState | None:
        if entry is None or self.broken:
            return self.state
        try:
            if self.state is None:
                if not (isinstance(entry, Transaction) and entry.kind == EventKind.GENESIS):
                    raise HolderIndexError("the journal must open with the genesis entry")
                self.state = MemoryState(_genesis_globals(entry))
            apply_entry(self.state, entry)
        except (HolderIndexError, AssertionError, KeyError, ValueError, TypeError, AttributeError):
            self.broken, self.state = True, None
        return self.state


def compare(books_root: Path | str) -> list[Fault]:
    """The index against a fold of the journal (what `verify` does on its replay)."""
    root = Path(books_root)
    check, fold = IndexCheck(root), Fold()
    for path, directive, _errors in journal_directives(Books(root)):
        if directive is not None:
            entry = from_beancount(directive)
            check.feed(path, directive, entry, fold.apply(entry))
    return check.finish()


# -- a holder as of the journal's head: the index and the entries booked since ---------------------------


@dataclass
class Since:
    """What the journal holds past the index, folded on top of it."""

    head: str  # the journal's head this covers
    index_seq: int
    index_day: date
    entries: int  # entries applied past the index
    g: Globals  # the position at the head
    holders: dict[str, Holder]  # the holders those entries read or touched
    epochs: dict[int, Epoch]  # epochs read or closed past the index
    recent: dict[str, list[tuple]]  # holder id -> [(day, event, kind, file, line)] in journal order
    built_s: float


def since_index(books_root: Path | str, head: str) -> Since | None:
    """The entries booked past the index's last closed day, applied on the index (nothing is
    written); None when there is no index. `head`: the journal's head hash it is read at."""
    started = time.monotonic()
    root = Path(books_root)
    with Reader(root) as reader:
        position = reader.position
        if position is None:
            return None
        state = reader.state()
        recent: dict[str, list[tuple]] = {}
        applied = 0
        for day in day_files(Books(root)):
            if day.day <= position.closed_day:
                continue
            for directive in day.directives():
                entry = from_beancount(directive)
                if entry is None or int(entry.get("seq") or 0) <= state.g.seq:
                    continue
                apply_entry(state, entry)
                applied += 1
                for row in event_rows(entry, entry.date, day.relpath, int(directive.meta.get("lineno", 0))):
                    recent.setdefault(row[0], []).append((row[1].isoformat(), *row[2:]))
        holders, epochs = state.read()
        return Since(head, position.seq, position.closed_day, applied, state.g, holders, epochs, recent,
                     time.monotonic() - started)


class AtHead:
    """The index's position with what was booked since on top (read-only; what `balance` reads)."""

    def __init__(self, index_state: IndexState, since: Since) -> None:
        self.index_state = index_state
        self.since = since
        self.g = since.g

    def holder(self, holder_id: str) -> Holder | None:
        found = self.since.holders.get(holder_id)
        return found if found is not None else self.index_state.holder(holder_id)

    def epoch(self, number: int) -> Epoch:
        found = self.since.epochs.get(number)
        return found if found is not None else self.index_state.epoch(number)
