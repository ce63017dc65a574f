"""Issue 10 §5: hostile input is refused with 422 (or 400), never answered 500.

- every string of every event (`rules.parse`, so the API, the importers and the CLI alike)
  and every string of every request (JSON keys and values, path segments, query parameters)
  refuses lone surrogates, C0/C1 controls and DEL, U+2028/U+2029, the bidirectional
  embeddings, overrides, isolates and marks, U+FEFF and the noncharacters:
  422 `input.bad_text` naming the field and the code point; nothing booked, nothing stored;
- a JSON body nesting deeper than 32 levels is 422 `input.too_deep` (2,000 levels: no
  RecursionError); a broken chunked body is 400 `request.malformed`, under the Flask test
  client and under gunicorn (raw socket), as is a request gunicorn itself cannot parse;
- dates are exactly YYYY-MM-DD in paths, query strings, bodies and CLI options;
- Fava's Audit drill-down lists the entries Beancount's parser reads from a day file (a
  U+2028 inside a string is not a line break: no phantom `price` entry);
- schemathesis and Hypothesis generate requests whose strings carry those characters.
"""

from __future__ import annotations

import io
import json
import socket
import time
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest
import schemathesis
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import func, select

from ledger_service import rules
from ledger_service.errors import Invalid
from ledger_service.store import models

from api_helpers import (Clock, assert_problem, build_world, make_api, nothing_booked, ok, post_raw)

# One or more characters of every refused class (the classes the README lists).
HOSTILE = {
    "surrogate": ["\ud800", "\udbff", "\udc00", "\udfff"],
    "c0": ["\x00", "\x01", "\t", "\n", "\x0b", "\r", "\x1b", "\x1f"],
    "del-c1": ["\x7f", "\x80", "\x85", "\x9b", "\x9f"],
    "line-paragraph": ["\u2028", "\u2029"],
    "bidi": ["\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
             "\u2066", "\u2067", "\u2068", "\u2069"],
    "bom-noncharacter": ["\ufeff", "\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff"],
}
ALL_HOSTILE = [ch for chars in HOSTILE.values() for ch in chars]
ONE_PER_CLASS = [chars[0] if name != "c0" else "\n" for name, chars in HOSTILE.items()]
NOT_IN_URL = {"\ud800", "\udbff", "\udc00", "\udfff"}  # a URL cannot carry a lone surrogate
PHANTOM = "mug\u20282026-11-30 price SP 99.00000000 CNY"


def code_point(ch: str) -> str:
    return f"U+{ord(ch):04X}"


# -- the rules: one check for every string of every event ----------------------------------

VALID_FIELDS = {
    "register": {"member": "m1", "referrer": "r1", "region": "441900"},
    "set_role": {"member": "m1", "role": "vip"},
    "buy_pack": {"member": "m1", "pack": "activation", "region": "441900"},
    "open_store": {"merchant": "s1", "owner": "o1", "region": "441900", "channel": "offline",
                   "rebate_rate": "0.10", "referrer": "r1"},
    "deposit": {"amount_cny": "10.00", "merchant": "s1", "platform": "false"},
    "order": {"order_id": "o1", "buyer": "b1", "merchant": "s1", "amount_cny": "10.00", "ship_region": "441900"},
    "transfer": {"from_holder": "a", "to_holder": "b", "sp": "1.0000"},
    "payout": {"holder": "a", "sp": "1.0000"},
    "payout_settle": {"payout": "E000000009", "bank_reference": "BANK REF 2026/11 #7"},
    "payout_cancel": {"payout": "E000000009"},
    "redeem": {"holder": "a", "sp": "1.0000", "goods": "咖啡杯 mug — 2 pcs, 👩‍👩‍👧 edition"},
    "reverse": {"event": "E000000009", "amount_cny": "10.00"},
    "grant": {"holder": "a", "sv": "1.0000", "reason": "task", "campaign": "spring", "ref": "t1"},
}


def test_every_client_kind_has_valid_fields():
    assert set(VALID_FIELDS) == set(rules.CLIENT_KINDS)
    for kind, fields in VALID_FIELDS.items():
        assert set(fields) == set(rules.EVENT_TYPES[kind].FIELDS), kind
        rules.parse(kind, fields)  # well formed: parses


