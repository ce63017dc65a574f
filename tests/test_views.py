"""The one reader of the journal (`journal.py`) and the derived views' one entry point (`views`).

The fast paths of `journal.py` read a file's head or tail without a parse: each must give
what Beancount's parser reads from the same file. Every view has the same interface, `views`
updates and compares them all, and the engine reaches them only through its hook.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest
from beancount.parser import parser

from ledger_books import CLOSED, OPEN_DAY, FixedClock, copy_books, demo_books
from ledger_service import config, journal, views
from ledger_service.engine import Engine
from ledger_service.entries import Price, Transaction, from_beancount
from ledger_service.journal import Books
from ledger_service.rules.events import Register
from ledger_service.views import base, event_log, holder_index, ledger_tier, liabilities, signed


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return demo_books(tmp_path_factory)


def parsed(path: Path) -> list:
    directives, errors, _ = parser.parse_file(str(path))
    assert not errors
    return sorted(directives, key=lambda d: d.meta["lineno"])


def string_meta(directive) -> dict[str, str]:
    return {k: v for k, v in directive.meta.items() if isinstance(v, str) and k != "filename"}


# -- journal.py: the fast paths give what the parser gives ---------------------------------------------------


def test_last_entry_is_the_parsed_last_entry(books: Path):
    files = Books(books).journal_files()
    assert len(files) == len(CLOSED) + 1
    for path in files:
        last = parsed(path)[-1]
        meta = journal.last_entry(path)
        kind = "price" if isinstance(from_beancount(last), Price) else string_meta(last)["kind"]
        assert meta == {**string_meta(last), "kind": kind}, path
    assert journal.head(books) == {"seq": string_meta(parsed(files[-1])[-1])["seq"],
                                   "hash": string_meta(parsed(files[-1])[-1])["hash"], "file": str(files[-1])}


def test_last_entry_reads_back_past_its_first_chunk(books: Path, tmp_path: Path):
    source = Books(books).journal_files()[0]
    path = tmp_path / source.name
    text = source.read_text(encoding="utf-8")
    path.write_text(text + "; " + "x" * 20_000 + "\n", encoding="utf-8")  # the last entry ends 20 kB before the end
    assert journal.last_entry(path) == journal.last_entry(source) == string_meta(parsed(source)[-1])
    (tmp_path / "empty.beancount").write_text("; nothing\n", encoding="utf-8")
    assert journal.last_entry(tmp_path / "empty.beancount") is None
    assert journal.last_entry(tmp_path / "missing.beancount") is None
    assert journal.head(tmp_path) == {}


def test_leading_entries_are_the_parsed_genesis_and_prices(books: Path):
    files = Books(books).journal_files()
    for path in files:
        entries = [from_beancount(d) for d in parsed(path)]
        leading = []
        for entry in entries:
            if not (isinstance(entry, Price) or (isinstance(entry, Transaction) and entry.kind == "genesis")):
                break
            leading.append(entry)
        assert journal.leading_entries(path) == leading, path
    assert journal.leading_entries(files[0])[0].kind == "genesis"
    assert [type(e) for e in journal.leading_entries(files[-1])] == [Price]  # the open day: its price only


def test_an_entry_read_again_is_the_parsed_entry(books: Path):
    reader = journal.EntryReader()
    path = Books(books).journal_files()[3]
    directives = parsed(path)
    for directive in directives:
        line = directive.meta["lineno"]
        assert reader.entry(str(path), line) == from_beancount(directive)
        assert reader.entry(str(path), line, whole_file=True) == from_beancount(directive)
    assert reader.entry(str(path), 10**6) is None
    assert [e.lineno for e in journal.day_entries(path)] == [d.meta["lineno"] for d in directives]
    assert [e.event for e in journal.day_entries(path)] == [d.meta.get("event", "") for d in directives]


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_a_line_found_by_counting_is_where_the_index_puts_it(books: Path, tmp_path: Path, chunk: int):
    """`EntryReader` finds the line of its first read in a file by counting newlines (no index)."""
    path = Books(books).journal_files()[3]
    samples = {"day": path.read_bytes(), "no final newline": b"a\nbb\n\nccc", "empty": b"",
               "carriage returns": b"x\r\ny\rz\n\n", "one line": b"only"}
    for name, data in samples.items():
        file = tmp_path / f"{name}.beancount"
        file.write_bytes(data)
        starts = journal.EntryReader()._line_starts(str(file))
        lines = data.count(b"\n") + 3
        found = [journal._line_offset(str(file), line, chunk) for line in range(-1, lines)]
        assert found == [starts[line - 1] if 0 < line < len(starts) else None for line in range(-1, lines)], name
    reader = journal.EntryReader()
    line = parsed(path)[-1].meta["lineno"]
    assert reader.entry(str(path), line) == from_beancount(parsed(path)[-1]) and reader._lines is None  # counted
    assert reader.entry(str(path), line) == from_beancount(parsed(path)[-1]) and reader._lines is not None


def test_day_files_are_the_journal_files_in_order(books: Path):
    days = journal.day_files(Books(books))
    assert [d.day for d in days] == [*CLOSED, OPEN_DAY]
    assert [d.relpath for d in days] == [journal.day_file(d.day) for d in days]
    assert [d.read_closed() for d in days] == [True] * len(CLOSED) + [False]
    assert days[0].directives() == parsed(days[0].path)


def test_text_units_are_the_ledger_files_entries(books: Path):
    path = books / ledger_tier.month_file("2026-03")
    units, others = journal.text_units(path.read_text(encoding="utf-8"))
    directives = parsed(path)
    assert [u.lineno for u in units] == [d.meta["lineno"] for d in directives]
    assert others == []  # a month file holds entries and comments only
    main, header = journal.text_units((books / ledger_tier.LEDGER_MAIN).read_text(encoding="utf-8"))
    assert [line for _, line in header if line.startswith("include")] == [
        'include "months/2026-02.beancount"', 'include "months/2026-03.beancount"']


# -- views: one interface, one entry point ----------------------------------------------------------------------


def test_every_view_has_the_same_interface():
    assert (ledger_tier, holder_index, event_log, liabilities, signed) == views.VIEWS
    for view in views.VIEWS:
        assert callable(view.updater) and callable(view.checker) and callable(view.compare), view
    assert issubclass(holder_index.HolderIndexError, base.ViewError)
    assert issubclass(event_log.EventLogError, base.ViewError)
    assert issubclass(liabilities.LiabilitiesError, base.ViewError)


def test_views_compare_is_each_views_compare(books: Path, tmp_path: Path):
    assert views.compare(books) == []
    copy = copy_books(books, tmp_path / "books")
    month = copy / ledger_tier.month_file("2026-02")
    month.write_text(month.read_text(encoding="utf-8").replace("2026-02-26 * \"order\"", "2026-02-26 ! \"order\"", 1),
                     encoding="utf-8")
    with sqlite3.connect(holder_index.index_path(copy)) as c:
        c.execute("delete from events where id = (select max(id) from events)")
    faults = views.compare(copy)
    assert faults == (ledger_tier.compare(copy) + holder_index.compare(copy) + event_log.compare(copy)
                      + liabilities.compare(copy))
    assert {f.rule for f in faults} >= {"ledger.extra", "index.events"}, faults
    views.rebuild(copy)
    assert views.compare(copy) == []


def test_update_writes_each_view_and_reads_each_day_once(books: Path, tmp_path: Path, monkeypatch):
    copy = copy_books(books, tmp_path / "books")
    holder_index.delete_index(copy)
    (copy / ledger_tier.month_file("2026-03")).unlink()
    reads: list[str] = []
    parse = journal.parse_file

    def counted(path):
        reads.append(Path(path).name)
        return parse(path)

    monkeypatch.setattr(journal, "parse_file", counted)
    written = views.update(copy)
    assert written == ["ledger/months/2026-03.beancount", "ledger/holders.sqlite"]
    assert sorted(reads) == sorted(f"{d}.beancount" for d in CLOSED)  # each closed day parsed once, for both views
    assert views.compare(copy) == []


# -- the engine reaches the views through its hook --------------------------------------------------------------


def test_the_engine_calls_its_hook_when_days_close(tmp_path: Path):
    root = tmp_path / "books"
    Engine.init(root, config.load("seed-a"), start=date(2026, 3, 1), clock=FixedClock(date(2026, 3, 3))).dispose()
    calls: list[tuple] = []
    engine = Engine(root, clock=FixedClock(date(2026, 3, 3)),
                    on_days_closed=lambda books_root, **kw: calls.append((books_root, kw)))
    try:
        engine.submit(Register("m1"), date(2026, 3, 1))
        assert calls == []  # no day closed
        engine.close_days(date(2026, 3, 2))
        assert calls == [(root, {"writer_locked": False})]
        assert not (root / ledger_tier.LEDGER_MAIN).exists()  # the hook replaced the default
    finally:
        engine.dispose()
    engine = Engine(root, clock=FixedClock(date(2026, 3, 4)))  # the default hook: views.on_days_closed
    try:
        engine.close_days(date(2026, 3, 3))
        assert (root / ledger_tier.LEDGER_MAIN).is_file() and views.compare(root) == []
    finally:
        engine.dispose()

