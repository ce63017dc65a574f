"""Fava on the ledger tier, behind an API key, reading no file but the books':
`python -m ledger_service.fava_app --books DIR [--period YYYY-MM] [--db URL]` (= `ledger-service fava`).

`fava_main` brings the derived views up to date (`views.update`), then serves the ledger
tier's main file (or one period's) with the guarded Fava below.

Fava's Flask app is built in-process (`fava.application.create_app(..., read_only=True)`) and
served by cheroot (the WSGI server Fava itself uses), on 127.0.0.1 by default. Two guards:

- `KeyGate` (WSGI, before Fava sees anything): HTTP Basic, user name anything, password an
  API key of role finance, auditor or admin, checked against the books' database at every
  request (no key / unknown / revoked -> 401 with `WWW-Authenticate: Basic realm="ledger-service
  books"`; another role -> 403); then only GET and HEAD (anything else -> 405). The
  Authorization header is removed before Fava runs.
- `guard_files` (a Flask `before_request` inside Fava's app): the import endpoints (extract,
  imports, the import page, upload) answer 404; any query argument that names a file
  (`filename`, `file_path`, `path`, `folder`, `new_name`, `document`) and the file a `statement`
  resolves to must be an absolute path whose real path (symlinks resolved) lies inside the
  ledger folder or a `documents` folder the ledger declares inside the books, else 404; the
  query shell (`/api/query`, `/download-query/`) runs only SELECT, BALANCES, JOURNAL, PRINT and
  the commands .help .explain .describe .tables .run .errors .parse, at most 10,000
  characters (400 otherwise: no `.output FILE`, no `CREATE TABLE … USING "csv:FILE"`, no
  INSERT, no `.set`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import cmd
import os
import sys
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from beanquery.parser import ParseError, ast, parse
from cheroot.wsgi import Server
from fava.application import create_app as fava_create_app
from fava.helpers import FavaAPIError
from flask import abort, g, jsonify, render_template, request
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from . import i18n, views
from .store import keys
from .store.db import database_url, make_engine, sessions
from .store.models import ApiKeyRow
from .views.ledger_tier import books_root_of, ledger_file

FAVA_ROLES = frozenset({"finance", "auditor", "admin"})
REALM = "ledger-service books"
READ_METHODS = frozenset({"GET", "HEAD"})
MAX_AUTHORIZATION_CHARS = 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SERVER_THREADS = 8
# Fava endpoints that read or write files the client names, or import: never answered.
REFUSED_ENDPOINTS = frozenset({
    "json_api.get_extract", "json_api.get_imports", "json_api.put_upload_import_file", "json_api.put_move",
    "json_api.delete_document", "json_api.put_add_document", "json_api.put_attach_document",
    "json_api.put_source", "json_api.put_source_slice", "json_api.delete_source_slice",
    "json_api.put_format_source", "json_api.put_add_entries",
})
REFUSED_REPORTS = frozenset({"import"})
# Query arguments that name a file (Fava's `document`, `source`, `extract`, `move`, …).
PATH_ARGS = ("filename", "file_path", "path", "folder", "new_name", "document")
QUERY_ENDPOINTS = frozenset({"json_api.get_query", "download_query"})
QUERY_COMMANDS = frozenset({"help", "explain", "describe", "tables", "run", "errors", "parse"})
MAX_QUERY_CHARS = 10_000
# What beanquery's shell takes as a command without its dot (BQLShell.onecmd).
_BARE_COMMANDS = frozenset({"clear", "errors", "exit", "help", "history", "parse", "quit", "run", "set"})
_QUERY_IDENTCHARS = cmd.IDENTCHARS + "."


class KeyDatabaseError(RuntimeError):
    """The database of the API keys cannot be read: Fava does not start without its key check."""


# -- the key check ---------------------------------------------------------------------------------


class KeyCheck:
    """The role of an API key, read from the books' database at every call (a revoked key stops at once)."""

    def __init__(self, books_root: Path | str, db_url: str | None = None) -> None:
        url = database_url(Path(books_root), db_url)
        if url.startswith("sqlite") and not _sqlite_path(url).is_file():  # never created empty
            raise KeyDatabaseError(f"no database of API keys at {_sqlite_path(url)}: name the books' database "
                                   "with --db URL or $DATABASE_URL; keys come from `ledger-service keys create`")
        self.engine = None
        try:
            self.engine = make_engine(url)
            self._sessions = sessions(self.engine)
            self.usable_keys()  # the table is there and readable
        except (SQLAlchemyError, OSError) as exc:
            if self.engine is not None:
                self.engine.dispose()
            raise KeyDatabaseError(f"the database of API keys cannot be read ({type(exc).__name__}): Fava does "
                                   "not start without its key check; keys come from `ledger-service keys create`"
                                   ) from None

    def role(self, secret: str) -> str | None:
        with self._sessions() as session:
            return keys.role_of(session, secret)

    def usable_keys(self) -> int:
        """Live keys that open Fava (0: nobody can log in yet)."""
        table = ApiKeyRow.__table__
        with self._sessions() as session:
            return session.connection().execute(
                select(func.count()).select_from(table)
                .where(table.c.role.in_(sorted(FAVA_ROLES)), table.c.revoked.is_(None))).scalar_one()

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def _sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "")