@pytest.mark.parametrize("kind", sorted(VALID_FIELDS))
def test_parse_refuses_every_hostile_character_in_every_field(kind):
    tried = 0
    for name in VALID_FIELDS[kind]:
        for ch in ALL_HOSTILE:
            for value in (VALID_FIELDS[kind][name][:1] + ch + VALID_FIELDS[kind][name][1:], ch):
                with pytest.raises(Invalid) as info:
                    rules.parse(kind, {**VALID_FIELDS[kind], name: value})
                assert (info.value.rule, info.value.field) == ("input.bad_text", name), (name, ch, info.value)
                assert info.value.detail.startswith(f"{name}: {code_point(ch)} ")
                assert info.value.detail.endswith(" is not allowed")
                tried += 1
    assert tried == len(VALID_FIELDS[kind]) * len(ALL_HOSTILE) * 2


def test_parse_refuses_the_phantom_price_by_meta_key_too():
    with pytest.raises(Invalid) as info:
        rules.parse("redeem", {"holder": "a", "sp": "1.0000", "goods": PHANTOM}, by_meta_key=True)
    assert info.value.rule == "input.bad_text" and info.value.field == "goods"
    assert info.value.detail == "goods: U+2028 LINE SEPARATOR is not allowed"
    with pytest.raises(Invalid) as info:
        rules.parse("transfer", {"from": "a\u202eb", "to": "b", "sp": "1"}, by_meta_key=True)
    assert info.value.field == "from" and "U+202E RIGHT-TO-LEFT OVERRIDE" in info.value.detail
    with pytest.raises(Invalid) as info:
        rules.parse("redeem", {"holder": "a", "sp": "1.0000", "goods": "mug\ud800"})
    assert info.value.detail == "goods: U+D800 (a lone surrogate) is not allowed"


def test_parse_keeps_ordinary_text():
    for goods in ("咖啡杯", "mug — 2 pcs", "👩‍👩‍👧 (ZWJ)", "كوب", "a\u00a0b", "x" * 200):
        assert rules.parse("redeem", {"holder": "a", "sp": "1", "goods": goods}).goods == goods


# -- the API: every string of every write --------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    api = make_api(tmp_path_factory.mktemp("hostile") / "books", Clock())
    build_world(api)
    ok(api.post("/v1/orders", {"id": "o1", "buyer": "bob", "merchant": "shop1", "amount_cny": "10.00"}))
    api.pending_payout = ok(api.post("/v1/payouts", {"holder": "shop1", "sp": "1.0000"}))["id"]
    yield api
    api.engine.dispose()


def db_rows(engine) -> dict[str, int]:
    """Rows per table: a refused request stores nothing (no event, no idempotency record)."""
    with engine.Session() as session:
        return {table.name: session.execute(select(func.count()).select_from(table)).scalar_one()
                for table in models.Base.metadata.sorted_tables}


# (role, path, body): each books when sent as is (test_the_base_requests_book)
WRITES = {
    "register": ("storefront", "/v1/members", {"id": "newbie", "referrer": "alice", "region": "441900",
                                               "date": "2026-03-31"}),
    "pack": ("storefront", "/v1/members/{member_id}/packs", {"kind": "partner", "region": "441900"}),
    "role": ("finance", "/v1/members/{member_id}/role", {"role": "vip"}),
    "merchant": ("storefront", "/v1/merchants", {"id": "shop9", "owner": "owner", "region": "441900",
                                                 "channel": "online", "rebate_rate": "0.10", "referrer": "alice"}),
    "deposit": ("finance", "/v1/deposits", {"merchant": "shop1", "amount_cny": "10.00"}),
    "order": ("storefront", "/v1/orders", {"id": "o9", "buyer": "bob", "merchant": "shop1",
                                           "amount_cny": "10.00", "ship_region": "441900"}),
    "quote": ("storefront", "/v1/orders/quote", {"id": "o9", "buyer": "bob", "merchant": "shop1",
                                                 "amount_cny": "10.00"}),
    "reverse": ("finance", "/v1/orders/{order_id}/reverse", {"date": "2026-03-31"}),
    "transfer": ("storefront", "/v1/transfers", {"from": "shop1", "to": "alice", "sp": "1.0000"}),
    "payout": ("storefront", "/v1/payouts", {"holder": "shop1", "sp": "1.0000"}),
    "settle": ("finance", "/v1/payouts/{payout_id}/settle", {"bank_reference": "BANK REF 7"}),
    "cancel": ("finance", "/v1/payouts/{payout_id}/cancel", {}),
    "redeem": ("storefront", "/v1/redemptions", {"holder": "shop1", "sp": "1.0000", "goods": "mug"}),
    "grant": ("finance", "/v1/grants", {"holder": "bob", "sv": "1.0000", "reason": "campaign", "campaign": "spring",
                                        "ref": "t1"}),
    "close": ("finance", "/v1/days/{day}/close", None),
}
PATH_VALUES = {"member_id": "carol", "order_id": "o1", "day": "2026-03-30"}


