"""The console script, as an operator runs it: `python -m ledger_service.cli ...` in a subprocess.

`demo` uses the real clock (today in Asia/Shanghai) and simulates the `days` days before
today, so the books here start `days` days ago.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from beancount.parser import parser

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()
DAYS = 3


def cli(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "ledger_service.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def flat(text: str) -> str:
    """Console output with its folding and table borders undone."""
    return re.sub(r"\s+", " ", re.sub(r"[\u2500-\u257f]", " ", text))


@pytest.fixture(scope="module")
def demo_books(tmp_path_factory) -> Path:
    books = tmp_path_factory.mktemp("cli") / "books"
    start = TODAY - timedelta(days=DAYS)
    done = ok(cli("init", "--books", books, "--start", start.isoformat()))
    assert "books initialised" in done.stdout and start.isoformat() in done.stdout
    done = ok(cli("demo", "--books", books, "--members", "40", "--merchants", "4", "--days", str(DAYS)))
    assert "booked:" in done.stdout
    # the simulation says what it assumed (issue 14): the README's "The demo's platform"
    said = flat(done.stdout)
    assert "simulated platform: 40 members, 4 stores, 3 days, 10 orders a day" in said, said
    assert "orders: 0.1 a member a day, amounts log-normal around 80 CNY" in said, said
    booked = re.search(r"booked: (\{[^}]*\})", flat(done.stdout)).group(1)
    assert "'order'" in booked and "'register'" in booked, booked
    return books


@pytest.fixture(scope="module")
def supply_now(demo_books: Path) -> dict:
    return json.loads(ok(cli("supply", "--books", demo_books, "--json")).stdout)


@pytest.fixture(scope="module")
def close_tomorrow(demo_books: Path) -> tuple[subprocess.CompletedProcess, bool]:
    """`close-day --date tomorrow`, and whether the journal stayed byte for byte the same."""
    before = {p: p.read_bytes() for p in demo_books.glob("journal/*/*.beancount")}
    done = cli("close-day", "--books", demo_books, "--date", (TODAY + timedelta(days=1)).isoformat())
    return done, {p: p.read_bytes() for p in demo_books.glob("journal/*/*.beancount")} == before


def test_demo_books_every_day_up_to_yesterday(demo_books: Path):
    files = sorted(p.stem for p in demo_books.glob("journal/*/*.beancount"))
    expected = [(TODAY - timedelta(days=DAYS - i)).isoformat() for i in range(DAYS + 1)]
    assert files == expected, files  # each simulated day, and today's open file with its price
    today_file = next(demo_books.glob(f"journal/*/{TODAY.isoformat()}.beancount"))
    entries, errors, _ = parser.parse_file(str(today_file))
    assert not errors
    assert entries and all(e.meta.get("kind") == "price" for e in entries[:1])
    releases = []
    for path in sorted(demo_books.glob("journal/*/*.beancount")):
        found, errors, _ = parser.parse_file(str(path))
        releases += [e for e in found if e.meta.get("kind") == "release"]
    assert [r.date for r in releases] == [TODAY - timedelta(days=DAYS - i) for i in range(DAYS)]


def test_verify_passes_and_prints_the_supply_report(demo_books: Path, supply_now: dict):
    done = ok(cli("verify", "--books", demo_books))
    out = flat(done.stdout)
    assert "FAULT" not in out
    assert "verified: the books are consistent" in out
    supply = supply_now
    assert re.search(r"cap .*390000\.0000 SP", out), out
    assert f"circulating {supply['circulating']} SP" in out, out
    assert re.search(rf"value of a point on {TODAY.isoformat()} [0-9.]+ CNY/SP", out), out
    assert "database: agrees with the journal" in out


def test_verify_without_the_database_passes(demo_books: Path):
    done = ok(cli("verify", "--books", demo_books, "--no-db"))
    assert "verified: the books are consistent" in flat(done.stdout)
    assert "not checked (--no-db)" in flat(done.stdout)


def test_verify_json_report(demo_books: Path):
    report = json.loads(ok(cli("verify", "--books", demo_books, "--json")).stdout)
    assert report["ok"] is True and report["faults"] == []
    assert report["database_checked"] is True
    assert report["files"] == DAYS + 1 and report["entries"] > 50
    assert report["open_day"] == TODAY.isoformat()


def test_supply_json_is_consistent(demo_books: Path, supply_now: dict):
    supply = supply_now
    n = {k: Decimal(v) for k, v in supply.items() if k not in ("date", "closed")}
    assert n["cap"] == Decimal("390000")
    assert n["circulating"] == n["issued"] - n["burned"] - n["redeemed"]
    assert n["issued"] == n["released"] + n["sold"] <= n["cap"]
    assert 0 < n["released"] <= 500 * DAYS
    assert n["circulating"] > 0 and n["pool_cny"] > 0
    assert supply["date"] == TODAY.isoformat() and supply["closed"] is False
    # The value of a point in force today: pool ÷ circulating at yesterday's close.
    closed = json.loads(ok(cli("supply", "--books", demo_books, "--json",
                               "--date", (TODAY - timedelta(days=1)).isoformat())).stdout)
    assert closed["closed"] is True
    expected = (Decimal(closed["pool_cny"]) / Decimal(closed["circulating"])).quantize(Decimal("0.00000001"))
    assert Decimal(supply["value_cny_per_sp"]) == expected


def test_supply_of_a_past_day_is_labelled_by_that_day(demo_books: Path):
    """`supply --date D` for a closed day: every figure is at the close of D, and the last row says
    so (not "now", issue 14); the open day's report says "now"."""
    day = (TODAY - timedelta(days=2)).isoformat()
    past = flat(ok(cli("supply", "--books", demo_books, "--date", day)).stdout)
    report = json.loads(ok(cli("supply", "--books", demo_books, "--date", day, "--json")).stdout)
    assert f"SP supply at the close of {day}" in past, past
    assert f"value of a point on {day} {report['value_cny_per_sp']} CNY/SP" in past, past
    assert f"pool ÷ circulating at the close of {day} {report['closing_value_cny_per_sp']} CNY/SP" in past, past
    assert "now" not in past, past
    today = flat(ok(cli("supply", "--books", demo_books)).stdout)
    assert f"SP supply as of {TODAY.isoformat()}" in today and "pool ÷ circulating now" in today, today


