"""Replay: re-derive every entry of the journal from its inputs and the entries before it.

This is the proof behind the product, shared by `verify` and the Beancount
plugin. For each chained entry, in order, it checks:

- the chain: `seq` follows the previous one, `prev` is the previous entry's
  hash, `hash` is the SHA-256 of the entry's canonical form (an edit, insertion,
  deletion or reordering breaks one of these at the place it happened);
- the entry is whole (`postings` metadata equals the postings read) and each
  commodity balances to exactly zero;
- the rules: the entry the pure rules book for the same inputs, on the position
  rebuilt from the entries before it, is the entry found, posting for posting
  (the release formula, every order split, every price = pool ÷ circulating);
- the invariants after it: issued ≤ cap, no holder below zero.

Faults are located by file, line and event id. Memory holds the position
(holders, open payouts, reversible events), never the entries themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from .. import rules
from ..amounts import ZERO, fmt
from ..apply import apply_entry
from ..config import ConfigError, Params
from ..entries import (GENESIS_PREV, Entry, Price, Transaction, canonical, entry_hash, from_beancount,
                       location)
from ..errors import Refusal
from ..state import Globals, MemoryState, Overlay, supply_of


@dataclass(frozen=True, slots=True)
class Fault:
    filename: str
    lineno: int
    event: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}: [{self.rule}] {self.event}: {self.message}"


class Replay:
    """Feed it the journal's directives in order; read `faults` and `state` after."""

    # A limit: past this many faults the replay stops reporting (the first ones locate the damage).
    MAX_FAULTS = 1000

    def __init__(self) -> None:
        self.params: Params | None = None
        self.state: MemoryState | None = None
        self.faults: list[Fault] = []
        self.prev = GENESIS_PREV
        self.seq = 0
        self.entries = 0
        self.rules_ok = True  # false once the position can no longer be trusted

    # -- reporting -------------------------------------------------------------------

    def fault(self, directive: Any, entry: Entry | None, rule: str, message: str) -> None:
        if len(self.faults) >= self.MAX_FAULTS:
            return
        loc = location(directive)
        label = ""
        if entry is not None:
            label = entry.get("event") or (f"price seq {entry.get('seq')}" if isinstance(entry, Price) else "")
        self.faults.append(Fault(loc.filename, loc.lineno, label or "-", rule, message))

    # -- the replay ------------------------------------------------------------------

    def feed(self, directive: Any) -> None:
        entry = from_beancount(directive)
        if entry is None:
            return
        self.entries += 1
        chain_ok = self._check_chain(directive, entry)
        self._check_whole(directive, entry)
        if self.state is None:
            self._genesis(directive, entry)
        elif self.rules_ok:
            self._check_rules(directive, entry)
        recorded = entry.get("hash")
        if recorded:
            self.prev = recorded
        if chain_ok is not None:
            self.seq = chain_ok

    def _check_chain(self, directive: Any, entry: Entry) -> int | None:
        seq_text = entry.get("seq")
        try:
            seq = int(seq_text) if seq_text is not None else None
        except ValueError:
            seq = None
        if seq is None:
            self.fault(directive, entry, "chain.seq", "entry has no sequence number: it was not written by the service")
        elif seq != self.seq + 1:
            what = "missing or reordered entries" if seq > self.seq + 1 else "an entry repeated or reordered"
            self.fault(directive, entry, "chain.seq", f"sequence {seq} follows {self.seq}: {what}")
        prev = entry.get("prev")
        if prev != self.prev:
            self.fault(directive, entry, "chain.prev",
                       f"prev {prev} is not the hash of the entry before ({self.prev}): an entry was removed, inserted or moved")
        recorded = entry.get("hash")
        computed = entry_hash(entry, prev or "")
        if recorded != computed:
            self.fault(directive, entry, "chain.hash",
                       f"hash {recorded} does not match the entry's content ({computed}): the entry was altered")
        return seq

    def _check_whole(self, directive: Any, entry: Entry) -> None:
        if not isinstance(entry, Transaction):
            return
        declared = entry.get("postings")
        if declared != str(len(entry.postings)):
            self.fault(directive, entry, "entry.torn",
                       f"declares {declared} postings, has {len(entry.postings)}: the entry is cut or was altered")
        sums: dict[str, Decimal] = {}
        for p in entry.postings:
            if not p.number.is_finite():
                self.fault(directive, entry, "entry.amount", f"{p.account}: posting without an explicit amount")
                continue
            sums[p.currency] = sums.get(p.currency, ZERO) + p.number
        for currency, total in sums.items():
            if total != 0:
                self.fault(directive, entry, "entry.unbalanced", f"{currency} postings sum to {fmt(total)}, not zero")

    def _genesis(self, directive: Any, entry: Entry) -> None:
        if not isinstance(entry, Transaction) or entry.kind != "genesis":
            self.fault(directive, entry, "chain.genesis", "the journal must open with the genesis entry")
            self.rules_ok = False
            return
        try:
            self.params = Params.from_meta(dict(entry.meta))
        except ConfigError as exc:
            self.fault(directive, entry, "genesis.rules", f"the rules fixed at genesis are unreadable: {exc}")
            self.rules_ok = False
            return
        day = entry.date
        g = Globals(genesis_day=day, open_day=day, value=rules.value_of(Globals(day, day, ZERO), self.params))
        self.state = MemoryState(g)
        ctx = rules.Ctx(entry.get("event") or "", 1, day, self.params)
        self._compare(directive, entry, rules.genesis(self.params, day, ctx))
        self._apply(directive, entry)

    def _check_rules(self, directive: Any, entry: Entry) -> None:
        state, params = self.state, self.params
        g = state.g
        seq = g.seq + 1
        if isinstance(entry, Price):
            expected_day = g.open_day
            if entry.date != expected_day:
                self.fault(directive, entry, "price.date", f"price dated {entry.date}, expected {expected_day}")
            expected: Entry = rules.price(g, entry.date, seq, params)
        else:
            kind = entry.kind
            if entry.date < g.open_day:
                self.fault(directive, entry, "day.closed", f"dated {entry.date}, but {g.open_day - timedelta(days=1)} is closed")
            elif entry.date > g.open_day and kind != "release":
                self.fault(directive, entry, "day.order", f"dated {entry.date} while {g.open_day} is not closed")
            ctx = rules.Ctx(entry.get("event") or "", seq, entry.date, params)
            try:
                if kind == "release":
                    expected = rules.release(g, ctx)
                elif kind in rules.CLIENT_KINDS:
                    event = rules.parse(kind, dict(entry.meta), by_meta_key=True)
                    expected = rules.book(Overlay(state), event, ctx)
                else:
                    self.fault(directive, entry, "entry.kind", f"unknown event kind {kind!r}")
                    self.rules_ok = False
                    return
            except Refusal as refusal:
                self.fault(directive, entry, f"rules.{refusal.rule}", f"the rules refuse this event: {refusal.detail}")
                expected = None
        if expected is not None:
            self._compare(directive, entry, expected)
        self._apply(directive, entry)

    def _compare(self, directive: Any, entry: Entry, expected: Entry) -> None:
        prev = entry.get("prev") or ""
        if canonical(expected, prev) == canonical(_without_chain(entry), prev):
            return
        self.fault(directive, entry, _rule_for(entry), _diff(expected, entry))

    def _apply(self, directive: Any, entry: Entry) -> None:
        state = self.state
        try:
            apply_entry(state, entry)
        except (AssertionError, Refusal, KeyError, ValueError, TypeError, AttributeError) as exc:
            self.fault(directive, entry, "apply.failed",
                       f"the entry cannot be applied to the position ({type(exc).__name__}: {exc}); "
                       "rule checks stop here")
            self.rules_ok = False
            return
        supply = supply_of(state.g, self.params.sp_cap)
        if supply["issued"] > self.params.sp_cap:
            self.fault(directive, entry, "sp.cap_exceeded",
                       f"issued {fmt(supply['issued'])} SP exceeds the cap of {fmt(self.params.sp_cap)}")
        for account in ("Liabilities:Holders:SP", "Liabilities:Holders:SV:Active", "Liabilities:Holders:SV:Locked"):
            if state.g.balance(account) > 0:
                self.fault(directive, entry, "holders.negative", f"{account} is below zero")


