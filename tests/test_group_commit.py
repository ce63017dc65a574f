"""Group commit (issue 15 §2): the requests waiting for the writer share one commit.

`group_commit.GroupCommit` (the leader/follower queue, tested with a fake booker) and
`Engine.book_group` (one transaction, each event on its own overlay: a refused one leaves no
trace, the others go on) — whose journal must be, byte for byte, what booking the accepted
events one by one writes.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest

from ledger_service.audit.verify import verify
from ledger_service.engine import Idempotency, IdempotentReplay
from ledger_service.errors import Conflict, Refusal
from ledger_service.group_commit import GroupCommit, Request
from ledger_service.rules.events import BuyPack, Deposit, OpenStore, Order, Register
from tests.booking_helpers import journal_bytes

# -- the queue ----------------------------------------------------------------------------------------


def test_every_thread_gets_its_own_answer_and_batches_form() -> None:
    def book(batch: list[Request]) -> list[Request]:
        time.sleep(0.002)  # a commit's fsync: the others queue meanwhile
        for request in batch:
            if request.payload % 7 == 0:
                request.fail(ValueError(f"refused {request.payload}"))
            else:
                request.succeed(request.payload * 2)
        return []

    group = GroupCommit(book, max_batch=16)
    outcomes: dict[int, object] = {}
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(40):
            payload = n * 1000 + i
            try:
                got: object = group.submit(Request(payload))
            except ValueError as exc:
                got = str(exc)
            with lock:
                outcomes[payload] = got

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == 12 * 40
    for payload, got in outcomes.items():
        assert got == (f"refused {payload}" if payload % 7 == 0 else payload * 2)
    assert group.batches < 12 * 40 and 1 < group.largest <= 16, (group.batches, group.largest)


def test_a_deferred_request_is_answered_in_a_later_batch() -> None:
    seen: list[list[int]] = []

    def book(batch: list[Request]) -> list[Request]:
        seen.append([r.payload for r in batch])
        retry = [r for r in batch if r.payload == "again" and r.tries == 0]
        for request in batch:
            if request not in retry:
                request.succeed(f"{request.payload} after {request.tries}")
        return retry

    group = GroupCommit(book)
    assert group.submit(Request("again")) == "again after 1"
    assert seen == [["again"], ["again"]]


def test_an_error_of_the_whole_batch_is_every_requests() -> None:
    def book(batch: list[Request]) -> list[Request]:
        raise OSError("disk gone")

    group = GroupCommit(book)
    with pytest.raises(OSError, match="disk gone"):
        group.submit(Request(1))
    assert not group.leading and not group.pending


def test_a_lock_that_fails_answers_the_requests_waiting() -> None:
    def book(batch: list[Request]) -> list[Request]:
        raise AssertionError("booked without the lock")

    class Broken:
        def __enter__(self) -> None:
            raise PermissionError("lock file not writable")

        def __exit__(self, *exc: object) -> None:
            return None

    after: list[int] = []
    group = GroupCommit(book, lock=Broken, after=lambda: after.append(1))
    with pytest.raises(PermissionError):
        group.submit(Request(1))
    assert after == [1] and not group.pending and not group.leading


def test_the_leader_takes_the_requests_that_came_while_it_waited_for_the_lock() -> None:
    gate = threading.Event()
    batches: list[list[int]] = []

    class Slow:  # the lock is held elsewhere until `gate` opens
        def __enter__(self) -> None:
            gate.wait(10)

        def __exit__(self, *exc: object) -> None:
            return None

    def book(batch: list[Request]) -> list[Request]:
        batches.append(sorted(r.payload for r in batch))
        for request in batch:
            request.succeed(request.payload)
        return []

    group = GroupCommit(book, lock=Slow)
    threads = [threading.Thread(target=group.submit, args=(Request(n),)) for n in range(5)]
    threads[0].start()
    time.sleep(0.1)  # the first thread leads, waiting for the lock
    for t in threads[1:]:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(timeout=10)
    assert batches == [[0, 1, 2, 3, 4]]


# -- the engine ---------------------------------------------------------------------------------------


def _platform(engine) -> None:
    for member in ("buyer", "owner", "other"):
        engine.submit(Register(member))
    engine.submit(BuyPack("owner", "activation"))
    engine.submit(OpenStore("shop", "owner", "441900", "offline", Decimal("0.10")))
    engine.submit(OpenStore("tiny", "owner", "441900", "online", Decimal("0.10")))
    engine.submit(Deposit(Decimal("500.00"), merchant="shop"))
    engine.submit(Deposit(Decimal("500.00"), merchant="tiny"))  # 500 SP: one order of 5,000.00 at 10 % takes it all


def _entries(engine) -> list[str]:
    """The journal's entries without what differs between two books of the same events: the hashes
    (their genesis holds their own signing key) and the signed checkpoints."""
    text = b"".join(journal_bytes(engine).values()).decode()
    out = []
    for block in text.split("\n\n"):
        if 'kind: "checkpoint"' in block or 'kind: "genesis"' in block:
            continue
        out.append("\n".join(line for line in block.splitlines()
                             if not re.match(r"^  (hash|prev): ", line)))
    return out


def _key(key: str, body: str) -> Idempotency:
    return Idempotency(key, body, scope="k1")


def test_a_group_books_what_one_by_one_books_and_a_refusal_leaves_no_trace(make_books) -> None:
    grouped, single = make_books(name="grouped"), make_books(name="single")
    _platform(grouped)
    _platform(single)
    single.submit(Order("o0", "buyer", "shop", Decimal("10.00")), idempotency=_key("k-o0", "h-o0"))
    grouped.submit(Order("o0", "buyer", "shop", Decimal("10.00")), idempotency=_key("k-o0", "h-o0"))
    plan = [
        (Order("o1", "buyer", "shop", Decimal("100.00")), _key("k-o1", "h-o1"), None),
        (Order("o2", "buyer", "tiny", Decimal("5000.00")), _key("k-o2", "h-o2"), None),   # takes tiny's 500 SP
        (Order("o3", "buyer", "tiny", Decimal("10.00")), _key("k-o3", "h-o3"), Refusal),  # tiny has no SP left
        (Order("o4", "buyer", "nobody", Decimal("10.00")), _key("k-o4", "h-o4"), Refusal),  # no such store
        (Order("o0", "buyer", "shop", Decimal("10.00")), _key("k-o0", "h-o0"), IdempotentReplay),  # booked before
        (Order("o9", "buyer", "shop", Decimal("10.00")), _key("k-o0", "h-other"), "retry"),  # key reused: next batch
        (Register("late"), _key("k-late", "h-late"), None),
        (Register("late"), _key("k-late", "h-late"), "retry"),  # the same request twice in one batch
        (Order("o5", "other", "shop", Decimal("20.00")), None, None),
    ]
    batch = [Request((event, None, key)) for event, key, _want in plan]
    future = Request((Register("tomorrow"), grouped.today() + timedelta(days=1), None))
    retry = grouped.book_group([*batch, future])
    assert isinstance(future.error, Refusal) and future.error.rule == "date.future", future.error
    assert retry == [batch[5], batch[7]]  # each with the key of an earlier request of the batch
    for request, (_event, _key_, want) in zip(batch, plan, strict=True):
        if want is None:
            assert request.done and request.error is None, request.error
        elif want == "retry":
            assert not request.done
        else:
            assert request.done and isinstance(request.error, want), (want, request.error)
    assert isinstance(batch[2].error, Refusal) and batch[2].error.rule == "merchant.no_sp", batch[2].error
    # in the next batch, the reused key is refused and the twin finds the first one's answer
    assert grouped.book_group(retry) == []
    assert isinstance(batch[5].error, Conflict) and batch[5].error.rule == "idempotency.key_reused"
    assert isinstance(batch[7].error, IdempotentReplay)

    for event, key, want in plan:
        if want is None:
            single.submit(event, idempotency=key)
    assert _entries(grouped) == _entries(single)
    ids = [r.result.event_id for r in batch if r.result is not None]
    assert ids == sorted(ids) and len(set(ids)) == 4
    report = verify(grouped.books.root)
    assert report.ok, report.faults[:5]


def test_threads_of_one_engine_share_commits_and_book_each_event_once(make_books) -> None:
    engine = make_books()
    _platform(engine)
    engine.enable_group_commit()
    assert engine.group is not None
    errors: list[BaseException] = []

    def client(n: int) -> None:
        for i in range(25):
            try:
                engine.submit(Order(f"o{n}-{i}", "buyer", "shop", Decimal("1.00")),
                              idempotency=_key(f"k{n}-{i}", f"h{n}-{i}"))
            except BaseException as exc:  # noqa: BLE001  reported below
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    text = b"".join(journal_bytes(engine).values()).decode()
    assert sum(text.count(f'order_id: "o{n}-{i}"') for n in range(8) for i in range(25)) == 200
    assert engine.group.batches < 200, engine.group.batches  # some requests shared a commit
    report = verify(engine.books.root)
    assert report.ok, report.faults[:5]
