"""The event log: an RFC 6962 Merkle tree over the chain, its daily checkpoints and their proofs.

The leaves are the chained entries' hashes in chain order (leaf i = seq i + 1, leaf data the
32 raw bytes of the entry's `hash`); the tree is RFC 6962 §2.1 (`ledger_service.merkle`). As
each business day closes, its entries are appended and a checkpoint is written:

    BOOKS/ledger/event_log.sqlite
      nodes        (level, index, hash): the hash of every PERFECT subtree of the leaves appended
                   so far. Level 0 holds the leaf hashes; a node at level L, index i covers the
                   leaves [i·2^L, (i+1)·2^L). About 2 rows per entry.
      leaf_lines   (seq, line): the line of its day's journal file where each leaf's entry starts
                   (Beancount's `lineno`), so a proof reads that one entry back, not the whole file
      checkpoints  one row per closed day: day, last_seq, head, log_size, log_root
    BOOKS/checkpoints/YYYY-MM-DD.json   the same checkpoint, one file per closed day (0600, folder 0700)

A checkpoint covers every entry of its day's journal file: the day's price (booked by the
previous close, dated that day), its events and its release. So `last_seq` is the release's
seq, and the next day's price (dated the next day, in the next day's file) opens the next
checkpoint.

Any subtree hash MTH(D[a:b]) a proof needs is assembled from O(log n) stored nodes, so an
inclusion proof of any event against any checkpoint, or a consistency proof between two
checkpoints, reads O(log n) rows (`inclusion_proof`, `consistency_proof`): nothing is ever
rebuilt from the genesis to answer. An update reads the O(log n) nodes of the tree's right
edge (its frontier), then appends. The published checkpoint files are read without the
database by `checkpoint_days` and `read_checkpoint_file` (Fava's Audit page).

An inclusion proof reads its entry back from the journal: the lines of that entry alone
(`journal.EntryReader`) at the line `leaf_lines` gives. The line is only a hint: the entry
read there must carry the seq asked and hash to its stored leaf, else (and when no line is
known: an event log written before `leaf_lines` existed gets lines for the days it appends,
the earlier ones at a rebuild) the day's whole file is parsed, as before, and an entry that
still does not hash to its leaf is a `JournalFault` (503). A wrong line costs time, never a
wrong proof.

It is a derived view (`views.base`): `updater()` extends it as days close, `checker()` (fed by
`verify`) recomputes every checkpoint's root from the journal and compares the nodes, the
checkpoint rows and files and the recorded lines (`[checkpoint.root]`, `[event_log.node]`,
`[event_log.line]`, …), and checks that each
checkpoint file extends the one before it with a consistency proof from the stored nodes
(`[checkpoint.consistency]`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .. import merkle
from ..entries import Entry, Price, Transaction, canonical, entry_hash, from_beancount
from ..errors import Conflict, Invalid, JournalFault, NotFound
from ..faults import Fault
from ..journal import (
    Books,
    DayFile,
    EntryReader,
    day_file,
    head,
    journal_directives,
    parse_file,
    relative,
)
from ..rules.events import EventKind
from .base import LEDGER_DIR, Check, Update, ViewError, dated_files, sqlite_engine

LOG_NAME = "event_log.sqlite"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_VERSION = "ledger-checkpoint-v1"  # the event log's own (unsigned) checkpoint
SIGNED_VERSION = "ledger-checkpoint-v2"  # the signed checkpoint (`rules.checkpoints`, `views.signed`)
INCLUSION_VERSION = "ledger-inclusion-v1"
CONSISTENCY_VERSION = "ledger-consistency-v1"
WRITE_BATCH = 10_000
MAX_FAULTS = 100

_meta = MetaData()
NODES = Table(
    "nodes", _meta,
    Column("level", Integer, primary_key=True),
    Column("index", Integer, primary_key=True),
    Column("hash", LargeBinary(32), nullable=False),
    sqlite_with_rowid=False,  # the rows live in the primary key's b-tree: one copy of (level, index)
)
LEAF_LINES = Table(
    "leaf_lines", _meta,
    # an INTEGER PRIMARY KEY is the rowid: the rows live in one b-tree keyed by seq (WITHOUT ROWID gains nothing)
    Column("seq", Integer, primary_key=True),
    Column("line", Integer, nullable=False),  # its entry's first line in its day's file (1-based)
)
CHECKPOINTS = Table(
    "checkpoints", _meta,
    Column("day", Date, primary_key=True),
    Column("last_seq", Integer, nullable=False, unique=True),
    Column("head", String(64), nullable=False),
    Column("log_size", Integer, nullable=False),
    Column("log_root", String(64), nullable=False),
)
_NODE_BY_KEY = select(NODES.c.hash).where(NODES.c.level == bindparam("level"), NODES.c["index"] == bindparam("index"))
# an update may find lines of the days it appends already there (the log's last days cut back by hand): replaced
_NEW_LINES = sqlite_insert(LEAF_LINES)
_PUT_LINES = _NEW_LINES.on_conflict_do_update(index_elements=[LEAF_LINES.c.seq],
                                              set_={"line": _NEW_LINES.excluded.line})


class EventLogError(ViewError):
    """The journal cannot be appended to the event log (a gap, an unreadable hash)."""


def log_path(books_root: Path | str) -> Path:
    return Path(books_root) / LEDGER_DIR / LOG_NAME


def checkpoint_dir(books_root: Path | str) -> Path:
    return Path(books_root) / CHECKPOINT_DIR


def checkpoint_path(books_root: Path | str, day: date) -> Path:
    return checkpoint_dir(books_root) / f"{day.isoformat()}.json"


def delete_log(books_root: Path | str) -> None:
    path = log_path(books_root)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


# -- checkpoints --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    day: date
    last_seq: int
    head: str
    log_size: int
    log_root: str

    def to_json(self) -> dict[str, Any]:
        return {"version": CHECKPOINT_VERSION, "day": self.day.isoformat(), "last_seq": self.last_seq,
                "head": self.head, "log_size": self.log_size, "log_root": self.log_root}

    def text(self) -> str:
        """The checkpoint file's exact text."""
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def of_row(cls, row: Any) -> Checkpoint:
        return cls(row.day, row.last_seq, row.head, row.log_size, row.log_root)


