"""The booking path's fast paths equal what they replace: `entries.chain_entry` is `entry_hash`, `with_meta` and
`render` in one pass (the same strings); the refused characters are not printable;"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_service.entries import Posting, Price, Transaction, chain_entry, entry_hash, render, with_meta

KEYS = st.from_regex(r"[a-z][a-zA-Z0-9_-]{1,8}", fullmatch=True)
# printable text with what needs escaping in one form or the other: quotes, backslashes, non-ASCII
VALUES = st.text(alphabet=st.sampled_from(list('ab1 "\\é中-_.:#^')), max_size=12)
META = st.lists(st.tuples(KEYS | st.sampled_from(["prev", "hash", "filename"]), VALUES), max_size=6).map(tuple)
NUMBERS = st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**9, max_value=10**9) | \
    st.sampled_from([Decimal("5.0000"), Decimal("0E-8"), Decimal("1E+3"), Decimal("-0.0001")])
POSTINGS = st.lists(st.builds(Posting, st.sampled_from(["Assets:Pool", "Liabilities:Holders:SP"]), NUMBERS,
                              st.sampled_from(["SP", "SV", "CNY"]), META), max_size=5).map(tuple)
TAGS = st.lists(st.from_regex(r"[a-z]{1,5}", fullmatch=True), max_size=2, unique=True).map(tuple)
TRANSACTIONS = st.builds(Transaction, st.dates(date(2000, 1, 1), date(2100, 1, 1)), VALUES, VALUES, META, POSTINGS,
                         st.sampled_from(["*", "!"]), TAGS, TAGS)
PRICES = st.builds(Price, st.dates(date(2000, 1, 1), date(2100, 1, 1)), NUMBERS, META)
PREVS = st.sampled_from(["0" * 64, "ab" * 32])


def expected(entry, prev):
    digest = entry_hash(entry, prev)
    full = with_meta(entry, [("prev", prev), ("hash", digest)])
    return digest, full, render(full)


@settings(max_examples=300, deadline=None)
@given(TRANSACTIONS | PRICES, PREVS)
def test_chain_entry_is_hash_with_meta_render(entry, prev):
    assert chain_entry(entry, prev) == expected(entry, prev)


def test_chain_entry_of_a_booked_kind():
    entry = Transaction(date(2026, 3, 1), "order", 'order o1: 10 CNY at "s1"',
                        (("event", "E000000002"), ("kind", "order"), ("seq", "2"), ("amount_cny", "10.00")),
                        (Posting("Liabilities:Holders:SP", Decimal("0.0100"), "SP",
                                 (("holder", "s1"), ("leg", "deduct"))),
                         Posting("Equity:SP:Burned", Decimal("-0.0100"), "SP", (("leg", "burn"), ("merchant", "s1")))))
    assert chain_entry(entry, "0" * 64) == expected(entry, "0" * 64)


def test_refused_characters_are_not_printable():
    """The fast paths of `entries` and `rules.events.parse` skip the refused-character search for
    printable text: that holds only if no refused character is printable."""
    from ledger_service.text import REFUSED_RANGES

    assert not [hex(c) for lo, hi in REFUSED_RANGES for c in range(lo, hi + 1) if chr(c).isprintable()]

