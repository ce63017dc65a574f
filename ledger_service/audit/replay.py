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

Faults are located by file, line and event id. Memory holds the position (holders,
payouts), never the entries themselves: what a later reversal or a duplicate order id
needs of the orders and transfers is kept on disk (`ReplayState`), so memory grows with
holders, not with events.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from decimal import Decimal
from typing import Any

from .. import rules
from ..amounts import ZERO, fmt
from ..apply import apply_entry
from ..config import LEGACY, ConfigError, Params
from ..entries import (
    _IGNORED_META,
    GENESIS_PREV,
    Entry,
    Posting,
    Price,
    Transaction,
    canonical,
    entry_hash,
    from_beancount,
    location,
)
from ..errors import Conflict, Refusal
from ..faults import Fault
from ..journal import EntryReader
from ..reports import genesis_globals
from ..rules.events import Event, EventKind
from ..state import EventRecord, Globals, Indices, MemoryState, Overlay, issued_of


class Replay:
    """Feed it the journal's directives in order; read `faults` and `state` after."""

    # A limit: past this many faults the replay stops reporting (the first ones locate the damage).
    MAX_FAULTS = 1000

    def __init__(self) -> None:
        self.params: Params | None = None
        self.state: ReplayState | None = None
        self.faults: list[Fault] = []
        self.prev = GENESIS_PREV
        self.seq = 0
        self.entries = 0
        self.rules_ok = True  # false once the position can no longer be trusted
        self._digest = ""  # the SHA-256 of the entry being fed, as computed from its content
        self._event: Event | None = None  # the event of the entry being fed, parsed by the rules' check
        self.entry: Entry | None = None  # the last directive fed, as an entry (None: not a chained one)
        # The parameters the genesis entry lacks (books made before they existed: config.LEGACY's value).
        self.made_before: frozenset[str] = frozenset()

    def close(self) -> None:
        """Free the on-disk store of reversible events (also done when the replay is collected)."""
        if self.state is not None:
            self.state.close()

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

    def feed(self, directive: Any, entry: Entry | None = None, digest: str = "") -> None:
        """Replay `directive`. A caller that converted it already passes `entry`
        (`from_beancount(directive)`) and may pass `digest`, `entry_hash(entry, its prev)`
        computed from that same entry (`audit.stream`); `directive` then only locates it
        (`meta`: filename, lineno)."""
        if entry is None:
            entry = from_beancount(directive)
        self.entry = entry
        if entry is None:
            return
        self.entries += 1
        self._digest = ""
        self._event = None
        # (seq, prev, hash, kind, event) of its metadata: from verify's parse worker, when there
        chain = getattr(directive, "chain", None) or (entry.get("seq"), entry.get("prev"), entry.get("hash"),
                                                     entry.get("kind"), entry.get("event"))
        chain_ok = self._check_chain(directive, entry, digest, chain)
        self._check_whole(directive, entry)
        if self.state is None:
            self._genesis(directive, entry)
        elif self.rules_ok:
            self._check_rules(directive, entry, chain)
        recorded = chain[2]
        if recorded:
            self.prev = recorded
        if chain_ok is not None:
            self.seq = chain_ok

    def _check_chain(self, directive: Any, entry: Entry, digest: str = "",
                     chain: tuple[str | None, ...] | None = None) -> int | None:
        seq_text, prev, recorded = chain[:3] if chain else (entry.get("seq"), entry.get("prev"), entry.get("hash"))
        try:
            seq = int(seq_text) if seq_text is not None else None
        except ValueError:
            seq = None
        if seq is None:
            self.fault(directive, entry, "chain.seq", "entry has no sequence number: it was not written by the service")
        elif seq != self.seq + 1:
            what = "missing or reordered entries" if seq > self.seq + 1 else "an entry repeated or reordered"
            self.fault(directive, entry, "chain.seq", f"sequence {seq} follows {self.seq}: {what}")
        if prev != self.prev:
            self.fault(directive, entry, "chain.prev",
                       f"prev {prev} is not the hash of the entry before ({self.prev}): an entry was removed, "
                       "inserted or moved")
        computed = self._digest = digest or entry_hash(entry, prev or "")
        if recorded != computed:
            self.fault(directive, entry, "chain.hash",
                       f"hash {recorded} does not match the entry's content ({computed}): the entry was altered")
        return seq

    def _check_whole(self, directive: Any, entry: Entry) -> None:
        found = getattr(directive, "whole", None)  # computed by verify's parse worker, when there
        for rule, message in whole_faults(entry) if found is None else found:
            self.fault(directive, entry, rule, message)

    def _genesis(self, directive: Any, entry: Entry) -> None:
        if not isinstance(entry, Transaction) or entry.kind != EventKind.GENESIS:
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
        self.state = ReplayState(genesis_globals(day, self.params))
        ctx = rules.Ctx(entry.get("event") or "", 1, day, self.params)
        expected = rules.genesis(self.params, day, ctx, entry.get("signing_key"))
        # Books made before a parameter existed have a genesis entry without it (config.LEGACY).
        made_before = self.made_before = frozenset(name for name in LEGACY if entry.get(name) is None)
        if made_before and isinstance(expected, Transaction):
            expected = Transaction(expected.date, expected.payee, expected.narration,
                                   tuple(item for item in expected.meta if item[0] not in made_before),
                                   expected.postings)
        self._compare(directive, entry, expected)
        self._apply(directive, entry)

    def _check_rules(self, directive: Any, entry: Entry, chain: tuple[str | None, ...] | None = None) -> None:
        state, params = self.state, self.params
        if state is None or params is None:  # no position before genesis (`feed` checks)
            return
        g = state.g
        seq = g.seq + 1
        if isinstance(entry, Price):
            expected_day = g.open_day
            if entry.date != expected_day:
                self.fault(directive, entry, "price.date", f"price dated {entry.date}, expected {expected_day}")
            expected: Entry | None = rules.price(g, entry.date, seq, params)
        else:
            kind = (chain[3] if chain else entry.get("kind")) or ""  # (entry.kind)
            if entry.date < g.open_day:
                self.fault(directive, entry, "day.closed",
                           f"dated {entry.date}, but {g.open_day - timedelta(days=1)} is closed")
            elif entry.date > g.open_day and kind != EventKind.RELEASE:
                self.fault(directive, entry, "day.order", f"dated {entry.date} while {g.open_day} is not closed")
            ctx = rules.Ctx((chain[4] if chain else entry.get("event")) or "", seq, entry.date, params)
            try:
                if kind == EventKind.RELEASE:
                    expected = rules.release(g, ctx)
                elif kind in rules.CLIENT_KINDS or kind in rules.ENGINE_KINDS:
                    event = getattr(directive, "event", None)  # parsed by verify's parse worker, when there
                    if event is None or event.kind != kind:
                        event = rules.parse(kind, dict(entry.meta), by_meta_key=True)
                    self._event = event  # applied below without parsing the entry again
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
        if _same(expected, entry):  # field by field: equal here implies equal canonical forms
            return
        prev = entry.get("prev") or ""
        if canonical(expected, prev) == canonical(_without_chain(entry), prev):
            return
        self.fault(directive, entry, _rule_for(entry), _diff(expected, entry))

    def _apply(self, directive: Any, entry: Entry) -> None:
        state, params = self.state, self.params
        if state is None or params is None:
            return
        meta = getattr(directive, "meta", None) or {}
        state.source = (meta.get("filename"), meta.get("lineno"), self._digest)
        event, self._event = self._event, None
        try:
            apply_entry(state, entry, event)
        except (AssertionError, Refusal, KeyError, ValueError, TypeError, AttributeError) as exc:
            self.fault(directive, entry, "apply.failed",
                       f"the entry cannot be applied to the position ({type(exc).__name__}: {exc}); "
                       "rule checks stop here")
            self.rules_ok = False
            return
        finally:
            state.source = None
        issued = issued_of(state.g.balances)
        if issued > params.sp_cap:
            self.fault(directive, entry, "sp.cap_exceeded",
                       f"issued {fmt(issued)} SP exceeds the cap of {fmt(params.sp_cap)}")
        for account in ("Liabilities:Holders:SP", "Liabilities:Holders:SV:Active", "Liabilities:Holders:SV:Locked"):
            if state.g.balance(account) > 0:
                self.fault(directive, entry, "holders.negative", f"{account} is below zero")


