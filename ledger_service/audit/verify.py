"""`ledger-service verify`: the auditor's check of the books from the journal alone.

Streams every journal file in order (Beancount's parser, one file at a time),
replays it (`replay.Replay`), then checks the subledger against the control
accounts, that every derived view (`views.checkers`: the ledger tier's summaries,
the holder index, the event log and its checkpoints) is what the journal gives and, when a database
is given, that the database agrees with the journal: every column of every table the
service reads or repairs the journal from (`_Database`; README, "For the auditor").
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import inspect, select, tuple_

from .. import accounts as A
from .. import reports, views
from ..amounts import ZERO, fmt
from ..entries import Price, Transaction
from ..faults import Fault
from ..journal import Books, day_of, main_text, relative
from ..rules.events import EventKind
from ..store.db import NoDatabase, database_url, make_engine, safe_url, sessions
from ..store.models import Base
from ..subledger import balance
from ..text import plural
from ..views.ledger_tier import DayAggregator, Genesis, LedgerRebuild
from .caches import pickle_cache_warnings
from .replay import Replay
from .stream import DayStream, fewer_collections

# What every tool says when a verification finds no fault (the CLI, the demo platform, Fava's
# Audit page): one sentence, the same everywhere (issue 14).
VERIFIED_OK = "verified: the books are consistent"


@dataclass
class Report:
    faults: list[Fault] = field(default_factory=list)
    supply: dict[str, str] = field(default_factory=dict)
    residue: dict[str, str] = field(default_factory=dict)
    holders: int = 0
    entries: int = 0
    files: int = 0
    head_seq: int = 0
    head_hash: str = ""
    open_day: str = ""
    db_checked: bool = False
    warnings: list[str] = field(default_factory=list)  # not faults: verified all the same

    @property
    def ok(self) -> bool:
        return not self.faults

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "faults": [str(f) for f in self.faults], "supply": self.supply,
            "residue": self.residue, "holders": self.holders, "entries": self.entries, "files": self.files,
            "head": {"seq": self.head_seq, "hash": self.head_hash}, "open_day": self.open_day,
            "database_checked": self.db_checked, "warnings": self.warnings,
        }


def verify(books_dir: Path | str, db_url: str | None = None, use_db: bool = True, progress=None,
           jobs: int = 0, days: DayStream | None = None) -> Report:
    """Verify the books. `jobs`: worker processes that parse upcoming journal files while this
    process replays (`audit.stream`; 0: every file parsed here, when it is reached). `days`:
    the journal's stream, started by the caller (`DayStream(books, jobs)`: its workers then
    parse while the caller imports this module); it is closed here."""
    books = Books(books_dir)
    report = Report()
    replay = Replay()
    if not books.exists():
        if days is not None:
            days.close()
        report.faults.append(Fault(str(books.main), 0, "-", "books.missing", "no main.beancount"))
        return report
    report.warnings = pickle_cache_warnings(books.root)
    if days is None:  # the workers start before any database or view file is opened here (they are forked)
        days = DayStream(books, jobs)
    days.progress, days.warnings = progress, report.warnings
    report.files = len(days.paths)
    db = None
    with fewer_collections():  # (verify allocates millions of short-lived objects)
        try:
            db = _open_database(books, db_url, report) if use_db else None
            checks = views.checkers(books.root)
            _replay(days, replay, checks, db, report)
            report.faults += replay.faults
            for check in checks:
                report.faults += check.finish()
            report.entries = replay.entries
            state = replay.state
            params = replay.params
            if state is None or params is None:
                return report
            g = state.g
            report.head_seq, report.head_hash, report.open_day = g.seq, g.head, g.open_day.isoformat()
            report.holders = len(state.holders)
            report.supply = reports.supply_report(g, params)
            report.residue = _residue(state, report)
            _check_main(books, g.genesis_day, report)
            if db is not None:
                db.check_position(replay)
        finally:
            days.close()  # stops the workers (also on an exception or Ctrl-C)
            if db is not None:
                db.close()
    return report


def _replay(days: DayStream, replay: Replay, checks: list, db: _Database | None, report: Report) -> None:
    """Every journal file in order: its parse faults, then each directive replayed and fed to
    every check (and compared with the database). The ledger tier's check is given each file's
    sums as the parse worker added them up (`DayStream.sums`) instead of its entries."""
    rebuild = next((c for c in checks if isinstance(c, LedgerRebuild)), None)
    feeds = [check.feed for check in checks if check is not rebuild]
    feed = replay.feed
    for path, faults, triples in days:
        for filename, lineno, rule, message in faults:
            report.faults.append(Fault(filename, lineno, "-", rule, message))
        stem = path.stem
        named = day_of(path)  # the day the file's name gives (a name that is not one: every entry differs)
        if named is not None and named.isoformat() != stem:
            named = None
        for directive, entry, digest in triples:
            day = directive.date
            if day is not None and day != named:
                meta = directive.meta
                report.faults.append(Fault(str(meta.get("filename")), int(meta.get("lineno", 0)), "-", "file.date",
                                           f"entry dated {day} in the journal file of {stem}"))
            before = replay.entries
            feed(directive, entry, digest)
            fed = replay.entries != before
            fed_entry, state = replay.entry if fed else None, replay.state
            for check_feed in feeds:
                check_feed(path, directive, fed_entry, state)
            if fed and db is not None:
                db.check_entry(directive, replay)
        if rebuild is not None:
            _ledger_day(rebuild, path, days.sums, triples)


def _ledger_day(rebuild: LedgerRebuild, path: Path, sums: tuple | None, triples: list) -> None:
    """The ledger tier's check given one day file: the sums its parse worker added up
    (`stream.day_sums`, what `DayAggregator.feed_entry` of each entry gives), else its entries."""
    if sums is None:
        for directive, entry, _digest in triples:
            rebuild.feed(path, directive, entry)
        return
    first, counts, totals, prices, genesis, last_kind, last_hash, fed = sums
    journal = relative(rebuild.root, path)
    day = DayAggregator(journal, day_of(journal))
    if day.day is None and first is not None:
        day.day = date.fromordinal(first)
    day.counts = dict(counts)
    day.sums = {kind: {(account, currency): Decimal(total) for account, currency, total in rows}
                for kind, rows in totals}
    day.prices = [triples[index][1] for index in prices]
    day.genesis = triples[genesis][1] if genesis >= 0 else None
    day.last_kind, day.last_hash, day.entries = last_kind, last_hash, fed
    rebuild.days[Path(path)] = day  # (what `LedgerRebuild.feed` builds entry by entry)
    if rebuild.genesis is None and day.genesis is not None:
        rebuild.genesis = Genesis.of(day.genesis, journal)


def _check_main(books: Books, genesis_day: date, report: Report) -> None:
    """main.beancount is exactly what `init` wrote: no forged entry, option or plugin in it."""
    expected = main_text(genesis_day).splitlines()
    found = books.main.read_text(encoding="utf-8").splitlines()
    for lineno, (want, have) in enumerate(zip(expected, found, strict=False), start=1):  # lengths: below
        if want != have:
            report.faults.append(Fault(str(books.main), lineno, "-", "main.altered",
                                       f"line differs from what the service writes: {have!r}"))
            return
    if len(expected) != len(found):
        lineno = min(len(expected), len(found)) + 1
        while lineno <= len(found) and not found[lineno - 1].strip():  # point at the first added text
            lineno += 1
        report.faults.append(Fault(str(books.main), lineno, "-", "main.altered",
                                   f"{plural(abs(len(found) - len(expected)), 'line')} added or removed at the end"))


def _residue(state, report: Report) -> dict[str, str]:
    """Control account minus the sum of holders' balances: rounding left unallocated (≥ 0)."""
    g = state.g
    locked = active = sp = ZERO
    for holder in state.holders.values():
        held = balance(holder, g, state)
        if held.sv_locked < 0 or held.sp < 0 or held.sv_active < 0:
            report.faults.append(Fault("-", 0, holder.id, "holders.negative", f"holder {holder.id} is below zero"))
        locked += held.sv_locked
        active += held.sv_active
        sp += held.sp
    residue = {
        "SV locked": -g.balance(A.HOLDERS_SV_LOCKED) - locked,
        "SV active": -g.balance(A.HOLDERS_SV_ACTIVE) - active,
        "SP": -g.balance(A.HOLDERS_SP) - sp,
    }
    for name, amount in residue.items():
        if amount < 0:
            report.faults.append(Fault("-", 0, "-", "subledger.exceeds_control",
                                       f"holders' {name} exceed the control account by {fmt(-amount)}"))
    if residue["SV locked"] != 0:
        report.faults.append(Fault("-", 0, "-", "subledger.locked",
                                   "locked SV of holders differs from the control account"))
    return {k: fmt(v) for k, v in residue.items()}


