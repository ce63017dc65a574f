"""`verify` with a database checks every column the service reads or repairs the journal from
(issue 10 §2), and repair writes only text that hashes to the chain the database records.

One set of books is built per database (SQLite, PostgreSQL) through the API, with every kind
of event: members, packs (a partner), a role, a store with a store referrer, deposits (a
merchant's and the platform's), orders (one reversed), a transfer, payouts (settled,
cancelled, pending), a redemption, SV grants (a task, a campaign), two closed days (the first ends an epoch) and an open
day. Each test works on a copy (a copied books folder; on PostgreSQL a database cloned from
the built one).

The column test enumerates the tables and columns from `Base.metadata` (a column added
later is tried too): for each column not listed in NOT_DERIVABLE it edits one row to another
plausible value and asserts that `verify` fails with a fault naming the table, the column
and the row's key (`[db.<table>.<column>] <key column> <key>: ...`).
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Date, Integer, create_engine, select, update

from api_helpers import make_api
from booking_helpers import custom
from conftest import PG_URL, Clock, _pg_admin, postgres_available
from ledger_service import config
from ledger_service.audit.replay import Replay
from ledger_service.audit.verify import verify
from ledger_service.engine import Engine
from ledger_service.entries import Price, Transaction, entry_hash, render, with_meta
from ledger_service.errors import JournalFault
from ledger_service.journal import Books, journal_directives
from ledger_service.state import supply_of
from ledger_service.store.db import database_url, parse_entry_text
from ledger_service.store.models import Base, DecimalText

D = Decimal
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
TODAY = date(2026, 3, 10)

# Columns `verify` cannot derive from the journal, with the reason. "table.*" is the whole table.
NOT_DERIVABLE = {
    "api_keys.*": "API keys are credentials of the service, not books: the journal holds no key, "
                  "its role, name, hash or timestamps",
    "idempotency_keys.key": "the Idempotency-Key header is chosen by the client and never written to the journal",
    "idempotency_keys.request_hash": "the hash of the HTTP request (method, path, body): the journal keeps the "
                                     "event's validated fields, not the request's bytes",
    "idempotency_keys.created": "the wall-clock time the request arrived: not in the journal",
    "idempotency_keys.api_key_id": "the API key that sent the request (idempotency is scoped per key): "
                                   "a credential's id, not in the journal",
}


def not_derivable(table: str, column: str) -> bool:
    return f"{table}.*" in NOT_DERIVABLE or f"{table}.{column}" in NOT_DERIVABLE


CHECKED = [(t.name, c.name) for t in Base.metadata.sorted_tables for c in t.columns if not not_derivable(t.name, c.name)]


# -- the books -------------------------------------------------------------------------------


def book_everything(root: Path, db_url: str | None) -> None:
    """Every kind of event, through the API with fixed Idempotency-Keys (k<nnn>, events first)."""
    params = custom(config.load("seed-a"), sp_initial_value=D("2"), sp_daily_release=D("5000"))
    api = make_api(root, Clock(TODAY), params=params, db_url=db_url, start=D1)
    n = iter(range(1, 1000))

    def post(path, body, role="storefront", day=None):
        if body is not None and day is not None:
            body = {**body, "date": day.isoformat()}
        response = api.post(path, body, role=role, idem=f"k{next(n):03d}")
        assert response.status_code == 201, (path, response.get_json())
        return response.get_json()

    # day 1: two members whose active SV the first release converts entirely (the epoch ends)
    post("/v1/members", {"id": "a1"}, day=D1)
    post("/v1/members/a1/packs", {"kind": "activation"}, day=D1)
    post("/v1/members", {"id": "b1"}, day=D1)
    post("/v1/members/b1/packs", {"kind": "partner", "region": "441900"}, day=D1)
    post("/v1/deposits", {"platform": True, "amount_cny": "2949.00"}, role="finance", day=D1)
    post(f"/v1/days/{D1}/close", None, role="finance")
    # day 2: everything else
    post("/v1/members", {"id": "c1", "referrer": "a1", "region": "440300"}, day=D2)
    post("/v1/members/c1/packs", {"kind": "activation"}, day=D2)
    post("/v1/members/a1/role", {"role": "vip"}, role="finance", day=D2)
    post("/v1/merchants", {"id": "s1", "owner": "a1", "region": "441900", "channel": "offline",
                           "rebate_rate": "0.10", "referrer": "c1"}, day=D2)
    post("/v1/deposits", {"merchant": "s1", "amount_cny": "1000.00"}, role="finance", day=D2)
    post("/v1/orders", {"id": "o1", "buyer": "c1", "merchant": "s1", "amount_cny": "500.00"}, day=D2)
    post("/v1/orders", {"id": "o2", "buyer": "c1", "merchant": "s1", "amount_cny": "300.00"}, day=D2)
    post("/v1/transfers", {"from": "s1", "to": "c1", "sp": "1.0000"}, day=D2)
    settled = post("/v1/payouts", {"holder": "a1", "sp": "2.0000"}, day=D2)
    post(f"/v1/payouts/{settled['id']}/settle", {"bank_reference": "ICBC-2026-0001"}, role="finance", day=D2)
    cancelled = post("/v1/payouts", {"holder": "b1", "sp": "1.0000"}, day=D2)
    post(f"/v1/payouts/{cancelled['id']}/cancel", {}, role="finance", day=D2)
    post("/v1/payouts", {"holder": "c1", "sp": "1.0000"}, day=D2)
    post("/v1/redemptions", {"holder": "b1", "sp": "1.0000", "goods": "tea set"}, day=D2)
    post("/v1/orders/o1/reverse", {}, role="finance", day=D2)
    post("/v1/grants", {"holder": "c1", "sv": "20.0000", "reason": "task", "ref": "t1"}, role="finance", day=D2)
    post("/v1/grants", {"holder": "a1", "sv": "5", "reason": "campaign", "campaign": "spring"}, role="finance",
         day=D2)
    post(f"/v1/days/{D2}/close", None, role="finance")
    # day 3, open
    post("/v1/members", {"id": "d1", "referrer": "c1"}, day=D3)
    post("/v1/grants", {"holder": "d1", "sv": "10", "reason": "campaign", "campaign": "spring"}, role="finance",
         day=D3)  # d1 is inactive: locked SV
    post("/v1/orders", {"id": "o3", "buyer": "c1", "merchant": "s1", "amount_cny": "100.00"}, day=D3)
    api.engine.dispose()


def _pg_clone_url(name: str) -> str:
    base = PG_URL.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def built(request, tmp_path_factory):
    """(books folder, database name or None) of the books built once per database."""
    root = tmp_path_factory.mktemp(f"verify-db-{request.param}") / "books"
    if request.param == "sqlite":
        book_everything(root, None)
        yield root, None
        return
    if not postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    name = f"ledger_vdb_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        book_everything(root, _pg_clone_url(name))
        yield root, name
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def books(built, tmp_path):
    """(books folder, database URL or None) of a fresh copy of the built books."""
    source, pg_name = built
    root = tmp_path / "books"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns(".lock"))
    if pg_name is None:
        yield root, None
        return
    clone = f"ledger_vdbc_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{clone}" TEMPLATE "{pg_name}"')
    try:
        yield root, _pg_clone_url(clone)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{clone}" WITH (FORCE)')


def db_engine(root: Path, url: str | None):
    return create_engine(database_url(root, url))


def faults(report) -> list[str]:
    return [str(f) for f in report.faults]


# -- editing one column of one row ---------------------------------------------------------------


def _flip_hex(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def _edit_text(text: str, row) -> str:
    """An entry's text with its amount changed (what a forger of the repair source would write)."""
    changed = text.replace('amount_cny: "500.00"', 'amount_cny: "5000.00"', 1)
    assert changed != text, text
    return changed


