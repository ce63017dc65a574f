"""The rules in force: one TOML file, validated on load, fixed into the books at genesis.

The file is nested by section (`[sp]`, `[sv]`, `[pack]`, ...), exactly as in
SPEC §2; in memory and in the journal's genesis entry every parameter has a flat
name (`sp_cap`, `team_rate_vip`, ...) so a verifier reads the rules from the
books with no other file. Two profiles ship with the package: `seed-a` (the
default) and `seed-b`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .amounts import CNY, EXACT_CONTEXT, QUANTUM, SP, SV, fmt

# merchant.deposit_rule: when a store may take orders (rules.orders.opening).
DEPOSIT_SP_HELD = "sp_held"  # it holds SP worth the deposit value (first order), then any SP (issue 13)
DEPOSIT_CASH_PAID = "cash_paid"  # its deposits paid to the pool reach the deposit value (books made before)

ROLES = ("member", "vip", "shop_owner", "store_owner", "service_provider")
TEAM_ROLES = ROLES[1:]
PROFILES = ("seed-a", "seed-b")
# How a reversal takes back an order (README "Refunds after the day closed"): `flip` books the exact
# mirror of its postings (refused once a holder no longer holds them); `remaining` takes back what
# is left of what the order gave, after the releases since (and may refund part of an order).
REVERSE_RULES = ("flip", "remaining")


class ConfigError(ValueError):
    """A rules file that cannot be used; the message names the key at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True, slots=True)
class Params:
    """Every parameter of SPEC §2, flat. Amounts and rates are exact Decimals."""

    profile: str
    sp_cap: Decimal
    sp_daily_release: Decimal
    sp_initial_value: Decimal
    sv_registration_grant: Decimal
    sv_referrer_registration_grant: Decimal
    sv_consumer_multiplier: Decimal
    sv_merchant_multiplier: Decimal
    pack_activation_price: Decimal
    pack_activation_sv_ratio: Decimal
    pack_partner_price: Decimal
    pack_pool_share: Decimal
    merchant_deposit_value: Decimal
    merchant_deposit_rule: str
    referral_online_sv_rate: Decimal
    referral_offline_sp_rate: Decimal
    referral_merchant_sp_rate: Decimal
    team_rate_vip: Decimal
    team_rate_shop_owner: Decimal
    team_rate_store_owner: Decimal
    team_rate_service_provider: Decimal
    region_partner_sp_rate: Decimal
    region_repurchase_days: int
    region_match: str
    grant_max_sv_per_holder_per_day: Decimal
    grant_max_sv_per_campaign: Decimal
    calendar_timezone: str
    reverse_rule: str

    def team_rate(self, role: str) -> Decimal:
        if role == "member":
            return Decimal(0)
        return getattr(self, f"team_rate_{role}")

    @property
    def top_team_rate(self) -> Decimal:
        return max(self.team_rate(role) for role in TEAM_ROLES)

    def pack_price(self, kind: str) -> Decimal:
        return self.pack_activation_price if kind == "activation" else self.pack_partner_price

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.calendar_timezone)

    def to_meta(self) -> dict[str, str]:
        """The flat string form written into the genesis entry.

        A parameter added later and set to its `LEGACY` value is left out, as it was before the
        parameter existed: `from_meta` reads it back as that value, so old books' genesis entries
        (and the rules column) are exactly what the rules re-derive, and replay unchanged."""
        out: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in LEGACY and value == LEGACY[field.name]:
                continue
            out[field.name] = fmt(value) if isinstance(value, Decimal) else str(value)
        return out

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Params:
        """Rebuild the rules from a genesis entry's metadata (validated again)."""
        flat: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name in meta:
                flat[field.name] = meta[field.name]
            elif field.name in LEGACY:  # books made before the parameter existed: the rule as it was then
                flat[field.name] = LEGACY[field.name]
            else:
                raise ConfigError(field.name, "missing from the genesis entry")
        return _build(flat)