def _path(world, template: str, **override: str) -> str:
    values = {**PATH_VALUES, "payout_id": world.pending_payout}
    values.update(override)
    return template.format(**{k: quote(v, safe="") for k, v in values.items()})


def _slots() -> list:
    """(write, where, name): every body string field and every path parameter of every write."""
    out = []
    for write, (_role, path, body) in WRITES.items():
        for name in body or {}:
            out.append(pytest.param(write, "body", name, id=f"{write}-body-{name}"))
        for name in PATH_VALUES | {"payout_id": ""}:
            if "{" + name + "}" in path:
                out.append(pytest.param(write, "path", name, id=f"{write}-path-{name}"))
    return out


@pytest.mark.parametrize("write, where, name", _slots())
def test_hostile_characters_in_every_string_of_every_write_are_422(world, write, where, name):
    role, template, body = WRITES[write]
    rows = db_rows(world.engine)
    tried = 0
    with nothing_booked(world.engine):
        for ch in ALL_HOSTILE if where == "body" else [c for c in ALL_HOSTILE if c not in NOT_IN_URL]:
            if where == "body":
                value = body[name][:2] + ch + body[name][2:]
                response = world.post(_path(world, template), {**body, name: value}, role=role)
            else:
                value = (PATH_VALUES.get(name) or world.pending_payout)[:2] + ch
                response = world.post(_path(world, template, **{name: value}), body, role=role)
            problem = assert_problem(response, 422, "input.bad_text", name)
            assert problem["detail"].startswith(f"{name}: {code_point(ch)} "), problem
            tried += 1
    assert db_rows(world.engine) == rows
    assert tried >= len(ALL_HOSTILE) - len(NOT_IN_URL)


