"""Orders: booking one with every split of its rebate, quoting one, reversing one (SPEC §4.4, §4.10)."""

from __future__ import annotations

from ..errors import NotFound
from ..rules import events as ev
from . import schemas as s
from .common import Routes, book, day_of, engine

bp = Routes("orders", __name__,
            tag={"name": "Orders", "description": "Orders with every split of their rebate; quotes; reversals"})


def _order(data: dict) -> ev.Order:
    return ev.Order(data["id"], data["buyer"], data["merchant"], data["amount_cny"], data.get("ship_region"))


@bp.post("/v1/orders")
@bp.write("storefront")
@bp.input(s.OrderIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Book an order and every split of its rebate")
def order(data):
    return book(_order(data), data)


@bp.post("/v1/orders/quote")
@bp.write("storefront", idempotent=False)
@bp.input(s.OrderIn, arg_name="data")
@bp.output(s.EventOut, status_code=200)
@bp.doc(summary="What an order would book, booking nothing")
def quote(data):
    return engine().quote(_order(data), day_of(data)).to_json()


@bp.post("/v1/orders/<order_id>/reverse")
@bp.write("finance")
@bp.input(s.ReverseIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Reverse (refund) an order, or part of it with amount_cny",
        description="Takes back what remains of what the order gave, after the releases since; what a holder "
                    "no longer holds is stated in the entry's `unrecovered_sp` (README \"Refunds after the day "
                    "closed\"). Books whose rules predate it (reverse.rule = flip) book the exact mirror.")
def reverse(order_id, data):
    event_id = engine().event_for_order(order_id)
    if event_id is None:
        raise NotFound("order.unknown", f"id: no order {order_id!r}", "id")
    return book(ev.Reverse(event_id, data.get("amount_cny")), data)  # the engine parses the amount
