"""What the rules need to know about the platform, as plain data.

`State` is the narrow interface the pure rules read and `apply` writes. Two
implementations: `MemoryState` here (used by quotes and tests, and through its subclass
`audit.replay.ReplayState` by `verify` and the plugin) and `store.DbState` (the service's
database). Both hold the same dataclasses, so a rule cannot tell which it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Iterator, Protocol

from . import accounts
from .amounts import ZERO
from .entries import GENESIS_PREV, Posting

MEMBER = "member"
MERCHANT = "merchant"


@dataclass(slots=True)
class Holder:
    """One member or merchant, with their subledger position.

    Active SV is held as `shares` of epoch `epoch`: the holder's active SV is
    shares × the SV index, and the SP the releases gave them since their last
    event is shares × (SP index − `sp_ckpt`). `sp_exact` is their SP at that
    checkpoint, unrounded (display and spending round it down to 0.0001).
    """

    id: str
    kind: str
    created: date
    referrer: str | None = None
    region: str | None = None
    role: str = "member"
    active: bool = False
    sv_locked: Decimal = ZERO
    shares: Decimal = ZERO
    epoch: int = 0
    sp_ckpt: Decimal = ZERO
    sp_exact: Decimal = ZERO
    last_purchase: date | None = None
    # merchants only
    owner: str | None = None
    channel: str | None = None
    rebate_rate: Decimal | None = None
    store_referrer: str | None = None
    deposits_cny: Decimal = ZERO


@dataclass(slots=True)
class Payout:
    id: str
    holder: str
    sp: Decimal
    cny: Decimal
    status: str  # requested | settled | cancelled
    requested: date
    bank_reference: str | None = None


@dataclass(slots=True)
class EventRecord:
    """What a later reversal needs of an order or a transfer."""

    id: str
    kind: str
    postings: tuple[Posting, ...]
    reversed_by: str | None = None


@dataclass(slots=True)
class Epoch:
    """A closed epoch of the SV index: its last SP index and how a share carries over."""

    number: int
    sp_index_end: Decimal
    factor: Decimal  # one share of this epoch is worth `factor` shares of the next


@dataclass(slots=True)
class Globals:
    """The platform-wide position: chain head, open day, value, indices, balances."""

    genesis_day: date
    open_day: date  # the first business day not closed yet
    value: Decimal  # CNY per SP on the open day (the last price directive)
    seq: int = 0
    head: str = GENESIS_PREV
    epoch: int = 0
    sv_index: Decimal = Decimal(1)
    sp_index: Decimal = ZERO
    total_shares: Decimal = ZERO
    balances: dict[str, Decimal] = field(default_factory=dict)

    def balance(self, account: str) -> Decimal:
        return self.balances.get(account, ZERO)

    def copy(self) -> "Globals":
        return replace(self, balances=dict(self.balances))


class State(Protocol):
    """Read and write access to the platform's position, one event at a time."""

    g: Globals

    def holder(self, holder_id: str) -> Holder | None: ...
    def put_holder(self, holder: Holder) -> None: ...
    def partner_of(self, region: str) -> str | None: ...
    def set_partner(self, region: str, holder_id: str) -> None: ...
    def epoch(self, number: int) -> Epoch: ...
    def add_epoch(self, epoch: Epoch) -> None: ...
    def payout(self, payout_id: str) -> Payout | None: ...
    def put_payout(self, payout: Payout) -> None: ...
    def order_event(self, order_id: str) -> str | None: ...
    def record_event(self, record: EventRecord, order_id: str | None) -> None: ...
    def event_record(self, event_id: str) -> EventRecord | None: ...
    def put_event_record(self, record: EventRecord) -> None: ...


