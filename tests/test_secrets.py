"""Issue 10 §4 and §6: secrets, permissions and the auditor's own tools.

- a database URL is never shown or stored with its password (`store.db.safe_url`, as
  SQLAlchemy's `render_as_string(hide_password=True)`): not in any CLI output, not in any file
  of the books (`ledger/verified.json` included), not in a log, not in an API answer — on the
  happy path and when the database is unreachable;
- the books folder is created 0700 and every file in it is 0600 (journal, database, keys,
  ledger tier, locks, the verify record), whatever the umask; `init` says so;
- Beancount's pickle cache: `bean-check -C` never loads a planted `.picklecache` (plain
  `bean-check` does, and runs its code); `verify` warns about any pickle cache in the books;
  every recipe in the README and docs turns the cache off;
- `verify` (and `keys`, `supply`) on books whose database is not in the books folder (PostgreSQL
  books, no `--db`) create no empty `ledger.sqlite`: they say no database was found.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import make_url

from ledger_service import views
from ledger_service.audit.verify import verify
from ledger_service.engine import Engine
from ledger_service.rules.events import BuyPack, Register
from ledger_service.store import db as store_db
from ledger_service.store.db import DB_FILENAME

from api_helpers import make_api, ok

REPO = Path(__file__).resolve().parent.parent
TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()
PASSWORD = "S3cretPW" + uuid.uuid4().hex[:8]


def with_password(url: str, password: str = PASSWORD) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, env: dict | None = None, umask: int = 0o022, timeout: int = 180) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "ledger_service.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**base, **(env or {})}, umask=umask)


def done_ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def files_holding(root: Path, secret: str) -> list[str]:
    """Every file under `root` whose bytes contain `secret`."""
    needle = secret.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# -- masking ------------------------------------------------------------------------------------


def test_safe_url_masks_every_password():
    safe_url = store_db.safe_url  # (looked up here: before the fix, the module had none)
    assert safe_url("postgresql+psycopg://app:hunter2@db.example:5432/ledger") == \
        "postgresql+psycopg://app:***@db.example:5432/ledger"
    assert "hunter2" not in safe_url("postgresql://app:hunter2@db/ledger?sslmode=require&password=hunter2")
    assert safe_url("postgresql+psycopg://postgres@127.0.0.1:5432/test") == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert safe_url("sqlite:////books/ledger.sqlite") == "sqlite:////books/ledger.sqlite"
    # a string SQLAlchemy cannot parse is masked all the same
    assert "hunter2" not in safe_url("postgresql://app:hunter2@db:notaport:5/x")
    assert "hunter2" not in safe_url("not a url app:hunter2@")


@pytest.mark.postgres
def test_no_password_in_any_output_file_or_record(tmp_path, pg_url, second_pg_url):
    url, other = with_password(pg_url), with_password(second_pg_url)
    books = tmp_path / "books"
    outputs = [
        done_ok(cli("demo", "--books", books, "--db", url, "--members", "20", "--merchants", "2", "--days", "2")),
        done_ok(cli("close-day", "--books", books, "--db", url)),
        done_ok(cli("supply", "--books", books, "--db", url, "--json")),
        done_ok(cli("keys", "create", "--books", books, "--db", url, "--role", "storefront")),
        done_ok(cli("keys", "list", "--books", books, "--db", url)),
        done_ok(cli("verify", "--books", books, "--db", url)),
        done_ok(cli("verify", "--books", books, "--json", env={"DATABASE_URL": url})),
    ]
    # a database that does not hold these books: faults name the database, never its password
    wrong = cli("verify", "--books", books, "--db", other)
    assert wrong.returncode == 1, (wrong.stdout, wrong.stderr)
    assert "db.missing" in wrong.stdout and "postgres:***@" in wrong.stdout, wrong.stdout
    record = json.loads((books / "ledger" / "verified.json").read_text(encoding="utf-8"))
    assert not record["ok"] and any("postgres:***@" in f for f in record["faults"]), record["faults"]
    outputs.append(wrong)
    outputs.append(cli("verify", "--books", books, "--json", "--db", other))
    for done in outputs:
        assert PASSWORD not in done.stdout + done.stderr, (done.args, done.stdout[-2000:], done.stderr[-2000:])
    assert files_holding(books, PASSWORD) == []


@pytest.mark.postgres
def test_no_password_in_the_api_its_logs_and_engine_errors(tmp_path, clock, pg_url, second_pg_url, caplog):
    url = with_password(pg_url)
    caplog.set_level(logging.DEBUG)
    api = make_api(tmp_path / "books", clock, db_url=url)
    try:
        answers = [ok(api.post("/v1/members", {"id": "m1"})),
                   ok(api.post("/v1/members/m1/packs", {"kind": "activation"})),
                   ok(api.get("/v1/supply"), 200), ok(api.client.get("/health"), 200)]
        refused = api.post("/v1/members", {"id": "m1"})
        assert refused.status_code == 409
        text = json.dumps(answers) + refused.get_data(as_text=True)
        assert PASSWORD not in text
    finally:
        api.engine.dispose()
    with pytest.raises(FileNotFoundError) as raised:  # a database that holds no books
        Engine(tmp_path / "books", with_password(second_pg_url))
    assert PASSWORD not in str(raised.value) and "***" in str(raised.value)
    assert PASSWORD not in caplog.text
    assert files_holding(tmp_path / "books", PASSWORD) == []


def _serve(books: Path, url: str, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(DATABASE_URL=url, PYTHONUNBUFFERED="1")
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ledger_service.cli", "serve", "--books", str(books),
                                 "--port", str(port), "--workers", "1"], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    return proc, port


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.mark.postgres
def test_no_password_in_the_servers_log(tmp_path, pg_url, second_pg_url):
    import requests

    url = with_password(pg_url)
    books = tmp_path / "books"
    done_ok(cli("init", "--books", books, "--db", url, "--start", TODAY.isoformat()))
    key = done_ok(cli("keys", "create", "--books", books, "--role", "storefront", env={"DATABASE_URL": url}))
    secret = key.stdout.strip().splitlines()[-1]
    log = tmp_path / "serve.log"
    proc, port = _serve(books, url, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        answer = requests.post(f"http://127.0.0.1:{port}/v1/members", json={"id": "m1"}, timeout=10,
                               headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "k1"})
        assert answer.status_code == 201 and PASSWORD not in answer.text
    finally:
        _stop(proc)
    # the same books served on a database that holds none: the workers fail, the log names the database masked
    proc, _port = _serve(books, with_password(second_pg_url), log)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    finally:
        _stop(proc)
    text = log.read_text(errors="replace")
    assert "no books at" in text and "postgres:***@" in text, text[-3000:]
    assert PASSWORD not in text
    assert files_holding(books, PASSWORD) == []


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path):
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{free_port()}/ledger"
    books = tmp_path / "books"
    done_ok(cli("init", "--books", books, "--start", TODAY.isoformat()))  # the journal is there; its database not
    runs = [cli("init", "--books", tmp_path / "new", "--db", url, "--start", TODAY.isoformat()),
            cli("supply", "--books", books, "--db", url),
            cli("close-day", "--books", books, "--db", url),
            cli("keys", "list", "--books", books, "--db", url),
            cli("keys", "create", "--books", books, "--role", "finance", env={"DATABASE_URL": url}),
            cli("verify", "--books", books, "--db", url)]
    for done in runs:
        assert done.returncode != 0, done.args
        out = done.stdout + done.stderr
        assert PASSWORD not in out, (done.args, out)
        assert "Traceback" not in out, (done.args, out[-3000:])
        assert done.stderr.strip().startswith("error:"), (done.args, out[-3000:])
    assert files_holding(tmp_path, PASSWORD) == []


# -- permissions ----------------------------------------------------------------------------


def modes(root: Path) -> dict[str, str]:
    """Every folder and file under `root` (and root itself), with its permission bits."""
    out = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in sorted(root.rglob("*")):
        out[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return out


def wrong_modes(root: Path) -> dict[str, str]:
    found = modes(root)
    return {rel: mode for rel, mode in found.items()
            if mode != ("0o700" if (root / rel).is_dir() else "0o600")}


def test_books_folder_0700_and_files_0600_whatever_the_umask(make_books, clock, db_url):
    with umask(0o022):
        engine = make_books(db_url=db_url)
        root = engine.books.root
        engine.submit(Register("m1", None, None))
        engine.submit(BuyPack("m1", "activation", None))
        clock.advance()
        engine.close_days()
        views.update(root)
        done_ok(cli("keys", "create", "--books", root, "--role", "storefront",
                    *(["--db", engine.url] if db_url else [])))
        done_ok(cli("verify", "--books", root, *(["--db", engine.url] if db_url else [])))
        engine.submit(Register("m2", "m1", None))  # the database open: its -wal and -shm files exist
        assert (root / "ledger" / "verified.json").is_file() and (root / "ledger" / "holders.sqlite").is_file()
        assert (root / DB_FILENAME).is_file() == (db_url is None)
        assert wrong_modes(root) == {}, modes(root)


def test_init_says_so_and_tightens_an_existing_folder(tmp_path):
    books = tmp_path / "books"
    books.mkdir(mode=0o755)
    os.chmod(books, 0o755)
    done = done_ok(cli("init", "--books", books, "--start", TODAY.isoformat(), umask=0o000))
    assert "0700" in done.stdout and "0600" in done.stdout, done.stdout
    assert wrong_modes(books) == {}, modes(books)
    nested = tmp_path / "a" / "b" / "books"
    done_ok(cli("init", "--books", nested, "--start", TODAY.isoformat(), umask=0o002))
    assert wrong_modes(nested) == {}, modes(nested)


# -- the pickle cache ------------------------------------------------------------------------


class _Plant:
    """A pickle that, when loaded, creates a marker file: code run on the loader's machine."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def bean_check(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BEANCOUNT_DISABLE_LOAD_CACHE")}
    return subprocess.run([sys.executable, "-m", "beancount.scripts.check", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_bean_check_C_never_loads_a_planted_pickle_cache(engine, tmp_path):
    root = engine.books.root
    marker = tmp_path / "code-ran"
    cache = root / ".main.beancount.picklecache"
    cache.write_bytes(pickle.dumps(_Plant(marker)))
    done = bean_check("-C", root / "main.beancount")
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    # what the README warns about: plain bean-check unpickles it, running its code
    cache.write_bytes(pickle.dumps(_Plant(marker)))
    bean_check(root / "main.beancount")
    assert marker.exists()


@pytest.mark.parametrize("where", [".main.beancount.picklecache", "ledger/.main.beancount.picklecache",
                                   "journal/x.picklecache"])
def test_verify_warns_about_a_pickle_cache_in_the_books(engine, where):
    root = engine.books.root
    engine.dispose()
    plant = root / where
    plant.parent.mkdir(parents=True, exist_ok=True)
    plant.write_bytes(b"not loaded by verify")
    done = done_ok(cli("verify", "--books", root, "--no-db"))
    assert re.search(r"^warning: .*picklecache", done.stdout + done.stderr, re.M), done.stdout + done.stderr
    assert where in done.stdout + done.stderr
    report = json.loads(done_ok(cli("verify", "--books", root, "--no-db", "--json")).stdout)
    assert report["ok"] is True and report["faults"] == []
    assert any(where in w and "bean-check -C" in w for w in report["warnings"]), report
    assert plant.read_bytes() == b"not loaded by verify"


def test_verify_warns_of_nothing_on_clean_books(engine):
    engine.dispose()
    report = json.loads(done_ok(cli("verify", "--books", engine.books.root, "--json")).stdout)
    assert report["warnings"] == []


def test_every_recipe_turns_the_pickle_cache_off():
    texts = {p.name: p.read_text(encoding="utf-8") for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]}
    checks = queries = 0
    for name, text in texts.items():
        for m in re.finditer(r"bean-check(?:\s+-\w+)*\s+\S*\.beancount", text):
            checks += 1
            assert " -C" in m.group(0), f"{name}: {m.group(0)}"
        for m in re.finditer(r"(\S+\s+)?bean-query\s+\S*BOOKS/", text):
            queries += 1
            assert (m.group(1) or "").strip() == "BEANCOUNT_DISABLE_LOAD_CACHE=1", f"{name}: {m.group(0)}"
        if "bean-check -C" in text or "BEANCOUNT_DISABLE_LOAD_CACHE=1" in text:
            assert "picklecache" in text or "pickle cache" in text, f"{name} does not say why"
    assert checks >= 2 and queries >= 5, (checks, queries)


# -- no stray SQLite file ------------------------------------------------------------------------


def assert_no_database_found(books: Path, env: dict | None = None) -> None:
    for args in (("verify", "--books", books), ("keys", "list", "--books", books), ("supply", "--books", books),
                 ("close-day", "--books", books)):
        done = cli(*args, env=env)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.strip().startswith("error:") and "--db" in done.stderr, (args, done.stderr)
        assert not (books / DB_FILENAME).exists(), args
    assert "--no-db" in cli("verify", "--books", books, env=env).stderr
    report = verify(books)
    assert [f.rule for f in report.faults] == ["db.missing"], [str(f) for f in report.faults]
    assert not (books / DB_FILENAME).exists()
    done_ok(cli("verify", "--books", books, "--no-db", env=env))
    assert not (books / DB_FILENAME).exists()


def test_journal_only_books_get_no_empty_sqlite(engine, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(engine.books.root, copy, ignore=shutil.ignore_patterns("ledger.sqlite*"))
    assert_no_database_found(copy)


@pytest.mark.postgres
def test_postgresql_books_without_db_get_no_empty_sqlite(tmp_path, pg_url):
    books = tmp_path / "books"
    done_ok(cli("init", "--books", books, "--db", pg_url, "--start", (TODAY - timedelta(days=1)).isoformat()))
    assert not (books / DB_FILENAME).exists()
    assert_no_database_found(books)
    done_ok(cli("verify", "--books", books, "--db", pg_url))
    assert not (books / DB_FILENAME).exists()


def test_an_explicit_sqlite_url_that_does_not_exist_is_not_created(engine, tmp_path):
    missing = tmp_path / "elsewhere" / "nothing.sqlite"
    for args in (("verify", "--books", engine.books.root), ("keys", "list", "--books", engine.books.root),
                 ("supply", "--books", engine.books.root)):
        done = cli(*args, "--db", f"sqlite:///{missing}")
        assert done.returncode == 2 and done.stderr.strip().startswith("error:"), (args, done.stdout, done.stderr)
        assert not missing.exists() and not missing.parent.exists(), args
