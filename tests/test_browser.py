"""The finance team's view in a real browser (issue 4): Fava on the ledger tier, with the extension.

Debian's chromium (`apt-get install -y chromium`, done by .ci/run), headless, driven by
Playwright's Python package against a Fava the test starts with `ledger-service fava`
(`python -m ledger_service.fava_app` before the CLI has `--period`) on a copy of the demo
books, logged in with a finance key (HTTP Basic, the browser context's credentials). It opens the balance sheet, the Supply page (its charts drawn), a Holder page for a
demo holder and the Audit page (its checkpoint table), and asserts that the numbers shown equal
`ledger-service supply --json` and the holder's balances from the API. Issue 14: the Income
Statement and Balance Sheet read positive, the Holder page with no id (top holders, prefix
search), the Supply page's day-by-day table, and the API's /docs drawn with every request to a
host other than 127.0.0.1 aborted (Playwright's route), as on a machine with no internet. Screenshots are
saved under artifacts/ (git-ignored). Skipped only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import re
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest

from ledger_books import TODAY, FixedClock, copy_books, demo_books

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"
SUPPLY_KEYS = ("cap", "issued", "released", "sold", "burned", "redeemed", "circulating", "pool_cny",
               "value_cny_per_sp", "closing_value_cny_per_sp")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fava_command(books: Path, port: int) -> list[str]:
    cli = [sys.executable, "-m", "ledger_service.cli"]
    helptext = subprocess.run(cli + ["fava", "--help"], capture_output=True, text=True).stdout
    if "--period" in helptext:  # the CLI serves the ledger tier
        return cli + ["fava", "--books", str(books), "--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "ledger_service.fava_app", "--books", str(books), "--host", "127.0.0.1",
            "--port", str(port)]


def _finance_key(books: Path) -> str:
    from ledger_service.store import keys as key_store
    from ledger_service.store.db import database_url, make_engine, sessions

    db = make_engine(database_url(books))
    with sessions(db)() as session, session.begin():
        _, secret = key_store.create(session, "finance", "test_browser")
    db.dispose()
    return secret


FINANCE_KEY: dict[str, str] = {}


def _start_fava(books: Path, *extra: str):
    """(process, base url, log) of a Fava started on `books` with `extra` arguments, once it answers."""
    port = _free_port()
    log = open(books.parent / f"fava-{port}.log", "w")
    proc = subprocess.Popen(_fava_command(books, port) + list(extra), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            login = urllib.request.Request(base + "/", headers={"Authorization": "Basic " + base64.b64encode(
                f"finance:{FINANCE_KEY['key']}".encode()).decode()})
            with urllib.request.urlopen(login, timeout=5) as answer:
                assert answer.status == 200
                break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise AssertionError(f"Fava did not start: {(books.parent / f'fava-{port}.log').read_text()}")
            time.sleep(0.3)
    return proc, base, log


def _stop(proc, log) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base url, books) of a Fava started on a copy of the demo books (FINANCE_KEY["key"] logs in)."""
    books = copy_books(demo_books(tmp_path_factory), tmp_path_factory.mktemp("browser") / "books")
    FINANCE_KEY["key"] = _finance_key(books)
    proc, base, log = _start_fava(books)
    yield base, books
    _stop(proc, log)


@pytest.fixture(scope="module")
def served_zh(served):
    """The base url of a second Fava on the same books, in Chinese (`ledger-service fava --lang zh`)."""
    _base, books = served
    proc, base, log = _start_fava(books, "--lang", "zh")
    yield base
    _stop(proc, log)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1360, "height": 1800},
                                  http_credentials={"username": "finance", "password": FINANCE_KEY["key"]})
    page = context.new_page()
    yield page
    context.close()


def _number(text: str) -> Decimal:
    return Decimal(text.replace("\u2212", "-").replace(",", "").replace("\u202f", "").replace("\xa0", "").split()[0])


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"fava-{name}.png"), full_page=True)


