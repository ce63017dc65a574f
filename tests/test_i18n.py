"""中文 / English (issue 16): the catalog, the Fava pages in both languages, the CLI reports.

- the catalog (`ledger_service/translations/zh/LC_MESSAGES/ledger_service.po`) holds every
  message the sources mark (extracted with babel's API, as `pybabel extract` does), none
  untranslated, none fuzzy, none obsolete, and each translation keeps its `%(name)s`
  placeholders (babel's checkers);
- the Supply, Holder and Audit pages in Chinese show no English phrase of the catalog and no
  English word but a few proper names, with ¥ amounts, 年月日 dates and the accounts'
  `name_zh`; in English they are as before; the language comes from `--lang` / the books'
  `settings.toml`;
- `supply`, `verify` and `reconcile` speak Chinese with `--lang zh` or `LANG=zh_CN.UTF-8`, and
  their JSON is the same in both languages.
"""

from __future__ import annotations

import json
import re
import time
from html import unescape
from pathlib import Path
from urllib.parse import quote

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from click.testing import CliRunner
from fava.util import slugify

from ledger_service import accounts, i18n
from ledger_service.views import ledger_tier

from ledger_books import CLOSED, copy_books, demo_books, engine_on
from test_fava_pages import finance_login
from test_importers import PAYERS, pool, statement  # noqa: F401  (fixtures: the pool's books and bank statement)

REPO = Path(__file__).resolve().parent.parent
# English words a Chinese page may show: proper names and standards.
ALLOWED_WORDS = {"Ed", "RFC", "Beancount", "Fava", "ASCII", "VIP"}


@pytest.fixture(autouse=True)
def _english_after():
    yield
    i18n.use("en")  # the CLI's --lang sets the process's report language: back to the default


# -- the catalog ---------------------------------------------------------------------------------


def _catalog():
    with i18n.po_path("zh").open("rb") as fh:
        return read_po(fh, locale="zh", domain=i18n.DOMAIN)


def _extracted() -> set:
    method_map = [("ledger_service/**.py", "python"), ("ledger_service/fava_ext/templates/**.html", "jinja2")]
    options = {"ledger_service/fava_ext/templates/**.html": {"extensions": "jinja2.ext.do,jinja2.ext.loopcontrols"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "T_": None, "T_n": (1, 2)}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(REPO), method_map, options, keywords):
        found.add(message)
    return found


def test_the_catalog_is_complete_and_its_translations_keep_their_placeholders():
    catalog = _catalog()
    ids = {m.id for m in catalog if m.id}
    assert len(ids) > 200
    untranslated = [m.id for m in catalog if m.id and not all(m.string if isinstance(m.string, tuple)
                                                                  else (m.string,))]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert (untranslated, fuzzy) == ([], [])
    extracted = _extracted()
    assert sorted(map(str, extracted - ids)) == []  # marked in the sources, missing from the catalog
    assert sorted(map(str, ids - extracted)) == []  # obsolete: no source uses it
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalog.check()]
    assert problems == []
    for m in catalog:
        if not m.id:
            continue
        ids_ = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert set(re.findall(r"%\(\w+\)", ids_[0])) == set(re.findall(r"%\(\w+\)", strings[0])), m.id
    # the terms of the source documents
    zh = i18n.translations("zh")
    assert (zh.gettext("SV"), zh.gettext("SP"), zh.gettext("pool"), zh.gettext("release"), zh.gettext("burned"),
            zh.gettext("deposit"), zh.gettext("payout")) == ("共享值", "共享积分", "托底资金池", "释放", "销毁",
                                                             "保证金", "变现/提现")