def test_the_phantom_price_is_refused_and_entry_hash_never_sees_a_surrogate(world, monkeypatch):
    import ledger_service.engine as engine_module

    seen: list[str] = []
    real = engine_module.entry_hash

    def spy(entry, prev):
        from ledger_service.entries import canonical

        seen.append(canonical(entry, prev).encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass"))
        return real(entry, prev)

    monkeypatch.setattr(engine_module, "entry_hash", spy)
    rows = db_rows(world.engine)
    with nothing_booked(world.engine):
        for goods in (PHANTOM, "mug\ud800", "\udfff", "mug\u202e99"):
            assert_problem(world.post("/v1/redemptions", {"holder": "shop1", "sp": "1.0000", "goods": goods}),
                           422, "input.bad_text", "goods")
        raw = b'{"holder": "shop1", "sp": "1.0000", "goods": "mug\\ud800"}'
        assert_problem(post_raw(world.client, "/v1/redemptions", raw, world.storefront), 422, "input.bad_text", "goods")
        assert_problem(post_raw(world.client, "/v1/payouts/" + world.pending_payout + "/settle",
                                b'{"bank_reference": "R\\udc00"}', world.finance), 422, "input.bad_text", "bank_reference")
    assert db_rows(world.engine) == rows
    assert not any(0xD800 <= ord(c) <= 0xDFFF for text in seen for c in text)


def test_hostile_json_keys_are_422(world):
    with nothing_booked(world.engine):
        for key in ("\ud800", "id\u2028", "\x00"):
            raw = json.dumps({"id": "x1", key: "1"})
            assert_problem(post_raw(world.client, "/v1/members", raw, world.storefront), 422, "input.bad_text", "body")


def test_hostile_idempotency_key_is_422(world):
    with nothing_booked(world.engine):
        for key in ("k\x85", "k\x7f", "k\x1b"):
            response = world.client.post("/v1/members", data=json.dumps({"id": "idem"}), content_type="application/json",
                                         headers={"Authorization": f"Bearer {world.storefront}", "Idempotency-Key": key})
            assert_problem(response, 422, "input.bad_text", "Idempotency-Key")


def test_hostile_strings_in_read_paths_and_queries_are_422(world):
    for ch in [c for c in ALL_HOSTILE if c not in NOT_IN_URL]:
        for path, field in ((f"/v1/holders/al{quote(ch)}ice", "holder_id"),
                            (f"/v1/merchants/sh{quote(ch)}op1", "merchant_id"),
                            (f"/v1/events/E0{quote(ch)}", "event_id"),
                            (f"/v1/supply?date=2026-03-30{quote(ch)}", "date")):
            problem = assert_problem(world.get(path), 422, "input.bad_text", field)
            assert code_point(ch) in problem["detail"]
        assert_problem(world.get(f"/v1/supply?x{quote(ch)}=1"), 422, "input.bad_text", "query")
    # a surrogate sent in a URL (UTF-8 of U+D800: invalid UTF-8) reads as U+FFFD: not an id (422, the
    # one rule for malformed ids: README, "The API contract")
    assert_problem(world.get("/v1/holders/%ED%A0%80"), 422, "input.bad_id", "holder_id")


def test_the_base_requests_book(tmp_path):
    """The bodies and paths the hostile cases start from are well formed: sent as is, they book."""
    api = make_api(tmp_path / "books", Clock())
    build_world(api)
    ok(api.post("/v1/orders", {"id": "o1", "buyer": "bob", "merchant": "shop1", "amount_cny": "10.00"}))
    pending = ok(api.post("/v1/payouts", {"holder": "shop1", "sp": "1.0000"}))["id"]
    api.pending_payout = pending
    for write in ("quote", "register", "pack", "role", "merchant", "deposit", "order", "reverse", "transfer",
                  "payout", "settle", "redeem", "close"):
        role, template, body = WRITES[write]
        status = 200 if write == "quote" else 201
        ok(api.post(_path(api, template), body, role=role), status)
    other = ok(api.post("/v1/payouts", {"holder": "shop1", "sp": "1.0000"}))["id"]
    ok(api.post(f"/v1/payouts/{other}/cancel", {}, role="finance"))
    api.engine.dispose()


# -- nesting and framing --------------------------------------------------------------------

def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("body", [
    _nested(2000),
    '{"id": ' + _nested(2000) + "}",
    '{"id": ' + "{\"a\": " * 1000 + "1" + "}" * 1000 + "}",
    _nested(33),
    '{"id": "x", "referrer": ' + _nested(32) + "}",
], ids=["array-2000", "in-field-2000", "objects-1000", "array-33", "in-field-33"])
def test_deeply_nested_json_is_422(world, body):
    rows = db_rows(world.engine)
    with nothing_booked(world.engine):
        for path, key in (("/v1/members", world.storefront), ("/v1/orders/quote", world.storefront),
                          ("/v1/days/2026-03-30/close", world.finance)):
            problem = assert_problem(post_raw(world.client, path, body, key), 422, "input.too_deep")
            assert "32" in problem["detail"]
    assert db_rows(world.engine) == rows


def test_pathological_json_is_answered_at_once(world):
    """The nesting check is one linear scan: an unterminated string of escaped quotes (60 KiB)
    or 60 KiB of brackets is answered in well under a second."""
    for body in ('{"id": "' + '\\"' * 30_000, '"' * 60_000, "[" * 60_000, '{"id": "' + "[" * 60_000):
        started = time.monotonic()
        response = post_raw(world.client, "/v1/members", body, world.storefront)
        assert time.monotonic() - started < 1.0
        assert_problem(response, 422)


def test_json_at_the_nesting_limit_is_read(world):
    """32 levels is within the limit: the schema then refuses the value (not a string)."""
    body = '{"id": "x", "referrer": ' + _nested(31) + "}"
    assert_problem(post_raw(world.client, "/v1/members", body, world.storefront), 422, "input.invalid", "referrer")
    brackets_in_strings = json.dumps({"id": "x", "referrer": "[" * 100 + "{" * 100})
    assert_problem(post_raw(world.client, "/v1/members", brackets_in_strings, world.storefront), 422, "input.bad_id",
                   "referrer")


class BrokenChunks(io.RawIOBase):
    """A wsgi.input as gunicorn's chunked reader gives it for a bad chunk size."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        from gunicorn.http.errors import InvalidChunkSize

        raise InvalidChunkSize(b"zz")


def test_malformed_chunked_body_is_400_under_the_test_client(world):
    with nothing_booked(world.engine):
        for path, key in (("/v1/members", world.storefront), ("/v1/days/2026-03-30/close", world.finance)):
            response = world.client.post(
                path, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex,
                               "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                environ_overrides={"wsgi.input": BrokenChunks(), "wsgi.input_terminated": True})
            assert_problem(response, 400, "request.malformed")


# -- dates ----------------------------------------------------------------------------------

NOT_DATES = ["20260330", "2026-W14-1", "2026-W14", "2026-089", "2026-03-30T00:00", "2026-3-30", "2026-03-3",
             "+2026-03-30", " 2026-03-30", "2026-03-30 ", "２０２６-０３-３０", "2026-03-30Z", "26-03-30"]


@pytest.mark.parametrize("text", NOT_DATES)
def test_dates_are_exactly_yyyy_mm_dd_in_paths_queries_and_bodies(world, text):
    detail = f"date: {text!r} is not YYYY-MM-DD"
    with nothing_booked(world.engine):
        problem = assert_problem(world.post(f"/v1/days/{quote(text)}/close", None, role="finance"), 422,
                                 "input.bad_date", "day")  # the path parameter's name
        assert problem["detail"] == f"day: {text!r} is not YYYY-MM-DD"
        problem = assert_problem(world.get(f"/v1/supply?date={quote(text)}"), 422, "input.bad_date", "date")
        assert problem["detail"] == detail
        problem = assert_problem(world.post("/v1/members", {"id": "dated", "date": text}), 422, "input.bad_date", "date")
        assert problem["detail"] == detail


def test_exact_dates_still_work(world):
    assert world.get("/v1/supply?date=2026-03-30").status_code == 200
    ok(world.post("/v1/days/2026-03-30/close", None, role="finance"))


@pytest.mark.parametrize("args", [
    ["close-day", "--date", "20260330"],
    ["supply", "--date", "2026-W14-1"],
    ["init", "--start", "20260301"],
])
def test_cli_dates_are_exact(tmp_path, args):
    from ledger_service.cli import main

    result = CliRunner().invoke(main, [args[0], "--books", str(tmp_path / "books"), *args[1:]])
    assert result.exit_code == 2, result.output
    assert f"{args[-1]!r} is not YYYY-MM-DD" in result.output
    assert not (tmp_path / "books").exists()


def test_cli_key_names_follow_the_text_rule(tmp_path):
    from ledger_service.cli import main

    for name in ("ops\u2028team", "ops\x1b[31m", "ops\u202eteam"):
        result = CliRunner().invoke(main, ["keys", "create", "--books", str(tmp_path / "books"), "--role", "auditor",
                                           "--name", name])
        assert result.exit_code == 2 and "is not allowed" in result.output, result.output


# -- Fava's Audit drill-down: Beancount's parser, not line splitting ----------------------------

DAY_FILE = (
    '2026-11-30 price SP 1.00000000 CNY\n'
    '  kind: "price"\n'
    '  seq: "41"\n'
    '\n'
    '2026-11-30 * "redeem" "redeem 1.0000 SP by a: ' + PHANTOM + '"\n'
    '  event: "E000000042"\n'
    '  kind: "redeem"\n'
    '  seq: "42"\n'
    '  goods: "' + PHANTOM + '"\n'
    '  Liabilities:Holders:SP  1.0000 SP\n'
    '    holder: "a"\n'
    '  Equity:SP:Redeemed  -1.0000 SP\n'
    '\n'
    '2026-11-30 * "transfer" "transfer\u2029\u0085x"\n'
    '  event: "E000000043"\n'
    '  kind: "transfer"\n'
    '  seq: "43"\n'
    '  Liabilities:Holders:SP  1.0000 SP\n'
    '  Liabilities:Holders:SP  -1.0000 SP\n'
    '\n'
)


def test_day_entries_are_the_parsed_entries(tmp_path):
    from beancount.parser import parser

    from ledger_service.fava_ext import jobs

    path = tmp_path / "2026-11-30.beancount"
    path.write_text(DAY_FILE, encoding="utf-8")
    parsed, errors, _ = parser.parse_string(DAY_FILE)
    assert errors == [] and len(parsed) == 3
    entries = jobs.day_entries(path)
    assert [(e.lineno, e.seq, e.kind, e.event) for e in entries] == [
        (1, "41", "price", ""), (5, "42", "redeem", "E000000042"), (14, "43", "transfer", "E000000043")]
    assert [e.lineno for e in entries] == [d.meta["lineno"] for d in parsed]
    assert entries[1].text.startswith('2026-11-30 * "redeem"') and entries[1].text.endswith("-1.0000 SP")
    assert PHANTOM in entries[1].text and entries[1].text.count("\n") == 7


def test_audit_drill_down_lists_no_phantom_entry(tmp_path):
    from fava.application import create_app
    from fava.util import slugify

    from ledger_service import config, views
    from ledger_service.views import ledger_tier
    from ledger_service.engine import Engine
    from ledger_service.journal import day_file
    from ledger_service.rules.events import Register

    clock = Clock(date(2026, 3, 3))
    engine = Engine.init(tmp_path / "books", config.load("seed-a"), start=date(2026, 3, 1), clock=clock)
    engine.submit(Register("m1"), date(2026, 3, 1))
    engine.close_days(date(2026, 3, 2))
    views.update(engine.books.root)
    engine.dispose()
    path = tmp_path / "books" / day_file(date(2026, 3, 1))
    with open(path, "a", encoding="utf-8") as handle:  # an entry written by hand, past the rules
        handle.write(DAY_FILE.split("\n\n")[1].replace("2026-11-30", "2026-03-01") + "\n\n")
    app = create_app([str(tmp_path / "books" / ledger_tier.LEDGER_MAIN)], read_only=True, load=True)
    ledger = app.config["LEDGERS"].ledgers[0]
    slug = quote(slugify(ledger.options["title"]))
    html = app.test_client().get(f"/{slug}/extension/AuditPage/?day=2026-03-01").get_data(as_text=True)
    from beancount.parser import parser

    parsed, _errors, _ = parser.parse_file(str(path))
    rows = html.split('<table id="drill-entries">', 1)[1].split("</table>", 1)[0].count("<tr id=")
    assert rows == len(parsed)
    assert f"<p>{len(parsed)} entries" in html
    assert "price SP 99" not in html.split("<pre", 1)[0]
    kinds = [k for k in __import__("re").findall(r'<td class="num">\d+</td><td class="num">\d*</td><td>(\w*)</td>', html)]
    assert kinds.count("price") == 1
    # the drill-down date is exact too: 20260301 opens no day
    compact = app.test_client().get(f"/{slug}/extension/AuditPage/?day=20260301").get_data(as_text=True)
    assert 'id="drill"' not in compact


# -- Hypothesis: strings carrying refused characters, anywhere in any field ---------------------

def hostile_text():
    """Text with at least one refused character, among ordinary and other Unicode text."""
    refused = st.sampled_from(ALL_HOSTILE) | st.characters(categories=["Cs", "Cc", "Zl", "Zp"])
    return st.builds(lambda a, ch, b: a + ch + b, st.text(max_size=8), refused, st.text(max_size=8))


BODY_SLOTS = [(write, name) for write, (_r, _p, body) in WRITES.items() for name in body or {}]


@settings(max_examples=80, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(slot=st.sampled_from(BODY_SLOTS), text=hostile_text())
def test_property_hostile_text_in_any_body_field_is_422(world, slot, text):
    write, name = slot
    role, template, body = WRITES[write]
    head = world.engine.head()
    response = world.post(_path(world, template), {**body, name: text}, role=role)
    assert_problem(response, 422, "input.bad_text", name)
    assert world.engine.head() == head


# -- schemathesis: generated requests with those characters injected, and explicit cases --------

from test_api_schema import CHECKS, OPERATIONS, REAL_PATH_IDS, _role  # noqa: E402

HOSTILE_EXAMPLES = 8


@pytest.fixture(scope="module")
def api_schema(world):
    return schemathesis.openapi.from_wsgi("/openapi.json", world.app)


def _sendable(body):
    """A body with a lone surrogate goes as JSON text with a \\uD800 escape (the test client's
    encoder would write it as UTF-8, which cannot hold it)."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(body, ensure_ascii=False)):
        return json.dumps(body).encode()
    return body


def _inject(case, where: str, ch: str) -> bool:
    """Put `ch` into one string of the case (a body field, a path parameter or a query value)."""
    if where == "body" and isinstance(case.body, dict):
        for name, value in case.body.items():
            if isinstance(value, str):
                case.body = _sendable({**case.body, name: value[:1] + ch + value[1:]})
                return True
    for attr in ("path_parameters", "query") if where != "body" else ():
        values = getattr(case, attr) or {}
        for name, value in values.items():
            # (schemathesis' WSGI transport hands the client a decoded URL, whose parser drops
            # TAB, LF and CR: those are sent percent-encoded by the other tests, and to gunicorn)
            if isinstance(value, str) and ch not in NOT_IN_URL | {"\t", "\n", "\r"}:
                setattr(case, attr, {**values, name: value[:1] + ch + value[1:]})
                return True
    return False


def _assert_refused(response, case) -> None:
    assert 400 <= response.status_code < 500, (case.path, case.body, response.status_code, response.text)
    assert response.headers.get("content-type", [""])[0].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["type"] == f"/problems/{body['rule']}"


@pytest.mark.parametrize("method,path", [op for op in OPERATIONS if op[1] != "/health"],
                         ids=[f"{m} {p}" for m, p in OPERATIONS if p != "/health"])
def test_schemathesis_with_hostile_strings(api_schema, world, method, path):
    operation = api_schema[path][method]
    key = world.keys[_role(operation)]
    names = [p["name"] for p in operation.definition.raw.get("parameters", []) if p.get("in") == "path"]
    fixed = {name: (world.payout if name == "payout_id" else REAL_PATH_IDS[name]) for name in names} or None
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    injected = []

    @given(case=strategy, ch=st.sampled_from(ALL_HOSTILE), where=st.sampled_from(["body", "url"]))
    @settings(max_examples=HOSTILE_EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case, ch, where):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}",
                        "Idempotency-Key": uuid.uuid4().hex}
        if fixed:  # real ids (set here: as_strategy's fixed values would override the injection)
            case.path_parameters = dict(fixed)
        hit = _inject(case, where, ch)
        response = case.call_and_validate(checks=CHECKS)
        if hit:
            injected.append(ch)
            _assert_refused(response, case)
            assert response.status_code == 422 and response.json()["rule"] == "input.bad_text", (response.text, where, repr(ch), case.body, case.path_parameters, case.query)

    world.payout = world.pending_payout
    run()
    if "{" in path or method == "POST" and path != "/v1/days/{day}/close" or path == "/v1/supply":
        assert injected, "no string to put a hostile character into"