def _supply_cli(books: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "ledger_service.cli", "supply", "--books", str(books), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _slug_url(base: str, page) -> str:
    page.goto(base + "/")
    page.wait_for_selector("aside")
    return page.url.rsplit("/", 2)[0]  # …/<slug>/income_statement/ -> …/<slug>


def _figures(page, scope: str) -> dict[str, str]:
    return page.eval_on_selector_all(
        f"{scope} [data-figure]", "els => Object.fromEntries(els.map(e => [e.dataset.figure, e.textContent.trim()]))")


def test_balance_sheet_and_supply_page(served, page):
    base, books = served
    supply = _supply_cli(books)
    root = _slug_url(base, page)
    # the sidebar lists the extension's three reports
    aside = page.inner_text("aside")
    for title in ("Supply", "Holder", "Audit"):
        assert title in aside, aside
    page.goto(root + "/balance_sheet/")
    backing = page.wait_for_selector('[data-account-name="Assets:Pool:Backing"]')
    pool = backing.evaluate("el => el.parentElement.querySelector('span.num').textContent")
    assert _number(pool) == Decimal(supply["pool_cny"])
    holders = page.query_selector('[data-account-name="Liabilities:Holders:SP"]')
    held = holders.evaluate("el => el.parentElement.textContent")  # SP sits in the 'other' column
    # what the platform owes reads positive (the ledger's fava-option inverts liabilities, issue 14)
    assert _number(re.search(r"([\u2212-]?[\d,.]+)\s*SP", held).group(1)) == Decimal(supply["circulating"])
    _shot(page, "balance-sheet")
    # the Supply page, reached through the sidebar like a user would (Fava's router loads it)
    page.click("aside a:text-is('Supply')")
    page.wait_for_selector("svg#chart-supply polyline.ls-series")
    assert "/extension/SupplyPage/" in page.url
    shown = _figures(page, "#supply-figures")
    assert {k: shown[k] for k in SUPPLY_KEYS} == {k: supply[k] for k in SUPPLY_KEYS}
    for chart in ("chart-value", "chart-supply", "chart-flows"):
        box = page.locator(f"svg#{chart}").bounding_box()
        assert box and box["width"] > 300 and box["height"] > 80, (chart, box)
    points = page.locator("svg#chart-supply polyline[data-series='circulating SP']").get_attribute("points")
    assert len(points.split()) > 3
    assert page.locator("svg#chart-flows rect").count() > 10
    _shot(page, "supply")


def test_holder_page(served, page):
    base, books = served
    from ledger_service.api.app import create_app
    from ledger_service.store import keys as key_store

    app = create_app(books, clock=FixedClock(TODAY))
    engine = app.extensions["ledger_engine"]
    with engine.Session() as session, session.begin():
        _key_id, key = key_store.create(session, "auditor", "browser test")
    from sqlalchemy import select

    from ledger_service.store.models import HolderRow

    with engine.Session() as session:
        holder = session.scalar(select(HolderRow.id).where(HolderRow.kind == "member", HolderRow.active.is_(True),
                                                           HolderRow.referrer.is_not(None)).order_by(HolderRow.id))
    api = app.test_client().get(f"/v1/holders/{holder}", headers={"Authorization": f"Bearer {key}"}).get_json()
    engine.dispose()
    root = _slug_url(base, page)
    url = f"{root}/extension/HolderPage/?holder={quote(holder)}"
    deadline = time.monotonic() + 60
    while True:
        page.goto(url)
        if page.query_selector("#holder-figures") or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)  # "building…": the replay runs in the background
    shown = _figures(page, "#holder-figures")
    for key_name in ("sv_locked", "sv_active", "sp", "sp_value_cny"):
        assert shown[key_name] == api[key_name], (key_name, shown, api)
    assert shown["referrer"] == api["referrer"] and shown["region"] == (api.get("region") or "—")
    assert page.locator("#holder-events tbody tr").count() > 0
    _shot(page, "holder")
    # the holder's form: another id typed in and submitted
    page.fill("#holder-id", api["referrer"])
    page.click("#holder-submit")
    page.wait_for_selector(f"#holder-shown:text-is('{api['referrer']}')")


