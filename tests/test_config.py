"""SPEC §2: the rules file — shipped profiles, validation naming the key at fault, and the
rules fixed into the journal at genesis, read back unchanged."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from decimal import Decimal
from importlib import resources

import pytest
from beancount.parser import parser

from ledger_service import config
from ledger_service.audit.verify import verify
from ledger_service.config import ConfigError, Params
from ledger_service.engine import Engine
from ledger_service.errors import Conflict

from conftest import START

D = Decimal

# SPEC §2, column "default" (seed-a); seed-b differs in the three keys below.
SEED_A = {
    "sp_cap": D("390000"),
    "sp_daily_release": D("500"),
    "sp_initial_value": D("1.00"),
    "sv_registration_grant": D("300"),
    "sv_referrer_registration_grant": D("0"),
    "sv_consumer_multiplier": D("10"),
    "sv_merchant_multiplier": D("2"),
    "pack_activation_price": D("299"),
    "pack_activation_sv_ratio": D("1"),
    "pack_partner_price": D("4999"),
    "pack_pool_share": D("0"),
    "merchant_deposit_value": D("500"),
    "merchant_deposit_rule": "sp_held",  # issue 13: SP held, not cash paid (LEGACY "cash_paid")
    "referral_online_sv_rate": D("0.40"),
    "referral_offline_sp_rate": D("0.05"),
    "referral_merchant_sp_rate": D("0.05"),
    "team_rate_vip": D("0.05"),
    "team_rate_shop_owner": D("0.10"),
    "team_rate_store_owner": D("0.15"),
    "team_rate_service_provider": D("0.20"),
    "region_partner_sp_rate": D("0.08"),
    "region_repurchase_days": 30,
    "region_match": "city",
    "grant_max_sv_per_holder_per_day": D("100"),  # issue 13 part 3 (not in SPEC §2)
    "grant_max_sv_per_campaign": D("100000"),
    "calendar_timezone": "Asia/Shanghai",
    "reverse_rule": "remaining",
}
SEED_B = {**SEED_A, "sp_daily_release": D("888"), "sv_registration_grant": D("200"),
          "sv_referrer_registration_grant": D("200")}


def profile_text(name: str = "seed-a") -> str:
    return resources.files("ledger_service.profiles").joinpath(f"{name}.toml").read_text("utf-8")


def profile_doc(name: str = "seed-a") -> dict:
    return tomllib.loads(profile_text(name), parse_float=Decimal)


def _value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)  # int, Decimal (written as a TOML number), float


def to_toml(doc: dict) -> str:
    """A minimal TOML writer for the profile's shape (scalars, tables, one nested table)."""
    lines = [f"{k} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]

    def table(prefix: str, node: dict) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict)}
        lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {_value(v)}" for k, v in scalars.items())
        for k, v in node.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}", v)

    for k, v in doc.items():
        if isinstance(v, dict):
            table(k, v)
    return "\n".join(lines) + "\n"


def parse_with(change) -> Params:
    doc = profile_doc()
    change(doc)
    return config.parse_toml(to_toml(doc), source="test.toml")


def flat(params: Params) -> dict:
    out = dataclasses.asdict(params)
    out.pop("profile")
    return out


# -- the shipped profiles ---------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [("seed-a", SEED_A), ("seed-b", SEED_B)])
def test_shipped_profiles_have_the_spec_values(name, expected):
    params = config.load(name)
    assert params.profile == name
    assert flat(params) == expected
    for key, value in flat(params).items():
        assert not isinstance(value, float), key
        if key not in ("region_repurchase_days", "region_match", "calendar_timezone", "merchant_deposit_rule",
                       "reverse_rule"):
            assert isinstance(value, Decimal), key
    assert params.team_rate("member") == 0
    assert params.top_team_rate == D("0.20")
    assert params.pack_price("activation") == D("299") and params.pack_price("partner") == D("4999")
    assert str(params.timezone) == "Asia/Shanghai"


def test_default_profile_is_seed_a():
    assert config.load() == config.load("seed-a")


def test_to_toml_round_trips_the_profile():
    # the writer used below reproduces the shipped profile exactly
    assert config.parse_toml(to_toml(profile_doc()), source="seed-a") == config.load("seed-a")


def test_load_from_a_path(tmp_path):
    doc = profile_doc()
    del doc["profile"]
    doc["sp"]["daily_release"] = 750
    path = tmp_path / "my-rules.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    params = config.load(path)
    assert params.sp_daily_release == D("750")
    assert params.profile == "my-rules"      # no profile key: named after the file


def test_unknown_profile_is_refused():
    with pytest.raises(ConfigError) as err:
        config.load("seed-z")
    assert err.value.key == "profile"