def _checkpoint_files(root: Path) -> dict[date, Path]:
    """The checkpoint files present, by day (files not named by a day left out)."""
    return dated_files(checkpoint_dir(root), ".json")


def checkpoint_days(books_root: Path | str) -> list[date]:
    """The days of the checkpoint files the books hold, oldest first (a folder listing: no file is read)."""
    return list(_checkpoint_files(Path(books_root)))


def read_checkpoint_file(books_root: Path | str, day: date) -> Checkpoint:
    """The checkpoint file of `day`, as published (BOOKS/checkpoints/YYYY-MM-DD.json), read without the
    event log's database: its log fields, from a signed (v2) or an unsigned (v1) file. ValueError naming
    what is wrong: missing, not JSON, not a checkpoint of that day (`verify` compares the files with the
    journal; this only reads one)."""
    path = checkpoint_path(books_root, day)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path.name}: cannot be read ({exc.strerror})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("version") not in (CHECKPOINT_VERSION, SIGNED_VERSION):
        raise ValueError(f"{path.name}: not a {CHECKPOINT_VERSION} or {SIGNED_VERSION}")
    fields = {"day": str, "last_seq": int, "head": str, "log_size": int, "log_root": str}
    wrong = [k for k, kind in fields.items() if isinstance(data.get(k), bool) or not isinstance(data.get(k), kind)]
    if wrong:
        raise ValueError(f"{path.name}: not a {CHECKPOINT_VERSION} (field {', '.join(wrong)})")
    if data["day"] != day.isoformat():
        raise ValueError(f"{path.name}: the checkpoint of {data['day']!r}, not of {day}")
    return Checkpoint(day, data["last_seq"], data["head"], data["log_size"], data["log_root"])


# -- the stored tree ----------------------------------------------------------------------------------


