"""Shared helpers of the storefront API tests (SPEC §7).

- `make_api(root, clock, ...)`: fresh books on the conftest clock, the Flask app over
  them, a test client and one live API key per role;
- `post(client, path, body, key, idem=None)`: a write with a fresh Idempotency-Key
  unless one is given;
- `snapshot(engine)`: every journal file's bytes and the engine's chain head, to
  assert that a refused write booked nothing.
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterator

from ledger_service import config
from ledger_service.api.app import create_app
from ledger_service.engine import Engine
from ledger_service.store import keys as key_store

from conftest import START, TODAY, Clock

ROLES = ("storefront", "finance", "auditor", "admin")
PROBLEM = "application/problem+json"
_UNSET = object()


@dataclass
class Api:
    """One app on fresh books, with a live key (and its id) for every role."""

    engine: Engine
    app: Any
    client: Any
    clock: Clock
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    @property
    def storefront(self) -> str:
        return self.keys["storefront"]

    @property
    def finance(self) -> str:
        return self.keys["finance"]

    @property
    def auditor(self) -> str:
        return self.keys["auditor"]

    @property
    def admin(self) -> str:
        return self.keys["admin"]

    def post(self, path: str, body: Any = None, role: str = "storefront", idem: str | None = None, **kw):
        return post(self.client, path, body, self.keys[role], idem, **kw)

    def get(self, path: str, role: str = "auditor", **kw):
        return get(self.client, path, self.keys[role], **kw)

    def new_key(self, role: str) -> tuple[str, str]:
        return new_key(self.engine, role)

    def revoke(self, key_id: str) -> None:
        with self.engine.Session() as session, session.begin():
            assert key_store.revoke(session, key_id)


def new_key(engine: Engine, role: str, name: str = "") -> tuple[str, str]:
    """(key id, secret) of a new live key for `role`."""
    with engine.Session() as session, session.begin():
        return key_store.create(session, role, name or f"test {role}")


def make_api(root: Path, clock: Clock, params: config.Params | None = None, db_url: str | None = None,
             start: date = START) -> Api:
    """Fresh books at `root` (profile seed-a unless `params`), the app, a client and a key per role."""
    engine = Engine.init(root, params or config.load("seed-a"), start=start, db_url=db_url, clock=clock)
    app = create_app(root, engine=engine)  # not app.testing: a crash is answered 500, as in production
    api = Api(engine=engine, app=app, client=app.test_client(), clock=clock)
    for role in ROLES:
        api.key_ids[role], api.keys[role] = new_key(engine, role)
    return api


def headers(key: str | None, idem: str | None | object = _UNSET) -> dict[str, str]:
    """Authorization (when `key`) and Idempotency-Key (a fresh one unless given; None: left out)."""
    out: dict[str, str] = {}
    if key is not None:
        out["Authorization"] = f"Bearer {key}"
    if idem is _UNSET:
        idem = uuid.uuid4().hex
    if idem is not None:
        out["Idempotency-Key"] = str(idem)
    return out


def post(client, path: str, body: Any, key: str | None, idem: str | None = None, *,
         no_idem: bool = False, extra_headers: dict[str, str] | None = None):
    """POST `body` as JSON (no body when None) with a fresh Idempotency-Key unless `idem` is given."""
    hdrs = headers(key, None if no_idem else (idem if idem is not None else uuid.uuid4().hex))
    hdrs.update(extra_headers or {})
    if body is None:
        return client.post(path, headers=hdrs)
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=hdrs)


def post_raw(client, path: str, data: bytes | str, key: str | None, content_type: str = "application/json",
             idem: str | None = None):
    """POST raw bytes with a content type (malformed JSON, text/plain, oversized bodies)."""
    hdrs = headers(key, idem if idem is not None else uuid.uuid4().hex)
    return client.post(path, data=data, content_type=content_type, headers=hdrs)


def get(client, path: str, key: str | None, **kw):
    return client.get(path, headers=headers(key, None), **kw)


# -- "nothing booked" -------------------------------------------------------------------

def journal_bytes(books_root: Path) -> dict[str, bytes]:
    """Every file under the books' journal folder, by relative path, with its exact bytes."""
    root = Path(books_root) / "journal"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def snapshot(engine: Engine) -> dict:
    """The journal's bytes (every file) and the database's chain head."""
    return {"journal": journal_bytes(engine.books.root), "head": engine.head()}


