"""The ledger tier: the books Fava opens, derived from the journal (SPEC §6, "Two tiers of books").

Beancount reloads whole files and Fava's account page is not paginated, so the journal
(one transaction per event) is not what Fava opens at platform scale. The ledger is:

    BOOKS/ledger/
      main.beancount              header + include of every month file: what `ledger-service fava` opens
      months/2026-03.beancount    per business day: the day's price, then one summary transaction
                                  per event kind (postings = that kind's per-account sums, metadata
                                  `kind`, `events`, `journal`, `closing_hash`)
      openings/2026-04.beancount  every balance-sheet account at the close of the previous month, one
                                  transaction against `Equity:Opening-Balances` dated the month's 1st
      period-2026-04.beancount    header + that month's opening + that month: one period opens alone

A day is summarised once it is **closed** (its journal file ends with the day's release).
The open day contributes only its `price` (written by the previous close, final). Everything
is a pure function of the journal: the view's `updater()` (fed by `views.update` as days
close) extends the ledger incrementally, `compare()` (and `LedgerRebuild`, the `checker()`
`verify` feeds as it streams the journal) rebuilds it from scratch in memory and reports
every ledger entry that differs, with its file and line and the journal day it cites.
Fava is launched on it by `fava_app.fava_main` (`ledger_file` names the file it opens). The
ledger declares no plugin (it has no chain): `bean-check ledger/main.beancount` passes on its own.

Opening balances: balance-sheet accounts (assets, liabilities, equity) carry their
balances; income accounts start the period at zero and their earlier balance is carried in
`Equity:Opening-Balances` (earnings of earlier periods), so a period file shows that
period's income statement and the same balance sheet as the full ledger at its end.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data

from .. import accounts
from ..amounts import COMMODITIES, EXACT_CONTEXT, ZERO
from ..entries import Entry, Posting, Price, Transaction, from_beancount, render
from ..faults import Fault
from ..journal import (
    Books,
    DayFile,
    day_of,
    entry_meta,
    journal_directives,
    leading_entries,
    make_private_dirs,
    relative,
    text_units,
    write_private,
)
from ..rules.events import EventKind
from .base import LEDGER_DIR, Check, Update

LEDGER_MAIN = f"{LEDGER_DIR}/main.beancount"
# The ledger declares no Fava `import-config` (issue 10): Fava is read-only, and its extract
# endpoint read any file the client named. Imports go through `ledger-service reconcile` and
# `import-orders`. The shim earlier versions wrote is removed by `update` (and is an extra
# file to `check` until then).
IMPORT_CONFIG_NAME = "import_config.py"
MONTHS_DIR = f"{LEDGER_DIR}/months"
OPENINGS_DIR = f"{LEDGER_DIR}/openings"
OPENING_ACCOUNT = "Equity:Opening-Balances"
EXTENSION = "ledger_service.fava_ext"
TITLE = "共享购 points ledger"
COMMODITY_NAMES = {"CNY": "人民币 Chinese yuan", "SV": "共享值 share value", "SP": "共享积分 share points"}
# Genesis metadata that is the chain, not the rules.
_CHAIN_META = ("event", "kind", "seq", "postings", "prev", "hash")
_ACCOUNT_ORDER = {account: i for i, (account, _c, _p) in enumerate(accounts.CHART)}
_CURRENCY_ORDER = {c: i for i, c in enumerate(COMMODITIES)}
_BALANCE_SHEET = ("Assets", "Liabilities", "Equity")


def month_file(month: str) -> str:
    return f"{MONTHS_DIR}/{month}.beancount"


def opening_file(month: str) -> str:
    return f"{OPENINGS_DIR}/{month}.beancount"


def period_file(month: str) -> str:
    return f"{LEDGER_DIR}/period-{month}.beancount"


def books_root_of(ledger_file: Path | str) -> Path:
    """The books folder of a file Fava opens: the ledger folder's parent for the ledger tier
    (main or period file), the file's own folder for a file beside the journal's main.beancount."""
    path = Path(ledger_file).resolve()
    for candidate in (path.parent.parent, path.parent):
        if (candidate / "main.beancount").is_file() and (candidate / "journal").is_dir():
            return candidate
    return path.parent.parent


def _month(day: date) -> str:
    return f"{day:%Y-%m}"


# -- one business day -----------------------------------------------------------------


class DayAggregator:
    """Sums one journal day file as it streams by: per kind, per account and currency."""

    def __init__(self, journal: str, day: date | None = None) -> None:
        self.journal = journal
        self.day = day
        self.prices: list[Price] = []
        self.counts: dict[str, int] = {}  # kind -> events, in order of first appearance
        self.sums: dict[str, dict[tuple[str, str], Decimal]] = {}
        self.genesis: Transaction | None = None
        self.last_kind: str | None = None
        self.last_hash = ""
        self.entries = 0

    def feed(self, directive: Any) -> None:
        """A parsed Beancount directive (the fast path: transactions are summed as parsed)."""
        if not isinstance(directive, data.Transaction):
            entry = from_beancount(directive)
            if entry is not None:
                self.feed_entry(entry)
            return
        meta = directive.meta or {}
        self.entries += 1
        if self.day is None:
            self.day = directive.date
        self.last_hash = str(meta.get("hash") or "")
        kind = meta.get("kind")
        kind = str(kind) if kind else "unknown"
        if kind == EventKind.GENESIS and self.genesis is None:
            genesis = from_beancount(directive)
            self.genesis = genesis if isinstance(genesis, Transaction) else None
        self.last_kind = kind
        self.counts[kind] = self.counts.get(kind, 0) + 1
        sums = self.sums.setdefault(kind, {})
        for p in directive.postings:
            units = p.units
            if units is None or not isinstance(units.number, Decimal) or not units.number.is_finite():
                continue
            number = units.number
            key = (p.account, units.currency)
            sums[key] = EXACT_CONTEXT.add(sums.get(key, ZERO), number)

    def feed_entry(self, entry: Entry) -> None:
        self.entries += 1
        if self.day is None:
            self.day = entry.date
        self.last_hash = entry.get("hash") or ""
        if isinstance(entry, Price):
            self.prices.append(entry)
            self.last_kind = "price"
            return
        kind = entry.kind or "unknown"
        if kind == EventKind.GENESIS and self.genesis is None:
            self.genesis = entry
        self.last_kind = kind
        self.counts[kind] = self.counts.get(kind, 0) + 1
        sums = self.sums.setdefault(kind, {})
        for p in entry.postings:
            if not p.number.is_finite():  # an elided amount: verify reports it
                continue
            key = (p.account, p.currency)
            sums[key] = EXACT_CONTEXT.add(sums.get(key, ZERO), p.number)

    @property
    def closed(self) -> bool:
        """A day is closed once its file ends with its release."""
        return self.last_kind == EventKind.RELEASE

    def price_entries(self) -> list[Price]:
        out = []
        for price in self.prices:
            meta = [("journal", self.journal), ("journal_seq", price.get("seq")), ("journal_hash", price.get("hash")),
                    ("pool_cny", price.get("pool_cny")), ("circulating_sp", price.get("circulating_sp"))]
            out.append(Price(price.date, price.number, tuple((k, v) for k, v in meta if v is not None)))
        return out

    @property
    def the_day(self) -> date:
        """The business day summed (known once a directive was fed, or from the file's name)."""
        if self.day is None:
            raise ValueError(f"{self.journal}: no business day")
        return self.day

    def summaries(self) -> list[Transaction]:
        day = self.the_day
        out = []
        for kind, count in self.counts.items():
            postings = tuple(
                Posting(account, total, currency)
                for (account, currency), total in sorted(self.sums[kind].items(), key=_posting_order)
                if total != 0
            )
            noun = "event" if count == 1 else "events"
            out.append(Transaction(
                day, kind, f"{count} {kind} {noun} of {day.isoformat()}",
                (("kind", kind), ("events", str(count)), ("journal", self.journal), ("closing_hash", self.last_hash)),
                postings,
            ))
        return out

    def ledger_entries(self) -> list[Entry]:
        """The day's entries in the ledger: its price, and its summaries once it is closed."""
        entries: list[Entry] = list(self.price_entries())
        if self.closed:
            entries += self.summaries()
        return entries


def _posting_order(item: tuple[tuple[str, str], Decimal]) -> tuple:
    (account, currency), _ = item
    return (_ACCOUNT_ORDER.get(account, len(_ACCOUNT_ORDER)), account, _CURRENCY_ORDER.get(currency, 9), currency)


def summarize_day(directives: Iterable[Any], journal_relpath: str) -> list[Entry]:
    """The ledger entries of one journal day file (pure): its price directive, then one summary
    transaction per event kind present that day (postings: the kind's per-account sums, zero sums
    omitted; metadata `kind`, `events`, `journal`, `closing_hash`)."""
    agg = DayAggregator(journal_relpath, day_of(journal_relpath))
    for directive in directives:
        agg.feed(directive)
    return list(agg.price_entries()) + agg.summaries()


# -- text -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayBlock:
    """One business day in a month file: a marker comment, then its entries."""

    day: date
    journal: str
    closed: bool
    closing_hash: str
    text: str  # marker line and entries, ending with a blank line


_MARKER = re.compile(r"^; day (\d{4}-\d\d-\d\d) (\S+) (?:closed ([0-9a-f]*)|open)$", re.M)
_POSTING = re.compile(r"^  ([A-Z][A-Za-z0-9:_-]*)  (-?[0-9]+(?:\.[0-9]+)?) ([A-Z][A-Z0-9'._-]*)$", re.M)


def day_block(agg: DayAggregator) -> DayBlock:
    state = f"closed {agg.last_hash}" if agg.closed else "open"
    text = f"; day {agg.the_day.isoformat()} {agg.journal} {state}\n" + "".join(render(e) for e in agg.ledger_entries())
    return DayBlock(agg.the_day, agg.journal, agg.closed, agg.last_hash if agg.closed else "", text)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Genesis:
    day: date
    journal: str
    hash: str
    rules: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, entry: Transaction, journal: str) -> Genesis:
        rules = tuple((k, v) for k, v in entry.meta if k not in _CHAIN_META)
        return cls(entry.date, journal, entry.get("hash") or "", rules)