def _edit_rules(text: str, row) -> str:
    rules = json.loads(text)
    rules["sp_daily_release"] = "9999"
    return json.dumps(rules, sort_keys=True)


def _edit_supply(text: str, row) -> str:
    supply = json.loads(text)
    supply["pool_cny"] = "90.00" if supply["pool_cny"] != "90.00" else "0.00"
    return json.dumps(supply)


def _edit_response(body: bytes, row) -> bytes:
    if not body:  # a booking's row keeps its event id alone (revision 0006): any response is a forgery
        return json.dumps({"id": row["event_id"]}).encode("utf-8")
    data = json.loads(body)
    data["hash"] = _flip_hex(data["hash"])
    return json.dumps(data).encode("utf-8")


SPECIAL = {
    ("events", "text"): _edit_text,
    ("events", "kind"): lambda v, row: "transfer",
    ("events", "id"): lambda v, row: "E000000999",
    ("events", "order_id"): lambda v, row: "o9",
    ("events", "reversed_by"): lambda v, row: "E000000998",
    ("ledger", "rules_json"): _edit_rules,
    ("days", "supply_json"): _edit_supply,
    ("idempotency_keys", "response"): _edit_response,
    ("idempotency_keys", "status"): lambda v, row: 200,
    ("payouts", "status"): lambda v, row: "cancelled" if v != "cancelled" else "settled",
    ("holders", "role"): lambda v, row: "store_owner",
    ("holders", "kind"): lambda v, row: "merchant" if v != "merchant" else "member",
    ("holders", "channel"): lambda v, row: "online" if v != "online" else "offline",
}

