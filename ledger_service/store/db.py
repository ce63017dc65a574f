"""The database side of `State`: read through an Overlay, then written back in one commit."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import fields
from datetime import date, timedelta
from decimal import Decimal
from operator import attrgetter, is_, itemgetter
from pathlib import Path

from beancount.parser import parser
from sqlalchemy import Boolean, Date, Integer, Table, bindparam, create_engine, delete, event, insert, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from ..amounts import ZERO, fmt
from ..entries import Transaction, from_beancount
from ..journal import make_private_dirs, private_file
from ..rules.events import EVENT_TYPES, EventKind
from ..state import (
    GENESIS_INDICES,
    HOLDER_KEYS,
    ChangeSet,
    ClosedDay,
    Epoch,
    EventRecord,
    Globals,
    Holder,
    Indices,
    Payout,
)
from .models import (
    BalanceRow,
    Base,
    DayRow,
    DecimalText,
    EpochRow,
    EventRow,
    GrantCampaignRow,
    GrantDayRow,
    HolderRow,
    LedgerRow,
    PartnerRow,
    PayoutRow,
)

DB_FILENAME = "ledger.sqlite"


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class (typed: `Model.__table__` is only a FromClause)."""
    return Base.metadata.tables[model.__tablename__]


_HOLDER_FIELDS = [f.name for f in fields(Holder)]
_HOLDER_TABLE = table_of(HolderRow)
_PAYOUT_FIELDS = [f.name for f in fields(Payout)]
_PAYOUTS = table_of(PayoutRow)
_EVENTS = table_of(EventRow)
_PARTNERS = table_of(PartnerRow)
_EPOCHS = table_of(EpochRow)

# The statements of the booking path, built once (SQLAlchemy then reuses their compiled form
# from its cache without rebuilding or re-keying them); the holders' rows: `HolderRows`.
_PARTNER_OF = select(_PARTNERS.c.holder).where(_PARTNERS.c.region == bindparam("region"))
_EPOCH_BY_NUMBER = select(_EPOCHS.c.number, _EPOCHS.c.sp_index_end, _EPOCHS.c.factor).where(
    _EPOCHS.c.number == bindparam("number"))
_PAYOUT_COLUMNS = [_PAYOUTS.c[name] for name in _PAYOUT_FIELDS]
_PAYOUT_BY_ID = select(*_PAYOUT_COLUMNS).where(_PAYOUTS.c.id == bindparam("id"))
_PAYOUTS_BY_IDS = select(*_PAYOUT_COLUMNS).where(_PAYOUTS.c.id.in_(bindparam("ids", expanding=True)))
_PAYOUT_IDS_IN = select(_PAYOUTS.c.id).where(_PAYOUTS.c.id.in_(bindparam("ids", expanding=True)))
_ORDER_EVENT = select(_EVENTS.c.id).where(_EVENTS.c.order_id == bindparam("order_id"))
_ORDER_EVENTS = "SELECT order_id, id FROM events"  # `_rows_in`
_INSERT_PAYOUTS = insert(_PAYOUTS)
_UPDATE_PAYOUTS = update(_PAYOUTS).where(_PAYOUTS.c.id == bindparam("b_id")).values(
    {name: bindparam(name) for name in _PAYOUT_FIELDS if name != "id"})
_RELEASE_BEFORE = (select(_EVENTS.c.text).where(_EVENTS.c.kind == EventKind.RELEASE, _EVENTS.c.seq < bindparam("seq"))
                   .order_by(_EVENTS.c.seq.desc()).limit(1))
_INSERT_PARTNERS = insert(_PARTNERS)
_INSERT_EPOCHS = insert(_EPOCHS)
_GRANT_DAYS = table_of(GrantDayRow)
_GRANT_CAMPAIGNS = table_of(GrantCampaignRow)
_GRANT_DAY_SV = select(_GRANT_DAYS.c.sv).where(_GRANT_DAYS.c.holder == bindparam("holder"),
                                               _GRANT_DAYS.c.day == bindparam("day"))