# Fava shows income, liabilities and equity with their natural sign (revenue and what the platform
# owes read positive), not Beancount's credit-negative one (issue 14). A ledger tier written before
# this line existed is not a fault: `_compare_file` accepts its absence (the next update writes it).
INVERT_OPTION = 'custom "fava-option" "invert-income-liabilities-equity" "true"'


# Each Open directive's Chinese display name (issue 16: `accounts.NAME_ZH`), shown by the Fava pages
# in Chinese. A display line: a ledger tier written before it is not a fault (`_compare_file`).
NAME_ZH_META = "name_zh"
OPENING_NAME_ZH = "期初余额"


def header_text(genesis: Genesis, title: str) -> str:
    d = genesis.day.isoformat()
    lines = [
        "; The ledger tier of the books: what Fava opens (`ledger-service fava`). "
        "Written by ledger-service; do not edit.",
        "; Derived from the journal (../main.beancount): per business day the day's price and one summary",
        "; transaction per event kind, citing the day's journal file and its closing hash. The journal stays",
        "; the audit trail; `ledger-service verify` rebuilds this ledger from it and reports any difference.",
        f"option {_quote('title')} {_quote(title)}",
        'option "operating_currency" "CNY"',
        "",
        f'{d} custom "fava-extension" "{EXTENSION}"',
        f"{d} {INVERT_OPTION}",
        "",
        f'{d} custom "ledger-service" "rules"',
        f"  journal: {_quote(genesis.journal)}",
        f"  genesis_hash: {_quote(genesis.hash)}",
    ]
    lines += [f"  {k}: {_quote(v)}" for k, v in genesis.rules]
    lines.append("")
    for currency in COMMODITIES:
        lines += [f"{d} commodity {currency}", f"  name: {_quote(COMMODITY_NAMES[currency])}"]
    lines.append("")
    for account, currency, purpose in accounts.CHART:
        lines += [f"{d} open {account} {currency}", f"  purpose: {_quote(purpose)}",
                  f"  {NAME_ZH_META}: {_quote(accounts.NAME_ZH[account])}"]
    lines += [f"{d} open {OPENING_ACCOUNT} {','.join(COMMODITIES)}",
              '  purpose: "balances carried into a period: earlier periods\' earnings"',
              f"  {NAME_ZH_META}: {_quote(OPENING_NAME_ZH)}", ""]
    return "\n".join(lines) + "\n"