def basic_password(header: str) -> str | None:
    """The password of an `Authorization: Basic …` header (None: absent or malformed)."""
    if not header or len(header) > MAX_AUTHORIZATION_CHARS:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep and password else None


class KeyGate:
    """WSGI middleware: an API key of a books role, by HTTP Basic, before anything of Fava runs."""

    def __init__(self, app: Callable, check: Callable[[str], str | None]) -> None:
        self.app = app
        self.check = check

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        secret = basic_password(environ.get("HTTP_AUTHORIZATION", ""))
        if secret is None:
            return _deny(start_response, HTTPStatus.UNAUTHORIZED,
                         "log in: any user name, and an API key of role finance, auditor or admin as the password")
        try:
            role = self.check(secret)
        except Exception:  # noqa: BLE001  (the database is down: no page, no detail, no 500)
            return _deny(start_response, HTTPStatus.SERVICE_UNAVAILABLE, "the database of API keys cannot be read")
        if role is None:
            return _deny(start_response, HTTPStatus.UNAUTHORIZED, "unknown or revoked API key")
        if role not in FAVA_ROLES:
            return _deny(start_response, HTTPStatus.FORBIDDEN,
                         f"an API key of role {role} may not open the books (finance, auditor or admin)")
        if environ.get("REQUEST_METHOD", "GET").upper() not in READ_METHODS:
            return _deny(start_response, HTTPStatus.METHOD_NOT_ALLOWED, "Fava is read-only: GET and HEAD only",
                         [("Allow", "GET, HEAD")])
        environ.pop("HTTP_AUTHORIZATION", None)  # the key goes no further
        environ["ledger_service.role"] = role
        return self.app(environ, start_response)