_GRANT_CAMPAIGN_SV = select(_GRANT_CAMPAIGNS.c.sv).where(_GRANT_CAMPAIGNS.c.campaign == bindparam("campaign"))
_DELETE_GRANT_DAYS = delete(_GRANT_DAYS).where(_GRANT_DAYS.c.holder == bindparam("b_holder"),
                                               _GRANT_DAYS.c.day == bindparam("b_day"))
_DELETE_GRANT_DAYS_THROUGH = delete(_GRANT_DAYS).where(_GRANT_DAYS.c.day <= bindparam("through"))
_DELETE_GRANT_CAMPAIGNS = delete(_GRANT_CAMPAIGNS).where(_GRANT_CAMPAIGNS.c.campaign == bindparam("b_campaign"))
# Rows fetched per `IN (...)` query (well under SQLite's limit on bound parameters).
_CHUNK = 500
# The fields of each event kind that name a holder (what a booking will look up): those
# written under a metadata key that names a holder (`state.HOLDER_KEYS`).
_HOLDER_REFS = {kind: refs for kind, refs in (
    (kind, tuple(name for name, (key, *_spec) in cls.FIELDS.items() if key in HOLDER_KEYS))
    for kind, cls in EVENT_TYPES.items()) if refs}
# How far up the referral chains of an order's buyer holders are fetched ahead (the rules'
# walk reads further ones one by one).
_PREFETCH_ANCESTORS = 64


def _decimal_text(value: Decimal) -> str:
    """A Decimal as stored (`models.DecimalText.process_bind_param`)."""
    assert isinstance(value, Decimal), value
    return fmt(value)


def _bool_of(value) -> bool:
    return bool(value)


class HolderRows:
    """The holders' rows read and written through the DBAPI cursor of the session's connection
    (the same transaction), bypassing SQLAlchemy's per-row processing on the booking path.

    A row is kept as the database gives it (`raw`); `params` turns a Holder into the values that
    would be stored, in the same form, so that a holder whose row would not change is not written
    (`persist`). The conversions are those of the column types (`models.HolderRow`): Decimals
    as their exact text (`DecimalText`), dates as ISO text on SQLite (as SQLAlchemy's SQLite
    `Date` stores them) and as dates on PostgreSQL, booleans as integers on SQLite."""

    def __init__(self, dialect: str, table: Table = _HOLDER_TABLE) -> None:
        """`table`: the service database's holders (default), or a table of the same columns (the
        holder index's, `views.holder_index.HOLDERS`)."""
        self.sqlite = dialect == "sqlite"
        self.dialect = dialect
        self.writer = RowWriter(dialect, table, _HOLDER_FIELDS)
        self.select = f"SELECT {', '.join(_quoted(_HOLDER_FIELDS))} FROM {table.name}"
        to_holder: list[tuple[int, object]] = []
        to_row: list[tuple[int, object]] = []
        for i, name in enumerate(_HOLDER_FIELDS):
            column_type = table.c[name].type
            if isinstance(column_type, DecimalText):
                to_holder.append((i, Decimal))
                to_row.append((i, _decimal_text))
            elif isinstance(column_type, Date) and self.sqlite:
                to_holder.append((i, date.fromisoformat))
                to_row.append((i, date.isoformat))
            elif isinstance(column_type, Boolean):
                to_holder.append((i, _bool_of))
                if self.sqlite:
                    to_row.append((i, int))
        self.to_holder = tuple(to_holder)
        self.to_row = tuple(to_row)
        self.values_of = attrgetter(*_HOLDER_FIELDS)

    def values(self, raw) -> tuple:
        """The field values of the Holder of a row."""
        values = list(raw)
        for i, convert in self.to_holder:
            value = values[i]
            if value is not None:
                values[i] = convert(value)  # type: ignore[operator]
        return tuple(values)

    def params(self, holder: Holder, values: tuple | None = None) -> tuple:
        """The row of a Holder as it would be stored (`values`: its field values, when at hand)."""
        row = list(values if values is not None else self.values_of(holder))
        for i, convert in self.to_row:
            value = row[i]
            if value is not None:
                row[i] = convert(value)  # type: ignore[operator]
        return tuple(row)

    def fetch(self, cursor, ids: list[str]) -> list:
        return _rows_in(cursor, self.dialect, self.select, "id", ids)