class Store:
    """The nodes and checkpoints of an event log, on one connection: the `merkle.Nodes` source."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._has_lines: bool | None = None

    def node(self, level: int, index: int) -> bytes:
        found = self.connection.execute(_NODE_BY_KEY, {"level": level, "index": index}).scalar()
        if found is None:
            raise EventLogError(f"the event log has no node at level {level}, index {index}")
        return bytes(found)

    def frontier(self, size: int) -> list[tuple[int, bytes]]:
        """The perfect subtrees on the right edge of the first `size` leaves (O(log size) reads)."""
        return [(level, self.node(level, index)) for level, index in merkle.frontier_keys(size)]

    def append(self, size: int, frontier: list[tuple[int, bytes]], leaves: Sequence[bytes],
               lines: Sequence[int] | None = None) -> list[tuple[int, bytes]]:
        """Append leaf hashes after the first `size` leaves (`frontier`: theirs); the new frontier.
        `lines`: the line of each leaf's entry in its day file (`leaf_lines`), if known."""
        if lines is not None:
            assert len(lines) == len(leaves)
            for start in range(0, len(lines), WRITE_BATCH):
                self.connection.execute(_PUT_LINES, [{"seq": size + 1 + start + k, "line": line}
                                                     for k, line in enumerate(lines[start:start + WRITE_BATCH])])
        rows: list[dict] = []
        for i, leaf in enumerate(leaves, start=size):
            frontier, made = merkle.push(frontier, leaf)
            rows += [{"level": level, "index": ((i + 1) >> level) - 1, "hash": digest} for level, digest in made]
            if len(rows) >= WRITE_BATCH:
                self.connection.execute(insert(NODES), rows)
                rows = []
        if rows:
            self.connection.execute(insert(NODES), rows)
        return frontier

    def line(self, seq: int) -> int | None:
        """The recorded line of the entry of `seq` in its day file (None: not recorded, or a log
        written before `leaf_lines` existed and opened read-only, without the table)."""
        if not self.has_lines():
            return None
        found = self.connection.execute(select(LEAF_LINES.c.line).where(LEAF_LINES.c.seq == seq)).scalar()
        return int(found) if found is not None else None

    def has_lines(self) -> bool:
        if self._has_lines is None:
            self._has_lines = inspect(self.connection).has_table(LEAF_LINES.name)
        return self._has_lines

    def checkpoint(self, day: date) -> Checkpoint | None:
        row = self.connection.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.day == day)).first()
        return Checkpoint.of_row(row) if row is not None else None

    def latest(self) -> Checkpoint | None:
        row = self.connection.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.day.desc()).limit(1)).first()
        return Checkpoint.of_row(row) if row is not None else None

    def checkpoint_of_seq(self, seq: int) -> Checkpoint | None:
        """The first checkpoint that covers `seq` (the day whose file holds it)."""
        row = self.connection.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.last_seq >= seq)
                                      .order_by(CHECKPOINTS.c.last_seq).limit(1)).first()
        return Checkpoint.of_row(row) if row is not None else None

    def checkpoints(self) -> list[Checkpoint]:
        return [Checkpoint.of_row(r) for r in self.connection.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.day))]



def _leaf_of(entry: Entry) -> bytes:
    """The leaf hash of an entry: leaf_hash of its `hash`'s 32 raw bytes (ValueError: not 64 hex digits)."""
    digest = entry.get("hash") or ""
    leaf = merkle.hex_leaf(digest)
    if leaf is None:
        raise ValueError(f"hash {digest!r} is not 64 lowercase hex digits")
    return leaf


