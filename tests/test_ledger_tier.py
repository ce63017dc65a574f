"""The ledger tier (issue 4): what Fava opens, derived from the journal, checked against it.

On demo books booked through the engine across a month boundary (tests/ledger_books.py):

- the ledger on disk equals a fresh rebuild from the journal, `update` is idempotent, and
  `bean-check` passes on both tiers (the journal with its plugin, the ledger and each period
  file on their own);
- the ledger is small and faithful: one summary per kind and day, whose event counts and
  postings add up to the journal's, each citing its day file and that file's closing hash;
- only closed days are summarised; closing a day extends the ledger to a fresh rebuild;
- a tampered journal day makes `check()` and `verify` name the ledger entries that no
  longer match (file and line of the ledger entry, the journal day it cites);
- a period file loads alone and its balance sheet at the month's end equals the full ledger's;
- every bean-query recipe of docs/auditor-recipes.md runs and gives the engine's figures.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data

from ledger_service import accounts as A
from ledger_service import views
from ledger_service.audit.replay import Replay
from ledger_service.audit.verify import verify
from ledger_service.journal import Books, day_file, journal_directives, last_entry
from ledger_service.rules.events import Order, Register
from ledger_service.views import ledger_tier

from ledger_books import CLOSED, OPEN_DAY, copy_books, demo_books, engine_on

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "docs" / "auditor-recipes.md"


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return demo_books(tmp_path_factory)


@pytest.fixture
def copy(books: Path, tmp_path: Path) -> Path:
    return copy_books(books, tmp_path / "books")


def ledger_texts(root: Path) -> dict[str, str]:
    return {rel: (root / rel).read_text(encoding="utf-8") for rel in ledger_tier.ledger_files(root)}


def load(path: Path):
    entries, errors, options = loader.load_file(str(path))
    assert not errors, [str(getattr(e, "message", e)) for e in errors[:5]]
    return entries, options


def balances(entries, through: date | None = None) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        if isinstance(entry, data.Transaction) and (through is None or entry.date <= through):
            for p in entry.postings:
                out[p.account] += p.units.number
    return {k: v for k, v in out.items() if v != 0}


# -- the ledger is the journal, summarised ---------------------------------------------------


def test_ledger_equals_a_fresh_rebuild(books: Path, copy: Path):
    on_disk = ledger_texts(books)
    assert set(on_disk) == {
        "ledger/main.beancount", "ledger/months/2026-02.beancount", "ledger/months/2026-03.beancount",
        "ledger/openings/2026-03.beancount", "ledger/period-2026-02.beancount", "ledger/period-2026-03.beancount",
    }  # no import_config.py: Fava has no import page (issue 10)
    assert ledger_tier.rebuild_files(books) == on_disk
    assert ledger_tier.compare(books) == []
    assert views.update(books) == []  # idempotent: nothing to write
    # deterministic: summarising every day again from an empty ledger gives the same bytes
    import shutil

    shutil.rmtree(copy / "ledger")
    written = views.update(copy)
    # the holder index and the event log, rebuilt too (the checkpoint files are unchanged: not rewritten)
    assert sorted(written) == sorted([*on_disk, "ledger/holders.sqlite", "ledger/event_log.sqlite",
                                     "ledger/liabilities.sqlite"])
    assert ledger_texts(copy) == on_disk
    # a rebuild rewrites no summary file; the holder index is recreated (its content: test_holder_index)
    assert views.update(copy, rebuild=True) == ["ledger/holders.sqlite", "ledger/event_log.sqlite",
                                               "ledger/liabilities.sqlite"]
    report = verify(books, use_db=False)
    assert report.ok, [str(f) for f in report.faults]


def test_bean_check_passes_on_both_tiers(books: Path):
    files = [books / "main.beancount", books / ledger_tier.LEDGER_MAIN,
             books / ledger_tier.period_file("2026-02"), books / ledger_tier.period_file("2026-03")]
    procs = [subprocess.Popen([sys.executable, "-m", "beancount.scripts.check", "-C", str(f)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for f in files]
    for f, proc in zip(files, procs):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, (f, out)
    ledger_main = (books / ledger_tier.LEDGER_MAIN).read_text(encoding="utf-8")
    assert "plugin" not in ledger_main and 'custom "fava-extension" "ledger_service.fava_ext"' in ledger_main


def test_summaries_add_up_to_the_journal(books: Path):
    journal_entries, _ = load(books / "main.beancount")
    ledger_entries, _ = load(books / ledger_tier.LEDGER_MAIN)
    # the same balances, account for account, at every day's close
    for day in CLOSED:
        assert balances(ledger_entries, day) == balances(journal_entries, day), day
    # per day and kind: as many events as the journal has, each citing its file and closing hash
    counted: Counter = Counter()
    for entry in journal_entries:
        if isinstance(entry, data.Transaction) and entry.date <= CLOSED[-1]:
            counted[(entry.date, entry.meta["kind"])] += 1
    summaries = [e for e in ledger_entries if isinstance(e, data.Transaction)]
    assert {(e.date, e.meta["kind"]): int(e.meta["events"]) for e in summaries} == dict(counted)
    assert len(summaries) == len(counted)  # one summary per kind and day
    for e in summaries:
        journal = books / e.meta["journal"]
        assert e.meta["journal"] == day_file(e.date)
        last = last_entry(journal)
        assert last["kind"] == "release" and last["hash"] == e.meta["closing_hash"]
        assert not any(p.meta and "holder" in p.meta for p in e.postings)  # no per-holder postings
    # the prices: every business day's, the open day's included
    journal_prices = [(p.date, p.amount.number) for p in journal_entries if isinstance(p, data.Price)]
    ledger_prices = [(p.date, p.amount.number) for p in ledger_entries if isinstance(p, data.Price)]
    assert ledger_prices == journal_prices and ledger_prices[-1][0] == OPEN_DAY
    # small: far fewer transactions than the journal
    assert len(summaries) * 3 < sum(counted.values())


def test_summarize_day_is_pure_and_per_kind(books: Path):
    from beancount.parser import parser

    path = books / day_file(CLOSED[2])
    directives, errors, _ = parser.parse_file(str(path))
    assert not errors
    rel = day_file(CLOSED[2])
    first = ledger_tier.summarize_day(directives, rel)
    assert ledger_tier.summarize_day(directives, rel) == first  # pure: same input, same entries
    kinds = [e.kind for e in first[1:]]
    assert len(kinds) == len(set(kinds)) and kinds[-1] == "release" and "order" in kinds
    order = next(e for e in first[1:] if e.kind == "order")
    burned = sum((p.units.number for d in directives if isinstance(d, data.Transaction) and d.meta["kind"] == "order"
                  for p in d.postings if p.account == A.SP_BURNED), Decimal(0))
    assert next(p.number for p in order.postings if p.account == A.SP_BURNED) == burned
    assert all(p.number != 0 for e in first[1:] for p in e.postings)
    assert dict(order.meta)["journal"] == rel and dict(order.meta)["closing_hash"] == last_entry(path)["hash"]


# -- updated as days close ----------------------------------------------------------------------


def test_only_closed_days_and_closing_extends_the_ledger(copy: Path):
    before = ledger_texts(copy)
    engine = engine_on(copy)
    try:
        engine.submit(Register("zz-new"), OPEN_DAY)
        engine.submit(Order("zz-o1", "zz-new", "s00000", Decimal("100.00")), OPEN_DAY)
        assert views.update(copy) == []  # the open day contributes its price only
        assert ledger_texts(copy) == before
        assert ledger_tier.compare(copy) == []
        engine.close_days(OPEN_DAY)  # the engine extends the ledger as days close
        views.update(copy)  # (a no-op once the engine has done it)
    finally:
        engine.dispose()
    after = ledger_texts(copy)
    month = after["ledger/months/2026-03.beancount"]
    assert '2026-03-04 * "register"' in month and '2026-03-04 * "release"' in month
    assert "; day 2026-03-05 journal/2026-03/2026-03-05.beancount open" in month  # the new open day's price
    assert after == ledger_tier.rebuild_files(copy)
    report = verify(copy, use_db=False)
    assert report.ok, [str(f) for f in report.faults]


# -- tampering ------------------------------------------------------------------------------------


def _tamper_burn(root: Path, day: date) -> tuple[str, str]:
    """Change one order's burn (and its deduction, so it still balances) in a closed day file."""
    path = root / day_file(day)
    text = path.read_text(encoding="utf-8")
    m = re.search(r"  Liabilities:Holders:SP  (\d+\.\d{4}) SP\n    holder: \"(\w+)\"\n    leg: \"deduct\"", text)
    burn = re.search(r"  Equity:SP:Burned  -(\d+\.\d{4}) SP", text[m.end():])
    deduct, burned = Decimal(m.group(1)), Decimal(burn.group(1))
    start = m.end() + burn.start()
    text = (text[:m.start()] + m.group(0).replace(f"{deduct} SP", f"{deduct + 1} SP") + text[m.end():start]
            + f"  Equity:SP:Burned  -{burned + 1} SP" + text[m.end() + burn.end():])
    path.write_text(text, encoding="utf-8")
    return day_file(day), str(burned + 1)


