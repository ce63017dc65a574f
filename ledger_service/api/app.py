"""The storefront API (SPEC §7): Flask + APIFlask, calling the engine and nothing else to book.

- OpenAPI 3.1 generated from the code at /openapi.json, interactive docs at /docs (Swagger UI
  served from the package: no CDN, works offline);
- `Authorization: Bearer <key>`; unknown key 401, wrong role 403;
- every write needs `Idempotency-Key`: same key and body → the first response again,
  nothing booked; same key, other body → 409; kept in the database in the booking's
  own transaction;
- errors are `application/problem+json` (RFC 9457) with a stable `type` per rule,
  `title`, `detail` and `field`; a refused write books nothing.

`create_app` assembles the app: one blueprint per resource (members, stores, orders,
holdings, grants, days, proofs, reads), the guards and the auth they share (`common`, `guards`), the
problem answers (`problems`) and the OpenAPI document completed into the contract clients
generate from (`contract`: operationIds, examples, links, every status and header).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from apiflask import APIFlask

from ..engine import Engine
from . import days, grants, holdings, members, metrics, orders, proofs, reads, request_log, stores
from .common import ENGINE
from .docs_ui import serve_docs_offline
from .problems import register_error_handlers
from .schemas import MAX_BODY_BYTES

BLUEPRINTS = (members.bp, stores.bp, orders.bp, holdings.bp, grants.bp, days.bp, proofs.bp, reads.bp, metrics.bp)


def create_app(books: Path | str, db_url: str | None = None, clock: Callable[[], date] | None = None,
               engine: Engine | None = None, group_commit: bool = False) -> APIFlask:
    """The app on these books. `group_commit`: the request threads of this process book in shared
    commits (`Engine.enable_group_commit`; `serve --threads N` with N > 1 turns it on)."""
    engine = engine or Engine(books, db_url, clock, serve_on_fault=True)  # a worker always boots: reads go on
    if group_commit:
        engine.enable_group_commit()
    app = APIFlask(__name__, title="Shared-purchase points ledger API", version="1.0.0",
                   spec_path="/openapi.json", docs_path="/docs")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["INFO"] = {"description": "Post the storefront's events, read balances and the SP supply. "
                                         "Amounts are decimal strings. Errors are RFC 9457 problem documents."}
    app.extensions[ENGINE] = engine
    register_error_handlers(app)
    request_log.install(app)
    metrics.install(app, engine)
    serve_docs_offline(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
