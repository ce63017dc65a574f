"""Tampering with the journal is detected and located by every audit tool (SPEC §6).

One module-scoped set of books is built through the engine on a fixed clock (three
closed business days of a simulated platform, plus an open day with a few events),
then copied per test and damaged in one way. Each damage must be reported by:

- plain `bean-check main.beancount` (the plugin declared in the journal): non-zero exit,
  an error naming the damaged file and a line inside the damaged entry;
- `verify(books, use_db=False)` (the regulator's check, journal alone): not ok, with a
  Fault whose filename is the damaged file and whose lineno lies in the damaged entry;
- `ledger-service verify --books DIR` (subprocess): exit 1 and the file:line printed.

An untampered copy passes all three.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Callable

import pytest

from ledger_service import config
from ledger_service.audit.verify import verify
from ledger_service.demo import ORIGINAL, Demo
from ledger_service.engine import Engine
from ledger_service.entries import Posting, Transaction, entry_hash, meta_tuple, render, with_meta
from ledger_service.journal import day_file
from ledger_service.rules.events import BuyPack, Register

from conftest import Clock

START = date(2026, 3, 27)
TODAY = date(2026, 3, 31)
CLOSED = [START + timedelta(days=i) for i in range(3)]  # 27, 28, 29 closed
OPEN_DAY = START + timedelta(days=3)  # 30: open, holds events
D1, D2, D3, LAST = (day_file(d) for d in (*CLOSED, OPEN_DAY))


# -- the books ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_books(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("source") / "books"
    clock = Clock(TODAY)
    engine = Engine.init(root, config.load("seed-a"), start=START, clock=clock)
    demo = Demo(engine, seed=3, plan=ORIGINAL)  # the draws these books were made with
    for index, day in enumerate(CLOSED):
        demo.register(day, 10)
        demo.grade(day, 2)
        demo.appoint_partners(day)
        demo.open_stores(day, 2)
        demo.trade(day, 15)
        if index == 1:
            demo.reverse_one(day)
        engine.close_days(day)
    # The open day: a few events, the last one a transaction with several postings.
    demo.register(OPEN_DAY, 3)
    demo.trade(OPEN_DAY, 10)
    engine.submit(Register("zz-last"), OPEN_DAY)
    engine.submit(BuyPack("zz-last", "activation"), OPEN_DAY)
    engine.dispose()
    assert demo.stats.booked["order"] > 10 and demo.stats.booked["reverse"] == 1, demo.stats
    return root


@pytest.fixture
def books(source_books: Path, tmp_path: Path) -> Path:
    root = tmp_path / "books"
    shutil.copytree(source_books, root)
    return root


# -- reading the journal as blocks ------------------------------------------------


@dataclass
class Block:
    """One entry of a journal file: its lines (1-based, inclusive) and text."""

    start: int
    end: int
    lines: list[str]  # with their line endings

    @property
    def header(self) -> str:
        return self.lines[0]

    @property
    def kind(self) -> str:
        if " price SP " in self.header:
            return "price"
        for line in self.lines:
            m = re.match(r'^  kind: "([a-z_]+)"', line)
            if m:
                return m.group(1)
        return ""

    def meta(self, key: str) -> str | None:
        for line in self.lines:
            m = re.match(rf'^  {key}: "([^"]*)"', line)
            if m:
                return m.group(1)
        return None

    def find(self, pattern: str, after: str | None = None) -> int:
        """Index (within the block) of the first line matching `pattern` (after one matching `after`)."""
        seen = after is None
        for i, line in enumerate(self.lines):
            if not seen:
                seen = re.search(after, line) is not None
                continue
            if re.search(pattern, line):
                return i
        raise LookupError(pattern)


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    out: list[Block] = []
    current: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not current:
                start = number
            current.append(line)
        elif current:
            out.append(Block(start, start + len(current) - 1, current))
            current = []
    if current:
        out.append(Block(start, start + len(current) - 1, current))
    return out


def first(path: Path, kind: str, where: Callable[[Block], bool] = lambda b: True, skip: int = 0) -> tuple[int, Block]:
    found = [(i, b) for i, b in enumerate(blocks(path)) if b.kind == kind and where(b)]
    assert len(found) > skip, f"the fixture books have no {kind} entry as needed in {path.name}"
    return found[skip]


def write_blocks(path: Path, items: list[Block]) -> None:
    path.write_text("".join("".join(b.lines) + "\n" for b in items), encoding="utf-8")


def replace_line(path: Path, lineno: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[lineno - 1] != new, "the tampering must change the file"
    lines[lineno - 1] = new
    path.write_text("".join(lines), encoding="utf-8")


def bump_digit(line: str) -> str:
    """The line with the last digit of its (last) number changed."""
    m = list(re.finditer(r"-?\d+\.\d+", line))[-1]
    digits = m.group(0)
    changed = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    return line[:m.start()] + changed + line[m.end():]


# -- the three checks --------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    file: Path
    lo: int  # the damaged lines (inclusive)
    hi: int


LOCATION = re.compile(r"(/[^\s:]+\.beancount):(\d+):")


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "COLUMNS", "LINES"):
        env.pop(name, None)
    return env


def start_bean_check(root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "beancount.scripts.check", "-C", str(root / "main.beancount")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env())


def start_cli_verify(root: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ledger_service.cli", "verify", "--books", str(root), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env())


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _same(a: str | Path, b: Path) -> bool:
    return Path(a).resolve() == b.resolve()


def located(pairs, damage: Damage) -> bool:
    return any(_same(f, damage.file) and damage.lo <= int(n) <= damage.hi for f, n in pairs)


def check_all_detect(root: Path, damage: Damage, cli: str | None = None) -> None:
    """bean-check and verify(use_db=False) locate the damage; with `cli` ("db" or "no-db"),
    `ledger-service verify` also exits 1 printing the file:line."""
    bean = start_bean_check(root)
    command = None
    if cli is not None:
        command = start_cli_verify(root) if cli == "db" else start_cli_verify(root, "--no-db")
    report = verify(root, use_db=False)
    rc, out, err = finish(bean)

    where = f"{damage.file.name} lines {damage.lo}-{damage.hi}"
    faults = "\n".join(str(f) for f in report.faults[:20])
    assert not report.ok, f"verify(use_db=False) missed the damage at {where}"
    assert any(_same(f.filename, damage.file) and damage.lo <= f.lineno <= damage.hi for f in report.faults), (
        f"verify did not locate the damage at {where}:\n{faults}")

    assert rc != 0, f"bean-check passed tampered books (damage at {where})\n{out}{err}"
    assert located(LOCATION.findall(out + err), damage), f"bean-check did not locate {where}:\n{(out + err)[:3000]}"

    if command is None:
        return
    cli_rc, cli_out, cli_err = finish(command)
    assert cli_rc == 1, f"`ledger-service verify` exit {cli_rc} on tampered books\n{cli_out[-2000:]}{cli_err[-2000:]}"
    assert any(f"{damage.file.resolve()}:{n}:" in line for line in cli_out.splitlines() if line.startswith("FAULT ")
               for n in range(damage.lo, damage.hi + 1)), f"`ledger-service verify` did not print {where}:\n{cli_out[:3000]}"


# -- the control case ---------------------------------------------------------------


def test_untampered_books_pass_every_check(books: Path):
    bean = start_bean_check(books)
    cli = start_cli_verify(books)
    cli_nodb = start_cli_verify(books, "--no-db")
    report = verify(books, use_db=False)
    assert report.ok, report.faults
    assert report.entries > 150 and report.files == 4
    with_db = verify(books)
    assert with_db.ok and with_db.db_checked, with_db.faults
    rc, out, err = finish(bean)
    assert rc == 0, out + err
    rc, out, err = finish(cli)
    assert rc == 0, out + err
    assert "verified: the books are consistent" in out and "agrees with the journal" in out
    rc, out, err = finish(cli_nodb)
    assert rc == 0, out + err


def test_fixture_books_are_varied(source_books: Path):
    """The tamper cases below rely on these kinds being present where they look."""
    kinds = {b.kind for rel in (D1, D2, D3, LAST) for b in blocks(source_books / rel)}
    for kind in ("genesis", "price", "register", "buy_pack", "set_role", "open_store", "deposit", "order",
                 "release", "transfer", "redeem", "reverse", "payout"):
        assert kind in kinds, kind
    assert blocks(source_books / LAST)[-1].kind == "buy_pack"


# -- the tamperings ------------------------------------------------------------------
# Each takes the books' root, damages it, and returns where the damage is.


def amount_of_order_posting(root: Path) -> Damage:
    path = root / D2
    _, b = first(path, "order", lambda b: b.meta("channel") == "offline")
    i = b.find(r"^  Liabilities:Holders:SP ", after=None)
    replace_line(path, b.start + i, bump_digit(b.lines[i]))
    return Damage(path, b.start, b.end)


def amount_of_release_posting(root: Path) -> Damage:
    path = root / D2
    _, b = first(path, "release")
    i = b.find(r"^  Equity:SP:Released ")
    replace_line(path, b.start + i, bump_digit(b.lines[i]))
    return Damage(path, b.start, b.end)


def number_of_price_directive(root: Path) -> Damage:
    path = root / D3
    _, b = first(path, "price")
    replace_line(path, b.start, bump_digit(b.header))
    return Damage(path, b.start, b.end)


def amount_of_deposit(root: Path) -> Damage:
    path = root / D2
    _, b = first(path, "deposit", lambda b: b.meta("merchant") is not None)
    i = b.find(r"^  Assets:Pool:Backing ")
    replace_line(path, b.start + i, bump_digit(b.lines[i]))
    return Damage(path, b.start, b.end)


def balanced_edit_of_two_postings(root: Path) -> Damage:
    """Both sides changed alike: still balanced, the hash alone must catch it."""
    path = root / D3
    _, b = first(path, "register")
    i = b.find(r"^  Liabilities:Holders:SV:Locked  -300\.0000 SV")
    j = b.find(r"^  Equity:SV:Granted  300\.0000 SV")
    replace_line(path, b.start + i, b.lines[i].replace("-300.0000", "-3000.0000"))
    replace_line(path, b.start + j, b.lines[j].replace("300.0000", "3000.0000"))
    return Damage(path, b.start, b.end)


def delete_entry_in_the_middle(root: Path) -> Damage:
    path = root / D2
    items = blocks(path)
    index, b = first(path, "order", skip=2)
    nxt = items[index + 1]
    write_blocks(path, items[:index] + items[index + 1:])
    # The next entry now stands where the deleted one began.
    return Damage(path, b.start, b.start + len(nxt.lines) - 1)


def delete_first_entry_of_a_day(root: Path) -> Damage:
    path = root / D3
    items = blocks(path)
    assert items[0].kind == "price"
    write_blocks(path, items[1:])
    return Damage(path, 1, len(items[1].lines))


def delete_entry_of_the_open_day(root: Path) -> Damage:
    path = root / LAST
    items = blocks(path)
    index = len(items) // 2
    b = items[index]
    write_blocks(path, items[:index] + items[index + 1:])
    return Damage(path, b.start, b.start + len(items[index + 1].lines) - 1)


def swap_adjacent_entries(root: Path) -> Damage:
    path = root / D2
    items = blocks(path)
    index = next(i for i, b in enumerate(items) if b.kind == "order" and items[i + 1].kind != "order")
    a, b = items[index], items[index + 1]
    write_blocks(path, items[:index] + [b, a] + items[index + 2:])
    return Damage(path, a.start, b.end)


def swap_adjacent_entries_of_one_kind(root: Path) -> Damage:
    path = root / D3
    items = blocks(path)
    index = next(i for i, b in enumerate(items)
                 if b.kind == "register" and items[i + 1].kind == "register" and len(b.lines) == len(items[i + 1].lines))
    a, b = items[index], items[index + 1]
    write_blocks(path, items[:index] + [b, a] + items[index + 2:])
    return Damage(path, a.start, b.end)


FORGED_NAIVE = """2026-03-28 * "transfer" "10 SP from s00000 to m0000001"
  Liabilities:Holders:SP  10.0000 SP
    holder: "s00000"
    leg: "from"
  Liabilities:Holders:SP  -10.0000 SP
    holder: "m0000001"
    leg: "to"
