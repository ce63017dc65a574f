"""Property-based tests of the API against its own OpenAPI document (schemathesis 4.x).

Every operation of /openapi.json gets generated requests, valid and invalid (schemathesis'
positive and negative modes), sent with a live key of the role the operation needs and a
fresh Idempotency-Key, on books that hold a small world (so that real ids exist next to
generated ones). Checked: no 5xx, and every response conforms to the schema documented
for its status code.

Why not `schemathesis.pytest.from_fixture(...)` + `@schema.parametrize()`: with pytest 9
its lazy loader fails at `request.node._nodeid` (AttributeError: 'Function' object has no
attribute '_nodeid'); each operation is driven here through `APIOperation.as_strategy`
with Hypothesis' `@given` instead, which is the same generation without the pytest plugin.

Bounded: 15 examples per operation, mode and id choice, derandomized, no shrinking
(a failure is reported as generated), so the whole file runs in well under a minute.

Checked here in-process: no 5xx, and status, content type and body as documented. Every
check Schemathesis has (`schemathesis run --checks all`, with the stateful phase) runs against
a live server in tests/test_api_contract.py.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from api_helpers import Clock, build_world, make_api, ok

# No 5xx; every status, content type and body as the OpenAPI document says.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 15

OPERATIONS = [
    ("POST", "/v1/members"),
    ("POST", "/v1/members/{member_id}/packs"),
    ("POST", "/v1/members/{member_id}/role"),
    ("POST", "/v1/merchants"),
    ("POST", "/v1/deposits"),
    ("POST", "/v1/orders"),
    ("POST", "/v1/orders/quote"),
    ("POST", "/v1/orders/{order_id}/reverse"),
    ("POST", "/v1/transfers"),
    ("POST", "/v1/payouts"),
    ("POST", "/v1/payouts/{payout_id}/settle"),
    ("POST", "/v1/payouts/{payout_id}/cancel"),
    ("POST", "/v1/redemptions"),
    ("POST", "/v1/grants"),
    ("POST", "/v1/days/{day}/close"),
    ("GET", "/v1/holders/{holder_id}"),
    ("GET", "/v1/merchants/{merchant_id}"),
    ("GET", "/v1/supply"),
    ("GET", "/v1/events/{event_id}"),
    ("GET", "/v1/events/{event_id}/proof"),
    ("GET", "/v1/holders/{holder_id}/proof"),
    ("GET", "/v1/checkpoints/latest"),
    ("GET", "/v1/checkpoints/consistency"),
    ("GET", "/v1/checkpoints/{day}"),
    ("GET", "/v1/signing-keys"),
    ("GET", "/health"),
    ("GET", "/metrics"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    api = make_api(tmp_path_factory.mktemp("schema") / "books", Clock())
    build_world(api)
    ok(api.post("/v1/orders", {"id": "o1", "buyer": "bob", "merchant": "shop1", "amount_cny": "10.00"}))
    api.payout = ok(api.post("/v1/payouts", {"holder": "shop1", "sp": "1.0000"}))["id"]
    yield api
    api.engine.dispose()


@pytest.fixture(scope="module")
def api_schema(world):
    return schemathesis.openapi.from_wsgi("/openapi.json", world.app)


def _role(operation) -> str:
    """The role the operation's security requirement names; reads take any key (the auditor's)."""
    for requirement in operation.definition.raw.get("security") or []:
        for scopes in requirement.values():
            if scopes:
                return scopes[0]
    return "auditor"


# Real ids for half of the path parameters, so that generated requests reach the rules too.
REAL_PATH_IDS = {
    "member_id": "carol", "order_id": "o1", "holder_id": "alice", "merchant_id": "shop1",
    "event_id": "E000000001", "day": "2026-03-30",
}


def test_operation_list_matches_the_document(world):
    spec = world.client.get("/openapi.json").get_json()
    assert {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops} == set(OPERATIONS)


def _cases():
    """(method, path, mode, real ids?): real ids only where the path names one; /health has
    nothing a negative case could make invalid."""
    for method, path in OPERATIONS:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if path in ("/health", "/metrics") and mode is GenerationMode.NEGATIVE:
                continue
            for real_ids in ((False, True) if "{" in path else (False,)):
                label = f"{method} {path}-{mode.value}" + ("-real-ids" if real_ids else "")
                yield pytest.param(method, path, mode, real_ids, id=label)


@pytest.mark.parametrize("method,path,mode,real_ids", list(_cases()))
def test_api_conforms_to_its_schema(api_schema, world, method, path, mode, real_ids):
    operation = api_schema[path][method]
    key = world.keys[_role(operation)]
    fixed = None
    if real_ids:
        names = [p["name"] for p in operation.definition.raw.get("parameters", []) if p.get("in") == "path"]
        fixed = {name: (world.payout if name == "payout_id" else REAL_PATH_IDS[name]) for name in names}

    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}",
                        "Idempotency-Key": uuid.uuid4().hex}
        case.call_and_validate(checks=CHECKS)

    run()


def _expected_errors(method: str, path: str) -> set[str]:
    """The 4xx statuses SPEC §7 and the app give for an operation."""
    if path == "/health":
        return set()
    wanted = {"401"}
    if method == "post":
        wanted |= {"403", "409", "422"}
        if path != "/v1/days/{day}/close":
            wanted |= {"404"}           # an unknown member, merchant, holder, order or payout
    elif "{" in path:
        wanted |= {"404"}
    if path == "/v1/supply":
        wanted |= {"404", "422"}        # a date before genesis, a malformed or future date
    if path.startswith("/v1/checkpoints") or path.endswith("/proof"):
        wanted |= {"404"}               # no checkpoint of that day (or none yet), an unknown event
    return wanted


def test_openapi_documents_the_error_answers(world):
    """SPEC §7: the OpenAPI document describes the contract, errors included.

    Every operation documents the 4xx it answers (401/403/404/409/422 as they apply), as
    application/problem+json, and every write declares its required Idempotency-Key header."""
    spec = world.client.get("/openapi.json").get_json()
    gaps = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            label = f"{method.upper()} {path}"
            responses = op.get("responses", {})
            for status in sorted(_expected_errors(method, path) - responses.keys()):
                gaps.append(f"{label}: {status} not documented")
            for status, response in sorted(responses.items()):
                content = response.get("content", {})
                if status.startswith("4") and "application/problem+json" not in content:
                    gaps.append(f"{label}: {status} documented as {sorted(content)}, answered as application/problem+json")
            if method == "post" and path != "/v1/orders/quote":
                names = {p.get("name", "").lower() for p in op.get("parameters", []) if p.get("in") == "header"}
                if "idempotency-key" not in names:
                    gaps.append(f"{label}: the required Idempotency-Key header is not declared")
    assert gaps == [], f"{len(gaps)} gaps:\n" + "\n".join(gaps)
