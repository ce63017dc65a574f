"""Request and response shapes of the storefront API (SPEC §7), for validation and OpenAPI.

Amounts and rates are strings ("1000.00"): a JSON number is refused before it
can become a float. The values themselves are validated by the engine's event
parser, so the API and the journal's verifier accept exactly the same inputs.
"""

from __future__ import annotations

import re
from typing import Any, cast

from apiflask import Schema
from apiflask.fields import Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Regexp
from marshmallow import RAISE, ValidationError

from ..rules.events import GRANT_REASONS
from ..text import REFUSED_RANGES

# The patterns are ECMA-262 regular expressions (JSON Schema's dialect) that mean the same in
# Python: plain `^…$`, ASCII classes, no lookaround. The server matches them whole
# (`re.fullmatch`, so `$` never lets a trailing newline through; a newline is refused before,
# as every control character is: 422 input.bad_text).
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
REGION_PATTERN = r"^[0-9]{6}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,200}$"  # printable ASCII, no space (a UUID, "order-o1001-try-1")
IDEMPOTENCY_KEY_ERROR = "1 to 200 printable ASCII characters without spaces"


def amount_pattern(decimals: int) -> str:
    """A positive amount with at most `decimals` decimals, at most 10^13 (amounts.MAX_AMOUNT):
    no sign, no exponent, no leading zero, not zero ("0", "0.00")."""
    tails = [f"[0-9]{{0,{decimals - zeros - 1}}}" if zeros < decimals - 1 else "" for zeros in range(decimals)]
    nonzero_fraction = "|".join("0" * zeros + "[1-9]" + tail for zeros, tail in enumerate(tails))
    return (rf"^(?:[1-9][0-9]{{0,12}}(?:\.[0-9]{{1,{decimals}}})?|0\.(?:{nonzero_fraction})"
            rf"|10000000000000(?:\.0{{1,{decimals}}})?)$")


CNY_PATTERN = amount_pattern(2)   # amounts.QUANTUM["CNY"] = 0.01
SP_PATTERN = amount_pattern(4)    # amounts.QUANTUM["SP"] = 0.0001
# A rebate rate: a fraction in (0, 1] with at most 4 decimals (amounts.RATE_QUANTUM).
RATE_PATTERN = r"^(?:0\.(?:[1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|00[1-9][0-9]?|000[1-9])|1(?:\.0{1,4})?)$"



def _class_item(lo: int, hi: int) -> str:
    """One range of a character class: `\\uXXXX` escapes in the BMP (the same in ECMA-262 and
    Python), the characters themselves above it (one code point each, with ECMA-262's `u` flag)."""
    def one(point: int) -> str:
        return f"\\u{point:04X}" if point <= 0xFFFF else chr(point)
    return one(lo) if lo == hi else f"{one(lo)}-{one(hi)}"


# (the surrogates left out: a Unicode string cannot hold one, so no validator's regex engine
# takes them; a lone one, "\\ud800" in JSON, is refused all the same: 422 input.bad_text)
_REFUSED_CLASS = "".join(_class_item(lo, hi) for lo, hi in REFUSED_RANGES if (lo, hi) != (0xD800, 0xDFFF))
_SPACES_CLASS = " \\u00A0\\u1680\\u2000-\\u200A\\u202F\\u205F\\u3000"  # str.isspace, less those refused anyway
# Free text (goods, a bank reference): no refused character (ledger_service.text), not blank
# (str.strip), 1 to 200 characters (maxLength); read with ECMA-262's `u` flag, as JSON Schema
# validators do (a character is a code point).
TEXT_PATTERN = f"^[^{_REFUSED_CLASS}]*[^{_REFUSED_CLASS}{_SPACES_CLASS}][^{_REFUSED_CLASS}]*$"
TEXT_ERROR = "1 to 200 characters, not blank, without control, bidirectional-formatting or noncharacter code points"

