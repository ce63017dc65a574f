"""What the rules need to know about the platform, as plain data.

`State` is the narrow interface the pure rules read and `apply` writes. Its
implementations: `MemoryState` here (quotes and tests, and through its subclass
`audit.replay.ReplayState` `verify` and the plugin), `store.db.DbReader` (the service's
database, read-only) and the holder index's `IndexState`; they hold the same
dataclasses, so a rule cannot tell which it is given. Writes go to an `Overlay`, a
copy-on-write layer whose `changes()` is a `ChangeSet`: what `store.db.persist` writes
back in one commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from decimal import Decimal
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Protocol

from . import accounts
from .amounts import ZERO, exact_add
from .entries import GENESIS_PREV, Entry, Posting, Transaction

MEMBER = "member"
MERCHANT = "merchant"
# The entry metadata keys that name a holder (an entry naming one is one of that holder's
# events), in the order the holder index lists them; postings name theirs in `holder`.
# The events' fields that name a holder are the fields written under these keys.
HOLDER_KEYS = ("member", "buyer", "merchant", "holder", "from", "to", "owner", "referrer")


# -- which holders an entry concerns (the holder index's rows, the liabilities tree's leaves) --------


def holders_of(entry: Entry) -> list[str]:
    """The holders an entry names (metadata, then posting `holder`s), each once, in order."""
    out: list[str] = []
    meta = dict(entry.meta)
    for key in HOLDER_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value not in out:
            out.append(value)
    for posting in getattr(entry, "postings", ()):
        holder = posting.holder
        if holder is not None and holder not in out:
            out.append(holder)
    return out


def event_rows(entry: Entry, day: date, journal: str, line: int, holders: list[str] | None = None) -> list[tuple]:
    """The index rows of one entry: (holder, day, event, kind, file, line) per holder it names
    (`holders`: `holders_of(entry)`, when the caller has it).

    Prices and releases name no holder (a release reaches holders through the indices)."""
    event_id = entry.get("event")
    if not isinstance(entry, Transaction) or event_id is None:
        return []
    kind = entry.kind or ""
    return [(holder, day, event_id, kind, journal, line) for holder in (holders_of(entry) if holders is None
                                                                         else holders)]


def row_digest_line(row: tuple) -> bytes:
    holder, day, event_id, kind, journal, line = row
    return f"{holder}|{day.isoformat()}|{event_id}|{kind}|{journal}|{line}\n".encode()


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
    # the day of its first order under merchant.deposit_rule "sp_held" (when it met the deposit);
    # None before, and always under "cash_paid" (`rules.orders.opening`)
    opened: date | None = None

    def copy(self) -> Holder:
        """A shallow copy (`dataclasses.replace(self)`, five times faster: read for every holder an event touches)."""
        return Holder(*_HOLDER_FIELDS(self))


_HOLDER_FIELDS = attrgetter(*(f.name for f in fields(Holder)))


@dataclass(slots=True)
class Payout:
    id: str
    holder: str
    sp: Decimal
    cny: Decimal
    status: str  # requested | settled | cancelled
    requested: date
    bank_reference: str | None = None


@dataclass(frozen=True, slots=True)
class Indices:
    """The release indices in force (see `subledger`): they change only at a daily release."""

    epoch: int
    sv_index: Decimal
    sp_index: Decimal


GENESIS_INDICES = Indices(0, Decimal(1), ZERO)


@dataclass(slots=True)
class EventRecord:
    """What a later reversal needs of an order or a transfer: its postings, and for an order its
    amount and the indices in force when it was booked (what its SV grants have become since)."""

    id: str
    kind: str
    postings: tuple[Posting, ...]
    reversed_by: str | None = None
    amount_cny: Decimal | None = None
    booked_at: Indices | None = None


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

    def copy(self) -> Globals:
        """A copy with its own balances (`replace(self, balances=dict(self.balances))`, faster)."""
        return Globals(self.genesis_day, self.open_day, self.value, self.seq, self.head, self.epoch, self.sv_index,
                       self.sp_index, self.total_shares, dict(self.balances))


# `Globals.copy` names every field: a field added must be added there too.
assert [f.name for f in fields(Globals)] == ["genesis_day", "open_day", "value", "seq", "head", "epoch", "sv_index",
                                             "sp_index", "total_shares", "balances"], "update Globals.copy"


class Epochs(Protocol):
    """Where the closed epochs are read (every `State`; a holder's balance needs no more)."""

    def epoch(self, number: int) -> Epoch: ...


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
    def sv_granted_on(self, holder_id: str, day: date) -> Decimal: ...
    def sv_granted_to_campaign(self, campaign: str) -> Decimal: ...
    def add_grant(self, holder_id: str, day: date, campaign: str | None, sv: Decimal) -> None: ...
    def forget_grant_days(self, through: date) -> None: ...


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
        # (holder, business day) -> SV granted that day, for the open day only: the close forgets the
        # day's totals (no event is booked on a closed day, so the per-day ceiling never reads them again)
        self.grant_days: dict[tuple[str, date], Decimal] = {}
        self.grant_campaigns: dict[str, Decimal] = {}  # campaign id -> SV granted

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

    def sv_granted_on(self, holder_id: str, day: date) -> Decimal:
        return self.grant_days.get((holder_id, day), ZERO)

    def sv_granted_to_campaign(self, campaign: str) -> Decimal:
        return self.grant_campaigns.get(campaign, ZERO)

    def add_grant(self, holder_id: str, day: date, campaign: str | None, sv: Decimal) -> None:
        self.grant_days[(holder_id, day)] = exact_add(self.sv_granted_on(holder_id, day), sv)
        if campaign is not None:
            self.grant_campaigns[campaign] = exact_add(self.sv_granted_to_campaign(campaign), sv)

    def forget_grant_days(self, through: date) -> None:
        if self.grant_days:
            self.grant_days = {key: sv for key, sv in self.grant_days.items() if key[1] > through}

    def iter_holders(self) -> Iterator[Holder]:
        return iter(self.holders.values())


_UNSEEN: Any = object()  # Overlay.holder: an id it has not looked up yet


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
        self._grant_days: dict[tuple[str, date], Decimal] = {}  # the new totals
        self._grant_campaigns: dict[str, Decimal] = {}
        self._grant_days_forgotten: date | None = None  # the totals of days up to this one are dropped
        self._closed_days: list[ClosedDay] = []

    def changes(self) -> ChangeSet:
        """What this overlay changed, to be written back (read-only views of its own tables:
        the overlay is not to be used after this)."""
        base_balances = self.base.g.balances
        changed_balances, added_balances = {}, {}
        for account, amount in self.g.balances.items():
            if account not in base_balances:
                added_balances[account] = amount
            elif base_balances[account] != amount:
                changed_balances[account] = amount
        return ChangeSet(
            g=self.g, changed_balances=MappingProxyType(changed_balances),
            added_balances=MappingProxyType(added_balances), holders=MappingProxyType(self._holders),
            new_holders=frozenset(self._new_holders), partners=MappingProxyType(self._partners),
            epochs=MappingProxyType(self._epochs), payouts=MappingProxyType(self._payouts),
            orders=MappingProxyType(self._orders), records=MappingProxyType(self._records),
            closed_days=tuple(self._closed_days), grant_days=MappingProxyType(self._grant_days),
            grant_campaigns=MappingProxyType(self._grant_campaigns), grant_days_forgotten=self._grant_days_forgotten,
        )

    def absorb(self, child: Overlay) -> None:
        """Take in what an overlay opened over this one changed (`Overlay(self)`): one event of a
        group commit, planned on its own so that a refusal leaves this overlay as it was."""
        assert child.base is self
        self.g = child.g
        self._holders.update(child._holders)
        self._new_holders |= child._new_holders
        self._partners.update(child._partners)
        self._epochs.update(child._epochs)
        self._payouts.update(child._payouts)
        self._orders.update(child._orders)
        self._records.update(child._records)
        if child._grant_days_forgotten is not None:
            self.forget_grant_days(child._grant_days_forgotten)
        self._grant_days.update(child._grant_days)
        self._grant_campaigns.update(child._grant_campaigns)
        self._closed_days += child._closed_days

    @property
    def closed_days(self) -> tuple[ClosedDay, ...]:
        return tuple(self._closed_days)

    def close_day(self, closed: ClosedDay) -> None:
        """Record a day closed on this overlay (its release and the next day's price are applied)."""
        self._closed_days.append(closed)

    def holder(self, holder_id: str) -> Holder | None:
        mine = self._holders.get(holder_id, _UNSEEN)  # (one lookup: read for every holder an event names)
        if mine is not _UNSEEN:
            return mine
        found = self.base.holder(holder_id)
        self._holders[holder_id] = found = found.copy() if found is not None else None
        if found is None:
            self._new_holders.add(holder_id)
        return found

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

    def sv_granted_on(self, holder_id: str, day: date) -> Decimal:
        found = self._grant_days.get((holder_id, day))
        if found is not None:
            return found
        if self._grant_days_forgotten is not None and day <= self._grant_days_forgotten:
            return ZERO
        return self.base.sv_granted_on(holder_id, day)

    def sv_granted_to_campaign(self, campaign: str) -> Decimal:
        found = self._grant_campaigns.get(campaign)
        return found if found is not None else self.base.sv_granted_to_campaign(campaign)

    def add_grant(self, holder_id: str, day: date, campaign: str | None, sv: Decimal) -> None:
        self._grant_days[(holder_id, day)] = exact_add(self.sv_granted_on(holder_id, day), sv)
        if campaign is not None:
            self._grant_campaigns[campaign] = exact_add(self.sv_granted_to_campaign(campaign), sv)

    def forget_grant_days(self, through: date) -> None:
        self._grant_days = {key: sv for key, sv in self._grant_days.items() if key[1] > through}
        self._grant_days_forgotten = through


@dataclass(frozen=True, slots=True)
class ClosedDay:
    """A day closed by a booking: what its day row records."""

    day: date
    file: str  # its journal day file
    closing_hash: str  # the hash of its release
    last_seq: int  # the seq of its release, its last entry
    value: Decimal  # CNY per SP on the day
    supply: Mapping[str, str]  # the supply report at its close (`reports.supply_report`)


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What an `Overlay` changed: the new position and the rows to write (`store.db.persist`).

    `holders` holds every holder the overlay looked up or wrote (None: looked up, not there);
    `new_holders` the ids among them the base did not have. `orders` maps an order id to the
    id of the event that booked it; `records` are the event records added or changed
    (a reversal sets `reversed_by`). `grant_days` and `grant_campaigns` are the new totals of
    SV granted (event `grant`) per (holder, business day) and per campaign; the totals of the
    days up to `grant_days_forgotten` (the last day closed) are to be deleted first."""

    g: Globals
    changed_balances: Mapping[str, Decimal]
    added_balances: Mapping[str, Decimal]
    holders: Mapping[str, Holder | None]
    new_holders: frozenset[str]
    partners: Mapping[str, str]
    epochs: Mapping[int, Epoch]
    payouts: Mapping[str, Payout]
    orders: Mapping[str, str]
    records: Mapping[str, EventRecord]
    closed_days: tuple[ClosedDay, ...] = ()
    grant_days: Mapping[tuple[str, date], Decimal] = field(default_factory=lambda: MappingProxyType({}))
    grant_campaigns: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({}))
    grant_days_forgotten: date | None = None


def supply_of(g: Globals, cap: Decimal) -> dict[str, Decimal]:
    """The supply report's numbers of a position (SPEC §3, §7): `supply_numbers` of its balances."""
    return supply_numbers(g.balances, cap)


def issued_of(balances: Mapping[str, Decimal]) -> Decimal:
    """SP issued: released + sold (`supply_numbers(...)["issued"]`, alone: the replay checks it after every entry)."""
    return balances.get(accounts.SP_RELEASED, ZERO) + balances.get(accounts.SP_SOLD, ZERO)


def supply_numbers(balances: Mapping[str, Decimal], cap: Decimal) -> dict[str, Decimal]:
    """The supply report's numbers from the control balances (SPEC §3, §7), unrounded.

    `reports.supply_figures` rounds them as shown; the rules read them for the value of a
    point and the day's release."""
    released = balances.get(accounts.SP_RELEASED, ZERO)
    sold = balances.get(accounts.SP_SOLD, ZERO)
    burned = -balances.get(accounts.SP_BURNED, ZERO)
    redeemed = -balances.get(accounts.SP_REDEEMED, ZERO)
    issued = issued_of(balances)
    return {
        "cap": cap,
        "issued": issued,
        "released": released,
        "sold": sold,
        "burned": burned,
        "redeemed": redeemed,
        "circulating": issued - burned - redeemed,
        "pool_cny": balances.get(accounts.POOL, ZERO),
    }
