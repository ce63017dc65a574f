"""Task completions: SV grants to book in bulk (`ledger-service import-grants`, issue 13 part 3).

CSV, UTF-8 (with or without BOM) or GBK, one header row naming the columns (in any
order), then one completed task per line:

    ref,date,holder,sv,reason,campaign
    t-1001,2026-03-05,m1,20.0000,task,
    t-1002,2026-03-05,m2,50,campaign,spring-2026

| column   | required | what                                                                  |
|----------|----------|-----------------------------------------------------------------------|
| ref      | yes      | the task completion's id (`[A-Za-z0-9_-]{1,64}`), unique for ever: the grant's `ref` |
| date     | no       | business day to book on, `YYYY-MM-DD` or `YYYYMMDD`; empty: today    |
| holder   | yes      | the member who completed the task                                     |
| sv       | yes      | SV granted, a plain decimal with at most 4 decimals (`20.0000`)       |
| reason   | no       | `task` (default when empty) or `campaign`                             |
| campaign | no       | the campaign id; required when `reason` is `campaign`                 |

Each line is one `grant` event, validated and booked by the same rules as
`POST /v1/grants` (`ledger_service.importing.import_grants`): a row past a ceiling
is rejected alone. This module reads the file; `TaskGrantImporter` is its beangulp
importer (identify, archive, and a preview of the grants not yet booked as
`custom "grant"` directives: only the engine books them).
"""

from __future__ import annotations

from datetime import date

import beangulp
from beancount.core import amount as bc_amount
from beancount.core import data
from beancount.parser.grammar import ValueType

from ledger_service.errors import Invalid, Refusal
from ledger_service.rules.events import Grant, parse

from .common import CsvRow, CsvShape, FormatError, NamedImporter, extra_cells, row_day

COLUMNS = ("ref", "date", "holder", "sv", "reason", "campaign")
REQUIRED = ("ref", "holder", "sv")
REF_META = "ref"
DEFAULT_REASON = "task"


class GrantRow(CsvRow):
    @property
    def ref(self) -> str:
        return self.cell("ref")


SHAPE = CsvShape("a task-completion", COLUMNS, REQUIRED, GrantRow)
read_grants = SHAPE.read


def row_event(row: GrantRow) -> Grant:
    """The row as a `Grant` event, validated like an API body (raises `Refusal`)."""
    extra = extra_cells(row)
    if extra is not None:
        raise Invalid("input.bad_row", f"more cells than the header has columns: {extra!r}", None)
    fields = {name: row.fields.get(name) or None for name in ("ref", "holder", "sv", "reason", "campaign")}
    fields["reason"] = fields["reason"] or DEFAULT_REASON
    if fields["ref"] is None:
        raise Invalid("input.missing_field", "ref: required (the task completion's id)", "ref")
    event = parse("grant", fields)
    assert isinstance(event, Grant)
    return event


class TaskGrantImporter(NamedImporter, beangulp.Importer):
    """beangulp importer of task completions (see the module docstring).

    extract() previews each grant the books do not hold yet (no entry with its `ref`)
    as a `custom "grant"` directive; booking is `ledger-service import-grants`, through
    the rules. A malformed row raises `FormatError` with its line and column.
    """

    def __init__(self, account: str = "Liabilities:Holders:SV:Active", name: str | None = None,
                 filename: str = "task-grants.csv") -> None:
        self._account = account
        self._name = name
        self._filename = filename

    def identify(self, filepath: str) -> bool:
        return SHAPE.looks_like(filepath)

    def account(self, filepath: str) -> data.Account:
        return self._account

    def date(self, filepath: str) -> date | None:
        """The file's latest completion date; None when there is none or the file is unreadable."""
        days = []
        try:
            for row in read_grants(filepath).rows:
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
        held = {e.meta.get(REF_META) for e in existing or ()
                if isinstance(e, data.Transaction) and e.meta and e.meta.get("kind") == "grant"}
        held.discard(None)
        entries: data.Entries = []
        seen: dict[str, data.Custom] = {}
        fallback = date.today()
        for row in read_grants(filepath).rows:
            try:
                event = row_event(row)
            except Refusal as refusal:
                raise FormatError(filepath, row.line, refusal.field, f"[{refusal.rule}] {refusal.detail}") from None
            assert event.ref is not None  # row_event requires it
            if event.ref in held:
                continue
            meta = data.new_metadata(filepath, row.line)
            values = [ValueType(event.ref, str), ValueType(event.holder, str),
                      ValueType(bc_amount.Amount(event.sv, "SV"), bc_amount.Amount), ValueType(event.reason, str)]
            if event.campaign:
                values.append(ValueType(event.campaign, str))
            custom = data.Custom(meta, row_day(row, filepath) or fallback, "grant", values)
            if event.ref in seen:
                custom.meta["__duplicate__"] = seen[event.ref]
            else:
                seen[event.ref] = custom
            entries.append(custom)
        return entries
