"""The database side of `State`: read through an Overlay, then written back in one commit."""

from __future__ import annotations

import os
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

from sqlalchemy import bindparam, create_engine, event, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..entries import Transaction, from_beancount
from ..state import Epoch, EventRecord, Globals, Holder, Overlay, Payout
from .models import (BalanceRow, Base, EpochRow, EventRow, HolderRow, LedgerRow, PartnerRow,
                     PayoutRow)

DB_FILENAME = "ledger.sqlite"
_HOLDER_FIELDS = [f.name for f in fields(Holder)]
_HOLDER_TABLE = HolderRow.__table__
_HOLDER_BY_ID = select(*(_HOLDER_TABLE.c[name] for name in _HOLDER_FIELDS)).where(_HOLDER_TABLE.c.id == bindparam("id"))
_PAYOUT_FIELDS = [f.name for f in fields(Payout)]


def database_url(books: Path, url: str | None = None) -> str:
    """The database for these books: `url`, else $DATABASE_URL, else SQLite in the books."""
    chosen = url or os.environ.get("DATABASE_URL")
    if chosen:
        if chosen.startswith("postgresql://"):
            chosen = "postgresql+psycopg://" + chosen[len("postgresql://"):]
        return chosen
    return f"sqlite:///{(Path(books) / DB_FILENAME).resolve()}"


def make_engine(url: str) -> Engine:
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
    from .migrate import upgrade

    upgrade(engine)


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _holder(row: HolderRow) -> Holder:
    return Holder(**{name: getattr(row, name) for name in _HOLDER_FIELDS})


_LEDGER = LedgerRow.__table__
_BALANCES = BalanceRow.__table__


def load_globals(session: Session) -> Globals | None:
    """The platform-wide position (Core statements: this runs on every booking)."""
    connection = session.connection()
    row = connection.execute(select(_LEDGER).where(_LEDGER.c.id == 1)).first()
    if row is None:
        return None
    balances = {account: amount for account, amount in connection.execute(select(_BALANCES))}
    return Globals(
        genesis_day=row.genesis_day, open_day=row.open_day, value=row.value, seq=row.seq,
        head=row.head, epoch=row.epoch, sv_index=row.sv_index, sp_index=row.sp_index,
        total_shares=row.total_shares, balances=balances,
    )


class DbReader:
    """Read-only `State` over a session; writes go to an `Overlay` and `persist`."""

    def __init__(self, session: Session, g: Globals) -> None:
        self.session = session
        self.g = g

    def holder(self, holder_id: str) -> Holder | None:
        row = self.session.connection().execute(_HOLDER_BY_ID, {"id": holder_id}).first()
        return Holder(**row._mapping) if row is not None else None

    def partner_of(self, region: str) -> str | None:
        table = PartnerRow.__table__
        return self.session.connection().execute(select(table.c.holder).where(table.c.region == region)).scalar()

    def epoch(self, number: int) -> Epoch:
        row = self.session.get(EpochRow, number)
        assert row is not None, number
        return Epoch(row.number, row.sp_index_end, row.factor)

    def payout(self, payout_id: str) -> Payout | None:
        table = PayoutRow.__table__
        row = self.session.connection().execute(
            select(*(table.c[n] for n in _PAYOUT_FIELDS)).where(table.c.id == payout_id)).first()
        return Payout(**row._mapping) if row is not None else None

    def order_event(self, order_id: str) -> str | None:
        table = EventRow.__table__
        return self.session.connection().execute(select(table.c.id).where(table.c.order_id == order_id)).scalar()

    def event_record(self, event_id: str) -> EventRecord | None:
        row = self.session.scalar(select(EventRow).where(EventRow.id == event_id))
        if row is None or not row.reversible:
            return None
        entry = parse_entry_text(row.text)
        assert isinstance(entry, Transaction)
        return EventRecord(row.id, row.kind, entry.postings, row.reversed_by)

    # The write side is never called: the engine writes through an Overlay.
    def put_holder(self, holder): raise AssertionError("read-only")  # pragma: no cover
    def set_partner(self, region, holder_id): raise AssertionError("read-only")  # pragma: no cover
    def add_epoch(self, epoch): raise AssertionError("read-only")  # pragma: no cover
    def put_payout(self, payout): raise AssertionError("read-only")  # pragma: no cover
    def record_event(self, record, order_id): raise AssertionError("read-only")  # pragma: no cover
    def put_event_record(self, record): raise AssertionError("read-only")  # pragma: no cover


def parse_entry_text(text: str):
    from beancount.parser import parser

    directives, errors, _ = parser.parse_string(text)
    assert not errors and len(directives) == 1, (errors, text)
    return from_beancount(directives[0])


def persist(session: Session, overlay: Overlay, new_rows: list[dict]) -> None:
    """Write an overlay's changes and the new event rows into the session (not committed)."""
    g = overlay.g
    connection = session.connection()
    connection.execute(update(_LEDGER).where(_LEDGER.c.id == 1).values(
        open_day=g.open_day, value=g.value, seq=g.seq, head=g.head, epoch=g.epoch, sv_index=g.sv_index,
        sp_index=g.sp_index, total_shares=g.total_shares))
    base_balances = overlay.base.g.balances
    changed = [{"b_account": a, "amount": v} for a, v in g.balances.items() if a in base_balances and base_balances[a] != v]
    added = [{"account": a, "amount": v} for a, v in g.balances.items() if a not in base_balances]
    if changed:
        connection.execute(update(_BALANCES).where(_BALANCES.c.account == bindparam("b_account"))
                           .values(amount=bindparam("amount")), changed)
    if added:
        connection.execute(insert(_BALANCES), added)
    new_holders, changed_holders = [], []
    for holder_id, holder in overlay._holders.items():
        if holder is None:
            continue
        values = {name: getattr(holder, name) for name in _HOLDER_FIELDS}
        (new_holders if holder_id in overlay._new_holders else changed_holders).append(values)
    if new_holders:
        session.execute(insert(HolderRow), new_holders)
    if changed_holders:
        session.execute(update(HolderRow), changed_holders)
    for region, holder_id in overlay._partners.items():
        session.add(PartnerRow(region=region, holder=holder_id))
    for epoch in overlay._epochs.values():
        session.add(EpochRow(number=epoch.number, sp_index_end=epoch.sp_index_end, factor=epoch.factor))
    for payout in overlay._payouts.values():
        values = {n: getattr(payout, n) for n in _PAYOUT_FIELDS}
        if overlay.base.payout(payout.id) is None:
            session.execute(insert(PayoutRow), [values])
        else:
            session.execute(update(PayoutRow), [values])
    new_ids = {row["id"]: row for row in new_rows}
    for order_id, event_id in overlay._orders.items():
        new_ids[event_id]["order_id"] = order_id
    for record in overlay._records.values():
        if record.id in new_ids:
            new_ids[record.id]["reversible"] = True
            new_ids[record.id]["reversed_by"] = record.reversed_by
        else:
            session.execute(update(EventRow).where(EventRow.id == record.id).values(reversed_by=record.reversed_by))
    if new_rows:
        session.execute(insert(EventRow), new_rows)


def ledger_row(g: Globals, rules_json: str) -> LedgerRow:
    return LedgerRow(
        id=1, rules_json=rules_json, genesis_day=g.genesis_day, open_day=g.open_day, value=g.value,
        seq=g.seq, head=g.head, epoch=g.epoch, sv_index=g.sv_index, sp_index=g.sp_index,
        total_shares=g.total_shares,
    )


__all__ = ["Base", "DbReader", "Decimal", "database_url", "load_globals", "make_engine", "persist", "sessions"]
