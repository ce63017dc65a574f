"""The journal's entries as plain data: their text, their canonical form, their hash.

Two kinds of entry are chained: transactions (every event) and `price` directives
(the value of a point, one per business day). Both are immutable values. The same
entry has exactly one text (`render`) and one canonical form (`canonical`); the
canonical form is also computed from what Beancount's parser reads back
(`from_beancount`), so an edit to any field of the file changes the hash.

Canonical form (UTF-8, lines joined by "\\n", no trailing newline):

    ledger-entry-v1
    prev:<hex of the previous entry's hash, 64 zeros for the first>
    type:transaction | type:price
    date:YYYY-MM-DD
    flag:*                          (transaction)
    payee:<JSON string>             (transaction)
    narration:<JSON string>         (transaction)
    tags:<sorted, comma-separated>  (transaction; empty for the service's entries)
    links:<sorted, comma-separated> (transaction; empty for the service's entries)
    price:SP <number> CNY           (price)
    meta:<key>=<JSON string>        one per key, sorted, without `prev` and `hash`
    posting:<account> <number> <currency>
    pmeta:<key>=<JSON string>       the posting's metadata, sorted

Numbers appear exactly as written (`5.0000` and `5` differ). The hash is the
SHA-256 hex digest of that text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from beancount.core import data

from .amounts import fmt
from .text import REFUSED

GENESIS_PREV = "0" * 64
FLAG = "*"
# Metadata Beancount adds by itself, or that the hash covers rather than contains.
_IGNORED_META = frozenset({"filename", "lineno", "prev", "hash", "__tolerances__", "__automatic__"})
META_KEY_RE = re.compile(r"^[a-z][a-zA-Z0-9_-]{1,63}$")  # Beancount needs two characters
# Characters a journal string may not hold (the rules refuse them first: `ledger_service.text`).
_FORBIDDEN_TEXT = REFUSED


Meta = tuple[tuple[str, str], ...]


def meta_get(meta: Meta, key: str, default: str | None = None) -> str | None:
    for k, v in meta:
        if k == key:
            return v
    return default


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    number: Decimal
    currency: str
    meta: Meta = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        return meta_get(self.meta, key, default)

    @property
    def holder(self) -> str | None:
        for k, v in self.meta:  # meta_get(self.meta, "holder"), inlined: read for every posting applied
            if k == "holder":
                return v
        return None


@dataclass(frozen=True, slots=True)
class Transaction:
    date: date
    payee: str
    narration: str
    meta: Meta
    postings: tuple[Posting, ...] = ()
    flag: str = FLAG
    tags: tuple[str, ...] = ()
    links: tuple[str, ...] = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        return meta_get(self.meta, key, default)

    @property
    def kind(self) -> str:
        return self.get("kind") or ""


@dataclass(frozen=True, slots=True)
class Price:
    date: date
    number: Decimal  # CNY per SP
    meta: Meta = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        return meta_get(self.meta, key, default)


Entry = Transaction | Price


@dataclass(frozen=True, slots=True)
class Located:
    """Where an entry stands in the journal (for reporting faults)."""

    filename: str
    lineno: int


def _fmt(number: Decimal) -> str:
    """`amounts.fmt(number)`, faster: a Decimal's str() is the same text unless it has an exponent."""
    if number.__class__ is Decimal:
        text = str(number)
        if "E" not in text:
            return text
    return fmt(number)


# Metadata keys already checked against META_KEY_RE (the service's keys are a small fixed set).
_CHECKED_KEYS: set[str] = set()


def meta_tuple(items: Iterable[tuple[str, Any]]) -> Meta:
    """Metadata as an ordered tuple of string pairs, dropping empty values."""
    out: list[tuple[str, str]] = []
    append = out.append
    checked = _CHECKED_KEYS
    for key, value in items:
        if value is None:
            continue
        if key not in checked:
            assert META_KEY_RE.match(key), key
            if len(checked) < 1024:
                checked.add(key)
        if value.__class__ is str:  # the usual case (ids, legs)
            text = value
        elif isinstance(value, Decimal):
            text = _fmt(value)
        else:
            text = str(value)
        if not text.isprintable():  # (printable text holds none of the forbidden characters)
            assert not _FORBIDDEN_TEXT.search(text), (key, text)
        append((key, text))
    return tuple(out)