def _balances(texts: Iterable[str], into: dict[tuple[str, str], Decimal]) -> None:
    for text in texts:
        for m in _POSTING.finditer(text):
            key = (m.group(1), m.group(3))
            into[key] = EXACT_CONTEXT.add(into.get(key, ZERO), Decimal(m.group(2)))


def opening_entry(month: str, balances: dict[tuple[str, str], Decimal], last: DayBlock) -> Transaction:
    first = date.fromisoformat(f"{month}-01")
    postings: list[Posting] = []
    carried: dict[str, Decimal] = {}
    for (account, currency), total in sorted(balances.items(), key=_posting_order):
        if total == 0 or account == OPENING_ACCOUNT:
            continue
        if account.split(":", 1)[0] in _BALANCE_SHEET:
            postings.append(Posting(account, total, currency))
            carried[currency] = EXACT_CONTEXT.add(carried.get(currency, ZERO), total)
    for currency in sorted(carried, key=lambda c: _CURRENCY_ORDER.get(c, 9)):
        if carried[currency] != 0:
            postings.append(Posting(OPENING_ACCOUNT, -carried[currency], currency))
    return Transaction(
        first, "opening", f"balances at the close of {last.day.isoformat()}",
        (("kind", "opening"), ("period", month), ("journal", last.journal), ("closing_hash", last.closing_hash)),
        tuple(postings),
    )


