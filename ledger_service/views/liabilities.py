"""The liabilities view: a Merkle-sum tree over every holder, one root per closed day (issue 12 §3).

    BOOKS/ledger/liabilities.sqlite
      position  one row: the last closed day the tree stands at
      nodes     the perfect subtrees (level, index): hash and the three sums (level 0: the leaves)
      leaves    holder_id -> leaf_index, base_sp, shares, sv_locked
    BOOKS/checkpoints/YYYY-MM-DD.liabilities.json   the day's root, sums, indices, totals and control
    BOOKS/keys/liabilities.secret                   the salts' key (32 random bytes, hex; 0600)

Formats: `merkle_sum` and README "Liabilities: a Merkle-sum tree over holders". A leaf holds a
holder's (base_sp, shares, sv_locked), so a release touches no leaf: each closed day updates the
leaves of the holders its entries name (O(touched · log N)), appends the new holders' leaves
(leaf index = order of first appearance), and a day that ends an epoch rebases every leaf with
shares. The holders' positions come from the holder index's own fold (`apply_entry`): the index
as committed (the day before) with the day's entries applied on top, never written; when the
tree does not stand where the index does (or on a rebuild) it folds the journal from genesis.

`verify` (`checker()`) recomputes every day's tree the same way from its replay and compares the
checkpoint files, the stored root and leaves, and the residue rule (control − totals).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Date, Integer, MetaData, String, Table, delete, insert, select

from .. import merkle_sum as ms
from ..accounts import HOLDERS_SP, HOLDERS_SV_ACTIVE, HOLDERS_SV_LOCKED
from ..apply import apply_entry
from ..entries import Entry, Transaction, from_beancount
from ..errors import NotFound
from ..faults import Fault
from ..journal import Books, DayFile, journal_directives, make_private_dirs, relative, write_private
from ..rules.events import EventKind
from ..state import Holder
from ..store.db import dbapi_cursor
from ..store.models import DecimalText
from ..subledger import settle
from . import holder_index
from .base import LEDGER_DIR, Check, Update, ViewError, dated_files, publish_dated, sqlite_engine
from .event_log import checkpoint_dir, published_json, stored_checkpoint, stored_log_roots

DB_NAME = "liabilities.sqlite"
SECRET = Path("keys") / "liabilities.secret"
VERSION = "ledger-liabilities-v1"
CONTROL = (HOLDERS_SP, HOLDERS_SV_ACTIVE, HOLDERS_SV_LOCKED)
MAX_FAULTS = 100
stats = {"leaf_writes": 0}  # leaves written by updates in this process (tests count them)

_meta = MetaData()
POSITION = Table("position", _meta, Column("id", Integer, primary_key=True), Column("day", Date, nullable=False))
NODES = Table(
    "nodes", _meta,
    Column("level", Integer, primary_key=True), Column("idx", Integer, primary_key=True),
    Column("hash", String(64), nullable=False), Column("base_sp", DecimalText, nullable=False),
    Column("shares", DecimalText, nullable=False), Column("sv_locked", DecimalText, nullable=False),
    sqlite_with_rowid=False,
)
LEAVES = Table(
    "leaves", _meta,
    Column("holder_id", String(64), primary_key=True), Column("leaf_index", Integer, nullable=False, unique=True),
    Column("base_sp", DecimalText, nullable=False), Column("shares", DecimalText, nullable=False),
    Column("sv_locked", DecimalText, nullable=False),
    sqlite_with_rowid=False,
)


# `Tree` reads and writes its rows through the connection's DBAPI cursor (the same transaction):
# SQLAlchemy's statement compilation and type processing cost ~20 µs a row, more than the hashing.
# Decimals are stored as `DecimalText` stores them (`format(x, "f")`, read back with `Decimal`).
CACHE_KIB = 65_536  # SQLite's page cache for the tree (its default, 2 MiB, re-reads the day's pages as it writes)
CHUNK = 500  # keys per `IN (...)` read (well under SQLite's bound-parameter limit)
_READ_NODES = "SELECT idx, hash, base_sp, shares, sv_locked FROM nodes WHERE level = ? AND idx IN ({})"
_READ_INDICES = "SELECT holder_id, leaf_index FROM leaves WHERE holder_id IN ({})"
_UPSERT_NODE = ("INSERT INTO nodes (level, idx, hash, base_sp, shares, sv_locked) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash, base_sp = excluded.base_sp, "
                "shares = excluded.shares, sv_locked = excluded.sv_locked")
_UPSERT_LEAF = ("INSERT INTO leaves (holder_id, leaf_index, base_sp, shares, sv_locked) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (holder_id) DO UPDATE SET base_sp = excluded.base_sp, shares = excluded.shares, "
                "sv_locked = excluded.sv_locked")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class LiabilitiesError(ViewError):
    """The journal cannot be folded into the liabilities tree."""


def db_path(books_root: Path | str) -> Path:
    return Path(books_root) / LEDGER_DIR / DB_NAME


def checkpoint_path(books_root: Path | str, day: date) -> Path:
    return checkpoint_dir(books_root) / f"{day.isoformat()}.liabilities.json"


def secret_path(books_root: Path | str) -> Path:
    return Path(books_root) / SECRET


def read_secret(books_root: Path | str, create: bool = False) -> bytes | None:
    path = secret_path(books_root)
    if not path.is_file():
        if not create:
            return None
        make_private_dirs(path.parent)
        write_private(path, (secrets.token_hex(32) + "\n").encode("ascii"))
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def delete_db(books_root: Path | str) -> None:
    path = db_path(books_root)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def leaf_figures(holder: Holder, g: Any, epochs: Any) -> tuple[Decimal, Decimal, Decimal]:
    """(base_sp, shares, sv_locked) of a holder at the position `g` (settled on a copy)."""
    view = holder.copy()
    settle(view, g, epochs)
    return ms.CTX.subtract(view.sp_exact, ms.CTX.multiply(view.shares, view.sp_ckpt)), view.shares, view.sv_locked


class Tree:
    """The tree being built: nodes and leaves cached in memory over an optional SQLite store."""

    def __init__(self, secret: bytes, connection: Any = None) -> None:
        self.secret = secret
        self.connection = connection
        self.nodes: dict[tuple[int, int], ms.Node] = {}
        self.index: dict[str, int] = {}
        self.leaf_of: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        self.size = 0
        self.dirty_nodes: set[tuple[int, int]] = set()
        self.dirty_leaves: set[str] = set()
        self.engine: Any = None
        if connection is not None:
            self._cursor().execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            top = connection.execute(select(LEAVES.c.leaf_index).order_by(LEAVES.c.leaf_index.desc()).limit(1)).scalar()
            self.size = 0 if top is None else int(top) + 1

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.engine is not None:
            self.engine.dispose()

    def node(self, level: int, idx: int) -> ms.Node:
        found = self.nodes.get((level, idx))
        if found is None:
            if self.connection is None:
                raise KeyError((level, idx))
            self._read_nodes(level, [idx])
            found = self.nodes.get((level, idx))
            if found is None:
                raise LiabilitiesError(f"liabilities tree: node ({level}, {idx}) missing")
        return found

    def _cursor(self) -> Any:
        assert self.connection is not None
        return dbapi_cursor(self.connection)

    def _read_nodes(self, level: int, indices: Sequence[int]) -> None:
        """Cache the stored nodes (level, i) for i in `indices` (a few queries)."""
        cursor = self._cursor()
        for start in range(0, len(indices), CHUNK):
            part = indices[start:start + CHUNK]
            for idx, hash_hex, base_sp, shares, sv_locked in cursor.execute(
                    _READ_NODES.format(_marks(len(part))), (level, *part)):
                self.nodes.setdefault((level, idx), ms.Node(hash_hex, Decimal(base_sp), Decimal(shares),
                                                            Decimal(sv_locked)))

    def _read_indices(self, holder_ids: Sequence[str]) -> None:
        """Cache the leaf indices of those of `holder_ids` the store holds (a few queries)."""
        if self.connection is None:
            return
        wanted = [h for h in holder_ids if h not in self.index]
        cursor = self._cursor()
        for start in range(0, len(wanted), CHUNK):
            part = wanted[start:start + CHUNK]
            self.index.update(cursor.execute(_READ_INDICES.format(_marks(len(part))), part))

    def put(self, level: int, idx: int, nd: ms.Node) -> None:
        self.nodes[(level, idx)] = nd
        self.dirty_nodes.add((level, idx))

    def leaf_index(self, holder_id: str) -> int | None:
        self._read_indices([holder_id])
        return self.index.get(holder_id)

    def with_shares(self) -> list[str]:
        """Every holder whose leaf holds shares (an epoch's end rebases them)."""
        if self.connection is None:
            return [h for h, f in self.leaf_of.items() if f[1] != 0]
        stored = {r.holder_id for r in self.connection.execute(select(LEAVES.c.holder_id, LEAVES.c.shares))
                  if r.shares != 0}
        mine = {h for h, f in self.leaf_of.items() if f[1] != 0}
        return sorted((stored - set(self.leaf_of)) | mine)

    def set_leaves(self, figures: dict[str, tuple[Decimal, Decimal, Decimal]], order: Sequence[str]) -> int:
        """Write the leaves of these holders (new ones appended in `order`); recompute their ancestors."""
        changed = []
        self._read_indices([h for h in order if h in figures])
        for holder_id in order:
            if holder_id not in figures:
                continue
            idx = self.index.get(holder_id)
            if idx is None:
                idx = self.index[holder_id] = self.size
                self.size += 1
            commit = ms.id_commit(ms.salt(self.secret, holder_id), holder_id)
            self.put(0, idx, ms.leaf(commit, *figures[holder_id]))
            self.leaf_of[holder_id] = figures[holder_id]
            self.dirty_leaves.add(holder_id)
            changed.append(idx)
        self.prefetch(changed)
        ms.update(self.node, self.put, self.size, changed)
        stats["leaf_writes"] += len(changed)
        return len(changed)

    def prefetch(self, changed: Sequence[int]) -> None:
        """Read, in a few queries per level, the stored nodes `merkle_sum.update` will ask for when it
        recomputes the ancestors of the `changed` leaves (one query per node otherwise)."""
        if self.connection is None:
            return
        dirty, level = set(changed), 0
        wanted: dict[int, list[int]] = {}
        while dirty and (self.size >> (level + 1)):
            parents = {i >> 1 for i in dirty if ((i >> 1) + 1) << (level + 1) <= self.size}
            wanted[level] = [i for p in parents for i in (2 * p, 2 * p + 1)  # what update will not compute
                             if i not in dirty and (level, i) not in self.nodes]
            dirty, level = parents, level + 1
        for lv, indices in wanted.items():
            self._read_nodes(lv, indices)

    def root(self) -> ms.Node:
        return ms.root(self.node, self.size)

    def flush(self, day: date) -> None:
        """Write the changed nodes and leaves: one upsert statement each, executed over all rows."""
        c = self.connection
        assert c is not None
        text = ms.text
        node_rows = [(level, idx, nd.hash, text(nd.base_sp), text(nd.shares), text(nd.sv_locked))
                     for (level, idx), nd in ((k, self.nodes[k]) for k in sorted(self.dirty_nodes))]
        leaf_rows = [(h, self.index[h], text(base_sp), text(shares), text(sv_locked))
                     for h, (base_sp, shares, sv_locked) in ((h, self.leaf_of[h]) for h in sorted(self.dirty_leaves))]
        cursor = self._cursor()
        cursor.executemany(_UPSERT_NODE, node_rows)
        cursor.executemany(_UPSERT_LEAF, leaf_rows)
        c.execute(delete(POSITION))
        c.execute(insert(POSITION), [{"id": 1, "day": day}])
        self.dirty_nodes.clear()
        self.dirty_leaves.clear()


class DayFolder:
    """Tracks the holders a day's entries touch; at the day's release updates the tree and gives the
    checkpoint object (without head and log_root's file check). Shared by the update and the check."""

    def __init__(self, tree: Tree, epoch: int = 0) -> None:
        self.tree = tree
        self.touched: list[str] = []
        self.seen: set[str] = set()
        self.epoch = epoch  # the epoch at the previous close

    def entry(self, entry: Entry, state: Any, holders: Sequence[str] | None = None) -> dict[str, Any] | None:
        """`holders`: `holders_of(entry)`, when the caller has it."""
        for holder_id in holder_index.holders_of(entry) if holders is None else holders:
            if holder_id not in self.seen:
                self.seen.add(holder_id)
                self.touched.append(holder_id)
        if not (isinstance(entry, Transaction) and entry.kind == EventKind.RELEASE):
            return None
        g = state.g
        order = list(self.touched)
        if g.epoch != self.epoch:  # the epoch ended: every leaf with shares is rebased
            order += [h for h in self.tree.with_shares() if h not in self.seen]
        figures = {}
        for holder_id in order:
            holder = state.holder(holder_id)
            if holder is not None:
                figures[holder_id] = leaf_figures(holder, g, state)
        self.tree.set_leaves(figures, order)
        self.touched, self.seen, self.epoch = [], set(), g.epoch
        return checkpoint_object(entry.date, self.tree.size, self.tree.root(), g, entry.get("hash") or "")


def checkpoint_object(day: date, holders: int, root: ms.Node, g: Any, head: str, log_root: str = "") -> dict[str, Any]:
    c = ms.CTX
    return {
        "version": VERSION, "day": day.isoformat(), "holders": holders, "root": root.hash,
        "sums": root.figures(),
        "indices": {"epoch": g.epoch, "sp_index": ms.text(g.sp_index), "sv_index": ms.text(g.sv_index)},
        "totals": {"sp": ms.text(root.sp(g.sp_index)), "sv_active": ms.text(c.multiply(root.shares, g.sv_index)),
                   "sv_locked": ms.text(root.sv_locked)},
        "control": {account: ms.text(c.minus(g.balance(account))) for account in CONTROL},
        "head": head, "log_root": log_root,
    }


def residue_faults(obj: dict[str, Any]) -> list[str]:
    """The documented residue rule (`merkle_sum.residue_ok`), per commodity."""
    out = []
    for account, total in zip(CONTROL, ("sp", "sv_active", "sv_locked"), strict=True):
        control, have = Decimal(obj["control"][account]), Decimal(obj["totals"][total])
        if not ms.residue_ok(control, have, int(obj["holders"])):
            out.append(f"{account} {control} − totals.{total} {have} is outside "
                       "(−(holders + 1) × 1e-18, holders × 0.0001 + 0.0001)")
    return out


def _text(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2) + "\n"


def _files(root: Path) -> dict[date, Path]:
    return dated_files(checkpoint_dir(root), ".liabilities.json")


# -- the update ----------------------------------------------------------------------------------------------


class _Update:
    """Extends the tree with the closed days past its position (one SQLite transaction), then writes
    those days' checkpoint files."""

    def __init__(self, root: Path, rebuild: bool) -> None:
        self.root = root
        self.rebuild = rebuild
        secret = read_secret(root, create=True)
        assert secret is not None
        self.reader: holder_index.Reader | None = None
        last = None
        if not rebuild and db_path(root).is_file():
            engine = sqlite_engine(db_path(root))
            with engine.connect() as c:
                last = c.execute(select(POSITION.c.day)).scalar()
            engine.dispose()
        if last is None:
            delete_db(root)
            self.rebuild = True
        else:
            reader = holder_index.Reader(root)
            if reader.position is not None and reader.position.closed_day == last:
                self.reader = reader
            else:  # the index stands elsewhere: fold the journal from genesis, the tree kept to its day
                reader.close()
        self.last_day: date | None = last
        self.engine = sqlite_engine(db_path(root), _meta)
        self.connection = self.engine.connect()
        self.transaction = self.connection.begin()
        self.tree = Tree(secret, self.connection)
        self.state: Any = self.reader.state() if self.reader is not None else None
        self.folder = DayFolder(self.tree, self.state.g.epoch if self.state is not None else 0)
        self.fold = holder_index.Fold() if self.reader is None else None
        self.added: list[dict[str, Any]] = []

    def wants(self, day: DayFile) -> bool:
        return self.fold is not None or self.last_day is None or day.day > self.last_day

    def add(self, day: DayFile) -> None:
        if not day.closed:
            return
        if self.fold is not None and self.last_day is not None and day.day <= self.last_day:
            self._fold_only(day)
            return
        entries = [(e, holder_index.holders_of(e)) for e in (from_beancount(d) for d in day.directives())
                   if e is not None]
        if self.fold is None:  # the day's holders in a few statements (one query per holder otherwise)
            self.state.prefetch(h for _e, holders in entries for h in holders)
        for entry, holders in entries:
            if self.fold is not None:
                state = self.fold.apply(entry)
                if state is None:
                    raise LiabilitiesError(f"{day.relpath}: the journal cannot be folded")
            else:
                state = self.state
                if int(entry.get("seq") or 0) != state.g.seq + 1:
                    raise LiabilitiesError(f"{day.relpath}: seq {entry.get('seq')} follows {state.g.seq}")
                try:
                    apply_entry(state, entry)
                except (AssertionError, KeyError, ValueError, TypeError, AttributeError) as exc:
                    raise LiabilitiesError(f"{day.relpath}: the entry cannot be applied ({exc})") from exc
            obj = self.folder.entry(entry, state, holders)
            if obj is not None:
                self.tree.flush(obj_day := date.fromisoformat(obj["day"]))
                self.added.append(obj)
                self.last_day = obj_day

    def _fold_only(self, day: DayFile) -> None:
        """A day the tree holds already: only the position is brought forward."""
        assert self.fold is not None
        for directive in day.directives():
            entry = from_beancount(directive)
            if entry is not None and self.fold.apply(entry) is None:
                raise LiabilitiesError(f"{day.relpath}: the journal cannot be folded")
        if self.fold.state is not None:
            self.folder.epoch = self.fold.state.g.epoch

    def finish(self, days: Sequence[DayFile]) -> list[str]:
        if not self.added and not self.rebuild:
            return []
        self.transaction.commit()
        written = [relative(self.root, db_path(self.root))] if self.added or self.rebuild else []
        wanted: dict[date, tuple[Path, str]] = {}
        log_roots = stored_log_roots(self.root)
        for obj in self.added:
            day = date.fromisoformat(obj["day"])
            obj["log_root"] = log_roots.get(day, "")
            wanted[day] = (checkpoint_path(self.root, day), _text(obj))
        written += publish_dated(self.root, wanted, _files(self.root) if self.rebuild else None)
        return written

    def close(self) -> None:
        if self.transaction.is_active:
            self.transaction.rollback()
        self.connection.close()
        self.engine.dispose()
        if self.reader is not None:
            self.reader.close()


def updater(books_root: Path, rebuild: bool = False) -> Update:
    return _Update(Path(books_root), rebuild)


# -- the check -------------------------------------------------------------------------------------------------


class LiabilitiesCheck:
    """Recomputes every day's tree from the replay as `verify` streams the journal, and compares."""

    def __init__(self, books_root: Path | str) -> None:
        self.root = Path(books_root)
        self.faults: list[Fault] = []
        self.files = _files(self.root)
        self.exists = db_path(self.root).is_file() or bool(self.files)
        self.secret = read_secret(self.root)
        self.tree = Tree(self.secret or b"")
        self.folder = DayFolder(self.tree)
        self.expected: dict[date, dict[str, Any]] = {}
        self.log_roots: dict[date, str] | None = None  # the event log's, read once
        self.broken = False
        if self.exists and self.secret is None:
            self._fault(str(secret_path(self.root)), "liabilities.secret", "the liabilities secret is missing")
            self.broken = True

    def _fault(self, where: str, rule: str, message: str) -> None:
        if len(self.faults) < MAX_FAULTS:
            self.faults.append(Fault(where, 0, "-", rule, message))

    def feed(self, path: Path, directive: Any, entry: Entry | None, state: Any) -> None:
        if entry is None or self.broken or not self.exists:
            return
        if state is None:
            self.broken = True
            return
        try:
            obj = self.folder.entry(entry, state, getattr(directive, "holders", None))  # (from verify's parse worker)
        except (AssertionError, KeyError) as exc:
            self.broken = True
            self._fault(str(db_path(self.root)), "liabilities.fold", f"not recomputed past {entry.date}: {exc}")
            return
        if obj is not None:
            if self.log_roots is None:
                self.log_roots = stored_log_roots(self.root)
            obj["log_root"] = self.log_roots.get(entry.date, "")
            self.expected[entry.date] = obj
            for message in residue_faults(obj):
                self._fault(str(checkpoint_path(self.root, entry.date)), "liabilities.residue", message)

    def finish(self) -> list[Fault]:
        if not self.exists or self.broken:
            return self.faults
        for day, want in self.expected.items():
            path = self.files.get(day)
            if path is None:
                self._fault(str(checkpoint_path(self.root, day)), "liabilities.missing",
                            f"no liabilities checkpoint for {day}, a closed day of the journal")
                continue
            try:
                have = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                have = None
            if have != want:
                rule = ("liabilities.root" if not isinstance(have, dict) or have.get("root") != want["root"]
                        or have.get("sums") != want["sums"] else "liabilities.file")
                self._fault(str(path), rule, f"differs from what the journal gives: {json.dumps(want)}")
        for day in sorted(set(self.files) - set(self.expected)):
            self._fault(str(self.files[day]), "liabilities.extra", f"a liabilities checkpoint of {day}: the journal "
                                                                   "has not closed that day")
        self._compare_db()
        return self.faults

    def _compare_db(self) -> None:
        path = db_path(self.root)
        if not path.is_file():
            if self.expected:
                self._fault(str(path), "liabilities.missing", "no liabilities tree")
            return
        engine = sqlite_engine(path)
        try:
            with engine.connect() as c:
                day = c.execute(select(POSITION.c.day)).scalar()
                last = max(self.expected) if self.expected else None
                if day != last:
                    self._fault(str(path), "liabilities.position", f"the tree stands at {day}; the journal's last "
                                                                   f"closed day is {last}")
                    return
                stored = Tree(self.tree.secret, c)
                if stored.size != self.tree.size or stored.root() != self.tree.root():
                    self._fault(str(path), "liabilities.root", f"stored root over {stored.size} leaves differs "
                                                               f"from the journal's over {self.tree.size}")
                for row in c.execute(select(LEAVES)).yield_per(10_000):
                    want = self.tree.leaf_of.get(row.holder_id)
                    if (want is None or self.tree.index[row.holder_id] != row.leaf_index
                            or want != (row.base_sp, row.shares, row.sv_locked)):
                        self._fault(str(path), "liabilities.leaf", f"leaf of {row.holder_id} differs")
        except LiabilitiesError as exc:
            self._fault(str(path), "liabilities.node", str(exc))
        finally:
            engine.dispose()


def checker(books_root: Path) -> Check:
    return LiabilitiesCheck(books_root)


def compare(books_root: Path | str) -> list[Fault]:
    root = Path(books_root)
    check, fold = LiabilitiesCheck(root), holder_index.Fold()
    for path, directive, _errors in journal_directives(Books(root)):
        if directive is not None:
            entry = from_beancount(directive)
            check.feed(path, directive, entry, fold.apply(entry))
    return check.finish()


# -- the holder proof -------------------------------------------------------------------------------------------


class ProofNotFound(NotFound):
    """No such holder or day in the liabilities tree (404)."""


def holder_proof(books_root: Path | str, holder_id: str, day: date | None = None) -> dict[str, Any]:
    """The holder proof (README "Liabilities"): at `day` (default: the latest), recomputed from the
    stored tree when `day` is its position, else by folding the journal to that day."""
    root = Path(books_root)
    files = _files(root)
    if not files:
        raise ProofNotFound("liabilities.none", "the books have no liabilities checkpoint yet", "date")
    day = day or max(files)
    if day not in files:
        raise ProofNotFound("liabilities.unknown", f"date: no liabilities checkpoint of {day}", "date")
    secret = read_secret(root)
    if secret is None:
        raise ProofNotFound("liabilities.none", "the books have no liabilities secret", "date")
    liab = json.loads(files[day].read_text(encoding="utf-8"))
    tree = _tree_at(root, day, secret)
    try:
        idx = tree.leaf_index(holder_id)
        if idx is None:
            raise ProofNotFound("holder.unknown", f"id: no holder {holder_id!r} in the tree of {day}", "id")
        figures = tree.leaf_of.get(holder_id)
        if figures is None:
            row = tree.connection.execute(select(LEAVES).where(LEAVES.c.holder_id == holder_id)).first()
            figures = (row.base_sp, row.shares, row.sv_locked)
        path = ms.path(tree.node, tree.size, idx)
    finally:
        tree.close()
    base_sp, shares, sv_locked = figures
    sp_index, sv_index = Decimal(liab["indices"]["sp_index"]), Decimal(liab["indices"]["sv_index"])
    log_checkpoint = stored_checkpoint(root, day)
    signed = {"checkpoint": published_json(root, log_checkpoint)} if log_checkpoint is not None else {}
    return {
        "version": "ledger-holder-proof-v1", "holder": holder_id, "salt": ms.salt(secret, holder_id),
        "leaf_index": idx,
        "leaf": {"base_sp": ms.text(base_sp), "shares": ms.text(shares), "sv_locked": ms.text(sv_locked)},
        "balances": {"sp": ms.text(ms.floor(ms.CTX.add(base_sp, ms.CTX.multiply(shares, sp_index)))),
                     "sv_active": ms.text(ms.floor(ms.CTX.multiply(shares, sv_index))),
                     "sv_locked": ms.text(ms.floor(sv_locked))},
        "path": [{"side": side, "hash": nd.hash, **nd.figures()} for side, nd in path],
        "liabilities": liab,
        **signed,  # the day's checkpoint as published: signed, it names this liabilities root
    }


def _tree_at(root: Path, day: date, secret: bytes) -> Tree:
    path = db_path(root)
    if path.is_file():
        engine = sqlite_engine(path)
        c = engine.connect()
        if c.execute(select(POSITION.c.day)).scalar() == day:
            tree = Tree(secret, c)
            tree.engine = engine
            return tree
        c.close()
        engine.dispose()
    tree = Tree(secret)
    folder, fold = DayFolder(tree), holder_index.Fold()
    for _path, directive, _errors in journal_directives(Books(root)):
        if directive is None:
            continue
        entry = from_beancount(directive)
        state = fold.apply(entry)
        if entry is None or state is None:
            continue
        if entry.date > day:
            break
        folder.entry(entry, state)
    return tree
