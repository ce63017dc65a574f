"""The Fava extension on the ledger tier (issue 4), through Fava's own Flask app and test client.

`ledger_service.fava_app.create_app(ledger)` (Fava's `create_app([ledger], read_only=True)`
behind the API key gate, logged in with a finance key) on the demo books' ledger: the
extension is registered by the ledger itself (`custom "fava-extension"`), its three pages
answer, and the numbers they show are the engine's — the supply report, a holder's
balances (derived from the journal, not the database), the chain head — and the balance
sheet Fava computes from the ledger agrees.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import date
from decimal import Decimal
from html import unescape
from pathlib import Path
from urllib.parse import quote

import pytest
from fava.util import slugify

from ledger_service import journal
from ledger_service.views import event_log, ledger_tier
from ledger_service.fava_ext import figures
from ledger_service.journal import day_file

from ledger_books import CLOSED, OPEN_DAY, copy_books, demo_books, engine_on

SUPPLY_KEYS = ("cap", "issued", "released", "sold", "burned", "redeemed", "circulating", "pool_cny",
               "value_cny_per_sp", "closing_value_cny_per_sp")
HOLDER_KEYS = ("sv_locked", "sv_active", "sp", "sp_value_cny")


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return demo_books(tmp_path_factory)


@pytest.fixture(scope="module")
def engine(books: Path):
    engine = engine_on(books)
    yield engine
    engine.dispose()


def finance_login(books_root: Path) -> dict[str, str]:
    """The Authorization header of a new finance key of these books (Fava's login: HTTP Basic)."""
    import base64

    from ledger_service.store import keys as key_store
    from ledger_service.store.db import database_url, make_engine, sessions

    db = make_engine(database_url(books_root))
    with sessions(db)() as session, session.begin():
        _, secret = key_store.create(session, "finance", "test_fava_pages")
    db.dispose()
    return {"Authorization": "Basic " + base64.b64encode(f"finance:{secret}".encode()).decode()}


class Fava:
    def __init__(self, ledger_file: Path) -> None:
        from ledger_service.fava_app import create_app

        self.app = create_app(ledger_file, load=True)
        self.client = self.app.test_client()
        self.login = finance_login(ledger_tier.books_root_of(ledger_file))
        self.ledger = ledger = self.app.config["LEDGERS"].ledgers[0]
        self.slug = quote(slugify(ledger.options["title"]))

    def get(self, path: str, status: int = 200) -> str:
        response = self.client.get(f"/{self.slug}/{path}", headers=self.login)
        assert response.status_code == status, (path, response.status_code)
        return response.get_data(as_text=True)

    def poll(self, path: str, done, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            html = self.get(path)
            if done(html) or time.monotonic() > deadline:
                return html
            time.sleep(0.2)


@pytest.fixture(scope="module")
def fava(books: Path) -> Fava:
    return Fava(books / ledger_tier.LEDGER_MAIN)


def figures_of(html: str) -> dict[str, str]:
    return {k: unescape(v).strip() for k, v in re.findall(r'data-figure="(\w+)">([^<]*)<', html)}


def test_the_extension_is_registered_with_three_pages(fava: Fava):
    ledger = fava.ledger
    details = {d.name: d.report_title for d in ledger.extensions.extension_details}
    assert details == {"SupplyPage": "Supply", "HolderPage": "Holder", "AuditPage": "Audit"}
    assert not ledger.errors, [e.message for e in ledger.errors]
    assert fava.get("extension/NoSuchPage/", status=404)
    # read-only: nothing but GET (405 once logged in; 401 without a key)
    assert fava.client.post(f"/{fava.slug}/api/source", json={}, headers=fava.login).status_code == 405
    assert fava.client.post(f"/{fava.slug}/api/source", json={}).status_code == 401
    assert fava.client.get(f"/{fava.slug}/extension/SupplyPage/").status_code == 401


def test_supply_page_shows_the_engines_supply(fava: Fava, engine):
    html = fava.get("extension/SupplyPage/")
    shown = figures_of(html)
    supply = engine.supply()
    assert not supply["closed"]  # now: the open day holds nothing but its price
    assert {k: shown[k] for k in SUPPLY_KEYS} == {k: supply[k] for k in SUPPLY_KEYS}
    # the charts are drawn: value over time, circulating and pool, released vs burned per day
    for chart, series in (("chart-value", 1), ("chart-supply", 2), ("chart-flows", 2)):
        svg = re.search(rf'<svg id="{chart}".*?</svg>', html, re.S)
        assert svg, chart
        assert len(re.findall(r'class="ls-series"', svg.group(0))) == series
    points = re.search(r'<polyline class="ls-series" data-series="circulating SP" data-count="(\d+)"', html)
    assert int(points.group(1)) == len(CLOSED)
    # as of a closed day: the engine's report at that day's close
    day = date(2026, 2, 28)
    shown = figures_of(fava.get(f"extension/SupplyPage/?date={day.isoformat()}"))
    at_close = engine.supply(day)
    assert {k: shown[k] for k in SUPPLY_KEYS} == {k: at_close[k] for k in SUPPLY_KEYS}


def test_balance_sheet_agrees(fava: Fava, engine):
    html = fava.get("balance_sheet/")
    assert "<article>" in html
    api = json.loads(fava.get("api/balance_sheet"))
    trees = api["data"]["trees"]

    def find(node, name):
        if node["account"] == name:
            return node
        for child in node.get("children", []):
            found = find(child, name)
            if found:
                return found
        return None

    supply = engine.supply()
    pool = find(trees[0], "Assets:Pool:Backing")
    assert Decimal(str(pool["balance"]["CNY"])) == Decimal(supply["pool_cny"])
    holders_sp = find(trees[1], "Liabilities:Holders:SP")
    assert -Decimal(str(holders_sp["balance"]["SP"])) == Decimal(supply["circulating"])


def _demo_holders(engine) -> list[str]:
    """A member with a referrer, the most active merchant, and an inactive member if any."""
    from sqlalchemy import select

    from ledger_service.store.models import HolderRow

    with engine.Session() as session:
        rows = session.execute(select(HolderRow.id, HolderRow.kind, HolderRow.referrer, HolderRow.active)).all()
    member = next(r.id for r in rows if r.kind == "member" and r.referrer and r.active)
    merchant = next(r.id for r in rows if r.kind == "merchant")
    inactive = [r.id for r in rows if r.kind == "member" and not r.active][:1]
    return [member, merchant, *inactive]


def test_holder_page_shows_the_apis_balances(fava: Fava, engine, books: Path):
    for holder in _demo_holders(engine):
        html = fava.poll(f"extension/HolderPage/?holder={holder}", lambda h: "holder-building" not in h)
        shown = figures_of(html)
        api = engine.holder(holder)
        assert {k: shown[k] for k in HOLDER_KEYS} == {k: str(api[k]) for k in HOLDER_KEYS}, holder
        assert shown["role"] == api["role"] and shown["region"] == (api["region"] or "—")
        if api["referrer"]:
            assert f">{api['referrer']}</a>" in html
        events = re.findall(r"<td><code>(journal/[^<]+):(\d+)</code></td>", html)
        assert events, holder
        for rel, lineno in events[:3]:  # each event cites its journal file and line, which names the holder
            lines = (books / rel).read_text(encoding="utf-8").splitlines()
            entry = "\n".join(lines[int(lineno) - 1:int(lineno) + 30])
            assert f'"{holder}"' in entry.split("\n\n")[0]
    assert "No holder" in fava.get("extension/HolderPage/?holder=nobody-here")


def test_holder_events_are_paginated(fava: Fava, engine, monkeypatch):
    import ledger_service.fava_ext as ext

    merchant = _demo_holders(engine)[1]
    fava.poll(f"extension/HolderPage/?holder={merchant}", lambda h: "holder-building" not in h)
    monkeypatch.setattr(ext, "PER_PAGE", 5)
    first = fava.get(f"extension/HolderPage/?holder={merchant}")
    total = int(re.search(r"<h3>Events \((\d+), newest first\)", first).group(1))
    assert total > 10
    pages = -(-total // 5)
    assert f"page 1 of {pages}" in first and 'id="events-next"' in first and 'id="events-prev"' not in first
    seen = []
    for page in range(1, pages + 1):
        html = fava.get(f"extension/HolderPage/?holder={merchant}&page={page}")
        rows = re.findall(r'#(E\d{9})">', html)
        assert len(rows) == (5 if page < pages else total - 5 * (pages - 1))
        seen += rows
    assert len(seen) == total == len(set(seen)) and seen == sorted(seen, reverse=True)


def test_audit_page(fava: Fava, engine, books: Path):
    html = fava.poll("extension/AuditPage/", lambda h: 'data-ok="running"' not in h)
    shown = figures_of(html)
    head = engine.head()
    assert shown["head_seq"] == str(head["seq"]) and shown["head_hash"] == head["hash"]
    assert 'id="verify-status" data-ok="true"' in html and "equals a fresh rebuild" in html
    assert shown["errors"] == "0"
    # every journal day, newest first, with its event count and closing hash
    rows = re.findall(r"<td><code>(journal/[^<]+)</code></td><td class=\"num\" data-events=\"[^\"]+\">(\d+)</td>\s*"
                      r"<td>(?:<code>([0-9a-f]{64})</code>|open)</td>", html)
    assert [r[0] for r in rows] == [day_file(d) for d in reversed([*CLOSED, OPEN_DAY])]
    for rel, events, closing in rows[1:]:
        entries = (books / rel).read_text(encoding="utf-8").count('\n  kind: "')
        assert int(events) == entries - 1  # every entry but the day's price
        assert closing == journal.last_entry(books / rel)["hash"]
    assert shown["ledger_closing_hash"] == rows[1][2]


def test_audit_page_shows_the_checkpoints(fava: Fava, books: Path, monkeypatch):
    import ledger_service.fava_ext as ext

    files = sorted((books / "checkpoints").glob("????-??-??.json"))
    assert [f.stem for f in files] == [d.isoformat() for d in CLOSED]  # one per closed day
    published = {f.stem: json.loads(f.read_text(encoding="utf-8")) for f in files}
    latest = published[CLOSED[-1].isoformat()]
    assert latest == event_log.checkpoint(books)  # the files are the view's checkpoints
    html = fava.get("extension/AuditPage/")
    shown = figures_of(html)
    assert shown["checkpoint_count"] == str(len(CLOSED))
    assert {k: shown["checkpoint_" + k] for k in ("day", "last_seq", "head", "log_size", "log_root")} == {
        k: str(latest[k]) for k in ("day", "last_seq", "head", "log_size", "log_root")}
    # what a checkpoint is, and how to check an event against it
    help_text = unescape(re.search(r'<p id="checkpoints-help">(.*?)</p>', html, re.S).group(1))
    assert "Merkle tree" in help_text and "checkpoint" in help_text
    commands = unescape(re.search(r'<pre id="checkpoints-commands">(.*?)</pre>', html, re.S).group(1))
    assert f"ledger-service prove event --books {books} EVENT_ID --checkpoint {latest['day']}" in commands
    assert f"python verifier/ledger_verify.py inclusion event.json --key {latest['key']}" in commands
    # signed: the key and the liabilities root it signed
    assert shown["checkpoint_key"] == latest["key"]
    assert shown["checkpoint_liabilities_root"] == latest["liabilities"]["root"]

    row = re.compile(r'<tr data-checkpoint="([0-9-]+)"><td>[0-9-]+</td><td class="num">(\d+)</td>'
                     r'<td><code[^>]*>([0-9a-f]{64})</code></td>\s*'
                     r'<td class="num">(\d+)</td><td><code[^>]*>([0-9a-f]{64})</code></td>\s*'
                     r'<td><code title="([0-9a-f]{64})">[0-9a-f]{16}…</code></td></tr>')

    def rows_of(page_html: str) -> list[dict]:
        return [{"day": d, "last_seq": int(s), "head": h, "log_size": int(n), "log_root": r, "key": k}
                for d, s, h, n, r, k in row.findall(page_html)]

    def log_fields(cp: dict) -> dict:
        return {k: cp[k] for k in ("day", "last_seq", "head", "log_size", "log_root", "key")}

    published = {day: log_fields(cp) for day, cp in published.items()}
    assert rows_of(html) == [published[d.isoformat()] for d in reversed(CLOSED)]  # newest first, as published
    # paginated like the page's other tables; the latest stays on every page
    monkeypatch.setattr(ext, "PER_PAGE", 3)
    seen: list[dict] = []
    for page in (1, 2, 3):
        paged = fava.get(f"extension/AuditPage/?checkpoints_page={page}")
        assert f"page {page} of 3" in paged
        assert ('id="checkpoints-newer"' in paged) == (page > 1) and ('id="checkpoints-older"' in paged) == (page < 3)
        assert figures_of(paged)["checkpoint_day"] == latest["day"]
        seen += rows_of(paged)
    assert seen == [published[d.isoformat()] for d in reversed(CLOSED)]
    assert rows_of(fava.get("extension/AuditPage/?checkpoints_page=99")) == seen[-1:]  # past the end: the last page


def test_checkpoint_files_are_read_without_the_database(books: Path, tmp_path: Path):
    root = tmp_path / "books"
    assert event_log.checkpoint_days(root) == []
    shutil.copytree(books / "checkpoints", root / "checkpoints")
    assert not event_log.log_path(root).exists()
    assert event_log.checkpoint_days(root) == CLOSED
    day = CLOSED[2]
    found = event_log.read_checkpoint_file(root, day)
    signed_file = json.loads((books / "checkpoints" / f"{day}.json").read_text(encoding="utf-8"))
    assert found.to_json() == {**{k: signed_file[k] for k in ("day", "last_seq", "head", "log_size", "log_root")},
                               "version": event_log.CHECKPOINT_VERSION}  # the log fields of the signed file
    path = event_log.checkpoint_path(root, day)
    for text, why in (("{", "not JSON"), ("[]", "not a ledger-checkpoint-v1"),
                      (found.text().replace(str(day), str(CLOSED[3])), "the checkpoint of")):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=why):
            event_log.read_checkpoint_file(root, day)
    data = found.to_json()
    data["log_size"] = str(data["log_size"])
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="field log_size"):
        event_log.read_checkpoint_file(root, day)
    path.unlink()
    with pytest.raises(ValueError, match="cannot be read"):
        event_log.read_checkpoint_file(root, day)


def test_audit_page_names_an_unreadable_checkpoint_file(fava: Fava, books: Path, monkeypatch, tmp_path: Path):
    import ledger_service.fava_ext as ext

    root = tmp_path / "books"
    root.mkdir()
    shutil.copytree(books / "checkpoints", root / "checkpoints")
    (root / "checkpoints" / f"{CLOSED[-1]}.json").write_text("{", encoding="utf-8")
    page = ext.AuditPage(fava.ledger)
    monkeypatch.setattr(ext.AuditPage, "books_root", property(lambda self: root))
    with fava.app.test_request_context("/?checkpoints_page=1"):
        out = page._checkpoints()
    assert out["checkpoint_count"] == len(CLOSED)
    assert out["checkpoint_latest"]["checkpoint"] is None and "not JSON" in out["checkpoint_latest"]["error"]
    assert [r["checkpoint"] is not None for r in out["checkpoint_rows"]] == [False] + [True] * (len(CLOSED) - 1)


def test_audit_page_without_checkpoints_or_with_a_bad_file(fava: Fava, monkeypatch):
    import ledger_service.fava_ext as ext

    real = event_log.read_checkpoint_file

    def unreadable_latest(root, day):
        if day == CLOSED[-1]:
            raise ValueError(f"{day}.json: not JSON (forged for the test)")
        return real(root, day)

    monkeypatch.setattr(ext.event_log, "read_checkpoint_file", unreadable_latest)
    html = unescape(fava.get("extension/AuditPage/"))
    assert f"The latest checkpoint file ({CLOSED[-1]}) cannot be read:</strong> {CLOSED[-1]}.json: not JSON" in html
    assert f'<tr data-checkpoint="{CLOSED[-1]}" class="ls-unreadable">' in html
    assert len(re.findall(r'<tr data-checkpoint="', html)) == len(CLOSED)
    monkeypatch.setattr(ext.event_log, "checkpoint_days", lambda root: [])
    html = unescape(fava.get("extension/AuditPage/"))
    assert 'id="checkpoint-latest">No checkpoint yet' in html and 'id="audit-checkpoints"' not in html
    assert "--checkpoint YYYY-MM-DD --out event.json" in html


def test_audit_drill_down_into_one_day(fava: Fava, books: Path, monkeypatch):
    import ledger_service.fava_ext as ext

    monkeypatch.setattr(ext, "PER_PAGE", 10)
    day = CLOSED[1]
    rel = day_file(day)
    text = (books / rel).read_text(encoding="utf-8").splitlines()
    html = fava.get(f"extension/AuditPage/?day={day.isoformat()}")
    count = int(re.search(r"<p>(\d+) entries", html).group(1))
    assert count > 20  # three pages at least
    assert "(the file&#39;s last entry: matches)" in html or "(the file's last entry: matches)" in html
    first_page = re.findall(r'<td class="num">(\d+)</td><td class="num">(\d+)</td>', html)
    assert len(first_page) == 10 and int(first_page[0][0]) == 1
    for lineno, _seq in first_page[:5]:
        assert re.match(r"^\d{4}-\d\d-\d\d ", text[int(lineno) - 1])
    second = fava.get(f"extension/AuditPage/?day={day.isoformat()}&page=2")
    rows = re.findall(r'<td class="num">(\d+)</td><td class="num">(\d+)</td>', second)
    assert rows and int(rows[0][1]) == int(first_page[-1][1]) + 1
    # jumping to one event opens the page that holds it
    event = re.findall(r'<td>(E\d{9})</td>', second)[3]
    jumped = fava.get(f"extension/AuditPage/?day={day.isoformat()}&event={event}")
    assert "page 2 of" in jumped and 'style="background:#fff6c8"' in jumped


def test_a_period_ledger(books: Path, engine):
    period = Fava(books / ledger_tier.period_file("2026-02"))
    shown = figures_of(period.get("extension/SupplyPage/"))
    at_close = engine.supply(date(2026, 2, 28))
    same = [k for k in SUPPLY_KEYS if k not in ("value_cny_per_sp", "closing_value_cny_per_sp")]
    assert {k: shown[k] for k in same} == {k: at_close[k] for k in same}
    march = Fava(books / ledger_tier.period_file("2026-03"))
    supply = engine.supply()
    shown = figures_of(march.get("extension/SupplyPage/"))
    assert {k: shown[k] for k in SUPPLY_KEYS} == {k: supply[k] for k in SUPPLY_KEYS}


def test_audit_page_names_a_tampered_ledger(books: Path, tmp_path: Path):
    root = copy_books(books, tmp_path / "books")
    month = root / ledger_tier.month_file("2026-02")
    month.write_text(month.read_text(encoding="utf-8").replace(
        "Equity:SP:Released  500.0000 SP", "Equity:SP:Released  501.0000 SP", 1).replace(
        "Liabilities:Holders:SP  -500.0000 SP", "Liabilities:Holders:SP  -501.0000 SP", 1), encoding="utf-8")
    fava = Fava(root / ledger_tier.LEDGER_MAIN)
    html = fava.poll("extension/AuditPage/", lambda h: 'data-ok="running"' not in h)
    assert 'data-ok="false"' in html and 'id="ledger-faults"' in html
    assert f"{month}:" in unescape(html) and "[ledger.entry] journal/2026-02/2026-02-25.beancount" in unescape(html)


def test_supply_figures_are_pure():
    supply = figures.Supply()
    assert supply.report()["circulating"] == "0.0000"


def test_holder_page_without_an_id_lists_top_holders_and_searches_by_prefix(fava: Fava, engine, monkeypatch):
    """Issue 14: no id is not an empty box: the top holders by SP and by active SV at the index's
    close (each equal to the engine's figures, largest first), and a search by id prefix, paginated."""
    import ledger_service.fava_ext as ext

    html = fava.poll("extension/HolderPage/", lambda h: "holder-building" not in h and "ranking-building" not in h)
    top = {}
    for table in ("top-sp", "top-sv"):
        body = re.search(rf'<table id="{table}">(.*?)</table>', html, re.S).group(1)
        top[table] = re.findall(r'holder=([\w-]+)[^>]*>[^<]*</a></td>\s*<td>[^<]*</td>\s*'
                                r'<td class="num" data-figure="sp">([^<]*)</td><td class="num" data-figure="sv_active">'
                                r'([^<]*)</td>', body)
        assert len(top[table]) == ext.TOP_PER_PAGE, table
    sps = [Decimal(sp) for _, sp, _ in top["top-sp"]]
    svs = [Decimal(sv) for _, _, sv in top["top-sv"]]
    assert sps == sorted(sps, reverse=True) and sps[0] > 0
    assert svs == sorted(svs, reverse=True) and svs[0] > 0
    # the figures are the holders' balances at the last close (the index's): the API's at that seq
    # differ only by what was booked since, so compare with the journal's fold at the close
    from ledger_service.views.holder_index import Reader

    with Reader(engine.books.root) as reader:
        found, total = reader.search("", 0, 10_000)
    by_id = {r.id: r for r in found}
    assert total == len(found) > ext.TOP_PER_PAGE
    assert [h for h, _, _ in top["top-sp"]] == [r.id for r in sorted(found, key=lambda r: (-r.sp, r.id))][:20]
    assert [h for h, _, _ in top["top-sv"]] == [r.id for r in sorted(found, key=lambda r: (-r.sv_active, r.id))][:20]
    assert all(str(by_id[h].sp) == sp for h, sp, _ in top["top-sp"])
    # a search by prefix: every holder whose id starts with it, in id order, paginated
    prefix = sorted(by_id)[0][:2]
    matching = sorted(h for h in by_id if h.startswith(prefix))
    monkeypatch.setattr(ext, "PER_PAGE", 5)
    seen = []
    page = 1
    while True:
        html = fava.get(f"extension/HolderPage/?prefix={prefix}&found_page={page}")
        assert f"{len(matching)} holders whose id starts with <code>{prefix}</code>" in html
        body = re.search(r'<table id="holder-found">(.*?)</table>', html, re.S).group(1)
        seen += re.findall(r'holder=([\w-]+)', body)
        if 'id="found-next"' not in html:
            break
        page += 1
    assert seen == matching and page == -(-len(matching) // 5)
    assert "0 holders whose id starts with <code>zz9</code>" in fava.get("extension/HolderPage/?prefix=zz9")


def test_supply_page_says_why_the_value_moves(fava: Fava, engine):
    """Issue 14: one row per closed day: SP released, sold, burned, redeemed, the pool's change,
    and the value the close set = pool ÷ circulating (the engine's figures at that close)."""
    html = fava.get("extension/SupplyPage/")
    assert 'id="supply-why"' in html and "A <strong>release</strong> adds SP" in html
    rows = re.findall(r'<tr data-day="([\d-]+)">(.*?)</tr>', html, re.S)
    assert [d for d, _ in rows][: len(CLOSED)] == sorted((d.isoformat() for d in CLOSED), reverse=True)
    previous = None
    for day_text, row in reversed(rows):
        flows = dict(re.findall(r'data-flow="(\w+)">([^<]*)<', row))
        day = date.fromisoformat(day_text)
        if day not in CLOSED:
            continue
        at_close = engine.supply(day)
        assert flows["circulating"] == at_close["circulating"] and flows["pool"] == at_close["pool_cny"]
        assert flows["closing_value"] == at_close["closing_value_cny_per_sp"], (day, flows, at_close)
        if previous is not None:
            for key in ("released", "sold", "burned", "redeemed"):
                assert Decimal(flows[key]) == Decimal(at_close[key]) - Decimal(previous[key]), (day, key)
            assert Decimal(flows["pool_change"]) == Decimal(at_close["pool_cny"]) - Decimal(previous["pool_cny"])
        previous = at_close


def test_the_ledger_inverts_income_liabilities_and_equity(fava: Fava, books: Path):
    """Issue 14: revenue and what the platform owes read positive in Fava (its option, in the
    ledger tier's header), and a ledger tier written before the option still verifies."""
    assert fava.ledger.fava_options.invert_income_liabilities_equity is True
    main = (books / ledger_tier.LEDGER_MAIN).read_text(encoding="utf-8")
    assert ledger_tier.INVERT_OPTION in main
    for path in (books / "ledger").glob("period-*.beancount"):
        assert ledger_tier.INVERT_OPTION in path.read_text(encoding="utf-8")


def test_a_ledger_tier_without_the_invert_option_still_verifies(books: Path, tmp_path: Path):
    copy = copy_books(books, tmp_path / "old")
    for path in [copy / ledger_tier.LEDGER_MAIN, *(copy / "ledger").glob("period-*.beancount")]:
        text = path.read_text(encoding="utf-8")
        old = "".join(line for line in text.splitlines(keepends=True) if ledger_tier.INVERT_OPTION not in line)
        assert old != text
        path.write_text(old, encoding="utf-8")
    assert ledger_tier.compare(copy) == []
    # a ledger edited otherwise is still a fault
    main = copy / ledger_tier.LEDGER_MAIN
    main.write_text(main.read_text(encoding="utf-8").replace('"CNY"', '"USD"', 1), encoding="utf-8")
    assert [f.rule for f in ledger_tier.compare(copy)] == ["ledger.header"]