def build_files(genesis: Genesis | None, blocks: list[DayBlock]) -> dict[str, str]:
    """Every ledger file (path relative to the books -> text), from the days' blocks."""
    blocks = sorted(blocks, key=lambda b: b.day)
    by_month: dict[str, list[DayBlock]] = {}
    for block in blocks:
        by_month.setdefault(_month(block.day), []).append(block)
    files: dict[str, str] = {}
    if genesis is None:
        return files
    months = sorted(by_month)
    balances: dict[tuple[str, str], Decimal] = {}
    last_closed: DayBlock | None = None
    for index, month in enumerate(months):
        days = by_month[month]
        files[month_file(month)] = (
            f"; {TITLE} — {month}: per business day its price and one summary transaction per event kind.\n"
            f"; Derived from the journal by ledger-service; `ledger-service verify` rebuilds it and compares.\n\n"
            + "".join(b.text for b in days)
        )
        includes = []
        if index > 0 and last_closed is not None:
            entry = opening_entry(month, balances, last_closed)
            files[opening_file(month)] = (
                f"; Opening balances of {month}: balance-sheet accounts at the close of "
                f"{last_closed.day.isoformat()};\n"
                f"; earlier income is carried in {OPENING_ACCOUNT}. Included by period-{month}.beancount only.\n\n"
                + render(entry)
            )
            includes.append(f"openings/{month}.beancount")
        includes.append(f"months/{month}.beancount")
        files[period_file(month)] = (header_text(genesis, f"{TITLE} — {month}")
                                     + "".join(f'include "{inc}"\n' for inc in includes))
        _balances((b.text for b in days if b.closed), balances)
        for b in days:
            if b.closed:
                last_closed = b
    files[LEDGER_MAIN] = header_text(genesis, TITLE) + "".join(f'include "months/{m}.beancount"\n' for m in months)
    return files


# -- update: extend the ledger as days close --------------------------------------------------


def _existing_blocks(root: Path) -> dict[date, DayBlock]:
    out: dict[date, DayBlock] = {}
    months = root / MONTHS_DIR
    if not months.is_dir():
        return out
    for path in sorted(months.glob("*.beancount")):
        text = path.read_text(encoding="utf-8")
        marks = list(_MARKER.finditer(text))
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            day = date.fromisoformat(m.group(1))
            closed = m.group(3) is not None
            out[day] = DayBlock(day, m.group(2), closed, m.group(3) or "", text[m.start():end])
    return out


class _LedgerUpdate:
    """Summarises the days the ledger lacks (every day again on a rebuild) and rewrites its files.

    A closed day is summarised from its parsed directives; an open one contributes its price
    (read from the head of its file). Each file is written to a temporary file and renamed
    into place, and only when its text changes.
    """

    def __init__(self, root: Path, rebuild: bool) -> None:
        self.root = root
        self.existing = {} if rebuild else _existing_blocks(root)
        self.done = {day for day, b in self.existing.items() if b.closed}
        self.blocks = dict(self.existing)

    def wants(self, day: DayFile) -> bool:
        return day.day not in self.done

    def add(self, day: DayFile) -> None:
        agg = DayAggregator(day.relpath, day.day)
        if day.closed:
            for directive in day.directives():
                agg.feed(directive)
        else:
            for entry in day.leading_entries():
                agg.feed_entry(entry)
            agg.last_kind = None  # the head alone says nothing of the day's end
        self.blocks[day.day] = day_block(agg)

    def finish(self, days: Sequence[DayFile]) -> list[str]:
        if not days:
            return []
        # the open days the journal no longer has (a rebuild after repair) are dropped
        present = {d.day for d in days}
        blocks = {d: b for d, b in self.blocks.items() if d in present}
        genesis = _genesis_of(self.root, days[0].path)
        return _write_all(self.root, build_files(genesis, list(blocks.values())))

    def close(self) -> None:
        pass


