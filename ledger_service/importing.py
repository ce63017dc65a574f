"""Bulk input through the engine: order exports, and the pool's bank statement.

`import_orders(engine, path)` books every row of an order export (importers/orders.py)
as an `order` event, by the same rules and refusals as the API, one row at a time
(each row all or nothing), idempotent by order id. `import_grants(engine, path)` does the
same for a file of task completions (importers/grants.py) as `grant` events, idempotent
by the completion's `ref`.

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

The stages of `reconcile`: read (the statement; the books' side of it, `_BookSide`),
match (`_Matching`), settle (`_settle`), report (`_unmatched_book_items`, `_balances`).
The books' side is read from the store: payout rows, the event rows of a kind and a
day range (their metadata read by `journal.entry_meta`, the one reader of the
format), and the balance of each day from the closed days' rows and the payouts
(`pool_balances`), never by searching the journal's text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from importers import grants as grant_file
from importers.bank import DEFAULT_COLUMNS, Statement, StatementColumns, StatementLine, parse_statement
from importers.common import FormatError
from importers.orders import OrderRow, read_orders, row_day, row_event

from . import accounts as A
from .amounts import fmt
from .engine import Engine
from .errors import Refusal
from .i18n import N_, T_, T_n, Text, ngettext
from .i18n import gettext as _
from .journal import entry_meta
from .rules.events import EventKind, Grant, Order, PayoutSettle
from .store.models import BalanceRow, DayRow, EventRow, LedgerRow, PayoutRow

PAYOUT_ID_RE = re.compile(r"(?<![A-Za-z0-9])E\d{9}(?![0-9])")
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
PLATFORM = "platform"
_CHUNK = 500
CNY_ZERO = Decimal("0.00")


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
    id_name: str = "order_id"  # what `order_id` holds: "ref" for a task completion's id

    @property
    def reason(self) -> str:
        return f"[{self.rule}] {self.detail}" if self.rule else ""

    def to_json(self) -> dict:
        out = {"line": self.line, self.id_name: self.order_id, "status": self.status, "event": self.event}
        if self.rule:
            out.update(rule=self.rule, detail=self.detail)
        return out


@dataclass
class ImportReport:
    path: str
    encoding: str = ""
    rows: list[RowResult] = field(default_factory=list)
    what: str = "orders"  # or "grants"

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
        out = [f"{self.what} from {self.path} ({self.encoding}): {len(self.rows)} rows — booked {len(self.booked)}, "
               f"already booked {len(self.already_booked)}, rejected {len(self.rejected)}"]
        for r in sorted(self.rejected, key=lambda r: r.line):
            out.append(f"  line {r.line}: {r.order_id or '(no id)'}: {r.reason}")
        return "\n".join(out) + "\n"

    def write(self, path: str | Path) -> None:
        _write_report(path, self.to_json(), self.to_text())


def _order_terms(text: str) -> dict[str, str]:
    """The terms of a booked order, from its entry's metadata (read by `journal.entry_meta`)."""
    meta = entry_meta(text)
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


# -- task completions (SV grants) --------------------------------------------------------

_GRANT_TERMS = ("holder", "sv", "reason", "campaign")


