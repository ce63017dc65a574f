"""`store.db`'s holder rows on the booking path: read and written through the DBAPI cursor, and
only the holders whose stored row would change written back (exact text: 1.0 is not 1.00)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, update

from ledger_service.rules.events import BuyPack, Register
from ledger_service.state import Holder, Overlay
from ledger_service.store.db import DbReader, load_globals, persist, table_of
from ledger_service.store.models import HolderRow

from conftest import START

HOLDERS = table_of(HolderRow)


def _write_back(engine, change) -> None:
    """Read m1 and m2 through a DbReader (m1 in a prefetch, m2 alone), let `change` edit the
    overlay's copies, persist with the rows read."""
    with engine.Session() as session, session.begin():
        reader = DbReader(session, load_globals(session))
        reader.prefetch([Register("m1", referrer=None), Register("m3")])
        overlay = Overlay(reader)
        m1, m2 = overlay.holder("m1"), overlay.holder("m2")
        assert overlay.holder("m3") is None
        change(m1, m2)
        persist(session, overlay.changes(), [], reader.stored)


def _stored(engine, holder_id: str) -> dict:
    with engine.db.connect() as connection:
        return dict(connection.execute(select(HOLDERS).where(HOLDERS.c.id == holder_id)).one()._mapping)


def _raw_text(engine, holder_id: str, column: str) -> str:
    with engine.db.connect() as connection:
        return connection.exec_driver_sql(f"SELECT {column} FROM holders WHERE id = '{holder_id}'").scalar()


def test_holders_round_trip_and_only_changed_rows_are_written(make_books, db_url):
    engine = make_books(db_url=db_url)
    engine.submit(Register("m1"), START)
    engine.submit(Register("m2", referrer="m1"), START)
    engine.submit(BuyPack("m2", "activation"), START)
    before = {h: _stored(engine, h) for h in ("m1", "m2")}
    with engine.Session() as session, session.begin():
        reader = DbReader(session, load_globals(session))
        reader.prefetch([Register("m1"), Register("x", referrer="m2")])
        assert reader.holder("m2") == Holder(**before["m2"])  # the same Holder as SQLAlchemy's row
        assert reader.holder("m1") == Holder(**before["m1"])

    # a row kept aside: an untouched holder is not written (its row changed behind the reader stays)
    with engine.db.begin() as connection:
        connection.execute(update(HOLDERS).where(HOLDERS.c.id == "m1").values(role="marker"))
    _write_back(engine, lambda m1, m2: None)
    assert _stored(engine, "m1")["role"] == "marker"

    # a field changed: written
    def activate(m1, m2):
        m1.active = True
        m2.sv_locked += Decimal("1.5")

    _write_back(engine, activate)
    assert _stored(engine, "m1")["active"] is True
    assert _stored(engine, "m2")["sv_locked"] == before["m2"]["sv_locked"] + Decimal("1.5")

    # an equal number of another exponent is another text: written
    text = _raw_text(engine, "m2", "shares")

    def rescale(m1, m2):
        m2.shares = m2.shares + Decimal("0.000000000000")

    _write_back(engine, rescale)
    assert _raw_text(engine, "m2", "shares") != text
    assert Decimal(_raw_text(engine, "m2", "shares")) == Decimal(text)

    # a field set to an equal object of the same text: not written (the row is the same)
    with engine.db.begin() as connection:
        connection.execute(update(HOLDERS).where(HOLDERS.c.id == "m1").values(role="marker2"))

    def same_text(m1, m2):
        m1.created = START.replace()
        m1.sp_exact = Decimal(str(m1.sp_exact))

    _write_back(engine, same_text)
    assert _stored(engine, "m1")["role"] == "marker2"
