"""Issue #5: the pool's bank statement, the order export, reconciliation and the importers' CLIs.

The books run on conftest's fixed clock (today 2026-03-31, books opened 2026-03-01,
profile seed-a). `pool_books` books a month of platform life and settles no payout;
`statement_rows` is the bank's view of the same month, plus an unknown credit, a
repeated line, and no line for one payout. Every sample file is written by the test
into tmp_path. Re-running an import must leave the journal byte for byte as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import beangulp
import pytest
from beancount import loader
from beancount.core import data
from click.testing import CliRunner

from importers.bank import PoolStatementImporter, StatementColumns, parse_statement
from importers.common import FormatError
from importers.orders import OrderExportImporter, read_orders
from ledger_service import cli_import
from ledger_service.audit.verify import verify
from ledger_service.importing import import_orders, reconcile
from ledger_service.rules.events import BuyPack, Deposit, OpenStore, PayoutRequest, PayoutSettle, Register
from ledger_service.store.models import PayoutRow

from conftest import START

D = Decimal
ROOT = Path(__file__).resolve().parent.parent
HEADER = "交易日期,交易时间,收入金额,支出金额,账户余额,对方户名,对方账号,摘要,交易流水号"
PLATFORM_NAME = "共享购科技有限公司"
PAYERS = {PLATFORM_NAME: "platform"}


def day(n: int) -> date:
    return START + timedelta(days=n - 1)  # day(5) = 2026-03-05


def journal_bytes(engine) -> dict:
    root = engine.books.root / "journal"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


# -- the books and their bank statement ----------------------------------------------------

@dataclass
class Pool:
    engine: object
    deposits: dict  # name -> event id
    payouts: dict  # name -> (event id, cny)


def pool_books(engine) -> Pool:
    """A month of the pool: three members, two stores, deposits, four payouts, none settled."""
    submit = engine.submit
    submit(Register("m1"), day(1))
    submit(Register("m2", referrer="m1"), day(1))
    submit(Register("m3"), day(1))
    submit(BuyPack("m1", "activation"), day(1))
    submit(BuyPack("m2", "activation"), day(1))
    submit(OpenStore("s1", "m1", "441900", "offline", D("0.10")), day(1))
    submit(OpenStore("s2", "m2", "440300", "offline", D("0.10")), day(1))
    deposits = {
        # (on day 1: once a day with active SV has closed on an empty pool, the value is 0 and a
        # merchant deposit raises DivisionByZero — see the report of issue #5)
        "s1": submit(Deposit(D("500.00"), merchant="s1"), day(1)).event_id,
        "s2": submit(Deposit(D("1000.00"), merchant="s2"), day(1)).event_id,
        "platform": submit(Deposit(D("2000.00"), platform=True), day(3)).event_id,
    }
    payouts = {}
    for name, holder, sp, when in (("P1", "s1", "100", 5), ("P2", "s2", "200", 8), ("P3", "m1", "50", 10),
                                   ("P4", "m2", "10", 12)):
        booked = submit(PayoutRequest(holder, D(sp)), day(when))
        payouts[name] = (booked.event_id, D(booked.entry.get("amount_cny")))
    deposits["s1-late"] = submit(Deposit(D("300.00"), merchant="s1"), day(15)).event_id
    return Pool(engine, deposits, payouts)


def statement_rows(pool: Pool) -> list[str]:
    """The bank's statement of the pool for March: file line 1 is the header, line k+1 the k-th row."""
    p1, p2, p3 = (pool.payouts[k] for k in ("P1", "P2", "P3"))
    rows = [  # (date text, time, in, out, counterparty, account, memo, serial)
        ("2026-03-01", "10:00:00", "500.00", "", "s1", "6222000000000001", "保证金", "B0001"),
        ("2026-03-02", "11:00:00", "1,000.00", "", "s2", "6222000000000002", "保证金", "B0002"),
        ("2026-03-03", "09:30:00", "2,000.00", "", PLATFORM_NAME, "6222000000000003", "平台注资", "B0003"),
        ("20260306", "091500", "", str(p1[1]), "王五", "6222000000000011", f"提现 {p1[0]}", "B0004"),
        ("2026-03-09", "14:00:00", "", str(p2[1]), "李四", "6222000000000012", "提现", "B0005"),
        ("2026-03-09", "14:00:00", "", str(p2[1]), "李四", "6222000000000012", "提现", "B0005"),  # repeated line
        ("2026-03-11", "16:20:00", "", str(p3[1]), "m1", "6222000000000013", "提现", "B0006"),
        ("2026-03-14", "08:00:00", "300.00", "", "s1", "6222000000000001", "保证金 s1", "B0007"),
        ("2026-03-20", "12:00:00", "88.88", "", "陌生人", "6222000000000099", "转账", "B0008"),  # unknown credit
    ]
    balance = D("0.00")
    out = [HEADER]
    seen = set()
    for date_text, time, income, expense, who, account, memo, serial in rows:
        if serial not in seen:
            balance += D(income.replace(",", "") or "0") - D(expense or "0")
            seen.add(serial)
        shown = f'"{balance:,.2f}"'  # the bank shows its balance with thousands separators
        cells = [date_text, time, f'"{income}"' if "," in income else income, expense, shown, who, account, memo, serial]
        out.append(",".join(cells))
    return out


