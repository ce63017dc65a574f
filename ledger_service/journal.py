"""The books on disk: `main.beancount` and one journal file per business day.

    BOOKS/
      main.beancount                      options, the plugin, commodities, accounts,
                                          include "journal/*/*.beancount"
      journal/2026-01/2026-01-05.beancount  every entry of that business day, in order
      ledger.sqlite                       the operational database (default engine)

Writes are whole entries appended with O_APPEND and flushed with fsync (and the
directory fsynced when a file is created) before an event is reported booked.

This module owns reading the journal as it owns writing it: the day files in order
(`Books.journal_files`, `day_files`), every directive with its file and line
(`journal_directives`, through Beancount's parser), one day's entries with their text
(`day_entries`), one entry again (`EntryReader`), and the fast paths that read only a
file's head or tail without a full parse (`last_entry`, `head`, `leading_entries`). No
other module reads journal text.
"""

from __future__ import annotations

import bisect
import fcntl
import os
import re
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from beancount.core import data
from beancount.parser import _parser, grammar, parser  # type: ignore[attr-defined]

from . import accounts
from .amounts import COMMODITIES
from .entries import Entry, from_beancount

MAIN = "main.beancount"
JOURNAL_GLOB = "journal/*/*.beancount"
LOCK = ".lock"
PLUGIN = "ledger_service.plugin"
# The books are the owner's alone: every folder 0700, every file 0600 (journal, database,
# ledger tier, locks, records), whatever the umask (a umask only removes bits).
DIR_MODE = 0o700
FILE_MODE = 0o600

_COMMODITY_NAMES = {"CNY": "人民币 Chinese yuan", "SV": "共享值 share value", "SP": "共享积分 share points"}


def day_file(day: date) -> str:
    """The journal file of a business day, relative to the books."""
    return f"journal/{day:%Y-%m}/{day.isoformat()}.beancount"


def main_text(genesis_day: date, title: str = "共享购 points ledger — journal") -> str:
    d = genesis_day.isoformat()
    lines = [
        "; The journal: every event of the points platform, one transaction each, hash-chained.",
        "; Written by ledger-service. Check it with: bean-check main.beancount",
        f'option "title" "{title}"',
        'option "operating_currency" "CNY"',
        'option "booking_method" "STRICT"',
        f'plugin "{PLUGIN}"',
        "",
    ]
    for currency in COMMODITIES:
        lines += [f"{d} commodity {currency}", f'  name: "{_COMMODITY_NAMES[currency]}"']
    lines.append("")
    for account, currency, purpose in accounts.CHART:
        lines += [f"{d} open {account} {currency}", f'  purpose: "{purpose}"']
    lines += ["", f'include "{JOURNAL_GLOB}"', ""]
    return "\n".join(lines)


class Books:
    """A books folder: paths, the writer lock, whole-entry appends."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def main(self) -> Path:
        return self.root / MAIN

    def path(self, relative: str) -> Path:
        return self.root / relative

    def exists(self) -> bool:
        return self.main.is_file()

    def journal_files(self) -> list[Path]:
        return sorted(self.root.glob(JOURNAL_GLOB))

    def size(self, relative: str) -> int:
        try:
            return self.path(relative).stat().st_size
        except FileNotFoundError:
            return 0

    def lock(self):
        """The one writer at a time, across processes (gunicorn workers, CLI)."""
        return file_lock(self.root / LOCK)

    def append(self, chunks: list[tuple[str, bytes]]) -> None:
        """Append byte chunks to their files, in order, and make them durable."""
        by_file: dict[str, list[bytes]] = {}
        for rel, chunk in chunks:
            by_file.setdefault(rel, []).append(chunk)
        for rel, parts in by_file.items():
            path = self.path(rel)
            created = not path.exists()
            if created:
                make_private_dirs(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
            try:
                payload = b"".join(parts)
                written = 0
                while written < len(payload):
                    written += os.write(fd, payload[written:])
                os.fsync(fd)
            except OSError as exc:  # name the file (a write or fsync error does not)
                exc.filename = exc.filename or str(path)
                raise
            finally:
                os.close(fd)
            if created:
                _fsync_dir(path.parent)
                _fsync_dir(path.parent.parent)

    def truncate(self, relative: str, size: int) -> None:
        path = self.path(relative)
        if not path.exists():
            return
        with open(path, "r+b") as handle:
            handle.truncate(size)
            handle.flush()
            os.fsync(handle.fileno())

    def cut_back(self, relative: str, size: int) -> int:
        """Undo a failed append: cut the file back to `size` bytes (remove it if it held none
        before); nothing to do when no byte was written. Returns the bytes cut."""
        path = self.path(relative)
        current = self.size(relative)
        if current <= size and (size > 0 or not path.exists()):
            return 0
        if size == 0:
            path.unlink()
            return current
        self.truncate(relative, size)
        return current - size

    def write_main(self, genesis_day: date) -> None:
        make_private_dirs(self.root)
        tmp = self.main.with_suffix(".tmp")
        write_private(tmp, main_text(genesis_day).encode("utf-8"))
        os.replace(tmp, self.main)
        _fsync_dir(self.root)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on `path`, created if missing, held for the block."""
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError:  # a read-only disk or lock file: flock works on a read-only descriptor too
        if not path.exists():
            raise
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def make_private_dirs(path: Path | str) -> None:
    """Create `path` and its missing parents, each 0700 (mkdir -p would give the parents 0777 − umask)."""
    path = Path(path)
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)