def test_close_day_refuses_a_future_day(demo_books: Path, close_tomorrow):
    done, unchanged = close_tomorrow
    assert done.returncode == 2, done.stdout + done.stderr
    message = flat(done.stderr)
    day = (TODAY + timedelta(days=1)).isoformat()
    assert "refused" in message and day in message and "not ended" in message, message
    assert "Traceback" not in done.stderr
    assert unchanged


def test_close_day_refuses_today(demo_books: Path):
    """Today has not ended either (the business day of Asia/Shanghai)."""
    done = cli("close-day", "--books", demo_books, "--date", TODAY.isoformat())
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not ended" in flat(done.stderr)


def test_close_day_with_nothing_to_close(demo_books: Path):
    done = ok(cli("close-day", "--books", demo_books))
    assert "nothing to close" in done.stdout


def test_refusal_names_its_rule(close_tomorrow):
    """`_fail` prints `refused [rule] detail`; the rule is the stable code an operator looks up."""
    done, _ = close_tomorrow
    assert done.returncode == 2
    assert "[day.not_ended]" in done.stderr, done.stderr


def test_close_day_rejects_a_malformed_date(demo_books: Path):
    done = cli("close-day", "--books", demo_books, "--date", "2026-13-40")
    assert done.returncode == 2
    assert "YYYY-MM-DD" in done.stderr


def test_verify_of_missing_books_is_a_fault(tmp_path: Path):
    done = cli("verify", "--books", tmp_path / "none", "--no-db")
    assert done.returncode == 1 and "main.beancount" in flat(done.stdout)


@pytest.mark.parametrize("command", ["supply"])
def test_commands_on_a_folder_that_does_not_exist_fail_cleanly(tmp_path: Path, command: str):
    """A mistyped --books: the message the engine has for it ("no books at ...; run
    `ledger-service init`", exit 2), not a SQLAlchemy traceback."""
    done = cli(command, "--books", tmp_path / "none")
    assert "Traceback" not in done.stderr, done.stderr[-800:]
    assert done.returncode == 2 and "init" in done.stderr


@pytest.mark.parametrize("command", ["close-day"])
def test_commands_on_an_empty_folder_write_nothing(tmp_path: Path, command: str):
    """Reading or closing books that do not exist must not leave a database file behind."""
    folder = tmp_path / "empty"
    folder.mkdir()
    done = cli(command, "--books", folder)
    assert done.returncode == 2 and "init" in flat(done.stderr)
    assert sorted(p.name for p in folder.iterdir()) == [], "files created in a folder without books"


def test_init_seed_b_writes_its_rules_into_genesis(tmp_path: Path):
    books = tmp_path / "books"
    start = TODAY - timedelta(days=1)
    ok(cli("init", "--books", books, "--profile", "seed-b", "--start", start.isoformat()))
    genesis_file = books / "journal" / f"{start:%Y-%m}" / f"{start.isoformat()}.beancount"
    entries, errors, _ = parser.parse_file(str(genesis_file))
    assert not errors
    genesis = sorted(entries, key=lambda e: e.meta["lineno"])[0]
    assert genesis.meta["kind"] == "genesis" and genesis.meta["seq"] == "1"
    assert genesis.meta["profile"] == "seed-b"
    assert Decimal(genesis.meta["sp_daily_release"]) == 888
    assert Decimal(genesis.meta["sv_registration_grant"]) == 200
    assert Decimal(genesis.meta["sv_referrer_registration_grant"]) == 200
    # The same books again: refused, nothing overwritten.
    before = genesis_file.read_bytes()
    done = cli("init", "--books", books, "--profile", "seed-a", "--start", start.isoformat())
    assert done.returncode == 2 and "already" in done.stderr
    assert genesis_file.read_bytes() == before


