"""The HTTP stack's ceiling (issue 15 §1): the API's framework (APIFlask), the same body schema
(`schemas.OrderIn`) and gunicorn settings as `ledger-service serve`, an order-shaped endpoint
that validates the body and books nothing. `benchmarks/api_wrk.py` serves it next to the real
API and reports orders/s as a fraction of what this answers.

    gunicorn --chdir benchmarks/wrk --workers 2 --threads T ceiling_app:app
"""

from __future__ import annotations

import hashlib

from apiflask import APIFlask

from ledger_service.api import schemas as s

app = APIFlask(__name__, title="ceiling", version="1", spec_path=None, docs_path=None)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/v1/orders")
@app.input(s.OrderIn, arg_name="data")
def order(data):
    digest = hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()  # a hash per booking, as the books do
    return {"id": "E000000001", "kind": "order", "hash": digest, "order_id": data["id"]}, 201