# -- the database, compared column by column with what the journal gives ----------------------

# Rows read per statement while the database is compared (keyset pages: no cursor stays open,
# and memory holds one page).
DB_PAGE_ROWS = 5_000
# A limit: past this many database faults the rest are counted, not listed.
MAX_DB_FAULTS = 1000
# Past this many rows of the database the journal lacks (or the reverse), one line counts the rest.
MAX_ROW_FAULTS = 20
# The kinds of event whose row a later reversal reads (what `apply.py` records).
REVERSIBLE_KINDS = (EventKind.ORDER, EventKind.TRANSFER)
# What a database row's key is called in a fault, per table (default: its primary key columns).
_KEY_LABEL = {"idempotency_keys": ("key", "api_key_id")}
# The status stored with every response the service keeps for an Idempotency-Key.
_BOOKED_STATUS = 201
# The `part` of a kept answer that is an event id alone (revision 0006), not a response.
_BY_EVENT_ID = -2


def _open_database(books: Books, db_url: str | None, report: Report) -> _Database | None:
    """The database to compare, or None and a fault when its SQLite file is absent (never created)."""
    try:
        return _Database(books, db_url, report)
    except NoDatabase as exc:
        report.faults.append(Fault(str(exc.path or books.root), 0, "-", "db.missing",
                                   "no database found: name the books' database with --db URL or $DATABASE_URL "
                                   "(books on PostgreSQL), or check the journal alone with --no-db"))
        return None