"""


def insert_forged_entry(root: Path) -> Damage:
    """A balanced transaction with no chain metadata, between two real entries."""
    path = root / D2
    items = blocks(path)
    index = 20
    at = items[index].start
    forged = Block(at, at + FORGED_NAIVE.count("\n") - 1, FORGED_NAIVE.splitlines(keepends=True))
    write_blocks(path, items[:index] + [forged] + items[index:])
    return Damage(path, forged.start, forged.end)


def insert_forged_chained_entry(root: Path) -> Damage:
    """A forger who knows the hash: seq, prev and hash correct for its place.

    The entry itself is a valid transfer; the break shows at the next entry (its
    prev no longer matches, its seq repeats). Damaged lines: the forged entry and the next.
    """
    path = root / D2
    items = blocks(path)
    index = 20
    before = items[index - 1]
    seq = int(before.meta("seq")) + 1
    _, deposit = first(path, "deposit", lambda b: b.meta("merchant") is not None)
    rich = deposit.meta("merchant")
    _, register = first(root / D1, "register")
    poor = register.meta("member")
    inputs = [("event", f"E{seq:09d}"), ("kind", "transfer"), ("seq", str(seq)), ("from", rich), ("to", poor),
              ("sp", "1.0000"), ("postings", "2")]
    tx = Transaction(CLOSED[1], "transfer", f"1.0000 SP from {rich} to {poor}", meta_tuple(inputs), (
        Posting("Liabilities:Holders:SP", Decimal("1.0000"), "SP", meta_tuple([("holder", rich), ("leg", "from")])),
        Posting("Liabilities:Holders:SP", Decimal("-1.0000"), "SP", meta_tuple([("holder", poor), ("leg", "to")])),
    ))
    prev = before.meta("hash")
    text = render(with_meta(tx, [("prev", prev), ("hash", entry_hash(tx, prev))]))
    lines = [line + "\n" for line in text.rstrip("\n").split("\n")]
    at = items[index].start
    forged = Block(at, at + len(lines) - 1, lines)
    write_blocks(path, items[:index] + [forged] + items[index:])
    return Damage(path, forged.start, forged.end + 1 + len(items[index].lines))


def cut_last_file_mid_entry(root: Path) -> Damage:
    path = root / LAST
    b = blocks(path)[-1]
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    offset = sum(len(x) for x in lines[:b.start - 1])
    length = sum(len(x) for x in lines[b.start - 1:b.end])
    # The middle of a posting line (not on a line boundary).
    cut = offset + length // 2
    assert data[cut - 1:cut] != b"\n"
    path.write_bytes(data[:cut])
    return Damage(path, b.start, b.end)


def cut_last_file_after_header(root: Path) -> Damage:
    """Only the header line of the last entry survives: zero postings, no metadata."""
    path = root / LAST
    b = blocks(path)[-1]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:b.start]))
    return Damage(path, b.start, b.start)


def cut_last_file_after_metadata(root: Path) -> Damage:
    """Header and metadata (with a valid-looking hash) survive, every posting is gone."""
    path = root / LAST
    b = blocks(path)[-1]
    first_posting = b.find(r"^  [A-Z]")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:b.start - 1 + first_posting]))
    return Damage(path, b.start, b.start + first_posting - 1)


def edit_holder_of_a_posting(root: Path) -> Damage:
    path = root / D2
    _, b = first(path, "order", lambda b: any('leg: "buyer"' in line for line in b.lines))
    i = b.find(r'^    holder: "', after=r"^  Liabilities:Holders:SV:Active ")
    holder = re.search(r'"([^"]+)"', b.lines[i]).group(1)
    other = "m0000000" if holder != "m0000000" else "m0000001"
    replace_line(path, b.start + i, b.lines[i].replace(f'"{holder}"', f'"{other}"'))
    return Damage(path, b.start, b.end)


def edit_amount_metadata_of_an_order(root: Path) -> Damage:
    path = root / D3
    _, b = first(path, "order")
    i = b.find(r'^  amount_cny: "')
    replace_line(path, b.start + i, bump_digit(b.lines[i]))
    return Damage(path, b.start, b.end)


def edit_payee_of_a_release(root: Path) -> Damage:
    path = root / D1
    _, b = first(path, "release")
    replace_line(path, b.start, b.header.replace("daily release", "daily releasx"))
    return Damage(path, b.start, b.end)


CASES = {f.__name__: f for f in (
    amount_of_order_posting, amount_of_release_posting, number_of_price_directive, amount_of_deposit,
    balanced_edit_of_two_postings,
    delete_entry_in_the_middle, delete_first_entry_of_a_day, delete_entry_of_the_open_day,
    swap_adjacent_entries, swap_adjacent_entries_of_one_kind,
    insert_forged_entry, insert_forged_chained_entry,
    cut_last_file_mid_entry, cut_last_file_after_header, cut_last_file_after_metadata,
    edit_holder_of_a_posting, edit_amount_metadata_of_an_order, edit_payee_of_a_release,
)}


# `ledger-service verify` (a subprocess with the database: the slowest check) runs for one
# case of each family; bean-check and verify() run for every case.
CLI_CASES = {"amount_of_order_posting", "delete_entry_in_the_middle", "swap_adjacent_entries",
               "insert_forged_chained_entry", "cut_last_file_after_metadata", "edit_holder_of_a_posting"}


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_detected_and_located(books: Path, case: str):
    before = {p: p.read_bytes() for p in books.glob("journal/*/*.beancount")}
    damage = CASES[case](books)
    after = {p: p.read_bytes() for p in books.glob("journal/*/*.beancount")}
    assert before != after, "the tampering changed nothing"
    check_all_detect(books, damage, cli="db" if case in CLI_CASES else None)


# -- damage that only the database can reveal --------------------------------------


def test_cut_at_an_entry_boundary_is_caught_with_the_database(books: Path):
    """Dropping whole trailing entries leaves a consistent journal; the database knows more."""
    path = books / LAST
    items = blocks(path)
    write_blocks(path, items[:-2])
    report = verify(books)
    assert not report.ok
    assert any(f.rule == "db.events.seq" for f in report.faults), [str(f) for f in report.faults]
    rc, out, _ = finish(start_cli_verify(books))
    assert rc == 1 and "journal lacks" in out.replace("\n", " ")


def test_rechained_forgery_is_caught_with_the_database(books: Path):
    """A forger who re-chains every later entry fools the journal alone, not the database."""
    from beancount.parser import parser

    from ledger_service.entries import from_beancount

    path = books / LAST
    entries, errors, _ = parser.parse_file(str(path))
    assert not errors
    entries.sort(key=lambda d: d.meta["lineno"])
    chained = [from_beancount(d) for d in entries]
    # Change the amount of the first transfer-like entry, then re-chain everything after it.
    out: list[str] = []
    prev = None
    forged = False
    for entry in chained:
        if prev is None:
            prev = entry.get("prev")
        bare = [(k, v) for k, v in entry.meta if k not in ("prev", "hash")]
        cls = type(entry)
        if not forged and isinstance(entry, Transaction) and entry.kind == "register" and entry.get("region"):
            # Move the member to another region: the rules accept it, the chain is redone.
            bare = [(k, "440305" if k == "region" else v) for k, v in bare]  # valid GB/T 2260, not a demo region
            entry = Transaction(entry.date, entry.payee, entry.narration, tuple(bare), entry.postings)
            forged = True
        elif isinstance(entry, Transaction):
            entry = Transaction(entry.date, entry.payee, entry.narration, tuple(bare), entry.postings)
        else:
            entry = cls(entry.date, entry.number, tuple(bare))
        digest = entry_hash(entry, prev)
        out.append(render(with_meta(entry, [("prev", prev), ("hash", digest)])))
        prev = digest
    assert forged
    path.write_text("".join(out), encoding="utf-8")
    assert verify(books, use_db=False).ok, "the forgery should be self-consistent (test set-up)"
    report = verify(books)
    assert not report.ok
    assert any(f.rule in ("db.events.hash", "db.ledger.head") for f in report.faults), [str(f) for f in report.faults]


# -- damage outside the day files ----------------------------------------------------


FORGED_IN_MAIN = """
2026-03-29 * "transfer" "forged"
  Liabilities:Holders:SP  -100.0000 SP
    holder: "m0000001"
  Equity:SP:Released  100.0000 SP
