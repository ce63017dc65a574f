"""The pool's bank statement: a Chinese bank's CSV export of the backing pool's account.

Default format (UTF-8, with or without BOM, or GBK as Excel saves it in China), one
header row, then one line per bank transaction:

    交易日期,交易时间,收入金额,支出金额,账户余额,对方户名,对方账号,摘要,交易流水号
    2026-03-02,10:15:00,500.00,,500.00,s1,6222020000000001,保证金 s1,B20260302001
    20260306,091500,,"1,234.50",-734.50,张三,6222020000000099,提现 E000000012,B20260306001

| column     | what                                                         |
|------------|--------------------------------------------------------------|
| 交易日期    | date, `YYYY-MM-DD` or `YYYYMMDD`                               |
| 交易时间    | time, `HH:MM:SS` or `HHMMSS` (may be empty)                     |
| 收入金额    | money in (credit), empty or 0 when the line is a debit          |
| 支出金额    | money out (debit), empty or 0 when the line is a credit         |
| 账户余额    | the account's balance after the line                          |
| 对方户名    | counterparty's name (a merchant's deposit: its id, or a name mapped to it) |
| 对方账号    | counterparty's account number                                 |
| 摘要       | the bank's memo (a payout's id, e.g. `E000000012`, lets it match by reference) |
| 交易流水号  | the bank's serial number of the line: unique, the line's identity |

Amounts may carry thousands separators (`1,234.50`) and at most 2 decimals; every
number is a Decimal. Lines may come oldest or newest first (the order is detected;
within a day, lines are ordered by time, then as in the file). A few lines before
the header (account name, period) are skipped. Other banks: pass a
`StatementColumns` naming their columns (`None` for a column they lack; `amount` for
one signed amount column instead of in/out columns).

A malformed date or amount raises `FormatError` naming the line and the column: a
statement is read whole or not at all.

`PoolStatementImporter` is the beangulp importer of this file (identify, extract,
archive, and Fava's import page). The statement is *matched* against the books,
and pending payouts settled, by `ledger_service.importing.reconcile`
(`ledger-service reconcile`): the journal is written by the engine only.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import beangulp
from beancount.core import amount as bc_amount
from beancount.core import data

from .common import (
    HEADER_SEARCH_LINES,
    FormatError,
    NamedImporter,
    head_lines,
    parse_cny,
    parse_day,
    parse_time,
    read_text,
    rows_of,
    split_row,
)

POOL_ACCOUNT = "Assets:Pool:Backing"
PAYOUT_RESERVE_ACCOUNT = "Assets:Pool:PayoutReserve"
# The bank account holds Backing + PayoutReserve: a balance assertion on their parent
# account sums both (Beancount balance assertions include sub-accounts).
BANK_BALANCE_ACCOUNT = "Assets:Pool"
CURRENCY = "CNY"
SERIAL_META = "bank_serial"
# The journal's payout_settle entries carry the bank's serial as `bank_reference`.
REFERENCE_META = "bank_reference"
DUPLICATE_META = "__duplicate__"
SERIAL_MAX = 200


@dataclass(frozen=True)
class StatementColumns:
    """The names of a bank export's columns (`None`: the bank has no such column)."""

    date: str = "交易日期"
    time: str | None = "交易时间"
    income: str | None = "收入金额"
    expense: str | None = "支出金额"
    balance: str | None = "账户余额"
    counterparty: str | None = "对方户名"
    counterparty_account: str | None = "对方账号"
    memo: str | None = "摘要"
    serial: str | None = "交易流水号"
    # One signed amount column (credits positive) instead of `income` and `expense`.
    amount: str | None = None

    def __post_init__(self) -> None:
        if self.amount is None and (self.income is None or self.expense is None):
            raise ValueError("StatementColumns: give both income and expense columns, or one signed amount column")

    def required(self) -> list[str]:
        names = []
        for f in fields(self):
            name = getattr(self, f.name)
            if name is None:
                continue
            if self.amount is not None and f.name in ("income", "expense"):
                continue
            names.append(name)
        return names


DEFAULT_COLUMNS = StatementColumns()


