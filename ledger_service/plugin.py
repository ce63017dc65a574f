"""The Beancount plugin declared in every journal: `plugin "ledger_service.plugin"`.

Plain `bean-check main.beancount` (and Fava) then report, with file and line,
every breach `audit.replay` finds: a broken hash chain, a torn or unbalanced
entry, the cap exceeded, a holder below zero, a price that is not pool ÷
circulating, a release or an order split that does not follow the genesis rules.
It adds no entries and changes none.
"""

from __future__ import annotations

import collections

from beancount.core import data

from .audit.replay import Replay

__plugins__ = ("check_books",)

LedgerError = collections.namedtuple("LedgerError", "source message entry")


def check_books(entries, options_map, config=None):
    """Replay the chained entries in journal order and report each fault."""
    replay = Replay()
    chained = []
    errors = []
    for entry in entries:
        if isinstance(entry, data.Price) and (entry.currency, entry.amount.currency) != ("SP", "CNY"):
            errors.append(LedgerError(entry.meta, f"[file.foreign] a price of {entry.currency} in "
                                                  f"{entry.amount.currency}: the books price SP in CNY only", entry))
        elif isinstance(entry, (data.Transaction, data.Price)):
            chained.append(entry)
    # The loader sorts by date, then line; the journal's order is file, then line.
    chained.sort(key=lambda e: (e.date, e.meta.get("filename", ""), e.meta.get("lineno", 0)))
    for entry in chained:
        replay.feed(entry)
    replay.close()
    # The entry each fault is about (looked up only when there are faults).
    wanted = {(fault.filename, fault.lineno) for fault in replay.faults}
    by_location = {}
    if wanted:
        for entry in chained:
            key = (str(entry.meta.get("filename", "?")), int(entry.meta.get("lineno", 0) or 0))
            if key in wanted:
                by_location[key] = entry
    for fault in replay.faults:
        entry = by_location.get((fault.filename, fault.lineno))
        source = {"filename": fault.filename, "lineno": fault.lineno}
        errors.append(LedgerError(source, f"[{fault.rule}] {fault.event}: {fault.message}", entry))
    return entries, errors
