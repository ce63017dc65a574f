"""The operational database (SQLAlchemy 2): holders, events, keys, idempotency.

Decimals are stored as their exact text (`DecimalText`), the same on SQLite and
PostgreSQL: nothing is ever rounded by a database driver. Schema changes go
through Alembic (`ledger_service/store/migrations`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, DateTime, Index, Integer, LargeBinary, String, Text, types
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..amounts import fmt


class DecimalText(types.TypeDecorator):
    """A Decimal kept as its exact decimal text."""

    impl = String(96)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        assert isinstance(value, Decimal), value
        return fmt(value)

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)


class Base(DeclarativeBase):
    pass


class LedgerRow(Base):
    """The platform-wide position (one row): chain head, open day, value, indices."""

    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rules_json: Mapped[str] = mapped_column(Text)
    genesis_day: Mapped[date] = mapped_column(Date)
    open_day: Mapped[date] = mapped_column(Date)
    value: Mapped[Decimal] = mapped_column(DecimalText)
    seq: Mapped[int] = mapped_column(Integer)
    head: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(Integer)
    sv_index: Mapped[Decimal] = mapped_column(DecimalText)
    sp_index: Mapped[Decimal] = mapped_column(DecimalText)
    total_shares: Mapped[Decimal] = mapped_column(DecimalText)


class BalanceRow(Base):
    """Control balances: one row per account."""

    __tablename__ = "balances"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(DecimalText)


class HolderRow(Base):
    __tablename__ = "holders"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created: Mapped[date] = mapped_column(Date)
    referrer: Mapped[str | None] = mapped_column(String(64), index=True)
    region: Mapped[str | None] = mapped_column(String(6))
    role: Mapped[str] = mapped_column(String(24))
    active: Mapped[bool] = mapped_column(Boolean)
    sv_locked: Mapped[Decimal] = mapped_column(DecimalText)
    shares: Mapped[Decimal] = mapped_column(DecimalText)
    epoch: Mapped[int] = mapped_column(Integer)
    sp_ckpt: Mapped[Decimal] = mapped_column(DecimalText)
    sp_exact: Mapped[Decimal] = mapped_column(DecimalText)
    last_purchase: Mapped[date | None] = mapped_column(Date)
    owner: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))
    rebate_rate: Mapped[Decimal | None] = mapped_column(DecimalText)
    store_referrer: Mapped[str | None] = mapped_column(String(64))
    deposits_cny: Mapped[Decimal] = mapped_column(DecimalText)
    opened: Mapped[date | None] = mapped_column(Date)


class PartnerRow(Base):
    __tablename__ = "partners"
    region: Mapped[str] = mapped_column(String(6), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))


class EpochRow(Base):
    __tablename__ = "epochs"
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    sp_index_end: Mapped[Decimal] = mapped_column(DecimalText)
    factor: Mapped[Decimal] = mapped_column(DecimalText)


class PayoutRow(Base):
    __tablename__ = "payouts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), index=True)
    sp: Mapped[Decimal] = mapped_column(DecimalText)
    cny: Mapped[Decimal] = mapped_column(DecimalText)
    status: Mapped[str] = mapped_column(String(16))
    requested: Mapped[date] = mapped_column(Date)
    bank_reference: Mapped[str | None] = mapped_column(String(200))


class GrantDayRow(Base):
    """SV granted by `grant` events to one holder on one business day (the per-day ceiling): the open
    day's rows only (a close deletes its day's rows: no event is booked on a closed day)."""

    __tablename__ = "grant_days"
    holder: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sv: Mapped[Decimal] = mapped_column(DecimalText)


class GrantCampaignRow(Base):
    """SV granted by `grant` events naming one campaign (the per-campaign ceiling)."""

    __tablename__ = "grant_campaigns"
    campaign: Mapped[str] = mapped_column(String(64), primary_key=True)
    sv: Mapped[Decimal] = mapped_column(DecimalText)


class EventRow(Base):
    """Every chained entry, with its exact journal text and where it stands on disk.

    The database is the commit point: an entry exists once its row is committed;
    the journal file is then written from `text` (and rewritten from it on repair).
    """

    __tablename__ = "events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    day: Mapped[date] = mapped_column(Date, index=True)
    order_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    file: Mapped[str] = mapped_column(String(128))
    offset: Mapped[int] = mapped_column(Integer)
    length: Mapped[int] = mapped_column(Integer)
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    reversible: Mapped[bool] = mapped_column(Boolean, default=False)
    reversed_by: Mapped[str | None] = mapped_column(String(64))


class DayRow(Base):
    """A closed business day: its journal file, closing hash and supply at close."""

    __tablename__ = "days"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    file: Mapped[str] = mapped_column(String(128))
    first_seq: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    closing_hash: Mapped[str] = mapped_column(String(64))
    value: Mapped[Decimal] = mapped_column(DecimalText)
    supply_json: Mapped[str] = mapped_column(Text)


class IdempotencyRow(Base):
    """A write's Idempotency-Key, scoped to the API key that sent it (`api_key_id`): two
    clients' equal keys are two requests. Rows written before revision 0002 carry the
    placeholder scope `legacy` (they answer any key, as every row did then).

    A booking's row keeps the id of the event it answered (`event_id`, revision 0006) and an
    empty `response`: a replay rebuilds the answer from the event's row. Other answers (a close
    of days) keep their `response`. Rows older than the retention are deleted as days close."""

    __tablename__ = "idempotency_keys"
    api_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[datetime] = mapped_column(DateTime, index=True)
    event_id: Mapped[str | None] = mapped_column(String(64))


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime)
    revoked: Mapped[datetime | None] = mapped_column(DateTime)
    last_used: Mapped[datetime | None] = mapped_column(DateTime)  # by the API, at most once a day (rev. 0003)


Index("ix_events_kind_day", EventRow.kind, EventRow.day)