"""


def test_forged_entry_in_main_beancount_is_detected(books: Path):
    """An entry added to main.beancount changes every balance bean-query and Fava show.

    bean-check reports it (the plugin sees every loaded entry); verify must too, since it is
    the regulator's check of what the books say.
    """
    main = books / "main.beancount"
    lineno = main.read_text(encoding="utf-8").count("\n") + 2
    main.write_text(main.read_text(encoding="utf-8") + FORGED_IN_MAIN, encoding="utf-8")
    damage = Damage(main, lineno, lineno + 3)
    check_all_detect(books, damage, cli="no-db")


def test_forged_entry_included_from_a_journal_file_is_detected(books: Path):
    """An `include` slipped into a day file loads a forged entry into bean-check and Fava."""
    forged = books / "forged.beancount"
    forged.write_text(FORGED_IN_MAIN.lstrip("\n"), encoding="utf-8")
    path = books / D3
    path.write_text(path.read_text(encoding="utf-8") + 'include "../../forged.beancount"\n', encoding="utf-8")
    report = verify(books, use_db=False)
    rc, out, err = finish(start_bean_check(books))
    assert rc != 0, "bean-check missed the included forged entry"
    assert not report.ok, "verify(use_db=False) passed a day file that includes a forged entry"


def test_foreign_price_directive_in_a_journal_file_is_detected(books: Path):
    """A price of SP in another currency is no entry the service writes: Fava would show it
    as a value of the point. verify's own rule: a journal file holds nothing foreign."""
    path = books / D3
    lineno = path.read_text(encoding="utf-8").count("\n") + 1
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("2026-03-29 price SP 100.00 USD\n")
    check_all_detect(books, Damage(path, lineno, lineno))