# The row edited in each table: (column, value) to pick it, else the first row (in key order)
# whose edited column is not empty.
PICK = {
    "events": ("order_id", "o1"),  # an order, reversed: every column set
    "idempotency_keys": ("key", "k012"),  # the response of the order o1
}

# The key column a fault names, where the primary key has several (the API key's id is not
# derivable: the Idempotency-Key names the row).
LABEL_COLUMN = {"idempotency_keys": "key"}


def new_value(table: str, column, value, row):
    special = SPECIAL.get((table, column.name))
    if special is not None:
        return special(value, row)
    key_like = column.primary_key or column.unique
    if value is None:
        if isinstance(column.type, DecimalText):
            return D("1.00")
        if isinstance(column.type, Date):
            return D1
        if isinstance(column.type, Integer):
            return 1
        return "zz1"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + (1000 if key_like else 1)
    if isinstance(value, Decimal):
        return value + 1
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, date):
        return value + timedelta(days=1000 if key_like else 1)
    if isinstance(value, str):
        if len(value) == 64 and all(ch in "0123456789abcdef" for ch in value):
            return _flip_hex(value)
        if value.isdigit():
            return str(int(value) + 1).zfill(len(value))
        return value + "x"
    raise AssertionError(f"no edit for {table}.{column.name} = {value!r}")


def edit_one(root: Path, url: str | None, table_name: str, column_name: str) -> tuple[str, object, object]:
    """Edit `table.column` of one row; returns (the row's key label, old value, new value)."""
    table = Base.metadata.tables[table_name]
    column = table.c[column_name]
    pk = list(table.primary_key.columns)
    engine = db_engine(root, url)
    try:
        with engine.begin() as conn:
            query = select(table).order_by(*pk)
            pick = PICK.get(table_name)
            if pick is not None:
                query = query.where(table.c[pick[0]] == pick[1])
            rows = conn.execute(query).all()
            assert rows, f"no row in {table_name} to edit"
            row = next((r for r in rows if r._mapping[column_name] is not None), rows[0])
            old = row._mapping[column_name]
            new = new_value(table_name, column, old, row._mapping)
            assert new != old
            where = [c == row._mapping[c.name] for c in pk]
            done = conn.execute(update(table).where(*where).values({column_name: new}))
            assert done.rowcount == 1
            named = LABEL_COLUMN.get(table_name, pk[0].name)
            key = named, row._mapping[named]
    finally:
        engine.dispose()
    return f"{key[0]} {_label(key[1])}", old, new


def _label(value) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# -- the tests -------------------------------------------------------------------------------------


def test_the_books_hold_a_row_in_every_checked_table(books):
    root, url = books
    engine = db_engine(root, url)
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                count = len(conn.execute(select(table)).all())
                assert count > 0, f"the test books leave {table.name} empty"
    finally:
        engine.dispose()


def test_untouched_books_verify(books):
    root, url = books
    report = verify(root, url)
    assert report.ok, faults(report)
    assert report.db_checked


