"""Bulk input through the engine: order exports, and the pool's bank statement.

`import_orders(engine, path)` books every row of an order export (importers/orders.py)
as an `order` event, by the same rules and refusals as the API, one row at a time
(each row all or nothing), idempotent by order id.

`reconcile(engine, statement_path)` matches the pool's bank statement
(importers/bank.py) to the books, settles through the engine the pending payouts the
bank has paid, and reports what matched, what was settled now, what is left on
either side, and the difference between the bank's balance and the books'
(`Assets:Pool:Backing` + `Assets:Pool:PayoutReserve`) at the end of each day.

Matching (documented for finance in docs/importing.md):

- money out ↔ payouts, in this order:
  1. by reference: a payout settled with this line's serial as `bank_reference`
     (already settled: matched, nothing booked);
  2. by memo: the line's 摘要 names a payout id (`E000000042`) of the same amount
     (pending: settled now);
  3. by amount: a pending payout of exactly this amount, requested 0 to
     `window_days` days before the line; several candidates are narrowed to the one
     whose holder id is the counterparty (or in the memo); if still several, the line
     is left unmatched as ambiguous (never settle the wrong holder's payout);
- money in ↔ deposits: same amount, payer = the deposit's merchant (对方户名, or a
  name mapped to the id with `payers`, or the id in the memo; `"platform"` for a
  platform injection), booked within `window_days` days of the line (the nearest).

Each statement line and each book item is matched at most once; a repeated serial
(duplicate line) is reported and ignored. Running `reconcile` twice books nothing
the second time: settled payouts are no longer pending, and their serials match by
reference.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable, Mapping

from sqlalchemy import select

from . import accounts as A
from .amounts import ZERO, fmt
from .engine import Engine
from .errors import Refusal
from .rules.events import Order, PayoutSettle
from .store.models import DayRow, EventRow, PayoutRow

from importers.bank import DEFAULT_COLUMNS, Statement, StatementColumns, StatementLine, parse_statement
from importers.common import FormatError
from importers.orders import OrderRow, read_orders, row_day, row_event

PAYOUT_ID_RE = re.compile(r"(?<![A-Za-z0-9])E\d{9}(?![0-9])")
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
_POOL_POSTING_RE = re.compile(
    rf"^  ({re.escape(A.POOL)}|{re.escape(A.POOL_PAYOUTS)})  (-?[0-9]+(?:\.[0-9]+)?) CNY$", re.M)
_META_RE = re.compile(r'^  ([a-z_]+): "(.*)"$', re.M)
PLATFORM = "platform"
_CHUNK = 500
CNY_ZERO = Decimal("0.00")


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _meta(text: str) -> dict[str, str]:
    """The entry-level metadata of a journal entry's text (postings' metadata are indented deeper)."""
    return {key: value for key, value in _META_RE.findall(text)}


# -- orders ------------------------------------------------------------------------------

BOOKED, ALREADY, REJECTED = "booked", "already booked", "rejected"


@dataclass(frozen=True)
class RowResult:
    line: int
    order_id: str
    status: str  # booked | already booked | rejected
    event: str | None = None  # the order's event id (booked now or before)
    rule: str | None = None  # why a row was rejected: a Refusal's rule, or input.* for a parse error
    detail: str | None = None

    @property
    def reason(self) -> str:
        return f"[{self.rule}] {self.detail}" if self.rule else ""

    def to_json(self) -> dict:
        out = {"line": self.line, "order_id": self.order_id, "status": self.status, "event": self.event}
        if self.rule:
            out.update(rule=self.rule, detail=self.detail)
        return out


@dataclass
class ImportReport:
    path: str
    encoding: str = ""
    rows: list[RowResult] = field(default_factory=list)

    def _of(self, status: str) -> list[RowResult]:
        return [r for r in self.rows if r.status == status]

    @property
    def booked(self) -> list[RowResult]:
        return self._of(BOOKED)

    @property
    def already_booked(self) -> list[RowResult]:
        return self._of(ALREADY)

    @property
    def rejected(self) -> list[RowResult]:
        return self._of(REJECTED)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def to_json(self) -> dict:
        return {
            "file": self.path, "encoding": self.encoding, "rows": len(self.rows),
            "booked": len(self.booked), "already_booked": len(self.already_booked),
            "rejected": len(self.rejected), "ok": self.ok,
            "results": [r.to_json() for r in sorted(self.rows, key=lambda r: r.line)],
        }

    def to_text(self) -> str:
        out = [f"orders from {self.path} ({self.encoding}): {len(self.rows)} rows — booked {len(self.booked)}, "
               f"already booked {len(self.already_booked)}, rejected {len(self.rejected)}"]
        for r in sorted(self.rejected, key=lambda r: r.line):
            out.append(f"  line {r.line}: {r.order_id or '(no id)'}: {r.reason}")
        return "\n".join(out) + "\n"

    def write(self, path: str | Path) -> None:
        _write_report(path, self.to_json(), self.to_text())


def _order_terms(text: str) -> dict[str, str]:
    meta = _meta(text)
    return {key: meta.get(key, "") for key in ("buyer", "merchant", "amount_cny", "ship_region")}


def import_orders(engine: Engine, path: str | Path, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Book every row of an order export through the rules; see the module docstring.

    A row whose order id is already booked with the same terms (buyer, merchant,
    amount, ship region, and date when the row gives one) is "already booked" and
    books nothing; with other terms it is rejected (`order.duplicate_id`). Rows are
    booked in date order (rows without a date: today), each in its own commit: a
    refused row books nothing and the others go on. `progress(done, total)` is called
    after each row. A file that is not an order export raises `FormatError`.
    """
    orders = read_orders(path)
    report = ImportReport(str(path), orders.encoding)
    total = len(orders.rows)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    planned: list[tuple[OrderRow, Order, date | None]] = []
    for row in orders.rows:
        try:
            event = row_event(row)
            day = row_day(row, path)
        except Refusal as refusal:
            report.rows.append(RowResult(row.line, row.order_id, REJECTED, rule=refusal.rule, detail=refusal.detail))
            tick()
            continue
        except FormatError as exc:
            report.rows.append(RowResult(row.line, row.order_id, REJECTED, rule="input.bad_date",
                                         detail=f"{exc.column}: {exc.message}"))
            tick()
            continue
        planned.append((row, event, day))
    today = engine.today()
    planned.sort(key=lambda item: item[2] or today)  # stable: the file's order within a day
    for row, event, day in planned:
        report.rows.append(_book_order(engine, row, event, day))
        tick()
    report.rows.sort(key=lambda r: r.line)
    return report