# `json.dumps(text, ensure_ascii=False)` for a str is exactly `encode_basestring(text)` (that is
# what its encoder calls), without building a JSONEncoder per call.
_json = json.encoder.encode_basestring


def canonical(entry: Entry, prev: str) -> str:
    if isinstance(entry, Transaction):
        lines = [
            "ledger-entry-v1",
            "prev:" + prev,
            "type:transaction",
            "date:" + entry.date.isoformat(),
            "flag:" + entry.flag,
            "payee:" + _json(entry.payee),
            "narration:" + _json(entry.narration),
            "tags:" + ",".join(sorted(entry.tags)),
            "links:" + ",".join(sorted(entry.links)),
        ]
    else:
        lines = [
            "ledger-entry-v1",
            "prev:" + prev,
            "type:price",
            "date:" + entry.date.isoformat(),
            f"price:SP {_fmt(entry.number)} CNY",
        ]
    append = lines.append
    for k, v in sorted(entry.meta):
        if k not in _IGNORED_META:
            append(f"meta:{k}={_json(v)}")
    if isinstance(entry, Transaction):
        for posting in entry.postings:
            append(f"posting:{posting.account} {_fmt(posting.number)} {posting.currency}")
            for k, v in sorted(posting.meta):
                if k not in _IGNORED_META:
                    append(f"pmeta:{k}={_json(v)}")
    return "\n".join(lines)


def entry_hash(entry: Entry, prev: str) -> str:
    return hashlib.sha256(canonical(entry, prev).encode("utf-8")).hexdigest()


def _string(text: str) -> str:
    """A Beancount string literal."""
    if not text.isprintable():  # (printable text holds none of the forbidden characters)
        assert not _FORBIDDEN_TEXT.search(text), text
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text + '"'


def render(entry: Entry) -> str:
    """The entry's one text in the journal, ending with a blank line."""
    out: list[str] = []
    if isinstance(entry, Transaction):
        marks = "".join(f" #{t}" for t in entry.tags) + "".join(f" ^{link}" for link in entry.links)
        out.append(f"{entry.date.isoformat()} {entry.flag} {_string(entry.payee)} {_string(entry.narration)}{marks}")
    else:
        out.append(f"{entry.date.isoformat()} price SP {_fmt(entry.number)} CNY")
    append = out.append
    for k, v in entry.meta:
        append(f"  {k}: {_string(v)}")
    if isinstance(entry, Transaction):
        for posting in entry.postings:
            append(f"  {posting.account}  {_fmt(posting.number)} {posting.currency}")
            for k, v in posting.meta:
                append(f"    {k}: {_string(v)}")
    append("\n")
    return "\n".join(out)


def _posting_lines(postings: tuple[Posting, ...], add_canon: Callable[[str], None],
                   add_text: Callable[[str], None]) -> None:
    """The postings' lines of the canonical form and of the text (`chain_entry`)."""
    json_ = _json
    string = _string
    ignored = _IGNORED_META
    for posting in postings:
        account = posting.account
        amount = f"{_fmt(posting.number)} {posting.currency}"
        add_canon(f"posting:{account} {amount}")
        add_text(f"  {account}  {amount}")
        pmeta = posting.meta
        if pmeta:
            for k, v in pmeta:
                add_text(f"    {k}: {string(v)}")
            if len(pmeta) > 1:
                pmeta = tuple(sorted(pmeta))
            for k, v in pmeta:
                if k not in ignored:
                    add_canon(f"pmeta:{k}={json_(v)}")