@pytest.fixture
def pool(make_books) -> Pool:
    return pool_books(make_books())


@pytest.fixture
def statement(tmp_path, pool) -> Path:
    return write_csv(tmp_path / "pool-2026-03.csv", statement_rows(pool))


# -- reading statements ----------------------------------------------------------------------

def test_statement_is_read_whole_with_decimals_dates_and_duplicates(statement, pool):
    s = parse_statement(statement)
    assert s.encoding == "utf-8" and s.header_line == 1
    assert [line.serial for line in s.lines] == [f"B000{i}" for i in range(1, 9)]
    assert [line.line for line in s.lines] == [2, 3, 4, 5, 6, 8, 9, 10]
    assert s.lines[1].amount == D("1000.00") and isinstance(s.lines[1].amount, Decimal)
    assert s.lines[3].date == date(2026, 3, 6) and s.lines[3].time == "09:15:00"
    assert s.lines[3].amount == -pool.payouts["P1"][1]
    assert [(d.line, d.first_line, d.serial, d.same) for d in s.duplicates] == [(7, 6, "B0005", True)]
    assert s.warnings == []
    closing = s.closing_balances()
    assert list(closing) == [day(1), day(2), day(3), day(6), day(9), day(11), day(14), day(20)]
    assert closing[day(3)] == D("3500.00") and s.opening_balance() == D("0.00")


def test_gbk_statement_reads_like_utf8(tmp_path, statement):
    gbk = write_csv(tmp_path / "gbk.csv", statement.read_text(encoding="utf-8").splitlines(), encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        gbk.read_bytes().decode("utf-8")
    a, b = parse_statement(statement), parse_statement(gbk)
    assert b.encoding == "gbk" and a.lines == b.lines and a.duplicates == b.duplicates
    assert PoolStatementImporter().identify(str(gbk))
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + statement.read_bytes())
    assert parse_statement(bom).lines == a.lines and PoolStatementImporter().identify(str(bom))


def test_newest_first_statement_is_put_in_order(tmp_path, statement):
    lines = statement.read_text(encoding="utf-8").splitlines()
    flipped = write_csv(tmp_path / "newest-first.csv", [lines[0]] + lines[1:][::-1])
    s = parse_statement(flipped)
    assert [line.serial for line in s.lines] == [f"B000{i}" for i in range(1, 9)]
    assert s.warnings == [] and parse_statement(statement).closing_balances() == s.closing_balances()


@pytest.mark.parametrize("cell_index, bad, column, message", [
    (2, "12,34.50", "收入金额", "'12,34.50' is not an amount (like 1234.50 or 1,234.50)"),
    (3, "1.234", "支出金额", "'1.234' has more than 2 decimals"),
    (2, "abc", "收入金额", "'abc' is not an amount (like 1234.50 or 1,234.50)"),
    (0, "2026-02-30", "交易日期", "'2026-02-30' is not a calendar date"),
    (0, "2026/03/05", "交易日期", "'2026/03/05' is not a date (YYYY-MM-DD or YYYYMMDD)"),
    (1, "25:00:00", "交易时间", "'25:00:00' is not a time of day"),
    (8, "", "交易流水号", "the bank's serial number is empty"),
])
def test_malformed_cell_names_line_and_column_and_books_nothing(tmp_path, engine, cell_index, bad, column, message):
    lines = [HEADER, "2026-03-02,10:00:00,500.00,,500.00,s1,6222,保证金,B0001",
             "2026-03-05,10:00:00,1.00,,501.00,s1,6222,保证金,B0002"]
    cells = lines[2].split(",")
    cells[cell_index] = f'"{bad}"' if "," in bad else bad
    lines[2] = ",".join(cells)
    path = write_csv(tmp_path / "bad.csv", lines)
    with pytest.raises(FormatError) as info:
        parse_statement(path)
    assert (info.value.line, info.value.column, info.value.message) == (3, column, message)
    assert str(info.value) == f"{path}: line 3, column {column}: {message}"
    before = journal_bytes(engine)
    with pytest.raises(FormatError):
        reconcile(engine, path, payers=PAYERS)
    with pytest.raises(FormatError):
        PoolStatementImporter().extract(str(path), [])
    assert journal_bytes(engine) == before