class MemoryState:
    """The whole position in dictionaries, with every order's and transfer's postings (what a
    reversal mirrors): memory grows with events too. Fine for quotes and tests; the replay of
    a whole journal uses `audit.replay.ReplayState`, which keeps those on disk."""

    def __init__(self, g: Globals) -> None:
        self.g = g
        self.holders: dict[str, Holder] = {}
        self.partners: dict[str, str] = {}
        self.epochs: dict[int, Epoch] = {}
        self.payouts: dict[str, Payout] = {}
        self.orders: dict[str, str] = {}
        self.records: dict[str, EventRecord] = {}

    def holder(self, holder_id: str) -> Holder | None:
        return self.holders.get(holder_id)

    def put_holder(self, holder: Holder) -> None:
        self.holders[holder.id] = holder

    def partner_of(self, region: str) -> str | None:
        return self.partners.get(region)

    def set_partner(self, region: str, holder_id: str) -> None:
        self.partners[region] = holder_id

    def epoch(self, number: int) -> Epoch:
        return self.epochs[number]

    def add_epoch(self, epoch: Epoch) -> None:
        self.epochs[epoch.number] = epoch

    def payout(self, payout_id: str) -> Payout | None:
        return self.payouts.get(payout_id)

    def put_payout(self, payout: Payout) -> None:
        self.payouts[payout.id] = payout

    def order_event(self, order_id: str) -> str | None:
        return self.orders.get(order_id)

    def record_event(self, record: EventRecord, order_id: str | None) -> None:
        self.records[record.id] = record
        if order_id is not None:
            self.orders[order_id] = record.id

    def event_record(self, event_id: str) -> EventRecord | None:
        return self.records.get(event_id)

    def put_event_record(self, record: EventRecord) -> None:
        self.records[record.id] = record

    def iter_holders(self) -> Iterator[Holder]:
        return iter(self.holders.values())


class Overlay:
    """A scratch copy-on-write layer over a state: quotes and refused events leave no trace."""

    def __init__(self, base: State) -> None:
        self.base = base
        self.g = base.g.copy()
        self._holders: dict[str, Holder | None] = {}
        self._new_holders: set[str] = set()  # ids the base did not have
        self._partners: dict[str, str] = {}
        self._epochs: dict[int, Epoch] = {}
        self._payouts: dict[str, Payout] = {}
        self._orders: dict[str, str] = {}
        self._records: dict[str, EventRecord] = {}

    def holder(self, holder_id: str) -> Holder | None:
        if holder_id not in self._holders:
            found = self.base.holder(holder_id)
            self._holders[holder_id] = replace(found) if found is not None else None
            if found is None:
                self._new_holders.add(holder_id)
        return self._holders[holder_id]

    def put_holder(self, holder: Holder) -> None:
        if holder.id not in self._holders and self.base.holder(holder.id) is None:
            self._new_holders.add(holder.id)
        self._holders[holder.id] = holder

    def partner_of(self, region: str) -> str | None:
        return self._partners.get(region) or self.base.partner_of(region)

    def set_partner(self, region: str, holder_id: str) -> None:
        self._partners[region] = holder_id

    def epoch(self, number: int) -> Epoch:
        return self._epochs.get(number) or self.base.epoch(number)

    def add_epoch(self, epoch: Epoch) -> None:
        self._epochs[epoch.number] = epoch

    def payout(self, payout_id: str) -> Payout | None:
        if payout_id not in self._payouts:
            found = self.base.payout(payout_id)
            if found is None:
                return None
            self._payouts[payout_id] = replace(found)
        return self._payouts[payout_id]

    def put_payout(self, payout: Payout) -> None:
        self._payouts[payout.id] = payout

    def order_event(self, order_id: str) -> str | None:
        return self._orders.get(order_id) or self.base.order_event(order_id)

    def record_event(self, record: EventRecord, order_id: str | None) -> None:
        self._records[record.id] = record
        if order_id is not None:
            self._orders[order_id] = record.id

    def event_record(self, event_id: str) -> EventRecord | None:
        if event_id not in self._records:
            found = self.base.event_record(event_id)
            if found is None:
                return None
            self._records[event_id] = replace(found)
        return self._records[event_id]

    def put_event_record(self, record: EventRecord) -> None:
        self._records[record.id] = record


def supply_of(g: Globals, cap: Decimal) -> dict[str, Decimal]:
    """The supply report's numbers from the control balances (SPEC §3, §7)."""
    released = g.balance(accounts.SP_RELEASED)
    sold = g.balance(accounts.SP_SOLD)
    burned = -g.balance(accounts.SP_BURNED)
    redeemed = -g.balance(accounts.SP_REDEEMED)
    issued = released + sold
    return {
        "cap": cap,
        "issued": issued,
        "released": released,
        "sold": sold,
        "burned": burned,
        "redeemed": redeemed,
        "circulating": issued - burned - redeemed,
        "pool_cny": g.balance(accounts.POOL),
    }