def _quoted(names) -> list[str]:
    return [f'"{name}"' for name in names]


def _rows_in(cursor, dialect: str, select_sql: str, column: str, values: list) -> list:
    """The rows of `select_sql` (no WHERE) whose `column` is one of `values`: `IN (?, ...)` on
    SQLite, `= ANY(%b)` on PostgreSQL (one binary array parameter: the same statement text each time)."""
    if dialect == "sqlite":
        return cursor.execute(f"{select_sql} WHERE {column} IN ({', '.join('?' * len(values))})", values).fetchall()
    return cursor.execute(f"{select_sql} WHERE {column} = ANY(%b)", (list(values),)).fetchall()


def _pg_type(column_type) -> str:
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, Date):
        return "date"
    if isinstance(column_type, Integer):
        return "integer"
    return "text"  # strings, and Decimals as their text (`DecimalText`)


class RowWriter:
    """Rows inserted or updated (by their first column) through a DBAPI cursor, all in one call: on
    SQLite an `executemany`; on PostgreSQL one statement over `unnest` of one array per column
    (psycopg's `executemany` sends a statement per row)."""

    def __init__(self, dialect: str, table: Table, columns) -> None:
        self.sqlite = dialect == "sqlite"
        names = _quoted(columns)
        key, rest = names[0], names[1:]
        if self.sqlite:
            self.insert_sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            self.update_sql = f"UPDATE {table.name} SET {', '.join(f'{n} = ?' for n in rest)} WHERE {key} = ?"
        else:
            arrays = ", ".join(f"%b::{_pg_type(table.c[name].type)}[]" for name in columns)
            self.insert_sql = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays})"
            self.update_sql = (f"UPDATE {table.name} AS t SET {', '.join(f'{n} = v.{n}' for n in rest)} "
                               f"FROM unnest({arrays}) AS v({', '.join(names)}) WHERE t.{key} = v.{key}")

    def insert(self, cursor, rows: list[tuple]) -> None:
        if rows:
            if self.sqlite:
                cursor.executemany(self.insert_sql, rows)
            else:
                cursor.execute(self.insert_sql, [list(column) for column in zip(*rows, strict=True)])

    def update(self, cursor, rows: list[tuple]) -> None:
        if rows:
            if self.sqlite:
                cursor.executemany(self.update_sql, [(*row[1:], row[0]) for row in rows])
            else:
                cursor.execute(self.update_sql, [list(column) for column in zip(*rows, strict=True)])


_HOLDER_ROWS = {dialect: HolderRows(dialect) for dialect in ("sqlite", "postgresql")}

_EVENT_COLUMNS = tuple(column.name for column in _EVENTS.columns)
_EVENT_VALUES = itemgetter(*_EVENT_COLUMNS)
_EVENT_DAY = _EVENT_COLUMNS.index("day")
_EVENT_WRITERS = {dialect: RowWriter(dialect, _EVENTS, _EVENT_COLUMNS) for dialect in ("sqlite", "postgresql")}


def dbapi_cursor(connection):
    """A DBAPI cursor on the session's connection (its transaction)."""
    return connection.connection.driver_connection.cursor()


# A password in a URL written out as text: `scheme://user:PASSWORD@host` (user may be empty).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)@")
_BARE_PASSWORD = re.compile(r"(?P<head>[^:/@\s]*:)(?P<secret>[^@\s]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&][^=&\s]*password[^=&\s]*=)(?P<secret>[^&\s]*)", re.I)