class _Database:
    """The service database, compared with what the journal gives as it streams by.

    Every table the service reads, every column the journal determines (README, "For the
    auditor"): `events` (each row against its journal entry, including the exact bytes of its
    text and where they stand in the file) and `days` (each against its release) while the
    journal streams; `ledger`, `balances`, `holders`, `partners`, `epochs`, `payouts`,
    `grant_days` and `grant_campaigns` against the replay's final position; the responses
    kept for Idempotency-Keys against the entries they describe. Rows are read in keyset pages of DB_PAGE_ROWS.
    A difference is a fault `[db.<table>.<column>] <key column> <key>: database has X, the
    journal gives Y`, located at the journal entry when there is one, else at the database.
    """

    def __init__(self, books: Books, db_url: str | None, report: Report) -> None:
        self.report = report
        self.root = books.root.resolve()
        url = database_url(books.root, db_url)
        self.engine = make_engine(url)
        self.where = safe_url(url)  # no secret in a fault
        self.tables = Base.metadata.tables
        self.session = None
        self.faults = 0
        self._relative: dict[str, str] = {}
        self.entry_bytes = _EntryBytes()
        self.pending_event: tuple | None = None  # (file, line, expected values, database row or None)
        self.pending_day: tuple | None = None  # (file, line, expected values, supply)
        self.last_release_seq = 0
        self.reversed_in_journal: dict[str, str | None] = {}  # event id -> the id of the entry that reverses it
        self.reversed_in_db: dict[str, str | None] = {}  # event id -> reversed_by, as the database has it
        self.responses: _Responses | None = None
        if not inspect(self.engine).has_table("ledger"):
            report.faults.append(Fault(self.where, 0, "-", "db.missing",
                                       "no books in this database (use --no-db to skip)"))
            return
        report.db_checked = True
        self.session = sessions(self.engine)()
        if self.engine.dialect.name == "postgresql":  # one snapshot for the whole comparison
            self.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        self.event_rows = _Peek(_pages(self.session, self.tables["events"]))
        self.day_rows = _Peek(_pages(self.session, self.tables["days"]))
        if "idempotency_keys" in self.tables:
            self.responses = _Responses(self, self.tables["idempotency_keys"])

    # -- faults ----------------------------------------------------------------------------

    def fault(self, filename: str, lineno: int, key: str, table: str, column: str, message: str) -> None:
        self.faults += 1
        if self.faults <= MAX_DB_FAULTS:
            self.report.faults.append(Fault(filename, lineno, key, f"db.{table}.{column}", message))

    def differs(self, filename: str, lineno: int, key: str, table: str, column: str, found, expected) -> None:
        self.fault(filename, lineno, key, table, column,
                   f"database has {_show(found)}, the journal gives {_show(expected)}")

    def compare(self, filename: str, lineno: int, key: str, table: str, row, expected: dict) -> None:
        """Every column of `row` that `expected` names."""
        mapping = row._mapping
        for name, want in expected.items():
            have = mapping[name]
            if have == want and type(have) is type(want) and type(want) is not Decimal:
                continue  # the usual case, without a call
            if not _same(have, want):
                self.differs(filename, lineno, key, table, name, have, want)

    def relative(self, filename: str) -> str:
        found = self._relative.get(filename)
        if found is None:
            try:
                found = Path(filename).resolve().relative_to(self.root).as_posix()
            except ValueError:
                found = filename
            self._relative[filename] = found
        return found

    # -- while the journal streams ------------------------------------------------------------

    def check_entry(self, directive, replay: Replay) -> None:
        """The chained entry just replayed: its `events` row, its day's row, responses naming it."""
        entry = replay.entry
        if self.session is None or entry is None:
            return
        meta = directive.meta
        filename, lineno = str(meta.get("filename")), int(meta.get("lineno", 0))
        pending = self.pending_event
        hint = pending[3].length if pending is not None and pending[3] is not None else None
        offset, previous = self.entry_bytes.advance(filename, lineno, hint)
        self._finish_event(previous)
        seq = _int(entry.get("seq"))
        kind = "price" if isinstance(entry, Price) else entry.kind
        event_id = (entry.get("event") if isinstance(entry, Transaction)
                    else f"P{seq:09d}" if seq is not None else None)
        expected = {
            "seq": seq, "id": event_id, "kind": kind, "day": entry.date,
            "order_id": entry.get("order_id") if kind == EventKind.ORDER else None,
            "file": self.relative(filename), "offset": offset, "prev": entry.get("prev"), "hash": entry.get("hash"),
            "reversible": kind in REVERSIBLE_KINDS,
        }
        if kind == EventKind.REVERSE:
            self.reversed_in_journal[entry.get("reverses") or ""] = event_id
        self.pending_event = (filename, lineno, expected, self._event_row(seq, filename, lineno))
        self._day(entry, replay, filename, lineno, seq)
        if self.responses is not None:
            self.responses.check(entry, expected, filename, lineno)

    def _event_row(self, seq: int | None, filename: str, lineno: int):
        if seq is None:
            return None
        rows = self.event_rows
        while rows.peek() is not None and rows.peek().seq < seq:
            self._extra_event(rows.next())
        row = rows.peek()
        if row is not None and row.seq == seq:
            return rows.next()
        self.fault(filename, lineno, f"seq {seq}", "events", "seq", "entry in the journal, not in the database")
        return None

    def _extra_event(self, row) -> None:
        self.extra_events = getattr(self, "extra_events", 0) + 1
        if self.extra_events <= MAX_ROW_FAULTS:
            self.fault(self.where, 0, f"seq {row.seq}", "events", "seq",
                       f"database row {row.id} ({row.kind}) that the journal lacks at this place")

    def _finish_event(self, data: bytes | None) -> None:
        """Compare the pending entry's row, now that its bytes in the journal are known."""
        pending, self.pending_event = self.pending_event, None
        if pending is None:
            return
        filename, lineno, expected, row = pending
        if row is None:
            return
        key = f"seq {expected['seq']}"
        data = data or b""
        expected["length"] = len(data)
        self.compare(filename, lineno, key, "events", row, expected)
        text = row.text
        if text.encode("utf-8") != data:
            self.fault(filename, lineno, key, "events", "text", _text_difference(text, data))
        if row.reversed_by is not None:
            self.reversed_in_db[row.id] = row.reversed_by

    def _day(self, entry, replay: Replay, filename: str, lineno: int, seq: int | None) -> None:
        """The `days` row of a closed day: complete once the next day's price is replayed."""
        if self.pending_day is not None:
            self._finish_day(entry if isinstance(entry, Price) else None)
        if (not (isinstance(entry, Transaction) and entry.kind == EventKind.RELEASE)
                or seq is None or replay.state is None or replay.params is None):
            return
        first = self.last_release_seq + 1
        self.last_release_seq = seq
        supply: dict[str, str | None] = dict(reports.supply_figures(replay.state.g.balances, replay.params.sp_cap))
        supply["value_cny_per_sp"] = entry.get("value")
        expected = {"day": entry.date, "file": self.relative(filename), "first_seq": first, "last_seq": seq,
                    "events": seq - first + 1, "closing_hash": entry.get("hash"), "value": _decimal(entry.get("value"))}
        self.pending_day = (filename, lineno, expected, supply)

    def _finish_day(self, price: Price | None) -> None:
        pending, self.pending_day = self.pending_day, None
        if pending is None:
            return
        filename, lineno, expected, supply = pending
        if price is not None:
            supply["closing_value_cny_per_sp"] = fmt(price.number)
        day = expected["day"]
        key = f"day {day.isoformat()}"
        rows = self.day_rows
        while rows.peek() is not None and rows.peek().day < day:
            self._extra_day(rows.next())
        row = rows.peek()
        if row is None or row.day != day:
            self.fault(filename, lineno, key, "days", "day", "closed in the journal, not in the database")
            return
        rows.next()
        self.compare(filename, lineno, key, "days", row, expected)
        difference = _json_difference(row.supply_json, supply)
        if difference:
            self.fault(filename, lineno, key, "days", "supply_json", difference)

    def _extra_day(self, row) -> None:
        self.fault(self.where, 0, f"day {row.day.isoformat()}", "days", "day",
                   "a closed day in the database that the journal does not close")

    # -- once the journal is read -------------------------------------------------------------

    def check_position(self, replay: Replay) -> None:
        if self.session is None:
            return
        self._finish_event(self.entry_bytes.finish())
        self._finish_day(None)
        extra = 0
        while self.event_rows.peek() is not None:
            row = self.event_rows.next()
            extra += 1
            if extra <= MAX_ROW_FAULTS:
                self.fault(self.where, 0, f"seq {row.seq}", "events", "seq",
                           f"database row {row.id} ({row.kind}) that the journal lacks")
        if extra:
            self.fault(self.where, 0, "-", "events", "seq", f"database holds {extra} entries the journal lacks")
        while self.day_rows.peek() is not None:
            self._extra_day(self.day_rows.next())
        self._reversals()
        state, params = replay.state, replay.params
        if state is None or params is None:
            return
        g = state.g
        # the rules as the books were made with them (without parameters added since: config.LEGACY)
        rules_made = {key: value for key, value in params.to_meta().items() if key not in replay.made_before}
        position = {
            1: {"id": 1, "rules_json": _Json(rules_made), "genesis_day": g.genesis_day, "open_day": g.open_day,
                "value": g.value, "seq": g.seq, "head": g.head, "epoch": g.epoch, "sv_index": g.sv_index,
                "sp_index": g.sp_index, "total_shares": g.total_shares},
        }
        self._table("ledger", position)
        self._table("balances", {account: {"account": account, "amount": amount}
                                 for account, amount in g.balances.items()})
        self._table("holders", state.holders, _fields)
        self._table("partners", {region: {"region": region, "holder": holder}
                                 for region, holder in state.partners.items()})
        self._table("epochs", state.epochs, _fields)
        self._table("payouts", state.payouts, _fields)
        self._table("grant_days", {(holder, day): {"holder": holder, "day": day, "sv": sv}
                                   for (holder, day), sv in state.grant_days.items()})
        self._table("grant_campaigns", {campaign: {"campaign": campaign, "sv": sv}
                                        for campaign, sv in state.grant_campaigns.items()})
        if self.responses is not None:
            self.responses.finish()
        if self.faults > MAX_DB_FAULTS:
            self.report.faults.append(Fault(self.where, 0, "-", "db.more",
                                            f"{self.faults - MAX_DB_FAULTS} more database differences not listed"))

    def _reversals(self) -> None:
        for event_id in sorted(set(self.reversed_in_journal) | set(self.reversed_in_db)):
            have, want = self.reversed_in_db.get(event_id), self.reversed_in_journal.get(event_id)
            if have != want:
                key = f"seq {int(event_id[1:])}" if event_id[:1] == "E" and event_id[1:].isdigit() else f"id {event_id}"
                self.differs(self.where, 0, key, "events", "reversed_by", have, want)

    def _table(self, name: str, expected: dict, values=None) -> None:
        """Every row of table `name` against `expected` (its key -> the row the journal gives; a
        composite primary key is the tuple of its columns, see `_composite_keys`)."""
        table = self.tables[name]
        key_columns = list(table.primary_key.columns)
        if len(key_columns) > 1:
            self._composite_keys(name, expected, key_columns)
            return
        (key_column,) = key_columns
        key_name = key_column.name
        matched = 0
        for row in _pages(self.session, table):
            key = row._mapping[key_name]
            want = expected.get(key)
            label = f"{key_name} {_label(key)}"
            if want is None:
                self.fault(self.where, 0, label, name, key_name, "in the database, not in the journal")
                continue
            matched += 1
            want = values(want, table) if values is not None else want
            self.compare(self.where, 0, label, name, row,
                         {c.name: want[c.name] for c in table.columns if c.name in want})
        if matched != len(expected):
            seen = {row[0] for row in _pages(self.session, table, [key_column])}
            missing = [key for key in expected if key not in seen]
            for key in sorted(missing, key=str)[:MAX_ROW_FAULTS]:
                self.fault(self.where, 0, f"{key_name} {_label(key)}", name, key_name,
                           "in the journal, not in the database")
            if len(missing) > MAX_ROW_FAULTS:
                self.fault(self.where, 0, "-", name, key_name,
                           f"{len(missing) - MAX_ROW_FAULTS} more rows of the journal not in the database")

    def _composite_keys(self, name: str, expected: dict, key_columns: list) -> None:
        """`_table` for a primary key of several columns (`grant_days`: holder, day). A row of the
        database the journal lacks, paired with a row of the journal the database lacks whose key
        differs in one column, is a fault naming that column (`database has X, the journal gives
        Y`); unpaired ones are named by the key's first column."""
        table = self.tables[name]
        names = [c.name for c in key_columns]

        def label(key: tuple) -> str:
            return ", ".join(f"{column} {_label(value)}" for column, value in zip(names, key, strict=True))

        extra: list[tuple] = []  # the first MAX_ROW_FAULTS, then counted
        extra_more = 0
        seen: set[tuple] = set()
        for row in _pages(self.session, table):
            key = tuple(row._mapping[column] for column in names)
            want = expected.get(key)
            if want is None:
                if len(extra) < MAX_ROW_FAULTS:
                    extra.append(key)
                else:
                    extra_more += 1
                continue
            seen.add(key)
            self.compare(self.where, 0, label(key), name, row,
                         {c.name: want[c.name] for c in table.columns if c.name in want})
        missing = sorted((key for key in expected if key not in seen), key=str)
        for key in extra:
            twin = next((m for m in missing if sum(a != b for a, b in zip(key, m, strict=True)) == 1), None)
            if twin is None:
                self.fault(self.where, 0, label(key), name, names[0], "in the database, not in the journal")
                continue
            missing.remove(twin)
            column = next(i for i, (a, b) in enumerate(zip(key, twin, strict=True)) if a != b)
            self.differs(self.where, 0, label(key), name, names[column], key[column], twin[column])
        for key in missing[:MAX_ROW_FAULTS]:
            self.fault(self.where, 0, label(key), name, names[0], "in the journal, not in the database")
        more = extra_more + max(len(missing) - MAX_ROW_FAULTS, 0)
        if more:
            self.fault(self.where, 0, "-", name, names[0], f"{more} more rows differ between the database and the "
                                                          "journal")

    def close(self) -> None:
        self.entry_bytes.close()
        if self.responses is not None:
            self.responses.close()
        if self.session is not None:
            self.session.close()
        self.engine.dispose()


