"""`ledger-service verify`: the auditor's check of the books from the journal alone.

Streams every journal file in order (Beancount's parser, one file at a time),
replays it (`replay.Replay`), then checks the subledger against the control
accounts, that the ledger tier (summaries, `ledger_tier.LedgerRebuild`; holder
index, `holder_index.IndexCheck`) is what the journal gives and, when a database
is given, that the database agrees with the journal: chain head, every entry's
hash, control balances, every holder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Iterator

from beancount.parser import parser

from .. import accounts as A
from .. import rules
from ..amounts import CNY, SP, ZERO, fmt, quantize
from ..entries import from_beancount
from ..journal import Books, main_text
from ..holder_index import IndexCheck
from ..ledger_tier import LedgerRebuild
from ..state import supply_of
from ..subledger import balance
from .replay import Fault, Replay


@dataclass(frozen=True)
class _Foreign:
    source: dict
    message: str


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

    @property
    def ok(self) -> bool:
        return not self.faults

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "faults": [str(f) for f in self.faults], "supply": self.supply,
            "residue": self.residue, "holders": self.holders, "entries": self.entries, "files": self.files,
            "head": {"seq": self.head_seq, "hash": self.head_hash}, "open_day": self.open_day,
            "database_checked": self.db_checked,
        }


def journal_directives(books: Books, progress=None) -> Iterator[tuple[Path, object | None, list]]:
    """(file, directive or None, parse errors) for every journal file, in order.

    A journal file holds the service's transactions and prices and nothing else: an
    `include`, `option` or `plugin` in one, or any other directive, is reported.
    """
    files = books.journal_files()
    for path in files:
        directives, errors, options = parser.parse_file(str(path))
        directives.sort(key=lambda d: d.meta.get("lineno", 0))
        foreign = [f"include {name}" for name in options.get("include", [])]
        foreign += [f"plugin {name}" for name, _ in options.get("plugin", [])]
        if foreign:
            errors = list(errors) + [_Foreign({"filename": str(path), "lineno": 0},
                                              f"a journal file may not hold {', '.join(foreign)}")]
        for directive in directives:
            if type(directive).__name__ == "Price" and from_beancount(directive) is None:
                errors = list(errors) + [_Foreign(directive.meta, f"a price of {directive.currency} in "
                                                                  f"{directive.amount.currency}: the journal prices SP in CNY only")]
            elif type(directive).__name__ not in ("Transaction", "Price"):
                errors = list(errors) + [_Foreign(directive.meta, f"a journal file holds only transactions and "
                                                                  f"prices, not a {type(directive).__name__}")]
        yield path, None, errors
        for directive in directives:
            yield path, directive, []
        if progress is not None:
            progress(path)


def verify(books_dir: Path | str, db_url: str | None = None, use_db: bool = True, progress=None) -> Report:
    books = Books(books_dir)
    report = Report()
    replay = Replay()
    if not books.exists():
        report.faults.append(Fault(str(books.main), 0, "-", "books.missing", "no main.beancount"))
        return report
    report.files = len(books.journal_files())
    db = _Database(books, db_url, report) if use_db else None
    ledger = LedgerRebuild(books.root)
    index = IndexCheck(books.root)
    try:
        for path, directive, errors in journal_directives(books, progress):
            for error in errors:
                source = getattr(error, "source", None) or {}
                rule = "file.foreign" if isinstance(error, _Foreign) else "syntax"
                report.faults.append(Fault(str(source.get("filename", path)), int(source.get("lineno", 0) or 0), "-",
                                           rule, str(getattr(error, "message", error)).strip()))
            if directive is None:
                continue
            ledger.feed(path, directive)
            if hasattr(directive, "date") and path.stem != directive.date.isoformat():
                meta = directive.meta
                report.faults.append(Fault(str(meta.get("filename")), int(meta.get("lineno", 0)), "-", "file.date",
                                           f"entry dated {directive.date} in the journal file of {path.stem}"))
            before = replay.entries
            replay.feed(directive)
            if replay.entries != before:
                index.after(directive, replay)
                if db is not None:
                    db.check_entry(directive, replay)
        report.faults += replay.faults
        report.faults += ledger.check()
        report.faults += index.finish()
        report.entries = replay.entries
        state = replay.state
        if state is None:
            return report
        g = state.g
        report.head_seq, report.head_hash, report.open_day = g.seq, g.head, g.open_day.isoformat()
        report.holders = len(state.holders)
        report.supply = supply_report(g, replay.params)
        report.residue = _residue(state, report)
        _check_main(books, g.genesis_day, report)
        if db is not None:
            db.check_position(replay)
    finally:
        if db is not None:
            db.close()
    return report


def _check_main(books: Books, genesis_day: date, report: Report) -> None:
    """main.beancount is exactly what `init` wrote: no forged entry, option or plugin in it."""
    expected = main_text(genesis_day).splitlines()
    found = books.main.read_text(encoding="utf-8").splitlines()
    for lineno, (want, have) in enumerate(zip(expected, found), start=1):
        if want != have:
            report.faults.append(Fault(str(books.main), lineno, "-", "main.altered",
                                       f"line differs from what the service writes: {have!r}"))
            return
    if len(expected) != len(found):
        lineno = min(len(expected), len(found)) + 1
        while lineno <= len(found) and not found[lineno - 1].strip():  # point at the first added text
            lineno += 1
        report.faults.append(Fault(str(books.main), lineno, "-", "main.altered",
                                   f"{abs(len(found) - len(expected))} line(s) added or removed at the end"))


def supply_report(g, params) -> dict[str, str]:
    supply = supply_of(g, params.sp_cap)
    out = {k: fmt(quantize(v, CNY if k == "pool_cny" else SP)) for k, v in supply.items()}
    out["value_cny_per_sp"] = fmt(g.value)
    out["closing_value_cny_per_sp"] = fmt(rules.value_of(g, params))
    return out


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
        report.faults.append(Fault("-", 0, "-", "subledger.locked", "locked SV of holders differs from the control account"))
    return {k: fmt(v) for k, v in residue.items()}


class _Database:
    """The service database, compared with the journal as it streams by."""

    def __init__(self, books: Books, db_url: str | None, report: Report) -> None:
        from sqlalchemy import inspect, select

        from ..store.db import database_url, make_engine, sessions
        from ..store.models import EventRow

        self.report = report
        self.url = database_url(books.root, db_url)
        self.engine = make_engine(self.url)
        self.session = None
        self.rows = iter(())
        if not inspect(self.engine).has_table("ledger"):
            report.faults.append(Fault(self.url, 0, "-", "db.missing", "no books in this database (use --no-db to skip)"))
            return
        report.db_checked = True
        self.session = sessions(self.engine)()
        self.rows = iter(self.session.execute(select(EventRow.seq, EventRow.hash, EventRow.file).order_by(EventRow.seq))
                         .yield_per(10_000))

    def check_entry(self, directive, replay: Replay) -> None:
        if self.session is None:
            return
        row = next(self.rows, None)
        found = directive.meta.get("hash")
        if row is None:
            self._fault(directive, "db.events", "entry in the journal, not in the database")
        elif row.hash != found:
            self._fault(directive, "db.entry", f"database has seq {row.seq} with hash {row.hash} in {row.file}")

    def _fault(self, directive, rule: str, message: str) -> None:
        meta = directive.meta
        self.report.faults.append(Fault(str(meta.get("filename")), int(meta.get("lineno", 0)),
                                        str(meta.get("event", "-")), rule, message))

    def check_position(self, replay: Replay) -> None:
        if self.session is None:
            return
        from sqlalchemy import select

        from ..store.db import DbReader, load_globals
        from ..store.models import HolderRow

        report, url, session, state = self.report, self.url, self.session, replay.state
        extra = sum(1 for _ in self.rows)
        if extra:
            report.faults.append(Fault(url, 0, "-", "db.events", f"database holds {extra} entries the journal lacks"))
        g_db = load_globals(session)
        g = state.g
        if (g_db.seq, g_db.head) != (g.seq, g.head):
            report.faults.append(Fault(url, 0, "-", "db.head",
                                       f"database head is seq {g_db.seq} {g_db.head}, journal head is seq {g.seq} {g.head}"))
        for name in ("open_day", "value", "epoch", "sv_index", "sp_index", "total_shares"):
            if getattr(g_db, name) != getattr(g, name):
                report.faults.append(Fault(url, 0, "-", "db.position",
                                           f"{name}: database {getattr(g_db, name)}, journal {getattr(g, name)}"))
        for account in sorted(set(g.balances) | set(g_db.balances)):
            if g.balance(account) != g_db.balance(account):
                report.faults.append(Fault(url, 0, "-", "db.balance",
                                           f"{account}: database {fmt(g_db.balance(account))}, journal {fmt(g.balance(account))}"))
        reader = DbReader(session, g_db)
        seen = 0
        for row in session.scalars(select(HolderRow)).yield_per(10_000):
            seen += 1
            mine = state.holders.get(row.id)
            if mine is None:
                report.faults.append(Fault(url, 0, row.id, "db.holder", "holder in the database, not in the journal"))
                continue
            theirs = reader.holder(row.id)
            if balance(theirs, g_db, reader) != balance(mine, g, state) or _attrs(theirs) != _attrs(mine):
                report.faults.append(Fault(url, 0, row.id, "db.holder", "balances or attributes differ from the journal"))
        if seen != len(state.holders):
            report.faults.append(Fault(url, 0, "-", "db.holders", f"database holds {seen} holders, journal {len(state.holders)}"))

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        self.engine.dispose()


def _attrs(holder) -> tuple:
    return (holder.kind, holder.referrer, holder.region, holder.role, holder.active, holder.last_purchase,
            holder.owner, holder.channel, holder.rebate_rate, holder.store_referrer, holder.deposits_cny)
