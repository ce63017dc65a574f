"""Issue 10 §4: an Idempotency-Key is scoped to the API key that sent it (as Stripe scopes
keys to the account).

- two storefront keys sending the same Idempotency-Key with different bodies are two
  requests: both book (201), and each key's retry replays its own first response only;
- the same body under two API keys is two requests too: the second is judged by the rules
  (a duplicate member id is a 409 `holder.duplicate_id`), never replayed from the other key;
- Alembic revision 0002 adds the scope column `api_key_id` (primary key (api_key_id, key))
  on SQLite and PostgreSQL, keeping the rows written before it under the placeholder scope
  `legacy`, which still answers any key (as every row did before the upgrade);
- the models and the migrations agree (autogenerate finds nothing to change), and an engine
  opening books of an older revision upgrades them first.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from ledger_service.engine import Engine
from ledger_service.store import migrate
from ledger_service.store.db import make_engine
from ledger_service.store.models import Base, IdempotencyRow

from api_helpers import assert_problem, make_api, new_key, ok, post


@pytest.fixture
def api_db(tmp_path, clock, db_url):
    made = make_api(tmp_path / "books", clock, db_url=db_url)
    yield made
    made.engine.dispose()


def test_same_key_from_two_storefront_clients_books_both(api_db):
    api = api_db
    _, shop_a = new_key(api.engine, "storefront", "shop A")
    _, shop_b = new_key(api.engine, "storefront", "shop B")
    first_a = post(api.client, "/v1/members", {"id": "from-a"}, shop_a, idem="signup-1")
    first_b = post(api.client, "/v1/members", {"id": "from-b"}, shop_b, idem="signup-1")
    body_a, body_b = ok(first_a), ok(first_b)
    assert "Idempotent-Replayed" not in first_a.headers and "Idempotent-Replayed" not in first_b.headers
    assert body_a["id"] != body_b["id"]
    ok(api.get("/v1/holders/from-a"), 200)
    ok(api.get("/v1/holders/from-b"), 200)
    # each client's retry replays its own first response, never the other's
    again_a = post(api.client, "/v1/members", {"id": "from-a"}, shop_a, idem="signup-1")
    again_b = post(api.client, "/v1/members", {"id": "from-b"}, shop_b, idem="signup-1")
    assert again_a.status_code == 201 and again_a.headers.get("Idempotent-Replayed") == "true"
    assert again_b.status_code == 201 and again_b.headers.get("Idempotent-Replayed") == "true"
    assert again_a.get_json() == body_a and again_b.get_json() == body_b
    # within one client the key stays bound to its first body
    assert_problem(post(api.client, "/v1/members", {"id": "from-b"}, shop_a, idem="signup-1"), 409,
                   "idempotency.key_reused", "Idempotency-Key")
    head = api.engine.head()["seq"]
    with api.engine.Session() as session:
        rows = session.execute(select(IdempotencyRow.api_key_id, IdempotencyRow.key)
                               .where(IdempotencyRow.key == "signup-1")).all()
    assert len(rows) == 2 and len({r.api_key_id for r in rows}) == 2
    assert api.engine.head()["seq"] == head


def test_same_body_under_another_key_is_a_new_request(api_db):
    api = api_db
    _, shop_a = new_key(api.engine, "storefront", "shop A")
    _, shop_b = new_key(api.engine, "storefront", "shop B")
    ok(post(api.client, "/v1/members", {"id": "dup"}, shop_a, idem="same"))
    head = api.engine.head()
    other = post(api.client, "/v1/members", {"id": "dup"}, shop_b, idem="same")
    assert "Idempotent-Replayed" not in other.headers
    assert_problem(other, 409, "holder.duplicate_id", "member")
    assert api.engine.head() == head
    # a refused request stores nothing: B may retry the key with another body
    ok(post(api.client, "/v1/members", {"id": "dup-b"}, shop_b, idem="same"))


def test_a_revoked_then_new_key_is_another_client(api_db):
    api = api_db
    key_id, old = new_key(api.engine, "storefront", "rotated")
    ok(post(api.client, "/v1/members", {"id": "r1"}, old, idem="rot"))
    api.revoke(key_id)
    _, new = new_key(api.engine, "storefront", "rotated")
    ok(post(api.client, "/v1/members", {"id": "r2"}, new, idem="rot"))


def test_migration_0002_keeps_old_rows_under_the_legacy_scope(make_books, db_url):
    engine = make_books(db_url=db_url)
    root = engine.books.root
    url = engine.url
    engine.dispose()
    db = make_engine(url)
    cfg = migrate.config()
    with db.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001")
    with db.begin() as connection:  # a row as revision 0001 wrote it
        connection.exec_driver_sql(
            "INSERT INTO idempotency_keys (key, request_hash, status, response, created) VALUES (?, ?, ?, ?, ?)"
            if url.startswith("sqlite") else
            "INSERT INTO idempotency_keys (key, request_hash, status, response, created) VALUES (%s, %s, %s, %s, %s)",
            ("old-key", "0" * 64, 201, json.dumps({"id": "E000000001"}).encode(), datetime(2026, 3, 1)))
    db.dispose()
    # the engine opening the books upgrades them to the newest revision first
    reopened = Engine(root, db_url)
    try:
        with reopened.Session() as session:
            rows = session.execute(select(IdempotencyRow.api_key_id, IdempotencyRow.key)).all()
        assert [(r.api_key_id, r.key) for r in rows] == [("legacy", "old-key")]
        with reopened.db.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == migrate.head()
    finally:
        reopened.dispose()


def test_legacy_rows_still_answer_any_key(tmp_path, clock, db_url):
    api = make_api(tmp_path / "books", clock, db_url=db_url)
    try:
        first = ok(api.post("/v1/members", {"id": "before-upgrade"}, idem="pre-upgrade"))
        with api.engine.Session() as session, session.begin():  # as the upgrade leaves a pre-0002 row
            row = session.scalars(select(IdempotencyRow).where(IdempotencyRow.key == "pre-upgrade")).one()
            row.api_key_id = "legacy"
        _, other = new_key(api.engine, "storefront", "other")
        again = post(api.client, "/v1/members", {"id": "before-upgrade"}, other, idem="pre-upgrade")
        assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
        assert again.get_json() == first
        assert_problem(post(api.client, "/v1/members", {"id": "x"}, other, idem="pre-upgrade"), 409,
                       "idempotency.key_reused")
    finally:
        api.engine.dispose()


def test_models_and_migrations_agree(make_books, db_url):
    engine = make_books(db_url=db_url)
    with engine.db.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], diff
