"""Issue 10 §1: the Fava that `ledger-service fava` serves reads no file of the server and needs a key.

Every test talks to a real `ledger-service fava` process on a copy of the demo books. A
secret file outside the books (with a unique marker), an order export outside the books (a
valid one: Fava's importer would return every row of it), symlinks planted in the books that
point at them, and a marker in the server's environment (what `/proc/self/environ` would
show) are the bait. Fava's routes come from its own Flask `url_map`; every route is tried
with every hostile path in every path variable and every query argument a file could hide
in, and no answer may carry a marker. Then: no key -> 401 on every route, a storefront key
-> 403, finance / auditor / admin keys -> 200 on the main pages; writes, the import page,
the query shell's `.output` and `CREATE TABLE … USING "csv:…"` refused.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from ledger_service.views import ledger_tier
from ledger_service.store import keys as key_store
from ledger_service.store.db import database_url, make_engine, sessions

from ledger_books import copy_books, demo_books

REALM = 'Basic realm="ledger-service books"'
RUN = uuid.uuid4().hex[:12]
MARK_FILE = f"LEAKFILE{RUN}"      # first line of the secret file outside the books
MARK_ORDERS = f"LEAKORD{RUN}"     # an order id in a valid order export outside the books
MARK_ENV = f"LEAKENV{RUN}"        # in the server's environment only (/proc/self/environ)
PASSWD_MARK = "root:x:0:0"
MARKERS = (MARK_FILE, MARK_ORDERS, MARK_ENV)
IMPORTERS = ("importers.orders.OrderExportImporter", "importers.bank.PoolStatementImporter")
# every query argument a file name could hide in (Fava's, the extension's, and the filters)
ARG_NAMES = ("filename", "file_path", "path", "folder", "name", "new_name", "document", "account",
             "filter", "time", "key", "entry_hash", "holder", "event", "day", "page_slug", "source")
METHODS = ("GET", "PUT", "POST", "DELETE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `ledger-service fava` process; `stop()` ends it (the fixtures call it)."""

    def __init__(self, books: Path, *args: str, host: str = "127.0.0.1", env: dict | None = None,
                 cwd: Path | None = None, log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "ledger_service.cli", "fava", "--books", str(books),
                   "--host", host, "--port", str(self.port), *args]
        with open(log, "w") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(self.base + "/", timeout=5, allow_redirects=False)
                return
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"Fava did not start: {log.read_text()}")
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _new_key(books: Path, role: str, db_url: str | None = None, revoke: bool = False) -> str:
    engine = make_engine(database_url(books, db_url))
    try:
        with sessions(engine)() as session, session.begin():
            key_id, secret = key_store.create(session, role, f"fava security test {role}")
        if revoke:
            with sessions(engine)() as session, session.begin():
                assert key_store.revoke(session, key_id)
        return secret
    finally:
        engine.dispose()