@pytest.mark.parametrize(("table", "column"), CHECKED, ids=[f"{t}.{c}" for t, c in CHECKED])
def test_a_single_column_edit_is_named(books, table, column):
    root, url = books
    key, old, new = edit_one(root, url, table, column)
    report = verify(root, url)
    assert not report.ok, f"verify passed with {table}.{column} of {key} changed from {old!r} to {new!r}"
    rule = f"db.{table}.{column}"
    named = [f for f in report.faults if f.rule == rule]
    assert named, f"no [{rule}] fault: {faults(report)[:8]}"
    labels = {key}
    if Base.metadata.tables[table].c[column].primary_key:
        labels.add(f"{column} {_label(new)}")  # a changed key: the row is found under its new key
    assert any(label in str(f) for f in named for label in labels), (labels, [str(f) for f in named])


def test_excluded_columns_exist_or_are_expected(books):
    """Every exclusion names a real table (a stale exclusion would hide nothing, but mislead)."""
    tables = Base.metadata.tables
    for name in NOT_DERIVABLE:
        table, column = name.split(".")
        assert table in tables, name
        assert column == "*" or column in tables[table].c or (table, column) == ("idempotency_keys", "api_key_id"), name


def test_duplicate_order_id_after_an_edit_is_reported(books):
    """The issue's case: order_id o1 changed in the database, so o1 books a second time over the API."""
    root, url = books
    key, _, _ = edit_one(root, url, "events", "order_id")
    report = verify(root, url)
    assert any(f.rule == "db.events.order_id" and key in str(f) and "'o9'" in str(f) and "'o1'" in str(f)
               for f in report.faults), faults(report)


def test_a_same_length_text_edit_is_named(books):
    """The text repair would write back, changed without changing its length (500.00 -> 900.00)."""
    root, url = books
    table = Base.metadata.tables["events"]
    engine = db_engine(root, url)
    try:
        with engine.begin() as conn:
            row = conn.execute(select(table).where(table.c.order_id == "o1")).first()
            forged = row.text.replace('amount_cny: "500.00"', 'amount_cny: "900.00"')
            assert forged != row.text and len(forged) == len(row.text)
            conn.execute(update(table).where(table.c.seq == row.seq).values(text=forged))
    finally:
        engine.dispose()
    report = verify(root, url)
    assert any(f.rule == "db.events.text" and f"seq {row.seq}" in str(f) and "900.00" in str(f)
               for f in report.faults), faults(report)
    assert not any(f.rule in ("db.events.length", "db.events.offset") for f in report.faults), faults(report)


def test_a_close_response_edit_is_named(books):
    """The stored response of a day close lists each release: checked against the journal too."""
    root, url = books
    engine = db_engine(root, url)
    table = Base.metadata.tables["idempotency_keys"]
    try:
        with engine.begin() as conn:
            rows = [r for r in conn.execute(select(table.c.key, table.c.response)) if b'"closed"' in r.response]
            assert rows
            key, body = rows[0]
            data = json.loads(body)
            data["closed"][0]["released_sp"] = "1.0000"
            conn.execute(update(table).where(table.c.key == key).values(response=json.dumps(data).encode()))
    finally:
        engine.dispose()
    report = verify(root, url)
    assert any(f.rule == "db.idempotency_keys.response" and f"key {key}" in str(f) for f in report.faults), \
        faults(report)


# -- what the API serves from derived rows ---------------------------------------------------------------


def journal_supply_at_close(root: Path) -> dict[str, dict]:
    """The supply report at each close, from the journal alone (replayed here)."""
    out: dict[str, dict] = {}
    replay = Replay()
    pending: dict | None = None
    for _path, directive, errors in journal_directives(Books(root)):
        assert not errors
        if directive is None:
            continue
        replay.feed(directive)
        entry = replay.entry
        if pending is not None and isinstance(entry, Price):
            pending["closing_value_cny_per_sp"] = format(entry.number, "f")
            pending = None
        if isinstance(entry, Transaction) and entry.kind == "release":
            supply = supply_of(replay.state.g, replay.params.sp_cap)
            pending = out[entry.date.isoformat()] = {
                k: format(v.quantize(D("0.01") if k == "pool_cny" else D("0.0001")), "f") for k, v in supply.items()}
            pending["value_cny_per_sp"] = entry.get("value")
    replay.close()
    return out


