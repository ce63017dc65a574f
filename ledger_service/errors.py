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
