"""The replay keeps orders and transfers out of memory and re-reads a reversed one from the journal.

`audit.replay.ReplayState` stores, per order or transfer, where it stands in the journal and
the hash of its content, on disk; a reversal re-reads the original and uses it only if it
still hashes to what was replayed. These tests check that reversals verify that way (with
rows still buffered and with rows written out), that an original changed under a running
check is reported, that entries parsed from a string keep their postings in memory, and
that order ids are found again whatever the filter answers.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from beancount.parser import parser

from ledger_service.audit.replay import Replay, ReplayState
from ledger_service.audit.verify import verify
from ledger_service.journal import journal_directives
from ledger_service.journal import Books
from ledger_service.rules.events import BuyPack, Deposit, OpenStore, Order, Register, Reverse, Transfer
from ledger_service.state import EventRecord, Globals

from conftest import START

D = Decimal


def trade_and_reverse(engine) -> dict:
    """Books with orders, a transfer, and the reversal of an order and of the transfer."""
    for member in ("own", "b1", "b2"):
        engine.submit(Register(member), START)
        engine.submit(BuyPack(member, "activation"), START)
    engine.submit(OpenStore("s1", "own", "441900", "offline", D("0.10"), None), START)
    engine.submit(Deposit(D("500.00"), merchant="s1"), START)
    ids = {}
    first = engine.submit(Order("o1", "b1", "s1", D("100.00")), START)
    ids["o1"], ids["o1 postings"] = first.event_id, first.entry.postings
    ids["t1"] = engine.submit(Transfer("s1", "b2", D("1.0000")), START).event_id
    ids["o2"] = engine.submit(Order("o2", "b2", "s1", D("50.00")), START).event_id
    ids["r1"] = engine.submit(Reverse(ids["o1"]), START).event_id
    ids["r2"] = engine.submit(Reverse(ids["t1"]), START).event_id
    return ids


def replay_books(root: Path, before_feed=None) -> Replay:
    replay = Replay()
    for path, directive, errors in journal_directives(Books(root)):
        assert not errors
        if directive is None:
            continue
        if before_feed is not None:
            before_feed(path, directive)
        replay.feed(directive)
    return replay


@pytest.mark.parametrize("buffer", [1, ReplayState.BUFFER])
def test_reversals_verify_from_the_journal_files(engine, monkeypatch, buffer):
    monkeypatch.setattr(ReplayState, "BUFFER", buffer)  # 1: every row goes to disk at once
    ids = trade_and_reverse(engine)
    root = engine.books.root
    report = verify(root, use_db=False)
    assert report.ok, report.faults

    replay = replay_books(root)
    assert replay.faults == []
    state = replay.state
    assert state.records == {}  # nothing kept in memory: every original is read again from its file
    assert state.order_event("o1") == ids["o1"] and state.order_event("o2") == ids["o2"]
    assert state.order_event("o3") is None
    o1 = state.event_record(ids["o1"])
    assert (o1.kind, o1.reversed_by) == ("order", ids["r1"])
    assert o1.postings == ids["o1 postings"]  # read again from the file, exactly as booked
    assert state.event_record(ids["t1"]).reversed_by == ids["r2"]
    assert state.event_record(ids["o2"]).reversed_by is None
    assert state.event_record(ids["r1"]) is None  # a reversal is not reversible
    replay.close()


def test_an_original_changed_during_the_check_is_reported(engine):
    ids = trade_and_reverse(engine)
    root = engine.books.root

    def tamper(path: Path, directive) -> None:
        if directive.meta.get("event") == ids["r1"]:  # the original was replayed; change it on disk now
            text = path.read_text(encoding="utf-8")
            head = text.index(f'event: "{ids["o1"]}"')
            body = text[head:].replace("-100.0000 SV", "-100.0001 SV", 1)
            path.write_text(text[:head] + body, encoding="utf-8")

    replay = replay_books(root, tamper)
    rules = [f.rule for f in replay.faults]
    assert "rules.reverse.original_changed" in rules, replay.faults
    assert any(f.event == ids["r1"] for f in replay.faults)


def test_entries_parsed_from_a_string_keep_their_postings_in_memory(engine):
    ids = trade_and_reverse(engine)
    books = Books(engine.books.root)
    text = "".join(path.read_text(encoding="utf-8") for path in books.journal_files())
    directives, errors, _ = parser.parse_string(text)
    assert not errors
    replay = Replay()
    for directive in sorted(directives, key=lambda d: d.meta["lineno"]):
        replay.feed(directive)
    assert replay.faults == []
    records = replay.state.records
    assert set(records) == {ids["o1"], ids["t1"], ids["o2"]}
    assert records[ids["o1"]].reversed_by == ids["r1"] and records[ids["t1"]].reversed_by == ids["r2"]
    assert replay.state.order_event("o2") == ids["o2"]


@pytest.mark.parametrize("filter_bits", [8, ReplayState.FILTER_BITS])
@pytest.mark.parametrize("buffer", [1, 3, ReplayState.BUFFER])
def test_order_ids_are_found_again(filter_bits, buffer):
    """8 filter bits: nearly every id is a "maybe", so the answers come from the store itself."""
    state = ReplayState(Globals(START, START, D(1)))
    state.FILTER_BITS, state.BUFFER = filter_bits, buffer
    state._filter = bytearray(max(1, filter_bits // 8))
    for i in range(50):
        state.record_event(EventRecord(f"E{i}", "order", ()), f"o{i}")
    assert all(state.order_event(f"o{i}") == f"E{i}" for i in range(50))
    assert all(state.order_event(f"x{i}") is None for i in range(200))
    state.record_event(EventRecord("E99", "order", ()), "o7")  # a later entry with the same order id
    assert state.order_event("o7") == "E99"
    record = state.event_record("E3")
    record.reversed_by = "E100"
    state.put_event_record(record)
    assert state.event_record("E3").reversed_by == "E100"
    state.close()


def test_the_fast_comparison_never_passes_what_canonical_forms_tell_apart(engine):
    """`_same` is a shortcut for comparing canonical forms: it may say no where they agree, never yes where
    they differ."""
    from dataclasses import replace

    from ledger_service.audit.replay import _same, _without_chain
    from ledger_service.entries import Posting, Transaction, canonical

    trade_and_reverse(engine)
    replay_entries = []
    for _, directive, _ in journal_directives(Books(engine.books.root)):
        if directive is not None:
            replay = Replay()
            replay.feed(directive)
            replay_entries.append(replay.entry)
    assert len(replay_entries) > 10

    def variants(entry):
        yield _without_chain(entry)
        if isinstance(entry, Transaction) and entry.postings:
            p = entry.postings[0]
            for number in (p.number.normalize(), p.number.quantize(D("0.00000001")), -p.number, p.number + 0,
                           D("-0") if p.number == 0 else p.number.copy_negate().copy_negate()):
                yield replace(entry, postings=(replace(p, number=number),) + entry.postings[1:])
            yield replace(entry, postings=(replace(p, meta=tuple(reversed(p.meta))),) + entry.postings[1:])
            yield replace(entry, postings=entry.postings[1:] + entry.postings[:1])
            yield replace(entry, meta=tuple(reversed(entry.meta)))
            yield replace(entry, meta=entry.meta + (("lineno", "7"),))
            yield replace(entry, tags=("x",))
            yield replace(entry, narration=entry.narration + " ")
            yield replace(entry, postings=entry.postings + (Posting(p.account, D("0"), p.currency),))
        elif not isinstance(entry, Transaction):  # a price
            yield replace(entry, number=entry.number.normalize())
            yield replace(entry, meta=tuple(reversed(entry.meta)))

    checked = 0
    for entry in replay_entries:
        found = entry  # as read from the journal, with `prev` and `hash`
        assert _same(_without_chain(found), found)
        for expected in variants(found):
            prev = found.get("prev") or ""
            if _same(expected, found):
                assert canonical(expected, prev) == canonical(_without_chain(found), prev)
            checked += 1
    assert checked > 100