def test_in_and_out_on_one_line_or_neither_is_refused(tmp_path):
    for cells, message in ((["2026-03-02", "", "1.00", "2.00"], "a line is money in or money out, not both"),
                           (["2026-03-02", "", "", "0.00"], "no amount in either column")):
        path = write_csv(tmp_path / "x.csv", [HEADER, ",".join(cells + ["0.00", "s1", "1", "m", "B1"])])
        with pytest.raises(FormatError) as info:
            parse_statement(path)
        assert (info.value.line, info.value.column, info.value.message) == (2, "收入金额/支出金额", message)


def test_empty_and_header_only_files(tmp_path, pool):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header_only = write_csv(tmp_path / "header.csv", [HEADER])
    importer = PoolStatementImporter()
    assert not importer.identify(str(empty))
    with pytest.raises(FormatError) as info:
        parse_statement(empty)
    assert info.value.line == 1 and info.value.message.startswith("empty file: expected the header row 交易日期,")
    assert importer.identify(str(header_only))
    assert importer.extract(str(header_only), []) == []
    before = journal_bytes(pool.engine)
    report = reconcile(pool.engine, header_only)
    assert report.ok and report.to_json()["statement"]["lines"] == 0
    assert not report.matched and not report.unmatched_lines and not report.unmatched_items and not report.balances
    assert journal_bytes(pool.engine) == before


def test_other_bank_columns(tmp_path):
    columns = StatementColumns(date="记账日期", time=None, income=None, expense=None, amount="发生额",
                               balance="余额", counterparty="对方名称", counterparty_account=None, memo="用途",
                               serial=None)
    path = write_csv(tmp_path / "other.csv", ["账号: 6222 8888", "记账日期,发生额,余额,对方名称,用途,币种",
                                              "20260302,\"1,500.00\",1500.00,s1,保证金,CNY",
                                              "20260303,-20.50,1479.50,m1,提现 E000000009,CNY"])
    s = parse_statement(path, columns)
    assert s.header_line == 2 and [line.amount for line in s.lines] == [D("1500.00"), D("-20.50")]
    assert all(line.serial.startswith("L") for line in s.lines)
    assert PoolStatementImporter(columns).identify(str(path)) and not PoolStatementImporter().identify(str(path))
    with pytest.raises(ValueError):
        StatementColumns(income=None)


# -- the beangulp importer ----------------------------------------------------------------

def _journal_entries(engine):
    entries, errors, _ = loader.load_file(str(engine.books.main))
    assert not errors, errors
    return entries