def private_file(path: Path | str) -> None:
    """Create `path` empty, 0600, unless it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)


def write_private(path: Path | str, data: bytes) -> None:
    """Write `path` whole (created or truncated), 0600, and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a leftover file keeps its mode through O_CREAT
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------------------------------


def relative(root: Path, path: Path | str) -> str:
    """`path` relative to the books folder `root`, with forward slashes."""
    path = Path(path)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()


def day_of(path: Path | str) -> date | None:
    """The business day a journal file holds (its name), None for another file."""
    try:
        return date.fromisoformat(Path(path).stem)
    except ValueError:
        return None


def parse_file(path: Path | str, display: bool = True) -> tuple[list, list, dict]:
    """A journal file through Beancount's parser: (directives in file order, errors, options).

    `display=False`: without Beancount's display context (the precision it would show each
    currency with, `options["dcontext"]`, then left empty), which no check reads: the same
    directives and errors, about 11 % less time (Beancount's `parser.parse_file`, with a
    grammar builder whose display-context update does nothing)."""
    if display:
        directives, errors, options = parser.parse_file(str(path))
    else:
        builder = _NoDisplayBuilder()
        with open(path, "rb") as handle:
            _parser.Parser(builder).parse(handle, filename=None, lineno=1)
        directives, errors, options = builder.finalize()
    directives.sort(key=lambda d: d.meta.get("lineno", 0))
    return directives, errors, options


class _NoDisplayBuilder(grammar.Builder):
    """Beancount's grammar builder without the display context (`parse_file(display=False)`)."""

    def _dcupdate(self, number, currency) -> None:
        return None


def parse_entry(text: str) -> Entry | None:
    """The one entry of `text` (a row's text, an entry read again), None when it holds no single entry."""
    directives, errors, _ = parser.parse_string(text)
    if errors or len(directives) != 1:
        return None
    return from_beancount(directives[0])


@dataclass(frozen=True)
class Foreign:
    """What a journal file may not hold (an include, a plugin, a directive of another kind)."""

    source: dict
    message: str


def journal_directives(books: Books, progress: Callable[[Path], None] | None = None,
                       ) -> Iterator[tuple[Path, Any, list]]:
    """(file, directive or None, parse errors) for every journal file, in order.

    Per file: first (file, None, its errors), then (file, directive, []) for each directive
    in file order; `progress(file)` after each file. A journal file holds the service's
    transactions and prices and nothing else: an `include`, `option` or `plugin` in one, or
    any other directive, is reported as a `Foreign` error.
    """
    for path in books.journal_files():
        directives, errors, options = parse_file(path)
        yield path, None, file_faults(path, directives, errors, options)
        for directive in directives:
            yield path, directive, []
        if progress is not None:
            progress(path)


# The service's own format, read without a parse: an entry's first line, its string metadata.
_HEADER = re.compile(r'^(\d{4}-\d\d-\d\d) (?:price |[*!] "([^"\n]*)")', re.M)
_ENTRY_META = re.compile(r'^  ([a-z][a-zA-Z0-9_-]*): "([^"\n]*)"$', re.M)


def file_faults(path: Path | str, directives: list, errors: list, options: dict) -> list:
    """A parsed journal file's errors, then what it may not hold (`Foreign`): an `include`,
    `option` or `plugin`, a price other than SP in CNY, a directive other than a transaction
    or a price."""
    errors = list(errors)
    foreign = [f"include {name}" for name in options.get("include", [])]
    foreign += [f"plugin {name}" for name, _ in options.get("plugin", [])]
    if foreign:
        errors.append(Foreign({"filename": str(path), "lineno": 0},
                              f"a journal file may not hold {', '.join(foreign)}"))
    for directive in directives:
        if isinstance(directive, data.Price) and from_beancount(directive) is None:
            errors.append(Foreign(directive.meta, f"a price of {directive.currency} in {directive.amount.currency}: "
                                                  "the journal prices SP in CNY only"))
        elif not isinstance(directive, (data.Transaction, data.Price)):
            errors.append(Foreign(directive.meta, f"a journal file holds only transactions and prices, not a "
                                                  f"{type(directive).__name__}"))
    return errors


