"""An auditor's re-implementation of the chain hash, written from the README's text alone.

The README's paragraph "The hash (canonical form `ledger-entry-v1`)" is the only source of
this file: it imports nothing of `ledger_service` and not even Beancount, reads the day
files as text, and recomputes every entry's `prev` and `hash`. The books it checks are made
by the command line (`ledger-service demo`), as an auditor would receive them.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.beancount$")
TXN_HEADER = re.compile(r'^(\d{4}-\d{2}-\d{2}) (\S) (.*)$')
PRICE_HEADER = re.compile(r"^(\d{4}-\d{2}-\d{2}) price SP (\S+) CNY$")
META_LINE = re.compile(r'^(  |    )([a-z][A-Za-z0-9_-]*): (".*")$')
POSTING_LINE = re.compile(r"^  ([A-Z][A-Za-z0-9:-]+)  (\S+) (\S+)$")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
ZEROS = "0" * 64


def unquote(literal: str) -> str:
    """A Beancount string literal's value: its \\" and \\\\ escapes undone."""
    match = STRING.fullmatch(literal)
    assert match, literal
    return re.sub(r"\\(.)", r"\1", match.group(1))


def as_json(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def split_header_strings(rest: str) -> tuple[list[str], list[str], list[str]]:
    """The quoted strings, #tags and ^links after a transaction's flag."""
    strings = [unquote(m.group(0)) for m in STRING.finditer(rest)]
    marks = STRING.sub("", rest).split()
    tags = [m[1:] for m in marks if m.startswith("#")]
    links = [m[1:] for m in marks if m.startswith("^")]
    assert all(m[0] in "#^" for m in marks), rest
    return strings, tags, links


def entries_of(text: str):
    """Each chained entry of a day file: (header, meta [(k, v)], postings [(acc, num, cur, [(k, v)])])."""
    block: list[str] = []
    for line in text.split("\n") + [""]:
        if line.strip() == "":
            if block:
                yield block
            block = []
        elif not line.startswith(";"):
            block.append(line)


def canonical(block: list[str]) -> tuple[str, str, str]:
    """(canonical text, prev written, hash written) of one entry's lines."""
    header, body = block[0], block[1:]
    meta: list[tuple[str, str]] = []
    postings: list[tuple[str, str, str, list[tuple[str, str]]]] = []
    for line in body:
        posting = POSTING_LINE.match(line)
        if posting:
            postings.append((posting.group(1), posting.group(2), posting.group(3), []))
            continue
        item = META_LINE.match(line)
        assert item, f"unexpected line: {line!r}"
        key, value = item.group(2), unquote(item.group(3))
        if item.group(1) == "  ":
            assert not postings, f"entry metadata after a posting: {line!r}"
            meta.append((key, value))
        else:
            postings[-1][3].append((key, value))
    written = dict(meta)
    lines = ["ledger-entry-v1", "prev:" + written["prev"]]
    price = PRICE_HEADER.match(header)
    if price:
        lines += ["type:price", "date:" + price.group(1), f"price:SP {price.group(2)} CNY"]
    else:
        txn = TXN_HEADER.match(header)
        assert txn, header
        strings, tags, links = split_header_strings(txn.group(3))
        payee, narration = (strings if len(strings) == 2 else ["", strings[0]])
        lines += ["type:transaction", "date:" + txn.group(1), "flag:" + txn.group(2),
                  "payee:" + as_json(payee), "narration:" + as_json(narration),
                  "tags:" + ",".join(sorted(tags)), "links:" + ",".join(sorted(links))]
    lines += [f"meta:{k}={as_json(v)}" for k, v in sorted(meta) if k not in ("prev", "hash")]
    for account, number, currency, pmeta in postings:
        lines.append(f"posting:{account} {number} {currency}")
        lines += [f"pmeta:{k}={as_json(v)}" for k, v in sorted(pmeta)]
    return "\n".join(lines), written["prev"], written["hash"]


def check_chain(books: Path) -> int:
    """Recompute every hash of the books' journal; returns the number of entries checked."""
    files = sorted((p for p in (books / "journal").glob("*/*.beancount") if DAY_FILE.match(p.name)),
                   key=lambda p: p.name)
    assert files, "no day files"
    prev, count = ZEROS, 0
    for path in files:
        for block in entries_of(path.read_text(encoding="utf-8")):
            text, written_prev, written_hash = canonical(block)
            assert written_prev == prev, f"{path.name}: {block[0]}: prev {written_prev} != {prev}"
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            assert digest == written_hash, f"{path.name}: {block[0]}: hash {written_hash} != {digest}\n{text}"
            prev, count = digest, count + 1
    return count


@pytest.fixture(scope="module")
def demo_books(tmp_path_factory) -> Path:
    books = tmp_path_factory.mktemp("reference") / "books"
    subprocess.run([sys.executable, "-m", "ledger_service.cli", "demo", "--books", str(books),
                    "--members", "40", "--merchants", "5", "--days", "4"],
                   check=True, capture_output=True)
    return books


def test_every_hash_of_a_demo_journal_recomputes_from_the_readme(demo_books: Path) -> None:
    count = check_chain(demo_books)
    seqs = [int(m) for p in (demo_books / "journal").glob("*/*.beancount")
            for m in re.findall(r'^  seq: "(\d+)"$', p.read_text(encoding="utf-8"), re.M)]
    assert count == len(seqs) == max(seqs) > 100


def test_tags_and_links_are_hashed(demo_books: Path, tmp_path: Path) -> None:
    """A tag added to an entry changes its canonical text: the written hash no longer matches."""
    import shutil

    copy = tmp_path / "books"
    shutil.copytree(demo_books, copy)
    day = sorted((copy / "journal").glob("*/*.beancount"))[1]
    text = day.read_text(encoding="utf-8")
    header = next(line for line in text.split("\n") if TXN_HEADER.match(line) and " price " not in line)
    day.write_text(text.replace(header, header + " #promo", 1), encoding="utf-8")
    with pytest.raises(AssertionError, match="hash"):
        check_chain(copy)


def test_strings_are_json_with_escapes_undone() -> None:
    block = ['2026-01-02 * "a \\"q\\" b" "n\\\\m" #t2 #t1 ^l1',
             '  kind: "x"', '  prev: "' + ZEROS + '"', '  hash: "h"',
             "  Assets:Pool:Backing  0.00000001 CNY", '    holder: "张三"']
    text, _prev, _hash = canonical(block)
    assert text.split("\n") == [
        "ledger-entry-v1", "prev:" + ZEROS, "type:transaction", "date:2026-01-02", "flag:*",
        'payee:"a \\"q\\" b"', 'narration:"n\\\\m"', "tags:t1,t2", "links:l1", 'meta:kind="x"',
        "posting:Assets:Pool:Backing 0.00000001 CNY", 'pmeta:holder="张三"']