def _book_order(engine: Engine, row: OrderRow, event: Order, day: date | None) -> RowResult:
    booked_id = engine.event_for_order(event.order_id)
    if booked_id is not None:
        found = engine.event(booked_id)
        mine = {key: "" for key in ("buyer", "merchant", "amount_cny", "ship_region")}
        mine.update(dict(event.to_meta()))
        mine.pop("order_id", None)
        theirs = _order_terms(found["entry"])
        differs = [key for key in mine if mine[key] != theirs[key]]
        if day is not None and day.isoformat() != found["date"]:
            differs.append("date")
        if differs:
            return RowResult(row.line, event.order_id, REJECTED, booked_id, "order.duplicate_id",
                             f"order_id: order {event.order_id!r} is already booked ({booked_id} on {found['date']}) "
                             f"with another {', '.join(differs)}")
        return RowResult(row.line, event.order_id, ALREADY, booked_id)
    try:
        booked = engine.submit(event, day)
    except Refusal as refusal:
        return RowResult(row.line, event.order_id, REJECTED, rule=refusal.rule, detail=refusal.detail)
    return RowResult(row.line, event.order_id, BOOKED, booked.event_id)


# -- reconciliation ----------------------------------------------------------------------

@dataclass
class BookPayout:
    id: str
    holder: str
    cny: Decimal
    status: str
    requested: date
    bank_reference: str | None
    settled_on: date | None = None