def import_grants(engine: Engine, path: str | Path, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Book every row of a task-completion file as a `grant` through the rules, like `import_orders`.

    A row whose `ref` is already booked (a `grant` event with that `ref`) with the same terms
    (holder, SV, reason, campaign, and date when the row gives one) is "already booked" and
    books nothing; with other terms it is rejected (`grant.duplicate_ref`). Rows are booked in
    date order, each in its own commit: a refused row (past a ceiling, an unknown member)
    books nothing and the others go on. The booked refs are read from the store's `grant`
    event rows (all of them: a ref is unique for ever).
    """
    grants = grant_file.read_grants(path)
    report = ImportReport(str(path), grants.encoding, what="grants")
    total = len(grants.rows)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    planned: list[tuple[grant_file.GrantRow, Grant, date | None]] = []
    for row in grants.rows:
        try:
            event = grant_file.row_event(row)
            day = grant_file.row_day(row, path)
        except Refusal as refusal:
            report.rows.append(RowResult(row.line, row.ref, REJECTED, rule=refusal.rule, detail=refusal.detail,
                                         id_name="ref"))
            tick()
            continue
        except FormatError as exc:
            report.rows.append(RowResult(row.line, row.ref, REJECTED, rule="input.bad_date",
                                         detail=f"{exc.column}: {exc.message}", id_name="ref"))
            tick()
            continue
        planned.append((row, event, day))
    booked_refs = _booked_grant_refs(engine)
    today = engine.today()
    planned.sort(key=lambda item: item[2] or today)  # stable: the file's order within a day
    for row, event, day in planned:
        report.rows.append(_book_grant(engine, row, event, day, booked_refs))
        tick()
    report.rows.sort(key=lambda r: r.line)
    return report


def _booked_grant_refs(engine: Engine) -> dict[str, tuple[str, str, dict[str, str]]]:
    """ref -> (event id, day, terms) of every booked grant that names a ref."""
    with engine.Session() as session:
        genesis_day = session.execute(select(LedgerRow.genesis_day)).scalar_one()
        return {meta["ref"]: (event_id, day.isoformat(), {key: meta.get(key, "") for key in _GRANT_TERMS})
                for event_id, day, meta in _event_meta(session, (EventKind.GRANT,), genesis_day) if meta.get("ref")}


def _book_grant(engine: Engine, row: grant_file.GrantRow, event: Grant, day: date | None,
                booked_refs: dict[str, tuple[str, str, dict[str, str]]]) -> RowResult:
    assert event.ref is not None  # the file's rows require it
    mine = {key: "" for key in _GRANT_TERMS}
    mine.update((key, value) for key, value in event.to_meta() if key in _GRANT_TERMS)
    found = booked_refs.get(event.ref)
    if found is not None:
        booked_id, booked_day, theirs = found
        differs = [key for key in _GRANT_TERMS if mine[key] != theirs[key]]
        if day is not None and day.isoformat() != booked_day:
            differs.append("date")
        if differs:
            return RowResult(row.line, event.ref, REJECTED, booked_id, "grant.duplicate_ref",
                             f"ref: task completion {event.ref!r} is already granted ({booked_id} on {booked_day}) "
                             f"with another {', '.join(differs)}", id_name="ref")
        return RowResult(row.line, event.ref, ALREADY, booked_id, id_name="ref")
    try:
        booked = engine.submit(event, day)
    except Refusal as refusal:
        return RowResult(row.line, event.ref, REJECTED, rule=refusal.rule, detail=refusal.detail, id_name="ref")
    booked_refs[event.ref] = (booked.event_id or "", booked.day.isoformat(), mine)
    return RowResult(row.line, event.ref, BOOKED, booked.event_id, id_name="ref")


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
    reason: str  # in English: the JSON's, in every language
    text: Text | None = field(default=None, compare=False)  # the same, for the text report's language

    def to_json(self) -> dict:
        return {**self.line.to_json(), "reason": self.reason}

    def shown(self) -> str:
        return self.text.translated() if self.text is not None else self.reason


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
    item_texts: list[Text] = field(default_factory=list, compare=False)  # each item's "what", to translate
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

    @property
    def to_settle(self) -> list[Match]:
        """What a dry run would settle (a real run settles them: `settled_now`)."""
        return [m for m in self.matched if m.status == "to settle"]

    def to_text(self) -> str:
        """The report in words, in the language of `i18n.use` (the JSON stays the same in every language)."""
        s = self.statement
        out = []
        period = f"{s.first_day} … {s.last_day}" if s.lines else _("no lines")
        out.append(_("Reconciliation of %(path)s (%(encoding)s): %(period)s, %(lines)s",
                     path=s.path, encoding=s.encoding, period=period,
                     lines=ngettext("%(num)d line", "%(num)d lines", len(s.lines)))
                   + (" + " + ngettext("%(num)d duplicate", "%(num)d duplicates", len(s.duplicates))
                      if s.duplicates else "")
                   + "; " + ngettext("window %(num)d day", "window %(num)d days", self.window_days)
                   + ("; " + _("DRY RUN (nothing booked)") if self.dry_run else ""))
        word = {"line": _("line"), "by": _("by"), "serial": _("serial"), "CNY": _("CNY")}  # the rows' words
        out.append("")
        out.append(_("Matched: %(lines)s", lines=ngettext("%(num)d line", "%(num)d lines", len(self.matched))))
        for m in self.matched:
            who = " " + _("of %(holder)s", holder=m.holder) if m.holder else ""
            extra = f" -> {m.settle_event}" if m.settle_event else ""
            kind, how, status = _(m.kind), _(m.how), _(m.status)
            out.append(f"  {word['line']} {m.line.line:>4}  {m.line.date}  {_signed(m.line.amount):>14}  {kind} "
                       f"{m.item}{who}  {word['by']} {how}  [{status}{extra}]")
        payouts = ngettext("%(num)d payout", "%(num)d payouts", len(self.to_settle if self.dry_run
                                                                   else self.settled_now))
        if self.dry_run:  # nothing was settled: say what a real run would settle
            out.append(_("Would settle: %(payouts)s (a run without --dry-run settles them)", payouts=payouts))
            for m in self.to_settle:
                out.append("  " + _("payout %(item)s%(who)s: %(amount)s CNY, bank serial %(serial)s", item=m.item,
                                    who=" " + _("of %(holder)s", holder=m.holder) if m.holder else "",
                                    amount=fmt(-m.line.amount), serial=m.line.serial))
        else:
            out.append(_("Settled now: %(payouts)s", payouts=payouts))
        for m in self.settled_now:
            who = " " + _("of %(holder)s", holder=m.holder) if m.holder else ""
            out.append("  " + _("payout %(item)s%(who)s: %(amount)s CNY, bank serial %(serial)s, booked %(event)s on "
                                "%(day)s", item=m.item, who=who, amount=fmt(-m.line.amount), serial=m.line.serial,
                                event=m.settle_event, day=m.book_day))
        out.append(_("Unmatched statement lines: %(count)s", count=len(self.unmatched_lines)))  # the count alone
        for u in self.unmatched_lines:
            out.append(f"  {word['line']} {u.line.line:>4}  {u.line.date}  {_signed(u.line.amount):>14}  "
                       f"{u.line.counterparty or '-'}  {u.line.memo!r}  {word['serial']} {u.line.serial}: {u.shown()}")
        out.append(_("Unmatched book items: %(count)s", count=len(self.unmatched_items)))
        for index, item in enumerate(self.unmatched_items):
            item_kind = _(item["kind"])
            what = self.item_texts[index].translated() if index < len(self.item_texts) else item["what"]
            out.append(f"  {item_kind} {item['id']}: {item['cny']} {word['CNY']}, {what}")
        if s.duplicates:
            out.append(_("Duplicate lines (ignored): %(count)s", count=len(s.duplicates)))  # the count alone
            for d in s.duplicates:
                out.append("  " + _("line %(line)s repeats serial %(serial)s of line %(first)s", line=d.line,
                                    serial=d.serial, first=d.first_line)
                           + ("" if d.same else " " + _("WITH DIFFERENT CONTENT")))
        if s.warnings:
            out.append(_("Statement warnings: %(count)s", count=len(s.warnings)))
            out += [f"  {w}" for w in s.warnings]
        if self.balances:
            out.append("")
            out.append(_("Balance per day: bank 账户余额 at the end of the day vs books Backing + PayoutReserve "
                         "at the close of the day"))
            head = [_("date"), _("bank"), _("books"), _("difference"), _("in transit"), _("unexplained")]
            out.append(f"  {head[0]:<10}  {head[1]:>14}  {head[2]:>14}  {head[3]:>12}  {head[4]:>12}  {head[5]:>12}")
            for b in self.balances:
                out.append(f"  {b.day.isoformat():<10}  {fmt(b.bank):>14}  {fmt(b.books):>14}  "
                           f"{fmt(b.difference):>12}  "
                           f"{fmt(b.in_transit):>12}  {fmt(b.unexplained):>12}"
                           + ("" if b.closed else "  " + _("(day open)")))
        out.append("")
        out.append(_("RESULT: reconciled") if self.ok else _("RESULT: NOT reconciled — see the unmatched items and "
                                                             "unexplained differences above"))
        return "\n".join(out) + "\n"

    def write(self, path: str | Path) -> None:
        """The JSON report at `path` and the text report beside it (`.txt`)."""
        _write_report(path, self.to_json(), self.to_text())


# The words of the report taken from the data (a match's kind, how and status, a book item's
# kind), marked for the catalog; the text report translates them, the JSON keeps them.
REPORT_WORDS = (N_("requested"), N_("settled"), N_("cancelled"),
                N_("payout"), N_("deposit"), N_("settled payout"), N_("to settle"), N_("settled before"),
                N_("settled now"), N_("reference"), N_("amount+payer"), N_("amount"), N_("memo"))


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

    The stages: read the statement and the books' side of it; match (references and
    memos, then amounts, then deposits); settle what matched a pending payout; report
    what is left on either side and the balance of each day.
    """
    if window_days < 0:
        raise ValueError("window_days must be >= 0")
    statement = parse_statement(statement_path, columns)
    report = ReconcileReport(statement, window_days, dry_run=not settle)
    if statement.first_day is None or statement.last_day is None:  # no line
        return report
    period = _Period(statement.first_day, statement.last_day)
    books = _BookSide.load(engine, statement, period, timedelta(days=window_days))
    matching = _Matching(report, books, dict(payers or {}), window_days)
    todo = [line for line in statement.lines if line.credit or not matching.by_reference_or_memo(line)]
    matching.payouts_by_amount([line for line in todo if not line.credit])
    matching.deposits([line for line in todo if line.credit])
    if settle:
        _settle(engine, matching)
    report.matched.sort(key=lambda m: m.line.line)
    report.unmatched_lines.sort(key=lambda u: u.line.line)
    items = _unmatched_book_items(matching, period)
    report.unmatched_items = [{**item, "what": str(what)} for item, what in items]
    report.item_texts = [what for _item, what in items]
    _balances(engine, statement, period, report)
    return report


# -- the books' side of a statement ---------------------------------------------------------

@dataclass(frozen=True)
class _Period:
    """A statement's first and last day (a statement with lines has both)."""

    first: date
    last: date


def _payout(row: PayoutRow) -> BookPayout:
    return BookPayout(row.id, row.holder, row.cny, row.status, row.requested, row.bank_reference)


def _event_meta(session: Session, kinds: tuple[EventKind, ...], since: date,
                until: date | None = None) -> Iterator[tuple[str, date, dict[str, str]]]:
    """(event id, day, entry metadata) of the booked events of `kinds` from `since` (to `until`),
    in booking order: the store's rows, their metadata read by `journal.entry_meta`."""
    query = select(EventRow.id, EventRow.day, EventRow.text).where(
        EventRow.kind.in_([kind.value for kind in kinds]), EventRow.day >= since)  # plain strings for the driver
    if until is not None:
        query = query.where(EventRow.day <= until)
    for row in session.execute(query.order_by(EventRow.seq)):
        yield row.id, row.day, entry_meta(row.text)


def _statement_payouts(session: Session, statement: Statement, period: _Period) -> dict[str, BookPayout]:
    """The payouts a statement may touch: settled with one of its serials, named in one of its
    lines, or pending and requested by its last day."""
    serials = [line.serial for line in statement.lines]
    named = sorted({pid for line in statement.lines
                    for pid in PAYOUT_ID_RE.findall(f"{line.memo} {line.counterparty}")})
    rows: dict[str, PayoutRow] = {}
    for chunk in _chunks(serials):
        rows.update((r.id, r) for r in session.scalars(select(PayoutRow).where(PayoutRow.bank_reference.in_(chunk))))
    for chunk in _chunks(named):
        rows.update((r.id, r) for r in session.scalars(select(PayoutRow).where(PayoutRow.id.in_(chunk))))
    rows.update((r.id, r) for r in session.scalars(
        select(PayoutRow).where(PayoutRow.status == "requested", PayoutRow.requested <= period.last)))
    return {pid: _payout(r) for pid, r in rows.items()}


def _settled_days(session: Session, period: _Period, payouts: dict[str, BookPayout]) -> list[BookPayout]:
    """Sets each settled payout's `settled_on` (the day of its payout_settle event); adds the
    payouts settled within the statement's period; returns those, in booking order."""
    first, last = period.first, period.last
    since = min([p.requested for p in payouts.values() if p.status == "settled"] + [first])
    settled_in_period: list[BookPayout] = []
    for _event_id, day, meta in _event_meta(session, (EventKind.PAYOUT_SETTLE,), since):
        pid = meta.get("payout", "")
        found = payouts.get(pid)
        if found is None and first <= day <= last:
            row = session.get(PayoutRow, pid)
            if row is None:  # pragma: no cover - every settle names a payout
                continue
            found = payouts[pid] = _payout(row)
        if found is not None:
            found.settled_on = day
            if first <= day <= last:
                settled_in_period.append(found)
    return settled_in_period


def _deposits(session: Session, period: _Period, window: timedelta) -> list[BookDeposit]:
    """The deposits booked within `window` of the statement's period, in booking order."""
    deposits = []
    for event_id, day, meta in _event_meta(session, (EventKind.DEPOSIT,), period.first - window,
                                           period.last + window):
        payer = meta.get("merchant") or (PLATFORM if meta.get("platform") else "")
        deposits.append(BookDeposit(event_id, day, Decimal(meta["amount_cny"]), payer))
    return deposits


@dataclass
class _BookSide:
    """What the books hold for a statement's period, read with read-only queries."""

    payouts: dict[str, BookPayout]
    by_reference: dict[str, BookPayout]
    pending: list[BookPayout]
    settled_in_period: list[BookPayout]
    deposits: list[BookDeposit]

    @classmethod
    def load(cls, engine: Engine, statement: Statement, period: _Period, window: timedelta) -> _BookSide:
        with engine.Session() as session:
            payouts = _statement_payouts(session, statement, period)
            settled_in_period = _settled_days(session, period, payouts)
            deposits = _deposits(session, period, window)
        by_reference = {p.bank_reference: p for p in payouts.values() if p.status == "settled" and p.bank_reference}
        pending = [p for p in payouts.values() if p.status == "requested" and p.requested <= period.last]
        return cls(payouts, by_reference, pending, settled_in_period, deposits)


# -- matching -------------------------------------------------------------------------------

@dataclass
class _Matching:
    """The matching of one statement: what is matched so far, what waits to be settled."""

    report: ReconcileReport
    books: _BookSide
    payers: dict[str, str]
    window_days: int
    matched_payouts: set[str] = field(default_factory=set)
    matched_deposits: set[str] = field(default_factory=set)
    to_settle: list[Match] = field(default_factory=list)

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)

    def unmatched(self, line: StatementLine, reason: Text) -> None:
        self.report.unmatched_lines.append(Unmatched(line, str(reason), reason))

    def matched(self, line: StatementLine, payout: BookPayout, how: str) -> None:
        """`line` pays the pending `payout`: to settle."""
        self.matched_payouts.add(payout.id)
        match = Match(line, "payout", payout.id, how, "to settle", None, holder=payout.holder)
        self.report.matched.append(match)
        self.to_settle.append(match)

    def by_reference_or_memo(self, line: StatementLine) -> bool:
        """Stages 1 and 2 for money out: a payout settled with this line's serial, or one the
        memo names. True when the line is dealt with (matched or left unmatched)."""
        by_ref = self.books.by_reference.get(line.serial)
        if by_ref is not None and by_ref.cny != -line.amount:
            self.unmatched(line, T_("payout %(payout)s was settled with this serial as reference, but it is "
                                    "%(amount)s CNY and the line %(line_amount)s CNY", payout=by_ref.id,
                                    amount=fmt(by_ref.cny), line_amount=fmt(-line.amount)))
            return True
        if by_ref is not None and by_ref.id not in self.matched_payouts:
            self.matched_payouts.add(by_ref.id)
            self.report.matched.append(Match(line, "payout", by_ref.id, "reference", "settled before",
                                             by_ref.settled_on, holder=by_ref.holder))
            return True
        named = [self.books.payouts[pid] for pid in PAYOUT_ID_RE.findall(f"{line.memo} {line.counterparty}")
                 if pid in self.books.payouts]
        if not named:
            return False
        payout = named[0]
        if payout.id in self.matched_payouts:
            self.unmatched(line, T_("names payout %(payout)s, already matched to another line", payout=payout.id))
        elif payout.cny != -line.amount:
            self.unmatched(line, T_("names payout %(payout)s of %(amount)s CNY, but the line is %(line_amount)s CNY",
                                    payout=payout.id, amount=fmt(payout.cny), line_amount=fmt(-line.amount)))
        elif payout.status == "requested":
            self.matched(line, payout, "memo")
        else:
            status = Text(payout.status)  # a payout's status: REPORT_WORDS
            self.unmatched(line, T_("names payout %(payout)s, which is already %(status)s (bank reference "
                                    "%(reference)s)", payout=payout.id, status=status,
                                    reference=payout.bank_reference) if payout.bank_reference
                           else T_("names payout %(payout)s, which is already %(status)s", payout=payout.id,
                                   status=status))
        return True

    def payouts_by_amount(self, waiting: list[StatementLine]) -> None:
        """Stage 3 for money out: a pending payout of the line's amount within the window,
        narrowed by holder; repeated while a match removes a candidate from the others."""
        reasons: dict[int, Text] = {}
        progress = True
        while progress and waiting:
            progress = False
            for line in list(waiting):
                candidates = self._pending_candidates(line)
                if len(candidates) == 1:
                    self.matched(line, candidates[0], "amount")
                    waiting.remove(line)
                    progress = True
                elif candidates:
                    reasons[line.line] = T_("ambiguous: pending payouts %(payouts)s are all %(amount)s CNY within "
                                            "%(within)s; put the payout id in the memo or settle by hand",
                                            payouts=", ".join(p.id for p in candidates), amount=fmt(-line.amount),
                                            within=self._within())
                else:
                    reasons[line.line] = T_("no pending payout of %(amount)s CNY requested within %(within)s before "
                                            "the line", amount=fmt(-line.amount), within=self._within())
        for line in waiting:
            self.unmatched(line, reasons[line.line])

    def _within(self) -> Text:
        return T_n("%(num)d day", "%(num)d days", self.window_days)

    def _pending_candidates(self, line: StatementLine) -> list[BookPayout]:
        paid = -line.amount
        candidates = [p for p in self.books.pending if p.id not in self.matched_payouts and p.cny == paid
                      and timedelta(0) <= line.date - p.requested <= self.window]
        if len(candidates) > 1:
            tokens = set(TOKEN_RE.findall(line.memo)) | {line.counterparty, self.payers.get(line.counterparty, "")}
            candidates = [p for p in candidates if p.holder in tokens] or candidates
        return candidates

    def deposits(self, lines: list[StatementLine]) -> None:
        """Money in: a deposit of the same amount from the payer, booked within the window (the nearest)."""
        for line in lines:
            payer = self.payers.get(line.counterparty, line.counterparty)
            tokens = set(TOKEN_RE.findall(line.memo)) | {payer}
            same_amount = [d for d in self.books.deposits if d.id not in self.matched_deposits
                           and d.cny == line.amount and abs(d.day - line.date) <= self.window]
            candidates = [d for d in same_amount if d.payer in tokens]
            if not candidates:
                values = {"amount": fmt(line.amount), "payer": payer or T_("(no name)"), "within": self._within()}
                why = (T_("no deposit of %(amount)s CNY from %(payer)s booked within %(within)s (same amount from "
                          "%(others)s)", others=", ".join(f"{d.payer} {d.id}" for d in same_amount), **values)
                       if same_amount else
                       T_("no deposit of %(amount)s CNY from %(payer)s booked within %(within)s", **values))
                self.unmatched(line, why)
                continue
            deposit = min(candidates, key=lambda d: (abs(d.day - line.date), d.id))
            self.matched_deposits.add(deposit.id)
            self.report.matched.append(Match(line, "deposit", deposit.id, "amount+payer", "deposit", deposit.day,
                                             holder=deposit.payer))