def whole_faults(entry: Entry) -> list[tuple[str, str]]:
    """(rule, message) per way a transaction is not whole: its `postings` count differs from the
    postings read, a posting has no explicit amount, a commodity does not sum to zero."""
    if not isinstance(entry, Transaction):
        return []
    out = []
    declared = entry.get("postings")
    if declared != str(len(entry.postings)):
        out.append(("entry.torn", f"declares {declared} postings, has {len(entry.postings)}: the entry is cut or "
                                  "was altered"))
    sums: dict[str, Decimal] = {}
    for p in entry.postings:
        if not p.number.is_finite():
            out.append(("entry.amount", f"{p.account}: posting without an explicit amount"))
            continue
        sums[p.currency] = sums.get(p.currency, ZERO) + p.number
    for currency, total in sums.items():
        if total != 0:
            out.append(("entry.unbalanced", f"{currency} postings sum to {fmt(total)}, not zero"))
    return out


def _same(expected: Entry, found: Entry) -> bool:
    """True when every field the canonical form reads is equal, numbers digit for digit.

    A fast test, never looser than comparing canonical forms: it compares the same fields
    in order (the canonical form sorts metadata) and numbers by value, exponent and sign
    (the canonical form writes `format(number, "f")`: equal value, exponent and sign give
    the same text). When it says no, the caller compares the canonical forms, so the
    outcome is theirs.
    """
    try:
        if type(expected) is not type(found) or expected.date != found.date:
            return False
        if not _same_meta(expected.meta, found.meta):
            return False
        if isinstance(expected, Price) and isinstance(found, Price):
            return _same_number(expected.number, found.number)
        if not (isinstance(expected, Transaction) and isinstance(found, Transaction)):
            return False
        if (expected.payee != found.payee or expected.narration != found.narration or expected.flag != found.flag
                or expected.tags != found.tags or expected.links != found.links
                or len(expected.postings) != len(found.postings)):
            return False
        for e, f in zip(expected.postings, found.postings, strict=True):  # lengths compared above
            if (e.account != f.account or e.currency != f.currency or e.meta != f.meta
                    or not _same_number(e.number, f.number)):
                return False
        return True
    except (AttributeError, TypeError):  # not the types the rules and the parser give: compare the long way
        return False


