"""SP leaving a holder: transfers, payouts (request, settle, cancel), redemptions (SPEC §4.7–§4.9)."""

from __future__ import annotations

from ..rules import events as ev
from . import schemas as s
from .common import Routes, book

bp = Routes("holdings", __name__,
            tag={"name": "Holdings", "description": "SP leaving a holder: transfers, payouts, redemptions"})


@bp.post("/v1/transfers")
@bp.write("storefront")
@bp.input(s.TransferIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Move SP from one holder to another")
def transfer(data):
    return book(ev.Transfer(data["from_"], data["to"], data["sp"]), data)


@bp.post("/v1/payouts")
@bp.write("storefront")
@bp.input(s.PayoutIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Request a cash-out at the day's value; the event id is the payout id")
def payout(data):
    return book(ev.PayoutRequest(data["holder"], data["sp"]), data)


@bp.post("/v1/payouts/<payout_id>/settle")
@bp.write("finance")
@bp.input(s.SettleIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="The bank paid: clear the payable")
def settle(payout_id, data):
    return book(ev.PayoutSettle(payout_id, data["bank_reference"]), data)


@bp.post("/v1/payouts/<payout_id>/cancel")
@bp.write("finance")
@bp.input(s.DateOnlyIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Cancel a pending payout: SP and CNY restored exactly")
def cancel(payout_id, data):
    return book(ev.PayoutCancel(payout_id), data)


@bp.post("/v1/redemptions")
@bp.write("storefront")
@bp.input(s.RedeemIn, arg_name="data")
@bp.output(s.EventOut, status_code=201)
@bp.doc(summary="Redeem SP for platform goods at the day's value")
def redeem(data):
    return book(ev.Redeem(data["holder"], data["sp"], data["goods"]), data)
