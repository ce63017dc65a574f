"""Idempotency records expire (issue 17 §3): kept `retention_days` (BOOKS/service.toml or
$LEDGER_IDEMPOTENCY_RETENTION_DAYS, default 7), deleted in the commit that closes a day; a replay
after that is a new request. A booking's record keeps its event id, not the answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from ledger_service import config
from ledger_service.engine import Engine, Idempotency, IdempotentReplay
from ledger_service.errors import Refusal
from ledger_service.rules.events import Register
from ledger_service.store.models import IdempotencyRow


def _age(engine: Engine, key: str, days: float) -> None:
    with engine.Session() as session, session.begin():
        session.execute(update(IdempotencyRow).where(IdempotencyRow.key == key).values(
            created=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=days)))


def _keys(engine: Engine) -> set[str]:
    with engine.Session() as session:
        return set(session.scalars(select(IdempotencyRow.key)))


def test_a_key_older_than_the_retention_is_gone_after_a_close(engine, clock):
    assert engine.idempotency_retention == timedelta(days=7)
    old = engine.submit(Register("alice"), idempotency=Idempotency("k-old", "h-old", "client"))
    new = engine.submit(Register("bob"), idempotency=Idempotency("k-new", "h-new", "client"))
    _age(engine, "k-old", 7.01)
    _age(engine, "k-new", 6.9)
    with pytest.raises(IdempotentReplay):  # before a close, even an old key still replays
        engine.submit(Register("alice"), idempotency=Idempotency("k-old", "h-old", "client"))
    clock.advance()
    engine.close_days()
    assert _keys(engine) == {"k-new"}
    with pytest.raises(IdempotentReplay) as replay:  # the young one still answers as the first time
        engine.submit(Register("bob"), idempotency=Idempotency("k-new", "h-new", "client"))
    assert json.loads(replay.value.body) == new.to_json()
    # after expiry the same key and body are a new request: here refused (alice exists), not replayed
    with pytest.raises(Refusal):
        engine.submit(Register("alice"), idempotency=Idempotency("k-old", "h-old", "client"))
    assert old.event_id is not None


def test_a_booking_keeps_its_event_id_not_its_answer(engine):
    booked = engine.submit(Register("carol"), idempotency=Idempotency("k1", "h1", "client"))
    with engine.Session() as session:
        row = session.scalars(select(IdempotencyRow)).one()
    assert (row.event_id, row.response) == (booked.event_id, b"")
    with pytest.raises(IdempotentReplay) as replay:
        engine.submit(Register("carol"), idempotency=Idempotency("k1", "h1", "client"))
    assert json.loads(replay.value.body) == booked.to_json()
    assert replay.value.status == 201


def test_a_close_booked_with_an_order_prunes_too(make_books, clock, monkeypatch):
    monkeypatch.setenv(config.RETENTION_ENV, "1")
    engine = make_books()
    assert engine.idempotency_retention == timedelta(days=1)
    engine.submit(Register("dave"), idempotency=Idempotency("k-d", "h", "client"))
    _age(engine, "k-d", 1.5)
    clock.advance()
    engine.submit(Register("erin"))  # its commit closes the day before
    assert _keys(engine) == set()


def test_the_service_settings(tmp_path):
    assert config.load_service(tmp_path, {}).idempotency_retention_days == 7
    (tmp_path / config.SERVICE_FILE).write_text("[idempotency]\nretention_days = 30\n")
    assert config.load_service(tmp_path, {}).idempotency_retention_days == 30
    assert config.load_service(tmp_path, {config.RETENTION_ENV: "2"}).idempotency_retention_days == 2
    for bad in ("0", "-1", "1.5", "seven"):
        with pytest.raises(config.ConfigError, match=config.RETENTION_ENV):
            config.load_service(tmp_path, {config.RETENTION_ENV: bad})
    (tmp_path / config.SERVICE_FILE).write_text("[idempotency]\nretention_days = true\n")
    with pytest.raises(config.ConfigError, match="retention_days"):
        config.load_service(tmp_path, {})