def updater(books_root: Path, rebuild: bool = False) -> Update:
    """The ledger's update (see `views.update`, which holds the locks and feeds it the days)."""
    return _LedgerUpdate(Path(books_root), rebuild)


def _genesis_of(root: Path, first: Path) -> Genesis | None:
    for entry in leading_entries(first):
        if isinstance(entry, Transaction) and entry.kind == EventKind.GENESIS:
            return Genesis.of(entry, relative(root, first))
    return None


def ledger_files(root: Path) -> list[str]:
    """The ledger files on disk (relative to the books), the lock excluded."""
    folder = root / LEDGER_DIR
    if not folder.is_dir():
        return []
    out = [relative(root, p) for p in folder.glob("*.beancount")]
    out += [relative(root, p) for p in (root / MONTHS_DIR).glob("*.beancount")]
    out += [relative(root, p) for p in (root / OPENINGS_DIR).glob("*.beancount")]
    out += [relative(root, p) for p in folder.glob(IMPORT_CONFIG_NAME)]  # an earlier version's: removed
    return sorted(out)


def _write_all(root: Path, wanted: dict[str, str]) -> list[str]:
    written = []
    # months and openings first, the files that include them last: a reader never sees an
    # include of a file that is not there yet
    order = sorted(wanted, key=lambda rel: (rel.count("/") == 1, rel))
    for rel in order:
        path = root / rel
        text = wanted[rel]
        try:
            if path.read_text(encoding="utf-8") == text:
                continue
        except FileNotFoundError:
            pass
        make_private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        write_private(tmp, text.encode("utf-8"))  # 0600, as every file of the books
        os.replace(tmp, path)
        written.append(rel)
    for rel in ledger_files(root):
        if rel not in wanted:
            (root / rel).unlink()
            written.append(rel)
    return written


# -- check: rebuild from the journal and compare ----------------------------------------------


class LedgerRebuild:
    """Rebuilds the ledger from the journal as `verify` streams it, then compares (a `Check`).

        rebuild = LedgerRebuild(books_root)
        for path, directive, errors in journal_directives(books):
            if directive is not None:
                rebuild.feed(path, directive)
        faults = rebuild.finish()
    """

    def __init__(self, books_root: Path | str) -> None:
        self.root = Path(books_root)
        self.days: dict[Path, DayAggregator] = {}
        self.genesis: Genesis | None = None
        self._path: Path | None = None
        self._agg: DayAggregator | None = None

    def feed(self, path: Path, directive: Any, entry: Entry | None = None, state: Any = None) -> None:
        agg = self._agg
        if path != self._path or agg is None:
            self._path = path
            rel = relative(self.root, Path(path))
            agg = self._agg = self.days.setdefault(Path(path), DayAggregator(rel, day_of(rel)))
        if entry is not None:  # converted once by the caller (`verify`): the same sums as `feed`
            agg.feed_entry(entry)
        else:
            agg.feed(directive)
        if self.genesis is None and agg.genesis is not None:
            self.genesis = Genesis.of(agg.genesis, agg.journal)

    def expected(self) -> dict[str, str]:
        books = Books(self.root)
        blocks = []
        for path in books.journal_files():
            rel = relative(self.root, path)
            day = day_of(rel)
            if day is None:
                continue
            agg = self.days.get(path) or self.days.get(Path(path)) or DayAggregator(rel, day)
            blocks.append(day_block(agg))
        return build_files(self.genesis, blocks)

    def finish(self) -> list[Fault]:
        """Every ledger entry that differs from a fresh rebuild ([] when there is no ledger yet)."""
        if not (self.root / LEDGER_MAIN).is_file():
            return []
        return _compare_files(self.root, self.expected())


def checker(books_root: Path) -> Check:
    return LedgerRebuild(books_root)


def compare(books_root: Path | str) -> list[Fault]:
    """Rebuild the ledger from the journal in memory; a Fault for every ledger entry that differs."""
    root = Path(books_root)
    rebuild = LedgerRebuild(root)
    for path, directive, _errors in journal_directives(Books(root)):
        if directive is not None:
            rebuild.feed(path, directive)
    return rebuild.finish()