@dataclass
class BookDeposit:
    id: str
    day: date
    cny: Decimal
    payer: str  # the merchant id, or "platform"


@dataclass
class Match:
    line: StatementLine
    kind: str  # payout | deposit
    item: str  # the payout's or the deposit's event id
    how: str  # reference | memo | amount | amount+payer
    status: str  # settled before | settled now | to settle (dry run) | deposit
    book_day: date | None  # when the books hold the line's money movement (None: not yet)
    settle_event: str | None = None
    holder: str | None = None

    def to_json(self) -> dict:
        return {
            "line": self.line.line, "serial": self.line.serial, "date": self.line.date.isoformat(),
            "amount": fmt(self.line.amount), "counterparty": self.line.counterparty, "kind": self.kind,
            "id": self.item, "holder": self.holder, "how": self.how, "status": self.status,
            "settle_event": self.settle_event, "book_day": self.book_day.isoformat() if self.book_day else None,
        }


@dataclass
class Unmatched:
    line: StatementLine
    reason: str

    def to_json(self) -> dict:
        return {**self.line.to_json(), "reason": self.reason}


@dataclass
class DayBalance:
    day: date
    bank: Decimal
    books: Decimal
    in_transit: Decimal  # matched money the bank and the books hold on different days
    closed: bool  # the books' day is closed (else: the books as of now)

    @property
    def difference(self) -> Decimal:
        return self.bank - self.books

    @property
    def unexplained(self) -> Decimal:
        return self.difference - self.in_transit

    def to_json(self) -> dict:
        return {"date": self.day.isoformat(), "bank": fmt(self.bank), "books": fmt(self.books),
                "difference": fmt(self.difference), "in_transit": fmt(self.in_transit),
                "unexplained": fmt(self.unexplained), "books_day_closed": self.closed}