def _line_of(path: Path, prefix: str) -> int:
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(prefix):
            return lineno
    raise AssertionError(prefix)


def test_tampered_journal_day_names_the_ledger_entries(copy: Path):
    day = CLOSED[2]  # 2026-02-27
    journal, _ = _tamper_burn(copy, day)
    month = copy / ledger_tier.month_file("2026-02")
    order_line = _line_of(month, f'{day.isoformat()} * "order"')
    faults = ledger_tier.compare(copy)
    by_place = {(Path(f.filename).resolve(), f.lineno): f for f in faults}
    fault = by_place.get((month.resolve(), order_line))
    assert fault is not None, [str(f) for f in faults]
    assert fault.rule == "ledger.entry" and fault.event == journal
    assert "Equity:SP:Burned" in fault.message
    # the next month's opening carries the burned total too: it is named, citing the month's last day
    opening = copy / ledger_tier.opening_file("2026-03")
    assert any(Path(f.filename).resolve() == opening.resolve() and f.rule == "ledger.entry"
               and f.event == day_file(date(2026, 2, 28)) for f in faults), [str(f) for f in faults]
    # every fault is a ledger entry, located
    assert all(f.rule.startswith("ledger.") and f.lineno > 0 for f in faults)
    # verify (the regulator's check, journal alone) names them too, beside the journal's own faults
    report = verify(copy, use_db=False)
    assert not report.ok
    named = {(Path(f.filename).resolve(), f.lineno, f.rule) for f in report.faults}
    assert (month.resolve(), order_line, "ledger.entry") in named, [str(f) for f in report.faults]
    assert any(Path(f.filename).name == Path(journal).name for f in report.faults)  # the chain breaks there