EXPLICIT = [
    ("POST", "/v1/redemptions", {"holder": "shop1", "sp": "1.0000", "goods": PHANTOM}, {}, {}),
    ("POST", "/v1/redemptions", {"holder": "shop1", "sp": "1.0000", "goods": "mug\ud800"}, {}, {}),
    ("POST", "/v1/redemptions", {"holder": "shop1", "sp": "1.0000", "goods": "mug\u202egum"}, {}, {}),
    ("POST", "/v1/payouts/{payout_id}/settle", {"bank_reference": "R\x85"}, {}, {}),
    ("POST", "/v1/members", {"id": "m\u2066x"}, {}, {}),
    ("POST", "/v1/members", {"id": "dated", "date": "20261128"}, {}, {}),
    ("POST", "/v1/members", {"id": "dated", "date": "2026-W48-1"}, {}, {}),
    ("POST", "/v1/days/{day}/close", None, {"day": "20261128"}, {}),
    ("POST", "/v1/days/{day}/close", None, {"day": "2026-W48-1"}, {}),
    ("GET", "/v1/supply", None, {}, {"date": "20261128"}),
    ("GET", "/v1/holders/{holder_id}", None, {"holder_id": "al\u2028ice"}, {}),
]


@pytest.mark.parametrize("method,path,body,path_parameters,query", EXPLICIT,
                         ids=[f"{m} {p} {i}" for i, (m, p, *_rest) in enumerate(EXPLICIT)])