# -- settling -------------------------------------------------------------------------------

def _settle(engine: Engine, matching: _Matching) -> None:
    """Book the settlement of every payout matched to a line, oldest line first (a booking
    closes the open days before its own); a refused settlement leaves its line unmatched."""
    for match in sorted(matching.to_settle, key=lambda m: (m.line.date, m.line.time, m.line.line)):
        open_day = date.fromisoformat(engine.head()["open_day"])
        day = min(max(match.line.date, open_day), engine.today())
        try:
            booked = engine.submit(PayoutSettle(match.item, match.line.serial), day)
        except Refusal as refusal:
            matching.report.matched.remove(match)
            matching.matched_payouts.discard(match.item)
            matching.unmatched(match.line, T_("settling payout %(payout)s was refused: [%(rule)s] %(detail)s",
                                              payout=match.item, rule=refusal.rule, detail=refusal.detail))
            continue
        match.status, match.settle_event, match.book_day = "settled now", booked.event_id, booked.day
        matching.books.payouts[match.item].status = "settled"


# -- reporting ------------------------------------------------------------------------------

def _unmatched_book_items(matching: _Matching, period: _Period) -> list[tuple[dict, Text]]:
    """What the books hold that the bank does not show: pending payouts no line pays, payouts
    settled in the period with a reference no line carries, deposits no line brings."""
    books, first, last = matching.books, period.first, period.last
    items = []
    for payout in sorted(books.pending, key=lambda p: (p.requested, p.id)):
        if payout.id in matching.matched_payouts or payout.status != "requested":
            continue
        items.append(({
            "kind": "payout", "id": payout.id, "holder": payout.holder, "cny": fmt(payout.cny),
            "requested": payout.requested.isoformat(), "days_outstanding": (last - payout.requested).days,
        }, T_("of %(holder)s, requested %(day)s, pending: no bank line pays it (%(days)s to the statement's end)",
              holder=payout.holder, day=payout.requested,
              days=T_n("%(num)d day", "%(num)d days", (last - payout.requested).days))))
    for payout in books.settled_in_period:
        if payout.id in matching.matched_payouts:
            continue
        assert payout.settled_on is not None
        items.append(({
            "kind": "settled payout", "id": payout.id, "holder": payout.holder, "cny": fmt(payout.cny),
            "settled_on": payout.settled_on.isoformat(), "bank_reference": payout.bank_reference,
        }, T_("of %(holder)s, settled on %(day)s with bank reference %(reference)s, which no line of the statement "
              "carries", holder=payout.holder, day=payout.settled_on, reference=repr(payout.bank_reference))))
    for deposit in books.deposits:
        if deposit.id in matching.matched_deposits or not first <= deposit.day <= last:
            continue
        items.append(({
            "kind": "deposit", "id": deposit.id, "payer": deposit.payer, "cny": fmt(deposit.cny),
            "day": deposit.day.isoformat(),
        }, T_("from %(payer)s, booked %(day)s: no bank line within %(within)s", payer=deposit.payer, day=deposit.day,
              within=matching._within())))
    return items