def rebuild_files(books_root: Path | str) -> dict[str, str]:
    """The ledger a fresh rebuild from the journal gives (relative path -> text)."""
    root = Path(books_root)
    rebuild = LedgerRebuild(root)
    for path, directive, _errors in journal_directives(Books(root)):
        if directive is not None:
            rebuild.feed(path, directive)
    return rebuild.expected()


def _journal_of(unit_text: str) -> str:
    """The journal day file a ledger entry cites."""
    return entry_meta(unit_text).get("journal", "-")


def _compare_files(root: Path, expected: dict[str, str]) -> list[Fault]:
    faults: list[Fault] = []
    on_disk = set(ledger_files(root))
    for rel in sorted(set(expected) | on_disk, key=lambda r: (r.count("/") == 1, r)):
        path = str(root / rel)
        want = expected.get(rel)
        if want is None:
            faults.append(Fault(path, 1, "-", "ledger.extra_file",
                                "a ledger file the journal does not give (not derivable from the journal)"))
            continue
        try:
            have = (root / rel).read_text(encoding="utf-8")
        except FileNotFoundError:
            first = text_units(want)[0]
            journal = _journal_of(first[0].text) if first else "-"
            faults.append(Fault(path, 0, journal, "ledger.missing_file",
                                "the journal gives this ledger file; it is missing"))
            continue
        if have == want:
            continue
        faults += _compare_file(path, have, want)
    return faults


def _compare_file(path: str, have: str, want: str) -> list[Fault]:
    faults: list[Fault] = []
    if INVERT_OPTION not in have:  # written before the option (a display option, no figure changes)
        want = "".join(line for line in want.splitlines(keepends=True) if not line.endswith(INVERT_OPTION + "\n"))
    if f"  {NAME_ZH_META}: " not in have:  # written before the Chinese names (display metadata)
        want = "".join(line for line in want.splitlines(keepends=True) if not line.startswith(f"  {NAME_ZH_META}: "))
    have_units, have_other = text_units(have)
    want_units, want_other = text_units(want)
    if [line for _, line in have_other] != [line for _, line in want_other]:
        lineno = have_other[-1][0] + 1 if have_other else 1
        for i, (n, line) in enumerate(have_other):
            if i >= len(want_other) or want_other[i][1] != line:
                lineno = n
                break
        faults.append(Fault(path, lineno, "-", "ledger.header",
                            "options or includes differ from what the journal gives"))
    wanted: dict[str, list] = {}
    for u in want_units:
        wanted.setdefault(u.key, []).append(u)
    seen: dict[str, int] = {}
    for u in have_units:
        n = seen.get(u.key, 0)
        seen[u.key] = n + 1
        options = wanted.get(u.key, [])
        if n >= len(options):
            faults.append(Fault(path, u.lineno, _journal_of(u.text), "ledger.extra",
                                f"entry not derivable from the journal: {u.text.splitlines()[0]}"))
            continue
        w = options[n]
        if w.text != u.text:
            journal = _journal_of(w.text)
            faults.append(Fault(path, u.lineno, journal, "ledger.entry",
                                f"{u.text.splitlines()[0]}: no longer matches {journal}: {_line_diff(u.text, w.text)}"))
    for key, options in wanted.items():
        for w in options[seen.get(key, 0):]:
            after = [u.lineno for u in have_units if u.key > key]
            faults.append(Fault(path, min(after) if after else len(have.splitlines()) + 1, _journal_of(w.text),
                                "ledger.missing",
                                f"the journal gives {w.text.splitlines()[0]}; the ledger lacks it"))
    return faults


def _line_diff(have: str, want: str) -> str:
    h, w = have.splitlines(), want.splitlines()
    notes = []
    for line in h:
        if line not in w:
            notes.append(f"ledger has `{line.strip()}`")
    for line in w:
        if line not in h:
            notes.append(f"journal gives `{line.strip()}`")
    return "; ".join(notes[:6]) or "lines reordered"


# -- the file Fava opens ----------------------------------------------------------------------------------


def ledger_file(books_root: Path | str, period: str | None = None) -> Path:
    root = Path(books_root)
    if period is None:
        return root / LEDGER_MAIN
    if not re.fullmatch(r"\d{4}-\d\d", period):
        raise ValueError(f"--period: {period!r} is not YYYY-MM")
    path = root / period_file(period)
    if not path.is_file():
        have = sorted(p.stem.removeprefix("period-") for p in (root / LEDGER_DIR).glob("period-*.beancount"))
        raise FileNotFoundError(f"no period {period} in the ledger of {root} (periods: {', '.join(have) or 'none'})")
    return path