def _deny(start_response: Callable, status: HTTPStatus, message: str,
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = f"{status.value} {status.phrase}: {message}\n".encode()
    head = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store")]
    if status == HTTPStatus.UNAUTHORIZED:
        head.append(("WWW-Authenticate", f'Basic realm="{REALM}"'))
    start_response(f"{status.value} {status.phrase}", head + (headers or []))
    return [body]


# -- the file guard ---------------------------------------------------------------------------------


def allowed_roots(ledger, books_root: Path) -> list[Path]:
    """The folders a file Fava sends may come from: the ledger folder, and the `documents` folders
    the ledger declares that lie inside the books."""
    books = books_root.resolve()
    roots = [Path(ledger.beancount_file_path).resolve().parent]
    for folder in ledger.options.get("documents", []):
        path = Path(ledger.join_path(folder)).resolve()
        if path.is_relative_to(books):
            roots.append(path)
    return roots


def is_inside(value: str, roots: list[Path]) -> bool:
    """An absolute path whose real path (symlinks resolved) lies inside one of `roots`."""
    if not value or "\x00" in value or not os.path.isabs(value):
        return False
    real = Path(os.path.realpath(value))
    return any(real.is_relative_to(root) for root in roots)


def _split_command(text: str) -> tuple[str, str, str]:
    """(command, argument, line) as beanquery's shell splits a line (cmd.Cmd.parseline, then
    BQLShell.parseline): command "" when the shell runs nothing."""
    line = text.strip()
    if line.startswith("?"):
        line = "help " + line[1:]
    elif line.startswith("!"):  # the shell has no do_shell: nothing runs
        return "", "", line
    end = 0
    while end < len(line) and line[end] in _QUERY_IDENTCHARS:
        end += 1
    command, arg = line[:end], line[end:].strip()
    return command.removeprefix("."), arg, line


def query_refusal(text: str) -> str | None:
    """Why the query shell may not run `text` (None: it may). Reads nothing, runs nothing."""
    if len(text) > MAX_QUERY_CHARS:
        return f"a query is at most {MAX_QUERY_CHARS} characters"
    command, arg, line = _split_command(text)
    if not command:
        return None
    if not line.startswith(".") and command.lower() not in _BARE_COMMANDS:
        try:
            statement = parse(line)
        except ParseError:
            return None  # the shell reports the syntax error; nothing runs
        except Exception:  # noqa: BLE001
            return "the query cannot be parsed"
        if not isinstance(statement, (ast.Select, ast.Balances, ast.Journal, ast.Print)) or any(
                isinstance(node, (ast.CreateTable, ast.Insert)) for node in ast.walk(statement)):
            return "only SELECT, BALANCES, JOURNAL and PRINT run here (no CREATE TABLE, no INSERT)"
        return None
    command = command.lower()
    if command not in QUERY_COMMANDS:
        return f"the command .{command} is not available here (only .{', .'.join(sorted(QUERY_COMMANDS))})"
    if command in {"explain", "parse"}:
        return query_refusal(arg)
    return None


def _same_site(referrer: str | None, host: str) -> bool:
    if not referrer:
        return False
    parts = urlsplit(referrer)
    return parts.scheme in {"http", "https"} and parts.netloc == host


def guard_files(fava_app, books_root: Path) -> None:
    """Register, first among Fava's `before_request` functions, the endpoint and path policy."""
    def _guard():
        endpoint = request.endpoint
        if endpoint in REFUSED_ENDPOINTS:
            abort(404)
        if endpoint == "report" and (request.view_args or {}).get("report_name") in REFUSED_REPORTS:
            abort(404)
        if endpoint == "jump" and not _same_site(request.referrer, request.host):
            abort(400)  # Fava's /jump redirects back to the referrer: only to itself (and none: a 500)
        _guard_paths(endpoint, getattr(g, "ledger", None), books_root)
        if endpoint in QUERY_ENDPOINTS:
            reason = query_refusal(request.args.get("query_string", ""))
            if reason is not None:
                response = jsonify({"error": reason})
                response.status_code = 400
                return response
        return None

    fava_app.before_request_funcs.setdefault(None, []).insert(0, _guard)


def _guard_paths(endpoint: str | None, ledger, books_root: Path) -> None:
    """404 unless every file argument, and the file a `statement` resolves to, lies inside the
    folders the ledger may send files from."""
    named = [v for name in PATH_ARGS for v in request.args.getlist(name) if v]
    if not named and endpoint != "statement":
        return
    roots = allowed_roots(ledger, books_root) if ledger is not None else []
    if any(not is_inside(value, roots) for value in named):
        abort(404)
    if endpoint == "statement":
        if ledger is None:
            abort(404)
        try:
            path = ledger.statement_path(request.args.get("entry_hash", ""), request.args.get("key", ""))
        except Exception:  # noqa: BLE001  (no such entry or document: refused like any other)
            abort(404)
        if not is_inside(str(path), roots):
            abort(404)


def _client_errors(fava_app) -> None:
    """Fava answers its own errors about the request (a bad filter, an unknown entry) with 500:
    they are the client's, 400."""
    def _as_400(error: FavaAPIError):
        if request.blueprint == "json_api":
            response = jsonify({"error": error.message})
            response.status_code = 400
            return response
        return render_template("_layout.html", page_title="Error", content=error.message), 400

    fava_app.register_error_handler(FavaAPIError, _as_400)
    # the JSON API's own handler (a blueprint's comes first) answered 500 too
    fava_app.error_handler_spec.setdefault("json_api", {}).setdefault(None, {})[FavaAPIError] = _as_400


# -- the app and the server -----------------------------------------------------------------------


def set_language(app, language: str) -> None:
    """Fava's `language` option for every page: Flask-Babel's locale is `language` (zh or en),
    whatever the browser asks; Fava's own pages and the project's (`fava_ext`) follow it."""
    lang = i18n.normalise(language)
    app.extensions["babel"].locale_selector = lambda: lang


def create_app(ledger_file: Path | str, books_root: Path | str | None = None, db_url: str | None = None, *,
               key_check: KeyCheck | None = None, load: bool = False, language: str | None = None):
    """Fava's Flask app on `ledger_file`, read-only, behind the key gate and the file guard, in
    `language` (None: the books' setting, `i18n.resolve`).

    Raises KeyDatabaseError when the keys cannot be read (nothing is served then)."""
    root = Path(books_root) if books_root is not None else books_root_of(ledger_file)
    check = key_check or KeyCheck(root, db_url)
    app = fava_create_app([str(ledger_file)], read_only=True, load=load)
    set_language(app, i18n.resolve(language, root))
    guard_files(app, root)
    _client_errors(app)
    app.wsgi_app = KeyGate(app.wsgi_app, check.role)  # type: ignore[method-assign]  # Flask's middleware idiom
    app.extensions["ledger_service_keys"] = check
    return app


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def serve(ledger_file: Path, books_root: Path, host: str, port: int, db_url: str | None = None, *,
          announce: Callable[[str], None] | None = None, key_check: KeyCheck | None = None,
          language: str | None = None) -> None:
    """Serve the guarded Fava with cheroot until interrupted. Raises KeyDatabaseError before binding."""
    app = create_app(ledger_file, books_root, db_url, key_check=key_check, language=language)
    check: KeyCheck = app.extensions["ledger_service_keys"]
    bind = "127.0.0.1" if host == "localhost" else host
    say = announce or (lambda text: print(text, flush=True))
    say(f"Fava (read-only) on http://{bind}:{port}/ for {ledger_file}")
    say("log in with any user name and an API key of role finance, auditor or admin as the password "
        "(`ledger-service keys create --role finance`)")
    if check.usable_keys() == 0:
        say("warning: no live API key of role finance, auditor or admin: nobody can log in yet")
    if not is_loopback(bind):
        say(f"warning: listening on {bind}: the API key check stays in force, but HTTP Basic sends the key "
            "in clear text; put a TLS proxy in front")
    server = Server((bind, port), app, numthreads=SERVER_THREADS, server_name="ledger-service-fava")
    try:
        server.start()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        check.dispose()


def fava_main(books_root: Path | str, host: str = "127.0.0.1", port: int = 5000, period: str | None = None,
              announce: Callable[[str], None] | None = None, db_url: str | None = None,
              language: str | None = None) -> None:
    """Bring the ledger up to date, then serve Fava read-only on it (or on one period), behind
    the API key check and the file guard, until interrupted.

    Raises FileNotFoundError (no books, no such period), ValueError (a malformed period) or
    KeyDatabaseError (the API keys cannot be read) before anything is served;
    `announce(text)` is called with each line to show (the address, how to log in); `language`
    (zh, en; None: the books' setting, else en) is the language of every page.
    """
    root = Path(books_root)
    language = i18n.resolve(language, root)  # a bad --lang is refused before anything is written
    check = KeyCheck(root, db_url)  # no key check, no Fava: refused before anything is written
    try:
        try:
            views.update(root)
        except views.ViewError as exc:  # the summaries are written; Fava still starts
            print(f"warning: holder index not extended: {exc} (run `ledger-service verify`)", file=sys.stderr)
        target = ledger_file(root, period)
    except BaseException:
        check.dispose()
        raise
    serve(target, root, host, port, announce=announce, key_check=check, language=language)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ledger_service.fava_app", description=__doc__.splitlines()[0])
    parser.add_argument("--books", required=True, help="the books folder (holds main.beancount)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--period", default=None, help="YYYY-MM: open that month alone")
    parser.add_argument("--lang", default=None, choices=i18n.LANGUAGES,
                        help="the pages' language (default: the books' setting, else en)")
    parser.add_argument("--db", default=None, help="the database of the API keys (default: $DATABASE_URL, "
                                                   "else SQLite in the books)")
    args = parser.parse_args(argv)
    try:
        fava_main(args.books, args.host, args.port, args.period, db_url=args.db, language=args.lang)
    except (FileNotFoundError, ValueError, KeyDatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
