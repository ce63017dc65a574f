"""`GET /metrics`: Prometheus text format, for an auditor or admin key (issue 17 §2).

Counted as requests are answered (in every gunicorn worker: multiprocess mode, the files in
$PROMETHEUS_MULTIPROC_DIR, which `ledger-service serve` sets to a fresh folder):

- `ledger_bookings_total{kind, outcome}`: every write (quotes excepted); `kind` is the event's
  kind (`order`, `register`, …, `close` for a close of days), or the operation id for a request
  refused before it names an event; `outcome` is `booked`, `replayed` (an Idempotency-Key's
  replay), `refused` (by a rule: 404/409/422 from the rules), `invalid` (any other 4xx: input,
  auth, Idempotency-Key) or `failed` (5xx);
- `ledger_booking_duration_seconds{kind}`: the latency of each write answered `booked`;
- `ledger_writer_lock_wait_seconds{kind}`: the time each booking waited for the books' writer lock
  (`kind` as above; `other` outside a request).

A metrics file that cannot be written (a full disk) never fails an answer: it is logged once
(`"event": "metrics.unwritable"`) and that process stops counting.

Read from the books at each scrape: `ledger_chain_head_seq`, `ledger_journal_lag_entries`,
`ledger_journal_fault` (1 when the journal holds bytes the database does not know),
`ledger_open_day_timestamp_seconds` (the open day, 00:00 UTC), `ledger_days_since_last_close`
(today − the open day: 0 when every ended day is closed), `ledger_last_verify_ok` (1 ok, 0
faults, −1 never verified) and `ledger_last_verify_age_seconds` (absent when never verified),
`ledger_value_cny_per_sp` and `ledger_circulating_sp`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ..audit import record
from ..engine import Engine
from .common import Routes, auth, engine
from .contract import METRICS_EXAMPLE, NOT_IDEMPOTENT, OPERATION_IDS

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_NOT_RULES = ("input.", "idempotency.", "auth.")  # refusals of the request itself, not by the rules
METRICS_ROLES = ["auditor", "admin"]
OWN = CollectorRegistry(auto_describe=True)  # this process's counters (single-process mode)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

BOOKINGS = Counter("ledger_bookings", "Writes answered, by event kind and outcome", ["kind", "outcome"],
                   registry=OWN)
BOOKING_SECONDS = Histogram("ledger_booking_duration_seconds", "Latency of the writes answered booked (201)",
                            ["kind"], buckets=_LATENCY_BUCKETS, registry=OWN)
LOCK_WAIT = Histogram("ledger_writer_lock_wait_seconds", "Time each booking waited for the books' writer lock",
                      ["kind"], buckets=_WAIT_BUCKETS, registry=OWN)
log = logging.getLogger(__name__)
_unwritable: list[bool] = []  # the metrics' files could not be written (logged once per process)

_RESPONSES: Any = {200: {"description": "the metrics", "content": {"text/plain": {
    "schema": {"type": "string"}, "example": METRICS_EXAMPLE}}}}
bp = Routes("metrics", __name__, tag={"name": "Operations", "description": "Prometheus metrics"})

@bp.get("/metrics")
@bp.auth_required(auth, roles=METRICS_ROLES)
@bp.doc(summary="Prometheus metrics (text format 0.0.4): bookings, latency, lock wait, journal, day, verify, supply",
        responses=_RESPONSES)
def metrics():
    return Response(exposition(engine()), headers={"Content-Type": CONTENT_TYPE_LATEST})


def exposition(eng: Engine) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(OWN))
    registry.register(BooksCollector(eng))
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


class BooksCollector(Collector):
    """The books' state, read at each scrape."""

    def __init__(self, eng: Engine) -> None:
        self.engine = eng

    def collect(self) -> Iterator[Metric]:
        eng = self.engine
        head = eng.head()
        journal = eng.journal_state()
        supply = eng.supply()
        open_day = date.fromisoformat(head["open_day"])
        yield _gauge("ledger_chain_head_seq", "Sequence number of the chain's last entry", head["seq"])
        yield _gauge("ledger_journal_lag_entries", "Committed entries not yet in the journal",
                     journal["journal_lag_entries"])
        yield _gauge("ledger_journal_fault", "1 when the journal holds bytes the database does not know",
                     1 if journal["journal"] == "fault" else 0)
        yield _gauge("ledger_open_day_timestamp_seconds", "The open business day (00:00 UTC of its date)",
                     datetime(open_day.year, open_day.month, open_day.day, tzinfo=UTC).timestamp())
        yield _gauge("ledger_days_since_last_close", "Ended days not closed yet (today - the open day)",
                     (eng.today() - open_day).days)
        found = record.read(eng.books.root)
        ok = -1 if found is None else (1 if found.get("ok") else 0)
        yield _gauge("ledger_last_verify_ok", "Last recorded verify: 1 ok, 0 faults, -1 never verified", ok)
        finished = _parse_time(found.get("finished_at") if found else None)
        if finished is not None:
            yield _gauge("ledger_last_verify_age_seconds", "Seconds since the last recorded verify finished",
                         time.time() - finished)
        yield _gauge("ledger_value_cny_per_sp", "Value of a point (CNY per SP) on the open day",
                     Decimal(head["value_cny_per_sp"]))
        if "circulating" in supply:
            yield _gauge("ledger_circulating_sp", "SP circulating now", Decimal(str(supply["circulating"])))