def published_json(books_root: Path | str, checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint as published: the signed object of its day (BOOKS/checkpoints/YYYY-MM-DD.json,
    `views.signed`) when its log fields are this checkpoint's, else the event log's unsigned one (a day
    closed before the books signed, or not signed yet)."""
    path = checkpoint_path(books_root, checkpoint.day)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return checkpoint.to_json()
    mine = checkpoint.to_json()
    if isinstance(data, dict) and data.get("version") == SIGNED_VERSION and all(
            data.get(k) == mine[k] for k in ("day", "last_seq", "head", "log_size", "log_root")):
        return data
    return mine


def stored_checkpoint(books_root: Path | str, day: date) -> Checkpoint | None:
    """The event log's checkpoint of `day` from its database (None: no event log, or no such day)."""
    engine = open_engine(books_root)
    if engine is None:
        return None
    try:
        with engine.connect() as connection:
            return Store(connection).checkpoint(day)
    finally:
        engine.dispose()


def stored_log_roots(books_root: Path | str) -> dict[date, str]:
    """Every checkpoint's log root from the event log's database, by day (empty: no event log)."""
    engine = open_engine(books_root)
    if engine is None:
        return {}
    try:
        with engine.connect() as connection:
            return {c.day: c.log_root for c in Store(connection).checkpoints()}
    finally:
        engine.dispose()


def open_engine(books_root: Path | str) -> Engine | None:
    """An engine on the event log (None: the books have none yet)."""
    path = log_path(books_root)
    return sqlite_engine(path) if path.is_file() else None


# -- the update: append the days closed since -----------------------------------------------------------


class _LogUpdate:
    """Appends the entries of each closed day past the last checkpoint, one SQLite transaction;
    then writes those days' checkpoint files (a rebuild: every file, and removes the others)."""

    def __init__(self, root: Path, rebuild: bool) -> None:
        self.root = root
        self.rebuild = rebuild
        if rebuild:
            delete_log(root)
        self.engine = sqlite_engine(log_path(root), _meta)
        self.connection = self.engine.connect()
        self.transaction = self.connection.begin()
        self.store = Store(self.connection)
        last = self.store.latest()
        self.last_day = last.day if last is not None else None
        self.size = last.log_size if last is not None else 0
        self.frontier = self.store.frontier(self.size)
        self.added: list[Checkpoint] = []

    def wants(self, day: DayFile) -> bool:
        return self.last_day is None or day.day > self.last_day

    def add(self, day: DayFile) -> None:
        if not day.closed:
            return
        leaves: list[bytes] = []
        lines: list[int] = []
        last: Entry | None = None
        for directive in day.directives():
            entry = from_beancount(directive)
            if entry is None:
                continue
            seq = int(entry.get("seq") or 0)
            if seq != self.size + len(leaves) + 1:
                raise EventLogError(f"{day.relpath}: seq {seq} follows {self.size + len(leaves)}; the event log is "
                                    "not extended across a gap")
            try:
                leaves.append(_leaf_of(entry))
            except ValueError as exc:
                raise EventLogError(f"{day.relpath}:{directive.meta.get('lineno', 0)}: {exc}") from exc
            lines.append(int(directive.meta.get("lineno") or 0))
            last = entry
        if not (isinstance(last, Transaction) and last.kind == EventKind.RELEASE):
            raise EventLogError(f"{day.relpath}: the day is not closed (its last entry is not its release)")
        self.frontier = self.store.append(self.size, self.frontier, leaves, lines)
        self.size += len(leaves)
        checkpoint = Checkpoint(day.day, self.size, last.get("hash") or "", self.size,
                                merkle.frontier_root(self.frontier).hex())
        self.connection.execute(insert(CHECKPOINTS), [{"day": checkpoint.day, "last_seq": checkpoint.last_seq,
                                                       "head": checkpoint.head, "log_size": checkpoint.log_size,
                                                       "log_root": checkpoint.log_root}])
        self.added.append(checkpoint)
        self.last_day = day.day

    def finish(self, days: Sequence[DayFile]) -> list[str]:
        if not self.added and not self.rebuild:
            return []
        self.transaction.commit()
        # The checkpoint files are the signed ones the engine books after the close (`views.signed`);
        # the event log keeps its checkpoints in its database, which the signing reads.
        return [relative(self.root, log_path(self.root))] if self.added else []

    def close(self) -> None:
        if self.transaction.is_active:
            self.transaction.rollback()
        self.connection.close()
        self.engine.dispose()


def updater(books_root: Path, rebuild: bool = False) -> Update:
    """The event log's update (see `views.update`, which holds the locks and feeds it the days)."""
    return _LogUpdate(Path(books_root), rebuild)


# -- the check: every checkpoint's root from the journal, the nodes, the files, their consistency -----------


class LogCheck:
    """Recomputes the event log from the journal as `verify` streams it, and compares (a `Check`).

    Every closed day's checkpoint (its root from the leaves the journal gives) against the
    checkpoints table and the checkpoint file; the nodes appended for that day against the
    stored ones (one range read per level per day); then each pair of consecutive checkpoint
    files against a consistency proof built from the stored nodes."""

    def __init__(self, books_root: Path | str) -> None:
        self.root = Path(books_root)
        self.path = log_path(self.root)
        self.faults: list[Fault] = []
        self.files = _checkpoint_files(self.root)
        self.engine = open_engine(self.root)
        self.connection: Connection | None = None
        self.rows: dict[date, Checkpoint] = {}
        if self.engine is not None:
            try:
                self.connection = self.engine.connect()
                self.rows = {c.day: c for c in Store(self.connection).checkpoints()}
            except Exception as exc:  # noqa: BLE001 - an unreadable view is a fault, not a crash
                self._fault(str(self.path), "event_log.unreadable", f"{type(exc).__name__}: {exc}")
                self.connection = None
        self.frontier: list[tuple[int, bytes]] = []
        self.size = 0
        self.day_start = 0
        self.pending: dict[int, dict[int, bytes]] = {}  # the nodes the current day completes: level -> index -> hash
        self.lines: dict[int, int] = {}  # the current day's entries: seq -> line
        self.expected: dict[date, Checkpoint] = {}
        self.broken = False

    @property
    def exists(self) -> bool:
        return self.connection is not None or bool(self.files)

    def _fault(self, where: str, rule: str, message: str, event: str = "-") -> None:
        if len(self.faults) < MAX_FAULTS:
            self.faults.append(Fault(where, 0, event, rule, message))

    def feed(self, path: Path, directive: Any, entry: Entry | None, state: Any) -> None:
        if entry is None or self.broken or not self.exists:
            return
        seq = int(entry.get("seq") or 0)
        try:
            if seq != self.size + 1:
                raise ValueError(f"seq {seq} follows {self.size}")
            leaf = getattr(directive, "leaf", None) or _leaf_of(entry)  # (computed by verify's parse worker)
        except ValueError as exc:  # the replay names the broken chain; the log stops here
            self.broken = True
            self._fault(f"{relative(self.root, path)}", "event_log.chain",
                        f"the event log is not recomputed past seq {self.size}: {exc}")
            return
        self.frontier, made = merkle.push(self.frontier, leaf)
        if self.connection is not None:
            for level, digest in made:
                self.pending.setdefault(level, {})[((self.size + 1) >> level) - 1] = digest
            self.lines[seq] = int(directive.meta.get("lineno") or 0)
        self.size += 1
        if isinstance(entry, Transaction) and entry.kind == EventKind.RELEASE:
            checkpoint = Checkpoint(entry.date, seq, entry.get("hash") or "", self.size,
                                    merkle.frontier_root(self.frontier).hex())
            self.expected[checkpoint.day] = checkpoint
            if checkpoint.day in self.rows:
                self._compare_nodes(checkpoint)
                self._compare_lines(checkpoint)
            self.pending = {}
            self.lines = {}

    def _compare_nodes(self, checkpoint: Checkpoint) -> None:
        assert self.connection is not None
        for level, wanted in sorted(self.pending.items()):
            lo, hi = min(wanted), max(wanted)
            stored: dict[int, bytes] = {int(r[0]): bytes(r[1]) for r in self.connection.execute(
                select(NODES.c["index"], NODES.c.hash)
                .where(NODES.c.level == level, NODES.c["index"].between(lo, hi)))}
            for index in sorted(wanted):
                have = stored.get(index)
                if have != wanted[index]:
                    self._fault(str(self.path), "event_log.node",
                                f"node level {level} index {index} (day {checkpoint.day}): the event log has "
                                f"{have.hex() if have is not None else 'none'}, "
                                f"the journal gives {wanted[index].hex()}")

    def _compare_lines(self, checkpoint: Checkpoint) -> None:
        """The day's recorded lines against the journal's. A seq with no line is no fault (an event
        log written before `leaf_lines` existed: its proofs parse the day file); a wrong line is."""
        assert self.connection is not None
        if not self.lines or not Store(self.connection).has_lines():
            return
        stored = {int(r[0]): int(r[1]) for r in self.connection.execute(
            select(LEAF_LINES.c.seq, LEAF_LINES.c.line).where(LEAF_LINES.c.seq.between(min(self.lines),
                                                                                        max(self.lines))))}
        for seq, line in sorted(stored.items()):
            if line != self.lines[seq]:
                self._fault(str(self.path), "event_log.line",
                            f"seq {seq} (day {checkpoint.day}): the event log has line {line}, the journal's "
                            f"{day_file(checkpoint.day)} has it at line {self.lines[seq]}")

    def finish(self) -> list[Fault]:
        try:
            if self.exists and not self.broken:
                self._check_rows()
                self._check_files()
                self._check_consistency()
        finally:
            if self.connection is not None:
                self.connection.close()
            if self.engine is not None:
                self.engine.dispose()
        return self.faults

    def _check_rows(self) -> None:
        if self.connection is None:
            return
        where = str(self.path)
        for day, want in self.expected.items():
            have = self.rows.get(day)
            if have is None:
                self._fault(where, "event_log.lags", f"no checkpoint of {day}, a closed day of the journal")
            elif have != want:
                rule = "checkpoint.root" if have.log_root != want.log_root else "event_log.checkpoint"
                self._fault(where, rule, f"checkpoint of {day}: the event log has {have.to_json()}, the journal "
                                         f"gives {want.to_json()}")
        for day in sorted(set(self.rows) - set(self.expected)):
            self._fault(where, "event_log.ahead", f"checkpoint of {day}: the journal has not closed that day")
        stored_days = [d for d in self.rows if d in self.expected]
        size = self.expected[max(stored_days)].log_size if stored_days else 0
        if Store(self.connection).has_lines():
            beyond = self.connection.execute(select(func.count()).select_from(LEAF_LINES).where(
                (LEAF_LINES.c.seq > size) | (LEAF_LINES.c.seq < 1))).scalar() or 0
            if beyond:
                self._fault(where, "event_log.line", f"{beyond} recorded lines of entries outside the "
                                                     f"{size} leaves of the checkpoints the journal gives")
        counts: dict[int, int] = {int(r[0]): int(r[1]) for r in self.connection.execute(
            select(NODES.c.level, func.count()).group_by(NODES.c.level))}
        for level in sorted(set(counts) | {lv for lv in range(size.bit_length()) if size >> lv}):
            if counts.get(level, 0) != size >> level:
                self._fault(where, "event_log.node", f"level {level} holds {counts.get(level, 0)} nodes; "
                                                     f"{size} leaves give {size >> level}")

    def _check_files(self) -> None:
        """Each checkpoint file names the log the journal gives for its day (a signed file holds more:
        `views.signed` checks the rest); a file of a day the journal has not closed is no checkpoint."""
        for day, want in self.expected.items():
            path = self.files.get(day)
            if path is None:
                continue  # not signed yet, or closed before signing: `views.signed` says which is a fault
            try:
                have = json.loads(path.read_text(encoding="utf-8", errors="replace"))
            except ValueError:
                have = None
            if not isinstance(have, dict) or have.get("log_root") != want.log_root:
                self._fault(str(path), "checkpoint.root",
                            f"log_root {have.get('log_root') if isinstance(have, dict) else None!r}; the journal's "
                            f"first {want.log_size} entries give {want.log_root}")
            elif {k: have.get(k) for k in ("day", "last_seq", "head", "log_size")} != {
                    k: v for k, v in want.to_json().items() if k in ("day", "last_seq", "head", "log_size")} \
                    or have.get("version") not in (CHECKPOINT_VERSION, SIGNED_VERSION):
                self._fault(str(path), "checkpoint.file", f"the file differs from the checkpoint the journal gives: "
                                                          f"{json.dumps(want.to_json())}")
        for day in sorted(set(self.files) - set(self.expected)):
            self._fault(str(self.files[day]), "checkpoint.extra", f"a checkpoint of {day}: the journal has not "
                                                                  "closed that day")

    def _check_consistency(self) -> None:
        """Each checkpoint file extends the one before it: a consistency proof from the stored nodes."""
        if self.connection is None:
            return
        store = Store(self.connection)
        size = max((c.log_size for c in self.rows.values()), default=0)
        before: tuple[Path, int, bytes] | None = None
        for _day, path in sorted(self.files.items()):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                current = (path, int(data["log_size"]), bytes.fromhex(data["log_root"]))
            except (OSError, ValueError, KeyError, TypeError):
                self._fault(str(path), "checkpoint.file", "not a checkpoint (unreadable JSON)")
                continue
            if before is not None and 0 < before[1] <= current[1] <= size:
                try:
                    proof = merkle.consistency_path(store.node, before[1], current[1])
                except EventLogError as exc:
                    self._fault(str(self.path), "event_log.node", str(exc))
                    return
                if not merkle.verify_consistency(before[1], current[1], before[2], current[2], proof):
                    self._fault(str(path), "checkpoint.consistency",
                                f"does not extend {before[0].name} (size {before[1]}): the consistency proof from "
                                "the event log fails")
            elif before is not None and current[1] < before[1]:
                self._fault(str(path), "checkpoint.consistency",
                            f"log_size {current[1]} is smaller than {before[0].name}'s {before[1]}")
            before = current


def checker(books_root: Path) -> Check:
    return LogCheck(books_root)


def compare(books_root: Path | str) -> list[Fault]:
    """The event log and the checkpoint files against the journal (what `verify` does as it streams)."""
    root = Path(books_root)
    check = LogCheck(root)
    for path, directive, _errors in journal_directives(Books(root)):
        if directive is not None:
            check.feed(path, directive, from_beancount(directive), None)
    return check.finish()


# -- proofs ----------------------------------------------------------------------------------------------------


class Log:
    """The event log read for proofs: every answer costs O(log n) reads of the nodes."""

    def __init__(self, books_root: Path | str) -> None:
        self.root = Path(books_root)
        self.engine = open_engine(self.root)
        if self.engine is None:
            raise NotFound("checkpoint.none", "the books have no checkpoint yet (no day closed)", "date")
        self.connection = self.engine.connect()
        self.store = Store(self.connection)

    def checkpoint(self, day: date | None = None, field: str = "date") -> Checkpoint:
        """The checkpoint of `day` (None: the latest); NotFound when there is none."""
        found = self.store.latest() if day is None else self.store.checkpoint(day)
        if found is None:
            what = "no checkpoint yet (no day closed)" if day is None else f"no checkpoint of {day} (not a closed day)"
            raise NotFound("checkpoint.unknown", f"{field}: {what}", field)
        return found

    def inclusion(self, event_id: str, checkpoint_day: date | None = None) -> dict[str, Any]:
        checkpoint = self.checkpoint(checkpoint_day, "checkpoint")
        seq = _seq_of(event_id)
        if seq > checkpoint.last_seq:
            known = int(head(self.root).get("seq") or 0)
            if seq > known:
                raise NotFound("event.unknown", f"id: no event {event_id!r}", "id")
            raise Conflict("proof.after_checkpoint",
                           f"checkpoint: event {event_id} (seq {seq}) was booked after the checkpoint of "
                           f"{checkpoint.day} (last seq {checkpoint.last_seq}); ask a later checkpoint", "checkpoint")
        entry = self._entry(seq, event_id)
        prev, digest = entry.get("prev") or "", entry.get("hash") or ""
        text = canonical(entry, prev)
        if entry_hash(entry, prev) != digest or self.store.node(0, seq - 1) != _leaf_of(entry):
            raise JournalFault(f"{day_file(entry.date)}: the entry of seq {seq} does not hash to its leaf in the event "
                               "log; run verify")
        path = merkle.inclusion_path(self.store.node, seq - 1, checkpoint.log_size)
        return {"version": INCLUSION_VERSION, "event_id": event_id, "seq": seq, "entry_hash": digest, "prev": prev,
                "canonical": text, "leaf_index": seq - 1, "checkpoint": published_json(self.root, checkpoint),
                "path": [p.hex() for p in path]}

    def _entry(self, seq: int, event_id: str) -> Entry:
        """The entry of `seq`, read back from its day's journal file (the first checkpoint covering it):
        its own lines at the line `leaf_lines` records, provided what they hold is the entry of `seq`
        and hashes to its leaf; else (no line recorded, a wrong one) the whole file, parsed."""
        covering = self.store.checkpoint_of_seq(seq)
        assert covering is not None  # seq ≤ a checkpoint's last_seq
        path = Books(self.root).path(day_file(covering.day))
        line = self.store.line(seq)
        if line is not None:
            entry = EntryReader().entry(str(path), line)
            if entry is not None and str(entry.get("seq")) == str(seq) and self._is_leaf(entry, seq):
                if _id_of(entry, seq) == event_id:
                    return entry
                raise NotFound("event.unknown", f"id: no event {event_id!r}", "id")
        try:
            directives = parse_file(path)[0]
        except OSError as exc:
            raise JournalFault(f"{day_file(covering.day)}: cannot be read ({exc.strerror})") from exc
        for directive in directives:
            if str(directive.meta.get("seq")) == str(seq):
                entry = from_beancount(directive)
                if entry is not None and _id_of(entry, seq) == event_id:
                    return entry
                break
        raise NotFound("event.unknown", f"id: no event {event_id!r}", "id")

    def _is_leaf(self, entry: Entry, seq: int) -> bool:
        """Whether `entry` hashes to the event log's leaf of `seq` (its `hash` its own, and that hash the leaf's)."""
        try:
            return (entry_hash(entry, entry.get("prev") or "") == entry.get("hash")
                    and self.store.node(0, seq - 1) == _leaf_of(entry))
        except ValueError:
            return False

    def consistency(self, from_day: date, to_day: date) -> dict[str, Any]:
        if from_day > to_day:
            raise Invalid("proof.bad_range", f"from: {from_day} is after to: {to_day}", "from")
        first, second = self.checkpoint(from_day, "from"), self.checkpoint(to_day, "to")
        path = merkle.consistency_path(self.store.node, first.log_size, second.log_size)
        return {"version": CONSISTENCY_VERSION, "from": published_json(self.root, first),
                "to": published_json(self.root, second), "path": [p.hex() for p in path]}

    def close(self) -> None:
        self.connection.close()
        if self.engine is not None:
            self.engine.dispose()

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


_EVENT_ID = re.compile(r"([EP])([0-9]{9})\Z")


def _seq_of(event_id: str) -> int:
    found = _EVENT_ID.match(event_id)
    if found is None or int(found.group(2)) == 0:
        raise NotFound("event.unknown", f"id: no event {event_id!r}", "id")
    return int(found.group(2))


def _id_of(entry: Entry, seq: int) -> str:
    """An entry's id as the API names it: its `event`, or `P` and the 9-digit seq for a price."""
    return f"P{seq:09d}" if isinstance(entry, Price) else (entry.get("event") or "")


def checkpoint(books_root: Path | str, day: date | None = None) -> dict[str, Any]:
    """The checkpoint of `day` (None: the latest) as published (`published_json`: signed when it is)."""
    with Log(books_root) as log:
        return published_json(books_root, log.checkpoint(day))


def inclusion_proof(books_root: Path | str, event_id: str, checkpoint_day: date | None = None) -> dict[str, Any]:
    """The inclusion proof of an event (`E…` id, or `P…` for a price) against a checkpoint (default: the latest)."""
    with Log(books_root) as log:
        return log.inclusion(event_id, checkpoint_day)


def consistency_proof(books_root: Path | str, from_day: date, to_day: date) -> dict[str, Any]:
    """The consistency proof between the checkpoints of two days."""
    with Log(books_root) as log:
        return log.consistency(from_day, to_day)