def entry_meta(text: str) -> dict[str, str]:
    """The string metadata of one entry's text (as the service writes it: two spaces, key, quoted value)."""
    return {m.group(1): m.group(2) for m in _ENTRY_META.finditer(text)}


def last_entry(path: Path) -> dict[str, str] | None:
    """The metadata of the last entry of a journal file, `kind` "price" for a price (its tail only
    is read; None: no file, or no entry in it)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    chunk = 8192
    with open(path, "rb") as handle:
        while True:
            start = max(0, size - chunk)
            handle.seek(start)
            text = handle.read(size - start).decode("utf-8", errors="replace")
            if start > 0:
                text = text[text.find("\n") + 1:] if "\n" in text else ""
            found = list(_HEADER.finditer(text))
            if found:
                block = text[found[-1].start():]
                meta = entry_meta(block)
                meta.setdefault("kind", "price" if " price " in block.split("\n", 1)[0] else "")
                return meta
            if start == 0:
                return None
            chunk *= 8


def head(root: Path | str) -> dict[str, str]:
    """The chain head: seq and hash of the last entry of the last journal file ({} for none)."""
    for path in reversed(Books(root).journal_files()):
        meta = last_entry(path)
        if meta:
            return {"seq": meta.get("seq", ""), "hash": meta.get("hash", ""), "file": str(path)}
    return {}


def leading_entries(path: Path, limit: int = 1 << 16) -> list[Entry]:
    """The genesis and price entries at the start of a journal file (its head only is read)."""
    with open(path, "rb") as handle:
        raw = handle.read(limit)
    complete = len(raw) < limit
    text = raw.decode("utf-8", errors="replace")
    heads = list(_HEADER.finditer(text))
    take = []
    for i, found in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else (len(text) if complete else None)
        if end is None:
            break
        block = text[found.start():end]
        if entry_meta(block).get("kind") not in ("genesis", "price"):
            break
        take.append(block)
    if not take:
        return []
    directives, _errors, _options = parser.parse_string("".join(take))
    directives.sort(key=lambda d: d.meta.get("lineno", 0))
    return [e for e in (from_beancount(d) for d in directives) if e is not None]


@dataclass(frozen=True)
class TextUnit:
    """One entry of a file as the service writes it: its first line number, key and text."""

    lineno: int
    key: str  # the date and payee of a transaction, the date and commodity of a price, else the first line
    text: str


_DIRECTIVE = re.compile(r"^\d{4}-\d\d-\d\d ")
_UNIT_KEY = re.compile(r'^(\d{4}-\d\d-\d\d (?:[*!] "[^"]*"|price \S+))')


def text_units(text: str) -> tuple[list[TextUnit], list[tuple[int, str]]]:
    """A file the service wrote (a ledger file) as its entries (a dated line and the indented lines
    after it) and its other lines (options, includes; comments and blank lines left out). A text
    comparison, line for line: it reads what is there, parsable or not."""
    entries: list[TextUnit] = []
    others: list[tuple[int, str]] = []
    current: list[str] | None = None
    start = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if _DIRECTIVE.match(line):
            if current is not None:
                entries.append(_unit(start, current))
            current, start = [line], lineno
        elif current is not None and line.startswith("  "):
            current.append(line)
        else:
            if current is not None:
                entries.append(_unit(start, current))
                current = None
            if line.strip() and not line.startswith(";"):
                others.append((lineno, line))
    if current is not None:
        entries.append(_unit(start, current))
    return entries, others


def _unit(start: int, lines: list[str]) -> TextUnit:
    found = _UNIT_KEY.match(lines[0])
    return TextUnit(start, found.group(1) if found else lines[0], "\n".join(lines))


@dataclass
class DayFile:
    """One journal day file as the derived views read it: closed once it ends with its release."""

    path: Path
    relpath: str
    day: date
    closed: bool | None = None  # read by `read_closed` (under the books' writer lock)
    _directives: list | None = field(default=None, repr=False)

    def read_closed(self) -> bool:
        meta = last_entry(self.path) or {}
        self.closed = meta.get("kind") == "release"
        return self.closed

    def directives(self) -> list:
        """The file's directives in file order (parsed once, kept until `forget`)."""
        if self._directives is None:
            self._directives = parse_file(self.path)[0]
        return self._directives

    def leading_entries(self) -> list[Entry]:
        return leading_entries(self.path)

    def forget(self) -> None:
        self._directives = None


def day_files(books: Books) -> list[DayFile]:
    """Every journal day file, in order (files not named by a day left out)."""
    out = []
    for path in books.journal_files():
        day = day_of(path)
        if day is not None:
            out.append(DayFile(path, relative(books.root, path), day))
    return out


