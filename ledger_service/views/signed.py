"""The signed checkpoints (issue 12 §4): what each close books in the chain, published and checked.

    BOOKS/checkpoints/YYYY-MM-DD.json   the signed checkpoint object of a closed day
                                        (`ledger-checkpoint-v2`, `rules.checkpoints`), exactly the
                                        object the chain's `checkpoint` entry of that day holds

After a close the engine reads the day's two roots here (`inputs`: the event log's checkpoint
row, the liabilities checkpoint file), signs the object, books it, then `publish`es the file.
Days closed before the books signed checkpoints keep the event log's unsigned
`ledger-checkpoint-v1` file (`published` answers it, marked unsigned, until a signed one exists).

`SignedCheck` (fed by `verify`) recomputes every booked checkpoint from the journal: the day
and its release (`last_seq`, `head`), the event-log root over the first `log_size` entries, the
liabilities root, holders, sums and indices (from the liabilities check's recomputation), the
supply report at the day's close, the signature under the key in force (the genesis entry's,
then each rotation's, each rotation signed by the key it replaces), each consecutive pair's
consistency proof from the event log's stored nodes, the published file, and that no closed
day after the first checkpoint lacks one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from .. import merkle, reports, signing
from ..config import ConfigError, Params
from ..entries import Entry, Transaction, from_beancount
from ..errors import Invalid, NotFound
from ..faults import Fault
from ..journal import DayFile, relative
from ..rules import checkpoints as cp
from ..rules.events import EventKind
from .base import Check, Update, dated_files, publish_dated
from .event_log import CHECKPOINT_VERSION as UNSIGNED_VERSION
from .event_log import Store, checkpoint_dir, checkpoint_path, open_engine, stored_checkpoint
from .liabilities import LiabilitiesCheck
from .liabilities import checkpoint_path as liabilities_path

VERSION = cp.CHECKPOINT_VERSION
MAX_FAULTS = 100


def text_of(obj: dict[str, Any]) -> str:
    """A signed checkpoint file's exact text."""
    return json.dumps(obj, indent=2) + "\n"


def inputs(books_root: Path | str, day: date) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the event log's checkpoint of `day`, the liabilities checkpoint of `day`), as the views
    wrote them after the close; None while either is missing."""
    root = Path(books_root)
    log = stored_checkpoint(root, day)
    path = liabilities_path(root, day)
    if log is None or not path.is_file():
        return None
    return log.to_json(), json.loads(path.read_text(encoding="utf-8"))


def publish(books_root: Path | str, objects: Sequence[dict[str, Any]]) -> list[str]:
    """Write each signed checkpoint's file (unchanged files are left alone); the files written."""
    root = Path(books_root)
    wanted = {date.fromisoformat(o["day"]): (checkpoint_path(root, date.fromisoformat(o["day"])), text_of(o))
              for o in objects}
    return publish_dated(root, wanted, None)


def read(books_root: Path | str, day: date) -> dict[str, Any] | None:
    """The signed checkpoint of `day` as published (None: no file, or an unsigned v1 file)."""
    path = checkpoint_path(books_root, day)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == VERSION and data.get("day") == day.isoformat() \
        else None


def published(books_root: Path | str, day: date | None, field: str = "date") -> dict[str, Any]:
    """The checkpoint of `day` (None: the latest closed day) as the API serves it: the signed one when
    booked, else the event log's unsigned one (a day closed before signing, or not yet signed)."""
    root = Path(books_root)
    engine = open_engine(root)
    if engine is None:
        raise NotFound("checkpoint.none", "the books have no checkpoint yet (no day closed)", field)
    try:
        with engine.connect() as connection:
            store = Store(connection)
            log = store.latest() if day is None else store.checkpoint(day)
    finally:
        engine.dispose()
    if log is None:
        what = "no checkpoint yet (no day closed)" if day is None else f"no checkpoint of {day} (not a closed day)"
        raise NotFound("checkpoint.unknown", f"{field}: {what}", field)
    return read(root, log.day) or log.to_json()


