"""Stores and the pool's money in: opening a store, deposits (SPEC §4.3, §4.5)."""

from __future__ import annotations

from ..rules import events as ev
from . import schemas as s
from .common import Routes, book

bp = Routes("stores", __name__,
            tag={"name": "Stores", "description": "Opening a store; money into the pool"})


@bp.post("/v1/merchants")
@bp.write("storefront")
@bp.input(s.MerchantIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Open a store")
def open_store(data):
    return book(ev.OpenStore(data["id"], data["owner"], data["region"], data["channel"],
                             data["rebate_rate"], data.get("referrer")), data)


@bp.post("/v1/deposits")
@bp.write("finance")
@bp.input(s.DepositIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Money into the pool: a merchant's deposit (buys SP) or a platform injection")
def deposit(data):
    return book(ev.Deposit(data["amount_cny"], data.get("merchant"), bool(data.get("platform"))), data)