def safe_url(url: str) -> str:
    """`url` as it may be shown, logged or stored: its password masked (`***`).

    SQLAlchemy's `render_as_string(hide_password=True)`, plus any `...password...=` query
    parameter; a string SQLAlchemy cannot parse is masked by pattern instead."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (never echo what could not be parsed: any `x:y@` is masked)
        masked = redact(url)
        return masked if masked != url else _BARE_PASSWORD.sub(lambda m: m.group("head") + "***@", url)
    return redact(shown)


def redact(text: str) -> str:
    """`text` with every URL password in it masked (for error messages that may quote a URL)."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***@", text)
    return _QUERY_PASSWORD.sub(lambda m: m.group("head") + "***", text)


class NoDatabase(FileNotFoundError):
    """A SQLite database file that is not there (it is never created by opening it)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None: another database, or SQLite in memory)."""
    if not url.startswith("sqlite"):
        return None
    name = make_url(url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def database_url(books: Path, url: str | None = None) -> str:
    """The database for these books: `url`, else $DATABASE_URL, else SQLite in the books."""
    chosen = url or os.environ.get("DATABASE_URL")
    if chosen:
        if chosen.startswith("postgresql://"):
            chosen = "postgresql+psycopg://" + chosen[len("postgresql://"):]
        return chosen
    return f"sqlite:///{(Path(books) / DB_FILENAME).resolve()}"


def make_engine(url: str, create: bool = False) -> Engine:
    """An engine on `url`. A SQLite file is created (mode 0600, owner only) when `create`;
    otherwise a missing one raises `NoDatabase` instead of being created empty."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        if not create:
            raise NoDatabase(f"no database found at {path}: name the books' database with --db URL or $DATABASE_URL",
                             path)
        make_private_dirs(path.parent)
        private_file(path)  # SQLite gives its -wal, -shm and -journal files the same mode
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # durable, concurrent readers, one writer
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pysqlite's own transaction handling is off: begin explicitly
            conn.exec_driver_sql("BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create the tables at the newest Alembic revision and stamp it."""
    from .migrate import upgrade  # Alembic, imported by the commands that create or upgrade a schema only

    upgrade(engine)


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _holder(row: HolderRow) -> Holder:
    return Holder(**{name: getattr(row, name) for name in _HOLDER_FIELDS})


_LEDGER = table_of(LedgerRow)
_BALANCES = table_of(BalanceRow)
_LEDGER_ROW = select(_LEDGER).where(_LEDGER.c.id == 1)
_ALL_BALANCES = select(_BALANCES.c.account, _BALANCES.c.amount)
_POSITION = ("open_day", "value", "seq", "head", "epoch", "sv_index", "sp_index", "total_shares")
_UPDATE_LEDGER = update(_LEDGER).where(_LEDGER.c.id == 1).values({name: bindparam(name) for name in _POSITION})
_UPDATE_BALANCES = update(_BALANCES).where(_BALANCES.c.account == bindparam("b_account")).values(
    amount=bindparam("amount"))
_INSERT_BALANCES = insert(_BALANCES)


def load_globals(session: Session) -> Globals:
    """The platform-wide position (Core statements: this runs on every booking)."""
    connection = session.connection()
    row = connection.execute(_LEDGER_ROW).first()
    if row is None:
        raise LookupError("no books in this database (no ledger row)")
    balances = {account: amount for account, amount in connection.execute(_ALL_BALANCES)}
    return Globals(
        genesis_day=row.genesis_day, open_day=row.open_day, value=row.value, seq=row.seq,
        head=row.head, epoch=row.epoch, sv_index=row.sv_index, sp_index=row.sp_index,
        total_shares=row.total_shares, balances=balances,
    )


class DbReader:
    """Read-only `State` over a session; writes go to an `Overlay` and `persist`.

    `prefetch(events)` reads, in a few `IN (...)` queries, the rows a batch of events will
    look up (their holders, the referral chains of their buyers, their order ids and payouts);
    each prefetched row is then handed out once, as a fresh object, by the lookup that asks
    for it (the Overlay keeps its own copy after that), and any other lookup reads the
    database as before. Partners and closed epochs are remembered for the reader's life (one
    transaction, under the writer lock: nothing else writes them meanwhile).

    `stored` keeps, for every holder read, its row as the database gave it and the field values
    of the Holder made of it: `persist` writes only the holders whose row would change.
    """

    def __init__(self, session: Session, g: Globals) -> None:
        self.session = session
        self.g = g
        self._holders: dict[str, Holder | None] = {}
        self.stored: dict[str, tuple[tuple, tuple]] = {}
        self._holder_rows = _HOLDER_ROWS[session.connection().dialect.name]
        self._orders: dict[str, str | None] = {}
        self._payouts: dict[str, Payout | None] = {}
        self._partners: dict[str, str | None] = {}
        self._epochs: dict[int, Epoch] = {}

    def holder(self, holder_id: str) -> Holder | None:
        if holder_id in self._holders:
            return self._holders.pop(holder_id)
        found = self._fetch_holders(self.session.connection(), (holder_id,))
        return self._holders.pop(holder_id, found[holder_id])

    def partner_of(self, region: str) -> str | None:
        if region not in self._partners:
            self._partners[region] = self.session.connection().execute(_PARTNER_OF, {"region": region}).scalar()
        return self._partners[region]

    def epoch(self, number: int) -> Epoch:
        found = self._epochs.get(number)
        if found is None:
            row = self.session.connection().execute(_EPOCH_BY_NUMBER, {"number": number}).first()
            assert row is not None, number
            found = self._epochs[number] = Epoch(row.number, row.sp_index_end, row.factor)
        return Epoch(found.number, found.sp_index_end, found.factor)

    def payout(self, payout_id: str) -> Payout | None:
        if payout_id in self._payouts:
            return self._payouts.pop(payout_id)
        row = self.session.connection().execute(_PAYOUT_BY_ID, {"id": payout_id}).first()
        return Payout(**row._mapping) if row is not None else None

    def order_event(self, order_id: str) -> str | None:
        if order_id in self._orders:
            return self._orders.pop(order_id)
        return self.session.connection().execute(_ORDER_EVENT, {"order_id": order_id}).scalar()

    def prefetch(self, events) -> None:
        """Read ahead what booking `events` (in order) will look up; see the class's docstring."""
        holder_ids, buyers, order_ids, payout_ids = _looked_up(events)
        connection = self.session.connection()
        found = self._fetch_holders(connection, holder_ids)
        # the referral chains the order rules walk, and the stores' referrers
        wanted = {h.store_referrer for h in found.values() if h is not None and h.store_referrer}
        frontier = {h.referrer for h in (found.get(b) for b in buyers) if h is not None and h.referrer}
        held = self._holders  # (`set - dict.keys()` would iterate over every key held: filtered instead)
        for _ in range(_PREFETCH_ANCESTORS):
            frontier = {h for h in frontier if h not in held}
            if not frontier:
                break
            step = self._fetch_holders(connection, frontier)
            frontier = {h.referrer for h in step.values() if h is not None and h.referrer}
        self._fetch_holders(connection, {h for h in wanted if h not in held})
        if order_ids:
            cursor = dbapi_cursor(connection)
            try:
                for chunk in _chunks(sorted(order_ids)):
                    known: dict[str, str] = dict(_rows_in(cursor, self._holder_rows.dialect, _ORDER_EVENTS,
                                                          "order_id", chunk))
                    for order_id in chunk:
                        self._orders[order_id] = known.get(order_id)
            finally:
                cursor.close()
        for chunk in _chunks(sorted(payout_ids)):
            rows = {row.id: Payout(**row._mapping) for row in connection.execute(_PAYOUTS_BY_IDS, {"ids": chunk})}
            for payout_id in chunk:
                self._payouts[payout_id] = rows.get(payout_id)

    def _fetch_holders(self, connection, ids) -> dict[str, Holder | None]:
        out: dict[str, Holder | None] = {}
        if not ids:
            return out
        rows, stored = self._holder_rows, self.stored
        cursor = dbapi_cursor(connection)
        try:
            for chunk in _chunks(sorted(ids)):
                for raw in rows.fetch(cursor, chunk):
                    values = rows.values(raw)
                    stored[raw[0]] = (raw, values)
                    out[raw[0]] = Holder(*values)
                for holder_id in chunk:
                    out.setdefault(holder_id, None)
        finally:
            cursor.close()
        self._holders.update(out)
        return out

    def sv_granted_on(self, holder_id: str, day: date) -> Decimal:
        found = self.session.connection().execute(_GRANT_DAY_SV, {"holder": holder_id, "day": day}).scalar()
        return found if found is not None else ZERO

    def sv_granted_to_campaign(self, campaign: str) -> Decimal:
        found = self.session.connection().execute(_GRANT_CAMPAIGN_SV, {"campaign": campaign}).scalar()
        return found if found is not None else ZERO

    def event_record(self, event_id: str) -> EventRecord | None:
        row = self.session.scalar(select(EventRow).where(EventRow.id == event_id))
        if row is None or not row.reversible:
            return None
        entry = parse_entry_text(row.text)
        assert isinstance(entry, Transaction)
        if row.kind != EventKind.ORDER:
            return EventRecord(row.id, row.kind, entry.postings, row.reversed_by)
        amount = entry.get("amount_cny")
        assert amount is not None, row.id
        return EventRecord(row.id, row.kind, entry.postings, row.reversed_by, amount_cny=Decimal(str(amount)),
                           booked_at=self._indices_before(row.seq))

    def _indices_before(self, seq: int) -> Indices:
        """The indices in force at entry `seq`: those the last release before it carries (only a
        release moves them), or the genesis ones."""
        text = self.session.connection().execute(_RELEASE_BEFORE, {"seq": seq}).scalar()
        if text is None:
            return GENESIS_INDICES
        release = parse_entry_text(text)
        epoch, sv_index, sp_index = (release.get(key) for key in ("epoch", "sv_index", "sp_index"))
        assert epoch is not None and sv_index is not None and sp_index is not None, seq
        return Indices(int(epoch), Decimal(str(sv_index)), Decimal(str(sp_index)))

    # The write side is never called: the engine writes through an Overlay.
    def put_holder(self, holder): raise AssertionError("read-only")  # pragma: no cover
    def set_partner(self, region, holder_id): raise AssertionError("read-only")  # pragma: no cover
    def add_epoch(self, epoch): raise AssertionError("read-only")  # pragma: no cover
    def put_payout(self, payout): raise AssertionError("read-only")  # pragma: no cover
    def record_event(self, record, order_id): raise AssertionError("read-only")  # pragma: no cover
    def put_event_record(self, record): raise AssertionError("read-only")  # pragma: no cover
    def add_grant(self, holder_id, day, campaign, sv): raise AssertionError("read-only")  # pragma: no cover
    def forget_grant_days(self, through): raise AssertionError("read-only")  # pragma: no cover


def _looked_up(events) -> tuple[set[str], set[str], set[str], set[str]]:
    """The ids booking `events` will look up: (holders, the buyers of orders, order ids, payout ids).

    The events are not validated yet: only strings are looked up, and a lookup ahead of time
    decides nothing (the rules look up every row they need)."""
    holder_ids: set[str] = set()
    buyers: set[str] = set()
    order_ids: set[str] = set()
    payout_ids: set[str] = set()
    for ev in events:
        kind = ev.kind
        for name in _HOLDER_REFS.get(kind, ()):
            value = getattr(ev, name, None)
            if isinstance(value, str):
                holder_ids.add(value)
        if kind == EventKind.ORDER:
            if isinstance(ev.order_id, str):
                order_ids.add(ev.order_id)
            if isinstance(ev.buyer, str):
                buyers.add(ev.buyer)
        elif kind in (EventKind.PAYOUT_SETTLE, EventKind.PAYOUT_CANCEL) and isinstance(ev.payout, str):
            payout_ids.add(ev.payout)
    return holder_ids, buyers, order_ids, payout_ids


def parse_entry_text(text: str):
    directives, errors, _ = parser.parse_string(text)
    assert not errors and len(directives) == 1, (errors, text)
    return from_beancount(directives[0])


def _chunks(items: list) -> list[list]:
    return [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def persist(session: Session, changes: ChangeSet, new_rows: list[dict],
            stored: Mapping[str, tuple[tuple, tuple]] | None = None) -> None:
    """Write a change set, the new event rows and the rows of the days it closed into the
    session (not committed). `stored`: the rows of holders as read in this transaction
    (`DbReader.stored`); a holder whose row is the same is not written again."""
    g = changes.g
    connection = session.connection()
    connection.execute(_UPDATE_LEDGER, {name: getattr(g, name) for name in _POSITION})
    if changes.changed_balances:
        connection.execute(_UPDATE_BALANCES, [{"b_account": a, "amount": v}
                                              for a, v in changes.changed_balances.items()])
    if changes.added_balances:
        connection.execute(_INSERT_BALANCES, [{"account": a, "amount": v} for a, v in changes.added_balances.items()])
    _persist_holders(connection, changes, stored or {})
    if changes.partners:
        connection.execute(_INSERT_PARTNERS, [{"region": region, "holder": holder_id}
                                              for region, holder_id in changes.partners.items()])
    if changes.epochs:
        connection.execute(_INSERT_EPOCHS, [{"number": e.number, "sp_index_end": e.sp_index_end, "factor": e.factor}
                                            for e in changes.epochs.values()])
    if changes.payouts:
        _persist_payouts(connection, changes.payouts)
    _persist_grants(connection, changes)
    _persist_events(connection, changes, new_rows)
    if changes.closed_days:
        _persist_days(session, changes.closed_days)


def _persist_holders(connection, changes: ChangeSet, stored: Mapping[str, tuple[tuple, tuple]]) -> None:
    """The new holders inserted, the others updated where their row changed (all of them
    when `stored` does not hold their row).

    A holder whose every field is still the very object read (the Overlay's copies are
    shallow) is unchanged; otherwise its row is compared as stored (exact text: 1.0 is not
    1.00, as `audit.verify` compares it)."""
    rows = _HOLDER_ROWS[connection.dialect.name]
    values_of = rows.values_of
    new_holders, changed_holders = [], []
    new_ids = changes.new_holders
    for holder_id, holder in changes.holders.items():
        if holder is None:
            continue
        if holder_id in new_ids:
            new_holders.append(rows.params(holder))
            continue
        values = values_of(holder)
        read = stored.get(holder_id)
        if read is None or values != read[1]:  # not read, or a field differs (as a number too)
            params = rows.params(holder, values)
        elif all(map(is_, values, read[1])):
            continue
        else:  # equal numbers: the same text?
            params = rows.params(holder, values)
            if params == read[0]:
                continue
        changed_holders.append(params)
    if not new_holders and not changed_holders:
        return
    cursor = dbapi_cursor(connection)
    try:
        rows.writer.insert(cursor, new_holders)
        rows.writer.update(cursor, changed_holders)
    finally:
        cursor.close()


def _persist_events(connection, changes: ChangeSet, new_rows: list[dict]) -> None:
    """The new event rows (with their order ids and reversibility), and `reversed_by` on older ones."""
    by_id = {row["id"]: row for row in new_rows}
    for order_id, event_id in changes.orders.items():
        by_id[event_id]["order_id"] = order_id
    for record in changes.records.values():
        if record.id in by_id:
            by_id[record.id]["reversible"] = True
            by_id[record.id]["reversed_by"] = record.reversed_by
        else:
            connection.execute(update(_EVENTS).where(_EVENTS.c.id == record.id).values(reversed_by=record.reversed_by))
    if new_rows:  # through the DBAPI cursor (as `HolderRows`): a day as ISO text on SQLite
        dialect = connection.dialect.name
        params = [_EVENT_VALUES(row) for row in new_rows]
        if dialect == "sqlite":
            params = [(*p[:_EVENT_DAY], p[_EVENT_DAY].isoformat(), *p[_EVENT_DAY + 1:]) for p in params]
        cursor = dbapi_cursor(connection)
        try:
            _EVENT_WRITERS[dialect].insert(cursor, params)
        finally:
            cursor.close()


def _persist_grants(connection, changes: ChangeSet) -> None:
    """The new totals of SV granted per (holder, day) and per campaign: each row replaced; the rows of
    the days closed dropped first."""
    if changes.grant_days_forgotten is not None:
        connection.execute(_DELETE_GRANT_DAYS_THROUGH, {"through": changes.grant_days_forgotten})
    if changes.grant_days:
        connection.execute(_DELETE_GRANT_DAYS, [{"b_holder": h, "b_day": d} for h, d in changes.grant_days])
        connection.execute(insert(_GRANT_DAYS), [{"holder": h, "day": d, "sv": sv}
                                                 for (h, d), sv in changes.grant_days.items()])
    if changes.grant_campaigns:
        connection.execute(_DELETE_GRANT_CAMPAIGNS, [{"b_campaign": c} for c in changes.grant_campaigns])
        connection.execute(insert(_GRANT_CAMPAIGNS), [{"campaign": c, "sv": sv}
                                                      for c, sv in changes.grant_campaigns.items()])


def _persist_payouts(connection, payouts: Mapping[str, Payout]) -> None:
    stored: set[str] = set()
    for chunk in _chunks(sorted(payouts)):
        stored.update(connection.execute(_PAYOUT_IDS_IN, {"ids": chunk}).scalars())
    added_payouts, changed_payouts = [], []
    for payout in payouts.values():
        values = {n: getattr(payout, n) for n in _PAYOUT_FIELDS}
        if payout.id in stored:
            values["b_id"] = values.pop("id")
            changed_payouts.append(values)
        else:
            added_payouts.append(values)
    if added_payouts:
        connection.execute(_INSERT_PAYOUTS, added_payouts)
    if changed_payouts:
        connection.execute(_UPDATE_PAYOUTS, changed_payouts)


def _persist_days(session: Session, closed_days: tuple[ClosedDay, ...]) -> None:
    """A row per day closed: its entries run from the day before's last entry + 1 to its release."""
    session.flush()
    previous_last: int | None = None
    for closed in closed_days:
        day = closed.day
        if previous_last is None:  # the day before's last entry (none before the genesis day)
            before = session.get(DayRow, day - timedelta(days=1))
            previous_last = before.last_seq if before is not None else 0
        first, last = previous_last + 1, closed.last_seq
        session.add(DayRow(
            day=day, file=closed.file, first_seq=first, last_seq=last, events=last - first + 1,
            closing_hash=closed.closing_hash, value=closed.value, supply_json=json.dumps(dict(closed.supply)),
        ))
        previous_last = last


def ledger_row(g: Globals, rules_json: str) -> LedgerRow:
    return LedgerRow(
        id=1, rules_json=rules_json, genesis_day=g.genesis_day, open_day=g.open_day, value=g.value,
        seq=g.seq, head=g.head, epoch=g.epoch, sv_index=g.sv_index, sp_index=g.sp_index,
        total_shares=g.total_shares,
    )


__all__ = ["Base", "DbReader", "Decimal", "NoDatabase", "database_url", "load_globals", "make_engine", "persist",
           "redact", "safe_url", "sessions", "sqlite_file"]