# -- validation names the key at fault -----------------------------------------------------

def _del(*path):
    def change(doc):
        node = doc
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    return change


def _set(value, *path):
    def change(doc):
        node = doc
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return change


@pytest.mark.parametrize("change, key", [
    # missing keys and sections
    (_del("sp", "cap"), "sp.cap"),
    (_del("team", "rates", "vip"), "team.rates.vip"),
    (_del("calendar"), "calendar.timezone"),
    (_del("region", "repurchase_days"), "region.repurchase_days"),
    # unknown keys and sections
    (_set(1, "sp", "bonus"), "sp.bonus"),
    (_set("0.30", "team", "rates", "king"), "team.rates.king"),
    (_set({"x": 1}, "lottery"), "lottery"),
    (_set("0.1", "referral", "online_rate"), "referral.online_rate"),
    # rates in [0, 1]
    (_set("1.01", "referral", "online_sv_rate"), "referral.online_sv_rate"),
    (_set(D("1.5"), "team", "rates", "vip"), "team.rates.vip"),
    (_set("-0.01", "region", "partner_sp_rate"), "region.partner_sp_rate"),
    (_set("2", "pack", "pool_share"), "pack.pool_share"),
    # negatives, zero where it must be positive
    (_set(-1, "sp", "daily_release"), "sp.daily_release"),
    (_set("-300", "sv", "registration_grant"), "sv.registration_grant"),
    (_set(-1, "sv", "consumer_multiplier"), "sv.consumer_multiplier"),
    (_set("-0.5", "pack", "activation_sv_ratio"), "pack.activation_sv_ratio"),
    (_set(0, "sp", "cap"), "sp.cap"),
    (_set("0", "sp", "initial_value"), "sp.initial_value"),
    (_set("-1.00", "merchant", "deposit_value"), "merchant.deposit_value"),
    # more decimals than the commodity allows (CNY 0.01, SP/SV 0.0001), string or TOML float
    (_set("299.001", "pack", "activation_price"), "pack.activation_price"),
    (_set(D("4999.005"), "pack", "partner_price"), "pack.partner_price"),
    (_set(D("500.001"), "merchant", "deposit_value"), "merchant.deposit_value"),
    (_set("390000.00001", "sp", "cap"), "sp.cap"),
    (_set(D("0.00001"), "sv", "registration_grant"), "sv.registration_grant"),
    # not numbers at all
    (_set("lots", "sp", "daily_release"), "sp.daily_release"),
    (_set(True, "sp", "daily_release"), "sp.daily_release"),
    (_set("NaN", "referral", "online_sv_rate"), "referral.online_sv_rate"),
    (_set(D("1.5"), "region", "repurchase_days"), "region.repurchase_days"),
    (_set(-1, "region", "repurchase_days"), "region.repurchase_days"),
    (_set("district", "region", "match"), "region.match"),
    (_set(1, "region", "match"), "region.match"),
    # the calendar
    (_set("Mars/Olympus_Mons", "calendar", "timezone"), "calendar.timezone"),
    (_set(8, "calendar", "timezone"), "calendar.timezone"),
])
def test_validation_names_the_key(change, key):
    with pytest.raises(ConfigError) as err:
        parse_with(change)
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}:")


def test_region_match_new_files_take_city_old_genesis_entries_exact():
    # a rules file written before region.match existed loads with the new books' rule ...
    assert parse_with(_del("region", "match")).region_match == config.DEFAULTS["region_match"] == "city"
    assert parse_with(_set("exact", "region", "match")).region_match == "exact"
    # ... and a genesis entry written before it replays with the rule those books had
    meta = config.load("seed-a").to_meta()
    assert meta["region_match"] == "city"
    del meta["region_match"]
    assert Params.from_meta(meta).region_match == config.LEGACY["region_match"] == "exact"
    # and rules at the LEGACY value are written as they were before the parameter existed
    legacy = dataclasses.replace(config.load("seed-a"), region_match="exact")
    assert legacy.to_meta() == meta and Params.from_meta(legacy.to_meta()) == legacy


def test_unknown_key_directly_under_team_is_refused():
    # [team] holds only the [team.rates] table; a stray key there is a typo, not a rule
    with pytest.raises(ConfigError) as err:
        parse_with(_set("0.30", "team", "bonus"))
    assert err.value.key == "team.bonus"