def pool_balances(engine: Engine, first: date, last: date) -> tuple[dict[date, Decimal], set[date]]:
    """({day: Backing + PayoutReserve at the close of the day} for every day first..last, the
    closed days among them), from the store, not the journal's text.

    Backing at a closed day's close is the pool of the supply its close recorded (`days`
    rows); on a day not closed yet it is the balance now (every entry is dated on or
    before the open day). PayoutReserve at a day's end is the payouts requested by then
    and neither settled nor cancelled by then (`payouts` rows, with the day of each
    settle or cancel event). Both accounts are zero before genesis.
    """
    with engine.Session() as session:
        ledger = session.get(LedgerRow, 1)
        assert ledger is not None, "the books have no ledger row"
        closes = {row.day: Decimal(json.loads(row.supply_json)["pool_cny"])
                  for row in session.scalars(select(DayRow).where(DayRow.day >= first, DayRow.day <= last))}
        backing_now = session.get(BalanceRow, A.POOL)
        reserve = _reserve_by_day(session, first, last)
    totals: dict[date, Decimal] = {}
    for day in _days(first, last):
        if day < ledger.genesis_day:
            totals[day] = CNY_ZERO
            continue
        if day in closes:
            backing = closes[day]
        elif day >= ledger.open_day:
            backing = backing_now.amount if backing_now is not None else CNY_ZERO
        else:  # pragma: no cover - every day before the open day has its close row
            raise LookupError(f"the books hold no close of {day}, before their open day {ledger.open_day}")
        totals[day] = CNY_ZERO + backing + reserve[day]
    return totals, set(closes)


