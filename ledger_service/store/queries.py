"""The database's read queries: what the API and the CLI read, and the journal's head rows.

Each function takes an open session (the caller's transaction) and answers plain data; the
figures come from `reports`, so the API, the CLI, `verify` and Fava show the same ones.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import bindparam, desc, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from .. import reports
from ..amounts import fmt
from ..config import Params
from ..errors import Invalid, NotFound
from ..rules.events import EventKind
from ..state import MERCHANT
from .db import DbReader, load_globals, parse_entry_text, table_of
from .models import DayRow, EventRow, LedgerRow

# /health reads the journal's lag in batches of this many rows.
LAG_BATCH_ROWS = 1000

_EVENTS = table_of(EventRow)
_LEDGER = table_of(LedgerRow)
_LAST_EVENT = select(_EVENTS.c.seq, _EVENTS.c.file, _EVENTS.c.offset, _EVENTS.c.length, _EVENTS.c.text).order_by(
    desc(_EVENTS.c.seq)).limit(1)
_ROWS_BELOW = select(_EVENTS.c.seq, _EVENTS.c.file, _EVENTS.c.offset, _EVENTS.c.length).where(
    _EVENTS.c.seq < bindparam("below")).order_by(desc(_EVENTS.c.seq)).limit(LAG_BATCH_ROWS)
_OPEN_DAY = select(_LEDGER.c.open_day)
_HEAD = select(_LEDGER.c.head)
_EVENT_BY_ID = select(EventRow).where(EventRow.id == bindparam("id"))
_EVENT_OF_ORDER = select(_EVENTS.c.id).where(_EVENTS.c.order_id == bindparam("order_id"))


# -- holders --------------------------------------------------------------------------------------


def holder(session: Session, holder_id: str, params: Params) -> dict[str, Any]:
    """`GET /v1/holders/{id}`: the holder's view (`reports.holder_view`); NotFound if unknown."""
    reader = DbReader(session, load_globals(session))
    found = reader.holder(holder_id)
    if found is None:
        raise NotFound("holder.unknown", f"id: no holder {holder_id!r}", "id")
    return reports.holder_view(found, reader.g, reader, params)


def merchant(session: Session, merchant_id: str, params: Params) -> dict[str, Any]:
    """`GET /v1/merchants/{id}`: a merchant's view; NotFound if unknown (as a holder) or no merchant."""
    reader = DbReader(session, load_globals(session))
    found = reader.holder(merchant_id)
    if found is None:
        raise NotFound("holder.unknown", f"id: no holder {merchant_id!r}", "id")
    if found.kind != MERCHANT:
        raise NotFound("merchant.unknown", f"id: no merchant {merchant_id!r}", "id")
    return reports.holder_view(found, reader.g, reader, params)


# -- supply ------------------------------------------------------------------------------------------


def supply(session: Session, params: Params, day: date | None, today: date) -> dict[str, Any]:
    """`GET /v1/supply`: the report stored by the close of `day` (a closed day), else the
    position now (`day` open, or none given: as of `today`)."""
    g = load_globals(session)
    if day is not None and day < g.open_day:
        if day < g.genesis_day:
            raise NotFound("day.before_genesis", f"date: the books start on {g.genesis_day}", "date")
        row = session.get(DayRow, day)
        assert row is not None, day  # every day before the open day was closed
        return reports.closed_supply(day, json.loads(row.supply_json))
    if day is not None and day > today:
        raise Invalid("date.future", f"date: {day} is in the future", "date")
    return reports.open_supply(g, params, day or today)


# -- events ------------------------------------------------------------------------------------------


def event(session: Session, event_id: str) -> dict[str, Any]:
    """`GET /v1/events/{id}`: the event's row, with its entry's text; NotFound if unknown."""
    row = session.scalar(_EVENT_BY_ID, {"id": event_id})
    if row is None:
        raise NotFound("event.unknown", f"id: no event {event_id!r}", "id")
    return {"id": row.id, "seq": row.seq, "kind": row.kind, "date": row.day.isoformat(),
            "file": row.file, "hash": row.hash, "prev": row.prev, "entry": row.text,
            "reversed_by": row.reversed_by}


def event_for_order(session: Session, order_id: str) -> str | None:
    """The id of the event that booked the order `order_id` (None: not booked)."""
    return session.connection().execute(_EVENT_OF_ORDER, {"order_id": order_id}).scalar()