ID_ERROR = "ids are 1 to 64 characters of A-Z a-z 0-9 _ -"
REGION_ERROR = "a region is a 6-digit division code like 441900"
DATE_ERROR = "is not YYYY-MM-DD"  # the API answers this message with rule input.bad_date
CNY_ERROR = "an amount of CNY is a decimal string greater than 0 and at most 10000000000000, with at most 2 decimals"
SP_ERROR = "an amount of SP is a decimal string greater than 0 and at most 10000000000000, with at most 4 decimals"
SV_ERROR = "an amount of SV is a decimal string greater than 0 and at most 10000000000000, with at most 4 decimals"
RATE_ERROR = "a rebate rate is a fraction greater than 0 and at most 1, with at most 4 decimals, like \"0.10\""


class Pattern(Regexp):
    """`Regexp` matching the whole value (`re.fullmatch`): the pattern means the same to an
    ECMA-262 validator reading the OpenAPI document (apispec writes `regex.pattern` there)."""

    def __call__(self, value: Any) -> Any:
        regex = cast("re.Pattern[str]", self.regex)
        if not isinstance(value, str) or regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


ID = Pattern(ID_PATTERN, error=ID_ERROR)
REGION = Pattern(REGION_PATTERN, error=REGION_ERROR)
CNY_AMOUNT = Pattern(CNY_PATTERN, error=CNY_ERROR)
SP_AMOUNT = Pattern(SP_PATTERN, error=SP_ERROR)
SV_AMOUNT = Pattern(SP_PATTERN, error=SV_ERROR)  # SV has SP's quantum (amounts.QUANTUM["SV"] = 0.0001)
RATE = Pattern(RATE_PATTERN, error=RATE_ERROR)
DATE = Pattern(DATE_PATTERN, error="{input!r} " + DATE_ERROR)
TEXT = [Length(1, 200, error=TEXT_ERROR), Pattern(TEXT_PATTERN, error=TEXT_ERROR)]
# The rule of each message a field's validator answers (problems.py names it on the 422).
RULE_OF_ERROR = {ID_ERROR: "input.bad_id", REGION_ERROR: "input.bad_region", CNY_ERROR: "input.bad_amount",
                 SP_ERROR: "input.bad_amount",
                 SV_ERROR: "input.bad_amount", RATE_ERROR: "input.bad_rate", TEXT_ERROR: "input.bad_text"}
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32  # arrays and objects nested deeper are refused (422 input.too_deep) before parsing


class Strict(Schema):
    class Meta:
        unknown = RAISE


def _date(description: str = "business day YYYY-MM-DD (default: today)", required: bool = False) -> String:
    return String(required=required, validate=DATE, metadata={"format": "date", "description": description})


class MemberIn(Strict):
    id = String(required=True, validate=ID)
    referrer = String(validate=ID)
    region = String(validate=REGION)
    date = _date()


class PackIn(Strict):
    kind = String(required=True, validate=OneOf(["activation", "partner"]))
    region = String(validate=REGION, metadata={
        "description": "partner pack only: a city-level unit (municipality, prefecture-level city or county-level "
                       "city), e.g. 440300; a district, county or province is refused (rule region.match)"})
    date = _date()


class RoleIn(Strict):
    role = String(required=True, validate=OneOf(["member", "vip", "shop_owner", "store_owner", "service_provider"]))
    date = _date()


class MerchantIn(Strict):
    id = String(required=True, validate=ID)
    owner = String(required=True, validate=ID)
    region = String(required=True, validate=REGION)
    channel = String(required=True, validate=OneOf(["online", "offline"]))
    rebate_rate = String(required=True, validate=RATE, metadata={"description": "a fraction in (0, 1], e.g. \"0.10\""})
    referrer = String(validate=ID)
    date = _date()


class DepositIn(Strict):
    amount_cny = String(required=True, validate=CNY_AMOUNT)
    merchant = String(validate=ID)
    platform = Boolean(metadata={"description": "true for a platform injection (buys nothing)"})
    date = _date()


class OrderIn(Strict):
    id = String(required=True, validate=ID)
    buyer = String(required=True, validate=ID)
    merchant = String(required=True, validate=ID)
    amount_cny = String(required=True, validate=CNY_AMOUNT)
    ship_region = String(validate=REGION)
    date = _date()


class TransferIn(Strict):
    from_ = String(required=True, validate=ID, data_key="from")
    to = String(required=True, validate=ID)
    sp = String(required=True, validate=SP_AMOUNT)
    date = _date()