class Site:
    def __init__(self, root: Path, books: Path) -> None:
        self.root, self.books = root, books
        outside = root / "outside"
        outside.mkdir()
        self.secret = outside / "secret.txt"
        self.secret.write_text(f"{MARK_FILE}: the first line\nsecond line {MARK_FILE}\n", encoding="utf-8")
        self.orders = outside / "orders.csv"
        self.orders.write_text("order_id,date,buyer,merchant,amount_cny,ship_region\n"
                               f"{MARK_ORDERS},2026-03-01,m1,s1,10.00,441900\n", encoding="utf-8")
        self.originals = {p: p.read_bytes() for p in (self.secret, self.orders)}
        ledger = books / ledger_tier.LEDGER_DIR
        # symlinks planted in the books, pointing outside them
        (ledger / "planted.txt").symlink_to(self.secret)
        (ledger / "planted-orders.csv").symlink_to(self.orders)
        (ledger / "planted-dir").symlink_to(outside, target_is_directory=True)
        (books / "planted-dir").symlink_to(outside, target_is_directory=True)
        self.keys = {role: _new_key(books, role) for role in ("finance", "auditor", "admin", "storefront")}
        self.keys["revoked"] = _new_key(books, "finance", revoke=True)
        env = {**os.environ, "LEDGER_FAVA_TEST_SECRET": MARK_ENV}
        # the server's working folder is the ledger tier: relative paths start there
        self.server = Server(books, env=env, cwd=ledger, log=root / "fava.log")
        self.base = self.server.base
        self.http = requests.Session()

    def hostile_paths(self, *, system: bool = True) -> list[str]:
        """Paths outside the books: absolute, with `..`, through symlinks, and (system) the server's own."""
        ledger = self.books / ledger_tier.LEDGER_DIR
        paths = [
            str(self.secret), str(self.orders),
            "../../outside/secret.txt", "../../outside/orders.csv",
            f"{ledger}/../../outside/secret.txt", f"{ledger}/../../outside/orders.csv",
            str(ledger / "planted.txt"), str(ledger / "planted-orders.csv"),
            str(ledger / "planted-dir" / "orders.csv"), str(self.books / "planted-dir" / "secret.txt"),
            "planted.txt", "file://" + str(self.secret), "/proc/self/cwd/../../outside/orders.csv",
            "/proc/self/root" + str(self.orders),
        ]
        if system:
            paths += ["/proc/self/environ", "/etc/passwd", "/proc/self/cmdline", "../" * 12 + "etc/passwd",
                      "/proc/self/cwd/planted-orders.csv"]
        return paths

    def get(self, path: str, key: str | None = None, method: str = "GET", **kwargs) -> requests.Response:
        auth = ("anyone", key) if key else None
        return self.http.request(method, self.base + path, auth=auth, allow_redirects=False, timeout=60, **kwargs)

    def stop(self) -> None:
        self.server.stop()
        self.http.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("fava-security")
    site = Site(root, copy_books(demo_books(tmp_path_factory), root / "books"))
    yield site
    site.stop()


@pytest.fixture(scope="module")
def routes(site):
    """(rule, methods, slug) of every route of Fava's Flask app on these books."""
    from fava.application import create_app
    from fava.util import slugify

    app = create_app([str(site.books / ledger_tier.LEDGER_MAIN)], read_only=True, load=True)
    ledger = app.config["LEDGERS"].ledgers[0]
    slug = slugify(ledger.options["title"])
    rules = [(rule, sorted(rule.methods - {"OPTIONS", "HEAD"})) for rule in app.url_map.iter_rules()]
    assert len(rules) > 40 and any(r.endpoint == "json_api.get_extract" for r, _ in rules)
    return rules, slug


_VARIABLE = re.compile(r"<([^<>]+)>")
BENIGN = {"name": "Assets", "report_name": "income_statement", "extension_name": "SupplyPage",
          "endpoint": "nothing", "page_slug": "_index", "filename": "app.js", "result_format": "csv",
          "aggregation_key": "account"}


def fill(rule, slug: str, value: str | None = None) -> str:
    """The rule's path with `bfile` = slug and every other variable = value (or a benign one)."""

    def one(match: re.Match) -> str:
        converter, _, name = match.group(1).rpartition(":")
        if name == "bfile":
            return quote(slug, safe="")
        text = BENIGN[name] if value is None else value
        return quote(text, safe="/" if converter == "path" else "")

    return _VARIABLE.sub(one, rule.rule)


FILE_ARGS = ("filename", "file_path", "path", "folder", "new_name", "document")


def hostile_arguments(hostile: str) -> list[dict[str, str]]:
    """The query arguments tried with one hostile path: all of them at once (with each importer),
    each file argument alone, and every other argument without any file argument (what reaches
    Fava's own handling: filters, the query shell, the extension's arguments)."""
    query = f'CREATE TABLE leak USING "csv:{hostile}"'
    every = [{**{name: hostile for name in ARG_NAMES}, "importer": imp, "query_string": query} for imp in IMPORTERS]
    alone = [{name: hostile, "importer": IMPORTERS[0]} for name in FILE_ARGS]
    others = [{**{name: hostile for name in ARG_NAMES if name not in FILE_ARGS}, "query_string": query}]
    return every + alone + others


def leaked(response: requests.Response) -> list[str]:
    text = response.content.decode("latin-1") + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    found = [m for m in MARKERS if m in text]
    if PASSWD_MARK in text:
        found.append(PASSWD_MARK)
    return found


# -- no file outside the books, whatever the route and the path ------------------------------------


