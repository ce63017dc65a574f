"""The reports: each figure the service shows, computed in one place (pure: no IO).

- the supply report (SPEC §3, §7): the control balances as cap, issued, released, sold,
  burned, redeemed, circulating and pool, with the value of a point — what `GET /v1/supply`,
  `ledger-service supply`, `verify` and Fava's Supply page show, and what a day's close
  stores in its day row;
- a holder's view: attributes and balances rounded as shown — what `GET /v1/holders/{id}`
  (and `/v1/merchants/{id}`) answers and Fava's Holder page shows;
- the genesis position: the `Globals` every fold of the journal starts from.

Every function takes plain data (a `Globals` or a mapping of balances, a `Holder`, the
`Params`) and returns plain data; the callers read the database, the journal or the
ledger tier and hand the result on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from .amounts import CNY, SP, ZERO, exact_mul, floor, fmt, quantize
from .config import Params
from .rules.close import value_of
from .rules.orders import max_order_cny, opening
from .state import MERCHANT, Epochs, Globals, Holder, supply_numbers
from .subledger import balance

# The supply report's figures of the control balances, then the two values of a point.
SUPPLY_FIGURES = ("cap", "issued", "released", "sold", "burned", "redeemed", "circulating", "pool_cny")
SUPPLY_KEYS = SUPPLY_FIGURES + ("value_cny_per_sp", "closing_value_cny_per_sp")
# A holder's balances as shown (rounded down to the commodity quantum).
HOLDER_BALANCES = ("sv_locked", "sv_active", "sp", "sp_value_cny")


# -- the genesis position ------------------------------------------------------------------------


def genesis_globals(day: date, params: Params) -> Globals:
    """The position before the genesis entry is applied: nothing booked, the value of a point
    the initial value (`rules.value_of` of empty books). The engine's `init`, `verify`'s replay
    and the holder index all start from it."""
    return Globals(genesis_day=day, open_day=day, value=value_of(Globals(day, day, ZERO), params))


# -- supply -------------------------------------------------------------------------------------


def supply_figures(balances: Mapping[str, Decimal], cap: Decimal) -> dict[str, str]:
    """The figures of the control balances, as shown: the pool to the fen, the rest to 0.0001 SP."""
    numbers = supply_numbers(balances, cap)
    return {key: fmt(quantize(numbers[key], CNY if key == "pool_cny" else SP)) for key in SUPPLY_FIGURES}


def supply_report(g: Globals, params: Params) -> dict[str, str]:
    """The supply report of a position: its figures, the value of its open day (the last price)
    and the value its close would set (`rules.value_of`). A day's close stores this report of
    the position right after its release (so the value is the day's, the closing value the
    next day's price)."""
    out = supply_figures(g.balances, params.sp_cap)
    out["value_cny_per_sp"] = fmt(g.value)
    out["closing_value_cny_per_sp"] = fmt(value_of(g, params))
    return out


def open_supply(g: Globals, params: Params, day: date) -> dict[str, Any]:
    """`GET /v1/supply` on the open day (or a later day not ended): the position now."""
    return {**supply_report(g, params), "date": day.isoformat(), "closed": False}


def closed_supply(day: date, stored: Mapping[str, str]) -> dict[str, Any]:
    """`GET /v1/supply` on a closed day: the report its close stored (`supply_report`)."""
    return {**stored, "date": day.isoformat(), "closed": True}


def closing_value(balances: Mapping[str, Decimal], params: Params) -> Decimal:
    """The value of a point a close sets on these balances (`rules.value_of`), for a reader
    that has balances but no position (Fava reads the ledger tier's)."""
    return value_of(Globals(date.min, date.min, ZERO, balances=dict(balances)), params)


# -- a holder ----------------------------------------------------------------------------------------


def holder_view(holder: Holder, g: Globals, epochs: Epochs, params: Params) -> dict[str, Any]:
    """A holder's view: attributes, and balances at the position `g` rounded down as shown
    (Decimals, dates and None: the API writes Decimals with `amounts.fmt`).

    A merchant adds its store's attributes, its deposits to the fen and whether it can take
    orders (`rules.orders.opening`) with the numbers that say why: the deposit rule and value,
    the deposit in SP at the day's value (rounded up; None at a value of 0), the day its first
    order opened it (rule "sp_held"), whether the deposit is met, and the largest order its
    SP covers today (0 when it can take none; None: no limit, a rebate rate of 0)."""
    held = balance(holder, g, epochs)
    out: dict[str, Any] = {
        "id": holder.id, "kind": holder.kind, "active": holder.active, "role": holder.role,
        "referrer": holder.referrer, "region": holder.region,
        "sv_locked": held.sv_locked, "sv_active": held.sv_active, "sp": held.sp,
        "sp_value_cny": floor(exact_mul(held.sp, g.value), CNY),
        "value_cny_per_sp": g.value,
    }
    if holder.kind == MERCHANT:
        gate = opening(holder, held.sp, g.value, params)
        largest: Decimal | None = quantize(ZERO, CNY)
        if gate.can_take_orders and g.value > 0 and holder.rebate_rate is not None:
            largest = max_order_cny(held.sp, holder.rebate_rate, g.value)
        out.update({
            "owner": holder.owner, "channel": holder.channel, "rebate_rate": holder.rebate_rate,
            "store_referrer": holder.store_referrer, "deposits_cny": quantize(holder.deposits_cny, CNY),
            "deposit_rule": gate.rule, "deposit_value_cny": params.merchant_deposit_value,
            "deposit_sp": gate.deposit_sp, "opened": holder.opened, "deposit_met": gate.deposit_met,
            "can_take_orders": gate.can_take_orders, "max_order_cny": largest,
        })
    return out


__all__ = ["HOLDER_BALANCES", "SUPPLY_FIGURES", "SUPPLY_KEYS", "closed_supply", "closing_value", "genesis_globals",
           "holder_view", "open_supply", "supply_figures", "supply_report"]