def _without_chain(entry: Entry) -> Entry:
    meta = tuple((k, v) for k, v in entry.meta if k not in ("prev", "hash"))
    if isinstance(entry, Transaction):
        return Transaction(entry.date, entry.payee, entry.narration, meta, entry.postings, entry.flag,
                           entry.tags, entry.links)
    return Price(entry.date, entry.number, meta)


def _rule_for(entry: Entry) -> str:
    if isinstance(entry, Price):
        return "price.value"
    return {"release": "release.formula", "order": "order.split", "genesis": "genesis.rules"}.get(entry.kind, f"{entry.kind}.rules")


def _diff(expected: Entry, found: Entry) -> str:
    """The first differences between what the rules book and what the journal holds."""
    notes: list[str] = []
    if isinstance(expected, Price) and isinstance(found, Price):
        if expected.number != found.number:
            notes.append(f"value {fmt(found.number)} CNY/SP, the rules give {fmt(expected.number)} (pool ÷ circulating)")
    exp_meta = {k: v for k, v in expected.meta}
    got_meta = {k: v for k, v in found.meta if k not in ("prev", "hash")}
    for key in sorted(set(exp_meta) | set(got_meta)):
        if exp_meta.get(key) != got_meta.get(key):
            notes.append(f"{key}: found {got_meta.get(key)!r}, the rules give {exp_meta.get(key)!r}")
    if isinstance(expected, Transaction) and isinstance(found, Transaction):
        if (expected.payee, expected.narration) != (found.payee, found.narration):
            notes.append(f"description: found {found.narration!r}, the rules give {expected.narration!r}")
        if (expected.flag, expected.tags, expected.links) != (found.flag, found.tags, found.links):
            notes.append(f"flag, tags or links: found {found.flag} {found.tags} {found.links}, the rules give "
                         f"{expected.flag} with none")
        for i in range(max(len(expected.postings), len(found.postings))):
            e = expected.postings[i] if i < len(expected.postings) else None
            f = found.postings[i] if i < len(found.postings) else None
            if e != f:
                def show(p):
                    if p is None:
                        return "nothing"
                    extra = ", ".join(f"{k}={v}" for k, v in p.meta)
                    return f"{p.account} {fmt(p.number)} {p.currency}" + (f" ({extra})" if extra else "")
                notes.append(f"posting {i + 1}: found {show(f)}, the rules give {show(e)}")
    return "; ".join(notes[:6]) or "the entry differs from what the rules book"
