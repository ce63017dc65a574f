"""Issue 13 part 3: SV for completed tasks and campaigns (the finance event `grant`).

Every expected number is worked out by hand in the comments (profile seed-a: a new member
gets 300 locked SV, an activation pack unlocks them and returns 299 active SV; the grant
ceilings of the tests are set with `custom`). The books run on conftest's fixed clock.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path

import beangulp
import pytest
from alembic import command
from beancount import loader
from click.testing import CliRunner
from sqlalchemy import inspect

from importers.common import FormatError
from importers.grants import TaskGrantImporter, read_grants
from importers.orders import OrderExportImporter
from ledger_service import accounts as A
from ledger_service import cli_import, config
from ledger_service.audit.verify import verify
from ledger_service.engine import Engine
from ledger_service.errors import Conflict, Invalid, NotFound
from ledger_service.importing import import_grants
from ledger_service.rules.events import BuyPack, Deposit, Grant, OpenStore, Register, parse
from ledger_service.store import migrate
from ledger_service.store.db import database_url, make_engine
from ledger_service.store.models import GrantCampaignRow, GrantDayRow

from api_helpers import assert_problem, make_api, nothing_booked, ok, postings_of
from booking_helpers import control, custom, one
from conftest import START, Clock

D = Decimal
DAY2 = START + timedelta(days=1)
DAY3 = START + timedelta(days=2)


def ceilings(per_day: str = "50", per_campaign: str = "120") -> config.Params:
    return custom(config.load("seed-a"), grant_max_sv_per_holder_per_day=per_day,
                  grant_max_sv_per_campaign=per_campaign)


def members(engine, *ids: str, active: tuple[str, ...] = (), day=START) -> None:
    for member in ids:
        engine.submit(Register(member), day)
    for member in active:
        engine.submit(BuyPack(member, "activation"), day)


def grant(holder: str, sv: str, reason: str = "task", campaign: str | None = None, ref: str | None = None) -> Grant:
    event = parse("grant", {"holder": holder, "sv": sv, "reason": reason, "campaign": campaign, "ref": ref})
    assert isinstance(event, Grant)
    return event


def assert_verifies(engine) -> None:
    report = verify(engine.books.root)
    assert report.ok, [str(f) for f in report.faults]
    assert report.db_checked
    _entries, errors, _ = loader.load_file(str(engine.books.main))  # bean-check: the plugin re-derives it too
    assert not errors, errors


def refused(engine, event, day, rule: str, kind=Conflict):
    head = engine.head()
    with pytest.raises(kind) as info:
        engine.submit(event, day)
    assert info.value.rule == rule, (info.value.rule, info.value.detail)
    assert engine.head() == head, "a refused grant books nothing"
    return info.value


# -- worked examples ----------------------------------------------------------------------------


def test_grants_are_locked_for_an_inactive_member_and_active_once_they_are(engine):
    engine.submit(Register("m1"), START)
    assert engine.holder("m1")["sv_locked"] == D("300")  # the registration grant, locked

    booked = engine.submit(grant("m1", "20", "task", ref="t-1"), START)
    # m1 is inactive: 20 SV locked, created in Equity:SV:Granted like every SV grant
    credit = one(booked, leg="grant")
    assert (credit.account, credit.number, credit.holder) == (A.HOLDERS_SV_LOCKED, D("-20"), "m1")
    assert [(p.account, p.number) for p in booked.entry.postings] == [
        (A.HOLDERS_SV_LOCKED, D("-20")), (A.SV_GRANTED, D("20"))]
    assert booked.entry.get("reason") == "task" and booked.entry.get("ref") == "t-1"
    assert booked.entry.get("campaign") is None
    # locked: 300 + 20 = 320
    assert engine.holder("m1")["sv_locked"] == D("320") and engine.holder("m1")["sv_active"] == 0

    engine.submit(BuyPack("m1", "activation"), START)
    # the pack unlocks all 320 locked SV (the grant with them) and returns 299: 320 + 299 = 619 active
    assert engine.holder("m1")["sv_locked"] == 0 and engine.holder("m1")["sv_active"] == D("619")

    booked = engine.submit(grant("m1", "30.5", "campaign", "spring-2026"), START)
    credit = one(booked, leg="grant")
    assert (credit.account, credit.number) == (A.HOLDERS_SV_ACTIVE, D("-30.5"))
    assert booked.entry.get("campaign") == "spring-2026" and booked.entry.get("sv") == "30.5000"
    # active: 619 + 30.5 = 649.5
    assert engine.holder("m1")["sv_active"] == D("649.5")
    # SV created: 300 (registration) + 20 (task) + 299 (pack) + 30.5 (campaign) = 649.5, all held by m1
    balances = control(engine)
    assert balances[A.SV_GRANTED] == D("649.5")
    assert balances[A.HOLDERS_SV_ACTIVE] == D("-649.5") and A.HOLDERS_SV_LOCKED not in balances
    assert_verifies(engine)


def test_granted_sv_earns_sp_at_the_close_like_any_active_sv(make_books):
    engine = make_books(ceilings(per_day="300", per_campaign="1000"))
    members(engine, "a", "b", active=("a", "b"))
    # a and b: 300 + 299 = 599 active SV each; b completes tasks worth 299 SV more: 898
    engine.submit(grant("b", "299"), START)
    engine.submit(Deposit(D("1000.00"), platform=True), START)  # a pool: the value stays positive
    engine.close_days(START)
    a, b = engine.holder("a"), engine.holder("b")
    # the release pays SP in proportion to active SV: b holds 898 / 599 of a's SV
    assert a["sp"] > 0
    assert abs(b["sp"] * 599 - a["sp"] * 898) <= D("0.0001") * 898, (a["sp"], b["sp"])
    assert b["sv_active"] < D("898") and a["sv_active"] < D("599")  # some SV converted
    assert_verifies(engine)


# -- the ceilings ---------------------------------------------------------------------------------


def test_the_per_holder_per_day_ceiling_refuses_past_it_and_resets_the_next_day(make_books):
    engine = make_books(ceilings(per_day="50"))
    members(engine, "m1", "m2", active=("m1",))
    engine.submit(grant("m1", "30"), START)
    engine.submit(grant("m1", "20", "campaign", "spring"), START)  # 30 + 20 = 50: at the ceiling, allowed
    err = refused(engine, grant("m1", "0.0001"), START, "grant.holder_day_ceiling")
    # 50 + 0.0001 = 50.0001 > 50
    assert err.field == "sv"
    assert "m1 was granted 50.0000 SV on 2026-03-01" in err.detail
    assert "grant.max_sv_per_holder_per_day = 50.0000 SV" in err.detail and "at most 0.0000 SV more" in err.detail
    # another holder has a ceiling of their own: 0 + 50 = 50
    engine.submit(grant("m2", "50"), START)
    # a single grant above the ceiling is refused on a fresh day too: 0 + 50.0001 > 50
    refused(engine, grant("m1", "50.0001"), DAY2, "grant.holder_day_ceiling")
    # the next day starts from 0 again: 0 + 50 = 50
    engine.submit(grant("m1", "50"), DAY2)
    refused(engine, grant("m1", "0.0001"), DAY2, "grant.holder_day_ceiling")
    # SV created in all (the issuance account; the close of START converts some, it uncreates none):
    # 2 x 300 (registrations) + 299 (m1's pack) + 30 + 20 + 50 (m2) + 50 (m1, day 2) = 1049
    assert control(engine)[A.SV_GRANTED] == D("1049")
    assert_verifies(engine)


def test_the_per_campaign_ceiling_counts_every_holder_and_every_day(make_books):
    engine = make_books(ceilings(per_day="50", per_campaign="120"))
    members(engine, "m1", "m2", "m3", "m4")
    engine.submit(grant("m1", "50", "campaign", "spring"), START)  # spring: 50
    engine.submit(grant("m2", "50", "campaign", "spring"), START)  # spring: 50 + 50 = 100
    err = refused(engine, grant("m3", "20.0001", "campaign", "spring"), START, "grant.campaign_ceiling")
    # 100 + 20.0001 = 120.0001 > 120
    assert "campaign spring has granted 100.0000 SV" in err.detail
    assert "grant.max_sv_per_campaign = 120.0000 SV" in err.detail and "at most 20.0000 SV more" in err.detail
    engine.submit(grant("m3", "20", "campaign", "spring"), START)  # 100 + 20 = 120: at the ceiling
    # a task of the campaign counts towards it too
    refused(engine, grant("m4", "1", "task", "spring"), START, "grant.campaign_ceiling")
    # grants without a campaign, or of another campaign, are not bounded by spring's
    engine.submit(grant("m4", "10"), START)
    engine.submit(grant("m4", "10", "campaign", "summer"), START)
    with engine.Session() as session:
        days = {(row.holder, row.day): row.sv for row in session.query(GrantDayRow)}
    # m4 on START: 10 (task) + 10 (summer) = 20
    assert days == {("m1", START): D("50"), ("m2", START): D("50"), ("m3", START): D("20"), ("m4", START): D("20")}
    # the campaign ceiling does not reset the next day (m2's day ceiling does: 0 + 1 <= 50)
    refused(engine, grant("m2", "1", "campaign", "spring"), DAY2, "grant.campaign_ceiling")
    engine.submit(grant("m2", "1", "task"), DAY2)
    with engine.Session() as session:
        campaigns = {row.campaign: row.sv for row in session.query(GrantCampaignRow)}
        days = {(row.holder, row.day): row.sv for row in session.query(GrantDayRow)}
    assert campaigns == {"spring": D("120"), "summer": D("10")}
    # booking on DAY2 closed START: its totals are gone (no grant can be booked on a closed day),
    # the open day's remain
    assert days == {("m2", DAY2): D("1")}
    assert_verifies(engine)


def test_verify_names_a_grant_total_the_journal_does_not_give(make_books):
    engine = make_books(ceilings())
    members(engine, "m1")
    engine.submit(grant("m1", "10", "campaign", "spring"), START)
    url = database_url(engine.books.root)
    db = make_engine(url)
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE grant_days SET sv = '5.0000'")
        conn.exec_driver_sql("UPDATE grant_campaigns SET sv = '0.0000'")
    db.dispose()
    # a database that under-counts would let grants past the ceilings: verify names both rows
    rules = {f.rule: str(f) for f in verify(engine.books.root).faults}
    assert "db.grant_days.sv" in rules and "holder m1, day 2026-03-01" in rules["db.grant_days.sv"]
    assert "db.grant_campaigns.sv" in rules and "campaign spring" in rules["db.grant_campaigns.sv"]


# -- what a grant must name -----------------------------------------------------------------------


def test_malformed_grants_are_refused_naming_the_field(engine):
    members(engine, "m1")
    engine.submit(Register("own"), START)
    engine.submit(BuyPack("own", "activation"), START)
    engine.submit(OpenStore("s1", "own", "441900", "online", D("0.10")), START)
    refused(engine, grant("m1", "5", "campaign"), START, "grant.campaign_required", Invalid)
    refused(engine, grant("s1", "5"), START, "member.unknown", NotFound)  # merchants earn SV from orders only
    refused(engine, grant("ghost", "5"), START, "member.unknown", NotFound)
    for fields, rule in (({"sv": "0"}, "input.bad_amount"), ({"sv": "1.00001"}, "input.bad_amount"),
                         ({"sv": "-1"}, "input.bad_amount"), ({"reason": "bonus"}, "input.bad_choice"),
                         ({"campaign": "spring 2026"}, "input.bad_id"), ({"reason": None}, "input.missing_field")):
        with pytest.raises(Invalid) as info:
            parse("grant", {"holder": "m1", "sv": "5", "reason": "task", **fields})
        assert info.value.rule == rule, (fields, info.value.rule)
    assert_verifies(engine)


# -- books made before grants -----------------------------------------------------------------------


def _old_rules_genesis(monkeypatch) -> None:
    """Write genesis entries (and the ledger row's rules) as the code before grants did: without them."""
    original = config.Params.to_meta

    def without_grants(self):
        return {k: v for k, v in original(self).items() if not k.startswith("grant_")}

    monkeypatch.setattr(config.Params, "to_meta", without_grants)


def test_books_made_before_grants_replay_unchanged_and_refuse_grants(tmp_path, monkeypatch, clock):
    root = tmp_path / "old-books"
    legacy = custom(config.load("seed-a"), grant_max_sv_per_holder_per_day="0", grant_max_sv_per_campaign="0")
    with monkeypatch.context() as patch:
        _old_rules_genesis(patch)
        old = Engine.init(root, legacy, start=START, clock=clock)
        members(old, "m1", "m2", active=("m1",))
        old.close_days(START)
        old.dispose()
    # and a database at the schema before grants (revision 0002)
    db = make_engine(database_url(root))
    cfg = migrate.config()
    with db.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0002")
    assert not inspect(db).has_table("grant_days")
    db.dispose()
    genesis = sorted((root / "journal").rglob("*.beancount"))[0].read_text("utf-8")
    assert "sv_registration_grant" in genesis and "grant_max" not in genesis  # an old genesis entry

    engine = Engine(root, clock=clock)  # today's code: the schema upgraded, the rules read as they were
    try:
        db = make_engine(database_url(root))
        assert inspect(db).has_table("grant_days") and migrate.current(db) == migrate.head()
        db.dispose()
        assert engine.params.grant_max_sv_per_holder_per_day == 0  # config.LEGACY: no grants
        err = refused(engine, grant("m1", "1"), DAY2, "grant.disabled")
        assert "grant.max_sv_per_holder_per_day = 0" in err.detail
        engine.submit(Register("m3"), DAY2)  # everything else books as before
        engine.close_days(DAY2)
        assert_verifies(engine)
    finally:
        engine.dispose()
    assert verify(root, use_db=False).ok


def test_rules_files_without_a_grant_section_take_the_new_books_defaults():
    profile = resources.files("ledger_service.profiles").joinpath("seed-a.toml").read_text("utf-8")
    start, end = profile.index("[grant]"), profile.index("[calendar]")
    params = config.parse_toml(profile[:start] + profile[end:], source="older.toml")
    assert params.grant_max_sv_per_holder_per_day == D("100") and params.grant_max_sv_per_campaign == D("100000")
    meta = config.load("seed-a").to_meta()
    del meta["grant_max_sv_per_holder_per_day"], meta["grant_max_sv_per_campaign"]
    old = config.Params.from_meta(meta)  # a genesis entry written before: the rule as it was, no grants
    assert old.grant_max_sv_per_holder_per_day == 0 and old.grant_max_sv_per_campaign == 0


# -- the API, the CLI, the importer ---------------------------------------------------------------


def test_post_grants_is_finance_only_and_refusals_are_problems(tmp_path):
    api = make_api(tmp_path / "books", Clock(START + timedelta(days=5)), params=ceilings(per_day="50"), start=START)
    try:
        day = (START + timedelta(days=5)).isoformat()
        ok(api.post("/v1/members", {"id": "m1", "date": day}))
        body = {"holder": "m1", "sv": "40.0000", "reason": "campaign", "campaign": "spring", "ref": "t-9",
                "date": day}
        with nothing_booked(api.engine):
            assert_problem(api.post("/v1/grants", body, role="storefront"), 403, "auth.wrong_role")
            assert_problem(api.post("/v1/grants", body, role="auditor"), 403, "auth.wrong_role")
        booked = ok(api.post("/v1/grants", body, role="finance", idem="g-1"))
        assert booked["kind"] == "grant"
        (credit,) = postings_of(booked, leg="grant")
        assert credit == {"account": A.HOLDERS_SV_LOCKED, "amount": "-40.0000", "commodity": "SV", "holder": "m1",
                          "leg": "grant"}
        again = api.post("/v1/grants", body, role="finance", idem="g-1")  # the same key: nothing booked again
        assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
        with nothing_booked(api.engine):
            # 40 + 10.0001 = 50.0001 > 50
            problem = assert_problem(api.post("/v1/grants", {**body, "sv": "10.0001"}, role="finance"), 409,
                                     "grant.holder_day_ceiling", "sv")
            assert "grant.max_sv_per_holder_per_day" in problem["detail"]
            assert_problem(api.post("/v1/grants", {**body, "campaign": None}, role="finance"), 422)
            no_campaign = {k: v for k, v in body.items() if k != "campaign"}
            assert_problem(api.post("/v1/grants", no_campaign, role="finance"), 422, "grant.campaign_required",
                           "campaign")
            assert_problem(api.post("/v1/grants", {**body, "reason": "bonus"}, role="finance"), 422)
            assert_problem(api.post("/v1/grants", {**body, "holder": "ghost"}, role="finance"), 404, "member.unknown")
        assert ok(api.get("/v1/holders/m1"), 200)["sv_locked"] == "340.0000"  # 300 + 40
        assert "/v1/grants" in api.client.get("/openapi.json").get_json()["paths"]
    finally:
        api.engine.dispose()
    report = verify(tmp_path / "books")
    assert report.ok, [str(f) for f in report.faults]


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


TASKS = [
    "ref,date,holder,sv,reason,campaign",
    "t1,2026-03-01,m1,30,task,",          # m1: 30
    "t2,2026-03-01,m1,30.0000,task,",     # m1: 30 + 30 = 60 > 50: rejected
    "t3,20260301,m2,20,campaign,spring",  # m2: 20; spring: 20
    "t4,2026-03-01,m2,5,campaign,",       # a campaign grant without its campaign: rejected
    "t5,2026-03-01,ghost,5,,",            # no such member: rejected
    "t6,2026-03-02,m1,50,,spring",        # the next day, m1: 50 (reason: task by default); spring: 20 + 50 = 70
    "t7,2026-03-02,m2,1.00001,task,",     # 5 decimals: rejected
]


def test_import_grants_books_good_rows_and_is_idempotent_by_ref(tmp_path, make_books):
    engine = make_books(ceilings(per_day="50"))
    members(engine, "m1", "m2", active=("m1",))
    path = write_csv(tmp_path / "tasks.csv", TASKS)
    report = import_grants(engine, path)
    status = {r.order_id: (r.status, r.rule) for r in report.rows}
    assert status == {
        "t1": ("booked", None), "t2": ("rejected", "grant.holder_day_ceiling"), "t3": ("booked", None),
        "t4": ("rejected", "grant.campaign_required"), "t5": ("rejected", "member.unknown"),
        "t6": ("booked", None), "t7": ("rejected", "input.bad_amount")}
    assert report.to_json()["results"][0]["ref"] == "t1"
    assert report.to_text().startswith(f"grants from {path} (utf-8): 7 rows — booked 3, already booked 0, rejected 4")
    assert engine.holder("m1")["sv_active"] > 0 and engine.holder("m2")["sv_locked"] == D("320")  # 300 + 20
    journal = {p: p.read_bytes() for p in sorted((engine.books.root / "journal").rglob("*.beancount"))}

    again = import_grants(engine, path)  # nothing new: the booked refs are skipped, byte for byte
    assert [(r.order_id, r.status) for r in again.rows if r.status != "rejected"] == [
        ("t1", "already booked"), ("t3", "already booked"), ("t6", "already booked")]
    assert journal == {p: p.read_bytes() for p in sorted((engine.books.root / "journal").rglob("*.beancount"))}

    changed = write_csv(tmp_path / "changed.csv", [TASKS[0], "t1,2026-03-01,m1,31,task,", "t3,,m2,20,campaign,spring"])
    report = import_grants(engine, changed)
    assert [(r.status, r.rule) for r in report.rows] == [("rejected", "grant.duplicate_ref"), ("already booked", None)]
    assert "with another sv" in report.rows[0].detail
    assert_verifies(engine)


def test_task_file_format_and_importer(tmp_path, make_books):
    bad = write_csv(tmp_path / "bad.csv", ["ref,holder,amount", "t1,m1,5"])
    with pytest.raises(FormatError) as info:
        read_grants(bad)
    assert "missing sv" in info.value.message and "unknown 'amount'" in info.value.message
    gbk = write_csv(tmp_path / "gbk.csv", ["ref,holder,sv,campaign", "t1,m1,5,春季活动"], encoding="gbk")
    assert read_grants(gbk).encoding == "gbk"

    engine = make_books(ceilings())
    members(engine, "m1")
    path = write_csv(tmp_path / "tasks.csv", [TASKS[0], TASKS[1], TASKS[3], TASKS[1]])
    importer = TaskGrantImporter()
    assert importer.identify(str(path)) and not OrderExportImporter().identify(str(path))
    assert importer.date(str(path)) == START
    entries = importer.extract(str(path), [])
    assert [(e.type, e.values[0].value, "__duplicate__" in e.meta) for e in entries] == [
        ("grant", "t1", False), ("grant", "t3", False), ("grant", "t1", True)]
    assert entries[1].values[2].value.number == D("20") and entries[1].values[4].value == "spring"
    import_grants(engine, write_csv(tmp_path / "one.csv", TASKS[:2]))
    loaded, errors, _ = loader.load_file(str(engine.books.main))
    assert not errors
    assert [e.values[0].value for e in importer.extract(str(path), loaded)] == ["t3"]
    no_ref = write_csv(tmp_path / "no-ref.csv", [TASKS[0], ",2026-03-01,m1,5,task,"])
    with pytest.raises(FormatError) as info:
        importer.extract(str(no_ref), [])
    assert (info.value.line, info.value.column) == (2, "ref")
    assert isinstance(importer, beangulp.Importer)


def test_cli_grant_and_import_grants(tmp_path, make_books, monkeypatch, clock):
    engine = make_books(ceilings(per_day="50"))
    members(engine, "m1", "m2", active=("m2",))
    books = str(engine.books.root)
    monkeypatch.setattr(cli_import, "open_engine", lambda books, db_url: Engine(books, db_url, clock=clock))
    runner = CliRunner()
    result = runner.invoke(cli_import.grant, ["--books", books, "--holder", "m1", "--sv", "45", "--reason", "task",
                                              "--ref", "t-1", "--date", START.isoformat()])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("granted 45.0000 SV (locked) to m1: E") and "on 2026-03-01" in result.output
    result = runner.invoke(cli_import.grant, ["--books", books, "--holder", "m2", "--sv", "5", "--reason",
                                              "campaign", "--campaign", "spring", "--date", START.isoformat()])
    assert result.exit_code == 0 and "5.0000 SV (active) to m2" in result.output, result.output
    # 45 + 5.0001 = 50.0001 > 50
    result = runner.invoke(cli_import.grant, ["--books", books, "--holder", "m1", "--sv", "5.0001", "--reason",
                                              "task", "--date", START.isoformat()])
    assert result.exit_code == 2 and "refused [grant.holder_day_ceiling]" in result.output, result.output
    result = runner.invoke(cli_import.grant, ["--books", books, "--holder", "m1", "--sv", "1", "--reason",
                                              "campaign"])
    assert result.exit_code == 2 and "refused [grant.campaign_required]" in result.output, result.output

    tasks = write_csv(tmp_path / "tasks.csv", ["ref,date,holder,sv", "t-1,2026-03-01,m1,45", "t-2,,m1,5",
                                               "t-3,,ghost,5"])
    out = tmp_path / "report.json"
    result = runner.invoke(cli_import.import_grants, ["--books", books, str(tasks), "--report", str(out)])
    assert result.exit_code == 1, result.output
    # t-1 is the grant booked above with --ref t-1; t-2 is booked today (2026-03-31: a fresh day)
    assert "booked 1, already booked 1, rejected 1" in result.output
    assert "line 4: t-3: [member.unknown]" in result.output
    assert json.loads(out.read_text("utf-8"))["results"][1]["ref"] == "t-2"
    assert_verifies(engine)