def test_no_route_returns_a_byte_of_a_file_outside_the_books(site, routes):
    rules, slug = routes
    finance = site.keys["finance"]
    tried = 0
    leaks: list[tuple] = []
    errors: list[tuple] = []
    for rule, methods in rules:
        for method in methods:
            # writes are only ever tried with the bait files (never a file of the system)
            for hostile in site.hostile_paths(system=(method == "GET")):
                for params in hostile_arguments(hostile):
                    data = {**params, "source": "; overwritten", "sha256sum": "0"} if method != "GET" else None
                    response = site.get(fill(rule, slug, hostile), finance, method, params=params, data=data)
                    tried += 1
                    if leaked(response):
                        leaks.append((method, rule.rule, hostile, sorted(params), response.status_code,
                                      leaked(response)))
                    if response.status_code >= 500:
                        errors.append((method, rule.rule, hostile, sorted(params), response.status_code))
    print(f"\nFava attack: {tried} route x method x hostile-path requests, {len(leaks)} leaked, "
          f"{len({r.rule for r, _ in rules})} rules")
    assert tried > 1000
    assert leaks == [], f"{len(leaks)} of {tried} requests returned content from outside the books: {leaks[:10]}"
    assert errors == [], f"{len(errors)} answered with 5xx: {errors[:10]}"
    for path, original in site.originals.items():  # and nothing outside was changed or removed
        assert path.read_bytes() == original


def test_the_import_page_and_its_extract_answer_nothing(site, routes):
    _, slug = routes
    finance = site.keys["finance"]
    main = (site.books / ledger_tier.LEDGER_MAIN).read_text(encoding="utf-8")
    assert "import-config" not in main and not (site.books / ledger_tier.LEDGER_DIR / "import_config.py").exists()
    inside = site.books / ledger_tier.LEDGER_DIR / "orders-inside.csv"
    inside.write_bytes(site.orders.read_bytes())  # even a file inside the books is not extracted
    try:
        for path in (f"/{quote(slug)}/import/", f"/{quote(slug)}/api/imports",
                     f"/{quote(slug)}/api/extract?importer={IMPORTERS[0]}&filename={quote(str(inside))}",
                     f"/{quote(slug)}/api/extract?importer={IMPORTERS[0]}&filename={quote(str(site.orders))}"):
            response = site.get(path, finance)
            assert response.status_code == 404, (path, response.status_code, response.text[:200])
            assert not leaked(response)
    finally:
        inside.unlink()


def test_a_document_inside_the_ledger_folder_is_served_one_outside_is_not(site, routes):
    """The path check resolves symlinks: the same bytes, reached through a planted link, are refused."""
    _, slug = routes
    finance = site.keys["finance"]
    ledger = site.books / ledger_tier.LEDGER_DIR
    source = f"/{quote(slug)}/api/source"
    own = site.get(source, finance, params={"filename": str(ledger / "main.beancount")})
    assert own.status_code == 200 and "fava-extension" in own.text
    for hostile in (ledger / "planted.txt", ledger / "planted-dir" / "secret.txt", site.secret):
        for route in (source, f"/{quote(slug)}/document/"):
            response = site.get(route, finance, params={"filename": str(hostile)})
            assert response.status_code == 404 and not leaked(response), (route, hostile, response.status_code)


def test_the_query_shell_opens_no_file(site, routes):
    _, slug = routes
    finance = site.keys["finance"]
    query = f"/{quote(slug)}/api/query"
    victim = site.root / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    fresh = site.root / "created-by-fava.txt"
    for statement in (f".output {victim}", f".output {fresh}", f"output {victim}",
                      f'CREATE TABLE leak USING "csv:{site.orders}"', f'create table leak using "csv:{site.secret}"',
                      f'.explain CREATE TABLE leak USING "csv:{site.orders}"', ".set format csv",
                      "INSERT INTO leak (a) VALUES (1)"):
        response = site.get(query, finance, params={"query_string": statement})
        assert response.status_code == 400, (statement, response.status_code, response.text[:200])
        assert "error" in response.json() and not leaked(response)
        download = site.get(f"/{quote(slug)}/download-query/query_result.csv", finance,
                            params={"query_string": statement})
        assert download.status_code == 400 and not leaked(download), statement
    for statement in ("SELECT * FROM leak", ".describe leak", ".tables"):
        assert not leaked(site.get(query, finance, params={"query_string": statement}))
    assert victim.read_text(encoding="utf-8") == "keep me\n" and not fresh.exists()
    # the shell still answers: nothing above broke it for the next user
    answer = site.get(query, finance, params={"query_string": "SELECT account, sum(position) GROUP BY account"})
    assert answer.status_code == 200 and "Assets:Pool:Backing" in answer.text


