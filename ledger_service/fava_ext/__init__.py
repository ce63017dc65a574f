"""The project's Fava extension: three report pages on the ledger tier (issue 4).

Declared in every ledger file by ``custom "fava-extension" "ledger_service.fava_ext"``:

- **Supply** (`SupplyPage`): cap, issued, released, sold, burned, redeemed, circulating, pool,
  the value of the day; charts over time of the value, of circulating supply and the pool,
  and of SP released vs burned per day (inline SVG). From the ledger Fava has loaded.
- **Holder** (`HolderPage`): a holder's locked and active SV, SP and its CNY value, role,
  referrer, region, and their events (50 a page), derived from the journal: the ledger
  tier's holder index (`views.holder_index`, the journal folded through the last closed
  day, checked by `verify`) plus the entries booked since — never the service's database.
- **Audit** (`AuditPage`): the chain head, whether the books are consistent (the last recorded
  `verify`, `audit.record`; re-run in the background when the books changed since), the
  daily checkpoints of the event log (the latest, then one row per closed day, newest first,
  read from the published files `BOOKS/checkpoints/*.json` through `views.event_log`, never
  a database), the ledger's plugin errors, every journal day with its event count and
  closing hash, and a drill-down into one day's entries.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import cast
from urllib.parse import urlencode

import jinja2
import jinja2.runtime
from beancount.core.data import Open
from fava.core import FavaLedger
from fava.ext import FavaExtensionBase
from flask import current_app, has_request_context, request
from flask_babel import get_locale  # type: ignore[import-untyped]  # Fava's i18n (no type hints)
from markupsafe import Markup

from .. import directory, i18n, regions
from ..audit.verify import VERIFIED_OK
from ..i18n import gettext as _
from ..journal import day_file, entry_meta
from ..journal import head as journal_head
from ..views import event_log, signed
from ..views.holder_index import Reader
from ..views.ledger_tier import books_root_of
from . import figures, jobs, svg, vocabulary  # noqa: F401  (vocabulary: the catalog's words from the data)

PER_PAGE = 50
TOP_PER_PAGE = 20  # the Holder page's top lists (two side by side)
_HOLDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _int_arg(name: str, default: int = 1) -> int:
    try:
        return max(1, int(request.args.get(name, default)))
    except (TypeError, ValueError):
        return default


def _date_arg(name: str) -> date | None:
    """Exactly YYYY-MM-DD, else None (not fromisoformat's 20261128 or 2026-W48-1)."""
    value = request.args.get(name, "")
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def link(**params) -> str:
    """A relative link to the current page with these query parameters (others kept)."""
    args = {k: v for k, v in request.args.items() if k not in params}
    args.update({k: v for k, v in params.items() if v not in (None, "")})
    return "?" + urlencode(args)


def _page_language() -> str | None:
    """The language of the page being answered: Flask-Babel's locale (Fava's `language` option,
    set by `fava_app.set_language`); None outside a request."""
    if not has_request_context() or "babel" not in current_app.extensions:  # not Fava's app (the API's)
        return None
    locale = get_locale()
    return "zh" if locale is not None and locale.language == "zh" else "en"


i18n.follow(_page_language)


@jinja2.pass_context
def _page_gettext(context: jinja2.runtime.Context, message: str, **variables: object) -> str:
    """Jinja's new-style gettext on the project's catalog: `_("page %(n)s", n=1)`, the variables
    escaped in an autoescaped template."""
    text = i18n.translations(i18n.current()).gettext(message)
    if context.eval_ctx.autoescape:
        return Markup(text) % variables
    return text % variables


@jinja2.pass_context
def _page_ngettext(context: jinja2.runtime.Context, singular: str, plural: str, num: int, **variables: object) -> str:
    text = i18n.translations(i18n.current()).ngettext(singular, plural, num)
    values = {"num": num, **variables}
    if context.eval_ctx.autoescape:
        return Markup(text) % values
    return text % values


def _translate_value(value: object) -> str:
    """A word from the data (a kind, a role: `vocabulary`) in the page's language, as plain text:
    escaped like any value (never `_()`, whose text is markup)."""
    return i18n.translations(i18n.current()).gettext(str(value))


def account_names(entries) -> dict[str, str]:
    """Each account's display name in the page's language: the `name_zh` metadata of its Open
    directive in Chinese (the ledger tier writes it), the account itself in English."""
    if i18n.current() != "zh":
        return {}
    return {e.account: str(e.meta["name_zh"]) for e in entries if isinstance(e, Open) and "name_zh" in e.meta}


# A page waits this long for its background work before answering "building…": small books
# answer with their data, and no page takes more than 2 s to answer.
FIRST_ANSWER_WAIT_S = 1.5


class _Books:
    """What every page knows: the books folder behind the ledger Fava has loaded."""

    ledger: FavaLedger

    @property
    def books_root(self) -> Path:
        return books_root_of(self.ledger.beancount_file_path)

    @property
    def has_journal(self) -> bool:
        return (self.books_root / "main.beancount").is_file()

    def link(self, **params) -> str:
        return link(**params)

    @cached_property
    def jinja_env(self) -> jinja2.Environment:
        """Fava's environment for the extension's templates, with the project's catalog as `_`,
        `gettext` and `ngettext` (new-style: `_("page %(n)s", n=1)`) and the display filters
        `money` (¥1,234.56), `points` (1,234.5 共享积分), `grouped` and `day` (2026年11月30日)."""
        env: jinja2.Environment = super().jinja_env  # type: ignore[misc]  # FavaExtensionBase's, by the MRO
        # An overlay shares its parent's globals and filters: copied, so that Fava's own `_` stays Fava's.
        env.globals = {**env.globals, "_": _page_gettext, "gettext": _page_gettext, "ngettext": _page_ngettext}
        env.filters = {**env.filters, "money": i18n.money, "points": i18n.points, "grouped": i18n.grouped,
                       "day": i18n.day, "unit": i18n.unit, "tr": _translate_value}
        return env


class SupplyPage(_Books, FavaExtensionBase):
    """Supply of SP, the pool and the value of a point, with charts over time."""

    @property  # Fava reads it at each request: the page's language
    def report_title(self) -> str:  # type: ignore[override]  # a class attribute in FavaExtensionBase
        return _("Supply")

    def __init__(self, ledger, config=None) -> None:
        super().__init__(ledger, config)
        self._supply: figures.Supply | None = None

    def after_load_file(self) -> None:
        self._supply = None

    @property
    def supply(self) -> figures.Supply:
        if self._supply is None:
            self._supply = figures.supply_of_entries(self.ledger.all_entries)
        return self._supply

    def page(self) -> dict:
        supply = self.supply
        day = _date_arg("date")
        report = supply.report(day)
        points = [p for p in supply.points if day is None or p.day <= day]
        prices = [(d, v) for d, v in supply.prices if day is None or d <= day]
        charts = []
        if points:
            charts.append(svg.line_chart(_("Value of a point (CNY per SP)"), [
                {"label": _("value"), "color": "#2a7ab0", "unit": i18n.unit("CNY/SP"), "axis": "left",
                 "points": prices},
            ], chart_id="chart-value"))
            charts.append(svg.line_chart(_("Circulating supply and pool at each day's close"), [
                {"label": _("circulating SP"), "color": "#c0392b", "unit": i18n.unit("SP"), "axis": "left",
                 "points": [(p.day, p.circulating) for p in points]},
                {"label": _("pool CNY"), "color": "#27ae60", "unit": i18n.unit("CNY"), "axis": "right",
                 "points": [(p.day, p.pool) for p in points]},
            ], chart_id="chart-supply"))
            charts.append(svg.bar_chart(_("SP released vs burned per day"), [p.day for p in points], [
                {"label": _("released"), "color": "#2a7ab0", "values": [p.released for p in points]},
                {"label": _("burned"), "color": "#c0392b", "values": [p.burned for p in points]},
            ], chart_id="chart-flows", unit=i18n.unit("SP")))
        rows = [
            ("cap", _("cap"), "SP", _("total SP that may ever be issued")),
            ("issued", _("issued"), "SP", _("released + sold")),
            ("released", _("released"), "SP", _("daily releases")),
            ("sold", _("sold"), "SP", _("against merchant deposits")),
            ("burned", _("burned"), "SP", _("destroyed by orders, net of reversals")),
            ("redeemed", _("redeemed"), "SP", _("payouts (net of cancellations) and redemptions")),
            ("circulating", _("circulating"), "SP", _("issued − burned − redeemed = SP held by everyone")),
            ("pool_cny", _("pool"), "CNY", _("the backing pool")),
            ("value_cny_per_sp", _("value of the day"), "CNY/SP",
             _("the price written for %(day)s", day=i18n.day(report.get("value_date")))),
            ("closing_value_cny_per_sp", _("pool ÷ circulating at the close"), "CNY/SP", _("the next day's value")),
        ]
        flows = figures.day_flows(supply, day)
        flows_pages = max(1, -(-len(flows) // PER_PAGE))
        flows_page = min(_int_arg("flows_page"), flows_pages)
        return {"report": report, "rows": rows, "charts": charts, "day": day,
                "first": supply.points[0].day if supply.points else None, "last": supply.last_day,
                "days": len(supply.points), "rules": supply.rules,
                "flows": flows[(flows_page - 1) * PER_PAGE: flows_page * PER_PAGE], "flows_page": flows_page,
                "flows_pages": flows_pages, "accounts": self._accounts()}

    def _accounts(self) -> list[tuple[str, str]]:
        """(account, display name) of every account the ledger opens, in the page's language."""
        names = account_names(self.ledger.all_entries)
        opens = cast("list[Open]", [e for e in self.ledger.all_entries if isinstance(e, Open)])
        return [(e.account, names.get(e.account, str(e.meta.get("purpose", "")))) for e in opens]


class HolderPage(_Books, FavaExtensionBase):
    """One holder's balances and events, derived from the journal."""

    @property  # Fava reads it at each request: the page's language
    def report_title(self) -> str:  # type: ignore[override]  # a class attribute in FavaExtensionBase
        return _("Holder")

    def page(self) -> dict:
        holder_id = request.args.get("holder", "").strip()
        out: dict = {"holder_id": holder_id, "valid": bool(_HOLDER_ID.match(holder_id)),
                     "has_journal": self.has_journal, "names": directory.read(self.books_root)}
        if not self.has_journal:
            return out
        view = jobs.holder_view(self.books_root)
        view.ensure(wait=FIRST_ANSWER_WAIT_S)
        since = view.since
        out.update(building=view.running, error=view.error, ready=since is not None)
        if since is not None:
            out.update(head=since.head, index_seq=since.index_seq, index_day=since.index_day,
                       since_entries=since.entries, built_s=since.built_s)
        if holder_id and out["valid"] and since is not None:
            params = figures.params_of_entries(self.ledger.all_entries)
            out["holder"] = view.holder(holder_id, params) if params is not None else None
            if out["holder"] is not None and out["holder"].get("region"):
                found = regions.division(str(out["holder"]["region"]))
                out["holder"]["region_name"] = found.name if found is not None else ""
            if out["holder"] is not None:
                events, pages = view.events(holder_id, _int_arg("page"), PER_PAGE)
                out.update(events=events, page=min(_int_arg("page"), pages), pages=pages)
        elif not holder_id:
            out.update(self._index_page())
        return out

    def _index_page(self) -> dict:
        """No holder chosen: the top holders by SP and by active SV, and the holders whose id
        starts with `prefix` (from the holder index, at its last close), each paginated."""
        out: dict = {}
        prefix = request.args.get("prefix", "").strip()
        out["prefix"] = prefix
        out["prefix_valid"] = not prefix or bool(_HOLDER_ID.match(prefix))
        with Reader(self.books_root) as reader:
            if not reader.exists:
                return out
            out["index_day"] = reader.position.closed_day if reader.position else None
            if out["prefix_valid"]:
                page = _int_arg("found_page")
                found, total = reader.search(prefix, (page - 1) * PER_PAGE, PER_PAGE)
                pages = max(1, -(-total // PER_PAGE))
                if page > pages:
                    page = pages
                    found, total = reader.search(prefix, (page - 1) * PER_PAGE, PER_PAGE)
                out.update(found=found, found_total=total, found_page=page, found_pages=pages)
        rank = jobs.ranking(self.books_root)
        rank.ensure(wait=FIRST_ANSWER_WAIT_S)
        out.update(ranking_building=rank.running, ranking_error=rank.error, ranking_day=rank.day)
        for name, rows in (("sp", rank.by_sp), ("sv", rank.by_sv)):
            pages = max(1, -(-len(rows) // TOP_PER_PAGE))
            page = min(_int_arg(f"top_{name}_page"), pages)
            out[f"top_{name}"] = list(enumerate(rows[(page - 1) * TOP_PER_PAGE: page * TOP_PER_PAGE],
                                                start=(page - 1) * TOP_PER_PAGE + 1))
            out.update({f"top_{name}_page": page, f"top_{name}_pages": pages})
        return out


def _checkpoint_row(root: Path, day: date) -> dict:
    """{day, checkpoint (None: unreadable), signed (the signed object, None: unsigned), error} of one
    published checkpoint file."""
    try:
        return {"day": day, "checkpoint": event_log.read_checkpoint_file(root, day), "signed": signed.read(root, day),
                "error": ""}
    except ValueError as exc:
        return {"day": day, "checkpoint": None, "signed": None, "error": str(exc)}


class AuditPage(_Books, FavaExtensionBase):
    """Chain head, verification, checkpoints, plugin errors, the journal's days and a drill-down into one."""

    @property  # Fava reads it at each request: the page's language
    def report_title(self) -> str:  # type: ignore[override]  # a class attribute in FavaExtensionBase
        return _("Audit")

    def __init__(self, ledger, config=None) -> None:
        super().__init__(ledger, config)
        self._days: list[figures.DayRow] | None = None

    def after_load_file(self) -> None:
        self._days = None

    @property
    def days(self) -> list[figures.DayRow]:
        if self._days is None:
            self._days = figures.days_of_entries(self.ledger.all_entries)
        return self._days

    def page(self) -> dict:
        out: dict = {"has_journal": self.has_journal, "root": str(self.books_root), "verified_ok": VERIFIED_OK}
        days = self.days
        closed = [d for d in days if d.closed]
        out["ledger_head"] = closed[0] if closed else None
        out["errors"] = list(self.ledger.errors)[:100]
        out["error_count"] = len(self.ledger.errors)
        page = _int_arg("days_page")
        pages = max(1, -(-len(days) // PER_PAGE))
        page = min(page, pages)
        out.update(day_rows=days[(page - 1) * PER_PAGE: page * PER_PAGE], days_page=page, days_pages=pages,
                   day_count=len(days))
        if not self.has_journal:
            return out
        out["head"] = journal_head(self.books_root)
        out.update(self._checkpoints())
        job = jobs.verify_job(self.books_root)
        job.ensure(wait=FIRST_ANSWER_WAIT_S)
        out.update(verify=job.result, verify_running=job.running, verify_progress=job.progress,
                   verify_error=job.error, verify_stale=bool(job.result and not job.current()))
        day = _date_arg("day")
        if day is not None:
            out["drill"] = self._drill(day)
        return out

    def _checkpoints(self) -> dict:
        """The latest checkpoint and one page of them, newest first, read from the published files
        (a folder listing, then only the files shown). A file that cannot be read is a row naming why."""
        days = list(reversed(event_log.checkpoint_days(self.books_root)))
        pages = max(1, -(-len(days) // PER_PAGE))
        page = min(_int_arg("checkpoints_page"), pages)
        shown = days[(page - 1) * PER_PAGE: page * PER_PAGE]
        rows = [_checkpoint_row(self.books_root, day) for day in shown]
        latest = (rows[0] if page == 1 else _checkpoint_row(self.books_root, days[0])) if days else None
        return {"checkpoint_rows": rows, "checkpoint_count": len(days), "checkpoints_page": page,
                "checkpoints_pages": pages, "checkpoint_latest": latest}

    def _drill(self, day: date) -> dict:
        rel = day_file(day)
        path = self.books_root / rel
        row = next((d for d in self.days if d.journal == rel), None)
        if not path.is_file():
            return {"day": day, "file": rel, "missing": True}
        entries = jobs.day_entries(path)
        event = request.args.get("event", "").strip()
        page = _int_arg("page")
        if event and "page" not in request.args:
            found = next((i for i, e in enumerate(entries) if e.event == event), None)
            if found is not None:
                page = found // PER_PAGE + 1
        pages = max(1, -(-len(entries) // PER_PAGE))
        page = min(page, pages)
        last_hash = entry_meta(entries[-1].text).get("hash", "") if entries else ""
        shown = entries[(page - 1) * PER_PAGE: page * PER_PAGE]
        return {"day": day, "file": rel, "missing": False, "entries": shown,
                "count": len(entries), "page": page, "pages": pages, "event": event, "row": row,
                "last_hash": last_hash, "goods": self._goods(shown)}

    def _goods(self, entries: list) -> dict[str, str]:
        """event id -> what the order bought, from the books' directory (`names.tsv`), for the orders shown."""
        names = directory.read(self.books_root)
        out: dict[str, str] = {}
        if not names:
            return out
        for e in entries:
            if e.kind == "order" and e.event:
                found = names.get(entry_meta(e.text).get("order_id", ""))
                if found:
                    out[e.event] = found
        return out