def _reserve_by_day(session: Session, first: date, last: date) -> dict[date, Decimal]:
    """{day: the payouts requested on or before it and still pending at its end}, first..last."""
    closed_on: dict[str, date] = {}  # the payouts settled or cancelled after `first`
    for _event_id, day, meta in _event_meta(session, (EventKind.PAYOUT_SETTLE, EventKind.PAYOUT_CANCEL),
                                            first + timedelta(days=1)):
        closed_on[meta["payout"]] = day
    rows = list(session.scalars(select(PayoutRow).where(PayoutRow.status == "requested",
                                                        PayoutRow.requested <= last)))
    for chunk in _chunks(sorted(closed_on)):
        rows += session.scalars(select(PayoutRow).where(PayoutRow.id.in_(chunk), PayoutRow.requested <= last))
    reserve = {}
    for day in _days(first, last):
        reserve[day] = sum((r.cny for r in rows if r.requested <= day and day < closed_on.get(r.id, date.max)),
                           CNY_ZERO)
    return reserve


def _days(first: date, last: date) -> Iterator[date]:
    for n in range((last - first).days + 1):
        yield first + timedelta(days=n)


def _balances(engine: Engine, statement: Statement, period: _Period, report: ReconcileReport) -> None:
    """The bank's closing balance of each statement day against the books' Backing +
    PayoutReserve at the close of that day, with the matched money held on different
    days by the bank and the books (in transit); the opening balance likewise."""
    closing = statement.closing_balances()
    if not closing:
        return
    opening_day = period.first - timedelta(days=1)
    books, closed_days = pool_balances(engine, opening_day, period.last)
    opening = statement.opening_balance()
    if opening is not None:
        report.opening = {"date": opening_day.isoformat(), "bank": fmt(opening), "books": fmt(books[opening_day]),
                          "difference": fmt(opening - books[opening_day])}
    shifts = [(m.line.date, m.book_day, m.line.amount) for m in report.matched]
    for day in statement.days():
        if day not in closing:
            continue
        transit = CNY_ZERO
        for bank_day, book_day, amount in shifts:
            if bank_day <= day and (book_day is None or day < book_day):
                transit += amount
            elif book_day is not None and book_day <= day < bank_day:
                transit -= amount
        report.balances.append(DayBalance(day, closing[day], books[day], transit, day in closed_days))