class _Responses:
    """The responses kept for Idempotency-Keys, against the entries they describe.

    A kept response is what a client gets again for the same key: the booked event's id alone
    (`event_id`, revision 0006: the answer is rebuilt from the event's row, so only the id is
    compared with the entry of its seq), the booked event (its id, kind, date, seq, postings,
    hash, prev, file: rows written before) or, for a day close, each release (date, id,
    released SP, value, hash). They are read once, before the journal streams, into a private
    temporary SQLite file ordered by the seq they name; each is then compared with the entry
    of that seq as it streams by (memory holds one page). Status must be 201; a response
    naming no entry of the journal is a fault. The key, the requesting API key, the request's
    hash and the time are not in the journal.
    """

    def __init__(self, db: _Database, table) -> None:
        self.db = db
        self.store = sqlite3.connect("", isolation_level=None)
        self.store.execute("PRAGMA journal_mode=OFF")
        self.store.execute("CREATE TABLE kept (seq INTEGER NOT NULL, label TEXT NOT NULL, part INTEGER NOT NULL, "
                           "body TEXT NOT NULL)")
        key_columns = [name for name in _KEY_LABEL.get(table.name, ()) if name in table.c] or \
            [c.name for c in table.primary_key.columns]
        batch: list[tuple] = []
        self.store.execute("BEGIN")
        for row in _pages(db.session, table):
            mapping = row._mapping
            label = ", ".join(f"{name} {mapping[name]}" for name in key_columns)
            batch += self._parts(label, mapping)
            if len(batch) >= DB_PAGE_ROWS:
                self.store.executemany("INSERT INTO kept VALUES (?, ?, ?, ?)", batch)
                batch.clear()
        self.store.executemany("INSERT INTO kept VALUES (?, ?, ?, ?)", batch)
        self.store.execute("COMMIT")
        self.kept = _Peek(iter(self.store.execute("SELECT seq, label, part, body FROM kept ORDER BY seq, label, part")))

    def _parts(self, label: str, mapping) -> list[tuple]:
        db, name = self.db, "idempotency_keys"
        if mapping["status"] != _BOOKED_STATUS:
            db.differs(db.where, 0, label, name, "status", mapping["status"], _BOOKED_STATUS)
        event_id = mapping.get("event_id")
        if event_id is not None:  # (revision 0006) a booking's row names its event: the answer is rebuilt from it
            seq = _int(str(event_id)[1:]) if str(event_id).startswith("E") else None
            if seq is None:
                db.fault(db.where, 0, label, name, "event_id", f"not an event id: {_show(event_id)}")
                return []
            if mapping["response"]:
                db.fault(db.where, 0, label, name, "response", "a row naming its event keeps no response, "
                                                               f"this one holds {_show(mapping['response'])}")
            return [(seq, label, _BY_EVENT_ID, json.dumps({"id": event_id}))]
        try:
            body = json.loads(mapping["response"])
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict) and isinstance(body.get("seq"), int) and not isinstance(body["seq"], bool):
            return [(body["seq"], label, -1, json.dumps(body, sort_keys=True))]
        if isinstance(body, dict) and isinstance(body.get("closed"), list):
            parts = []
            closed = body["closed"]
            for index, part in enumerate(closed):
                seq = _int(str(part.get("id", ""))[1:]) if isinstance(part, dict) else None
                if seq is None or not str(part.get("id", "")).startswith("E"):
                    db.fault(db.where, 0, label, name, "response",
                             f"closed day {index + 1} names no event id: {_show(part)}")
                    continue
                parts.append((seq, label, index, json.dumps(part, sort_keys=True)))
            days = [part.get("date") for part in closed if isinstance(part, dict)]
            if days and days[-1] != body.get("through"):
                db.fault(db.where, 0, label, name, "response",
                         f"through {_show(body.get('through'))} is not the last day it closed ({_show(days[-1])})")
            return parts
        db.fault(db.where, 0, label, name, "response", f"not a response of a booked event or a day close: "
                                                       f"{_show(mapping['response'])}")
        return []

    def check(self, entry, expected: dict, filename: str, lineno: int) -> None:
        seq = expected["seq"]
        if seq is None:
            return
        kept = self.kept
        while kept.peek() is not None and kept.peek()[0] < seq:
            self._unmatched(kept.next())
        while kept.peek() is not None and kept.peek()[0] == seq:
            _seq, label, part, body = kept.next()
            want = self._expected(entry, expected, part)
            difference = _json_difference(body, want)
            if difference:
                column = "event_id" if part == _BY_EVENT_ID else "response"
                self.db.fault(filename, lineno, label, "idempotency_keys", column,
                              f"the {column} kept for seq {seq} differs from the journal's entry: {difference}")

    @staticmethod
    def _expected(entry, expected: dict, part: int) -> dict:
        if part == _BY_EVENT_ID:
            return {"id": expected["id"]}
        if part >= 0:  # a day close: its release
            return {"date": entry.date.isoformat(), "id": expected["id"], "released_sp": entry.get("released_sp"),
                    "value_cny_per_sp": entry.get("value"), "hash": expected["hash"]}
        from ..engine import Booked  # (here: `verify --no-db` never imports the engine and alembic)

        return Booked(expected["seq"], expected["id"] if expected["kind"] != EventKind.PRICE else None,
                      expected["kind"], entry.date, expected["hash"], expected["prev"], entry, "",
                      expected["file"]).to_json()

    def _unmatched(self, kept: tuple) -> None:
        seq, label, _part, _body = kept
        self.db.fault(self.db.where, 0, label, "idempotency_keys", "response",
                      f"names seq {seq}, which is not in the journal")

    def finish(self) -> None:
        while self.kept.peek() is not None:
            self._unmatched(self.kept.next())

    def close(self) -> None:
        self.store.close()


