"""The journal's exact bytes for a seeded mix of events (a guard for speed work on the booking path).

Books the seed-like mix of `benchmarks/engine_plan.py` (registrations, packs, grades, partners,
stores, deposits, orders, transfers, payouts settled and cancelled, redemptions, the daily closes
and their signed checkpoints; a fixed signing key and salts' key) and compares the SHA-256 over
every day file with the digest recorded when the booking path was last changed on purpose. A
change to the rules, the entries' text or the hash changes it: then check the new journal
(`benchmarks/engine_plan.py`, `ledger-service verify`) and record the new digest here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# engine_plan.run(800, 200, seed=6): 809 entries
DIGEST_800 = "a11943e43c64c681fb8f3b6d1e2292151dcfea661d91d6245abc860a78af39b4"


@pytest.mark.slow
def test_seeded_journal_bytes_unchanged(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import engine_plan

    try:
        result = engine_plan.run(800, 200, 6)
    finally:
        for name in ("engine_plan", "engine_events", "seeding"):
            sys.modules.pop(name, None)
    assert result["booked"] == 809
    assert result["digest"] == DIGEST_800
