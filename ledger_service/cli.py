"""`ledger-service`: the command line of the books.

Each command imports the heavy modules it runs (the engine and SQLAlchemy, `verify` and
Beancount, Fava) when it runs, so that `ledger-service --help` and a mistyped option answer
at once; nothing else is imported inside a function.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import config, i18n
from .cli_common import fail, lang_option
from .errors import JournalFault, JournalUnavailable, Refusal
from .journal import Books
from .logs import configure as configure_logs
from .rules.events import EventKind
from .text import describe, plural, refused_char

log = logging.getLogger("ledger_service.cli")  # (not __name__: `python -m` runs it as __main__)
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode (`serve`)
console = Console(stderr=False)
err = Console(stderr=True)


def _date(_ctx, _param, value: str | None) -> date | None:
    """Exactly YYYY-MM-DD (not fromisoformat's 20261128 or 2026-W48-1)."""
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise click.BadParameter(f"{value!r} is not YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a calendar date (YYYY-MM-DD)") from None


def _text(_ctx, _param, value: str | None) -> str | None:
    """Free text: none of the characters `ledger_service.text` refuses (controls, U+2028, bidi, …)."""
    bad = refused_char(value) if value is not None else None
    if bad:
        raise click.BadParameter(f"{describe(bad)} is not allowed")
    return value


books_option = click.option("--books", "books", required=True, type=click.Path(path_type=Path),
                            help="The books folder (holds main.beancount).")
db_option = click.option("--db", "db_url", default=None,
                         help="SQLAlchemy URL (default: $DATABASE_URL, else SQLite in the books).")


class _Main(click.Group):
    """The command group: a database error (unreachable server, bad URL) is one line on
    stderr, exit 2, never a traceback nor the URL's password."""

    def invoke(self, ctx):
        from sqlalchemy.exc import ArgumentError, DBAPIError

        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            reason = str(exc.orig or exc).strip().splitlines() or ["no reason given"]
            _fail(ConnectionError(f"database unavailable: {reason[0].strip()}"))
        except ArgumentError as exc:
            _fail(ValueError(f"database URL: {exc}"))
        except config.ConfigError as exc:  # BOOKS/service.toml or $LEDGER_IDEMPOTENCY_RETENTION_DAYS
            _fail(exc)


@click.group(cls=_Main)
def main() -> None:
    """Double-entry, hash-chained books of a shared-purchase points platform."""
    configure_logs()  # the service's log lines: JSON on stderr (README "Operating it")


_fail = fail


@main.command()
@books_option
@click.option("--profile", default="seed-a", show_default=True, help="seed-a, seed-b or a TOML file.")
@click.option("--start", callback=_date, help="First business day (default: today).")
@db_option
@click.option("--lang", type=click.Choice(i18n.LANGUAGES), default=i18n.DEFAULT_LANGUAGE, show_default=True,
              help="The books' language (Fava's pages): settings.toml.")
def init(books: Path, profile: str, start: date | None, db_url: str | None, lang: str) -> None:
    """Create the books: database, main.beancount, the genesis entry with the rules."""
    from .engine import Engine

    try:
        engine = Engine.init(books, config.load(profile), start=start, db_url=db_url)
    except (Refusal, config.ConfigError) as exc:
        _fail(exc)
    i18n.write_books_language(books, lang)
    head = engine.head()
    console.print(f"books initialised at {books} (rules {engine.params.profile}), open day {head['open_day']}")
    console.print("permissions: the books folder and its folders are 0700, every file in them 0600 (the owner alone)")


@main.command("close-day")
@books_option
@click.option("--date", "day", callback=_date, help="Close every open day up to this one (default: yesterday).")
@db_option
def close_day(books: Path, day: date | None, db_url: str | None) -> None:
    """Book the daily release of every open business day up to DATE."""
    from .engine import Engine

    try:
        engine = Engine(books, db_url)
        booked = engine.close_days(day)
    except (Refusal, JournalFault, JournalUnavailable, FileNotFoundError) as exc:
        _fail(exc)
    releases = [b for b in booked if b.kind == EventKind.RELEASE]
    for b in releases:
        console.print(f"closed {b.day}: released {b.entry.get('released_sp')} SP at {b.entry.get('value')} CNY/SP")
    if not releases:
        console.print("nothing to close: every ended day is closed")


@main.command()
@books_option
@click.option("--date", "day", callback=_date, help="The report at the close of this day (default: now).")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@lang_option
def supply(books: Path, day: date | None, db_url: str | None, as_json: bool, lang: str | None) -> None:
    """Cap, issued, released, sold, burned, redeemed, circulating, pool, value."""
    from .engine import Engine

    try:
        report = Engine(books, db_url).supply(day)
    except (Refusal, FileNotFoundError) as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps(report))
    else:
        _print_supply(report)