class _EntryBytes:
    """The bytes of each chained entry in its journal file, read once, line by line.

    An entry's bytes run from its first line to the next entry's first line (or the file's
    end): exactly what the service appended for it (a row's `text`), and where (`offset`).
    """

    def __init__(self) -> None:
        self.path: str | None = None
        self.handle: BinaryIO | None = None
        self.line = 1
        self.offset = 0
        self.parts: list[bytes] = []

    def advance(self, path: str, line: int, hint: int | None = None) -> tuple[int, bytes | None]:
        """(offset of the entry at `path:line`, the bytes of the chained entry before it, if any).

        `hint`: the length the database gives the entry before; used only if those bytes hold
        exactly the lines up to `line` and end a line (then they are the entry, whatever the
        hint's source), else the lines are read one by one.
        """
        if path != self.path:
            previous = self.finish()  # the rest of the last file: its last entry
            self.path, self.line, self.offset = path, 1, 0
            try:
                self.handle = open(path, "rb")  # noqa: SIM115 - closed by finish()
            except OSError:
                self.handle = None
            self._read_to(line)
            self.parts = []  # bytes before a file's first entry belong to no entry (its offset shows them)
            return self.offset, previous
        self._read_to(line, hint)
        previous, self.parts = b"".join(self.parts), []
        return self.offset, previous

    def _read_to(self, line: int, hint: int | None = None) -> None:
        handle, parts = self.handle, self.parts
        if handle is not None and hint and self.line < line and not parts:
            data = handle.read(hint)
            if data.endswith(b"\n") and data.count(b"\n") == line - self.line:
                parts.append(data)
                self.offset += len(data)
                self.line = line
                return
            handle.seek(self.offset)
        while handle is not None and self.line < line:
            data = handle.readline()
            if not data:
                break
            parts.append(data)
            self.offset += len(data)
            self.line += 1

    def finish(self) -> bytes | None:
        """The rest of the current file (the last entry's bytes); closes it."""
        if self.handle is None:
            return None
        rest = b"".join(self.parts) + self.handle.read()
        self.close()
        return rest

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.handle, self.path, self.parts = None, None, []