def test_writes_are_refused_before_fava(site, routes):
    _, slug = routes
    finance = site.keys["finance"]
    main = site.books / ledger_tier.LEDGER_MAIN
    before = main.read_bytes()
    for method, path in (("PUT", "api/source"), ("PUT", "api/add_entries"), ("DELETE", "api/document"),
                         ("PUT", "api/upload_import_file"), ("POST", "extension/SupplyPage/x")):
        response = site.get(f"/{quote(slug)}/{path}", finance, method,
                            data={"file_path": str(main), "source": "; gone", "sha256sum": "0", "filename": str(main)})
        assert response.status_code == 405, (method, path, response.status_code)
        assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert main.read_bytes() == before


# -- the login ---------------------------------------------------------------------------------------


def _every_route(routes):
    rules, slug = routes
    for rule, methods in rules:
        for method in methods:
            yield method, fill(rule, slug)
    yield "GET", "/no/such/page"


def test_no_key_is_401_on_every_route(site, routes):
    count = 0
    for method, path in _every_route(routes):
        for auth in (None, "Basic", "Basic !!!", "Bearer " + site.keys["finance"], "Basic " + "A" * 4000):
            headers = {"Authorization": auth} if auth else {}
            response = site.http.request(method, site.base + path, headers=headers, allow_redirects=False, timeout=60)
            assert response.status_code == 401, (method, path, auth and auth[:20], response.status_code)
            assert response.headers["WWW-Authenticate"] == REALM
            assert not leaked(response) and "Assets:" not in response.text
            count += 1
        for key in ("lsk_unknown_" + "x" * 32, site.keys["revoked"], "not-a-key"):
            response = site.get(path, key, method)
            assert response.status_code == 401 and response.headers["WWW-Authenticate"] == REALM, (path, method)
            count += 1
    assert count > 300


def test_a_storefront_key_is_403_on_every_route(site, routes):
    for method, path in _every_route(routes):
        response = site.get(path, site.keys["storefront"], method)
        assert response.status_code == 403, (method, path, response.status_code)
        assert "Assets:" not in response.text


@pytest.mark.parametrize("role", ["finance", "auditor", "admin"])
def test_finance_auditor_and_admin_keys_open_the_books(site, routes, role):
    _, slug = routes
    key = site.keys[role]
    first = site.get("/", key)
    assert first.status_code == 302 and first.headers["Location"].endswith("/income_statement/")
    for page in ("income_statement/", "balance_sheet/", "journal/", "extension/SupplyPage/",
                 "extension/AuditPage/", "api/ledger_data", "api/balance_sheet"):
        response = site.get(f"/{quote(slug)}/{page}", key)
        assert response.status_code == 200, (role, page, response.status_code)
    static = site.get("/static/app.js", key)
    assert static.status_code == 200 and len(static.content) > 1000
    # the user name is anything: the key is the password
    assert site.http.get(site.base + f"/{quote(slug)}/balance_sheet/", auth=("", key), timeout=60).status_code == 200


def test_a_revoked_key_stops_working_at_once(site, routes):
    _, slug = routes
    books = site.books
    engine = make_engine(database_url(books, None))
    try:
        with sessions(engine)() as session, session.begin():
            key_id, secret = key_store.create(session, "auditor", "revoked during the test")
        assert site.get(f"/{quote(slug)}/balance_sheet/", secret).status_code == 200
        with sessions(engine)() as session, session.begin():
            assert key_store.revoke(session, key_id)
        assert site.get(f"/{quote(slug)}/balance_sheet/", secret).status_code == 401
    finally:
        engine.dispose()


# -- starting: the database of the keys, the address --------------------------------------------------