class PayoutIn(Strict):
    holder = String(required=True, validate=ID)
    sp = String(required=True, validate=SP_AMOUNT)
    date = _date()


class SettleIn(Strict):
    bank_reference = String(required=True, validate=TEXT)
    date = _date()


class DateOnlyIn(Strict):
    date = _date()


class ReverseIn(Strict):
    amount_cny = String(validate=CNY_AMOUNT, metadata={
        "description": "refund this much of the order (at most its amount; default: all of it): every amount "
                       "the order gave is taken back in proportion"})
    date = _date()


class RedeemIn(Strict):
    holder = String(required=True, validate=ID)
    sp = String(required=True, validate=SP_AMOUNT)
    goods = String(required=True, validate=TEXT)
    date = _date()


class GrantIn(Strict):
    holder = String(required=True, validate=ID, metadata={"description": "the member granted the SV"})
    sv = String(required=True, validate=SV_AMOUNT, metadata={"description": "SV granted, e.g. \"20.0000\""})
    reason = String(required=True, validate=OneOf(list(GRANT_REASONS)))
    campaign = String(validate=ID, metadata={"description": "campaign id (required when reason is campaign)"})
    ref = String(validate=ID, metadata={"description": "the source's id of what is rewarded (a task completion)"})
    date = _date()


class SupplyQuery(Strict):
    date = _date()


class PostingOut(Schema):
    account = String()
    amount = String()
    commodity = String()
    holder = String(allow_none=True)
    leg = String(allow_none=True)


class EventOut(Schema):
    id = String()
    kind = String()
    date = String()
    seq = Integer()
    hash = String()
    prev = String()
    file = String()
    postings = List(Nested(PostingOut))


class ClosedDayOut(Schema):
    date = String()
    id = String()
    released_sp = String()
    value_cny_per_sp = String()
    hash = String()


class CloseOut(Schema):
    through = String()
    closed = List(Nested(ClosedDayOut))


class HolderOut(Schema):
    id = String()
    kind = String()
    active = Boolean()
    role = String()
    referrer = String(allow_none=True)
    region = String(allow_none=True)
    sv_locked = String()
    sv_active = String()
    sp = String()
    sp_value_cny = String()
    value_cny_per_sp = String()


class MerchantOut(HolderOut):
    owner = String(allow_none=True)
    channel = String(allow_none=True)
    rebate_rate = String(allow_none=True)
    store_referrer = String(allow_none=True)
    deposits_cny = String()
    deposit_rule = String()
    deposit_value_cny = String()
    deposit_sp = String(allow_none=True)
    opened = String(allow_none=True)
    deposit_met = Boolean()
    can_take_orders = Boolean()
    max_order_cny = String(allow_none=True)


class SupplyOut(Schema):
    cap = String()
    issued = String()
    released = String()
    sold = String()
    burned = String()
    redeemed = String()
    circulating = String()
    pool_cny = String()
    value_cny_per_sp = String()
    closing_value_cny_per_sp = String()
    date = String()
    closed = Boolean()


class EventDetailOut(Schema):
    id = String()
    seq = Integer()
    kind = String()
    date = String()
    file = String()
    hash = String()
    prev = String()
    entry = String()
    reversed_by = String(allow_none=True)


class HealthOut(Schema):
    status = String()  # ok | degraded (journal behind, 503) | fault (unknown journal bytes, 503)
    journal_head = Nested(lambda: HeadOut())
    database = String()
    journal = String()  # ok | behind | fault
    journal_lag_entries = Integer()
    journal_detail = String()


class HeadOut(Schema):
    seq = Integer()
    hash = String()
    open_day = String()
    value_cny_per_sp = String()


# -- proofs (issue 12: the event log's checkpoints, inclusion and consistency proofs) ------------------------

_HEX = {"description": "64 lowercase hex digits (SHA-256)"}