def _changes(before: dict, after: dict) -> list[str]:
    out = []
    if after["head"] != before["head"]:
        out.append(f"the chain head moved from {before['head']} to {after['head']}")
    for name in sorted(before["journal"].keys() | after["journal"].keys()):
        if before["journal"].get(name) != after["journal"].get(name):
            out.append(f"journal file {name} changed")
    return out


@contextmanager
def nothing_booked(engine: Engine) -> Iterator[dict]:
    """Assert that the block changes neither a journal byte nor the chain head (checked, and
    noted on the error, even when the block itself fails)."""
    before = snapshot(engine)
    try:
        yield before
    except BaseException as exc:
        changes = _changes(before, snapshot(engine))
        if changes:
            exc.add_note("and something was booked: " + "; ".join(changes))
        raise
    changes = _changes(before, snapshot(engine))
    assert not changes, "; ".join(changes)


# -- responses -------------------------------------------------------------------------

def assert_problem(response, status: int, rule: str | None = None, field: str | None = None) -> dict:
    """An RFC 9457 problem document with a stable type per rule; returns its body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == PROBLEM, response.headers.get("Content-Type")
    body = json.loads(response.get_data(as_text=True))
    assert body["status"] == status
    assert isinstance(body.get("title"), str) and body["title"]
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert isinstance(body.get("rule"), str) and body["rule"]
    assert body["type"] == f"/problems/{body['rule']}", body
    if rule is not None:
        assert body["rule"] == rule, body
    if field is not None:
        assert body.get("field") == field, body
    return body


def assert_no_numbers(value: Any, where: str = "$") -> None:
    """Amounts are decimal strings: no JSON float anywhere (ints only for `seq`/`status`)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, float):
        raise AssertionError(f"{where}: JSON float {value!r}")
    if isinstance(value, int):
        assert where.rsplit(".", 1)[-1] in ("seq", "status"), f"{where}: JSON number {value!r}"
        return
    if isinstance(value, dict):
        for k, v in value.items():
            assert_no_numbers(v, f"{where}.{k}")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            assert_no_numbers(v, f"{where}[{i}]")
        return
    raise AssertionError(f"{where}: unexpected {type(value).__name__}")


def postings_of(body: dict, **where) -> list[dict]:
    return [p for p in body["postings"] if all(p.get(k) == v for k, v in where.items())]


# -- a small world ------------------------------------------------------------------------

def ok(response, status: int = 201) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def build_world(api: Api) -> dict:
    """alice (active, vip), bob (active, referred by alice), carol (inactive), owner (active);
    shop1 online at 10 % with a full deposit of 500.00 CNY (500 SP), shop2 offline without one."""
    for body in ({"id": "alice"}, {"id": "bob", "referrer": "alice", "region": "441900"},
                 {"id": "carol"}, {"id": "owner"}):
        ok(api.post("/v1/members", body))
    for member in ("alice", "bob", "owner"):
        ok(api.post(f"/v1/members/{member}/packs", {"kind": "activation"}))
    ok(api.post("/v1/members/alice/role", {"role": "vip"}, role="finance"))
    ok(api.post("/v1/merchants", {"id": "shop1", "owner": "owner", "region": "441900", "channel": "online",
                                  "rebate_rate": "0.10"}))
    ok(api.post("/v1/merchants", {"id": "shop2", "owner": "owner", "region": "110000", "channel": "offline",
                                  "rebate_rate": "0.10"}))
    ok(api.post("/v1/deposits", {"merchant": "shop1", "amount_cny": "500.00"}, role="finance"))
    return {"members": ["alice", "bob", "carol", "owner"], "merchants": ["shop1", "shop2"]}


__all__ = ["Api", "Clock", "PROBLEM", "ROLES", "START", "TODAY", "assert_no_numbers", "assert_problem",
           "build_world", "get", "headers", "journal_bytes", "make_api", "new_key", "nothing_booked", "ok",
           "post", "post_raw", "postings_of", "snapshot"]
