"""The figures the extension pages show, computed from the ledger tier Fava has loaded (pure).

Supply: balances of `Equity:SP:*`, `Liabilities:Holders:SP` and `Assets:Pool:Backing` at the
end of every day of the ledger, the price directives (the value of a point), and the rules
copied from the genesis entry (`custom "ledger-service" "rules"`). Days: the journal day files
the ledger cites, with their event counts and closing hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from .. import accounts as A
from ..amounts import CNY, EXACT_CONTEXT, SP, ZERO, fmt, quantize, quantize_value

KEYS = ("cap", "issued", "released", "sold", "burned", "redeemed", "circulating", "pool_cny",
        "value_cny_per_sp", "closing_value_cny_per_sp")
_TRACKED = (A.SP_RELEASED, A.SP_SOLD, A.SP_BURNED, A.SP_REDEEMED, A.HOLDERS_SP, A.POOL)


@dataclass
class DayPoint:
    day: date
    released: Decimal  # SP released that day
    burned: Decimal    # SP burned that day, net of reversals
    balances: dict[str, Decimal]  # tracked accounts at the day's end

    @property
    def circulating(self) -> Decimal:
        return -self.balances.get(A.HOLDERS_SP, ZERO)

    @property
    def pool(self) -> Decimal:
        return self.balances.get(A.POOL, ZERO)


@dataclass
class Supply:
    rules: dict[str, str] = field(default_factory=dict)
    points: list[DayPoint] = field(default_factory=list)
    prices: list[tuple[date, Decimal]] = field(default_factory=list)

    @property
    def cap(self) -> Decimal:
        return Decimal(self.rules.get("sp_cap", "0"))

    @property
    def last_day(self) -> date | None:
        return self.points[-1].day if self.points else None

    def point(self, day: date | None = None) -> DayPoint | None:
        found = None
        for p in self.points:
            if day is not None and p.day > day:
                break
            found = p
        return found

    def price_on(self, day: date | None) -> tuple[date, Decimal] | None:
        found = None
        for d, v in self.prices:
            if day is not None and d > day:
                break
            found = (d, v)
        return found

    def report(self, day: date | None = None) -> dict[str, str]:
        """The supply report, as `ledger-service supply [--date DAY]` prints it (decimal strings).

        Without a day: the latest position and the latest price (the value of the open day).
        With a day: at that day's close: its value, and the price written by its close.
        """
        p = self.point(day)
        bal = p.balances if p else {}
        released = bal.get(A.SP_RELEASED, ZERO)
        sold = bal.get(A.SP_SOLD, ZERO)
        burned = -bal.get(A.SP_BURNED, ZERO)
        redeemed = -bal.get(A.SP_REDEEMED, ZERO)
        issued = released + sold
        circulating = issued - burned - redeemed
        pool = bal.get(A.POOL, ZERO)
        out = {
            "cap": fmt(quantize(self.cap, SP)), "issued": fmt(quantize(issued, SP)),
            "released": fmt(quantize(released, SP)), "sold": fmt(quantize(sold, SP)),
            "burned": fmt(quantize(burned, SP)), "redeemed": fmt(quantize(redeemed, SP)),
            "circulating": fmt(quantize(circulating, SP)), "pool_cny": fmt(quantize(pool, CNY)),
        }
        computed = (quantize_value(EXACT_CONTEXT.divide(pool, circulating)) if circulating > 0
                    else quantize_value(Decimal(self.rules.get("sp_initial_value", "1"))))
        if day is None:
            latest = self.prices[-1] if self.prices else None
            out["value_cny_per_sp"] = fmt(latest[1]) if latest else fmt(computed)
            out["value_date"] = latest[0].isoformat() if latest else ""
            out["closing_value_cny_per_sp"] = fmt(computed)
        else:
            on = self.price_on(day)
            out["value_cny_per_sp"] = fmt(on[1]) if on else fmt(computed)
            out["value_date"] = on[0].isoformat() if on else ""
            nxt = next(((d, v) for d, v in self.prices if d > day), None)
            out["closing_value_cny_per_sp"] = fmt(nxt[1]) if nxt else fmt(computed)
        out["date"] = day.isoformat() if day else (p.day.isoformat() if p else "")
        return out


def supply_of_entries(entries) -> Supply:
    """Walk the ledger's directives (Beancount's, sorted by date) once."""
    from beancount.core import data

    supply = Supply()
    balances: dict[str, Decimal] = {}
    current: date | None = None
    released = burned = ZERO

    def close_day() -> None:
        if current is not None:
            supply.points.append(DayPoint(current, released, burned, {a: balances.get(a, ZERO) for a in _TRACKED}))

    for entry in entries:
        if isinstance(entry, data.Custom):
            if entry.type == "ledger-service" and entry.values and entry.values[0].value == "rules":
                supply.rules = {k: str(v) for k, v in entry.meta.items() if k not in ("filename", "lineno")}
            continue
        if isinstance(entry, data.Price):
            if entry.currency == "SP" and entry.amount.currency == "CNY":
                supply.prices.append((entry.date, entry.amount.number))
            continue
        if not isinstance(entry, data.Transaction):
            continue
        if entry.date != current:
            close_day()
            current, released, burned = entry.date, ZERO, ZERO
        flow = entry.meta.get("kind") != "opening"
        for posting in entry.postings:
            if posting.units is None or not isinstance(posting.units.number, Decimal):
                continue
            number = posting.units.number
            balances[posting.account] = EXACT_CONTEXT.add(balances.get(posting.account, ZERO), number)
            if flow and posting.account == A.SP_RELEASED:
                released += number
            elif flow and posting.account == A.SP_BURNED:
                burned -= number
    close_day()
    supply.prices.sort(key=lambda dv: dv[0])
    return supply


@dataclass
class DayRow:
    day: date
    journal: str
    events: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    closing_hash: str = ""
    closed: bool = False
    price: Decimal | None = None


def days_of_entries(entries) -> list[DayRow]:
    """One row per journal day file the ledger cites, newest first."""
    from beancount.core import data

    rows: dict[str, DayRow] = {}
    for entry in entries:
        if not isinstance(entry, (data.Transaction, data.Price)):
            continue
        journal = entry.meta.get("journal")
        if not journal or entry.meta.get("kind") == "opening":
            continue
        row = rows.setdefault(journal, DayRow(entry.date, journal))
        if isinstance(entry, data.Price):
            row.price = entry.amount.number
            continue
        kind = entry.meta.get("kind", "")
        count = int(str(entry.meta.get("events", "0")) or 0)
        row.events += count
        row.kinds[kind] = row.kinds.get(kind, 0) + count
        row.closing_hash = str(entry.meta.get("closing_hash", ""))
        if kind == "release":
            row.closed = True
    return sorted(rows.values(), key=lambda r: r.day, reverse=True)