# (flat name, TOML section, TOML key, kind) — the one table of every parameter.
# kind: "amount:CUR" (>= 0, at most CUR's decimals), "positive:CUR", "rate" (in [0, 1]),
# "multiplier" (>= 0), "days" (int >= 0), "timezone", "region_match" (one of REGION_MATCHES),
# "choice:a|b" (one of these words).
_SCHEMA: tuple[tuple[str, str, str, str], ...] = (
    ("sp_cap", "sp", "cap", f"positive:{SP}"),
    ("sp_daily_release", "sp", "daily_release", f"amount:{SP}"),
    ("sp_initial_value", "sp", "initial_value", "value"),
    ("sv_registration_grant", "sv", "registration_grant", f"amount:{SV}"),
    ("sv_referrer_registration_grant", "sv", "referrer_registration_grant", f"amount:{SV}"),
    ("sv_consumer_multiplier", "sv", "consumer_multiplier", "multiplier"),
    ("sv_merchant_multiplier", "sv", "merchant_multiplier", "multiplier"),
    ("pack_activation_price", "pack", "activation_price", f"positive:{CNY}"),
    ("pack_activation_sv_ratio", "pack", "activation_sv_ratio", "multiplier"),
    ("pack_partner_price", "pack", "partner_price", f"positive:{CNY}"),
    ("pack_pool_share", "pack", "pool_share", "rate"),
    ("merchant_deposit_value", "merchant", "deposit_value", f"amount:{CNY}"),
    ("merchant_deposit_rule", "merchant", "deposit_rule", f"choice:{DEPOSIT_SP_HELD}|{DEPOSIT_CASH_PAID}"),
    ("referral_online_sv_rate", "referral", "online_sv_rate", "rate"),
    ("referral_offline_sp_rate", "referral", "offline_sp_rate", "rate"),
    ("referral_merchant_sp_rate", "referral", "merchant_sp_rate", "rate"),
    ("team_rate_vip", "team.rates", "vip", "rate"),
    ("team_rate_shop_owner", "team.rates", "shop_owner", "rate"),
    ("team_rate_store_owner", "team.rates", "store_owner", "rate"),
    ("team_rate_service_provider", "team.rates", "service_provider", "rate"),
    ("region_partner_sp_rate", "region", "partner_sp_rate", "rate"),
    ("region_repurchase_days", "region", "repurchase_days", "days"),
    ("region_match", "region", "match", "region_match"),
    ("grant_max_sv_per_holder_per_day", "grant", "max_sv_per_holder_per_day", f"amount:{SV}"),
    ("grant_max_sv_per_campaign", "grant", "max_sv_per_campaign", f"amount:{SV}"),
    ("calendar_timezone", "calendar", "timezone", "timezone"),
    ("reverse_rule", "reverse", "rule", f"choice:{REVERSE_RULES[0]}|{REVERSE_RULES[1]}"),
)

# Parameters added after books were first made. A genesis entry written before one existed
# lacks it: `LEGACY[name]` is the value that keeps those books' rule exactly as it was, so
# old books replay unchanged. A rules file (TOML) that lacks one takes `DEFAULTS[name]`,
# the rule for new books. Each parameter added later gets an entry in both.
LEGACY: dict[str, Any] = {
    "region_match": "exact",  # a partner earned only on orders whose region was exactly its own
    "merchant_deposit_rule": DEPOSIT_CASH_PAID,  # a store opened with deposits paid to the pool
    "reverse_rule": "flip",  # a reversal mirrored every posting, refused once a release converted the SV
    # SV grants for tasks and campaigns (issue 13 part 3): books made before had no `grant`
    # event, so none may be booked in them (a ceiling of 0 SV refuses every grant).
    "grant_max_sv_per_holder_per_day": Decimal(0),
    "grant_max_sv_per_campaign": Decimal(0),
}
DEFAULTS: dict[str, Any] = {
    "region_match": "city",   # a partner holds a city-level unit and earns on every division in it
    "merchant_deposit_rule": DEPOSIT_SP_HELD,  # a store opens holding SP worth the deposit value
    "reverse_rule": "remaining",  # a reversal takes back what remains of what the order gave
    "grant_max_sv_per_holder_per_day": "100",
    "grant_max_sv_per_campaign": "100000",
}