def _same_number(a: Decimal, b: Decimal) -> bool:
    return a == b and a.same_quantum(b) and a.is_signed() == b.is_signed()


def _same_meta(expected, found) -> bool:
    """The same metadata as the canonical form reads it (`prev`, `hash` and the parser's keys left out)."""
    n = len(expected)
    if found[:n] == expected and all(item[0] in _IGNORED_META for item in found[n:]):
        return True  # the usual case: the journal's entry is the rules' one with `prev` and `hash` appended
    return ([item for item in expected if item[0] not in _IGNORED_META]
            == [item for item in found if item[0] not in _IGNORED_META])


def _without_chain(entry: Entry) -> Entry:
    meta = tuple((k, v) for k, v in entry.meta if k not in ("prev", "hash"))
    if isinstance(entry, Transaction):
        return Transaction(entry.date, entry.payee, entry.narration, meta, entry.postings, entry.flag,
                           entry.tags, entry.links)
    return Price(entry.date, entry.number, meta)


def _rule_for(entry: Entry) -> str:
    if isinstance(entry, Price):
        return "price.value"
    rules_of = {"release": "release.formula", "order": "order.split", "genesis": "genesis.rules"}
    return rules_of.get(entry.kind, f"{entry.kind}.rules")


def _diff(expected: Entry, found: Entry) -> str:
    """The first differences between what the rules book and what the journal holds."""
    notes: list[str] = []
    if isinstance(expected, Price) and isinstance(found, Price) and expected.number != found.number:
        notes.append(f"value {fmt(found.number)} CNY/SP, the rules give {fmt(expected.number)} "
                     "(pool ÷ circulating)")
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