def test_transaction_flag_edit_is_detected(books: Path):
    """`*` -> `!` on a booked entry: an edit of a field of the entry (entries.py: 'an edit
    to any field of the file changes the hash')."""
    path = books / D2
    _, b = first(path, "register")
    replace_line(path, b.start, b.header.replace(" * ", " ! ", 1))
    check_all_detect(books, Damage(path, b.start, b.end), cli="no-db")


def test_tags_and_links_added_to_an_entry_are_detected(books: Path):
    """Tags and links are fields of a transaction too (Fava filters by them)."""
    path = books / D2
    _, b = first(path, "order")
    replace_line(path, b.start, b.header.rstrip("\n") + " #forged ^other-books\n")
    check_all_detect(books, Damage(path, b.start, b.end))


# -- the command line's report -------------------------------------------------------


def test_cli_prints_each_fault_whole_with_its_rule(books: Path):
    """Each FAULT line is `file:line: [rule] event: message` on one line, as Fault.__str__,
    whatever the path length, so that it can be grepped and clicked in a CI log."""
    deep = books.parent / "a-books-folder-with-a-name-long-enough-to-pass-eighty-columns-in-all"
    books.rename(deep)
    books = deep
    damage = amount_of_deposit(books)
    assert len(f"FAULT {damage.file.resolve()}:{damage.lo}:") > 80
    report = verify(books, use_db=False)
    fault = next(f for f in report.faults if f.rule == "chain.hash")
    rc, out, _ = finish(start_cli_verify(books, "--no-db"))
    assert rc == 1
    lines = out.splitlines()
    assert any(line.startswith("FAULT ") and f"{fault.filename}:{fault.lineno}:" in line for line in lines), (
        "no FAULT line carries the whole file:line:\n" + out[:1500])
    assert "[chain.hash]" in out, "the rule of the fault is missing from the CLI output:\n" + out[:1500]
    assert f"FAULT {fault}" in lines, "the FAULT line is not the fault as verify reports it"
