"""Per-holder balances as shares × indices: the O(1) daily release (SPEC §6).

A release makes every holder's active SV shrink by the same factor and pays SP in
proportion to it, so it touches two numbers, not a million holders:

- the SV index `D` (SV per share of the current epoch), starting at 1;
- the SP index `S` (cumulative SP paid per share), starting at 0.

A holder keeps `shares`; their active SV is shares × D; at each of their own
events their SP is brought up to date with shares × (S − S at their last event).
A release of R SP at value v, converting C = R × v SV, over T total shares:

    S' = S + R / T        D' = D − C / T

When D' falls below `REBASE_BELOW` (all active SV converted gives D' = 0) the
epoch ends: its final S and D are recorded, D restarts at 1, and each holder's
shares carry over lazily (× D') at their next event. So D never reaches zero for
new grants and never grows so small that it loses precision.

All index arithmetic runs at 34 significant digits (`amounts.INDEX_CONTEXT`).
Balances shown or spent are rounded down to 0.0001, so holders never hold more
than the control accounts; the difference is the rounding residue `verify` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .amounts import INDEX_CONTEXT, SP, SV, ZERO, add, div, floor, mul, sub
from .state import Epoch, Epochs, Globals, Holder

REBASE_BELOW = Decimal("1e-6")
# Index arithmetic leaves crumbs far below any quantum (300 SV granted at D = 0.7 reads
# back as 299.99999...98). Balances are first rounded to this grain, then floored.
GRAIN = Decimal("1e-18")


def settle(holder: Holder, g: Globals, epochs: Epochs) -> None:
    """Bring `holder` to the current epoch and SP index (value-preserving)."""
    while holder.epoch < g.epoch:
        ended = epochs.epoch(holder.epoch)
        if holder.shares:
            holder.sp_exact = add(holder.sp_exact, mul(holder.shares, sub(ended.sp_index_end, holder.sp_ckpt)))
        holder.shares = mul(holder.shares, ended.factor)
        holder.sp_ckpt = ended.sp_index_end
        holder.epoch += 1
    if holder.shares and holder.sp_ckpt != g.sp_index:
        holder.sp_exact = add(holder.sp_exact, mul(holder.shares, sub(g.sp_index, holder.sp_ckpt)))
    holder.sp_ckpt = g.sp_index
    assert holder.shares >= 0 and holder.sp_exact >= 0, holder


def sv_active(holder: Holder, g: Globals) -> Decimal:
    """Active SV, exact (the holder must be settled)."""
    assert holder.epoch == g.epoch
    return mul(holder.shares, g.sv_index)


@dataclass(frozen=True, slots=True)
class Balance:
    sv_locked: Decimal
    sv_active: Decimal
    sp: Decimal


def balance(holder: Holder, g: Globals, epochs: Epochs) -> Balance:
    """The holder's balances rounded down to the commodity quantum, without changing them."""
    view = holder.copy()
    settle(view, g, epochs)
    return Balance(floor(view.sv_locked, SV), spendable(sv_active(view, g), SV), spendable(view.sp_exact, SP))


def spendable(exact: Decimal, currency: str) -> Decimal:
    """What a holder may spend of an exact balance: to the grain, then rounded down."""
    return floor(exact.quantize(GRAIN, context=INDEX_CONTEXT), currency)


def take_sp(holder: Holder, sp: Decimal) -> None:
    """Remove `sp` (at most their spendable SP) from a settled holder."""
    assert sp <= spendable(holder.sp_exact, SP), (holder.id, sp, holder.sp_exact)
    holder.sp_exact = sub(holder.sp_exact, sp)
    if holder.sp_exact < 0:
        assert holder.sp_exact > -GRAIN, holder
        holder.sp_exact = ZERO


def grant_active(holder: Holder, g: Globals, sv: Decimal) -> None:
    """Add (or, negative, take back) `sv` active SV to a settled holder."""
    shares = div(sv, g.sv_index)
    holder.shares = add(holder.shares, shares)
    if holder.shares < 0:
        # Taking back exactly what is held can leave a rounding crumb below zero.
        assert mul(holder.shares, g.sv_index) > -GRAIN, holder
        shares = sub(shares, holder.shares)
        holder.shares = ZERO
    g.total_shares = add(g.total_shares, shares)
    if g.total_shares < 0:
        g.total_shares = ZERO


@dataclass(frozen=True, slots=True)
class ReleaseIndices:
    sv_index: Decimal
    sp_index: Decimal
    epoch: int
    total_shares: Decimal
    ended: Epoch | None  # the epoch this release closed, if D fell below REBASE_BELOW


def after_release(g: Globals, released_sp: Decimal, converted_sv: Decimal) -> ReleaseIndices:
    """The indices after a release of `released_sp` SP converting `converted_sv` SV."""
    if released_sp == 0 or g.total_shares == 0:
        return ReleaseIndices(g.sv_index, g.sp_index, g.epoch, g.total_shares, None)
    sp_index = add(g.sp_index, div(released_sp, g.total_shares))
    sv_index = sub(g.sv_index, div(converted_sv, g.total_shares))
    if sv_index < 0:
        sv_index = ZERO
    if sv_index >= REBASE_BELOW:
        return ReleaseIndices(sv_index, sp_index, g.epoch, g.total_shares, None)
    ended = Epoch(g.epoch, sp_index, sv_index)
    return ReleaseIndices(Decimal(1), sp_index, g.epoch + 1, mul(g.total_shares, sv_index), ended)