def is_signed(obj: dict[str, Any]) -> bool:
    return obj.get("version") == VERSION


# -- the update: on a rebuild, every checkpoint entry of the closed days written again ------------------------


class _Update:
    """On a rebuild: every checkpoint entry of the journal (the open day's too) written to its file, and
    every other dated `.json` file removed (a file of a day no checkpoint entry names is no checkpoint
    of these books). Otherwise nothing: the engine publishes each checkpoint as it books it."""

    def __init__(self, root: Path, rebuild: bool) -> None:
        self.root = root
        self.rebuild = rebuild
        self.objects: list[dict[str, Any]] = []

    def wants(self, day: DayFile) -> bool:
        return self.rebuild

    def add(self, day: DayFile) -> None:
        try:
            directives = day.directives()
        except (OSError, ValueError):
            return
        for directive in directives:
            entry = from_beancount(directive)
            if isinstance(entry, Transaction) and entry.kind == EventKind.CHECKPOINT:
                try:
                    self.objects.append(cp.object_of(cp.parse_checkpoint(dict(entry.meta))))
                except Invalid:
                    continue  # `verify` names it

    def finish(self, days: Sequence[DayFile]) -> list[str]:
        if not self.rebuild:
            return []
        wanted = {date.fromisoformat(o["day"]): (checkpoint_path(self.root, date.fromisoformat(o["day"])),
                                                 text_of(o)) for o in self.objects}
        return publish_dated(self.root, wanted, dated_files(checkpoint_dir(self.root), ".json"))

    def close(self) -> None:
        return None


def updater(books_root: Path, rebuild: bool = False) -> Update:
    return _Update(Path(books_root), rebuild)


# -- the check ------------------------------------------------------------------------------------------------