class _Peek:
    """An iterator that can show its next item."""

    _END = object()

    def __init__(self, items) -> None:
        self.items = iter(items)
        self.head = next(self.items, self._END)

    def peek(self):
        return None if self.head is self._END else self.head

    def next(self):
        head = self.head
        self.head = next(self.items, self._END)
        return None if head is self._END else head


@dataclass(frozen=True)
class _Json:
    """A JSON column's expected content (compared as parsed: what the service reads)."""

    value: object


def _pages(session, table, columns=None, size: int = DB_PAGE_ROWS):
    """Every row of `table`, in primary-key order, one keyset page (one statement) at a time."""
    key = list(table.primary_key.columns)
    query = select(*(columns or table.columns)).order_by(*key).limit(size)
    after = None
    while True:
        if after is None:
            page = query
        elif len(key) == 1:
            page = query.where(key[0] > after[0])
        else:
            page = query.where(tuple_(*key) > tuple_(*after))
        rows = session.execute(page).all()
        yield from rows
        if len(rows) < size:
            return
        after = [rows[-1]._mapping[c.name] for c in key]


def _fields(item, table) -> dict:
    return {c.name: getattr(item, c.name) for c in table.columns if hasattr(item, c.name)}


def _same(found, expected) -> bool:
    if isinstance(expected, _Json):
        try:
            return json.loads(found) == expected.value
        except (TypeError, ValueError):
            return False
    if isinstance(found, Decimal) or isinstance(expected, Decimal):
        # exact text, as the database keeps it (DecimalText): 1.0 is not 1.00
        return isinstance(found, Decimal) and isinstance(expected, Decimal) and fmt(found) == fmt(expected)
    return type(found) is type(expected) and found == expected


