"""Which region a partner holds, and which partner an order's region pays (rule `region.match`).

"city" (new books): every region is a code of the GB/T 2260 table shipped with the package
(`ledger_service.regions`); a partner pack names a city-level unit (a municipality, a
prefecture-level city or a county-level city); an order pays the partner of the city-level
unit containing the store's region (offline) or the ship region (online).

"exact" (books made before the rule): a region is any six digits, a partner pack may name
any of them, and an order pays the partner of exactly its region.

The table is part of the "city" rule: a later table (a code added or withdrawn) comes with a
new `region.match` value, so books made under this one replay unchanged.
"""

from __future__ import annotations

from .. import regions
from ..config import Params
from ..errors import Invalid

CITY_LEVELS_TEXT = "a municipality, a prefecture-level city or a county-level city"


def by_city(params: Params) -> bool:
    return params.region_match == "city"


def require_known(code: str | None, field: str, params: Params) -> None:
    """Under "city", refuse a code that is not in the table (422 `region.unknown`)."""
    if code is None or not by_city(params) or regions.division(code) is not None:
        return
    hint = ""
    municipality = regions.division(code[:2] + "0000")
    if municipality is not None and municipality.level == regions.MUNICIPALITY:
        hint = f"; the municipality {regions.label(municipality.code)} has the one city-level code {municipality.code}"
    raise Invalid("region.unknown",
                  f"{field}: {code} is not a GB/T 2260 division code (the table of {regions.TABLE_DATE}){hint}", field)


def require_city(code: str, field: str, params: Params) -> None:
    """Under "city", a partner pack's region must be a city-level unit (422 `region.not_city`),
    and the refusal names the city-level unit that holds the code, when one does."""
    if not by_city(params):
        return
    require_known(code, field, params)
    found = regions.division(code)
    assert found is not None  # (checked just above)
    if found.is_city:
        return
    what = f"{field}: {regions.label(code)} is {regions.LEVEL_WORDS[found.level]}"
    if found.city is not None:
        detail = (f"{what} of {regions.label(found.city)}; a partner pack names a city-level unit "
                  f"({CITY_LEVELS_TEXT}): here {found.city}, whose partner earns on every division in it")
    else:
        within = regions.cities_within(code)
        examples = ", ".join(regions.label(d.code) for d in within[:3])
        where = f"; its city-level units include {examples}" if examples else ", in no city-level unit"
        detail = f"{what}{where}; a partner pack names a city-level unit ({CITY_LEVELS_TEXT})"
    raise Invalid("region.not_city", detail, field)


def partner_region(region: str | None, params: Params) -> str | None:
    """The region whose partner an order in `region` pays (None: no partner's region)."""
    if region is None:
        return None
    if not by_city(params):
        return region
    return regions.city_of(region)