def test_init_refuses_a_start_in_the_future(tmp_path: Path):
    books = tmp_path / "books"
    done = cli("init", "--books", books, "--start", (TODAY + timedelta(days=2)).isoformat())
    assert done.returncode == 2 and "future" in done.stderr
    assert not (books / "main.beancount").exists()


def test_keys_list_help_and_revoke(tmp_path: Path):
    """Issue 14: `keys list` has a header and says each key's role, state, creation and last use;
    `keys --help` describes each subcommand; an unknown key is a plain sentence, exit 2."""
    books = tmp_path / "books"
    ok(cli("init", "--books", books, "--start", (TODAY - timedelta(days=1)).isoformat()))
    assert "no keys yet" in ok(cli("keys", "list", "--books", books)).stdout
    created = ok(cli("keys", "create", "--books", books, "--role", "storefront", "--name", "shop"))
    secret = created.stdout.strip().splitlines()[-1]
    key_id = re.search(r"key ([0-9a-f]{12}) \(storefront\)", created.stdout).group(1)
    ok(cli("keys", "create", "--books", books, "--role", "auditor"))
    lines = ok(cli("keys", "list", "--books", books)).stdout.splitlines()
    assert lines[0].split() == ["id", "role", "state", "created", "(UTC)", "last", "used", "name"], lines
    shop = next(line for line in lines if line.startswith(key_id))
    assert shop.split()[1:3] == ["storefront", "live"] and shop.split()[-2:] == ["never", "shop"], shop
    assert datetime.now(ZoneInfo("UTC")).strftime("%Y-%m-%d") in shop
    # a request with the key records the day it was used
    from ledger_service.api.app import create_app

    app = create_app(books)
    try:
        assert app.test_client().get("/v1/supply", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    finally:
        app.extensions["ledger_engine"].dispose()
    shop = next(line for line in ok(cli("keys", "list", "--books", books)).stdout.splitlines()
                if line.startswith(key_id))
    today_utc = datetime.now(ZoneInfo("UTC")).strftime("%Y-%m-%d")
    assert shop.split()[-2:] == [today_utc, "shop"], shop
    helptext = flat(ok(cli("keys", "--help")).stdout)
    for line in ("create a new key for a role", "list every key", "revoke revoke a key by its id"):
        assert line in helptext.lower(), helptext
    for sub in ("create", "list", "revoke"):
        assert len(flat(ok(cli("keys", sub, "--help")).stdout)) > 80
    done = cli("keys", "revoke", "--books", books, "nosuchkey")
    assert done.returncode == 2 and done.stderr.startswith("error: there is no live key with the id nosuchkey")
    assert "'" not in done.stderr.split("(")[0], done.stderr
    ok(cli("keys", "revoke", "--books", books, key_id))
    assert "revoked" in next(line for line in ok(cli("keys", "list", "--books", books)).stdout.splitlines()
                             if line.startswith(key_id))
    assert cli("keys", "revoke", "--books", books, key_id).returncode == 2  # revoked already: no live key


def test_the_demo_platform_revokes_its_earlier_keys(tmp_path: Path):
    """Issue 14: each start of `make demo` (`platform`) makes two keys and revokes the previous
    start's, so two starts leave two live demo keys, not four."""
    from ledger_service.cli import DEMO_KEY_NAMES, demo_keys
    from ledger_service.engine import Engine
    from ledger_service.store import keys as key_store

    books = tmp_path / "books"
    ok(cli("init", "--books", books))
    engine = Engine(books)
    try:
        with engine.Session() as session, session.begin():
            key_store.create(session, "finance", "someone else")
        first = demo_keys(engine)
        second = demo_keys(engine)
        assert first[2] == 0 and second[2] == 2
        with engine.Session() as session:
            live = [(k.name, k.role) for k in key_store.listing(session) if k.revoked is None]
            assert key_store.role_of(session, first[0]) is None and key_store.role_of(session, second[1]) == "finance"
    finally:
        engine.dispose()
    assert sorted(live) == sorted([("someone else", "finance"), (DEMO_KEY_NAMES["storefront"], "storefront"),
                                   (DEMO_KEY_NAMES["finance"], "finance")])