# -- the reversible events, on disk ------------------------------------------------------------------


class ReplayState(MemoryState):
    """The position a replay rebuilds, with the orders and transfers kept out of memory.

    A `reverse` needs the postings of the order or transfer it mirrors, and every order
    needs to know whether its id was booked before: kept in memory (as `MemoryState` does)
    they grow with events. Here each order or transfer is one row of a private temporary
    SQLite database (a file SQLite deletes when it is closed): its id, kind, where it
    stands in the journal (file and line) and the SHA-256 of its canonical form; an
    order's id is another row. A reversal re-reads the entry from its file and uses it only
    if its content hashes to what was replayed: the reversal rules see exactly the postings
    they saw before, or the replay reports that the journal changed under it. Entries not
    read from a file (parsed from a string) keep their postings in memory instead.

    Memory holds a fixed-size filter of the order ids (most new ids are known to be new
    without reading the disk) and up to `BUFFER` rows not yet written.
    """

    BUFFER = 2048  # rows kept in memory before one write
    FILTER_BITS = 1 << 24  # 2 MiB: about 1 % false "maybe booked" answers at a million orders

    def __init__(self, g: Globals) -> None:
        super().__init__(g)
        # Set by `Replay._apply` while an entry is applied: its (file, line, computed hash).
        self.source: tuple[str | None, int | None, str] | None = None
        self._db: sqlite3.Connection | None = None
        self._files: list[str] = []
        self._file_ids: dict[str, int] = {}  # -1: not a file that can be read again
        # id -> (kind, file, line, digest, reversed_by, amount_cny, epoch, sv_index, sp_index)
        self._new_records: dict[str, tuple] = {}
        self._new_orders: dict[str, str] = {}
        self._filter = bytearray(self.FILTER_BITS // 8)
        self._recalled: tuple[str, bytes, tuple[Posting, ...]] | None = None
        self._reader = EntryReader()

    # -- the store -----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("CREATE TABLE records (id TEXT PRIMARY KEY, kind TEXT NOT NULL, file INTEGER NOT NULL, "
                       "line INTEGER NOT NULL, digest BLOB NOT NULL, reversed_by TEXT, amount_cny TEXT, epoch INTEGER, "
                       "sv_index TEXT, sp_index TEXT) WITHOUT ROWID")
            db.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, event TEXT NOT NULL) WITHOUT ROWID")
            self._db = db
        return self._db

    def _flush(self) -> None:
        if not (self._new_records or self._new_orders):
            return
        db = self._connection()
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [(key, *row) for key, row in self._new_records.items()])
        db.executemany("INSERT OR REPLACE INTO orders VALUES (?, ?)", self._new_orders.items())
        db.execute("COMMIT")
        self._new_records.clear()
        self._new_orders.clear()

    def close(self) -> None:
        self._new_records.clear()
        self._new_orders.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _bits(self, order_id: str) -> tuple[int, int]:
        h = hash(order_id)  # salted per process: the filter lives no longer than the process
        mask = self.FILTER_BITS - 1
        return h & mask, (h >> 32) & mask

    def _file_id(self, filename: str | None) -> int:
        if filename is None:
            return -1
        found = self._file_ids.get(filename)
        if found is None:
            found = -1
            if os.path.isfile(filename):
                found = len(self._files)
                self._files.append(filename)
            self._file_ids[filename] = found
        return found

    # -- the State interface ---------------------------------------------------------------

    def order_event(self, order_id: str) -> str | None:
        f = self._filter
        if not all(f[b >> 3] & (1 << (b & 7)) for b in self._bits(order_id)):
            return None  # never recorded
        found = self._new_orders.get(order_id)
        if found is None and self._db is not None:
            row = self._db.execute("SELECT event FROM orders WHERE id = ?", (order_id,)).fetchone()
            found = row[0] if row else None
        return found

    def record_event(self, record: EventRecord, order_id: str | None) -> None:
        source = self.source
        file_id = self._file_id(source[0]) if source is not None and source[2] else -1
        if source is None or file_id < 0 or not isinstance(source[1], int):
            self.records[record.id] = record
            self._forget(record.id)
        else:
            self.records.pop(record.id, None)
            at = record.booked_at
            self._new_records[record.id] = (
                record.kind, file_id, source[1], bytes.fromhex(source[2]), record.reversed_by,
                None if record.amount_cny is None else str(record.amount_cny),
                None if at is None else at.epoch, None if at is None else str(at.sv_index),
                None if at is None else str(at.sp_index))
        if order_id is not None:
            f = self._filter
            for b in self._bits(order_id):
                f[b >> 3] |= 1 << (b & 7)
            self._new_orders[order_id] = record.id
        if len(self._new_records) + len(self._new_orders) >= self.BUFFER:
            self._flush()

    def _forget(self, event_id: str) -> None:
        self._new_records.pop(event_id, None)
        if self._db is not None:
            self._db.execute("DELETE FROM records WHERE id = ?", (event_id,))

    def event_record(self, event_id: str) -> EventRecord | None:
        inline = self.records.get(event_id)
        if inline is not None:
            return inline
        row = self._new_records.get(event_id)
        if row is None and self._db is not None:
            found = self._db.execute("SELECT kind, file, line, digest, reversed_by, amount_cny, epoch, sv_index, "
                                     "sp_index FROM records WHERE id = ?", (event_id,)).fetchone()
            row = tuple(found) if found else None
        if row is None:
            return None
        kind, file_id, line, digest, reversed_by, amount_cny, epoch, sv_index, sp_index = row
        at = None if epoch is None else Indices(int(epoch), Decimal(sv_index), Decimal(sp_index))
        return EventRecord(event_id, kind, self._recall(event_id, self._files[file_id], line, digest), reversed_by,
                           amount_cny=None if amount_cny is None else Decimal(amount_cny), booked_at=at)

    def put_event_record(self, record: EventRecord) -> None:
        # Only `reversed_by` changes once an event is recorded (`apply` marks a reversal).
        if record.id in self.records:
            self.records[record.id] = record
            return
        row = self._new_records.get(record.id)
        if row is not None:
            self._new_records[record.id] = (*row[:4], record.reversed_by, *row[5:])
        elif self._db is not None:
            self._db.execute("UPDATE records SET reversed_by = ? WHERE id = ?", (record.reversed_by, record.id))

    # -- reading an entry again ---------------------------------------------------------------

    def _recall(self, event_id: str, path: str, line: int, digest: bytes) -> tuple[Posting, ...]:
        """The postings of the entry at `path:line`, provided it hashes to `digest`."""
        last = self._recalled
        if last is not None and last[0] == event_id and last[1] == digest:
            return last[2]
        entry = self._reread(path, line, whole_file=False)
        if entry is None or bytes.fromhex(entry_hash(entry, entry.get("prev") or "")) != digest:
            entry = self._reread(path, line, whole_file=True)  # exactly as the file was parsed
        if entry is None or bytes.fromhex(entry_hash(entry, entry.get("prev") or "")) != digest:
            raise Conflict("reverse.original_changed",
                           f"event: {event_id} at {path}:{line} no longer reads as it did when it was replayed "
                           "(the journal changed during the check)", "event")
        self._recalled = (event_id, digest, entry.postings)
        return entry.postings

    def _reread(self, path: str, line: int, whole_file: bool) -> Transaction | None:
        entry = self._reader.entry(path, line, whole_file)
        return entry if isinstance(entry, Transaction) else None
