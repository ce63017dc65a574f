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

from beancount.core import data

from .. import accounts as A
from .. import reports
from ..amounts import CNY, EXACT_CONTEXT, SP, ZERO, fmt, quantize
from ..config import ConfigError, Params
from ..i18n import N_
from ..rules.events import EventKind
from ..state import supply_numbers

KEYS = reports.SUPPLY_KEYS
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

    @property
    def params(self) -> Params | None:
        """The rules the ledger copies from the genesis entry (None: none, or incomplete)."""
        return _params(self.rules)

    def report(self, day: date | None = None) -> dict[str, str]:
        """The supply report, as `ledger-service supply [--date DAY]` prints it (decimal strings):
        the figures of `reports.supply_figures` at the close of the day (default: the last).

        Without a day: the latest price (the value of the open day) and the value the
        position's close would set. With a day: that day's value, and the price written by its
        close. (A price the ledger lacks is `reports.closing_value` of the balances.)
        """
        p = self.point(day)
        bal = p.balances if p else {}
        params = self.params
        out = reports.supply_figures(bal, params.sp_cap if params is not None else self.cap)
        computed = fmt(reports.closing_value(bal, params)) if params is not None else ""
        if day is None:
            latest = self.prices[-1] if self.prices else None
            out["value_cny_per_sp"] = fmt(latest[1]) if latest else computed
            out["value_date"] = latest[0].isoformat() if latest else ""
            out["closing_value_cny_per_sp"] = computed
        else:
            on = self.price_on(day)
            out["value_cny_per_sp"] = fmt(on[1]) if on else computed
            out["value_date"] = on[0].isoformat() if on else ""
            nxt = next(((d, v) for d, v in self.prices if d > day), None)
            out["closing_value_cny_per_sp"] = fmt(nxt[1]) if nxt else computed
        out["date"] = day.isoformat() if day else (p.day.isoformat() if p else "")
        return out


@dataclass(frozen=True)
class DayFlow:
    """Why the value of a point moved on one day (issue 14): the day's value, the SP it put into
    circulation (released, sold against deposits) and took out (burned by orders, redeemed by
    payouts), the pool's change, and the value its close set (pool ÷ circulating)."""

    day: date
    value: Decimal | None      # CNY/SP in force that day (its price)
    released: Decimal          # SP
    sold: Decimal              # SP
    burned: Decimal            # SP
    redeemed: Decimal          # SP
    circulating: Decimal       # SP at the close
    pool_change: Decimal       # CNY
    pool: Decimal              # CNY at the close
    closing_value: Decimal | None  # CNY/SP: the next day's value

    @property
    def change_pct(self) -> Decimal | None:
        """The value set by the close against the day's value, in per cent."""
        if self.value is None or self.closing_value is None or not self.value:
            return None
        return ((self.closing_value - self.value) * 100 / self.value).quantize(Decimal("0.01"))

    @property
    def driver(self) -> str:
        """The day's main push on the value, in words: SP added without CNY (releases) lowers it,
        SP removed by orders (burns) raises it, CNY into the pool raises it."""
        if self.change_pct is None or self.change_pct == 0:
            return N_("unchanged")
        sp_in, sp_out = self.released, self.burned
        if self.change_pct < 0:
            return N_("releases outweigh burns") if sp_in > sp_out else N_("pool paid out")
        return N_("burns outweigh releases") if sp_out > sp_in else N_("pool grew")


def day_flows(supply: Supply, through: date | None = None) -> list[DayFlow]:
    """One `DayFlow` per day of the ledger through `through` (default: all), newest first."""
    params = supply.params
    cap = params.sp_cap if params is not None else supply.cap
    out: list[DayFlow] = []
    before = supply_numbers({}, cap)
    for p in supply.points:
        if through is not None and p.day > through:
            break
        now = supply_numbers(p.balances, cap)
        on = supply.price_on(p.day)
        nxt = next((v for d, v in supply.prices if d > p.day), None)
        if nxt is None and params is not None:
            nxt = reports.closing_value(p.balances, params)
        moved = {k: quantize(now[k] - before[k], SP) for k in ("released", "sold", "burned", "redeemed")}
        out.append(DayFlow(
            p.day, on[1] if on else None, **moved,
            circulating=quantize(now["circulating"], SP),
            pool_change=quantize(now["pool_cny"] - before["pool_cny"], CNY),
            pool=quantize(now["pool_cny"], CNY), closing_value=nxt))
        before = now
    return out[::-1]


def supply_of_entries(entries) -> Supply:
    """Walk the ledger's directives (Beancount's, sorted by date) once."""
    supply = Supply()
    balances: dict[str, Decimal] = {}
    current: date | None = None
    released = burned = ZERO

    def close_day() -> None:
        if current is not None:
            supply.points.append(DayPoint(current, released, burned, {a: balances.get(a, ZERO) for a in _TRACKED}))

    for entry in entries:
        if isinstance(entry, data.Custom):
            found = _rules_of(entry)
            if found is not None:
                supply.rules = found
            continue
        if isinstance(entry, data.Price):
            if entry.currency == "SP" and entry.amount.currency == "CNY" and entry.amount.number is not None:
                supply.prices.append((entry.date, entry.amount.number))
            continue
        if not isinstance(entry, data.Transaction):
            continue
        if entry.date != current:
            close_day()
            current, released, burned = entry.date, ZERO, ZERO
        day_released, day_burned = _post(entry, balances)
        released, burned = released + day_released, burned + day_burned
    close_day()
    supply.prices.sort(key=lambda dv: dv[0])
    return supply


def _post(entry, balances: dict[str, Decimal]) -> tuple[Decimal, Decimal]:
    """Add a transaction's postings to `balances`; the SP it released and burned (none for an
    opening balance)."""
    flow = entry.meta.get("kind") != "opening"
    released = burned = ZERO
    for posting in entry.postings:
        if posting.units is None or not isinstance(posting.units.number, Decimal):
            continue
        number = posting.units.number
        balances[posting.account] = EXACT_CONTEXT.add(balances.get(posting.account, ZERO), number)
        if flow and posting.account == A.SP_RELEASED:
            released += number
        elif flow and posting.account == A.SP_BURNED:
            burned -= number
    return released, burned


def params_of_entries(entries) -> Params | None:
    """The rules the ledger copies from the genesis entry (None: none, or incomplete); they
    come first (dated the genesis day), so the walk stops early."""
    for entry in entries:
        if isinstance(entry, data.Custom):
            found = _rules_of(entry)
            if found is not None:
                return _params(found)
    return None


def _rules_of(entry) -> dict[str, str] | None:
    """The rules of a `custom "ledger-service" "rules"` entry (None: another entry)."""
    if entry.type == "ledger-service" and entry.values and entry.values[0].value == "rules":
        return {k: str(v) for k, v in entry.meta.items() if k not in ("filename", "lineno")}
    return None


def _params(rules: dict[str, str]) -> Params | None:
    try:
        return Params.from_meta(rules)
    except ConfigError:
        return None


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
        if kind == EventKind.RELEASE:
            row.closed = True
    return sorted(rows.values(), key=lambda r: r.day, reverse=True)
