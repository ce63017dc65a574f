"""Crash recovery of the journal (engine docstring: the database commit is the commit point).

A crash after the database commit and before, or while, the journal write leaves the
journal short of what the database holds: the next `Engine()` open, or the next booking,
rewrites the missing tail from the database rows. Bytes the database does not know are
never guessed at (`JournalFault`), and a refused event writes nothing anywhere.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.parser import parser
from sqlalchemy import select

from ledger_service.audit.verify import verify
from ledger_service.engine import Engine
from ledger_service.errors import JournalFault, Refusal
from ledger_service.journal import Books, day_file
from ledger_service.rules.events import (BuyPack, Deposit, OpenStore, Order, PayoutRequest, Redeem, Register,
                                         Transfer)
from ledger_service.store.models import EventRow

from conftest import START

DAY0 = START
DAY1 = START + timedelta(days=1)


def populate(engine: Engine) -> None:
    """Two business days: the first closed, the second open; the last entry a payout (6 postings)."""
    engine.submit(Register("m1", region="441900"), DAY0)
    engine.submit(BuyPack("m1", "activation"), DAY0)
    engine.submit(Register("m2", referrer="m1", region="440300"), DAY0)
    engine.submit(BuyPack("m2", "activation"), DAY0)
    engine.submit(OpenStore("s1", "m1", "441900", "offline", Decimal("0.10")), DAY0)
    engine.submit(Deposit(Decimal("1000.00"), merchant="s1"), DAY0)
    engine.submit(Order("o1", "m2", "s1", Decimal("500.00")), DAY0)
    engine.close_days(DAY0)
    engine.submit(Order("o2", "m2", "s1", Decimal("300.00")), DAY1)
    engine.submit(Transfer("s1", "m1", Decimal("5")), DAY1)
    engine.submit(PayoutRequest("m1", Decimal("2")), DAY1)


def rows(engine: Engine) -> list[EventRow]:
    with engine.Session() as session:
        return list(session.scalars(select(EventRow).order_by(EventRow.seq)))


def snapshot(books: Path) -> dict[str, str]:
    return {str(p.relative_to(books)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(books.glob("journal/*/*.beancount"))}


def last_entry_offset(path: Path) -> tuple[int, int]:
    """(byte offset, length) of the last entry of a journal file."""
    data = path.read_bytes()
    body = data.rstrip(b"\n")
    start = body.rfind(b"\n\n") + 2 if b"\n\n" in body else 0
    return start, len(data) - start


def bean_check(books: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "beancount.scripts.check", "-C", str(books / "main.beancount")],
                          capture_output=True, text=True, timeout=120, env=env)


def assert_journal_is_the_database(engine: Engine, db_url: str | None, *, bean: bool = True) -> None:
    """The journal holds every row of the database, once, byte for byte, and verifies."""
    root = engine.books.root
    all_rows = rows(engine)
    head = engine.head()
    assert [r.seq for r in all_rows] == list(range(1, head["seq"] + 1))
    # Byte for byte: each file is its rows' texts, in order.
    files = sorted({r.file for r in all_rows})
    assert sorted(str(p.relative_to(root)) for p in root.glob("journal/*/*.beancount")) == files
    for file in files:
        expected = "".join(r.text for r in all_rows if r.file == file).encode("utf-8")
        assert (root / file).read_bytes() == expected, f"{file} differs from the database rows"
    # Each event exactly once, as Beancount reads it.
    seen: list[int] = []
    for file in files:
        directives, errors, _ = parser.parse_file(str(root / file))
        assert not errors, errors
        seen += [int(d.meta["seq"]) for d in sorted(directives, key=lambda d: d.meta["lineno"])]
    assert seen == list(range(1, head["seq"] + 1)), "an entry is missing or repeated"
    report = verify(root, db_url)
    assert report.ok, [str(f) for f in report.faults]
    assert report.db_checked and report.head_seq == head["seq"]
    if bean:
        done = bean_check(root)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def booked(make_books):
    """An engine with two days booked (SQLite in the books), and its database URL."""
    engine = make_books()
    populate(engine)
    return engine, None


@pytest.fixture
def booked_each_db(make_books, db_url):
    """The same on each database: SQLite, then PostgreSQL."""
    engine = make_books(db_url=db_url)
    populate(engine)
    return engine, db_url


def _reopen(engine: Engine, db_url, clock) -> Engine:
    engine.dispose()
    again = Engine(engine.books.root, db_url, clock=clock)
    return again


# -- the journal short of the database ---------------------------------------------


def test_tail_cut_at_the_start_of_the_last_entry_is_rewritten_on_open(booked, clock):
    engine, db_url = booked
    path = engine.books.path(day_file(DAY1))
    head = engine.head()
    offset, _ = last_entry_offset(path)
    Books(engine.books.root).truncate(day_file(DAY1), offset)
    again = _reopen(engine, db_url, clock)
    try:
        assert again.head() == head
        assert_journal_is_the_database(again, db_url)
    finally:
        again.dispose()


def test_torn_last_entry_is_cut_and_rewritten_on_open(booked_each_db, clock):
    engine, db_url = booked_each_db
    path = engine.books.path(day_file(DAY1))
    offset, length = last_entry_offset(path)
    data = path.read_bytes()
    path.write_bytes(data[:offset + length // 2])  # a torn entry: half its postings
    again = _reopen(engine, db_url, clock)
    try:
        assert_journal_is_the_database(again, db_url)
    finally:
        again.dispose()


def test_torn_entry_leaving_only_its_header_is_rewritten(booked, clock):
    """Beancount would accept a header-only transaction: repair must not leave one behind."""
    engine, db_url = booked
    path = engine.books.path(day_file(DAY1))
    offset, _ = last_entry_offset(path)
    data = path.read_bytes()
    header_end = data.index(b"\n", offset) + 1
    path.write_bytes(data[:header_end])
    again = _reopen(engine, db_url, clock)
    try:
        assert_journal_is_the_database(again, db_url, bean=False)
    finally:
        again.dispose()


def test_missing_newest_day_file_is_rewritten_on_open(booked_each_db, clock):
    engine, db_url = booked_each_db
    path = engine.books.path(day_file(DAY1))
    path.unlink()
    again = _reopen(engine, db_url, clock)
    try:
        assert path.is_file()
        assert_journal_is_the_database(again, db_url)
    finally:
        again.dispose()


def test_crash_in_the_middle_of_a_day_close_is_repaired(make_books, clock):
    """The close writes the release into day d's file and the price into day d+1's file: a
    crash before either leaves two files short."""
    engine = make_books()
    populate(engine)
    engine.close_days(DAY1)  # release of DAY1 (file DAY1), price of DAY2 (new file)
    rel = [r for r in rows(engine) if r.kind == "release" and r.day == DAY1]
    assert len(rel) == 1
    engine.books.truncate(day_file(DAY1), rel[0].offset)
    engine.books.path(day_file(DAY1 + timedelta(days=1))).unlink()
    again = _reopen(engine, None, clock)
    try:
        assert_journal_is_the_database(again, None, bean=False)
    finally:
        again.dispose()


def test_several_entries_missing_are_rewritten_by_the_next_booking(booked):
    """No restart: the same engine's next booking brings the journal level first."""
    engine, db_url = booked
    all_rows = rows(engine)
    third_last = all_rows[-3]
    path = engine.books.path(third_last.file)
    path.write_bytes(path.read_bytes()[:third_last.offset + 7])  # torn inside the third-last entry
    booked_event = engine.submit(Redeem("m2", Decimal("1"), "green tea"), DAY1)
    assert_journal_is_the_database(engine, db_url, bean=False)
    text = engine.books.path(day_file(DAY1)).read_text(encoding="utf-8")
    assert text.count(f'event: "{booked_event.event_id}"') == 1
    assert text.endswith(booked_event.text)


