"""`subledger.spendable_sp` is `balance(...).sp`, without the copy (the rules' fast path)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_service.state import Epoch, Globals, Holder
from ledger_service.subledger import balance, spendable_sp

AMOUNTS = st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False)


class Epochs:
    def epoch(self, number: int) -> Epoch:
        return Epoch(number, Decimal("0.5") + number, Decimal("0.25"))


@settings(max_examples=300, deadline=None)
@given(AMOUNTS, AMOUNTS, AMOUNTS, AMOUNTS, st.integers(0, 2), st.integers(0, 2))
def test_spendable_sp_is_balance_sp(sp_exact, shares, sp_ckpt, sp_index, holder_epoch, epoch):
    holder = Holder("m1", "member", date(2026, 3, 1), sp_exact=sp_exact, shares=shares, sp_ckpt=sp_ckpt,
                    epoch=min(holder_epoch, epoch))
    g = Globals(date(2026, 3, 1), date(2026, 3, 2), Decimal(1), epoch=epoch, sp_index=sp_index)
    before = holder.copy()
    try:
        expected = balance(holder, g, Epochs()).sp
    except AssertionError:
        expected = None
    try:
        got = spendable_sp(holder, g, Epochs())
    except AssertionError:
        got = None
    assert got == expected and str(got) == str(expected)
    assert holder == before  # neither changes the holder
