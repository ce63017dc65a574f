"""SV for completed tasks and campaigns (issue 13, part 3): the `grant` event.

The first source document: 共享值 is obtained 「通过在平台消费、完成任务获得」. Finance grants
a member SV for a completed task (`reason` "task") or a campaign's reward ("campaign", which
must name its `campaign`). Like every other SV grant it is created in `Equity:SV:Granted`
and credited to the member as active SV when they are active, else as locked SV (unlocked
by their first pack, as the registration grant is):

    Liabilities:Holders:SV:Active|Locked   -sv   (holder, leg grant)
    Equity:SV:Granted                       sv

Two ceilings of the rules fixed at genesis bound it, each refused past (409, nothing booked):

    SV granted to the holder on the business day + sv  ≤  grant.max_sv_per_holder_per_day
    SV granted naming the campaign, ever + sv           ≤  grant.max_sv_per_campaign

(the first resets each business day; a grant without a campaign counts only towards the
first). A ceiling per day of 0 refuses every grant (`grant.disabled`): the rule of books made
before grants existed.
"""

from __future__ import annotations

from .. import accounts as A
from ..amounts import fmt
from ..entries import Transaction
from ..errors import Conflict, Invalid
from ..state import State
from .base import Builder, Ctx, inputs_of, member
from .events import Grant


def grant(state: State, ev: Grant, ctx: Ctx) -> Transaction:
    p = ctx.params
    if ev.reason == "campaign" and ev.campaign is None:
        raise Invalid("grant.campaign_required", "campaign: a campaign grant names its campaign id", "campaign")
    who = member(state, ev.holder, "holder")
    day_ceiling = p.grant_max_sv_per_holder_per_day
    if day_ceiling == 0:
        raise Conflict("grant.disabled", "sv: these books' rules allow no SV grants "
                                         "(grant.max_sv_per_holder_per_day = 0)", "sv")
    granted_today = state.sv_granted_on(who.id, ctx.day)
    if granted_today + ev.sv > day_ceiling:
        raise Conflict(
            "grant.holder_day_ceiling",
            f"sv: {who.id} was granted {fmt(granted_today)} SV on {ctx.day.isoformat()}; {fmt(ev.sv)} SV more "
            f"exceeds grant.max_sv_per_holder_per_day = {fmt(day_ceiling)} SV "
            f"(at most {fmt(day_ceiling - granted_today)} SV more that day)", "sv")
    if ev.campaign is not None:
        campaign_ceiling = p.grant_max_sv_per_campaign
        granted_campaign = state.sv_granted_to_campaign(ev.campaign)
        if granted_campaign + ev.sv > campaign_ceiling:
            raise Conflict(
                "grant.campaign_ceiling",
                f"sv: campaign {ev.campaign} has granted {fmt(granted_campaign)} SV; {fmt(ev.sv)} SV more exceeds "
                f"grant.max_sv_per_campaign = {fmt(campaign_ceiling)} SV "
                f"(at most {fmt(campaign_ceiling - granted_campaign)} SV more)", "sv")

    b = Builder(ctx, ev.kind, f"{ev.reason} grant of {fmt(ev.sv)} SV to {who.id}"
                + (f" ({ev.campaign})" if ev.campaign else ""), inputs_of(ev))
    account = A.HOLDERS_SV_ACTIVE if who.active else A.HOLDERS_SV_LOCKED
    b.post(account, -ev.sv, holder=who.id, leg="grant")
    b.post(A.SV_GRANTED, ev.sv)
    return b.build()