@dataclass(frozen=True)
class StatementLine:
    line: int  # line number in the file (1 = its first line)
    date: date
    time: str  # 'HH:MM:SS' or ''
    amount: Decimal  # signed: credits (money in) positive, debits negative
    balance: Decimal | None  # the account's balance after this line
    counterparty: str
    counterparty_account: str
    memo: str
    serial: str

    @property
    def credit(self) -> bool:
        return self.amount > 0

    def content(self) -> tuple:
        return (self.date, self.time, self.amount, self.balance, self.counterparty, self.counterparty_account,
                self.memo)

    def to_json(self) -> dict:
        return {
            "line": self.line, "date": self.date.isoformat(), "time": self.time, "amount": str(self.amount),
            "balance": None if self.balance is None else str(self.balance), "counterparty": self.counterparty,
            "counterparty_account": self.counterparty_account, "memo": self.memo, "serial": self.serial,
        }


@dataclass(frozen=True)
class DuplicateLine:
    line: int
    first_line: int
    serial: str
    same: bool  # identical to the first line (a repeated export line) or not (a conflict)
    item: StatementLine | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        return {"line": self.line, "first_line": self.first_line, "serial": self.serial, "identical": self.same}


@dataclass
class Statement:
    path: str
    encoding: str
    header_line: int
    lines: list[StatementLine]  # unique serials, oldest first
    duplicates: list[DuplicateLine] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def first_day(self) -> date | None:
        return self.lines[0].date if self.lines else None

    @property
    def last_day(self) -> date | None:
        return self.lines[-1].date if self.lines else None

    def days(self) -> list[date]:
        return list(OrderedDict.fromkeys(line.date for line in self.lines))

    def closing_balances(self) -> dict[date, Decimal]:
        """The account's balance at the end of each day (after the day's last line)."""
        out: dict[date, Decimal] = {}
        for line in self.lines:
            if line.balance is not None:
                out[line.date] = line.balance
        return out

    def opening_balance(self) -> Decimal | None:
        if not self.lines or self.lines[0].balance is None:
            return None
        return self.lines[0].balance - self.lines[0].amount


def find_header(rows: list[tuple[int, list[str]]], columns: StatementColumns) -> int | None:
    """The index in `rows` of the header row (all configured columns present), or None."""
    wanted = set(columns.required())
    for index, (_line, cells) in enumerate(rows[:HEADER_SEARCH_LINES]):
        if wanted <= set(cells):
            return index
    return None


def looks_like_statement(path: str | Path, columns: StatementColumns = DEFAULT_COLUMNS) -> bool:
    wanted = set(columns.required())
    return any(wanted <= set(split_row(line)) for line in head_lines(path))


def parse_statement(path: str | Path, columns: StatementColumns = DEFAULT_COLUMNS) -> Statement:
    """Read a statement whole: every line checked, or `FormatError` naming line and column."""
    text, encoding = read_text(path)
    rows = list(rows_of(text, path))
    if not rows:
        raise FormatError(path, 1, None, "empty file: expected the header row "
                                         + ",".join(columns.required()))
    at = find_header(rows, columns)
    if at is None:
        raise FormatError(path, rows[0][0], None, "no header row with the columns "
                          + ",".join(columns.required()) + f" (found {','.join(rows[0][1])})")
    header_line, header = rows[at]
    index = {name: header.index(name) for name in columns.required()}
    parsed: list[StatementLine] = []
    for line, cells in rows[at + 1:]:
        parsed.append(_parse_line(path, line, cells, header, index, columns))

    # Repeated serials: the first line in the file stands, the others are reported.
    seen: dict[str, StatementLine] = {}
    unique: list[StatementLine] = []
    duplicates: list[DuplicateLine] = []
    for item in parsed:
        first = seen.get(item.serial)
        if first is not None:
            duplicates.append(DuplicateLine(item.line, first.line, item.serial, item.content() == first.content(),
                                            item))
            continue
        seen[item.serial] = item
        unique.append(item)
    if len(unique) > 1 and unique[0].date > unique[-1].date:
        unique.reverse()  # newest first in the file
    unique.sort(key=lambda item: (item.date, item.time))  # stable: the file's order within a time
    statement = Statement(str(path), encoding, header_line, unique, duplicates)
    statement.warnings = _balance_breaks(statement, columns)
    for dup in duplicates:
        if not dup.same:
            statement.warnings.append(f"line {dup.line}: serial {dup.serial} repeats line {dup.first_line} "
                                      f"with different content; line {dup.first_line} is used")
    return statement