def _show(value) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, _Json):
        value = json.dumps(value.value, sort_keys=True)
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, date):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _label(value) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _int(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _decimal(text) -> Decimal | None:
    try:
        return Decimal(text)
    except (TypeError, ValueError, ArithmeticError):
        return None


def _json_difference(found, expected: dict) -> str:
    """'' when the JSON text `found` parses to `expected`; else the first differing keys."""
    try:
        parsed = json.loads(found)
    except (TypeError, ValueError):
        return f"database has {_show(found)}, which is not JSON"
    if parsed == expected:
        return ""
    if not isinstance(parsed, dict):
        return f"database has {_show(parsed)}, the journal gives {_show(expected)}"
    notes = [f"{key}: database has {_show(parsed.get(key))}, the journal gives {_show(expected.get(key))}"
             for key in sorted(set(parsed) | set(expected), key=str) if parsed.get(key) != expected.get(key)]
    return "; ".join(notes[:4])


def _text_difference(text: str, data: bytes) -> str:
    """Where a row's text and the journal's bytes of its entry first differ."""
    journal = data.decode("utf-8", errors="replace").split("\n")
    database = text.split("\n")
    for index in range(max(len(journal), len(database))):
        have = database[index] if index < len(database) else None
        want = journal[index] if index < len(journal) else None
        if have != want:
            return (f"text differs from the journal's bytes of the entry at its line {index + 1}: "
                    f"database has {_show(have)}, the journal gives {_show(want)}")
    return "text differs from the journal's bytes of the entry"
