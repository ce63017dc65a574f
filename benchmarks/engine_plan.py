"""Micro-benchmark: the pure per-event Python of booking (Engine._plan_one: parse, rules, chain,
hash, render, apply) on the seed-like mix of engine_events.py, and the digest of the journal made.

    PYTHONPATH=$PWD python benchmarks/engine_plan.py --events 5000 --batch 1000 [--repeat 3]

Prints µs per event spent inside `Engine._plan_one` (best of --repeat runs; no profiler, so
call-heavy code is not slowed), split into `rules.book`, `_chain` (hash + render + apply) and
the rest (parse, day check), and the SHA-256 over every journal day file (name and bytes, in
order): a change that keeps the journal byte-identical keeps that digest.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_events import scenario  # noqa: E402
from seeding import Seeder  # noqa: E402


def journal_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((root / "journal").rglob("*.beancount")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class _FixedKey:
    """Ed25519PrivateKey whose `generate` always gives the same key (Ed25519 signatures are deterministic)."""

    @staticmethod
    def generate():
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))

    @staticmethod
    def from_private_bytes(data: bytes):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(data)


def run(events: int, batch: int, seed: int) -> dict:
    from ledger_service import engine as engine_mod
    from ledger_service import rules, signing
    from ledger_service.views import liabilities

    timers = {"plan_one": 0.0, "book": 0.0, "chain": 0.0}
    counts = {"plan_one": 0}
    real_plan_one, real_book, real_chain = engine_mod.Engine._plan_one, rules.book, engine_mod._chain
    clock = time.perf_counter

    def plan_one(self, *a, **kw):
        t0 = clock()
        try:
            return real_plan_one(self, *a, **kw)
        finally:
            timers["plan_one"] += clock() - t0
            counts["plan_one"] += 1

    def book(*a, **kw):
        t0 = clock()
        try:
            return real_book(*a, **kw)
        finally:
            timers["book"] += clock() - t0

    def chain(*a, **kw):
        t0 = clock()
        try:
            return real_chain(*a, **kw)
        finally:
            timers["chain"] += clock() - t0

    engine_mod.Engine._plan_one, rules.book, engine_mod._chain = plan_one, book, chain
    real_key_class = signing.Ed25519PrivateKey
    signing.Ed25519PrivateKey = _FixedKey  # the same signing key each run: the same journal
    real_secrets = liabilities.secrets
    liabilities.secrets = types.SimpleNamespace(token_hex=lambda n: "5a" * n)  # and the same salts' key
    try:
        with tempfile.TemporaryDirectory(prefix="engine-plan-") as temp:
            root = Path(temp) / "books"
            seeder = Seeder(root, scenario(events, batch, seed), update_ledger=False)
            seeder.run()
            digest = journal_digest(root)
    finally:
        engine_mod.Engine._plan_one, rules.book, engine_mod._chain = real_plan_one, real_book, real_chain
        signing.Ed25519PrivateKey = real_key_class
        liabilities.secrets = real_secrets
    n = counts["plan_one"]
    us = {k: v / n * 1e6 for k, v in timers.items()}
    return {"events": n, "booked": seeder.booked, "digest": digest, "plan_one_us": us["plan_one"],
            "book_us": us["book"], "chain_us": us["chain"], "other_us": us["plan_one"] - us["book"] - us["chain"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = [run(args.events, args.batch, args.seed) for _ in range(args.repeat)]
    digests = {r["digest"] for r in results}
    assert len(digests) == 1, digests
    best = min(results, key=lambda r: r["plan_one_us"])
    print(f"events planned: {best['events']:,} ({best['booked']:,} entries booked), best of {args.repeat}")
    print(f"_plan_one: {best['plan_one_us']:7.1f} µs/event  (rules.book {best['book_us']:.1f}, "
          f"_chain {best['chain_us']:.1f}, other {best['other_us']:.1f}; closes included)")
    print(f"journal digest: {best['digest']}")


if __name__ == "__main__":
    main()
