"""The holder index (ledger/holders.sqlite): the journal folded through the last closed day.

It is what the Holder page reads, so it must be exactly what the journal gives: the same
holders as the engine's database and `verify`'s replay, the same events, rebuilt to the same
content, refused across a gap, and any difference named by `verify`.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.parser import parser
from click.testing import CliRunner

from ledger_service import views
from ledger_service.audit import record
from ledger_service.audit.verify import verify
from ledger_service.entries import from_beancount
from ledger_service.journal import Books
from ledger_service.rules.events import Order, Register
from ledger_service.store.models import HolderRow
from ledger_service.views import holder_index, ledger_tier

from ledger_books import CLOSED, OPEN_DAY, copy_books, demo_books, engine_on


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return demo_books(tmp_path_factory)


def tables(root: Path) -> dict[str, list]:
    with sqlite3.connect(holder_index.index_path(root)) as c:
        return {name: c.execute(f"select * from {name} order by 1").fetchall()  # noqa: S608 - fixed names
                for name in ("position", "holders", "epochs", "payouts", "events")}


def journal_rows(root: Path) -> list[tuple]:
    """Every (holder, event) row the journal gives, recomputed here from the parsed files."""
    rows = []
    for path in Books(root).journal_files():
        directives, errors, _ = parser.parse_file(str(path))
        assert not errors
        for d in sorted(directives, key=lambda d: d.meta["lineno"]):
            entry = from_beancount(d)
            rel = path.relative_to(root).as_posix()
            rows += holder_index.event_rows(entry, entry.date, rel, d.meta["lineno"])
    return rows


def test_the_index_holds_every_holder_as_the_database_does(books: Path):
    engine = engine_on(books)
    try:
        with engine.Session() as session:
            db_rows = {row.id: row for row in session.query(HolderRow)}
        head = engine.head()
    finally:
        engine.dispose()
    with holder_index.Reader(books) as reader:
        assert reader.position.closed_day == CLOSED[-1]
        # the open day holds its price and the signed checkpoint of the last closed day
        assert reader.position.seq == head["seq"] - 2
        assert reader.holder_count() == len(db_rows) > 50
        state = reader.state()
        for holder_id, row in db_rows.items():
            mine = state.holder(holder_id)
            assert [getattr(mine, f) for f in holder_index.HOLDER_FIELDS] == \
                   [getattr(row, f) for f in holder_index.HOLDER_FIELDS], holder_id


def test_the_index_lists_each_holders_events_in_journal_order(books: Path):
    rows = [r for r in journal_rows(books) if r[1] <= CLOSED[-1]]
    by_holder: dict[str, list] = {}
    for holder, day, event_id, kind, rel, line in rows:
        by_holder.setdefault(holder, []).append((day.isoformat(), event_id, kind, rel, line))
    assert len(by_holder) > 50
    with holder_index.Reader(books) as reader:
        for holder, expected in by_holder.items():
            assert reader.event_count(holder) == len(expected), holder
            assert reader.events(holder, 0, 10_000) == list(reversed(expected)), holder
        busiest = max(by_holder, key=lambda h: len(by_holder[h]))
        assert reader.events(busiest, 3, 2) == list(reversed(by_holder[busiest]))[3:5]


def test_a_rebuild_gives_the_same_index(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    holder_index.delete_index(copy)
    written = views.update(copy)
    assert written == ["ledger/holders.sqlite"]  # the summaries were there; only the index was built
    assert tables(copy) == tables(books)
    assert views.update(copy) == []  # nothing new: nothing written
    views.update(copy, rebuild=True)
    assert tables(copy) == tables(books)


def test_the_index_is_not_extended_across_a_gap(books: Path, tmp_path: Path):
    files = Books(books).journal_files()
    target = tmp_path / "books"
    (target / "ledger").mkdir(parents=True)
    writer = holder_index.Writer(target)
    try:
        with pytest.raises(holder_index.HolderIndexError, match="must open with the genesis"):
            writer.feed_day(files[1].name, CLOSED[1], parser.parse_file(str(files[1]))[0])
        directives = sorted(parser.parse_file(str(files[0]))[0], key=lambda d: d.meta["lineno"])
        writer.feed_day(files[0].name, CLOSED[0], directives)
        with pytest.raises(holder_index.HolderIndexError, match="not extended across a gap"):
            writer.feed_day(files[2].name, CLOSED[2], sorted(parser.parse_file(str(files[2]))[0],
                                                             key=lambda d: d.meta["lineno"]))
        with pytest.raises(holder_index.HolderIndexError, match="not closed"):
            day = sorted(parser.parse_file(str(files[1]))[0], key=lambda d: d.meta["lineno"])
            writer.feed_day(files[1].name, CLOSED[1], day[:-1])  # the day without its release
    finally:
        writer.close()


def faults_of(root: Path) -> list[str]:
    report = verify(root, use_db=False)
    return [str(f) for f in report.faults]


def test_verify_names_a_tampered_index(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    with sqlite3.connect(holder_index.index_path(copy)) as c:
        holder = c.execute("select id from holders where kind = 'member' and active order by id limit 1").fetchone()[0]
        c.execute("update holders set sv_locked = '1000000' where id = ?", (holder,))
        c.execute("delete from events where id = (select max(id) from events)")
    faults = faults_of(copy)
    assert any("[index.holder]" in f and holder in f and "balances differ" in f for f in faults), faults
    assert any("[index.events]" in f for f in faults), faults
    assert all("index." in f for f in faults), faults  # the journal itself is untouched


def test_verify_names_an_index_that_lags(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "books")
    holder_index.delete_index(copy)
    files = Books(copy).journal_files()
    with holder_index.Writer(copy) as writer:  # folded through the first two days only
        for path, day in zip(files[:2], CLOSED[:2]):
            writer.feed_day(path.relative_to(copy).as_posix(),
                            day, sorted(parser.parse_file(str(path))[0], key=lambda d: d.meta["lineno"]))
    faults = faults_of(copy)
    assert len(faults) == 1 and "[index.lags]" in faults[0] and str(CLOSED[1]) in faults[0], faults
    views.update(copy)  # the next update catches up
    assert faults_of(copy) == []


def test_the_holder_page_adds_what_was_booked_since_the_close(books: Path, tmp_path: Path):
    from test_fava_pages import HOLDER_KEYS, Fava, figures_of

    copy = copy_books(books, tmp_path / "books")
    engine = engine_on(copy)
    try:
        with engine.Session() as session:
            buyer = session.query(HolderRow.id).filter(HolderRow.kind == "member", HolderRow.active.is_(True)) \
                .order_by(HolderRow.id).first()[0]
            merchant = session.query(HolderRow.id).filter(HolderRow.kind == "merchant").order_by(HolderRow.id).first()[0]
        booked = engine.submit(Order("late-order-1", buyer, merchant, Decimal("88.00")), OPEN_DAY)
        engine.submit(Register("late-member", referrer=buyer), OPEN_DAY)
        fava = Fava(copy / ledger_tier.LEDGER_MAIN)
        for holder in (buyer, merchant, "late-member"):
            html = fava.poll(f"extension/HolderPage/?holder={holder}", lambda h: "holder-building" not in h)
            shown = figures_of(html)
            api = engine.holder(holder)
            assert {k: shown[k] for k in HOLDER_KEYS} == {k: str(api[k]) for k in HOLDER_KEYS}, holder
            since = engine.head()["seq"] - holder_index.Reader(copy).position.seq
            # the open day's price, the last close's checkpoint, the order, the member
            assert since == 4 and f'data-since="{since}"' in html
        newest = fava.get(f"extension/HolderPage/?holder={buyer}")
        assert newest.index(booked.event_id) < newest.index("journal/2026-03/2026-03-03.beancount")
    finally:
        engine.dispose()


def test_the_audit_page_shows_the_recorded_verification_at_once(books: Path, tmp_path: Path):
    from test_fava_pages import Fava

    from ledger_service.cli import main
    from ledger_service.fava_ext import jobs

    copy = copy_books(books, tmp_path / "books")
    result = CliRunner().invoke(main, ["verify", "--books", str(copy), "--no-db"])
    assert result.exit_code == 0, result.output
    found = record.read(copy)
    assert found["ok"] and found["by"] == "ledger-service verify" and found["fingerprint"] == record.fingerprint(copy)
    fava = Fava(copy / ledger_tier.LEDGER_MAIN)
    html = fava.get("extension/AuditPage/")
    assert 'id="verify-status" data-ok="true"' in html and "by <code>ledger-service verify</code>" in html
    job = jobs.verify_job(copy)
    assert job.thread is None  # nothing re-verified: the record covers the books as they are
    # a changed journal file makes the record stale: verified again, the new result recorded
    last = Books(copy).journal_files()[-1]
    os.utime(last, ns=(last.stat().st_atime_ns, last.stat().st_mtime_ns + 1_000_000_000))
    html = fava.poll("extension/AuditPage/", lambda h: 'data-ok="running"' not in h)
    assert 'data-ok="true"' in html and "by Fava&#39;s Audit page" in html.replace("&#x27;", "&#39;")
    assert record.read(copy)["fingerprint"] == record.fingerprint(copy)


def test_holder_rows_through_the_cursor_are_what_sqlalchemy_writes_and_reads(tmp_path):
    """`IndexState.flush` and `prefetch` go through the DBAPI cursor (`store.db.HolderRows` over the
    index's table): the stored text of every column type and the Holder read back are SQLAlchemy's."""
    from dataclasses import asdict

    from sqlalchemy import insert, select

    from ledger_service.state import Holder
    from ledger_service.views.base import sqlite_engine

    engine = sqlite_engine(tmp_path / "holders.sqlite", holder_index._meta)
    full = Holder("m1", "member", date(2026, 1, 2), referrer="r0", region="110101", role="merchant", active=True,
                  sv_locked=Decimal("300.0000"), shares=Decimal("1.2345678901234567890123456789012345E-7"),
                  epoch=3, sp_ckpt=Decimal("0.000012300"), sp_exact=Decimal("42.10"),
                  last_purchase=date(2026, 3, 4), owner="o1", channel="online", rebate_rate=Decimal("0.15"),
                  store_referrer="s1", deposits_cny=Decimal("1000.00"), opened=date(2026, 2, 1))
    bare = Holder("m2", "member", date(2026, 1, 3))
    with engine.begin() as c:
        c.execute(insert(holder_index.HOLDERS), [{**asdict(h), "id": "sa-" + h.id} for h in (full, bare)])
        state = holder_index.IndexState(c, None)
        for h in (full, bare):
            state.put_holder(h)
        state.flush()
        event = ("m1", date(2026, 1, 2), "E000000042", "order", "journal/2026-01/02.beancount", 17)
        c.execute(insert(holder_index.EVENTS), [dict(zip(holder_index.EVENT_FIELDS, event, strict=True))])
        holder_index._EVENT_WRITER.insert(holder_index.dbapi_cursor(c), [(*event[:1], event[1].isoformat(),
                                                                          *event[2:])])
    with sqlite3.connect(tmp_path / "holders.sqlite") as raw:
        rows = {r[0]: r[1:] for r in raw.execute("select * from holders")}
        events = [r[1:] for r in raw.execute("select * from events order by id")]
    assert rows["m1"] == rows["sa-m1"] and rows["m2"] == rows["sa-m2"]
    assert len(events) == 2 and events[0] == events[1]  # the event row as the index writes it: SQLAlchemy's
    with engine.connect() as c:
        state = holder_index.IndexState(c, None)
        state.prefetch(["m1", "m2", "absent"])
        assert state.holder("m1") == full and state.holder("m2") == bare and state.holder("absent") is None
        alone = holder_index.IndexState(c, None)  # one holder read on its own (no prefetch)
        assert alone.holder("m1") == full and alone.holder("absent") is None
        assert [Holder(**row._mapping) for row in c.execute(select(holder_index.HOLDERS).where(
            holder_index.HOLDERS.c.id.in_(["m1", "m2"])).order_by(holder_index.HOLDERS.c.id))] == [full, bare]
    engine.dispose()