def _parse_line(path, line: int, cells: list[str], header: list[str], index: dict[str, int],
                columns: StatementColumns) -> StatementLine:
    if len(cells) > len(header) and any(cells[len(header):]):
        raise FormatError(path, line, None, f"{len(cells)} cells, the header has {len(header)}")

    def cell(name: str | None) -> str:
        if name is None:
            return ""
        at = index[name]
        return cells[at] if at < len(cells) else ""

    day = parse_day(cell(columns.date), path=path, line=line, column=columns.date)
    time = parse_time(cell(columns.time), path=path, line=line, column=columns.time) if columns.time else ""
    if columns.amount is not None:
        amount = parse_cny(cell(columns.amount), path=path, line=line, column=columns.amount, signed=True,
                           empty_is_zero=False)
        if amount == 0:
            raise FormatError(path, line, columns.amount, "the amount is zero")
    else:
        income = parse_cny(cell(columns.income), path=path, line=line, column=columns.income)
        expense = parse_cny(cell(columns.expense), path=path, line=line, column=columns.expense)
        both = f"{columns.income}/{columns.expense}"
        if income and expense:
            raise FormatError(path, line, both, "a line is money in or money out, not both")
        if not income and not expense:
            raise FormatError(path, line, both, "no amount in either column")
        amount = income if income else -expense
    balance = None
    if columns.balance is not None:
        balance = parse_cny(cell(columns.balance), path=path, line=line, column=columns.balance, signed=True,
                            empty_is_zero=False)
    counterparty = cell(columns.counterparty)
    counterparty_account = cell(columns.counterparty_account)
    memo = cell(columns.memo)
    if columns.serial is not None:
        serial = cell(columns.serial)
        if not serial:
            raise FormatError(path, line, columns.serial, "the bank's serial number is empty")
        if len(serial) > SERIAL_MAX or any(ord(ch) < 32 or ord(ch) == 127 for ch in serial):
            raise FormatError(path, line, columns.serial, f"{serial[:40]!r}: at most {SERIAL_MAX} printable characters")
    else:  # a bank without serials: the line's content is its identity
        digest = hashlib.sha256("|".join(map(str, (day, time, amount, balance, counterparty,
                                                   counterparty_account, memo))).encode("utf-8"))
        serial = "L" + digest.hexdigest()[:20]
    return StatementLine(line, day, time, amount, balance, counterparty, counterparty_account, memo, serial)


def _balance_breaks(statement: Statement, columns: StatementColumns) -> list[str]:
    """Lines whose 账户余额 is not the previous balance plus the line's amount."""
    out = []
    previous: StatementLine | None = None
    for item in statement.lines:
        if (previous is not None and previous.balance is not None and item.balance is not None
                and previous.balance + item.amount != item.balance):
            out.append(f"line {item.line}: {columns.balance} {item.balance} is not {previous.balance} "
                       f"(line {previous.line}) {'+' if item.amount > 0 else '-'} {abs(item.amount)}")
        previous = item
    return out


def held_serials(existing: data.Entries | None) -> dict[str, data.Transaction]:
    """Bank serials the books already hold (imported lines and settled payouts' references),
    each with the first entry that holds it."""
    held: dict[str, data.Transaction] = {}
    for entry in existing or ():
        if isinstance(entry, data.Transaction) and entry.meta:
            for key in (SERIAL_META, REFERENCE_META):
                value = entry.meta.get(key)
                if isinstance(value, str) and value:
                    held.setdefault(value, entry)
    return held