def test_the_keys_come_from_the_books_database(make_books, db_url, tmp_path):
    """`--db URL` (and $DATABASE_URL) name the database whose keys log in; the books' SQLite otherwise."""
    engine = make_books(db_url=db_url)
    engine.close_days()
    books = engine.books.root
    finance = _new_key(books, "finance", db_url)
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    args: tuple[str, ...] = ()
    if db_url:  # PostgreSQL: once by --db, once by $DATABASE_URL
        args = ("--db", db_url)
    server = Server(books, *args, env=env, log=tmp_path / "fava-db.log")
    try:
        assert server_get(server, "/", finance).status_code == 302
        assert server_get(server, "/", "lsk_0000_" + "y" * 32).status_code == 401
    finally:
        server.stop()
    if db_url:
        server = Server(books, env={**env, "DATABASE_URL": db_url}, log=tmp_path / "fava-env.log")
        try:
            assert server_get(server, "/", finance).status_code == 302
        finally:
            server.stop()


def server_get(server: Server, path: str, key: str | None) -> requests.Response:
    return requests.get(server.base + path, auth=("x", key) if key else None, allow_redirects=False, timeout=60)


def test_fava_refuses_to_start_without_its_key_database(tmp_path_factory, tmp_path):
    books = copy_books(demo_books(tmp_path_factory), tmp_path / "books")
    (books / "ledger.sqlite").unlink()
    out = subprocess.run([sys.executable, "-m", "ledger_service.cli", "fava", "--books", str(books),
                          "--port", str(_free_port())], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "API key" in out.stderr and "ledger-service keys create" in out.stderr
    assert not (books / "ledger.sqlite").exists()  # no empty database left behind


def test_on_another_address_the_key_check_is_still_in_force(tmp_path_factory, tmp_path):
    books = copy_books(demo_books(tmp_path_factory), tmp_path / "books")
    finance = _new_key(books, "finance")
    server = Server(books, host="0.0.0.0", log=tmp_path / "fava-any.log")
    try:
        assert server_get(server, "/", None).status_code == 401
        assert server_get(server, "/", finance).status_code == 302
    finally:
        server.stop()
    said = (tmp_path / "fava-any.log").read_text()
    assert "0.0.0.0" in said and "API key" in said and "TLS" in said


def test_fava_binds_127_0_0_1_by_default():
    from ledger_service import cli

    option = {p.name: p for p in cli.fava.params}["host"]
    assert option.default == "127.0.0.1"


def test_platform_prints_how_to_log_in_to_fava(tmp_path_factory, tmp_path):
    """What `make demo` runs: the finance key it prints opens Fava (user name anything)."""
    books = copy_books(demo_books(tmp_path_factory), tmp_path / "books")
    api_port, fava_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ledger_service.cli", "platform", "--books", str(books),
                             "--api-port", str(api_port), "--fava-port", str(fava_port), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not any("Fava" in line and "password" in line for line in seen):
            try:
                seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError("the platform never said how to log in to Fava: " + "".join(seen)) from None
        text = "".join(seen)
        finance = re.search(r"finance key:\s+(lsk_\S+)", text).group(1)
        base = f"http://127.0.0.1:{fava_port}"
        assert base in text
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.get(base + "/", auth=("finance", finance), allow_redirects=False, timeout=10)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, text
                time.sleep(0.3)
        assert answer.status_code == 302
        assert requests.get(base + "/", allow_redirects=False, timeout=10).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)  # the platform stops the API and Fava it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the guard's rules, in-process ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "SELECT account, sum(position) GROUP BY account", "select date WHERE year = 2026",
                                  "BALANCES", "JOURNAL 'Assets:Pool'", "PRINT", ".run", ".run supply",
                                  ".explain SELECT 1", ".parse SELECT 1", ".tables", ".describe entries", ".help",
                                  "?", "help", "errors", "SELEC garbage (", "!ls"])
def test_the_query_shell_keeps_its_reading_commands(text):
    from ledger_service.fava_app import query_refusal

    assert query_refusal(text) is None