def test_tampered_ledger_entry_is_named(copy: Path):
    month = copy / ledger_tier.month_file("2026-03")
    text = month.read_text(encoding="utf-8")
    text = text.replace("Equity:SP:Released  500.0000 SP", "Equity:SP:Released  499.0000 SP", 1)
    month.write_text(text, encoding="utf-8")
    faults = ledger_tier.compare(copy)
    first_release = _line_of(month, f'{date(2026, 3, 1).isoformat()} * "release"')
    assert [(f.rule, f.lineno, f.event) for f in faults] == [
        ("ledger.entry", first_release, day_file(date(2026, 3, 1)))], [str(f) for f in faults]
    # a forged summary and a missing file are named as such
    (copy / ledger_tier.opening_file("2026-03")).unlink()
    with open(month, "a", encoding="utf-8") as handle:
        handle.write('2026-03-03 * "order" "forged"\n  kind: "order"\n  Assets:Pool:Backing  1.00 CNY\n'
                     '  Equity:Pool:Contributions  -1.00 CNY\n')
    rules = Counter(f.rule for f in ledger_tier.compare(copy))
    assert rules == {"ledger.entry": 1, "ledger.extra": 1, "ledger.missing_file": 1}, rules
    views.update(copy, rebuild=True)
    assert ledger_tier.compare(copy) == []


# -- periods ----------------------------------------------------------------------------------------