def test_order_sp_shares_must_sum_to_at_most_one():
    # 0.09 x 10 + 0.05 + 0.08 = 1.03 > 1
    with pytest.raises(ConfigError) as err:
        parse_with(_set("0.09", "referral", "offline_sp_rate"))
    assert err.value.key == "referral.offline_sp_rate"
    assert "1.03" in str(err.value)
    # 0.05 x 10 + 0.45 + 0.08 = 1.03 > 1: the sum is checked, not the rate alone
    with pytest.raises(ConfigError) as err:
        parse_with(_set("0.45", "referral", "merchant_sp_rate"))
    assert err.value.key == "referral.offline_sp_rate"
    # 0.087 x 10 + 0.05 + 0.08 = 1.00 exactly: allowed
    params = parse_with(_set("0.087", "referral", "offline_sp_rate"))
    assert params.referral_offline_sp_rate == D("0.087")


def test_toml_floats_are_read_exactly():
    # an unquoted 0.1 is parsed as Decimal("0.1"), never as a binary float
    params = parse_with(_set(D("0.1"), "referral", "online_sv_rate"))
    assert params.referral_online_sv_rate == D("0.1")
    assert str(params.referral_online_sv_rate) == "0.1"
    text = profile_text().replace('online_sv_rate = "0.40"', "online_sv_rate = 0.3")
    assert config.parse_toml(text).referral_online_sv_rate == D("0.3")


def test_not_toml_is_refused_naming_the_source():
    with pytest.raises(ConfigError) as err:
        config.parse_toml("[sp\ncap = 1", source="broken.toml")
    assert err.value.key == "broken.toml"


def test_from_meta_refuses_python_floats_and_missing_keys():
    meta = config.load("seed-a").to_meta()
    with pytest.raises(ConfigError) as err:
        Params.from_meta({**meta, "referral_online_sv_rate": 0.4})
    assert err.value.key == "referral.online_sv_rate"
    partial = dict(meta)
    del partial["sp_cap"]
    with pytest.raises(ConfigError) as err:
        Params.from_meta(partial)
    assert err.value.key == "sp_cap"


# -- the rules fixed at genesis ---------------------------------------------------------------

def genesis_meta(engine) -> dict:
    path = engine.books.root / f"journal/{START:%Y-%m}/{START.isoformat()}.beancount"
    directives, errors, _ = parser.parse_file(str(path))
    assert not errors
    genesis = [d for d in directives if getattr(d, "meta", {}).get("kind") == "genesis"]
    assert len(genesis) == 1
    return {k: v for k, v in genesis[0].meta.items() if k not in ("filename", "lineno")}


def _custom():
    # a validated variant of seed-b: every kind of parameter changed
    meta = config.load("seed-b").to_meta()
    meta.update(profile="custom-b", sp_cap="1234.5678", sp_initial_value="2.5", pack_pool_share="0.125",
                referral_online_sv_rate="0.3333", region_repurchase_days="7", calendar_timezone="Europe/Paris",
                sv_consumer_multiplier="5")
    return Params.from_meta(meta)


@pytest.mark.parametrize("which", ["seed-a", "seed-b", "custom"])
def test_rules_at_genesis_read_back_equal(make_books, which):
    params = _custom() if which == "custom" else config.load(which)
    engine = make_books(params)
    meta = genesis_meta(engine)
    assert meta["event"] == "E000000001" and meta["seq"] == "1"
    assert Params.from_meta(meta) == params
    assert engine.params == params
    # a fresh engine on the same books reads the same rules
    again = Engine(engine.books.root)
    try:
        assert again.params == params
    finally:
        again.dispose()
    report = verify(engine.books.root)
    assert report.ok, [str(f) for f in report.faults]


def test_genesis_of_programmatic_params_verifies(make_books, params):
    """Rules built in code (dataclasses.replace, as callers do) are fixed into the journal in
    the canonical form a verifier reads back, so fresh books verify."""
    engine = make_books(dataclasses.replace(params, sp_cap=D("1700"), sp_daily_release=D("250")))
    assert engine.params.sp_cap == D("1700")
    report = verify(engine.books.root)
    assert report.ok, [str(f) for f in report.faults]


def test_init_refuses_invalid_rules_before_writing_anything(tmp_path, clock, params):
    """Params built in code bypass parse_toml: Engine.init must validate them itself, and a
    refused config leaves no books behind (so a corrected init can follow)."""
    root = tmp_path / "books"
    bad = dataclasses.replace(params, referral_online_sv_rate=D("1.5"))
    with pytest.raises(ConfigError) as err:
        Engine.init(root, bad, start=START, clock=clock)
    assert err.value.key == "referral.online_sv_rate"
    assert not (root / "main.beancount").exists()
    assert not list(root.glob("journal/*/*.beancount"))
    engine = Engine.init(root, params, start=START, clock=clock)   # not "books.exist"
    engine.dispose()


def test_init_twice_is_refused(make_books, clock, params):
    engine = make_books()
    with pytest.raises(Conflict) as err:
        Engine.init(engine.books.root, params, start=START, clock=clock)
    assert err.value.rule == "books.exist"