def test_crash_while_writing_the_journal_is_repaired_on_open(make_books, db_url, clock):
    """The process dies inside the append (after the commit): half an entry reached disk."""
    engine = make_books(db_url=db_url)
    populate(engine)

    class Crash(BaseException):
        pass

    real_append = engine.books.append

    def dying_append(chunks):
        relative, data = chunks[0]
        real_append([(relative, data[:len(data) // 2])])
        raise Crash()

    engine.books.append = dying_append
    with pytest.raises(Crash):
        engine.submit(Redeem("m1", Decimal("1"), "green tea"), DAY1)
    committed = engine.head()
    again = _reopen(engine, db_url, clock)
    try:
        assert again.head() == committed
        assert_journal_is_the_database(again, db_url)
        assert again.event(f"E{committed['seq']:09d}")["kind"] == "redeem"
    finally:
        again.dispose()


# -- bytes the database does not know ------------------------------------------------


FORGED_TAIL = b"""2026-03-02 * "transfer" "5 SP from s1 to m2"
  Liabilities:Holders:SP  5.0000 SP
    holder: "s1"
  Liabilities:Holders:SP  -5.0000 SP
    holder: "m2"

"""


def test_unknown_bytes_after_the_journal_are_a_fault_not_guessed(booked_each_db):
    engine, db_url = booked_each_db
    path = engine.books.path(day_file(DAY1))
    with open(path, "ab") as handle:
        handle.write(FORGED_TAIL)
    before_bytes = snapshot(engine.books.root)
    before_head = engine.head()
    with pytest.raises(JournalFault):
        engine.submit(Register("m3"), DAY1)
    assert snapshot(engine.books.root) == before_bytes, "the journal was changed"
    assert engine.head() == before_head, "the database moved"
    with pytest.raises(JournalFault):
        engine.close_days(DAY1)
    assert snapshot(engine.books.root) == before_bytes


def test_unknown_bytes_are_a_fault_on_open(booked, clock):
    engine, db_url = booked
    path = engine.books.path(day_file(DAY1))
    with open(path, "ab") as handle:
        handle.write(b"; a comment the service did not write\n")
    before = snapshot(engine.books.root)
    engine.dispose()
    with pytest.raises(JournalFault):
        Engine(engine.books.root, db_url, clock=clock)
    assert snapshot(engine.books.root) == before


def test_altered_last_entry_of_the_same_length_is_a_fault_on_open(booked, clock):
    engine, db_url = booked
    path = engine.books.path(day_file(DAY1))
    data = bytearray(path.read_bytes())
    at = data.rindex(b"-2.0000 SP")  # the payout's SP leaving the holder -> another digit
    data[at + 1:at + 2] = b"3"
    path.write_bytes(bytes(data))
    before = snapshot(engine.books.root)
    engine.dispose()
    with pytest.raises(JournalFault):
        Engine(engine.books.root, db_url, clock=clock)
    assert snapshot(engine.books.root) == before


# -- refusals book nothing -----------------------------------------------------------


def test_refused_event_leaves_journal_and_database_unchanged(booked):
    engine, db_url = booked
    before_bytes, before_head = snapshot(engine.books.root), engine.head()
    before_rows = len(rows(engine))
    refused = [
        Order("o-big", "m2", "s1", Decimal("1000000.00")),  # the merchant lacks the SP
        Order("o1", "m2", "s1", Decimal("10.00")),  # a booked order id
        Transfer("m2", "m1", Decimal("100000")),
        Register("m1"),
        Register("m9", referrer="nobody"),
        PayoutRequest("m1", Decimal("0.0001")),  # worth less than a fen
    ]
    for event in refused:
        with pytest.raises(Refusal):
            engine.submit(event, DAY1)
        assert snapshot(engine.books.root) == before_bytes, event
        assert engine.head() == before_head, event
    assert len(rows(engine)) == before_rows
    assert_journal_is_the_database(engine, db_url, bean=False)


def test_refused_event_after_open_days_closes_nothing(make_books, clock):
    """Days left open before the event's day would be closed in the same commit: a refusal
    rolls the closes back too, so no release or price reaches the journal."""
    engine = make_books()
    populate(engine)
    clock.today = DAY1 + timedelta(days=3)
    before_bytes, before_head = snapshot(engine.books.root), engine.head()
    with pytest.raises(Refusal):
        engine.submit(Order("o-big", "m2", "s1", Decimal("1000000.00")))
    assert engine.head() == before_head
    assert engine.head()["open_day"] == DAY1.isoformat()
    assert snapshot(engine.books.root) == before_bytes
    # ... and the same close happens for real with the next accepted event.
    done = engine.submit(Register("m3"))
    assert done.day == clock.today
    assert engine.head()["open_day"] == clock.today.isoformat()
    assert_journal_is_the_database(engine, None)