@dataclass
class ReconcileReport:
    statement: Statement
    window_days: int
    dry_run: bool = False
    matched: list[Match] = field(default_factory=list)
    unmatched_lines: list[Unmatched] = field(default_factory=list)
    unmatched_items: list[dict] = field(default_factory=list)
    balances: list[DayBalance] = field(default_factory=list)
    opening: dict | None = None

    @property
    def settled_now(self) -> list[Match]:
        return [m for m in self.matched if m.status == "settled now"]

    @property
    def ok(self) -> bool:
        """Every line matched, no book item left, no unexplained difference."""
        return (not self.unmatched_lines and not self.unmatched_items
                and all(b.unexplained == 0 for b in self.balances))

    def to_json(self) -> dict:
        s = self.statement
        return {
            "ok": self.ok,
            "statement": {
                "file": s.path, "encoding": s.encoding, "lines": len(s.lines) + len(s.duplicates),
                "unique_lines": len(s.lines), "first_day": s.first_day.isoformat() if s.first_day else None,
                "last_day": s.last_day.isoformat() if s.last_day else None,
                "duplicates": [d.to_json() for d in s.duplicates], "warnings": list(s.warnings),
            },
            "window_days": self.window_days,
            "dry_run": self.dry_run,
            "matched": [m.to_json() for m in self.matched],
            "settled_now": [m.to_json() for m in self.settled_now],
            "unmatched_lines": [u.to_json() for u in self.unmatched_lines],
            "unmatched_book_items": self.unmatched_items,
            "opening": self.opening,
            "balances": [b.to_json() for b in self.balances],
        }

    def to_text(self) -> str:
        s = self.statement
        out = []
        period = f"{s.first_day} … {s.last_day}" if s.lines else "no lines"
        out.append(f"Reconciliation of {s.path} ({s.encoding}): {period}, {len(s.lines)} lines"
                   + (f" + {len(s.duplicates)} duplicate(s)" if s.duplicates else "")
                   + f"; window {self.window_days} days" + ("; DRY RUN (nothing booked)" if self.dry_run else ""))
        out.append("")
        out.append(f"Matched: {len(self.matched)} line(s)")
        for m in self.matched:
            who = f" of {m.holder}" if m.holder else ""
            extra = f" -> {m.settle_event}" if m.settle_event else ""
            out.append(f"  line {m.line.line:>4}  {m.line.date}  {_signed(m.line.amount):>14}  {m.kind} {m.item}{who}"
                       f"  by {m.how}  [{m.status}{extra}]")
        out.append(f"Settled now: {len(self.settled_now)} payout(s)")
        for m in self.settled_now:
            out.append(f"  payout {m.item}{' of ' + m.holder if m.holder else ''}: {fmt(-m.line.amount)} CNY, "
                       f"bank serial {m.line.serial}, booked {m.settle_event} on {m.book_day}")
        out.append(f"Unmatched statement lines: {len(self.unmatched_lines)}")
        for u in self.unmatched_lines:
            out.append(f"  line {u.line.line:>4}  {u.line.date}  {_signed(u.line.amount):>14}  "
                       f"{u.line.counterparty or '-'}  {u.line.memo!r}  serial {u.line.serial}: {u.reason}")
        out.append(f"Unmatched book items: {len(self.unmatched_items)}")
        for item in self.unmatched_items:
            out.append(f"  {item['kind']} {item['id']}: {item['cny']} CNY, {item['what']}")
        if s.duplicates:
            out.append(f"Duplicate lines (ignored): {len(s.duplicates)}")
            for d in s.duplicates:
                out.append(f"  line {d.line} repeats serial {d.serial} of line {d.first_line}"
                           + ("" if d.same else " WITH DIFFERENT CONTENT"))
        if s.warnings:
            out.append(f"Statement warnings: {len(s.warnings)}")
            out += [f"  {w}" for w in s.warnings]
        if self.balances:
            out.append("")
            out.append("Balance per day: bank 账户余额 at the end of the day vs books Backing + PayoutReserve "
                       "at the close of the day")
            out.append(f"  {'date':<10}  {'bank':>14}  {'books':>14}  {'difference':>12}  {'in transit':>12}  "
                       f"{'unexplained':>12}")
            for b in self.balances:
                out.append(f"  {b.day.isoformat():<10}  {fmt(b.bank):>14}  {fmt(b.books):>14}  {fmt(b.difference):>12}  "
                           f"{fmt(b.in_transit):>12}  {fmt(b.unexplained):>12}" + ("" if b.closed else "  (day open)"))
        out.append("")
        out.append("RESULT: reconciled" if self.ok else "RESULT: NOT reconciled — see the unmatched items and "
                                                          "unexplained differences above")
        return "\n".join(out) + "\n"

    def write(self, path: str | Path) -> None:
        """The JSON report at `path` and the text report beside it (`.txt`)."""
        _write_report(path, self.to_json(), self.to_text())


def _signed(number: Decimal) -> str:
    return ("+" if number > 0 else "") + fmt(number)