def test_schemathesis_explicit_hostile_cases(api_schema, world, method, path, body, path_parameters, query):
    operation = api_schema[path][method]
    if "payout_id" in path:
        path_parameters = {"payout_id": world.pending_payout}
    kwargs = {"path_parameters": path_parameters or None, "query": query or None,
              "headers": {"Authorization": f"Bearer {world.keys[_role(operation)]}",
                          "Idempotency-Key": uuid.uuid4().hex}}
    if body is not None:
        kwargs["body"] = _sendable(body)
        kwargs["media_type"] = "application/json"
    case = operation.Case(**kwargs)
    with nothing_booked(world.engine):
        response = case.call_and_validate(checks=CHECKS)
    _assert_refused(response, case)
    assert response.status_code == 422


def test_schemathesis_deep_json_case(api_schema, world):
    """100 levels through schemathesis (its JSON encoder stops near 1,000); 2,000 are sent raw above."""
    operation = api_schema["/v1/members"]["POST"]
    nested: object = "x"
    for _ in range(100):
        nested = [nested]
    case = operation.Case(body={"id": nested}, media_type="application/json",
                          headers={"Authorization": f"Bearer {world.storefront}", "Idempotency-Key": uuid.uuid4().hex})
    with nothing_booked(world.engine):
        response = case.call_and_validate(checks=CHECKS)
    _assert_refused(response, case)
    assert response.status_code == 422 and response.json()["rule"] == "input.too_deep"


