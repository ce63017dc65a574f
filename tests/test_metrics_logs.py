"""`/metrics` and the structured logs (issue 17 §2).

- the counters move with bookings (booked, replayed, refused by a rule, invalid), the latency and
  lock-wait histograms count, the books' gauges read the books; an auditor or admin key only;
- under gunicorn (2 workers, multiprocess mode) a scrape adds up every worker's counters;
- every answer carries X-Request-Id, every problem its `request_id`; each request is one JSON
  line with that id; a 500 is logged with its traceback; keys created/revoked, a day closed, a
  journal repair, a refused start are one line each; no secret is ever logged.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api_helpers import Clock, assert_problem, build_world, get, make_api, new_key, ok
from ledger_service import logs
from ledger_service.engine import Engine
from ledger_service.errors import JournalFault
from ledger_service.store import keys as key_store


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(api) -> dict[tuple[str, tuple], float]:
    r = api.get("/metrics", role="auditor")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Type"].startswith("text/plain")
    return samples(r.get_data(as_text=True))


def booked(m: dict, kind: str, outcome: str) -> float:
    return m.get(("ledger_bookings_total", (("kind", kind), ("outcome", outcome))), 0.0)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    api = make_api(tmp_path_factory.mktemp("m") / "books", Clock())
    build_world(api)
    yield api
    api.engine.dispose()


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logs.configure(stream)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    logging.getLogger("ledger_service").removeHandler(handler)


def test_the_counters_move(api):
    before = scrape(api)
    order = {"id": "m-o1", "buyer": "bob", "merchant": "shop1", "amount_cny": "10.00"}
    ok(api.post("/v1/orders", order, idem="m-k1"))
    ok(api.post("/v1/orders", {**order, "id": "m-o2"}))
    again = api.post("/v1/orders", order, idem="m-k1")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_problem(api.post("/v1/orders", {**order, "id": "m-o3", "buyer": "nobody"}), 404, "member.unknown")
    assert_problem(api.post("/v1/orders", {**order, "id": "m-o4", "amount_cny": "1.234"}), 422)
    after = scrape(api)
    assert booked(after, "order", "booked") - booked(before, "order", "booked") == 2
    assert booked(after, "order", "replayed") - booked(before, "order", "replayed") == 1
    assert booked(after, "order", "refused") - booked(before, "order", "refused") == 1
    assert booked(after, "create_order", "invalid") - booked(before, "create_order", "invalid") == 1
    latency = ("ledger_booking_duration_seconds_count", (("kind", "order"),))
    assert after[latency] - before.get(latency, 0) == 2
    wait = ("ledger_writer_lock_wait_seconds_count", (("kind", "order"),))
    assert after[wait] - before.get(wait, 0) >= 3  # the two bookings and the replay each took the lock
    head = api.engine.head()
    assert after[("ledger_chain_head_seq", ())] == head["seq"]
    assert after[("ledger_journal_lag_entries", ())] == 0
    assert after[("ledger_days_since_last_close", ())] == 0
    assert after[("ledger_value_cny_per_sp", ())] == float(head["value_cny_per_sp"])
    assert after[("ledger_circulating_sp", ())] > 0
    assert after[("ledger_last_verify_ok", ())] == -1  # never verified
    assert ("ledger_last_verify_age_seconds", ()) not in after


def test_days_since_the_last_close(api):
    api.clock.advance(2)
    try:
        assert scrape(api)[("ledger_days_since_last_close", ())] == 2
    finally:
        api.clock.today -= timedelta(days=2)


def test_metrics_need_an_auditor_or_admin_key(api):
    assert api.get("/metrics", role="admin").status_code == 200
    assert_problem(api.get("/metrics", role="storefront"), 403, "auth.wrong_role")
    assert_problem(api.get("/metrics", role="finance"), 403, "auth.wrong_role")
    assert_problem(get(api.client, "/metrics", None), 401, "auth.unknown_key")


def test_every_answer_has_a_request_id(api):
    r = api.get("/v1/holders/alice")
    assert len(r.headers["X-Request-Id"]) == 32
    problem = assert_problem(api.get("/v1/holders/nobody"), 404)
    assert problem["request_id"]
    r = api.client.get("/v1/holders/nobody", headers={"X-Request-Id": "trace-42",
                                                      "Authorization": f"Bearer {api.auditor}"})
    assert r.headers["X-Request-Id"] == "trace-42" and r.get_json()["request_id"] == "trace-42"
    r = api.client.get("/v1/holders/alice", headers={"X-Request-Id": "bad id\u00e9"})
    assert r.headers["X-Request-Id"] != "bad id\u00e9" and len(r.headers["X-Request-Id"]) == 32
    assert r.get_json()["request_id"] == r.headers["X-Request-Id"]  # (401: no key)


def test_each_request_is_one_json_line_with_its_id(api, log_lines):
    r = api.post("/v1/orders", {"id": "m-o9", "buyer": "bob", "merchant": "shop1", "amount_cny": "10.00"})
    ok(r)
    requests = [line for line in log_lines() if line.get("event") == "request"]
    assert len(requests) == 1
    line = requests[0]
    assert line["request_id"] == r.headers["X-Request-Id"]
    assert (line["method"], line["path"], line["status"], line["level"]) == ("POST", "/v1/orders", 201, "info")
    assert api.storefront not in json.dumps(log_lines())


def test_a_500_is_logged_with_its_traceback_and_no_secret(api, log_lines, monkeypatch):
    def boom(*_args, **_kw):
        raise RuntimeError(f"boom with {api.auditor} and postgresql://u:hunter2@db/x")

    monkeypatch.setattr(api.engine, "event", boom)
    r = api.get("/v1/events/E000000001")
    assert r.status_code == 500
    body = r.get_json()
    assert body["request_id"] == r.headers["X-Request-Id"]
    lines = log_lines()
    crash = [line for line in lines if "exc" in line]
    assert len(crash) == 1 and "Traceback" in crash[0]["exc"] and "RuntimeError" in crash[0]["exc"]
    assert crash[0]["request_id"] == r.headers["X-Request-Id"] and crash[0]["level"] == "error"
    text = json.dumps(lines)
    assert api.auditor not in text and "hunter2" not in text
    assert "lsk_***" in text and "u:***@db" in text
    assert any(line.get("event") == "request" and line["status"] == 500 for line in lines)


def test_keys_and_closes_are_one_line_each(api, log_lines):
    key_id, secret = new_key(api.engine, "finance")
    with api.engine.Session() as session, session.begin():
        assert key_store.revoke(session, key_id)
    api.clock.advance()
    try:
        ok(api.post(f"/v1/days/{api.clock.today - timedelta(days=1)}/close", None, role="finance"))
    finally:
        api.clock.today -= timedelta(days=1)
    lines = log_lines()
    events = [line.get("event") for line in lines]
    assert events.count("key.created") == 1 and events.count("key.revoked") == 1
    assert events.count("day.closed") == 1
    created = next(line for line in lines if line.get("event") == "key.created")
    assert created["key_id"] == key_id and created["role"] == "finance"
    assert secret not in json.dumps(lines)
    closed = next(line for line in lines if line.get("event") == "day.closed")
    assert closed["day"] == str(api.clock.today) and closed["request_id"]


def test_a_repair_and_a_refused_start_are_one_line_each(make_books, log_lines):
    from ledger_service.rules.events import Register

    engine = make_books()
    engine.submit(Register("zed"))
    head = engine.head()
    root = engine.books.root
    journal = max(engine.books.journal_files())
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 20])  # the last entry torn: the next start rewrites it
    engine.dispose()
    Engine(root, clock=engine._clock).dispose()
    repaired = [line for line in log_lines() if line.get("event") == "journal.repaired"]
    assert len(repaired) == 1 and repaired[0]["last_seq"] == head["seq"]
    with open(journal, "ab") as handle:
        handle.write(b"; bytes the database does not know\n")
    with pytest.raises(JournalFault):
        Engine(root, clock=engine._clock)
    refused = [line for line in log_lines() if line.get("event") == "start.refused"]
    assert len(refused) == 1 and refused[0]["level"] == "error"


def test_gunicorn_workers_add_up(tmp_path):
    """`ledger-service serve` (2 workers, multiprocess mode): one scrape counts every worker's bookings;
    the server's stderr holds each request's JSON line with the id it answered."""
    from test_api_server import Server
    from test_api_server import make_books as make_served_books

    root = tmp_path / "books"
    keys = make_served_books(root)
    server = Server(root, tmp_path / "server.log", workers=2).start()
    try:
        sf = server.session(keys["storefront"])
        ids = []
        for i in range(12):
            r = sf.post(f"{server.url}/v1/members", json={"id": f"w{i}"}, headers={"Idempotency-Key": f"w{i}"},
                        timeout=20)
            assert r.status_code == 201, r.text
            ids.append(r.headers["X-Request-Id"])
        r = server.session(keys["auditor"]).get(f"{server.url}/metrics", timeout=20)
        assert r.status_code == 200, r.text
        m = samples(r.text)
        assert booked(m, "register", "booked") == 12
        assert m[("ledger_booking_duration_seconds_count", (("kind", "register"),))] == 12
        assert server.session(keys["storefront"]).get(f"{server.url}/metrics", timeout=20).status_code == 403
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    logged = {line.get("request_id") for line in lines if line.get("event") == "request"}
    assert set(ids) <= logged
    assert keys["storefront"] not in server.log_path.read_text()


def test_a_refused_serve_is_one_line(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ledger_service.cli", "serve", "--books", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == ["start.refused"] and "no books" in lines[0]["msg"]


def test_the_dashboard_names_only_metrics_the_service_exports(api):
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = {re.sub(r"_(bucket|count|sum|total)$", "", n) for e in exprs for n in re.findall(r"ledger_[a-z_]+", e)}
    record = api.engine.books.root / "ledger" / "verified.json"
    record.write_text(json.dumps({"ok": True, "finished_at": "2026-03-31T00:00:00+00:00"}))
    try:
        m = scrape(api)
    finally:
        record.unlink()
    assert m[("ledger_last_verify_ok", ())] == 1 and m[("ledger_last_verify_age_seconds", ())] > 0
    exported = {re.sub(r"_(bucket|count|sum|total|created)$", "", name) for name, _labels in m}
    assert named and named <= exported, named - exported