@dataclass(frozen=True)
class JournalEntry:
    """One entry of a day file: its first line, chain seq, kind, event id and text."""

    lineno: int
    seq: str
    kind: str
    event: str
    text: str


def day_entries(path: Path) -> list[JournalEntry]:
    """A journal day file as its entries, in order.

    The entries are the directives Beancount's parser reads from the file (not its lines:
    `str.splitlines` would break a string at U+2028, U+2029 or U+0085 and list what follows
    as an entry of its own). An entry's text is its lines ("\\n" ends a line, as for
    Beancount) from its first up to the next blank line or the next entry.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    directives, _errors, _options = parser.parse_string(text)
    lines = text.split("\n")
    starts = sorted({d.meta["lineno"] for d in directives if d.meta and d.meta.get("lineno")})
    out: list[JournalEntry] = []
    for directive in sorted(directives, key=lambda d: d.meta.get("lineno", 0)):
        first = directive.meta.get("lineno", 0)
        after = bisect.bisect_right(starts, first)
        end = starts[after] - 1 if after < len(starts) else len(lines)  # 1-based: the last line it may hold
        last = first
        while last < end and lines[last].strip(" \t\r"):  # lines[last] is line last + 1
            last += 1
        meta = directive.meta or {}
        kind = str(meta.get("kind") or ("price" if isinstance(directive, data.Price) else ""))
        out.append(JournalEntry(first, str(meta.get("seq", "")), kind, str(meta.get("event", "")),
                                "\n".join(lines[first - 1:last])))
    return out


class EntryReader:
    """Reads one entry again from its file and line (the replay's reversals, an inclusion proof),
    through Beancount's parser: the entry's own lines, or the whole file when those do not parse
    to the same entry.

    The first read of a file finds its line by counting newlines up to it (no index kept: an
    inclusion proof reads one entry of a 30 MB day file in milliseconds); a second read of the
    same, unchanged file indexes every line's start once, for the reads that follow."""

    def __init__(self) -> None:
        self._lines: tuple[tuple, array] | None = None
        self._seen: tuple | None = None  # the file read once, not indexed

    def entry(self, path: str, line: int, whole_file: bool = False) -> Entry | None:
        """The entry starting at `path:line` (None: no such entry, or the file cannot be read)."""
        try:
            if whole_file:
                directives, _, _ = parser.parse_file(path)
                found = [d for d in directives if d.meta.get("lineno") == line]
            else:
                directives, _, _ = parser.parse_string(self.text(path, line))
                found = directives[:1]
        except (OSError, UnicodeDecodeError):
            return None
        return from_beancount(found[0]) if found else None

    def text(self, path: str, line: int) -> str:
        """The lines of the entry starting at `line`: its own and the indented ones after it."""
        start = self._line_start(path, line)
        if start is None:
            return ""
        out: list[bytes] = []
        with open(path, "rb") as file:
            file.seek(start)
            out.append(file.readline())
            for text in file:
                if text.strip() and text[:1] not in (b" ", b"\t"):
                    break  # the next directive (metadata and postings are indented)
                out.append(text)
        return b"".join(out).decode("utf-8")

    def _line_start(self, path: str, line: int) -> int | None:
        """Where `line` of `path` starts (None: the file has no such line)."""
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        if (self._lines is not None and self._lines[0] == key) or self._seen == key:
            starts = self._line_starts(path)  # one more than the lines: the last is the end of the file
            return starts[line - 1] if 0 < line < len(starts) else None
        self._seen = key
        return _line_offset(path, line)

    def _line_starts(self, path: str) -> array:
        """Where each line of `path` starts (kept for the last file read, while it is unchanged)."""
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        if self._lines is None or self._lines[0] != key:
            starts = array("q", [0])
            offset = 0
            with open(path, "rb") as file:
                for text in file:
                    offset += len(text)
                    starts.append(offset)
            self._lines = (key, starts)
        return self._lines[1]


def _line_offset(path: str, line: int, chunk_size: int = 1 << 20) -> int | None:
    """Where `line` (1-based, "\\n" ending a line as for Beancount) of `path` starts, by counting the
    newlines before it a chunk at a time (None: no such line)."""
    if line < 1:
        return None
    before = line - 1  # the newlines to pass
    offset = 0
    with open(path, "rb") as file:
        while before:
            chunk = file.read(chunk_size)
            if not chunk:
                return None
            found = chunk.count(b"\n")
            if found < before:
                before -= found
                offset += len(chunk)
                continue
            rest = chunk.split(b"\n", before)[-1]  # what follows the `before`-th newline of the chunk
            offset += len(chunk) - len(rest)
            before = 0
        if offset >= os.fstat(file.fileno()).st_size:
            return None  # past the last line
    return offset