def test_display_formats():
    assert i18n.money("1234.56", "zh") == "¥1,234.56"
    assert i18n.money("-0.5", "zh") == "-¥0.50"
    assert i18n.money("1234.56", "en") == "1234.56"
    assert i18n.day("2026-11-30", "zh") == "2026年11月30日"
    assert i18n.day("2026-11-30", "en") == "2026-11-30"
    i18n.use("zh")
    assert i18n.points("12345.5") == "12,345.5 共享积分"
    i18n.use("en")
    assert i18n.points("12345.5") == "12345.5 SP"
    assert [i18n.normalise(v) for v in ("zh_CN.UTF-8", "zh-CN", "en_US", "EN")] == ["zh", "zh", "en", "en"]
    with pytest.raises(i18n.LanguageError):
        i18n.normalise("fr")
    assert i18n.report_language(None, {"LANG": "zh_CN.UTF-8"}) == "zh"
    assert i18n.report_language(None, {"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}) == "en"
    assert i18n.report_language(None, {}) == "en"
    assert i18n.report_language("zh", {"LANG": "C"}) == "zh"


# -- the Fava pages ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    return copy_books(demo_books(tmp_path_factory), tmp_path_factory.mktemp("i18n") / "books")


class Pages:
    def __init__(self, books: Path, language: str | None) -> None:
        from ledger_service.fava_app import create_app

        self.app = create_app(books / ledger_tier.LEDGER_MAIN, load=True, language=language)
        self.client = self.app.test_client()
        self.login = finance_login(books)
        self.ledger = self.app.config["LEDGERS"].ledgers[0]
        self.slug = quote(slugify(self.ledger.options["title"]))

    def get(self, path: str) -> str:
        deadline = time.monotonic() + 60
        while True:
            response = self.client.get(f"/{self.slug}/{path}", headers=self.login)
            assert response.status_code == 200, (path, response.status_code)
            html = response.get_data(as_text=True)
            if not re.search(r'id="(holder-building|ranking-building)"|data-ok="running"', html) \
                    or time.monotonic() > deadline:
                return html
            time.sleep(0.2)


@pytest.fixture(scope="module")
def zh(books) -> Pages:
    return Pages(books, "zh")


@pytest.fixture(scope="module")
def en(books) -> Pages:
    return Pages(books, "en")


PAGES = ("extension/SupplyPage/", "extension/HolderPage/", "extension/HolderPage/?holder=m0000002",
         "extension/HolderPage/?holder=s00001", "extension/HolderPage/?holder=nobody",
         "extension/HolderPage/?prefix=m00", "extension/AuditPage/", f"extension/AuditPage/?day={CLOSED[2]}")


def visible_text(html: str) -> str:
    """The extension's content as a reader sees it: no code, commands, scripts or styles."""
    body = re.search(r"<article.*?</article>", html, re.S)
    assert body, "no page content"
    text = re.sub(r"<(script|style|pre|code)[^>]*>.*?</\1>", " ", body.group(0), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", text)))


@pytest.mark.parametrize("path", PAGES)
def test_chinese_pages_show_no_english(zh: Pages, path: str):
    text = visible_text(zh.get(path))
    assert re.search(r"[\u4e00-\u9fff]", text)
    english = sorted({w for w in re.findall(r"[A-Za-z][A-Za-z_'-]+", text)} - ALLOWED_WORDS)
    assert english == [], (path, english)
    phrases = [m.id for m in _catalog() if isinstance(m.id, str) and " " in m.id and "%" not in m.id
               and "<" not in m.id]
    assert [p for p in phrases if p in text] == []


def test_chinese_supply_page_figures_money_dates_and_account_names(zh: Pages, en: Pages, books: Path):
    html = zh.get("extension/SupplyPage/")
    supply = engine_on(books).supply()
    values = dict(re.findall(r'data-value="([^"]*)" data-figure="(\w+)"', html))
    values = {v: k for k, v in values.items()}
    assert values["pool_cny"] == supply["pool_cny"] and values["circulating"] == supply["circulating"]
    pool = re.search(r'data-figure="pool_cny">([^<]*)<', html).group(1)
    whole, cents = supply["pool_cny"].split(".")
    assert pool == f"¥{int(whole):,}.{cents}"
    assert f"{CLOSED[-1].year}年{CLOSED[-1].month}月{CLOSED[-1].day}日" in html
    assert "积分价值（元/共享积分）" in html and "每日释放与销毁的共享积分" in html  # chart titles
    assert re.search(r'data-account="Assets:Pool:Backing">托底资金池<', html)
    for account, name in accounts.NAME_ZH.items():
        assert f'data-account="{account}">{name}<' in html
    # the sidebar: the pages' titles
    for pages, want in ((zh, {"SupplyPage": "供应量", "HolderPage": "持有人", "AuditPage": "审计"}),
                        (en, {"SupplyPage": "Supply", "HolderPage": "Holder", "AuditPage": "Audit"})):
        with pages.app.test_request_context():
            assert {d.name: d.report_title for d in pages.ledger.extensions.extension_details} == want
    assert "<title>供应量" in html or "供应量 - " in html or re.search(r"<title>[^<]*供应量", html)
    # English: the figures as before, the account's purpose, the English titles
    english = en.get("extension/SupplyPage/")
    assert re.search(r'data-figure="pool_cny">' + re.escape(supply["pool_cny"]) + "<", english)
    assert "Supply of SP as of" in english and "托底资金池" not in english


def test_chinese_holder_page(zh: Pages):
    html = zh.get("extension/HolderPage/?holder=s00001")
    assert "商家" in html and "已缴保证金" in html and "可接单" in html
    value = re.search(r'data-value="([^"]*)" data-figure="deposits_cny">([^<]*)<', html)
    assert value and value.group(2).startswith("¥") and value.group(2).replace("¥", "").replace(",", "") \
        == value.group(1)


def test_language_from_the_books_setting(tmp_path, books: Path):
    root = copy_books(books, tmp_path / "books")
    assert i18n.resolve(None, root) == "en"  # books made before the setting
    i18n.write_books_language(root, "zh")
    assert (root / "settings.toml").stat().st_mode & 0o777 == 0o600
    assert i18n.resolve(None, root) == "zh" and i18n.resolve("en", root) == "en"
    pages = Pages(root, None)
    assert "共享积分供应量" in pages.get("extension/SupplyPage/")
    with pytest.raises(i18n.LanguageError):
        i18n.resolve("fr", root)


def test_the_ledger_tier_names_accounts_in_chinese_and_accepts_an_older_header(tmp_path, books: Path):
    root = copy_books(books, tmp_path / "books")
    main = root / ledger_tier.LEDGER_MAIN
    text = main.read_text(encoding="utf-8")
    assert 'open Assets:Pool:Backing CNY\n  purpose: "' in text and '  name_zh: "托底资金池"\n' in text
    assert text.isascii() is False and all(line.split()[2].isascii() for line in text.splitlines()
                                           if re.match(r"\d{4}-\d\d-\d\d open ", line))
    assert ledger_tier.compare(root) == []
    older = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("  name_zh: "))
    main.write_text(older, encoding="utf-8")
    assert ledger_tier.compare(root) == []  # a display line: an older ledger tier is not a fault


# -- the CLI reports -----------------------------------------------------------------------------


def _cli(args: list[str], env: dict[str, str] | None = None):
    from ledger_service.cli import main

    return CliRunner().invoke(main, args, env=env or {"LANG": "C.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""})


def test_supply_report_in_both_languages(books: Path):
    day = CLOSED[-1].isoformat()
    english = _cli(["supply", "--books", str(books), "--date", day, "--lang", "en"])
    chinese = _cli(["supply", "--books", str(books), "--date", day, "--lang", "zh"])
    by_locale = _cli(["supply", "--books", str(books), "--date", day],
                     env={"LANG": "zh_CN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""})
    assert english.exit_code == chinese.exit_code == by_locale.exit_code == 0, chinese.output
    assert f"SP supply at the close of {day}" in english.output and "pool" in english.output
    assert "共享积分供应量" in chinese.output and "托底资金池" in chinese.output and "¥" in chinese.output
    assert "2026年3月3日" in chinese.output and "SP supply" not in chinese.output
    assert by_locale.output == chinese.output
    as_json = [_cli(["supply", "--books", str(books), "--date", day, "--json", "--lang", lang]).output
               for lang in ("en", "zh")]
    assert as_json[0] == as_json[1] and json.loads(as_json[0])["date"] == day


def test_verify_summary_in_both_languages(tmp_path, books: Path):
    root = copy_books(books, tmp_path / "books")
    english = _cli(["verify", "--books", str(root), "--lang", "en"])
    chinese = _cli(["verify", "--books", str(root), "--lang", "zh"])
    assert english.exit_code == chinese.exit_code == 0, chinese.output
    assert "verified: the books are consistent" in english.output
    assert "核验通过：账簿一致" in chinese.output and "链头序号" in chinese.output
    assert "verified" not in chinese.output
    reports = [json.loads(_cli(["verify", "--books", str(root), "--json", "--lang", lang]).output)
               for lang in ("en", "zh")]
    for report in reports:
        report.pop("seconds", None)
    assert reports[0] == reports[1]


def test_reconcile_report_in_both_languages(tmp_path, statement, pool, monkeypatch, clock):  # noqa: F811
    from ledger_service import cli_import
    from ledger_service.engine import Engine

    monkeypatch.setattr(cli_import, "open_engine", lambda books, db_url: Engine(books, db_url, clock=clock))
    books = str(pool.engine.books.root)
    runner = CliRunner()
    out = {lang: tmp_path / lang / "report.json" for lang in ("en", "zh")}
    results = {lang: runner.invoke(cli_import.reconcile, ["--books", books, str(statement), "--dry-run",
                                                          "--payer", f"{name}={who}", "--lang", lang,
                                                          "--report", str(out[lang])])
               for lang in ("en", "zh") for name, who in PAYERS.items()}
    assert results["en"].exit_code == results["zh"].exit_code == cli_import.NOT_RECONCILED
    assert "Would settle: 3 payouts" in results["en"].output and "RESULT: NOT reconciled" in results["en"].output
    zh = results["zh"].output
    assert "将结清：3 笔提现" in zh and "结果：未对平" in zh and "报告已写入" in zh and "RESULT" not in zh
    text = out["zh"].with_suffix(".txt").read_text(encoding="utf-8")
    assert text.startswith("对账 ") and "未匹配的对账单行：1" in text
    assert "3 天 内没有来自 陌生人 的 88.88 元保证金记账" in text and "no deposit" not in text  # the reasons too
    assert "no deposit of 88.88 CNY from 陌生人 booked within 3 days" in out["en"].with_suffix(".txt").read_text()
    assert json.loads(out["en"].read_text(encoding="utf-8")) == json.loads(out["zh"].read_text(encoding="utf-8"))


def test_words_from_the_data_are_translated_and_escaped(zh: Pages):
    with zh.app.test_request_context():
        env = zh.ledger.extensions.get_extension("SupplyPage").jinja_env
        template = env.from_string('{{ kind|tr }} {{ evil|tr }} {{ _("by %(who)s", who=evil|tr) }}',
                                   template_class=None)
        assert template.render(kind="merchant", evil="<b>x</b>") == \
            "商家 &lt;b&gt;x&lt;/b&gt; 执行者 &lt;b&gt;x&lt;/b&gt;"
        assert zh.app.jinja_env.globals["_"] is not env.globals["_"]  # Fava's own `_` stays Fava's


def test_demo_books_speak_chinese(tmp_path):
    """`ledger-service demo` on new books: the setting zh, the members' and stores' Chinese names
    in BOOKS/names.tsv, regions in 东莞 and 深圳's districts (the ids stay ASCII)."""
    from ledger_service import demo, directory, regions

    root = tmp_path / "books"
    result = _cli(["demo", "--books", str(root), "--members", "30", "--merchants", "3", "--days", "3"])
    assert result.exit_code == 0, result.output
    assert i18n.books_language(root) == "zh" and (root / "names.tsv").stat().st_mode & 0o777 == 0o600
    names = directory.read(root)
    assert names["m0000002"] == demo.member_name("m0000002") == "张伟"
    stores = sorted(k for k in names if k.startswith("s"))
    assert stores and all(k.isascii() for k in names) and all(re.search(r"[\u4e00-\u9fff]", v) for v in names.values())
    assert all(regions.city_of(code) in {"441900", "440300"} for code in demo.REGIONS)
    assert all(regions.division(code).is_city for code in demo.PARTNER_CITIES)
    assert "440305" in demo.REGIONS and demo.store_name("s00003", "440305") == "南山区美妆店"
    # goods: what each order bought, shown beside the order in the Audit page's drill-down
    orders = sorted(k for k in names if k.startswith("o"))
    assert orders and names[orders[0]] == demo.goods_name(orders[0]) and demo.goods_name("o00000004") == "洗衣液 2升 ×1"
    day_file = next(p for p in sorted((root / "journal").rglob("*.beancount"))
                    if f'order_id: "{orders[0]}"' in p.read_text(encoding="utf-8"))
    html = Pages(root, "zh").get(f"extension/AuditPage/?day={day_file.stem}")
    assert f'<span class="ls-goods">{names[orders[0]]}</span>' in html
    # an English demo stays English; the names are names in either language
    english = _cli(["demo", "--books", str(tmp_path / "en"), "--members", "10", "--merchants", "1", "--days", "2",
                    "--lang", "en"])
    assert english.exit_code == 0 and i18n.books_language(tmp_path / "en") == "en"


def test_the_holder_page_shows_the_directorys_names(tmp_path, books: Path):
    from ledger_service import demo, directory

    root = copy_books(books, tmp_path / "books")
    directory.write(root, {"m0000002": demo.member_name("m0000002"), "s00001": demo.store_name("s00001", "440305")})
    pages = Pages(root, "zh")
    html = pages.get("extension/HolderPage/?holder=m0000002")
    assert '<span id="holder-name">张伟</span>' in html
    assert "南山区茶叶店" in pages.get("extension/HolderPage/?prefix=s")