class CheckpointOut(Schema):
    version = String(metadata={"example": "ledger-checkpoint-v2",
                               "description": "ledger-checkpoint-v2 (signed) or ledger-checkpoint-v1 (a day closed "
                                              "before the books signed: the six log fields only)"})
    day = String(metadata={"description": "the closed business day"})
    last_seq = Integer(metadata={"description": "seq of the day's last chained entry (its release)"})
    head = String(metadata={"description": "hash of that entry"})
    log_size = Integer(metadata={"description": "leaves of the event log (= last_seq)"})
    log_root = String(metadata={"description": "RFC 6962 MTH of the first log_size leaves (hex)"})
    liabilities = Dict(metadata={"description": "v2: the liabilities tree's root, holders, sums and indices"})
    supply = Dict(keys=String(), values=String(), metadata={"description": "v2: the supply report at the day's close"})
    key = String(metadata={"description": "v2: the Ed25519 public key that signed (64 hex digits)"})
    signature = String(metadata={"description": "v2: Ed25519 signature of the canonical JSON of the other fields "
                                                "(128 hex digits; README 'The signed checkpoint')"})


class RotationOut(Schema):
    version = String(metadata={"example": "ledger-key-rotation-v1"})
    day = String()
    previous_key = String()
    public_key = String()
    signature = String(metadata={"description": "by previous_key, over the canonical JSON of the other fields"})


class SigningKeysOut(Schema):
    version = String(metadata={"example": "ledger-signing-keys-v1"})
    genesis_key = String(allow_none=True, metadata={"description": "the genesis entry's key (books made before "
                                                                    "signing: the first key they introduced)"})
    rotations = List(Nested(RotationOut))
    key_in_force = String(allow_none=True)


class ProofQuery(Strict):
    checkpoint = _date("the checkpoint's day YYYY-MM-DD (default: the latest)")


# `from` is a Python keyword: these two are built with `from_dict` (a subclass of the class it is called on).
ConsistencyQuery = cast(type[Strict], Strict.from_dict({
    "from": _date("the earlier checkpoint's day", required=True),
    "to": _date("the later checkpoint's day", required=True),
}, name="ConsistencyQuery"))


class InclusionOut(Schema):
    version = String(metadata={"example": "ledger-inclusion-v1"})
    event_id = String()
    seq = Integer()
    entry_hash = String(metadata=_HEX)
    prev = String(metadata=_HEX)
    canonical = String(metadata={"description": "the entry's canonical text (README, 'The hash'): its SHA-256 "
                                                "is entry_hash"})
    leaf_index = Integer(metadata={"description": "seq - 1"})
    checkpoint = Nested(CheckpointOut)
    path = List(String(), metadata={"description": "RFC 9162 §2.1.3.1 inclusion path, bottom to top (hex)"})


ConsistencyOut = cast(type[Schema], Schema.from_dict({
    "version": String(metadata={"example": "ledger-consistency-v1"}),
    "from": Nested(CheckpointOut),
    "to": Nested(CheckpointOut),
    "path": List(String(), metadata={"description": "RFC 9162 §2.1.4.1 consistency path (hex; empty when the "
                                                    "sizes are equal)"}),
}, name="ConsistencyOut"))


class HolderProofQuery(Strict):
    date = _date("the liabilities checkpoint's day YYYY-MM-DD (default: the latest)")


class SumNodeOut(Schema):
    side = String(metadata={"description": "where the SIBLING stands: left or right"})
    hash = String(metadata=_HEX)
    base_sp = String()
    shares = String()
    sv_locked = String()


class HolderProofOut(Schema):
    version = String(metadata={"example": "ledger-holder-proof-v1"})
    holder = String()
    salt = String(metadata={"description": "HMAC-SHA256(the books' liabilities secret, holder id), hex"})
    leaf_index = Integer()
    leaf = Dict(keys=String(), values=String(), metadata={"description": "base_sp, shares, sv_locked"})
    balances = Dict(keys=String(), values=String(), metadata={"description": "sp, sv_active, sv_locked (floored)"})
    path = List(Nested(SumNodeOut), metadata={"description": "siblings bottom to top, with their sums"})
    liabilities = Dict(metadata={"description": "the liabilities checkpoint (README, 'Liabilities')"})
    checkpoint = Nested(CheckpointOut, metadata={"description": "the day's checkpoint as published: signed, it "
                                                               "names the same liabilities root"})