def test_audit_page(served, page):
    base, books = served
    root = _slug_url(base, page)
    deadline = time.monotonic() + 90
    while True:
        page.goto(root + "/extension/AuditPage/")
        status = page.get_attribute("#verify-status", "data-ok")
        if status != "running" or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)
    assert status == "true", page.inner_text("article")[:2000]
    from ledger_service.journal import head as journal_head

    head = journal_head(books)
    shown = _figures(page, "#audit-head")
    assert shown["head_seq"] == head["seq"] and shown["head_hash"] == head["hash"]
    assert page.locator("#audit-days tbody tr").count() == 8
    # the checkpoints: the latest, and one row per closed day, newest first, as the files publish them
    files = sorted((books / "checkpoints").glob("????-??-??.json"), reverse=True)
    published = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    assert len(published) == 7
    shown = _figures(page, "#checkpoint-latest")
    assert {k: shown["checkpoint_" + k] for k in ("day", "last_seq", "head", "log_size", "log_root")} == {
        k: str(published[0][k]) for k in ("day", "last_seq", "head", "log_size", "log_root")}
    table = page.locator("#audit-checkpoints")
    box = table.bounding_box()
    assert table.is_visible() and box["height"] > 100 and box["x"] + box["width"] <= 1360  # the hashes wrap
    cells = page.eval_on_selector_all(
        "#audit-checkpoints tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))")
    assert cells == [[c["day"], str(c["last_seq"]), c["head"], str(c["log_size"]), c["log_root"], c["key"][:16] + "…"]
                     for c in published]  # signed: the key's first 16 hex digits (the whole key in its title)
    assert "ledger_verify.py inclusion" in page.inner_text("#checkpoints-commands")
    _shot(page, "audit")
    page.locator("#checkpoints").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "fava-audit-checkpoints.png"))
    # drill down into one day's entries (Fava's router follows the link)
    page.locator("#audit-days a", has_text="entries").nth(3).click()
    page.wait_for_selector("#drill-entries tbody tr")
    assert page.locator("#drill-entries tbody tr").count() > 5
    _shot(page, "audit-day")


def _offline(context) -> list[str]:
    """Block every request not to 127.0.0.1 (as a machine with no internet); the blocked URLs."""
    blocked: list[str] = []

    def route(request_route) -> None:
        if urlparse(request_route.request.url).hostname == "127.0.0.1":
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)
    return blocked


def test_income_statement_and_balance_sheet_read_positive(served, page):
    """Issue 14: revenue, what the platform owes and its equity read positive (Fava's
    invert-income-liabilities-equity, set in the ledger tier), so the platform is not shown at a loss."""
    base, books = served
    root = _slug_url(base, page)
    page.goto(root + "/income_statement/")
    income = page.wait_for_selector('[data-account-name="Income"]')
    total = income.evaluate("el => el.parentElement.querySelector('span.num').textContent")
    assert _number(total) > 0, total
    assert "\u2212" not in total and "-" not in total
    net = page.wait_for_selector('[data-account-name="Net Profit"]')
    assert _number(net.evaluate("el => el.parentElement.querySelector('span.num').textContent")) > 0
    _shot(page, "income-statement")
    page.goto(root + "/balance_sheet/")
    liabilities = page.wait_for_selector('[data-account-name="Liabilities"]').evaluate(
        "el => el.parentElement.textContent")
    numbers = [_number(n) for n in re.findall(r"[\u2212-]?\d[\d,]*\.\d+", liabilities)]
    assert numbers and all(n > 0 for n in numbers), liabilities  # CNY payable, SP and SV held
    # equity in CNY (earnings, pool contributions) reads positive; in SP and SV it is the
    # contra of what holders hold, so it reads negative once inverted
    equity = page.wait_for_selector('[data-account-name="Equity"]')
    assert _number(equity.evaluate("el => el.parentElement.querySelector('span.num').textContent")) > 0


def test_holder_page_without_an_id(served, page):
    """Issue 14: the Holder page with no id shows the top holders and a search by id prefix."""
    base, _books = served
    root = _slug_url(base, page)
    deadline = time.monotonic() + 60
    while True:
        page.goto(root + "/extension/HolderPage/")
        if page.query_selector("#top-sp") or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)
    for table in ("#top-sp", "#top-sv"):
        assert page.locator(f"{table} tbody tr").count() > 5, table
    sps = [_number(t) for t in page.eval_on_selector_all("#top-sp [data-figure=sp]", "els => els.map(e => e.textContent)")]
    assert sps == sorted(sps, reverse=True) and sps[0] > 0
    first = page.locator("#top-sp tbody tr a").first.inner_text()
    _shot(page, "holder-index")
    page.fill("#holder-prefix", first[:2])
    page.click("#holder-search-submit")
    page.wait_for_selector("#holder-found tbody tr")
    found = page.eval_on_selector_all("#holder-found tbody tr a", "els => els.map(e => e.textContent)")
    assert found and all(h.startswith(first[:2]) for h in found) and found == sorted(found)
    page.locator("#holder-found tbody tr a").first.click()
    page.wait_for_selector("#holder-figures")