def test_extract_gives_new_lines_and_daily_balances_then_marks_reimports(statement, pool):
    importer = PoolStatementImporter()
    assert importer.identify(str(statement)) and not OrderExportImporter().identify(str(statement))
    assert importer.account(str(statement)) == "Assets:Pool:Backing"
    assert importer.date(str(statement)) == day(20)
    existing = _journal_entries(pool.engine)
    entries = importer.extract(str(statement), existing)
    txns = [e for e in entries if isinstance(e, data.Transaction)]
    balances = [e for e in entries if isinstance(e, data.Balance)]
    assert [t.meta["bank_serial"] for t in txns] == [f"B000{i}" for i in range(1, 9)] + ["B0005"]
    assert ["__duplicate__" in t.meta for t in txns] == [False] * 8 + [True]
    assert txns[-1].meta["__duplicate__"] is txns[4] and txns[-1].meta["lineno"] == 7
    first = txns[0]
    assert first.date == day(1) and first.payee == "s1" and first.narration == "保证金"
    assert [(p.account, p.units.number, p.units.currency) for p in first.postings] == [
        ("Assets:Pool:Backing", D("500.00"), "CNY")]
    payout = txns[3]
    assert [(p.account, p.units.number) for p in payout.postings] == [
        ("Assets:Pool:PayoutReserve", -pool.payouts["P1"][1])]
    # One balance assertion per statement day, dated the next day, on Backing + PayoutReserve's parent.
    closing = parse_statement(statement).closing_balances()
    assert [(b.date, b.account, b.amount.number) for b in balances] == [
        (d + timedelta(days=1), "Assets:Pool", closing[d]) for d in closing]

    # beangulp's pipeline (as its CLI and Fava run it): nothing new is a duplicate of the books yet.
    importer.deduplicate(entries, existing)
    assert sum("__duplicate__" in e.meta for e in entries) == 1
    # Re-importing the same statement over the first import: every entry is marked.
    again = importer.extract(str(statement), existing)
    importer.deduplicate(again, existing + entries)
    assert all("__duplicate__" in e.meta for e in again)

    # After reconcile has settled P1..P3 with the bank serials, the books hold those lines.
    reconcile(pool.engine, statement, payers=PAYERS)
    after = importer.extract(str(statement), _journal_entries(pool.engine))
    new = [t.meta["bank_serial"] for t in after if isinstance(t, data.Transaction) and "__duplicate__" not in t.meta]
    assert new == ["B0001", "B0002", "B0003", "B0007", "B0008"]
    # the lines the books hold are marked (beangulp comments them out), never left out silently
    held = {t.meta["bank_serial"]: t.meta["__duplicate__"] for t in after
            if isinstance(t, data.Transaction) and "__duplicate__" in t.meta}
    assert sorted(held) == ["B0004", "B0005", "B0006"]
    assert all(held[s].meta.get("bank_reference") == s for s in ("B0004", "B0006"))


