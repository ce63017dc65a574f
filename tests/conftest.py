"""Shared fixtures: books on a fixed clock, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from ledger_service import config
from ledger_service.engine import Engine

TODAY = date(2026, 3, 31)
START = date(2026, 3, 1)
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class Clock:
    """A settable 'today' in the platform's time zone."""

    def __init__(self, today: date = TODAY) -> None:
        self.today = today

    def __call__(self) -> date:
        return self.today

    def advance(self, days: int = 1) -> date:
        self.today += timedelta(days=days)
        return self.today


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def params() -> config.Params:
    return config.load("seed-a")


@pytest.fixture
def make_books(tmp_path: Path, clock: Clock):
    """make_books(params=None, start=START, db_url=None) -> Engine on fresh books in tmp_path."""
    engines: list[Engine] = []

    def make(params: config.Params | None = None, start: date = START, db_url: str | None = None,
             name: str = "books") -> Engine:
        engine = Engine.init(tmp_path / name, params or config.load("seed-a"), start=start, db_url=db_url, clock=clock)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def engine(make_books) -> Engine:
    return make_books()


def _pg_admin():
    import psycopg

    base = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(base, autocommit=True, connect_timeout=3)


def postgres_available() -> bool:
    try:
        with _pg_admin():
            return True
    except Exception:
        return False


def scratch_pg_database():
    """A fresh, empty PostgreSQL database, dropped afterwards (skips when the server is unreachable)."""
    if not postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database for one test (skipped when the server is unreachable)."""
    yield from scratch_pg_database()


@pytest.fixture
def second_pg_url():
    """Another fresh, empty PostgreSQL database for the same test."""
    yield from scratch_pg_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request):
    """Parametrises a test over the embedded default and PostgreSQL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_url")