def test_a_period_opens_alone_with_the_full_ledgers_balances(books: Path):
    full, _ = load(books / ledger_tier.LEDGER_MAIN)
    march, options = load(books / ledger_tier.period_file("2026-03"))
    assert options["title"].endswith("2026-03")
    assert min(e.date for e in march if isinstance(e, data.Transaction)) == date(2026, 3, 1)
    at_end = balances(full)
    period = balances(march)
    sheet = lambda bal: {a: v for a, v in bal.items() if a.split(":")[0] in ("Assets", "Liabilities", "Equity")
                         and a != ledger_tier.OPENING_ACCOUNT}
    assert sheet(period) == sheet(at_end)
    # income: the period shows March's only; what came before is carried in Opening-Balances
    income_feb = balances(full, date(2026, 2, 28))
    for account in (A.PACK_INCOME, A.REDEMPTION_INCOME):
        assert period.get(account, 0) == at_end.get(account, 0) - income_feb.get(account, 0)
    carried = sum((v for a, v in income_feb.items() if a.startswith("Income:")), Decimal(0))
    assert period.get(ledger_tier.OPENING_ACCOUNT, 0) == carried
    # the first month has no opening; its balances at its end are the full ledger's then
    february, _ = load(books / ledger_tier.period_file("2026-02"))
    assert balances(february) == balances(full, date(2026, 2, 28))
    assert not any(e.meta.get("kind") == "opening" for e in february if isinstance(e, data.Transaction))


# -- the auditor's recipes ----------------------------------------------------------------------------


def recipes() -> dict[str, tuple[str, str]]:
    """name -> (file relative to the books, query) from docs/auditor-recipes.md."""
    text = RECIPES.read_text(encoding="utf-8")
    out = {}
    for m in re.finditer(r"<!-- recipe: ([\w-]+) -->\n```sh\n(.*?)\n```", text, re.S):
        argv = shlex.split(m.group(2).replace("\\\n", " "))
        # every recipe turns Beancount's pickle cache off (README, "For the auditor")
        assert argv[0] == NO_CACHE and argv[1] == "bean-query" and argv[2].startswith("BOOKS/") and len(argv) == 4, argv
        out[m.group(1)] = (argv[2].removeprefix("BOOKS/"), argv[3])
    return out


NO_CACHE = "BEANCOUNT_DISABLE_LOAD_CACHE=1"
RECIPE_NAMES = ["supply-on-a-date", "burns-per-merchant-per-month", "releases-per-day", "pending-payouts",
                "sv-granted-by-kind"]


def test_the_recipes_are_documented():
    assert sorted(recipes()) == sorted(RECIPE_NAMES)


@pytest.fixture(scope="module")
def recipe_results(books: Path) -> dict[str, list[dict[str, str]]]:
    """Every recipe run as an auditor would: `python -m beanquery -f csv FILE QUERY` (in parallel)."""
    procs = {}
    for name, (rel, query) in recipes().items():
        procs[name] = subprocess.Popen([sys.executable, "-m", "beanquery", "-f", "csv", str(books / rel), query],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={**os.environ, "BEANCOUNT_DISABLE_LOAD_CACHE": "1"})
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, (name, stderr)
        out[name] = [{k: v.strip() for k, v in row.items()} for row in csv.DictReader(io.StringIO(stdout))]
    return out


@pytest.fixture(scope="module")
def journal_replay(books: Path) -> Replay:
    replay = Replay()
    for _path, directive, _errors in journal_directives(Books(books)):
        if directive is not None:
            replay.feed(directive)
    assert not replay.faults
    return replay


def test_auditor_recipe_supply_on_a_date(books: Path, recipe_results):
    rows = {r["account"]: Decimal(r["balance"]) for r in recipe_results["supply-on-a-date"]}
    engine = engine_on(books)
    try:
        supply = engine.supply(date(2026, 2, 28))
    finally:
        engine.dispose()
    assert supply["closed"] and supply["date"] == "2026-02-28"
    released, sold = rows[A.SP_RELEASED], rows[A.SP_SOLD]
    assert str(released) == supply["released"] and str(sold) == supply["sold"]
    assert str(released + sold) == supply["issued"]
    assert str(-rows[A.SP_BURNED]) == supply["burned"]
    assert str(-rows[A.SP_REDEEMED]) == supply["redeemed"]
    assert str(-rows[A.HOLDERS_SP]) == supply["circulating"]
    assert str(rows[A.POOL]) == supply["pool_cny"]


