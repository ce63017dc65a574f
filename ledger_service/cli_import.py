"""`ledger-service reconcile` and `ledger-service import-orders` (issue #5), `ledger-service
grant` and `ledger-service import-grants` (issue 13: SV for completed tasks and campaigns).

Registered in cli.py with `main.add_command(...)`, one per command.
As in cli.py, the engine and the importers (SQLAlchemy, Beancount, beangulp) are imported
when a command runs, not when the CLI starts: `ledger-service --help` stays fast.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import date
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .cli_common import fail, lang_option
from .errors import JournalFault, JournalUnavailable, Refusal
from .i18n import gettext as _

err = Console(stderr=True)  # the progress bar
NOT_RECONCILED = 1  # `reconcile`'s exit code when anything is unmatched (2: it could not run)

books_option = click.option("--books", "books", required=True, type=click.Path(path_type=Path),
                            help="The books folder (holds main.beancount).")
db_option = click.option("--db", "db_url", default=None,
                         help="SQLAlchemy URL (default: $DATABASE_URL, else SQLite in the books).")


def open_engine(books: Path, db_url: str | None):
    """The engine on the books (a seam for tests, which run on a fixed clock)."""
    from .engine import Engine  # heavy (SQLAlchemy, Beancount): loaded when a command runs

    return Engine(books, db_url)


def _payers(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, holder = value.rpartition("=")
        if not sep or not name.strip() or not holder.strip():
            raise click.BadParameter(f"{value!r}: expected BANK-NAME=MERCHANT-ID (or =platform)", param_hint="--payer")
        out[name.strip()] = holder.strip()
    return out


@click.command("reconcile")
@books_option
@click.argument("statement", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report as JSON here and as text beside it (.txt).")
@click.option("--window-days", default=3, show_default=True, type=click.IntRange(0, 366),
              help="How many days a bank line may lie from its payout request or deposit.")
@click.option("--payer", "payers", multiple=True, metavar="NAME=ID",
              help="A bank 对方户名 that pays for merchant ID (or =platform); repeatable.")
@click.option("--dry-run", is_flag=True, help="Match and report only: settle nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the text.")
@db_option
@lang_option
def reconcile(books: Path, statement: Path, report_path: Path | None, window_days: int, payers: tuple[str, ...],
              dry_run: bool, as_json: bool, db_url: str | None, lang: str | None) -> None:
    """Match the pool's bank STATEMENT (CSV) to the books and settle the payouts it shows paid.

    Prints the report: matched lines, payouts settled now (with --dry-run: those it would
    settle), unmatched statement lines, unmatched book items, and the bank's balance against
    Backing + PayoutReserve at the end of each day. Running it again on the same statement
    books nothing.

    Exit code: 0 reconciled; 1 NOT reconciled (a line or a book item unmatched, or a
    difference unexplained: a scheduled job can alert on it); 2 the statement or the books
    cannot be read (nothing booked).
    """
    from importers.common import FormatError  # heavy: loaded when the command runs (see the module docstring)

    from .importing import reconcile as run

    try:
        engine = open_engine(books, db_url)
        report = run(engine, statement, window_days, payers=_payers(payers), settle=not dry_run)
    except (Refusal, JournalFault, JournalUnavailable, FileNotFoundError, FormatError) as exc:
        fail(exc)
    if report_path is not None:
        report.write(report_path)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(report.to_text(), nl=False)
        if report_path is not None:
            click.echo(_("report written to %(json)s and %(text)s", json=report_path,
                         text=report_path.with_suffix(".txt")))
    sys.exit(0 if report.ok else NOT_RECONCILED)


@click.command("import-orders")
@books_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the per-row results as JSON here and as text beside it (.txt).")
@db_option
def import_orders(books: Path, file: Path, report_path: Path | None, db_url: str | None) -> None:
    """Book every order of an order export FILE (CSV) through the rules.

    Columns: order_id,date,buyer,merchant,amount_cny,ship_region (date and
    ship_region optional). An order id already booked is skipped ("already booked");
    a refused row books nothing and is listed with its line and reason. Exit code 1
    when any row was rejected.
    """
    from importers.common import FormatError  # heavy: loaded when the command runs (see the module docstring)

    from .importing import import_orders as run

    try:
        engine = open_engine(books, db_url)
        with Progress(TextColumn("orders"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("rows", total=None)
            report = run(engine, file, progress=lambda done, total: bar.update(task, completed=done, total=total))
    except (Refusal, JournalFault, JournalUnavailable, FileNotFoundError, FormatError) as exc:
        fail(exc)
    if report_path is not None:
        report.write(report_path)
    click.echo(report.to_text(), nl=False)
    sys.exit(0 if report.ok else 1)


def _day(_ctx, _param, value: str | None) -> date | None:
    """Exactly YYYY-MM-DD (as cli.py's --date)."""
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise click.BadParameter(f"{value!r} is not YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a calendar date (YYYY-MM-DD)") from None


@click.command("grant")
@books_option
@click.option("--holder", required=True, help="The member granted the SV.")
@click.option("--sv", required=True, help="SV granted, a decimal with at most 4 decimals (20.0000).")
@click.option("--reason", required=True, type=click.Choice(["task", "campaign"]),
              help="Why: a completed task, or a campaign's reward.")
@click.option("--campaign", default=None, help="The campaign id (required with --reason campaign).")
@click.option("--ref", default=None, help="The source's id of what is rewarded (a task completion).")
@click.option("--date", "day", callback=_day, help="Business day to book on (default: today).")
@db_option
def grant(books: Path, holder: str, sv: str, reason: str, campaign: str | None, ref: str | None,
          day: date | None, db_url: str | None) -> None:
    """Grant a member SV for a completed task or a campaign (the finance event `grant`).

    Active SV if the member is active, else locked SV; refused past the rules'
    grant.max_sv_per_holder_per_day and grant.max_sv_per_campaign (exit code 2).
    """
    from .rules.events import parse

    try:
        event = parse("grant", {"holder": holder, "sv": sv, "reason": reason, "campaign": campaign, "ref": ref})
        engine = open_engine(books, db_url)
        booked = engine.submit(event, day)
    except (Refusal, JournalFault, JournalUnavailable, FileNotFoundError) as exc:
        fail(exc)
    posting = booked.entry.postings[0]  # the holder's credit (the rule posts it first)
    state = "active" if posting.account.endswith(":Active") else "locked"
    click.echo(f"granted {-posting.number} SV ({state}) to {holder}: {booked.event_id} on {booked.day}")


@click.command("import-grants")
@books_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the per-row results as JSON here and as text beside it (.txt).")
@db_option
def import_grants(books: Path, file: Path, report_path: Path | None, db_url: str | None) -> None:
    """Book every task completion of FILE (CSV) as an SV grant through the rules.

    Columns: ref,date,holder,sv,reason,campaign (date, reason and campaign
    optional; reason defaults to task). A ref already granted is skipped ("already
    booked"); a refused row (past a ceiling, an unknown member) books nothing and is
    listed with its line and reason. Exit code 1 when any row was rejected.
    """
    from importers.common import FormatError  # heavy: loaded when the command runs (see the module docstring)

    from .importing import import_grants as run

    try:
        engine = open_engine(books, db_url)
        report = run(engine, file)
    except (Refusal, JournalFault, JournalUnavailable, FileNotFoundError, FormatError) as exc:
        fail(exc)
    if report_path is not None:
        report.write(report_path)
    click.echo(report.to_text(), nl=False)
    sys.exit(0 if report.ok else 1)
