"""The storefront's order export: orders to book in bulk (`ledger-service import-orders`).

CSV, UTF-8 (with or without BOM) or GBK, one header row naming the columns (in any
order), then one order per line:

    order_id,date,buyer,merchant,amount_cny,ship_region
    o1001,2026-03-05,m1,s1,1000.00,
    o1002,2026-03-05,m2,s2,88.50,441900

| column       | required | what                                                            |
|--------------|----------|-----------------------------------------------------------------|
| order_id     | yes      | the storefront's order id (`[A-Za-z0-9_-]{1,64}`), unique for ever |
| date         | no       | business day to book on, `YYYY-MM-DD` or `YYYYMMDD`; empty: today |
| buyer        | yes      | the buyer's member id                                           |
| merchant     | yes      | the store's merchant id                                         |
| amount_cny   | yes      | the order's amount, a plain decimal with at most 2 decimals (`1000.00`) |
| ship_region  | no       | 6-digit region code the goods ship to (online stores' partner)  |

Each line is one `order` event, validated and booked by the same rules as
`POST /v1/orders` (`ledger_service.importing.import_orders`). This module reads the
file; `OrderExportImporter` is its beangulp importer (identify, archive, and a
preview of the orders as `custom "order"` directives, those already booked marked as
duplicates: an order's postings depend on the books, so only the engine books it).
"""

from __future__ import annotations

from datetime import date

import beangulp
from beancount.core import amount as bc_amount
from beancount.core import data
from beancount.parser.grammar import ValueType

from ledger_service.errors import Invalid, Refusal
from ledger_service.rules.events import parse

from .common import CsvRow, CsvShape, FormatError, NamedImporter, extra_cells, row_day

COLUMNS = ("order_id", "date", "buyer", "merchant", "amount_cny", "ship_region")
REQUIRED = ("order_id", "buyer", "merchant", "amount_cny")
ORDER_META = "order_id"


class OrderRow(CsvRow):
    @property
    def order_id(self) -> str:
        return self.cell("order_id")


SHAPE = CsvShape("an order export", COLUMNS, REQUIRED, OrderRow)
read_orders = SHAPE.read


def row_event(row: OrderRow):
    """The row as an `Order` event, validated like an API body (raises `Refusal`)."""
    extra = extra_cells(row)
    if extra is not None:
        raise Invalid("input.bad_row", f"more cells than the header has columns: {extra!r}", None)
    fields = {name: row.fields.get(name) or None for name in ("order_id", "buyer", "merchant", "amount_cny",
                                                             "ship_region")}
    return parse("order", fields)


class OrderExportImporter(NamedImporter, beangulp.Importer):
    """beangulp importer of the order export (see the module docstring).

    extract() previews each order as a `custom "order"` directive, one the books hold
    already (an entry with its `order_id`) or a repeated id marked `__duplicate__`
    (commented out by `extract -e`, unticked in Fava); booking is `ledger-service
    import-orders`, through the rules. A malformed row raises `FormatError` with its
    line and column.
    """

    def __init__(self, account: str = "Liabilities:Holders:SP", name: str | None = None,
                 filename: str = "orders.csv") -> None:
        self._account = account
        self._name = name
        self._filename = filename

    def identify(self, filepath: str) -> bool:
        return SHAPE.looks_like(filepath)

    def account(self, filepath: str) -> data.Account:
        return self._account

    def date(self, filepath: str) -> date | None:
        """The export's latest order date; None when there is none or the file is unreadable."""
        days = []
        try:
            for row in read_orders(filepath).rows:
                try:
                    found = row_day(row, filepath)
                except FormatError:
                    continue
                if found is not None:
                    days.append(found)
        except FormatError:
            return None
        return max(days) if days else None

    def extract(self, filepath: str, existing: data.Entries) -> data.Entries:
        held = {e.meta[ORDER_META]: e for e in existing or ()
                if isinstance(e, data.Transaction) and e.meta and e.meta.get(ORDER_META)}
        orders = read_orders(filepath)
        entries: data.Entries = []
        seen: dict[str, data.Custom] = {}
        fallback = date.today()
        for row in orders.rows:
            try:
                event = row_event(row)
            except Refusal as refusal:
                raise FormatError(filepath, row.line, refusal.field, f"[{refusal.rule}] {refusal.detail}") from None
            day = row_day(row, filepath) or fallback
            meta = data.new_metadata(filepath, row.line)
            values = [ValueType(event.order_id, str), ValueType(event.buyer, str), ValueType(event.merchant, str),
                      ValueType(bc_amount.Amount(event.amount_cny, "CNY"), bc_amount.Amount)]
            if event.ship_region:
                values.append(ValueType(event.ship_region, str))
            custom = data.Custom(meta, day, "order", values)
            if event.order_id in held:  # booked already: shown commented out (`extract -e`), not dropped
                custom.meta["__duplicate__"] = held[event.order_id]
            elif event.order_id in seen:
                custom.meta["__duplicate__"] = seen[event.order_id]
            else:
                seen[event.order_id] = custom
            entries.append(custom)
        return entries

    def deduplicate(self, entries: data.Entries, existing: data.Entries) -> None:
        """Mark previews whose order id is already booked or previewed (by id, not by likeness)."""
        held: dict[str, object] = {}
        for entry in existing or ():
            if isinstance(entry, data.Transaction) and entry.meta and entry.meta.get(ORDER_META):
                held.setdefault(entry.meta[ORDER_META], entry)
            elif isinstance(entry, data.Custom) and entry.type == "order" and entry.values:
                held.setdefault(entry.values[0][0], entry)
        for entry in entries:
            if not isinstance(entry, data.Custom) or "__duplicate__" in entry.meta:
                continue
            order_id = entry.values[0][0]
            if order_id in held:
                entry.meta["__duplicate__"] = held[order_id]
            else:
                held[order_id] = entry
