"""Group commit across requests: the bookings waiting for the writer share one commit.

A request thread calls `GroupCommit.submit(request)`. If no thread of this process is booking,
it becomes the leader: it takes the books' writer lock (`lock`), then every request waiting
(at most `max_batch`, its own among them: those that came while it waited for the lock too),
hands them to `book_batch` (the engine: one database transaction, one journal append and
fsync), releases the lock, runs `after` (work done outside the lock), then lets the next
waiting thread lead. The others wait on
the condition until their request is answered. `book_batch` answers each request with its
own outcome (`Request.succeed` / `Request.fail`): a refused event fails alone. A request it
returns is tried again in the next batch (the engine defers a second request with the
Idempotency-Key of an earlier one in the same batch, so it sees that one's stored answer).

Pure threading, no IO; across processes (gunicorn workers) the engine's file lock orders the
batches. README "Group commit" has the design and the measurements.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

MAX_BATCH = 256  # requests per commit (the engine's own limit is far above)


@dataclass(eq=False)
class Request:
    """One booking waiting for a commit: what to book, then its outcome."""

    payload: Any
    result: Any = None
    error: BaseException | None = None
    done: bool = False
    tries: int = field(default=0)

    def succeed(self, result: Any) -> None:
        self.result, self.done = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


BookBatch = Callable[[list[Request]], list[Request]]  # answers each request; returns those to retry


class GroupCommit:
    """The leader/follower queue of one process (see the module docstring)."""

    def __init__(self, book_batch: BookBatch, max_batch: int = MAX_BATCH,
                 lock: Callable[[], AbstractContextManager[Any]] | None = None,
                 after: Callable[[], None] | None = None) -> None:
        assert max_batch >= 1
        self.book_batch = book_batch
        self.max_batch = max_batch
        self.lock = lock or nullcontext
        self.after = after
        self.cond = threading.Condition()
        self.pending: list[Request] = []
        self.leading = False
        self.batches = 0  # commits led (tests and metrics read them)
        self.largest = 0

    def submit(self, request: Request) -> Any:
        """Book `request` in the next batch; its result, or its own error raised."""
        with self.cond:
            self.pending.append(request)
            while not request.done:
                if self.leading:
                    self.cond.wait()
                    continue
                self.leading = True
                self.cond.release()
                retry: list[Request] = []
                try:
                    retry = self._lead()
                finally:
                    self.cond.acquire()
                    self.pending[:0] = retry  # first in the next batch
                    self.leading = False
                    self.cond.notify_all()
        return request.outcome()

    def _lead(self) -> list[Request]:
        """Lock, take the waiting requests, book them; `after` once the lock is released."""
        batch: list[Request] = []
        try:
            with self.lock():
                batch = self._take()
                return self._book(batch)
        except BaseException as exc:  # noqa: BLE001  the lock failed: the requests waiting get its error
            for request in batch or self._take():
                if not request.done:
                    request.fail(exc)
            return []
        finally:
            if self.after is not None:
                self.after()

    def _take(self) -> list[Request]:
        with self.cond:
            batch, self.pending = self.pending[:self.max_batch], self.pending[self.max_batch:]
        return batch

    def _book(self, batch: list[Request]) -> list[Request]:
        self.batches += 1
        self.largest = max(self.largest, len(batch))
        try:
            retry = self.book_batch(batch)
        except BaseException as exc:  # noqa: BLE001  the batch failed as a whole: each request gets the error
            retry = []
            for request in batch:
                if not request.done:
                    request.fail(exc)
        for request in retry:  # each round answers the first request of every key: the retries end
            request.tries += 1
        for request in batch:
            assert request.done or request in retry, "a request left unanswered"
        return retry
