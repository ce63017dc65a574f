"""The events of SPEC §4 as typed, validated inputs.

An event is what the storefront or finance asks for; it carries no computed
amount. `parse(kind, fields)` builds one from strings (an API body, a CSV row or
a journal entry's metadata) and refuses malformed input with `Invalid` naming
the field; `to_meta` gives the exact strings written into the entry, so the
journal alone says what was asked and a verifier can recompute what was booked.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from ..amounts import CNY, SP, SV, AmountError, fmt, parse_amount, parse_rate
from ..config import ROLES
from ..errors import Invalid
from ..text import check as check_text

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")  # \Z: "$" would let a trailing newline through
REGION_RE = re.compile(r"^[0-9]{6}\Z")
TEXT_MAX = 200
# Why a `grant` gives SV (issue 13, part 3): a completed task, or a campaign's reward.
GRANT_REASONS = ("task", "campaign")


class EventKind(StrEnum):
    """The `kind` of every chained journal entry: its metadata value, exactly as written.

    The client events (the `Event` subclasses below), the daily `release`, the engine's own
    `checkpoint` (a closed day's signed checkpoint) and `signing_key` (a key rotation), and the
    two entries no event asks for: `genesis` (the rules in force) and `price` (a day's value).
    A StrEnum: each member equals its string, so rows and metadata compare without a cast.
    """

    GENESIS = "genesis"
    REGISTER = "register"
    SET_ROLE = "set_role"
    BUY_PACK = "buy_pack"
    OPEN_STORE = "open_store"
    DEPOSIT = "deposit"
    ORDER = "order"
    TRANSFER = "transfer"
    PAYOUT = "payout"
    PAYOUT_SETTLE = "payout_settle"
    PAYOUT_CANCEL = "payout_cancel"
    REDEEM = "redeem"
    REVERSE = "reverse"
    GRANT = "grant"
    RELEASE = "release"
    PRICE = "price"
    CHECKPOINT = "checkpoint"
    SIGNING_KEY = "signing_key"



# Field types: how a field is parsed from text and written back.
def _id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise Invalid("input.bad_id", f"{field}: ids are 1 to 64 characters of A-Z a-z 0-9 _ -, got {value!r}", field)
    return value


def _region(value: Any, field: str) -> str:
    if not isinstance(value, str) or not REGION_RE.match(value):
        raise Invalid("input.bad_region", f"{field}: a region is a 6-digit division code like 441900, got {value!r}",
                      field)
    return value


def _cny(value: Any, field: str) -> Decimal:
    try:
        return parse_amount(value, CNY, field=field)
    except AmountError as exc:
        raise Invalid("input.bad_amount", str(exc), field) from None


def _sp(value: Any, field: str) -> Decimal:
    try:
        return parse_amount(value, SP, field=field)
    except AmountError as exc:
        raise Invalid("input.bad_amount", str(exc), field) from None


def _sv(value: Any, field: str) -> Decimal:
    try:
        return parse_amount(value, SV, field=field)
    except AmountError as exc:
        raise Invalid("input.bad_amount", str(exc), field) from None


def _rebate(value: Any, field: str) -> Decimal:
    try:
        rate = parse_rate(value, field=field)
    except AmountError as exc:
        raise Invalid("input.bad_rate", str(exc), field) from None
    if rate == 0:
        raise Invalid("input.bad_rate", f"{field}: a rebate rate must be greater than zero", field)
    return rate


def _choice(*options: str):
    def parse(value: Any, field: str) -> str:
        if value not in options:
            raise Invalid("input.bad_choice", f"{field}: must be one of {', '.join(options)}, got {value!r}", field)
        return value

    return parse


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > TEXT_MAX:
        raise Invalid("input.bad_text", f"{field}: 1 to {TEXT_MAX} printable characters on one line", field)
    return check_text(value, field)


def _pattern(regex: str, what: str):
    """A field kept as its exact text, which must match `regex` whole (a day, a hash, a number)."""
    compiled = re.compile(regex)

    def parse(value: Any, field: str) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise Invalid("input.bad_field", f"{field}: must be {what}, got {value!r}", field)
        return value

    return parse


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not re.fullmatch(r"0|[1-9][0-9]{0,17}",
                                                                                        str(value)):
        raise Invalid("input.bad_field", f"{field}: must be a whole number >= 0, got {value!r}", field)
    return int(value)


def _flag(value: Any, field: str) -> bool:
    if value in (True, "true", "TRUE"):
        return True
    if value in (False, None, "false", "FALSE"):
        return False
    raise Invalid("input.bad_flag", f"{field}: must be true or false", field)


_PARSERS = {
    "id": _id,
    "region": _region,
    "cny": _cny,
    "sp": _sp,
    "sv": _sv,
    "rebate": _rebate,
    "role": _choice(*ROLES),
    "pack": _choice("activation", "partner"),
    "channel": _choice("online", "offline"),
    "reason": _choice(*GRANT_REASONS),
    "text": _text,
    "flag": _flag,
    "day": _pattern(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "a date YYYY-MM-DD"),
    "count": _count,
    "hex64": _pattern(r"[0-9a-f]{64}", "64 lowercase hex digits"),
    "hex128": _pattern(r"[0-9a-f]{128}", "128 lowercase hex digits"),
    "number": _pattern(r"-?[0-9]{1,40}(\.[0-9]{1,400})?", "a plain decimal number"),
}


@dataclass(frozen=True, slots=True)
class Event:
    kind: ClassVar[EventKind]
    # field name -> (meta key, type, required)
    FIELDS: ClassVar[dict[str, tuple[str, str, bool]]] = {}

    def to_meta(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        append = out.append
        for name, (key, _kind, _required) in self.FIELDS.items():
            value = getattr(self, name)
            if value is None or value is False:
                continue
            if value.__class__ is str:  # the usual case (ids, regions, choices, texts)
                append((key, value))
                continue
            if value is True:
                value = "true"
            if isinstance(value, float):  # a float has already lost the exact amount
                raise Invalid("input.bad_amount", f"{key}: amounts are decimal strings, not floats", key)
            append((key, fmt(value) if isinstance(value, Decimal) else str(value)))
        return out


@dataclass(frozen=True, slots=True)
class Register(Event):
    kind: ClassVar[EventKind] = EventKind.REGISTER
    FIELDS: ClassVar = {"member": ("member", "id", True), "referrer": ("referrer", "id", False),
                        "region": ("region", "region", False)}
    member: str
    referrer: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class SetRole(Event):
    kind: ClassVar[EventKind] = EventKind.SET_ROLE
    FIELDS: ClassVar = {"member": ("member", "id", True), "role": ("role", "role", True)}
    member: str
    role: str


@dataclass(frozen=True, slots=True)
class BuyPack(Event):
    kind: ClassVar[EventKind] = EventKind.BUY_PACK
    FIELDS: ClassVar = {"member": ("member", "id", True), "pack": ("pack", "pack", True),
                        "region": ("region", "region", False)}
    member: str
    pack: str
    region: str | None = None


@dataclass(frozen=True, slots=True)
class OpenStore(Event):
    kind: ClassVar[EventKind] = EventKind.OPEN_STORE
    FIELDS: ClassVar = {
        "merchant": ("merchant", "id", True),
        "owner": ("owner", "id", True),
        "region": ("region", "region", True),
        "channel": ("channel", "channel", True),
        "rebate_rate": ("rebate_rate", "rebate", True),
        "referrer": ("referrer", "id", False),
    }
    merchant: str
    owner: str
    region: str
    channel: str
    rebate_rate: Decimal
    referrer: str | None = None


@dataclass(frozen=True, slots=True)
class Deposit(Event):
    kind: ClassVar[EventKind] = EventKind.DEPOSIT
    FIELDS: ClassVar = {"amount_cny": ("amount_cny", "cny", True), "merchant": ("merchant", "id", False),
                        "platform": ("platform", "flag", False)}
    amount_cny: Decimal
    merchant: str | None = None
    platform: bool = False


@dataclass(frozen=True, slots=True)
class Order(Event):
    kind: ClassVar[EventKind] = EventKind.ORDER
    FIELDS: ClassVar = {
        "order_id": ("order_id", "id", True),
        "buyer": ("buyer", "id", True),
        "merchant": ("merchant", "id", True),
        "amount_cny": ("amount_cny", "cny", True),
        "ship_region": ("ship_region", "region", False),
    }
    order_id: str
    buyer: str
    merchant: str
    amount_cny: Decimal
    ship_region: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer(Event):
    kind: ClassVar[EventKind] = EventKind.TRANSFER
    FIELDS: ClassVar = {"from_holder": ("from", "id", True), "to_holder": ("to", "id", True), "sp": ("sp", "sp", True)}
    from_holder: str
    to_holder: str
    sp: Decimal


@dataclass(frozen=True, slots=True)
class PayoutRequest(Event):
    kind: ClassVar[EventKind] = EventKind.PAYOUT
    FIELDS: ClassVar = {"holder": ("holder", "id", True), "sp": ("sp", "sp", True)}
    holder: str
    sp: Decimal


@dataclass(frozen=True, slots=True)
class PayoutSettle(Event):
    kind: ClassVar[EventKind] = EventKind.PAYOUT_SETTLE
    FIELDS: ClassVar = {"payout": ("payout", "id", True), "bank_reference": ("bank_reference", "text", True)}
    payout: str
    bank_reference: str


@dataclass(frozen=True, slots=True)
class PayoutCancel(Event):
    kind: ClassVar[EventKind] = EventKind.PAYOUT_CANCEL
    FIELDS: ClassVar = {"payout": ("payout", "id", True)}
    payout: str


@dataclass(frozen=True, slots=True)
class Redeem(Event):
    kind: ClassVar[EventKind] = EventKind.REDEEM
    FIELDS: ClassVar = {"holder": ("holder", "id", True), "sp": ("sp", "sp", True), "goods": ("goods", "text", True)}
    holder: str
    sp: Decimal
    goods: str


@dataclass(frozen=True, slots=True)
class Reverse(Event):
    kind: ClassVar[EventKind] = EventKind.REVERSE
    FIELDS: ClassVar = {"event": ("reverses", "id", True), "amount_cny": ("amount_cny", "cny", False)}
    event: str
    amount_cny: Decimal | None = None  # a refund of part of an order (README "Refunds after the day closed")


@dataclass(frozen=True, slots=True)
class Grant(Event):
    """SV for a completed task or a campaign (issue 13, part 3), posted by finance.

    `campaign` is required when `reason` is "campaign" (the rule refuses it missing) and may
    name the campaign a task belongs to; `ref` is the source's id of what is rewarded (a task
    completion): `ledger-service import-grants` skips a row whose `ref` is already booked."""

    kind: ClassVar[EventKind] = EventKind.GRANT
    FIELDS: ClassVar = {"holder": ("holder", "id", True), "sv": ("sv", "sv", True),
                        "reason": ("reason", "reason", True), "campaign": ("campaign", "id", False),
                        "ref": ("ref", "id", False)}
    holder: str
    sv: Decimal
    reason: str
    campaign: str | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Release(Event):
    """The daily close of one business day (not posted by clients: see `Engine.close_days`)."""

    kind: ClassVar[EventKind] = EventKind.RELEASE
    FIELDS: ClassVar = {}


# The supply figures a checkpoint carries: `reports.SUPPLY_KEYS` (the report a day's close stores).
CHECKPOINT_SUPPLY = ("cap", "issued", "released", "sold", "burned", "redeemed", "circulating", "pool_cny",
                     "value_cny_per_sp", "closing_value_cny_per_sp")


@dataclass(frozen=True, slots=True)
class Checkpoint(Event):
    """A closed day's signed checkpoint (booked by the engine after the close; `rules.checkpoints`).

    Every field is kept as the exact text the signed checkpoint object holds."""

    kind: ClassVar[EventKind] = EventKind.CHECKPOINT
    FIELDS: ClassVar = {
        "day": ("checkpoint_day", "day", True),
        "last_seq": ("last_seq", "count", True),
        "head": ("head", "hex64", True),
        "log_size": ("log_size", "count", True),
        "log_root": ("log_root", "hex64", True),
        "liabilities_root": ("liabilities_root", "hex64", True),
        "holders": ("holders", "count", True),
        "sum_base_sp": ("sum_base_sp", "number", True),
        "sum_shares": ("sum_shares", "number", True),
        "sum_sv_locked": ("sum_sv_locked", "number", True),
        "epoch": ("epoch", "count", True),
        "sp_index": ("sp_index", "number", True),
        "sv_index": ("sv_index", "number", True),
        **{f"supply_{key}": (f"supply_{key}", "number", True) for key in CHECKPOINT_SUPPLY},
        "key": ("signing_key", "hex64", True),
        "signature": ("signature", "hex128", True),
    }
    day: str
    last_seq: int
    head: str
    log_size: int
    log_root: str
    liabilities_root: str
    holders: int
    sum_base_sp: str
    sum_shares: str
    sum_sv_locked: str
    epoch: int
    sp_index: str
    sv_index: str
    supply_cap: str
    supply_issued: str
    supply_released: str
    supply_sold: str
    supply_burned: str
    supply_redeemed: str
    supply_circulating: str
    supply_pool_cny: str
    supply_value_cny_per_sp: str
    supply_closing_value_cny_per_sp: str
    key: str
    signature: str


@dataclass(frozen=True, slots=True)
class SigningKey(Event):
    """The books' signing key changes (booked by the engine: `ledger-service rotate-key`).

    `previous_key` and `signature` (by the previous key, over the rotation object of
    `rules.checkpoints.rotation_object`) are absent only when books made before signing
    existed introduce their first key."""

    kind: ClassVar[EventKind] = EventKind.SIGNING_KEY
    FIELDS: ClassVar = {"public_key": ("public_key", "hex64", True), "previous_key": ("previous_key", "hex64", False),
                        "signature": ("signature", "hex128", False)}
    public_key: str
    previous_key: str | None = None
    signature: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {  # by kind (an EventKind: a str)
    cls.kind: cls
    for cls in (Register, SetRole, BuyPack, OpenStore, Deposit, Order, Transfer, PayoutRequest,
                PayoutSettle, PayoutCancel, Redeem, Reverse, Grant, Release, Checkpoint, SigningKey)
}


def parse(kind: str, fields: Mapping[str, Any], *, by_meta_key: bool = False) -> Event:
    """Build and validate an event of `kind` from a mapping of field names (or meta keys)."""
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise Invalid("input.unknown_kind", f"kind: unknown event kind {kind!r}", "kind")
    values: list[Any] = []
    append = values.append
    get = fields.get
    for name, key, parser, required, flag in _PLANS[kind]:
        source = key if by_meta_key else name
        raw = get(source)
        if isinstance(raw, str):  # every string, whatever its type: the one text rule (ledger_service.text)
            if not raw.isprintable():  # (printable text holds none of the refused characters)
                check_text(raw, source)
            if raw == "" and not flag:
                raw = None
        if raw is None:
            if required:
                raise Invalid("input.missing_field", f"{source}: required", source)
            append(False if flag else None)
            continue
        append(parser(raw, source))
    return cls(*values)  # FIELDS are in the order of the dataclass's fields (checked below)


# Per kind, what `parse` reads: (field name, meta key, parser, required, is a flag), in FIELDS order.
_PLANS: dict[str, tuple[tuple[str, str, Any, bool, bool], ...]] = {
    kind: tuple((name, key, _PARSERS[ftype], required, ftype == "flag") for name, (key, ftype, required)
                in cls.FIELDS.items())
    for kind, cls in EVENT_TYPES.items()
}
assert all(list(cls.FIELDS) == [f.name for f in dataclasses.fields(cls)] for cls in EVENT_TYPES.values()), \
    "an event's FIELDS must list its dataclass fields, in order"


def field_names(kind: str) -> list[str]:
    return list(EVENT_TYPES[kind].FIELDS)


def event_fields(event: Event) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