# -- the chain's head and the journal's rows ------------------------------------------------------------


def head(session: Session) -> dict[str, Any]:
    """`GET /v1/head`: the chain's head, the open day and its value."""
    g = load_globals(session)
    return {"seq": g.seq, "hash": g.head, "open_day": g.open_day.isoformat(), "value_cny_per_sp": fmt(g.value)}


def open_day(connection: Connection) -> date:
    """The first day not closed (a connection, not a session: read before each booking)."""
    return connection.execute(_OPEN_DAY).scalar_one()


def ledger_head(connection: Connection) -> str | None:
    """The hash of the last entry the ledger records."""
    return connection.execute(_HEAD).scalar()


def last_event_row(connection: Connection) -> Row | None:
    """The last entry's row (seq, file, offset, length, text): where the journal must end."""
    return connection.execute(_LAST_EVENT).first()


def event_rows_below(connection: Connection, below: int) -> list[Row]:
    """Up to LAG_BATCH_ROWS rows (seq, file, offset, length) below seq `below`, newest first."""
    return list(connection.execute(_ROWS_BELOW, {"below": below}).all())




# -- the signed checkpoints and the signing key ------------------------------------------------------------

_DAYS = table_of(DayRow)
_LAST_OF_KIND = select(_EVENTS.c.text).where(_EVENTS.c.kind == bindparam("kind")).order_by(desc(_EVENTS.c.seq)).limit(1)
_GENESIS_TEXT = select(_EVENTS.c.text).where(_EVENTS.c.seq == 1)


def _last_meta(connection: Connection, kind: str, key: str) -> str | None:
    text = connection.execute(_LAST_OF_KIND, {"kind": kind}).scalar()
    return parse_entry_text(text).get(key) if text is not None else None


def last_checkpoint_day(connection: Connection) -> date | None:
    """The day of the last checkpoint the chain holds (None: none yet)."""
    day = _last_meta(connection, EventKind.CHECKPOINT, "checkpoint_day")
    return date.fromisoformat(day) if day is not None else None


def signing_key_in_force(connection: Connection) -> tuple[str | None, bool]:
    """(the public key the journal puts in force: the last rotation's, else the genesis entry's;
    whether the genesis entry names one — books made before signing existed do not)."""
    text = connection.execute(_GENESIS_TEXT).scalar()
    genesis_key = parse_entry_text(text).get("signing_key") if text is not None else None
    rotated = _last_meta(connection, EventKind.SIGNING_KEY, "public_key")
    return rotated or genesis_key, genesis_key is not None


def closed_days_after(connection: Connection, after: date | None) -> list[Row]:
    """The closed days after `after` (all when None), oldest first: day, last_seq, closing_hash, supply_json."""
    query = select(_DAYS.c.day, _DAYS.c.last_seq, _DAYS.c.closing_hash, _DAYS.c.supply_json).order_by(_DAYS.c.day)
    if after is not None:
        query = query.where(_DAYS.c.day > after)
    return list(connection.execute(query).all())


def signing_keys(connection: Connection) -> dict[str, Any]:
    """`GET /v1/signing-keys`: the genesis key (books made before signing: the first key they booked),
    each rotation as the object its previous key signed (`rules.checkpoints.rotation_object`), the key
    in force. Format: README "The signed checkpoint" (`ledger-signing-keys-v1`)."""
    text = connection.execute(_GENESIS_TEXT).scalar()
    genesis_key = parse_entry_text(text).get("signing_key") if text is not None else None
    rotations = []
    for (row_text,) in connection.execute(select(_EVENTS.c.text).where(_EVENTS.c.kind == EventKind.SIGNING_KEY)
                                          .order_by(_EVENTS.c.seq)):
        entry = parse_entry_text(row_text)
        if entry.get("previous_key") is None:
            genesis_key = genesis_key or entry.get("public_key")
            continue
        rotations.append({"version": "ledger-key-rotation-v1", "day": entry.date.isoformat(),
                          "previous_key": entry.get("previous_key"), "public_key": entry.get("public_key"),
                          "signature": entry.get("signature")})
    in_force = rotations[-1]["public_key"] if rotations else genesis_key
    return {"version": "ledger-signing-keys-v1", "genesis_key": genesis_key, "rotations": rotations,
            "key_in_force": in_force}
