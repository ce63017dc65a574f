"""Demo books for the ledger-tier tests, built once per test session through the engine.

A simulated platform (ledger_service.demo.Demo) on a fixed clock, booked across a month
boundary: seven closed business days 2026-02-25 … 2026-03-03, and the open day 2026-03-04
holding only its price (so the supply now equals the supply at the last close). The books
are built once and copied by the tests that change them.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from ledger_service import config
from ledger_service.demo import ORIGINAL, Demo
from ledger_service.engine import Engine
from ledger_service.entries import from_beancount
from ledger_service.journal import Books, journal_directives
from ledger_service.rules.events import PayoutRequest

START = date(2026, 2, 25)
TODAY = date(2026, 3, 5)
CLOSED = [START + timedelta(days=i) for i in range(7)]  # 02-25 … 03-03
OPEN_DAY = date(2026, 3, 4)

_built: dict[str, Path] = {}


class FixedClock:
    def __init__(self, today: date = TODAY) -> None:
        self.today = today

    def __call__(self) -> date:
        return self.today


def demo_books(tmp_path_factory) -> Path:
    """The session's demo books (built at first call). Do not change them: copy them."""
    if "demo" not in _built:
        root = tmp_path_factory.mktemp("ledger-demo") / "books"
        engine = Engine.init(root, config.load("seed-a"), start=START, clock=FixedClock())
        demo = Demo(engine, seed=7, plan=ORIGINAL)  # the draws these books were made with
        for index, day in enumerate(CLOSED):
            demo.register(day, 8 if index else 12)
            demo.grade(day, 2)
            demo.appoint_partners(day)
            demo.open_stores(day, 2 if index < 3 else 0)
            demo.trade(day, 14)
            if index == 4:
                demo.reverse_one(day)
            if index >= 5:  # payouts left requested (pending) at the close
                pending = 0
                for holder in demo.active + demo.merchants:
                    if pending == 2:
                        break
                    pending += demo.book(PayoutRequest(holder, Decimal(3)), day) is not None
            engine.close_days(day)
        from ledger_service import views

        views.update(root)  # the engine does it as days close once wired; harmless twice
        engine.dispose()
        assert demo.stats.booked["order"] > 20 and demo.stats.booked["reverse"] == 1, demo.stats
        _built["demo"] = root
    return _built["demo"]


def copy_books(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def engine_on(root: Path, today: date = TODAY) -> Engine:
    return Engine(root, clock=FixedClock(today))


def chain(root: Path) -> list:
    """Every chained entry of the journal, in order."""
    return [e for _p, d, _err in journal_directives(Books(root)) if d is not None
            for e in [from_beancount(d)] if e is not None]