def _gauge(name: str, documentation: str, value: float | Decimal) -> GaugeMetricFamily:
    """A gauge; Prometheus samples are doubles, so a Decimal figure is shown rounded to one."""
    return GaugeMetricFamily(name, documentation, value=float(value))  # float ok: the exposition format's double


def _parse_time(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


# -- counting the writes -------------------------------------------------------------------------------------------


def install(app: Flask, eng: Engine) -> None:
    """Count every write as it is answered, and each booking's wait for the writer lock."""
    eng.on_lock_wait = _lock_waited
    app.after_request(_count)


def _lock_waited(seconds: float) -> None:
    if _unwritable:
        return
    kind = (g.get("booking_kind") or "other") if has_request_context() else "other"
    _safely(lambda: LOCK_WAIT.labels(kind).observe(seconds))


def _safely(record: Callable[[], object]) -> None:
    """Record a metric; a metrics file that cannot be written (a full disk) never fails an answer."""
    try:
        record()
    except OSError as exc:
        if not _unwritable:
            _unwritable.append(True)
            log.warning("metrics not recorded: %s (this process stops reporting them)", exc,
                        extra={"fields": {"event": "metrics.unwritable"}})


def _operation() -> str | None:
    """The operation id of a write (None: a read, a quote, an unknown path)."""
    if request.method != "POST" or request.url_rule is None:
        return None
    path = request.url_rule.rule.replace("<", "{").replace(">", "}")
    if path in NOT_IDEMPOTENT:
        return None
    return OPERATION_IDS.get(("post", path))


def _count(response: Response) -> Response:
    operation = _operation()
    if operation is None:
        return response
    kind = g.get("booking_kind") or operation
    status = response.status_code
    if status < 300:
        outcome = "replayed" if response.headers.get("Idempotent-Replayed") == "true" else "booked"
    elif status >= 500:
        outcome = "failed"
    else:
        rule = g.get("refused_rule") or ""
        outcome = "refused" if rule and not rule.startswith(_NOT_RULES) else "invalid"
    if _unwritable:
        return response
    _safely(lambda: BOOKINGS.labels(kind, outcome).inc())
    started = g.get("request_started")
    if outcome == "booked" and started is not None:
        seconds = time.perf_counter() - started
        _safely(lambda: BOOKING_SECONDS.labels(kind).observe(seconds))
    return response