@pytest.mark.parametrize("text", [".output /tmp/x", ".OUTPUT /tmp/x", "  .output", 'CREATE TABLE t USING "csv:/etc/passwd"',
                                  'create table t (a str) using "csv:/etc/passwd"',
                                  'CREATE TABLE t USING "beancount:/etc/passwd"',
                                  "INSERT INTO t (a) VALUES (1)", '.explain CREATE TABLE t USING "csv:/x"',
                                  '.parse INSERT INTO t (a) VALUES (1)', ".set format csv", "set format csv",
                                  ".history", ".reload", ".exit", ".EOF", ".clear", ".format csv",
                                  "SELECT 1 WHERE " + " OR ".join(["TRUE"] * 3000)])
def test_the_query_shell_refuses_what_touches_files_or_settings(text):
    from ledger_service.fava_app import query_refusal

    assert query_refusal(text)


class _EveryKeyIsFinance:
    def role(self, _secret: str) -> str:
        return "finance"


def test_documents_are_served_from_a_folder_declared_inside_the_books_only(tmp_path):
    """A `documents` folder the ledger declares outside the books is not a way out: Fava would
    serve its files (they are Document entries); the guard does not."""
    import base64

    from fava.util import slugify

    from ledger_service.fava_app import create_app

    books = tmp_path / "books"
    (books / "ledger").mkdir(parents=True)
    inside = books / "documents" / "Assets" / "Cash" / "2026-03-01.receipt.txt"
    outside = tmp_path / "elsewhere" / "Assets" / "Cash" / "2026-03-01.secret.txt"
    for path, text in ((inside, "a receipt inside the books"), (outside, MARK_FILE)):
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
    ledger_file = books / "ledger" / "main.beancount"
    ledger_file.write_text('option "title" "docs"\noption "documents" "../documents"\n'
                           f'option "documents" "{tmp_path / "elsewhere"}"\n2026-01-01 open Assets:Cash\n',
                           encoding="utf-8")
    app = create_app(ledger_file, books, key_check=_EveryKeyIsFinance(), load=True)
    ledger = app.config["LEDGERS"].ledgers[0]
    assert {d.filename for d in ledger.all_entries_by_type.Document} == {str(inside), str(outside)}
    client = app.test_client()
    login = {"Authorization": "Basic " + base64.b64encode(b"x:any").decode()}
    slug = quote(slugify(ledger.options["title"]))
    served = client.get(f"/{slug}/document/", query_string={"filename": str(inside)}, headers=login)
    assert served.status_code == 200 and served.data == b"a receipt inside the books"
    refused = client.get(f"/{slug}/document/", query_string={"filename": str(outside)}, headers=login)
    assert refused.status_code == 404 and MARK_FILE.encode() not in refused.data
    (books / "documents" / "Assets" / "Cash" / "link.txt").symlink_to(outside)
    linked = client.get(f"/{slug}/document/",
                        query_string={"filename": str(books / "documents" / "Assets" / "Cash" / "link.txt")},
                        headers=login)
    assert linked.status_code == 404 and MARK_FILE.encode() not in linked.data
    assert client.get(f"/{slug}/document/", query_string={"filename": str(inside)}).status_code == 401


def test_the_gate_answers_503_when_the_keys_cannot_be_read_and_never_calls_fava():
    from ledger_service.fava_app import KeyGate

    def fava(_environ, _start):  # pragma: no cover  (must not run)
        raise AssertionError("Fava ran")

    def broken(_secret: str) -> str:
        raise ConnectionError("database down")

    answers: list[tuple[str, list]] = []
    body = KeyGate(fava, broken)({"REQUEST_METHOD": "GET", "HTTP_AUTHORIZATION": "Basic eDpsc2tfMQ=="},
                                 lambda status, headers: answers.append((status, headers)))
    assert answers[0][0].startswith("503") and b"database down" not in b"".join(body)
    seen: dict = {}

    def spy(environ, start):
        seen.update(environ)
        start("200 OK", [])
        return [b"ok"]

    KeyGate(spy, lambda _s: "auditor")({"REQUEST_METHOD": "GET", "HTTP_AUTHORIZATION": "Basic eDpsc2tfMQ=="},
                                       lambda *_: None)
    assert "HTTP_AUTHORIZATION" not in seen and seen["ledger_service.role"] == "auditor"  # the key goes no further