def _print_supply(report: dict) -> None:
    """The supply table, each figure labelled by the day it is for: a closed day's report is the
    position at its close (its last row: the value its close set for the next day), an open
    day's the position now."""
    day = report.get("date", "")
    closed = bool(report.get("closed"))
    _ = i18n.gettext
    table = Table(title=_("SP supply at the close of %(day)s", day=i18n.day(day)) if closed
                  else _("SP supply as of %(day)s", day=i18n.day(day)))
    table.add_column(_("figure"))
    table.add_column(_("amount"), justify="right")
    labels = [("cap", _("cap"), "SP"), ("issued", _("issued"), "SP"), ("released", "  " + _("released"), "SP"),
              ("sold", "  " + _("sold"), "SP"), ("burned", _("burned"), "SP"), ("redeemed", _("redeemed"), "SP"),
              ("circulating", _("circulating"), "SP"), ("pool_cny", _("pool"), "CNY"),
              ("value_cny_per_sp", _("value of a point on %(day)s", day=i18n.day(day)), "CNY/SP"),
              ("closing_value_cny_per_sp", _("pool ÷ circulating at the close of %(day)s", day=i18n.day(day)) if closed
               else _("pool ÷ circulating now"), "CNY/SP")]
    for key, label, unit in labels:
        if key in report:
            amount = (i18n.money(report[key]) if unit == "CNY" and i18n.current() == "zh"
                      else i18n.points(report[key], unit))
            table.add_row(label, amount)
    console.print(table)


@main.command()
@books_option
@db_option
@click.option("--no-db", is_flag=True, help="Check the journal alone (no database needed).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--jobs", type=click.IntRange(0, 64), default=None,
              help="Worker processes that parse upcoming journal files while verify replays "
                   "(0: parse in verify's own process). Default: 1 when 2 or more CPUs are available, else 0.")