def test_supply_of_a_closed_day_is_what_the_journal_gives_and_an_edit_is_caught(books):
    from api_helpers import new_key
    from ledger_service.api.app import create_app

    root, url = books
    expected = journal_supply_at_close(root)
    assert set(expected) == {D1.isoformat(), D2.isoformat()}
    engine = Engine(root, url, clock=Clock(TODAY))
    try:
        app = create_app(root, engine=engine)
        client = app.test_client()
        _, secret = new_key(engine, "auditor")
        auth = {"Authorization": f"Bearer {secret}"}
        for day, supply in expected.items():
            served = client.get(f"/v1/supply?date={day}", headers=auth).get_json()
            assert {k: served[k] for k in supply} == supply, day
        # the case: a pool served as 90.00 CNY that the journal does not give
        assert expected[D1.isoformat()]["pool_cny"] != "90.00"
        edit_one(root, url, "days", "supply_json")
        served = client.get(f"/v1/supply?date={D1}", headers=auth).get_json()
        assert served["pool_cny"] == "90.00"
    finally:
        engine.dispose()
    report = verify(root, url)
    assert any(f.rule == "db.days.supply_json" and f"day {D1}" in str(f) and "pool_cny" in str(f)
               for f in report.faults), faults(report)


# -- repair writes only text that hashes to the database's chain ------------------------------------------


def _last_row(root: Path, url: str | None):
    table = Base.metadata.tables["events"]
    engine = db_engine(root, url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(table).order_by(table.c.seq.desc()).limit(1)).first()
    finally:
        engine.dispose()


def _set_last_row(root: Path, url: str | None, seq: int, **values) -> None:
    table = Base.metadata.tables["events"]
    engine = db_engine(root, url)
    try:
        with engine.begin() as conn:
            conn.execute(update(table).where(table.c.seq == seq).values(values))
    finally:
        engine.dispose()


def _cut_tail(root: Path, row) -> dict[str, bytes]:
    """Cut the journal file at the last entry (a crash between commit and append); the journal's bytes."""
    Books(root).truncate(row.file, row.offset)
    return {str(p): p.read_bytes() for p in sorted(root.glob("journal/*/*.beancount"))}


def test_repair_refuses_a_row_text_that_does_not_hash_to_its_row(books):
    root, url = books
    last = _last_row(root, url)
    assert last.kind == "order"
    forged = last.text.replace('amount_cny: "100.00"', 'amount_cny: "900.00"')
    assert forged != last.text
    _set_last_row(root, url, last.seq, text=forged)
    before = _cut_tail(root, last)
    with pytest.raises(JournalFault) as fault:
        Engine(root, url, clock=Clock(TODAY))
    assert f"seq {last.seq}" in str(fault.value)
    after = {str(p): p.read_bytes() for p in sorted(root.glob("journal/*/*.beancount"))}
    assert after == before, "repair wrote text the database's chain does not vouch for"


def test_repair_refuses_a_rehashed_row_off_the_recorded_chain(books):
    """A forger who rewrites the text and its hash in the row: the ledger head no longer matches."""
    root, url = books
    last = _last_row(root, url)
    entry = parse_entry_text(last.text)
    bare = tuple((k, v) for k, v in entry.meta if k not in ("prev", "hash"))
    bare = tuple((k, "900.00" if k == "amount_cny" else v) for k, v in bare)
    forged = Transaction(entry.date, entry.payee, entry.narration, bare, entry.postings)
    digest = entry_hash(forged, last.prev)
    text = render(with_meta(forged, [("prev", last.prev), ("hash", digest)]))
    _set_last_row(root, url, last.seq, text=text, hash=digest, length=len(text.encode()))
    before = _cut_tail(root, last)
    with pytest.raises(JournalFault):
        Engine(root, url, clock=Clock(TODAY))
    after = {str(p): p.read_bytes() for p in sorted(root.glob("journal/*/*.beancount"))}
    assert after == before


def test_repair_rewrites_an_honest_tail(books):
    """The check passes the rows the engine wrote: the cut tail is rewritten and verifies."""
    root, url = books
    last = _last_row(root, url)
    _cut_tail(root, last)
    engine = Engine(root, url, clock=Clock(TODAY))
    engine.dispose()
    assert (root / last.file).read_bytes().endswith(last.text.encode("utf-8"))
    report = verify(root, url)
    assert report.ok, faults(report)