def test_auditor_recipe_burns_per_merchant_per_month(books: Path, recipe_results, journal_replay):
    rows = recipe_results["burns-per-merchant-per-month"]
    expected: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for _path, directive, _errors in journal_directives(Books(books)):
        if isinstance(directive, data.Transaction):
            for p in directive.postings:
                if p.account == A.SP_BURNED:
                    expected[(p.meta["merchant"], str(directive.date.year), str(directive.date.month))] -= p.units.number
    got = {(r["merchant"], r["y"], r["m"]): Decimal(r["burned_sp"]) for r in rows}
    assert got == dict(expected)
    assert {m for m, _, mm in got if mm == "2"} and {m for m, _, mm in got if mm == "3"}  # both months
    assert sum(got.values()) == -journal_replay.state.g.balance(A.SP_BURNED)


def test_auditor_recipe_releases_per_day(books: Path, recipe_results):
    rows = recipe_results["releases-per-day"]
    releases = {}
    for _path, directive, _errors in journal_directives(Books(books)):
        if isinstance(directive, data.Transaction) and directive.meta["kind"] == "release":
            releases[directive.date.isoformat()] = (directive.meta["released_sp"], directive.meta["value"])
    assert [r["date"] for r in rows] == [d.isoformat() for d in CLOSED] == list(releases)
    for r in rows:
        assert (r["released_sp"], r["value_cny_per_sp"]) == releases[r["date"]]


def test_auditor_recipe_pending_payouts(recipe_results, journal_replay):
    rows = recipe_results["pending-payouts"]
    pending = {p.id: p for p in journal_replay.state.payouts.values() if p.status == "requested"}
    assert pending, "the demo should leave payouts unsettled"
    assert {r["payout"] for r in rows} == set(pending)
    for r in rows:
        assert r["holder"] == pending[r["payout"]].holder
        assert Decimal(r["owed_cny"]) == pending[r["payout"]].cny
    assert sum(Decimal(r["owed_cny"]) for r in rows) == -journal_replay.state.g.balance(A.PAYOUTS_PAYABLE)


def test_auditor_recipe_sv_granted_by_kind(books: Path, recipe_results, journal_replay):
    rows = {r["kind"]: Decimal(r["sv_granted"]) for r in recipe_results["sv-granted-by-kind"]}
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for _path, directive, _errors in journal_directives(Books(books)):
        if isinstance(directive, data.Transaction) and directive.date <= CLOSED[-1]:
            for p in directive.postings:
                if p.account == A.SV_GRANTED:
                    expected[directive.meta["kind"]] += p.units.number
    assert rows == {k: v for k, v in expected.items() if v != 0}
    assert {"register", "buy_pack", "order"} <= set(rows)
    assert sum(rows.values()) == journal_replay.state.g.balance(A.SV_GRANTED)


def test_the_ledger_fava_opens_declares_no_import_config(books: Path, copy: Path):
    """Issue 10: Fava's extract read any file the client named; the ledger declares no importer
    (imports go through `ledger-service reconcile` / `import-orders`), and the shim an earlier
    version wrote is an extra file to `check`, removed by `update`."""
    from fava.core import FavaLedger

    ledger = FavaLedger(str(books / "ledger" / "main.beancount"))
    ledger.ingest.load_file()
    assert ledger.ingest.loaded_config is None and ledger.fava_options.import_dirs == []
    for rel in ledger_tier.ledger_files(books):
        assert "import-config" not in (books / rel).read_text(encoding="utf-8"), rel
    shim = copy / ledger_tier.LEDGER_DIR / ledger_tier.IMPORT_CONFIG_NAME
    shim.write_text("from importers.fava_config import CONFIG, HOOKS  # noqa: F401\n", encoding="utf-8")
    assert [f.rule for f in ledger_tier.compare(copy)] == ["ledger.extra_file"]
    assert views.update(copy) == ["ledger/import_config.py"] and not shim.exists()
    assert ledger_tier.compare(copy) == []