def _write_report(path: str | Path, data: dict, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    target.with_suffix(".txt").write_text(text, encoding="utf-8")


def reconcile(engine: Engine, statement_path: str | Path, window_days: int = 3, *,
              columns: StatementColumns = DEFAULT_COLUMNS, payers: Mapping[str, str] | None = None,
              settle: bool = True) -> ReconcileReport:
    """Match a pool statement to the books; settle the pending payouts it shows paid.

    `payers` maps a bank 对方户名 to a merchant id (or "platform"); `settle=False` is a
    dry run. A settlement is booked on the bank line's date when that day is still
    open, else on the open day. A malformed statement raises `FormatError` before
    anything is booked.
    """
    if window_days < 0:
        raise ValueError("window_days must be >= 0")
    statement = parse_statement(statement_path, columns)
    report = ReconcileReport(statement, window_days, dry_run=not settle)
    if not statement.lines:
        return report
    payers = dict(payers or {})
    window = timedelta(days=window_days)
    first, last = statement.first_day, statement.last_day
    books = _BookSide.load(engine, statement, window)

    matched_payouts: set[str] = set()
    matched_deposits: set[str] = set()
    pending_settle: list[Match] = []
    todo: list[StatementLine] = []

    # 1. and 2. references: serials already settled, payout ids in the memo.
    for line in statement.lines:
        if line.credit:
            todo.append(line)
            continue
        by_ref = books.by_reference.get(line.serial)
        if by_ref is not None and by_ref.cny != -line.amount:
            report.unmatched_lines.append(Unmatched(
                line, f"payout {by_ref.id} was settled with this serial as reference, but it is "
                      f"{fmt(by_ref.cny)} CNY and the line {fmt(-line.amount)} CNY"))
            continue
        if by_ref is not None and by_ref.id not in matched_payouts:
            matched_payouts.add(by_ref.id)
            report.matched.append(Match(line, "payout", by_ref.id, "reference", "settled before", by_ref.settled_on,
                                        holder=by_ref.holder))
            continue
        named = [books.payouts[pid] for pid in PAYOUT_ID_RE.findall(f"{line.memo} {line.counterparty}")
                 if pid in books.payouts]
        if named:
            payout = named[0]
            if payout.id in matched_payouts:
                report.unmatched_lines.append(Unmatched(line, f"names payout {payout.id}, already matched to another line"))
            elif payout.cny != -line.amount:
                report.unmatched_lines.append(Unmatched(
                    line, f"names payout {payout.id} of {fmt(payout.cny)} CNY, but the line is {fmt(-line.amount)} CNY"))
            elif payout.status == "requested":
                matched_payouts.add(payout.id)
                match = Match(line, "payout", payout.id, "memo", "to settle", None, holder=payout.holder)
                report.matched.append(match)
                pending_settle.append(match)
            else:
                report.unmatched_lines.append(Unmatched(
                    line, f"names payout {payout.id}, which is already {payout.status}"
                          + (f" (bank reference {payout.bank_reference})" if payout.bank_reference else "")))
            continue
        todo.append(line)

    # 3. amounts: pending payouts for money out, deposits for money in.
    waiting = [line for line in todo if not line.credit]
    reasons: dict[int, str] = {}
    progress = True
    while progress and waiting:
        progress = False
        for line in list(waiting):
            paid = -line.amount
            candidates = [p for p in books.pending if p.id not in matched_payouts and p.cny == paid
                          and timedelta(0) <= line.date - p.requested <= window]
            if len(candidates) > 1:
                tokens = set(TOKEN_RE.findall(line.memo)) | {line.counterparty, payers.get(line.counterparty, "")}
                narrowed = [p for p in candidates if p.holder in tokens]
                candidates = narrowed or candidates
            if len(candidates) == 1:
                payout = candidates[0]
                matched_payouts.add(payout.id)
                match = Match(line, "payout", payout.id, "amount", "to settle", None, holder=payout.holder)
                report.matched.append(match)
                pending_settle.append(match)
                waiting.remove(line)
                progress = True
            elif candidates:
                reasons[line.line] = ("ambiguous: pending payouts " + ", ".join(p.id for p in candidates)
                                      + f" are all {fmt(paid)} CNY within {window_days} days; put the payout id "
                                        "in the memo or settle by hand")
            else:
                reasons[line.line] = (f"no pending payout of {fmt(paid)} CNY requested within {window_days} days "
                                      "before the line")
    for line in waiting:
        report.unmatched_lines.append(Unmatched(line, reasons[line.line]))

    for line in (item for item in todo if item.credit):
        payer = payers.get(line.counterparty, line.counterparty)
        tokens = set(TOKEN_RE.findall(line.memo)) | {payer}
        candidates = [d for d in books.deposits if d.id not in matched_deposits and d.cny == line.amount
                      and abs(d.day - line.date) <= window and d.payer in tokens]
        if not candidates:
            same_amount = [d for d in books.deposits if d.id not in matched_deposits and d.cny == line.amount
                           and abs(d.day - line.date) <= window]
            why = f"no deposit of {fmt(line.amount)} CNY from {payer or '(no name)'} booked within {window_days} days"
            if same_amount:
                why += " (same amount from " + ", ".join(f"{d.payer} {d.id}" for d in same_amount) + ")"
            report.unmatched_lines.append(Unmatched(line, why))
            continue
        deposit = min(candidates, key=lambda d: (abs(d.day - line.date), d.id))
        matched_deposits.add(deposit.id)
        report.matched.append(Match(line, "deposit", deposit.id, "amount+payer", "deposit", deposit.day,
                                    holder=deposit.payer))

    # Settle, oldest line first (a booking closes the open days before its own).
    if settle:
        for match in sorted(pending_settle, key=lambda m: (m.line.date, m.line.time, m.line.line)):
            open_day = date.fromisoformat(engine.head()["open_day"])
            day = min(max(match.line.date, open_day), engine.today())
            try:
                booked = engine.submit(PayoutSettle(match.item, match.line.serial), day)
            except Refusal as refusal:
                report.matched.remove(match)
                matched_payouts.discard(match.item)
                report.unmatched_lines.append(Unmatched(match.line, f"settling payout {match.item} was refused: "
                                                                    f"[{refusal.rule}] {refusal.detail}"))
                continue
            match.status, match.settle_event, match.book_day = "settled now", booked.event_id, booked.day
            books.payouts[match.item].status = "settled"
    report.matched.sort(key=lambda m: m.line.line)
    report.unmatched_lines.sort(key=lambda u: u.line.line)

    # What the books hold that the bank does not show.
    for payout in sorted(books.pending, key=lambda p: (p.requested, p.id)):
        if payout.id in matched_payouts or payout.status != "requested":
            continue
        report.unmatched_items.append({
            "kind": "payout", "id": payout.id, "holder": payout.holder, "cny": fmt(payout.cny),
            "requested": payout.requested.isoformat(), "days_outstanding": (last - payout.requested).days,
            "what": f"of {payout.holder}, requested {payout.requested}, pending: no bank line pays it "
                    f"({(last - payout.requested).days} days to the statement's end)",
        })
    for payout in books.settled_in_period:
        if payout.id in matched_payouts:
            continue
        report.unmatched_items.append({
            "kind": "settled payout", "id": payout.id, "holder": payout.holder, "cny": fmt(payout.cny),
            "settled_on": payout.settled_on.isoformat(), "bank_reference": payout.bank_reference,
            "what": f"of {payout.holder}, settled on {payout.settled_on} with bank reference "
                    f"{payout.bank_reference!r}, which no line of the statement carries",
        })
    for deposit in books.deposits:
        if deposit.id in matched_deposits or not first <= deposit.day <= last:
            continue
        report.unmatched_items.append({
            "kind": "deposit", "id": deposit.id, "payer": deposit.payer, "cny": fmt(deposit.cny),
            "day": deposit.day.isoformat(),
            "what": f"from {deposit.payer}, booked {deposit.day}: no bank line within {window_days} days",
        })

    _balances(engine, statement, report)
    return report


@dataclass
class _BookSide:
    """What the books hold for a statement's period, read with read-only queries."""

    payouts: dict[str, BookPayout]
    by_reference: dict[str, BookPayout]
    pending: list[BookPayout]
    settled_in_period: list[BookPayout]
    deposits: list[BookDeposit]

    @classmethod
    def load(cls, engine: Engine, statement: Statement, window: timedelta) -> "_BookSide":
        first, last = statement.first_day, statement.last_day
        serials = [line.serial for line in statement.lines]
        named = sorted({pid for line in statement.lines for pid in PAYOUT_ID_RE.findall(f"{line.memo} {line.counterparty}")})
        rows: dict[str, PayoutRow] = {}
        with engine.Session() as session:
            for chunk in _chunks(serials):
                rows.update((r.id, r) for r in session.scalars(select(PayoutRow).where(PayoutRow.bank_reference.in_(chunk))))
            for chunk in _chunks(named):
                rows.update((r.id, r) for r in session.scalars(select(PayoutRow).where(PayoutRow.id.in_(chunk))))
            rows.update((r.id, r) for r in session.scalars(
                select(PayoutRow).where(PayoutRow.status == "requested", PayoutRow.requested <= last)))
            payouts = {pid: BookPayout(r.id, r.holder, r.cny, r.status, r.requested, r.bank_reference)
                       for pid, r in rows.items()}
            # When each settled payout was settled: the day of its payout_settle entry.
            settled_in_period: list[BookPayout] = []
            since = min([p.requested for p in payouts.values() if p.status == "settled"] + [first])
            for event in session.execute(select(EventRow.id, EventRow.day, EventRow.text)
                                         .where(EventRow.kind == "payout_settle", EventRow.day >= since)
                                         .order_by(EventRow.seq)):
                meta = _meta(event.text)
                pid = meta.get("payout")
                found = payouts.get(pid)
                if found is None and first <= event.day <= last:
                    r = session.get(PayoutRow, pid)
                    if r is None:  # pragma: no cover - every settle names a payout
                        continue
                    found = payouts[pid] = BookPayout(r.id, r.holder, r.cny, r.status, r.requested, r.bank_reference)
                if found is not None:
                    found.settled_on = event.day
                    if first <= event.day <= last:
                        settled_in_period.append(found)
            deposits = []
            for event in session.execute(select(EventRow.id, EventRow.day, EventRow.text)
                                         .where(EventRow.kind == "deposit", EventRow.day >= first - window,
                                                EventRow.day <= last + window).order_by(EventRow.seq)):
                meta = _meta(event.text)
                payer = meta.get("merchant") or (PLATFORM if meta.get("platform") else "")
                deposits.append(BookDeposit(event.id, event.day, Decimal(meta["amount_cny"]), payer))
        by_reference = {p.bank_reference: p for p in payouts.values() if p.status == "settled" and p.bank_reference}
        pending = [p for p in payouts.values() if p.status == "requested" and p.requested <= last]
        return cls(payouts, by_reference, pending, settled_in_period, deposits)


def pool_movements(engine: Engine, through: date) -> dict[date, Decimal]:
    """{day: the day's net movement of Backing + PayoutReserve}, for every day up to `through`.

    Summed from the journal entries' text in the database (the engine has no
    balance-at-date read). Every movement of either account is a posting line of
    an entry; the two accounts start at zero at genesis.
    """
    moves: dict[date, Decimal] = defaultdict(lambda: ZERO)
    with engine.Session() as session:
        query = (select(EventRow.day, EventRow.text)
                 .where(EventRow.day <= through, EventRow.text.contains("  Assets:Pool:"))
                 .order_by(EventRow.seq))
        for day, text in session.execute(query):
            for _account, number in _POOL_POSTING_RE.findall(text):
                moves[day] += Decimal(number)
    return dict(moves)


def _balances(engine: Engine, statement: Statement, report: ReconcileReport) -> None:
    closing = statement.closing_balances()
    if not closing:
        return
    last = statement.last_day
    moves = pool_movements(engine, last)
    with engine.Session() as session:
        closed_days = {d for (d,) in session.execute(select(DayRow.day).where(DayRow.day >= statement.first_day,
                                                                              DayRow.day <= last))}
    running = CNY_ZERO
    by_day = sorted(moves.items())
    i = 0
    opening_day = statement.first_day - timedelta(days=1)
    while i < len(by_day) and by_day[i][0] <= opening_day:
        running += by_day[i][1]
        i += 1
    opening = statement.opening_balance()
    if opening is not None:
        report.opening = {"date": opening_day.isoformat(), "bank": fmt(opening), "books": fmt(running),
                          "difference": fmt(opening - running)}
    # Matched money held on different days by the bank and the books.
    shifts = [(m.line.date, m.book_day, m.line.amount) for m in report.matched]
    for day in statement.days():
        while i < len(by_day) and by_day[i][0] <= day:
            running += by_day[i][1]
            i += 1
        if day not in closing:
            continue
        transit = CNY_ZERO
        for bank_day, book_day, amount in shifts:
            if bank_day <= day and (book_day is None or day < book_day):
                transit += amount
            elif book_day is not None and book_day <= day < bank_day:
                transit -= amount
        report.balances.append(DayBalance(day, closing[day], running, transit, day in closed_days))