def chain_entry(entry: Entry, prev: str) -> tuple[str, Entry, str]:
    """(digest, full, text) for chaining `entry` after `prev`, in one pass over the entry:

        digest = entry_hash(entry, prev)
        full = with_meta(entry, [("prev", prev), ("hash", digest)])
        text = render(full)

    the same strings as those three (the canonical form and the text share the date and the
    numbers, each formatted once)."""
    day = entry.date.isoformat()
    json_ = _json
    string = _string
    ignored = _IGNORED_META
    if isinstance(entry, Transaction):
        canon = [
            "ledger-entry-v1",
            "prev:" + prev,
            "type:transaction",
            "date:" + day,
            "flag:" + entry.flag,
            "payee:" + json_(entry.payee),
            "narration:" + json_(entry.narration),
            "tags:" + ",".join(sorted(entry.tags)),
            "links:" + ",".join(sorted(entry.links)),
        ]
        marks = ""
        if entry.tags or entry.links:
            marks = "".join(f" #{t}" for t in entry.tags) + "".join(f" ^{link}" for link in entry.links)
        head = [day + " " + entry.flag + " " + string(entry.payee) + " " + string(entry.narration) + marks]
    else:
        number = _fmt(entry.number)
        canon = ["ledger-entry-v1", "prev:" + prev, "type:price", "date:" + day, "price:SP " + number + " CNY"]
        head = [day + " price SP " + number + " CNY"]
    add_canon = canon.append
    add_head = head.append
    meta = entry.meta
    for k, v in sorted(meta):
        if k not in ignored:
            add_canon(f"meta:{k}={json_(v)}")
    for k, v in meta:
        add_head(f"  {k}: {string(v)}")
    add_head("  prev: " + string(prev))
    hash_at = len(head)
    add_head("")  # the hash's line, once known
    if isinstance(entry, Transaction):
        _posting_lines(entry.postings, add_canon, add_head)
    digest = hashlib.sha256("\n".join(canon).encode("utf-8")).hexdigest()
    head[hash_at] = '  hash: "' + digest + '"'
    add_head("\n")
    full_meta = meta + (("prev", prev), ("hash", digest))
    if isinstance(entry, Transaction):
        full: Entry = Transaction(entry.date, entry.payee, entry.narration, full_meta, entry.postings, entry.flag,
                                  entry.tags, entry.links)
    else:
        full = Price(entry.date, entry.number, full_meta)
    return digest, full, "\n".join(head)


def with_meta(entry: Entry, extra: Iterable[tuple[str, str]]) -> Entry:
    """A copy of `entry` with metadata appended (used to add `prev` and `hash`)."""
    meta = entry.meta + tuple(extra)
    if isinstance(entry, Transaction):
        return Transaction(entry.date, entry.payee, entry.narration, meta, entry.postings, entry.flag,
                           entry.tags, entry.links)
    return Price(entry.date, entry.number, meta)


def _meta_from(raw: dict[str, Any] | None) -> Meta:
    if not raw:
        return ()
    out = []
    for key, value in raw.items():
        if key in ("filename", "lineno") or key.startswith("__"):
            continue
        if value.__class__ is str:  # the usual case (the service writes every value quoted)
            out.append((key, value))
            continue
        if isinstance(value, Decimal):
            value = fmt(value)
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = "TRUE" if value else "FALSE"
        out.append((key, str(value)))
    return tuple(out)


def from_beancount(directive: Any) -> Entry | None:
    """Our entry from a parsed Beancount directive (None for directives we do not chain)."""
    if isinstance(directive, data.Transaction):
        postings = []
        for p in directive.postings:
            units = p.units
            number = units.number if units is not None else None
            if not isinstance(number, Decimal):
                number = Decimal("NaN")  # an elided amount: never matches a hash
            postings.append(Posting(p.account, number, units.currency if units is not None else "",
                                    _meta_from(p.meta)))
        return Transaction(
            directive.date,
            directive.payee or "",
            directive.narration or "",
            _meta_from(directive.meta),
            tuple(postings),
            directive.flag or "",
            tuple(sorted(directive.tags or ())),
            tuple(sorted(directive.links or ())),
        )
    if isinstance(directive, data.Price):
        if directive.currency != "SP" or directive.amount.currency != "CNY" or directive.amount.number is None:
            return None
        return Price(directive.date, directive.amount.number, _meta_from(directive.meta))
    return None


def location(directive: Any) -> Located:
    meta = getattr(directive, "meta", None) or {}
    return Located(str(meta.get("filename", "?")), int(meta.get("lineno", 0) or 0))