class PoolStatementImporter(NamedImporter, beangulp.Importer):
    """beangulp importer of the pool's bank statement (see the module docstring).

    extract() gives one transaction per statement line, with one posting: money in to `account` (the pool,
    `Assets:Pool:Backing`), money out from `payout_account` (payouts are paid from
    `Assets:Pool:PayoutReserve`); then, for every day of the statement, a `balance`
    assertion of the bank's closing balance on `balance_account` (`Assets:Pool`,
    whose sub-accounts are Backing + PayoutReserve), dated the next day as Beancount
    balance semantics require. A line whose serial the books already hold (as
    `bank_serial` of an imported line or `bank_reference` of a settled payout), a line
    repeating an earlier serial, and a day's balance the books already assert are marked
    `__duplicate__`: beangulp prints them commented out (`extract -e`), Fava's import page
    shows them unticked. Nothing is left out silently.
    """

    def __init__(self, columns: StatementColumns = DEFAULT_COLUMNS, account: str = POOL_ACCOUNT,
                 payout_account: str = PAYOUT_RESERVE_ACCOUNT, balance_account: str | None = BANK_BALANCE_ACCOUNT,
                 currency: str = CURRENCY, name: str | None = None, filename: str = "pool-statement.csv") -> None:
        self.columns = columns
        self.pool_account = account
        self.payout_account = payout_account
        self.balance_account = balance_account
        self.currency = currency
        self._name = name
        self._filename = filename

    def identify(self, filepath: str) -> bool:
        return looks_like_statement(filepath, self.columns)

    def account(self, filepath: str) -> data.Account:
        return self.pool_account

    def date(self, filepath: str) -> date | None:
        """The statement's last day (the archive's file date); None for an unreadable file
        (its error is raised by extract, so one bad file does not hide the others in Fava)."""
        try:
            return parse_statement(filepath, self.columns).last_day
        except FormatError:
            return None

    def extract(self, filepath: str, existing: data.Entries) -> data.Entries:
        statement = parse_statement(filepath, self.columns)
        held = held_serials(existing)
        entries: list = []
        by_serial: dict[str, data.Transaction] = {}
        for item in statement.lines:
            txn = self._transaction(filepath, item)
            if item.serial in held:  # shown commented out, not dropped: the reader sees why it is not new
                txn.meta[DUPLICATE_META] = held[item.serial]
            by_serial[item.serial] = txn
            entries.append(txn)
        for dup in statement.duplicates:
            first = by_serial.get(dup.serial)
            if first is None or dup.item is None:
                continue  # (a parsed statement always sets both)
            txn = self._transaction(filepath, dup.item)
            txn.meta[DUPLICATE_META] = first
            entries.append(txn)
        if self.balance_account:
            balances_held = {(e.account, e.date): e for e in existing or () if isinstance(e, data.Balance)}
            last_line = {item.date: item for item in statement.lines if item.balance is not None}
            for day, balance in statement.closing_balances().items():
                when = day + timedelta(days=1)
                meta = data.new_metadata(filepath, last_line[day].line)
                meta["bank_day"] = day.isoformat()
                if (self.balance_account, when) in balances_held:
                    meta[DUPLICATE_META] = balances_held[(self.balance_account, when)]
                entries.append(data.Balance(meta, when, self.balance_account,
                                            bc_amount.Amount(balance, self.currency), None, None))
        return entries

    def _transaction(self, filepath: str, item: StatementLine) -> data.Transaction:
        meta = data.new_metadata(filepath, item.line)
        meta[SERIAL_META] = item.serial
        if item.time:
            meta["bank_time"] = item.time
        if item.counterparty_account:
            meta["counterparty_account"] = item.counterparty_account
        if item.balance is not None:
            meta["bank_balance"] = item.balance
        account = self.pool_account if item.credit else self.payout_account
        posting = data.Posting(account, bc_amount.Amount(item.amount, self.currency), None, None, None, None)
        return data.Transaction(meta, item.date, "*", item.counterparty or None, item.memo or "",
                                data.EMPTY_SET, data.EMPTY_SET, [posting])

    def deduplicate(self, entries: data.Entries, existing: data.Entries) -> None:
        """Mark, by bank serial, lines already in `existing` or earlier in `entries`.

        Serials identify bank lines exactly, so the fuzzy comparison of beangulp's
        default (amounts and dates within two days) is not used: two payouts of the
        same amount on the same day are not duplicates of each other.
        """
        held: dict[str, object] = {}
        for entry in existing or ():
            if isinstance(entry, data.Transaction) and entry.meta:
                for key in (SERIAL_META, REFERENCE_META):
                    value = entry.meta.get(key)
                    if isinstance(value, str) and value:
                        held.setdefault(value, entry)
        balances = {(e.account, e.date): e for e in existing or () if isinstance(e, data.Balance)}
        for entry in entries:
            if DUPLICATE_META in entry.meta:
                continue
            if isinstance(entry, data.Transaction):
                serial = entry.meta.get(SERIAL_META)
                if serial in held:
                    entry.meta[DUPLICATE_META] = held[serial]
                elif serial:
                    held[serial] = entry
            elif isinstance(entry, data.Balance):
                day_key = (entry.account, entry.date)
                if day_key in balances:
                    entry.meta[DUPLICATE_META] = balances[day_key]
                else:
                    balances[day_key] = entry

