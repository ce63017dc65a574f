"""The record of the last verification: `BOOKS/ledger/verified.json`.

`ledger-service verify` and the Audit page's background verification write it when they
finish; the Audit page shows it at once instead of replaying the journal on every start.
A record names the files it covered by a fingerprint — the path, size and modification
time of `main.beancount`, every journal file and every ledger file, taken before the run
started — so a record whose books changed since is shown as stale and verified again,
never passed off as current. It is a convenience for readers, not a proof: the proof is
running `verify` (or `bean-check`) again, which anyone can.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..journal import Books, make_private_dirs, write_private
from ..views.ledger_tier import ledger_files

RECORD_FILE = "ledger/verified.json"
# A limit on the faults a record keeps (the first ones locate the damage).
MAX_FAULTS = 200


def fingerprint(books_root: Path | str) -> str:
    """SHA-256 over (path, size, mtime) of the files a verification reads."""
    root = Path(books_root)
    books = Books(root)
    paths = [root / "main.beancount", *books.journal_files()]
    paths += [root / rel for rel in ledger_files(root) if rel.endswith(".beancount")]
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        digest.update(f"{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def write(books_root: Path | str, result: VerifyResult) -> bool:
    """Write the record atomically; False when the books are not writable (a read-only copy)."""
    path = Path(books_root) / RECORD_FILE
    try:
        make_private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        write_private(tmp, json.dumps(asdict(result), indent=1, sort_keys=True).encode("utf-8"))  # 0600
        os.replace(tmp, path)
    except OSError:
        return False
    return True


def read(books_root: Path | str) -> dict | None:
    try:
        return json.loads((Path(books_root) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class VerifyResult:
    head: str
    ok: bool
    faults: list[str]
    ledger_faults: list[str]
    entries: int
    files: int
    head_seq: int
    seconds: float
    supply: dict = field(default_factory=dict)
    residue: dict = field(default_factory=dict)
    fingerprint: str = ""  # of the books it read (audit.record)
    finished_at: str = ""
    by: str = ""  # who ran it: "ledger-service verify" or "Fava's Audit page"
    fault_count: int = 0

    @classmethod
    def from_record(cls, record: dict) -> VerifyResult | None:
        try:
            return cls(**{k: record[k] for k in cls.__dataclass_fields__ if k in record})
        except TypeError:
            return None


def result_of(report, fingerprint: str, seconds: float, by: str) -> VerifyResult:
    """A verify report as the record the Audit page shows."""
    derived = ("ledger.", "index.")  # the ledger tier: summaries and holder index
    ledger = [f for f in report.faults if f.rule.startswith(derived)]
    journal = [f for f in report.faults if not f.rule.startswith(derived)]
    return VerifyResult(
        head=report.head_hash, ok=report.ok, faults=[str(f) for f in journal[:MAX_FAULTS]],
        ledger_faults=[str(f) for f in ledger[:MAX_FAULTS]], entries=report.entries, files=report.files,
        head_seq=report.head_seq, seconds=round(seconds, 3), supply=report.supply, residue=report.residue,
        fingerprint=fingerprint, finished_at=datetime.now(UTC).isoformat(timespec="seconds"), by=by,
        fault_count=len(report.faults),
    )