def test_supply_page_says_why_the_value_moves(served, page):
    base, _books = served
    root = _slug_url(base, page)
    page.goto(root + "/extension/SupplyPage/")
    page.wait_for_selector("#supply-days tbody tr")
    assert page.locator("#supply-days tbody tr").count() >= 7
    assert "pool ÷ circulating" in page.inner_text("#supply-why-help")
    page.locator("#supply-why").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "fava-supply-why.png"))


@pytest.fixture(scope="module")
def api_server(served):
    """The API (`create_app`) on a copy of the books, served by werkzeug in a thread on 127.0.0.1."""
    from werkzeug.serving import make_server

    from ledger_service.api.app import create_app

    _base, books = served
    app = create_app(books, clock=FixedClock(TODAY))
    server = make_server("127.0.0.1", _free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    app.extensions["ledger_engine"].dispose()


def test_api_docs_render_offline(browser, api_server):
    """Issue 14: /docs draws every operation with the network blocked: Swagger UI's files come
    from the package (no CDN), and the page asks nothing of any other host."""
    context = browser.new_context(viewport={"width": 1360, "height": 1800})
    blocked = _offline(context)
    page = context.new_page()
    try:
        page.goto(api_server + "/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        spec = json.loads(urllib.request.urlopen(api_server + "/openapi.json", timeout=10).read())
        operations = sum(len([m for m in ops if m in ("get", "post", "put", "patch", "delete")])
                         for ops in spec["paths"].values())
        assert page.locator(".opblock").count() == operations > 10
        assert "/v1/orders" in page.inner_text("#swagger-ui")
        assert blocked == [], blocked
        _shot(page, "api-docs")
    finally:
        context.close()


# English words a Chinese page of the project may show: proper names and standards.
ALLOWED_IN_CHINESE = {"Ed", "RFC", "Beancount", "Fava", "ASCII", "VIP"}
PROJECT_PAGES = (("supply", "extension/SupplyPage/", "Supply of SP", "共享积分供应量"),
                 ("holders", "extension/HolderPage/", "Top holders", "主要持有人"),
                 ("holder", "extension/HolderPage/?holder=s00001", "can take orders", "可接单"),
                 ("audit", "extension/AuditPage/", "Chain head", "链头"))


def test_each_project_page_in_both_languages(served, served_zh, browser):
    """Issue 16: each page of the project drawn in English and in Chinese (screenshots
    fava-en-*.png and fava-zh-*.png, the CJK font in use), the Chinese ones with no English
    word but proper names, with ¥ amounts and the sidebar's titles in Chinese."""
    for lang, base in (("en", served[0]), ("zh", served_zh)):
        context = browser.new_context(viewport={"width": 1360, "height": 1800},
                                      http_credentials={"username": "finance", "password": FINANCE_KEY["key"]})
        page = context.new_page()
        try:
            root = _slug_url(base, page)
            sidebar = page.inner_text("aside")
            assert all(t in sidebar for t in (("Supply", "Holder", "Audit") if lang == "en"
                                              else ("供应量", "持有人", "审计"))), sidebar
            for name, path, english, chinese in PROJECT_PAGES:
                page.goto(f"{root}/{path}")
                page.wait_for_selector("article h2")
                for _ in range(100):  # the Holder and Audit pages may answer "building…" first
                    text = page.inner_text("article")
                    if "building" not in text and "正在" not in text and "verifying" not in text:
                        break
                    time.sleep(0.2)
                    page.reload()
                    page.wait_for_selector("article h2")
                _shot(page, f"{lang}-{name}")
                assert (english if lang == "en" else chinese) in text, (lang, name)
                if lang == "zh":
                    visible = page.evaluate("""() => { const a = document.querySelector('article').cloneNode(true);
                        a.querySelectorAll('code, pre, script, style').forEach(e => e.remove()); return a.innerText; }""")
                    assert sorted(set(re.findall(r"[A-Za-z][A-Za-z_'-]+", visible)) - ALLOWED_IN_CHINESE) == [], name
                    assert english not in text
            page.goto(f"{root}/extension/SupplyPage/")
            pool = page.inner_text('[data-figure="pool_cny"]')
            assert pool.startswith("¥") if lang == "zh" else not pool.startswith("¥")
        finally:
            context.close()
