"""SPEC §7's role matrix: every path × every role.

storefront: register, packs, stores, orders, quotes, transfers, payout requests, redemptions;
finance: roles, deposits, payout settle/cancel, reversals, SV grants, closing days; auditor: reads only;
admin: keys (no API path of its own here). Reads: any role. /health: no key at all.

A wrong role is 403 before anything else about the request is looked at (no Idempotency-Key,
a body that would not validate); an allowed role is never 401/403; a 403 books nothing.
"""

from __future__ import annotations

import itertools
import json

import pytest

from api_helpers import (ROLES, Clock, assert_problem, build_world, get, headers, make_api, nothing_booked, ok,
                         post, post_raw)

_n = itertools.count()


def _uid(prefix: str) -> str:
    return f"{prefix}{next(_n)}"


# (path, role allowed to write, minimal body factory)
WRITES = [
    ("/v1/members", "storefront", lambda w: {"id": _uid("r")}),
    ("/v1/members/carol/packs", "storefront", lambda w: {"kind": "activation"}),
    ("/v1/members/bob/role", "finance", lambda w: {"role": "vip"}),
    ("/v1/merchants", "storefront", lambda w: {"id": _uid("s"), "owner": "owner", "region": "441900",
                                               "channel": "online", "rebate_rate": "0.10"}),
    ("/v1/deposits", "finance", lambda w: {"merchant": "shop1", "amount_cny": "1.00"}),
    ("/v1/orders", "storefront", lambda w: {"id": _uid("o"), "buyer": "bob", "merchant": "shop1",
                                            "amount_cny": "1.00"}),
    ("/v1/orders/quote", "storefront", lambda w: {"id": _uid("q"), "buyer": "bob", "merchant": "shop1",
                                                  "amount_cny": "1.00"}),
    ("/v1/orders/o1/reverse", "finance", lambda w: {}),
    ("/v1/transfers", "storefront", lambda w: {"from": "shop1", "to": "bob", "sp": "0.0001"}),
    ("/v1/payouts", "storefront", lambda w: {"holder": "shop1", "sp": "1.0000"}),
    ("/v1/payouts/{payout}/settle", "finance", lambda w: {"bank_reference": "R-1"}),
    ("/v1/payouts/{payout}/cancel", "finance", lambda w: {}),
    ("/v1/redemptions", "storefront", lambda w: {"holder": "shop1", "sp": "1.0000", "goods": "tea"}),
    ("/v1/grants", "finance", lambda w: {"holder": "bob", "sv": "0.0001", "reason": "task"}),
    ("/v1/days/2026-03-30/close", "finance", lambda w: None),
]
READS = ["/v1/holders/alice", "/v1/merchants/shop1", "/v1/supply", "/v1/supply?date=2026-03-30",
         "/v1/events/E000000001"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    api = make_api(tmp_path_factory.mktemp("roles") / "books", Clock())
    build_world(api)
    ok(api.post("/v1/orders", {"id": "o1", "buyer": "bob", "merchant": "shop1", "amount_cny": "10.00"}))
    api.payout = ok(api.post("/v1/payouts", {"holder": "shop1", "sp": "1.0000"}))["id"]
    yield api
    api.engine.dispose()


def _path(world, path: str) -> str:
    return path.format(payout=world.payout)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path,allowed,body", WRITES, ids=[w[0] for w in WRITES])
def test_write_role_matrix(world, path, allowed, body, role):
    url = _path(world, path)
    if role == allowed:
        r = post(world.client, url, body(world), world.keys[role])
        assert r.status_code not in (401, 403), (r.status_code, r.get_data(as_text=True))
        assert r.status_code < 500, r.get_data(as_text=True)
        return
    with nothing_booked(world.engine):
        # a valid request from the wrong role
        assert_problem(post(world.client, url, body(world), world.keys[role]), 403, "auth.wrong_role")
        # 403 comes before the Idempotency-Key and the body are looked at
        assert_problem(post(world.client, url, {"bogus": 1.5}, world.keys[role], no_idem=True), 403,
                       "auth.wrong_role")


@pytest.mark.parametrize("path,allowed,body", WRITES, ids=[w[0] for w in WRITES])
def test_write_without_a_key_is_401(world, path, allowed, body):
    with nothing_booked(world.engine):
        assert_problem(post(world.client, _path(world, path), body(world), None), 401, "auth.unknown_key")
        assert_problem(post(world.client, _path(world, path), {"bogus": 1.5}, None, no_idem=True), 401)


@pytest.mark.parametrize("path,allowed,body", WRITES, ids=[w[0] for w in WRITES])
def test_wrong_role_is_403_before_the_content_type_check(world, path, allowed, body):
    """A 403 must come before validation, the content type included (and 401 likewise)."""
    wrong = "auditor"
    url = _path(world, path)
    with nothing_booked(world.engine):
        r = post_raw(world.client, url, json.dumps(body(world) or {}), world.keys[wrong], "text/plain")
        assert_problem(r, 403, "auth.wrong_role")
        r = post_raw(world.client, url, json.dumps(body(world) or {}), None, "text/plain")
        assert_problem(r, 401, "auth.unknown_key")


@pytest.mark.parametrize("path,allowed,body", WRITES, ids=[w[0] for w in WRITES])
def test_wrong_role_is_403_before_malformed_json(world, path, allowed, body):
    with nothing_booked(world.engine):
        r = post_raw(world.client, _path(world, path), "{not json", world.keys["auditor"])
        assert_problem(r, 403, "auth.wrong_role")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", READS)
def test_read_role_matrix(world, path, role):
    r = get(world.client, path, world.keys[role])
    assert r.status_code == 200, (r.status_code, r.get_data(as_text=True))


@pytest.mark.parametrize("path", READS)
def test_read_without_a_key_is_401(world, path):
    assert_problem(get(world.client, path, None), 401, "auth.unknown_key")


@pytest.mark.parametrize("role", [*ROLES, None])
def test_health_is_open_to_all(world, role):
    r = world.client.get("/health", headers=headers(world.keys[role] if role else None, None))
    assert r.status_code == 200
    assert r.get_json()["status"] == "ok"


@pytest.mark.parametrize("role", ROLES)
def test_openapi_document_is_readable(world, role):
    assert world.client.get("/openapi.json").status_code == 200


def test_matrix_covers_every_documented_path(world):
    """Every operation the OpenAPI document lists is in this matrix (and nothing else is)."""
    spec = world.client.get("/openapi.json").get_json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    tested = {("POST", p.replace("carol", "{member_id}").replace("bob", "{member_id}").replace("o1", "{order_id}")
               .replace("{payout}", "{payout_id}").replace("2026-03-30", "{day}")) for p, _a, _b in WRITES}
    tested |= {("GET", "/v1/holders/{holder_id}"), ("GET", "/v1/merchants/{merchant_id}"), ("GET", "/v1/supply"),
               ("GET", "/v1/events/{event_id}"), ("GET", "/health")}
    # the proofs need a closed day: their role matrix is tests/test_event_log.py's
    tested |= {("GET", "/v1/checkpoints/latest"), ("GET", "/v1/checkpoints/{day}"),
               ("GET", "/v1/checkpoints/consistency"), ("GET", "/v1/events/{event_id}/proof"),
               ("GET", "/v1/holders/{holder_id}/proof")}  # tests/test_liabilities.py
    tested |= {("GET", "/v1/signing-keys")}  # every role: tests/test_signed_checkpoints.py
    tested |= {("GET", "/metrics")}  # auditor and admin: tests/test_metrics_logs.py
    assert documented == tested

