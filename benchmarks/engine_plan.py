"""Micro-benchmark: the pure per-event Python of booking (Engine._plan_one: parse, rules, chain,
hash, render, apply) on the seed-like mix of engine_events.py, and the digest of the journal made.

    PYTHONPATH=$PWD python benchmarks/engine_plan.py --events 5000 --batch 1000 [--repeat 3]

Prints µs per event spent inside `Engine._plan_one` (each 25 events' best time over --repeat runs,
summed; no profiler, so call-heavy code is not slowed), split into `rules.book`, `_chain` (hash + render + apply) and
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

    # per Engine._plan call (one commit) and every 25 events: the runs are deterministic, so bucket i is
    # the same work in every run and its best time over the runs filters out the other processes' bursts
    timers: list[dict[str, float]] = [{"plan_one": 0.0, "book": 0.0, "chain": 0.0}]  # (and the closes)
    counts = {"plan_one": 0}
    real_plan_one, real_book, real_chain = engine_mod.Engine._plan_one, rules.book, engine_mod._chain
    real_plan = engine_mod.Engine._plan
    clock = time.perf_counter

    def plan(self, *a, **kw):
        timers.append({"plan_one": 0.0, "book": 0.0, "chain": 0.0})
        return real_plan(self, *a, **kw)

    def plan_one(self, *a, **kw):
        if counts["plan_one"] % 25 == 0:  # a new bucket every 25 events (a few ms)
            timers.append({"plan_one": 0.0, "book": 0.0, "chain": 0.0})
        t0 = clock()
        try:
            return real_plan_one(self, *a, **kw)
        finally:
            timers[-1]["plan_one"] += clock() - t0
            counts["plan_one"] += 1

    def book(*a, **kw):
        t0 = clock()
        try:
            return real_book(*a, **kw)
        finally:
            timers[-1]["book"] += clock() - t0

    def chain(*a, **kw):
        t0 = clock()
        try:
            return real_chain(*a, **kw)
        finally:
            timers[-1]["chain"] += clock() - t0

    engine_mod.Engine._plan_one, rules.book, engine_mod._chain = plan_one, book, chain
    engine_mod.Engine._plan = plan
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
        engine_mod.Engine._plan = real_plan
        signing.Ed25519PrivateKey = real_key_class
        liabilities.secrets = real_secrets
    return {"events": counts["plan_one"], "booked": seeder.booked, "digest": digest, "commits": timers}


def summary(results: list[dict]) -> dict:
    """µs per event: the sum over the buckets of each bucket's best time over the runs."""
    n = results[0]["events"]
    best = {key: sum(min(r["commits"][i][key] for r in results) for i in range(len(results[0]["commits"])))
            for key in ("plan_one", "book", "chain")}
    us = {k: v / n * 1e6 for k, v in best.items()}
    return {"events": n, "booked": results[0]["booked"], "digest": results[0]["digest"], "plan_one_us": us["plan_one"],
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
    best = summary(results)
    print(f"events planned: {best['events']:,} ({best['booked']:,} entries booked), "
          f"best per bucket of {args.repeat} runs")
    print(f"_plan_one: {best['plan_one_us']:7.1f} µs/event  (rules.book {best['book_us']:.1f}, "
          f"_chain {best['chain_us']:.1f}, other {best['other_us']:.1f}; closes included)")
    print(f"journal digest: {best['digest']}")


if __name__ == "__main__":
    main()
