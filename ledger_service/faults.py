"""A fault: one place where the books differ from what the journal gives.

Every check reports its findings as `Fault`s (the replay, `verify`, each derived view's
`compare`), located by file and line, naming the event and the rule that failed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fault:
    filename: str
    lineno: int
    event: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}: [{self.rule}] {self.event}: {self.message}"
