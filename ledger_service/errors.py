"""Typed refusals: every rule that can refuse an event has one stable code here.

A `Refusal` means the event was not booked anywhere. Its `rule` is a stable
identifier (the API's problem `type` ends with it), `field` names the input at
fault when there is one, and `kind` says which family it belongs to:
`invalid` (the input itself is malformed: HTTP 422), `not_found` (an id that does
not exist: 404) or `conflict` (a well-formed event the books refuse: 409).
"""

from __future__ import annotations


class Refusal(Exception):
    kind = "conflict"

    def __init__(self, rule: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail
        self.field = field


class Invalid(Refusal):
    kind = "invalid"


class NotFound(Refusal):
    kind = "not_found"


class Conflict(Refusal):
    kind = "conflict"


class JournalFault(Exception):
    """The journal on disk disagrees with the database in a way repair must not guess at."""


class JournalUnavailable(Exception):
    """The journal cannot be written (a read-only or full disk): an OSError on append, fsync or cut.

    Raised after the database commit when the booking's own append fails (`event_id` is then
    the event just booked), or before booking anything when the journal is behind the
    database and cannot be brought level (`event_id` is the event an Idempotency-Key already
    booked, if any). `lag_entries`: how many committed entries the journal is missing.
    Recoverable: the next booking after the disk recovers rewrites the missing tail.
    """

    def __init__(self, lag_entries: int, cause: str, event_id: str | None = None, booked_now: bool = False) -> None:
        booked = f"event {event_id} is booked but " if booked_now and event_id else ""
        super().__init__(f"{booked}the journal cannot be written ({cause}): {lag_entries} entries behind the "
                         f"database; the next booking after the disk recovers writes them")
        self.lag_entries = lag_entries
        self.cause = cause
        self.event_id = event_id
        self.booked_now = booked_now