# -- the real server (gunicorn) over a raw socket ----------------------------------------------

def _raw(port: int, request: bytes, timeout: float = 20) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return status, headers, body


@pytest.mark.slow
def test_hostile_requests_against_gunicorn(tmp_path):
    from test_api_server import Server, make_books

    keys = make_books(tmp_path / "books")
    server = Server(tmp_path / "books", tmp_path / "server.log", workers=1).start()
    results: list[tuple[str, int, str]] = []
    try:
        def send(label: str, head: str, body: bytes = b"", key: str = "storefront") -> tuple[int, dict]:
            auth = f"Authorization: Bearer {keys[key]}\r\nIdempotency-Key: {uuid.uuid4().hex}\r\nHost: t\r\n"
            request = head.replace("\r\n", "\r\n" + auth, 1).encode("latin-1") + body
            status, headers, payload = _raw(server.port, request)
            results.append((label, status, headers.get("content-type", "")))
            problem = json.loads(payload) if headers.get("content-type") == "application/problem+json" else {}
            return status, problem

        json_head = "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n"

        def post_json(label, path, text: bytes, key="storefront"):
            return send(label, json_head.format(path=path, n=len(text)), text, key)

        status, problem = send("bad chunk size", "POST /v1/members HTTP/1.1\r\nContent-Type: application/json\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n", b'zz\r\n{"id": "m9"}\r\n0\r\n\r\n')
        assert (status, problem.get("rule")) == (400, "request.malformed"), results
        status, problem = send("chunk without terminator", "POST /v1/members HTTP/1.1\r\nContent-Type: "
                               "application/json\r\nTransfer-Encoding: chunked\r\n\r\n", b'c\r\n{"id": "m9"}XX0\r\n\r\n')
        assert status in (400, 422) and problem.get("rule") in ("request.malformed", "input.malformed"), results
        status, problem = post_json("deep json", "/v1/members", _nested(2000).encode())
        assert (status, problem.get("rule")) == (422, "input.too_deep"), results
        status, problem = post_json("deep json in a field", "/v1/members", b'{"id": ' + _nested(2000).encode() + b"}")
        assert (status, problem.get("rule")) == (422, "input.too_deep"), results
        for goods in (b'"mug\\u2028x"', b'"mug\\ud800"', '"mug\u202e"'.encode(), b'"\\u0000"'):
            status, problem = post_json(f"goods {goods!r}", "/v1/redemptions",
                                        b'{"holder": "h1", "sp": "1.0000", "goods": ' + goods + b"}")
            assert (status, problem.get("rule"), problem.get("field")) == (422, "input.bad_text", "goods"), results
        status, problem = send("day 20261128", "POST /v1/days/20261128/close HTTP/1.1\r\n\r\n", key="finance")
        assert (status, problem.get("rule")) == (422, "input.bad_date"), results
        status, problem = send("raw bytes in the request line", "GET /v1/holders/\xed\xa0\x80 HTTP/1.1\r\n\r\n")
        assert (status, problem.get("rule")) == (400, "request.malformed"), results
        status, problem = send("bad header", "GET /v1/supply HTTP/1.1\r\nBad Header: x\r\n\r\n")
        assert (status, problem.get("rule")) == (400, "request.malformed"), results
        status, problem = send("request line too long", f"GET /v1/holders/{'a' * 5000} HTTP/1.1\r\n\r\n")
        assert (status, problem.get("rule")) == (414, "http.414"), results
        status, problem = send("encoded U+2028 in a path", "GET /v1/holders/a%E2%80%A8b HTTP/1.1\r\n\r\n")
        assert (status, problem.get("rule")) == (422, "input.bad_text"), results
        for encoded in ("%0A", "%09", "%00", "%C2%85", "%E2%80%AE"):
            status, problem = send(f"{encoded} in a path", f"GET /v1/holders/a{encoded}b HTTP/1.1\r\n\r\n")
            assert (status, problem.get("rule"), problem.get("field")) == (422, "input.bad_text", "holder_id"), results
        status, problem = send("U+2028 in a query", "GET /v1/supply?date=2026-01-01%E2%80%A8 HTTP/1.1\r\n\r\n")
        assert (status, problem.get("rule"), problem.get("field")) == (422, "input.bad_text", "date"), results
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert all(status < 500 for _label, status, _type in results), results
    assert all(ctype == "application/problem+json" for _label, _status, ctype in results), results
    assert "Traceback" not in server.log(), server.log()