class SignedCheck:
    """Recomputes every signed checkpoint of the chain as `verify` streams the journal (a `Check`)."""

    def __init__(self, books_root: Path | str, liabilities: LiabilitiesCheck | None = None) -> None:
        self.root = Path(books_root)
        self.liabilities = liabilities
        self.faults: list[Fault] = []
        self.params: Params | None = None
        self.key: str | None = None  # the public key in force
        self.frontier: list[tuple[int, bytes]] = []
        self.size = 0
        self.broken = False
        # each closed day: (release seq, release hash, log root at it, supply report at its close)
        self.closed: dict[date, tuple[int, str, str, dict[str, str] | None]] = {}
        self.booked: dict[date, tuple[dict[str, Any], str]] = {}  # day -> (object, where)
        self.first: date | None = None  # the first day that must have a checkpoint

    def _fault(self, where: str, rule: str, message: str, event: str = "-") -> None:
        if len(self.faults) < MAX_FAULTS:
            self.faults.append(Fault(where, 0, event, rule, message))

    def feed(self, path: Path, directive: Any, entry: Entry | None, state: Any) -> None:
        if entry is None or self.broken:
            return
        digest = entry.get("hash") or ""
        try:  # the leaf computed by verify's parse worker, when there is one (the same hash)
            leaf = getattr(directive, "leaf", None) or merkle.leaf_hash(bytes.fromhex(digest))
            self.frontier, _made = merkle.push(self.frontier, leaf)
        except ValueError:
            self.broken = True  # the replay and the event log's check name the broken hash
            return
        self.size += 1
        if not isinstance(entry, Transaction):
            return
        kind = entry.kind
        if kind == EventKind.GENESIS:
            self._genesis(entry)
        elif kind == EventKind.RELEASE:
            supply = (reports.supply_report(state.g, self.params)
                      if state is not None and self.params is not None else None)
            self.closed[entry.date] = (self.size, digest, merkle.frontier_root(self.frontier).hex(), supply)
        elif kind == EventKind.SIGNING_KEY:
            self._rotation(entry, f"{relative(self.root, path)}:{directive.meta.get('lineno', 0)}")
        elif kind == EventKind.CHECKPOINT:
            self._checkpoint(entry, f"{relative(self.root, path)}:{directive.meta.get('lineno', 0)}")

    def _genesis(self, entry: Transaction) -> None:
        try:
            self.params = Params.from_meta(dict(entry.meta))
        except ConfigError:
            self.params = None  # the replay names it
        self.key = entry.get("signing_key")
        if self.key is not None:
            self.first = entry.date  # books that sign from genesis: every closed day has a checkpoint

    def _rotation(self, entry: Transaction, where: str) -> None:
        event_id = entry.get("event") or "-"
        try:
            ev = cp.parse_signing_key(dict(entry.meta))
        except Invalid as exc:
            self._fault(where, "signing_key.malformed", str(exc), event_id)
            return
        if ev.previous_key is None:
            if self.key is not None:
                self._fault(where, "signing_key.unsigned", "a new key without the previous key's signature, while "
                                                           f"{self.key} is in force", event_id)
                return
        elif ev.previous_key != self.key:
            self._fault(where, "signing_key.previous", f"previous_key {ev.previous_key} is not the key in force "
                                                       f"({self.key})", event_id)
            return
        elif not signing.verify(ev.previous_key, cp.rotation_object(entry.date, ev.previous_key, ev.public_key),
                                ev.signature or ""):
            self._fault(where, "signing_key.signature", "the rotation is not signed by the previous key", event_id)
            return
        self.key = ev.public_key

    def _checkpoint(self, entry: Transaction, where: str) -> None:
        event_id = entry.get("event") or "-"
        try:
            obj = cp.object_of(cp.parse_checkpoint(dict(entry.meta)))
        except Invalid as exc:
            self._fault(where, "checkpoint.malformed", str(exc), event_id)
            return
        day = date.fromisoformat(obj["day"])
        if self.first is None:
            self.first = day  # books that started signing later: from their first checkpoint on
        if obj["key"] != self.key:
            self._fault(where, "checkpoint.key", f"signed by {obj['key']}, the key in force is {self.key}", event_id)
        elif not signing.verify(obj["key"], obj, obj["signature"]):
            self._fault(where, "checkpoint.signature", f"the signature of the checkpoint of {day} does not verify "
                                                       "under the key in force", event_id)
        wanted = [d for d in self.closed if d >= self.first and d not in self.booked]
        if day in self.booked:
            self._fault(where, "checkpoint.duplicate", f"a second checkpoint of {day}", event_id)
        elif not wanted or day != min(wanted):
            self._fault(where, "checkpoint.order", f"the checkpoint of {day}: the next closed day to checkpoint is "
                                                   f"{min(wanted) if wanted else 'none'}", event_id)
        closed = self.closed.get(day)
        if closed is not None:
            self._compare_closed(obj, closed, where, event_id)
        self.booked.setdefault(day, (obj, where))

    def _compare_closed(self, obj: dict[str, Any], closed: tuple, where: str, event_id: str) -> None:
        seq, head, root, supply = closed
        if (obj["last_seq"], obj["head"], obj["log_size"]) != (seq, head, seq):
            self._fault(where, "checkpoint.head", f"last_seq {obj['last_seq']}, head {obj['head']}, log_size "
                                                  f"{obj['log_size']}: the day's release is seq {seq}, hash {head}",
                        event_id)
        elif obj["log_root"] != root:
            self._fault(where, "checkpoint.root", f"log_root {obj['log_root']}; the journal's first {seq} entries "
                                                  f"give {root}", event_id)
        if supply is not None and obj["supply"] != {k: supply[k] for k in obj["supply"]}:
            self._fault(where, "checkpoint.supply", f"supply {obj['supply']}; the journal gives {supply}", event_id)

    def finish(self) -> list[Fault]:
        if self.broken:
            return self.faults
        self._check_liabilities()
        if self.first is not None:
            for day in sorted(d for d in self.closed if d >= self.first and d not in self.booked):
                self._fault(str(checkpoint_path(self.root, day)), "checkpoint.missing",
                            f"{day} is closed but no signed checkpoint of it is booked")
        self._check_files()
        self._check_consistency()
        return self.faults

    def _check_liabilities(self) -> None:
        if not self.booked:
            return
        expected = self.liabilities.expected if self.liabilities is not None and not self.liabilities.broken \
            and self.liabilities.exists else None
        for day, (obj, where) in sorted(self.booked.items()):
            want = expected.get(day) if expected is not None else None
            if want is None:
                self._fault(where, "checkpoint.liabilities", f"the liabilities of {day} were not recomputed (the "
                                                             "liabilities tree or its secret is missing)")
                continue
            have = obj["liabilities"]
            if (have["root"], have["holders"], have["sums"], have["indices"]) != (
                    want["root"], want["holders"], want["sums"], want["indices"]):
                self._fault(where, "checkpoint.liabilities", f"liabilities {have}; the journal gives root "
                                                             f"{want['root']} over {want['holders']} holders, sums "
                                                             f"{want['sums']}, indices {want['indices']}")

    def _check_files(self) -> None:
        for day, (obj, _where) in sorted(self.booked.items()):
            path = checkpoint_path(self.root, day)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                text = None
            if text != text_of(obj):
                self._fault(str(path), "checkpoint.file", "missing" if text is None else
                            "differs from the checkpoint the chain books for that day")

    def _check_consistency(self) -> None:
        """Each signed checkpoint extends the one before it: a consistency proof from the event log's nodes."""
        signed = [obj for _day, (obj, _where) in sorted(self.booked.items())]
        if len(signed) < 2:
            return
        engine = open_engine(self.root)
        if engine is None:
            self._fault(str(checkpoint_dir(self.root)), "checkpoint.consistency", "no event log to prove the signed "
                                                                                   "checkpoints consistent")
            return
        try:
            with engine.connect() as connection:
                store = Store(connection)
                for first, second in zip(signed, signed[1:], strict=False):
                    m, n = first["log_size"], second["log_size"]
                    try:
                        proof = merkle.consistency_path(store.node, m, n)
                        ok = merkle.verify_consistency(m, n, bytes.fromhex(first["log_root"]),
                                                       bytes.fromhex(second["log_root"]), proof)
                    except Exception as exc:  # noqa: BLE001 - a node missing or unreadable: named, not raised
                        ok = False
                        detail = f" ({type(exc).__name__}: {exc})"
                    else:
                        detail = ""
                    if not ok:
                        self._fault(str(checkpoint_path(self.root, date.fromisoformat(second["day"]))),
                                    "checkpoint.consistency",
                                    f"the checkpoint of {second['day']} does not extend that of {first['day']}{detail}")
        finally:
            engine.dispose()


def checker(books_root: Path) -> Check:
    """The check alone: the liabilities named by each checkpoint are not recomputed (`views.checkers`
    gives it the liabilities check's recomputation)."""
    return SignedCheck(books_root)


def compare(books_root: Path | str) -> list[Fault]:
    """The signed checkpoints against the journal, with the liabilities recomputed alongside."""
    from ..journal import Books, journal_directives  # noqa: PLC0415 - only this entry point reads the journal
    from . import holder_index

    root = Path(books_root)
    liab, fold = LiabilitiesCheck(root), holder_index.Fold()
    check = SignedCheck(root, liab)
    for path, directive, _errors in journal_directives(Books(root)):
        if directive is not None:
            entry = from_beancount(directive)
            state = fold.apply(entry)
            liab.feed(path, directive, entry, state)
            check.feed(path, directive, entry, state)
    return check.finish()


__all__ = ["UNSIGNED_VERSION", "VERSION", "SignedCheck", "checker", "compare", "inputs", "is_signed", "publish",
           "published", "read", "text_of", "updater"]