# region.match: "city" — regions are GB/T 2260 codes of the shipped table (ledger_service.regions),
# a partner pack names a city-level unit and an order pays the partner of the city-level unit
# containing its region; "exact" — any 6 digits, and a partner earns only on its exact code.
REGION_MATCHES = ("city", "exact")

MAX_MULTIPLIER = Decimal(1000)
MAX_REPURCHASE_DAYS = 3660


def _check(key: str, kind: str, raw: Any) -> Any:
    """The value of one parameter, checked against its kind (see `_SCHEMA`)."""
    special = _SPECIAL_KINDS.get(kind)
    if special is not None:
        return special(key, raw)
    if kind.startswith("choice:"):
        return _check_choice(key, kind.removeprefix("choice:").split("|"), raw)
    number = _decimal(key, raw)
    if kind == "rate":
        if not Decimal(0) <= number <= 1:
            raise ConfigError(key, f"a rate must lie in [0, 1], got {raw}")
        return number
    if kind == "multiplier":
        if not Decimal(0) <= number <= MAX_MULTIPLIER:
            raise ConfigError(key, f"a multiplier must lie in [0, {MAX_MULTIPLIER}], got {raw}")
        return number
    if kind == "value":
        if number <= 0:
            raise ConfigError(key, "must be greater than zero")
        return number
    rule, currency = kind.split(":")
    if number < 0 or (rule == "positive" and number == 0):
        raise ConfigError(key, "must be greater than zero" if rule == "positive" else "must not be negative")
    quantum = QUANTUM[currency]
    if number != number.quantize(quantum, context=EXACT_CONTEXT):
        raise ConfigError(key, f"has more decimals than {currency} allows ({quantum})")
    return number.quantize(quantum, context=EXACT_CONTEXT)


def _check_timezone(key: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigError(key, "must be an IANA time zone name like \"Asia/Shanghai\"")
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(key, f"unknown time zone {raw!r}") from None
    return raw


def _check_choice(key: str, choices: list[str], raw: Any) -> str:
    if not isinstance(raw, str) or raw not in choices:
        raise ConfigError(key, f"must be one of {', '.join(repr(c) for c in choices)}, got {raw!r}")
    return raw


def _check_days(key: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, str, Decimal)):
        raise ConfigError(key, "must be a whole number of days")
    try:
        days = int(Decimal(str(raw)))
    except (ArithmeticError, ValueError):  # decimal.InvalidOperation; int() of NaN or infinity
        raise ConfigError(key, f"{raw!r} is not a whole number of days") from None
    if Decimal(str(raw)) != days or not 0 <= days <= MAX_REPURCHASE_DAYS:
        raise ConfigError(key, f"must be a whole number of days in [0, {MAX_REPURCHASE_DAYS}]")
    return days


def _check_region_match(key: str, raw: Any) -> str:
    if raw not in REGION_MATCHES:
        raise ConfigError(key, f"must be one of {', '.join(REGION_MATCHES)}, got {raw!r}")
    return str(raw)


_SPECIAL_KINDS: dict[str, Callable[[str, Any], Any]] = {
    "timezone": _check_timezone,
    "days": _check_days,
    "region_match": _check_region_match,
}


def _decimal(key: str, raw: Any) -> Decimal:
    """A finite Decimal from a string, an int or a Decimal (never a float or a bool)."""
    if isinstance(raw, (bool, float)) or not isinstance(raw, (int, str, Decimal)):
        raise ConfigError(key, f"must be an exact decimal (string or TOML number), got {raw!r}")
    try:
        number = Decimal(str(raw))
    except ArithmeticError:  # decimal.InvalidOperation
        raise ConfigError(key, f"{raw!r} is not a decimal number") from None
    if not number.is_finite():
        raise ConfigError(key, "must be finite")
    return number


def _build(flat: dict[str, Any]) -> Params:
    values: dict[str, Any] = {"profile": str(flat.get("profile", "custom"))}
    for name, section, key, kind in _SCHEMA:
        values[name] = _check(f"{section}.{key}", kind, flat[name])
    params = Params(**values)
    # SPEC §2: the SP shares paid out of an order's deducted SP must sum to at most 1.
    share_sum = (
        params.referral_offline_sp_rate * params.sv_consumer_multiplier
        + params.referral_merchant_sp_rate
        + params.region_partner_sp_rate
    )
    if share_sum > 1:
        raise ConfigError(
            "referral.offline_sp_rate",
            "offline_sp_rate x consumer_multiplier + merchant_sp_rate + partner_sp_rate "
            f"must be at most 1, got {fmt(share_sum)}",
        )
    return params