@lang_option
def verify(books: Path, db_url: str | None, no_db: bool, as_json: bool, jobs: int | None, lang: str | None) -> None:
    """Re-derive everything from the journal alone; exit 1 on any fault, each located."""
    from .audit.stream import DayStream, default_jobs

    # The parse workers start first (forked before any thread or file of verify's exists) and
    # parse the first day files while the rest of verify is imported.
    days = DayStream(Books(books), default_jobs() if jobs is None else jobs) if Books(books).exists() else None
    try:  # the workers stop whatever happens (an error, Ctrl-C, a failed check below)
        from .audit import record
        from .audit.verify import VERIFIED_OK
        from .audit.verify import verify as run_verify
        from .store.db import NoDatabase, database_url, sqlite_file

        stray = None if no_db else sqlite_file(database_url(books, db_url))
        if stray is not None and not stray.exists() and Books(books).exists():  # never create an empty one
            _fail(NoDatabase(f"no database found ({stray} is absent): name the books' database with --db URL "
                             "or $DATABASE_URL (books on PostgreSQL), or check the journal alone with --no-db"))
        files = len(days.paths) if days is not None else 0
        fingerprint, started = record.fingerprint(books), time.monotonic()
        with Progress(TextColumn("verify"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=as_json) as bar:
            task = bar.add_task("files", total=files)
            report = run_verify(books, db_url, use_db=not no_db, progress=lambda _p: bar.advance(task), days=days)
    finally:
        if days is not None:
            days.close()  # (verify closed it already, unless it never ran)
    if files:  # the Audit page shows this record until the books change (ledger/verified.json)
        record.write(books, record.result_of(report, fingerprint, time.monotonic() - started, "ledger-service verify"))
    if as_json:
        console.print_json(json.dumps(report.to_json()))
        sys.exit(0 if report.ok else 1)
    for warning in report.warnings:
        click.echo(f"warning: {warning}")  # one line each, like faults (a warning does not fail verify)
    for fault in report.faults:
        click.echo(f"FAULT {fault}")  # one line each, never wrapped: grep- and click-able
    _ = i18n.gettext
    if report.supply:
        _print_supply({**report.supply, "date": report.open_day})
        console.print(_("entries %(entries)s in %(files)s files; holders %(holders)s; chain head seq %(seq)s %(hash)s",
                        entries=report.entries, files=report.files, holders=report.holders, seq=report.head_seq,
                        hash=report.head_hash))
        console.print(_("rounding residue (control account − Σ holders): ")
                      + ", ".join(f"{k} {v}" for k, v in report.residue.items()))
        console.print(_("database: ") + (_("agrees with the journal") if report.db_checked and report.ok
                                         else _("checked") if report.db_checked else _("not checked (--no-db)")))
    console.print(f"[green]{_(VERIFIED_OK)}[/green]" if report.ok
                  else f"[red]{i18n.ngettext('%(num)d fault', '%(num)d faults', len(report.faults))}[/red]")
    sys.exit(0 if report.ok else 1)


@main.command()
@books_option
@click.option("--members", default=300, show_default=True)
@click.option("--merchants", default=20, show_default=True)
@click.option("--days", default=10, show_default=True)
@click.option("--orders-per-day", type=int, default=None, help="Default: members ÷ 10 (at least 10).")
@click.option("--seed", default=1, show_default=True)
@click.option("--profile", default="seed-a", show_default=True)
@click.option("--batch", default=10_000, show_default=True, type=click.IntRange(1, 10_000),
              help="Events per commit (1: each event its own commit).")
@click.option("--stats", "stats_path", type=click.Path(path_type=Path), default=None,
              help="Also write the figures printed at the end to this JSON file.")
@db_option
@click.option("--lang", type=click.Choice(i18n.LANGUAGES), default=None,
              help="The books' language (Fava's pages; new books: zh).")
def demo(books: Path, members: int, merchants: int, days: int, orders_per_day: int | None, seed: int,
         profile: str, batch: int, stats_path: Path | None, db_url: str | None, lang: str | None) -> None:
    """Simulate a platform through the engine (initialises the books if needed)."""
    from . import demo as demo_module

    new_books = not Books(books).exists()

    started = time.perf_counter()
    with Progress(TextColumn("day {task.fields[day]} {task.fields[phase]:<8}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[events]:>12,} events  {task.fields[rate]:>6,.0f}/s"),
                  TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task("days", total=days, day="", phase="init", events=0, rate=0.0)

        def progress(day, phase: str, stats) -> None:
            rate = stats.events / max(1e-9, time.perf_counter() - started)
            bar.update(task, completed=stats.days, day=day.isoformat(), phase=phase, events=stats.events, rate=rate)

        try:
            engine, stats = demo_module.run(books, config.load(profile), members, merchants, days, seed, orders_per_day,
                                            progress=progress, db_url=db_url, batch=batch)
        except (Refusal, JournalFault, config.ConfigError, FileNotFoundError) as exc:
            _fail(exc)
    if new_books or lang:
        i18n.write_books_language(books, lang or i18n.DEFAULT_LANGUAGE)
    seconds = time.perf_counter() - started
    _print_plan(demo_module.PLATFORM, members, merchants, days, orders_per_day)
    console.print(f"booked: {dict(sorted(stats.booked.items()))}")
    console.print(f"refused by the rules (nothing booked): {dict(sorted(stats.refused.items()))}")
    _print_supply(engine.supply())
    engine.dispose()
    figures = _demo_figures(books, stats, seconds, batch, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    _print_demo_figures(figures)
    if stats_path is not None:
        stats_path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    console.print(f"check it: bean-check -C {books}/main.beancount && ledger-service verify --books {books}"
                  + ("" if db_url is None else " --db URL"))  # -C: never Beancount's pickle cache


def _print_plan(plan, members: int, merchants: int, days: int, orders_per_day: int | None) -> None:
    """What the simulation assumed (README, "The demo's platform"): a finance reader can judge
    whether the value of a point moves as it should."""
    orders = orders_per_day if orders_per_day is not None else max(10, int(members * plan.orders_per_member_day))
    console.print(f"simulated platform: {members:,} members, {merchants:,} stores, {days} days, "
                  f"{orders:,} orders a day")
    for line in plan.lines():
        console.print(f"  {line}")


def _demo_figures(books: Path, stats, seconds: float, batch: int, peak_rss_mib: float) -> dict:
    from .demo import PHASES

    def size(paths) -> int:
        return sum(p.stat().st_size for p in paths if p.is_file())

    journal = list((Path(books) / "journal").rglob("*.beancount"))
    return {
        "events": stats.events, "days": stats.days, "seconds": round(seconds, 1),
        "events_per_s": round(stats.events / max(seconds, 1e-9), 1), "batch": batch, "commits": stats.commits,
        "split_batches": stats.split, "tried_alone": stats.tried_alone,
        "phases": {name: {"seconds": round(stats.seconds[name], 1), "events": stats.phase_events[name]}
                   for name in PHASES if name in stats.seconds},
        "booked": dict(sorted(stats.booked.items())), "refused": dict(sorted(stats.refused.items())),
        "peak_rss_mib": round(peak_rss_mib, 1), "journal_files": len(journal), "journal_bytes": size(journal),
        "ledger_bytes": size((Path(books) / "ledger").rglob("*")),
        "sqlite_bytes": size(Path(books).glob("ledger.sqlite*")),
    }


def _print_demo_figures(figures: dict) -> None:
    table = Table(title=f"{figures['events']:,} events in {figures['seconds']:,.1f} s: "
                        f"{figures['events_per_s']:,.0f} events/s")
    for column in ("phase", "seconds", "events", "events/s"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for name, phase in figures["phases"].items():
        rate = phase["events"] / phase["seconds"] if phase["seconds"] else 0
        table.add_row(name, f"{phase['seconds']:,.1f}", f"{phase['events']:,}",
                      f"{rate:,.0f}" if phase["events"] else "")
    console.print(table)
    mib = 1024 * 1024
    console.print(f"commits {figures['commits']:,} (batches of up to {figures['batch']:,} events; "
                  f"{figures['split_batches']:,} split to isolate a refusal; {figures['tried_alone']:,} events "
                  f"expected to be refused tried alone)")
    console.print(f"peak RSS {figures['peak_rss_mib']:,.0f} MiB; journal {figures['journal_bytes'] / mib:,.1f} MiB "
                  f"in {figures['journal_files']} files; ledger tier {figures['ledger_bytes'] / mib:,.1f} MiB; "
                  f"SQLite {figures['sqlite_bytes'] / mib:,.1f} MiB")


# Request threads per gunicorn worker: above 1, gthread with group commit (README "Throughput: group
# commit across requests": measured against 1, the sync worker, in BENCHMARKS.md).
SERVE_THREADS = 8


@main.command()
@books_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=SERVE_THREADS, show_default=True, type=int,
              help="Request threads per worker; above 1 their bookings share commits (group commit).")
@db_option
def serve(books: Path, host: str, port: int, workers: int, threads: int, db_url: str | None) -> None:
    """Serve the API with gunicorn: N worker processes on the same books and database."""
    refused: Exception | None = None
    if not Books(books).exists():
        refused = FileNotFoundError(f"no books at {books}: run `ledger-service init --books {books}` first")
    elif not 1 <= workers <= 64:
        refused = ValueError("--workers must be between 1 and 64")
    elif not 1 <= threads <= 256:
        refused = ValueError("--threads must be between 1 and 256")
    else:
        try:
            config.load_service(books)
        except config.ConfigError as exc:
            refused = exc
    if refused is not None:
        log.error("start refused: %s", refused, extra={"fields": {"event": "start.refused"}})
        _fail(refused)
    env = dict(os.environ, LEDGER_BOOKS=str(Path(books).resolve()), LEDGER_THREADS=str(threads))
    if db_url:
        env["DATABASE_URL"] = db_url
    if not env.get(METRICS_DIR_ENV):  # /metrics adds up every worker's counters from files in this folder
        env[METRICS_DIR_ENV] = str(_fresh_metrics_dir(Path(books)))
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # (each request is one JSON log line on stderr with its id: gunicorn's own access log is off)
    worker = "ProblemThreadWorker" if threads > 1 else "ProblemWorker"  # their own 400s as problem+json
    args = [str(gunicorn), "--workers", str(workers), "--threads", str(threads), "--bind", f"{host}:{port}",
            "--timeout", "120", "--graceful-timeout", "10", "--no-control-socket",
            "--worker-class", f"ledger_service.api.gunicorn_worker.{worker}", "ledger_service.api.wsgi:app"]
    console.print(f"API on http://{host}:{port}/ (docs /docs, OpenAPI /openapi.json), {workers} workers × "
                  f"{threads} threads")
    os.execve(str(gunicorn), args, env)


@main.command()
@books_option
@click.option("--to", "to", required=True, type=click.Path(path_type=Path), help="The archive to write (tar.gz).")
@db_option
def backup(books: Path, to: Path, db_url: str | None) -> None:
    """A consistent snapshot of live books (journal, database, ledger tier, keys) with a manifest."""
    from .ops.archive import BackupError
    from .ops.backup import backup as take_backup

    try:
        manifest = take_backup(books, to, db_url)
    except (BackupError, OSError) as exc:
        _fail(exc)
    head = manifest["head"]
    console.print(f"backup written to {to}: head seq {head['seq']} {head['hash']}, {len(manifest['files'])} files, "
                  f"{manifest['database']['kind']} database; writer lock held {manifest['lock_held_ms']} ms")


@main.command()
@click.option("--from", "source", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The archive `backup` wrote.")
@books_option
@db_option
@click.option("--no-verify", is_flag=True, help="Do not run `verify` on the restored books.")
def restore(source: Path, books: Path, db_url: str | None, no_verify: bool) -> None:
    """Restore books from a backup into a new folder (and database); refuses a damaged archive."""
    from .audit.verify import verify as run_verify
    from .ops.archive import BackupError
    from .ops.restore import restore as run_restore

    try:
        manifest = run_restore(source, books, db_url)
    except (BackupError, OSError) as exc:
        _fail(exc)
    head = manifest["head"]
    console.print(f"restored {len(manifest['files'])} files to {books}: head seq {head['seq']} {head['hash']}")
    if no_verify:
        return
    report = run_verify(books, db_url)
    for fault in report.faults:
        click.echo(f"FAULT {fault}")
    if not report.ok:
        sys.exit(1)
    console.print(f"verify: ok (chain head seq {report.head_seq})")


def _fresh_metrics_dir(books: Path) -> Path:
    """The multiprocess metrics folder of these books' server, emptied for this start:
    $TMPDIR/ledger-metrics-<uid>-<first 16 hex digits of SHA-256 of the books' absolute path>, 0700."""
    tag = hashlib.sha256(str(books.resolve()).encode("utf-8")).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"ledger-metrics-{os.getuid()}-{tag}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    return folder


@main.group()
def prove() -> None:
    """Proofs anyone can check: an event's inclusion in a checkpoint, a checkpoint extending another,
    a holder's leaf in the liabilities tree."""


def _write_proof(proof: dict, out: Path | None) -> None:
    text = json.dumps(proof, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {out}")


def _prove(books: Path, make) -> dict:
    if not Books(books).exists():
        _fail(FileNotFoundError(f"no books at {books}"))
    try:
        return make()
    except (Refusal, JournalFault) as exc:
        _fail(exc)
        raise  # (unreachable: _fail exits)


@prove.command("event")
@books_option
@click.argument("event_id", callback=_text)
@click.option("--checkpoint", "checkpoint_day", callback=_date, help="The checkpoint's day (default: the latest).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the JSON here (default: stdout).")
def prove_event(books: Path, event_id: str, checkpoint_day: date | None, out: Path | None) -> None:
    """The inclusion proof of EVENT_ID (E000000042; P… for a price) against a checkpoint."""
    from .views import event_log

    _write_proof(_prove(books, lambda: event_log.inclusion_proof(books, event_id, checkpoint_day)), out)


@prove.command("consistency")
@books_option
@click.option("--from", "from_day", required=True, callback=_date, help="The earlier checkpoint's day.")
@click.option("--to", "to_day", required=True, callback=_date, help="The later checkpoint's day.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the JSON here (default: stdout).")
def prove_consistency(books: Path, from_day: date, to_day: date, out: Path | None) -> None:
    """The consistency proof between the checkpoints of two days."""
    from .views import event_log

    _write_proof(_prove(books, lambda: event_log.consistency_proof(books, from_day, to_day)), out)


@prove.command("holder")
@books_option
@click.argument("holder_id", callback=_text)
@click.option("--date", "day", callback=_date, help="The liabilities checkpoint's day (default: the latest).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the JSON here (default: stdout).")
def prove_holder(books: Path, holder_id: str, day: date | None, out: Path | None) -> None:
    """HOLDER_ID's leaf, salt and path with sums in the liabilities tree of a closed day."""
    from .views import liabilities

    _write_proof(_prove(books, lambda: liabilities.holder_proof(books, holder_id, day)), out)


@main.group("signing-key")
def signing_key() -> None:
    """The books' Ed25519 signing key: show the public keys, rotate the key in force."""


@signing_key.command("show")
@books_option
@db_option
def signing_key_show(books: Path, db_url: str | None) -> None:
    """The genesis key, each rotation and the key in force, as JSON (`GET /v1/signing-keys`)."""
    from .engine import Engine

    click.echo(json.dumps(Engine(books, db_url).signing_keys(), indent=2) + "\n", nl=False)


@signing_key.command("rotate")
@books_option
@db_option
def signing_key_rotate(books: Path, db_url: str | None) -> None:
    """Book a new key, signed by the key in force; the old one is kept under BOOKS/keys/retired/."""
    from .engine import Engine

    try:
        booked = Engine(books, db_url).rotate_signing_key()
    except (Refusal, JournalFault) as exc:
        _fail(exc)
        raise
    console.print(f"signing key rotated in {booked.event_id}: the key in force is {booked.entry.get('public_key')}")


@main.group()
def keys() -> None:
    """API keys: who may call the API and log in to Fava.

    \b
    create   a new key for a role; its secret is printed once (only a digest is stored)
    list     every key: id, role, state, created, last used (by the API), name
    revoke   revoke a key by its id: it stops working at once
    \b
    Roles: storefront (members, orders, …), finance (deposits, payouts, closing days; Fava),
    auditor (reads; Fava), admin (keys and reads; Fava)."""


def _key_session(books: Path, db_url: str | None):
    from .store import migrate
    from .store.db import NoDatabase, database_url, make_engine, sessions

    try:
        db = make_engine(database_url(books, db_url))
    except NoDatabase as exc:  # the books' database is elsewhere: never create an empty SQLite file
        _fail(exc)
    if migrate.current(db) not in (None, migrate.head()):  # books of an older schema: upgraded first
        with Books(books).lock():
            migrate.upgrade(db)
    return sessions(db)()


@keys.command("create")
@books_option
@click.option("--role", required=True, type=click.Choice(["storefront", "finance", "auditor", "admin"]))
@click.option("--name", default="", callback=_text, help="Who the key is for.")
@db_option
def keys_create(books: Path, role: str, name: str, db_url: str | None) -> None:
    """A new key for ROLE; its secret is printed once, on the last line (only a digest is kept)."""
    from .store import keys as key_store

    with _key_session(books, db_url) as session, session.begin():
        key_id, secret = key_store.create(session, role, name)
    console.print(f"key {key_id} ({role}) — keep this secret, it is not shown again:")
    print(secret)


@keys.command("list")
@books_option
@db_option
def keys_list(books: Path, db_url: str | None) -> None:
    """Every key, oldest first: id, role, state, created (UTC), last used by the API (a day), name."""
    from .store import keys as key_store

    with _key_session(books, db_url) as session:
        rows = key_store.listing(session)
    if not rows:
        print("no keys yet: `ledger-service keys create --books BOOKS --role ROLE` makes one")
        return
    print(f"{'id':<12}  {'role':<10}  {'state':<24}  {'created (UTC)':<16}  {'last used':<10}  name")
    for row in rows:
        state = f"revoked {row.revoked:%Y-%m-%d %H:%M}" if row.revoked else "live"
        used = f"{row.last_used:%Y-%m-%d}" if row.last_used else "never"
        print(f"{row.id:<12}  {row.role:<10}  {state:<24}  {row.created:%Y-%m-%d %H:%M}  {used:<10}  {row.name}")


@keys.command("revoke")
@books_option
@click.argument("key_id")
@db_option
def keys_revoke(books: Path, key_id: str, db_url: str | None) -> None:
    """Revoke the key KEY_ID (the id `keys list` shows, not the secret): refused from now on."""
    from .store import keys as key_store

    with _key_session(books, db_url) as session, session.begin():
        if not key_store.revoke(session, key_id):
            _fail(LookupError(f"there is no live key with the id {key_id} (see `ledger-service keys list "
                              f"--books {books}`)"))
    console.print(f"key {key_id} revoked")


@main.command()
@books_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--period", default=None, metavar="YYYY-MM", help="Open one month alone: its opening balances and days.")
@db_option
@click.option("--lang", type=click.Choice(i18n.LANGUAGES), default=None,
              help="The pages' language, zh or en (default: the books' setting in settings.toml, else en).")
def fava(books: Path, host: str, port: int, period: str | None, db_url: str | None, lang: str | None) -> None:
    """Browse the ledger tier in Fava, read-only, with the Supply, Holder and Audit pages.

    Log in with any user name and an API key of role finance, auditor or admin as the password
    (HTTP Basic); the keys are read from the books' database (--db, $DATABASE_URL)."""
    from .fava_app import KeyDatabaseError, fava_main

    if not Books(books).main.is_file():
        _fail(FileNotFoundError(f"no books at {books}: run `ledger-service demo --books {books}` first"))
    try:
        fava_main(books, host, port, period, db_url=db_url, language=lang,
                  announce=lambda text: click.echo(text, nl=True))  # never wrapped
    except (FileNotFoundError, ValueError, KeyDatabaseError, OSError) as exc:
        _fail(exc)


DEMO_KEY_NAMES = {"storefront": "demo storefront", "finance": "demo finance"}


def demo_keys(engine) -> tuple[str, str, int]:
    """New storefront and finance keys for the demo platform, the earlier starts' demo keys
    revoked in the same transaction: (storefront secret, finance secret, keys revoked)."""
    from .store import keys as key_store

    with engine.Session() as session, session.begin():
        earlier = [k for name in DEMO_KEY_NAMES.values() for k in key_store.live_named(session, name)]
        for key_id in earlier:
            key_store.revoke(session, key_id)
        _, storefront = key_store.create(session, "storefront", DEMO_KEY_NAMES["storefront"])
        _, finance = key_store.create(session, "finance", DEMO_KEY_NAMES["finance"])
    return storefront, finance, len(earlier)


@main.command()
@books_option
@click.option("--api-port", default=8000, show_default=True, type=int)
@click.option("--fava-port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@db_option
@click.option("--lang", type=click.Choice(i18n.LANGUAGES), default=None,
              help="Fava's language (new books: zh; sets the books' setting).")
def platform(books: Path, api_port: int, fava_port: int, workers: int, db_url: str | None, lang: str | None) -> None:
    """The demo platform: demo books if absent, checked; the API and Fava side by side."""
    from . import demo as demo_module
    from .audit.verify import VERIFIED_OK
    from .audit.verify import verify as run_verify
    from .engine import Engine

    if not Books(books).exists():
        console.print(f"simulating a platform into {books} …")
        _print_plan(demo_module.PLATFORM, 300, 20, 10, None)
        demo_module.run(books, config.load("seed-a"), 300, 20, 10, 1, db_url=db_url)
        i18n.write_books_language(books, lang or i18n.DEFAULT_LANGUAGE)
    elif lang:
        i18n.write_books_language(books, lang)
    engine = Engine(books, db_url)
    engine.close_days()
    report = run_verify(books, db_url)
    console.print(VERIFIED_OK if report.ok
                  else f"[red]{plural(len(report.faults), 'fault')}: run ledger-service verify[/red]")
    storefront, finance, earlier = demo_keys(engine)
    if earlier:
        console.print(f"revoked the {plural(earlier, 'demo key')} of an earlier start; new ones below")
    engine.dispose()
    me = [sys.executable, "-m", "ledger_service.cli"]
    # the URL goes by environment, not argv: a password in it stays out of `ps`
    env = dict(os.environ, DATABASE_URL=db_url) if db_url else None
    api = subprocess.Popen(me + ["serve", "--books", str(books), "--port", str(api_port), "--workers", str(workers)],
                           env=env)
    fava_proc = subprocess.Popen(me + ["fava", "--books", str(books), "--port", str(fava_port)], env=env,
                                 stdout=subprocess.DEVNULL)  # its lines are said below
    for line in (f"API   http://127.0.0.1:{api_port}/docs   storefront key: {storefront}",
                 f"                                      finance key:    {finance}",
                 f"Fava  http://127.0.0.1:{fava_port}/   (read-only)     "
                 "log in: any user name, password = the finance key",
                 "Ctrl-C stops both"):
        click.echo(line)  # never wrapped: the keys are copied from here
    try:
        while api.poll() is None and fava_proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (api, fava_proc):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (api, fava_proc):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


from .cli_import import grant, import_grants, import_orders, reconcile  # noqa: E402  (commands of their own module)

main.add_command(reconcile)
main.add_command(import_orders)
main.add_command(grant)
main.add_command(import_grants)

if __name__ == "__main__":  # pragma: no cover
    main()