def test_beangulp_cli_identify_extract_archive(tmp_path, statement, pool):
    done = subprocess.run([sys.executable, "-m", "importers", "identify", str(statement)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "importers.bank.PoolStatementImporter" in done.stdout + done.stderr

    cli = beangulp.Ingest([PoolStatementImporter(), OrderExportImporter()]).cli
    runner = CliRunner()
    out = tmp_path / "out.beancount"
    result = runner.invoke(cli, ["extract", "-e", str(pool.engine.books.main), "-o", str(out), str(statement)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.count("bank_serial:") == 9 and text.count("; duplicate of") == 1
    assert text.count(" balance Assets:Pool ") == 8
    # after reconcile settled three payouts with their serials: those lines come out commented,
    # with what holds them, as docs/importing.md says (not silently left out)
    reconcile(pool.engine, statement, payers=PAYERS)
    result = runner.invoke(cli, ["extract", "-e", str(pool.engine.books.main), "-o", str(out), str(statement)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.count("bank_serial:") == 9 and text.count("; duplicate of") == 4, text
    for serial in ("B0004", "B0006"):
        assert f';   bank_serial: "{serial}"' in text, text
    docs = tmp_path / "documents"
    docs.mkdir()
    result = runner.invoke(cli, ["archive", "-n", "-o", str(docs), str(statement)])
    assert result.exit_code == 0, result.output
    assert "Assets/Pool/Backing/2026-03-20.pool-statement.csv" in result.output


def test_fava_import_config_loads_the_importers(tmp_path, statement, pool):
    from fava.core import FavaLedger
    from fava.core.ingest import load_import_config

    loaded = load_import_config(ROOT / "importers" / "fava_config.py")
    assert sorted(loaded.importers) == ["importers.bank.PoolStatementImporter", "importers.grants.TaskGrantImporter",
                                        "importers.orders.OrderExportImporter"]
    assert loaded.hooks == ()
    # The finance ledger of docs/importing.md: the journal included, the plugin declared again.
    imports = tmp_path / "imports"
    imports.mkdir()
    (imports / statement.name).write_bytes(statement.read_bytes())
    finance = tmp_path / "finance.beancount"
    finance.write_text(f"""plugin "ledger_service.plugin"
include "{pool.engine.books.main}"
2026-03-01 custom "fava-option" "import-config" "{ROOT / 'importers' / 'fava_config.py'}"
2026-03-01 custom "fava-option" "import-dirs" "{imports}"
""", encoding="utf-8")
    ledger = FavaLedger(str(finance))
    assert not ledger.errors and not ledger.ingest.errors
    found = {f.basename: [i.importer_name for i in f.importers] for f in ledger.ingest.import_data()}
    assert found == {statement.name: ["importers.bank.PoolStatementImporter"]}
    entries = ledger.ingest.extract(str(imports / statement.name), "importers.bank.PoolStatementImporter")
    assert len(entries) == 9 + 8 and sum("__duplicate__" in e.meta for e in entries) == 1


# -- reconciliation --------------------------------------------------------------------------

def test_reconcile_matches_settles_reports_and_is_idempotent(tmp_path, statement, pool):
    engine = pool.engine
    p1, p2, p3, p4 = (pool.payouts[k] for k in ("P1", "P2", "P3", "P4"))
    report = reconcile(engine, statement, payers=PAYERS)
    got = report.to_json()

    assert [(m["line"], m["kind"], m["id"], m["how"], m["status"]) for m in got["matched"]] == [
        (2, "deposit", pool.deposits["s1"], "amount+payer", "deposit"),
        (3, "deposit", pool.deposits["s2"], "amount+payer", "deposit"),
        (4, "deposit", pool.deposits["platform"], "amount+payer", "deposit"),
        (5, "payout", p1[0], "memo", "settled now"),
        (6, "payout", p2[0], "amount", "settled now"),
        (8, "payout", p3[0], "amount", "settled now"),
        (9, "deposit", pool.deposits["s1-late"], "amount+payer", "deposit"),
    ]
    assert [m["id"] for m in got["settled_now"]] == [p1[0], p2[0], p3[0]]
    # Settled on the open day (the bank days are closed), with the bank's serial as reference.
    assert {m["book_day"] for m in got["settled_now"]} == {"2026-03-15"}
    with engine.Session() as session:
        rows = {r.id: r for r in session.query(PayoutRow)}
    assert [(rows[p[0]].status, rows[p[0]].bank_reference) for p in (p1, p2, p3, p4)] == [
        ("settled", "B0004"), ("settled", "B0005"), ("settled", "B0006"), ("requested", None)]

    assert [(u["line"], u["serial"], u["amount"]) for u in got["unmatched_lines"]] == [(10, "B0008", "88.88")]
    assert got["unmatched_lines"][0]["reason"].startswith("no deposit of 88.88 CNY from 陌生人 booked within 3 days")
    assert [(i["kind"], i["id"], i["cny"]) for i in got["unmatched_book_items"]] == [("payout", p4[0], str(p4[1]))]
    assert got["statement"]["duplicates"] == [{"line": 7, "first_line": 6, "serial": "B0005", "identical": True}]

    # Bank balance vs Backing + PayoutReserve at each day's close: the payouts paid by the bank on
    # 03-06/09/11 are settled in the books on 03-15, the deposit received on 03-14 was booked on
    # 03-15 (in transit); the unknown credit is the only unexplained difference.
    out = p1[1] + p2[1] + p3[1]
    expected = [
        ("2026-03-01", "500.00", "1500.00", "-1000.00", "-1000.00"),  # s2's deposit booked before the bank has it
        ("2026-03-02", "1500.00", "1500.00", "0.00", "0.00"),
        ("2026-03-03", "3500.00", "3500.00", "0.00", "0.00"),
        ("2026-03-06", str(D("3500.00") - p1[1]), "3500.00", str(-p1[1]), str(-p1[1])),
        ("2026-03-09", str(D("3500.00") - p1[1] - p2[1]), "3500.00", str(-p1[1] - p2[1]), str(-p1[1] - p2[1])),
        ("2026-03-11", str(D("3500.00") - out), "3500.00", str(-out), str(-out)),
        ("2026-03-14", str(D("3800.00") - out), "3500.00", str(D("300.00") - out), str(D("300.00") - out)),
        ("2026-03-20", str(D("3888.88") - out), str(D("3800.00") - out), "88.88", "0.00"),
    ]
    assert [(b["date"], b["bank"], b["books"], b["difference"], b["in_transit"]) for b in got["balances"]] == expected
    assert [b["unexplained"] for b in got["balances"]] == ["0.00"] * 7 + ["88.88"]
    assert [b["books_day_closed"] for b in got["balances"]] == [True] * 7 + [False]
    assert got["opening"] == {"date": "2026-02-28", "bank": "0.00", "books": "0.00", "difference": "0.00"}
    assert not report.ok and "RESULT: NOT reconciled" in report.to_text()

    report.write(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == got
    text = (tmp_path / "report.txt").read_text(encoding="utf-8")
    assert "Settled now: 3 payouts" in text and "Unmatched statement lines: 1" in text
    assert f"payout {p4[0]}: {p4[1]} CNY" in text and "line 7 repeats serial B0005 of line 6" in text

    # Again: nothing booked; the three payouts now match by reference; the same balances.
    before = journal_bytes(engine)
    second = reconcile(engine, statement, payers=PAYERS).to_json()
    assert journal_bytes(engine) == before
    assert second["settled_now"] == []
    assert [(m["id"], m["how"], m["status"]) for m in second["matched"] if m["kind"] == "payout"] == [
        (p1[0], "reference", "settled before"), (p2[0], "reference", "settled before"),
        (p3[0], "reference", "settled before")]
    assert second["balances"] == got["balances"]
    assert second["unmatched_lines"] == got["unmatched_lines"]
    assert second["unmatched_book_items"] == got["unmatched_book_items"]
    # The GBK copy of the same statement is the same statement: nothing more to do.
    gbk = write_csv(tmp_path / "gbk.csv", statement.read_text(encoding="utf-8").splitlines(), encoding="gbk")
    assert reconcile(engine, gbk, payers=PAYERS).to_json()["settled_now"] == []
    assert journal_bytes(engine) == before
    assert verify(engine.books.root).ok


def test_platform_deposit_needs_its_payer_name(statement, pool):
    report = reconcile(pool.engine, statement)  # no payer mapping for the platform's bank name
    assert [u.line.serial for u in report.unmatched_lines] == ["B0003", "B0008"]
    assert "same amount from platform" in report.unmatched_lines[0].reason
    assert [i["id"] for i in report.unmatched_items if i["kind"] == "deposit"] == [pool.deposits["platform"]]


def test_dry_run_settles_nothing(statement, pool):
    before = journal_bytes(pool.engine)
    report = reconcile(pool.engine, statement, payers=PAYERS, settle=False)
    assert journal_bytes(pool.engine) == before
    assert [m.status for m in report.matched if m.kind == "payout"] == ["to settle"] * 3
    assert report.settled_now == [] and "DRY RUN" in report.to_text()
    text = report.to_text()  # what it would do, not "Settled now: 0" after three lines "to settle"
    assert "Would settle: 3 payouts" in text and "Settled now" not in text, text
    assert "window 3 days" in text and "(s)" not in text, text


def test_ambiguous_amounts_are_not_settled(tmp_path, make_books):
    engine = make_books()
    engine.submit(Register("m1"), day(1))
    engine.submit(BuyPack("m1", "activation"), day(1))
    engine.submit(OpenStore("s1", "m1", "441900", "offline", D("0.10")), day(1))
    engine.submit(Deposit(D("500.00"), merchant="s1"), day(1))
    a = engine.submit(PayoutRequest("s1", D("10")), day(2))
    b = engine.submit(PayoutRequest("s1", D("10")), day(2))
    cny = D(a.entry.get("amount_cny"))
    path = write_csv(tmp_path / "s.csv", [HEADER, f"2026-03-03,10:00:00,,{cny},{500 - cny},某人,1,提现,X1"])
    before = journal_bytes(engine)
    report = reconcile(engine, path)
    assert journal_bytes(engine) == before and report.matched == []
    assert report.unmatched_lines[0].reason.startswith(f"ambiguous: pending payouts {a.event_id}, {b.event_id}")
    # The holder's id as counterparty does not help here (same holder); the payout id in the memo does.
    path = write_csv(tmp_path / "s2.csv", [HEADER, f"2026-03-03,10:00:00,,{cny},{500 - cny},s1,1,提现 {b.event_id},X1"])
    report = reconcile(engine, path)
    assert [(m.item, m.how, m.status) for m in report.matched] == [(b.event_id, "memo", "settled now")]
    assert [i["id"] for i in report.unmatched_items] == [a.event_id]
    # `a` settled by hand under another reference: a bank line naming it is a possible double payment.
    engine.submit(PayoutSettle(a.event_id, "MANUAL-1"), day(3))
    path = write_csv(tmp_path / "s3.csv", [HEADER, f"2026-03-03,10:00:00,,{cny},{500 - cny},s1,1,提现 {a.event_id},X2"])
    report = reconcile(engine, path)
    assert [u.reason for u in report.unmatched_lines] == [
        f"names payout {a.event_id}, which is already settled (bank reference MANUAL-1)"]
    # (and `b`, settled within the statement's period under X1, has no line in this statement)
    assert [(i["kind"], i["id"], i["bank_reference"]) for i in report.unmatched_items] == [
        ("settled payout", b.event_id, "X1"), ("settled payout", a.event_id, "MANUAL-1")]
    # A serial used as the reference of a payout of another amount is not taken for it.
    path = write_csv(tmp_path / "s4.csv", [HEADER, f"2026-03-03,10:00:00,,1.00,{500 - 1},s1,1,提现,MANUAL-1"])
    assert reconcile(engine, path).unmatched_lines[0].reason == (
        f"payout {a.event_id} was settled with this serial as reference, but it is {cny} CNY and the line 1.00 CNY")


# -- orders -----------------------------------------------------------------------------------

ORDERS = [
    "order_id,date,buyer,merchant,amount_cny,ship_region",
    "o1,2026-03-05,m1,s1,100.00,",  # 2 booked
    "o2,20260305,m2,s1,50.00,",  # 3 booked
    "o1,2026-03-05,m1,s1,999.00,",  # 4 same id, other amount
    "o3,2026-03-05,ghost,s1,10.00,",  # 5 unknown buyer
    "o4,2026-03-05,m1,s2,10000.00,",  # 6 s2 is short of SP (its deposit: see the test)
    "o5,2026-03-05,m1,s1,12.3.4,",  # 7 malformed amount
    "o2,2026-03-05,m2,s1,50.00,",  # 8 the same order again
    "o6,2026-03-32,m1,s1,5.00,",  # 9 bad date
    "o7,,m2,s1,20.00,441900",  # 10 booked today
]


def order_books(engine):
    for member in ("m1", "m2"):
        engine.submit(Register(member), day(1))
        engine.submit(BuyPack(member, "activation"), day(1))
    engine.submit(OpenStore("s1", "m1", "441900", "offline", D("0.10")), day(1))
    engine.submit(OpenStore("s2", "m2", "440300", "online", D("0.10")), day(1))
    engine.submit(Deposit(D("5000.00"), merchant="s1"), day(1))
    engine.submit(Deposit(D("500.00"), merchant="s2"), day(1))
    return engine


def test_import_orders_books_good_rows_and_lists_the_others(tmp_path, make_books):
    engine = order_books(make_books())
    path = write_csv(tmp_path / "orders.csv", ORDERS)
    ticks = []
    report = import_orders(engine, path, progress=lambda done, total: ticks.append((done, total)))
    assert ticks == [(i, 9) for i in range(1, 10)]
    got = [(r.line, r.order_id, r.status, r.rule) for r in report.rows]
    assert got == [
        (2, "o1", "booked", None),
        (3, "o2", "booked", None),
        (4, "o1", "rejected", "order.duplicate_id"),
        (5, "o3", "rejected", "member.unknown"),
        # s2's first order: its 500 SP (bought at 1.00 on day 1) are worth less than the 500.00 CNY
        # deposit at day 5's value, which the releases have lowered (merchant.deposit_rule sp_held)
        (6, "o4", "rejected", "merchant.deposit_short"),
        (7, "o5", "rejected", "input.bad_amount"),
        (8, "o2", "already booked", None),
        (9, "o6", "rejected", "input.bad_date"),
        (10, "o7", "booked", None),
    ]
    by_line = {r.line: r for r in report.rows}
    assert "with another amount_cny" in by_line[4].detail
    assert by_line[5].detail == "buyer: no member 'ghost'"
    assert by_line[6].detail.startswith("merchant: s2 holds ")
    assert by_line[7].detail == "amount_cny: '12.3.4' is not a decimal amount"
    assert by_line[9].detail == "date: '2026-03-32' is not a calendar date"
    assert by_line[8].event == by_line[3].event
    assert engine.event(by_line[2].event)["date"] == "2026-03-05"
    assert engine.event(by_line[10].event)["date"] == "2026-03-31"
    for order_id in ("o3", "o4", "o5", "o6"):
        assert engine.event_for_order(order_id) is None
    assert not report.ok and report.to_json()["booked"] == 3
    assert "line 6: o4: [merchant.deposit_short]" in report.to_text()

    before = journal_bytes(engine)
    again = import_orders(engine, path)
    assert journal_bytes(engine) == before
    assert [(r.line, r.status) for r in again.rows if r.status != "rejected"] == [
        (2, "already booked"), (3, "already booked"), (8, "already booked"), (10, "already booked")]
    assert [r.line for r in again.rejected] == [4, 5, 6, 7, 9]
    assert verify(engine.books.root).ok


def test_order_file_format_errors(tmp_path, make_books):
    engine = order_books(make_books())
    bad = write_csv(tmp_path / "bad.csv", ["id,buyer,merchant,amount", "o1,m1,s1,1.00"])
    with pytest.raises(FormatError) as info:
        import_orders(engine, bad)
    assert info.value.line == 1 and "missing order_id,amount_cny" in info.value.message
    gbk = write_csv(tmp_path / "gbk.csv", ["order_id,buyer,merchant,amount_cny", "o9,m1,s1,1.00", "o10,m1,s1,中文"],
                    encoding="gbk")
    assert read_orders(gbk).encoding == "gbk"
    report = import_orders(engine, gbk)
    assert [(r.status, r.rule) for r in report.rows] == [("booked", None), ("rejected", "input.bad_amount")]


def test_order_importer_previews_unbooked_orders(tmp_path, make_books):
    engine = order_books(make_books())
    path = write_csv(tmp_path / "orders.csv", ORDERS[:4])
    importer = OrderExportImporter()
    assert importer.identify(str(path)) and not PoolStatementImporter().identify(str(path))
    assert importer.date(str(path)) == day(5)
    entries = importer.extract(str(path), [])
    assert [(e.type, e.values[0].value, "__duplicate__" in e.meta) for e in entries] == [
        ("order", "o1", False), ("order", "o2", False), ("order", "o1", True)]
    import_orders(engine, write_csv(tmp_path / "one.csv", ORDERS[:2]))
    again = importer.extract(str(path), _journal_entries(engine))
    assert [(e.values[0].value, "__duplicate__" in e.meta) for e in again] == [
        ("o1", True), ("o2", False), ("o1", True)]  # o1 booked: marked (commented out by -e), not dropped
    bad = write_csv(tmp_path / "bad.csv", [ORDERS[0], ORDERS[6]])
    with pytest.raises(FormatError) as info:
        importer.extract(str(bad), [])
    assert (info.value.line, info.value.column) == (2, "amount_cny")


# -- the ledger-service commands --------------------------------------------------------------

def test_cli_commands(tmp_path, statement, pool, monkeypatch, clock):
    from ledger_service.engine import Engine

    monkeypatch.setattr(cli_import, "open_engine", lambda books, db_url: Engine(books, db_url, clock=clock))
    runner = CliRunner()
    books = str(pool.engine.books.root)
    out = tmp_path / "rec" / "report.json"
    dry = runner.invoke(cli_import.reconcile, ["--books", books, str(statement), "--dry-run",
                                               "--payer", f"{PLATFORM_NAME}=platform"])
    assert dry.exit_code == cli_import.NOT_RECONCILED == 1, dry.output  # a scheduled job alerts
    assert "Would settle: 3 payouts" in dry.output
    result = runner.invoke(cli_import.reconcile, ["--books", books, str(statement), "--report", str(out),
                                                  "--payer", f"{PLATFORM_NAME}=platform"])
    assert result.exit_code == 1, result.output  # B0008 is unmatched: NOT reconciled
    assert "Settled now: 3 payouts" in result.output and "RESULT: NOT reconciled" in result.output
    assert json.loads(out.read_text(encoding="utf-8"))["unmatched_lines"][0]["serial"] == "B0008"
    assert out.with_suffix(".txt").is_file()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = runner.invoke(cli_import.reconcile, ["--books", books, str(empty)])
    assert result.exit_code == 2 and "empty file" in result.output
    nothing = runner.invoke(cli_import.reconcile, ["--books", books, str(write_csv(tmp_path / "h.csv", [HEADER]))])
    assert nothing.exit_code == 0 and "RESULT: reconciled" in nothing.output, nothing.output

    orders = write_csv(tmp_path / "orders.csv", ["order_id,date,buyer,merchant,amount_cny", "o1,,m1,s1,10.00",
                                                 "o2,,ghost,s1,10.00"])
    result = runner.invoke(cli_import.import_orders, ["--books", books, str(orders)])
    assert result.exit_code == 1, result.output
    assert "booked 1, already booked 0, rejected 1" in result.output and "line 3: o2: [member.unknown]" in result.output