def parse_toml(text: str, *, source: str = "<rules>") -> Params:
    try:
        doc = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    known_sections = {section for _, section, _, _ in _SCHEMA} | {"team"}
    for key in doc:
        if key != "profile" and key not in known_sections:
            raise ConfigError(key, "unknown section")
    for key in doc.get("team", {}):
        if key != "rates":
            raise ConfigError(f"team.{key}", "unknown parameter (the team section holds only [team.rates])")
    flat: dict[str, Any] = {"profile": doc.get("profile", Path(source).stem)}
    for name, section, key, _ in _SCHEMA:
        node: Any = doc
        for part in section.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and key in node:
            flat[name] = node[key]
        elif name in DEFAULTS:  # a parameter added later, not in this (older) file: the new books' rule
            flat[name] = DEFAULTS[name]
        else:
            raise ConfigError(f"{section}.{key}", "missing")
    _reject_unknown_parameters(doc, known_sections - {"team"})
    return _build(flat)


def _reject_unknown_parameters(doc: dict[str, Any], sections: set[str]) -> None:
    for section in sections:
        node = doc
        for part in section.split("."):
            node = node.get(part, {})
        allowed = {key for _, sec, key, _ in _SCHEMA if sec == section}
        for key in node:
            if key not in allowed:
                raise ConfigError(f"{section}.{key}", "unknown parameter")


def load(profile_or_path: str | Path = "seed-a") -> Params:
    """Load a shipped profile by name, or a TOML file by path."""
    name = str(profile_or_path)
    if name in PROFILES:
        text = resources.files("ledger_service.profiles").joinpath(f"{name}.toml").read_text("utf-8")
        return parse_toml(text, source=name)
    path = Path(name)
    if not path.is_file():
        raise ConfigError("profile", f"{name!r} is neither a shipped profile {PROFILES} nor a file")
    return parse_toml(path.read_text("utf-8"), source=str(path))


# -- the service's operating settings (not rules: nothing of them is in the journal) ------------------------------

SERVICE_FILE = "service.toml"  # BOOKS/service.toml
RETENTION_ENV = "LEDGER_IDEMPOTENCY_RETENTION_DAYS"
DEFAULT_IDEMPOTENCY_RETENTION_DAYS = 7
MAX_IDEMPOTENCY_RETENTION_DAYS = 3660


@dataclass(frozen=True, slots=True)
class Service:
    """How the service runs: `[idempotency] retention_days` in BOOKS/service.toml (default 7),
    overridden by $LEDGER_IDEMPOTENCY_RETENTION_DAYS; a whole number of days, 1..3660."""

    idempotency_retention_days: int = DEFAULT_IDEMPOTENCY_RETENTION_DAYS


def load_service(books_root: Path | str, environ: dict[str, str] | None = None) -> Service:
    """The service settings of these books (ConfigError names the key at fault)."""
    env = os.environ if environ is None else environ
    path = Path(books_root) / SERVICE_FILE
    raw: Any = DEFAULT_IDEMPOTENCY_RETENTION_DAYS
    key = "idempotency.retention_days"
    if path.is_file():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(SERVICE_FILE, f"not valid TOML: {exc}") from None
        raw = doc.get("idempotency", {}).get("retention_days", raw)
    if env.get(RETENTION_ENV):
        key, raw = RETENTION_ENV, env[RETENTION_ENV]
    try:
        days = int(raw) if not isinstance(raw, bool) and str(raw).strip().isdigit() else -1
    except ValueError:
        days = -1
    if not 1 <= days <= MAX_IDEMPOTENCY_RETENTION_DAYS:
        raise ConfigError(key, f"must be a whole number of days from 1 to {MAX_IDEMPOTENCY_RETENTION_DAYS}, "
                               f"got {raw!r}")
    return Service(idempotency_retention_days=days)
