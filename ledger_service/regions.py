"""GB/T 2260 administrative division codes: which unit a code names, and its city-level unit.

The table is `regions.tsv` beside this module, made from the Ministry of Civil Affairs'
list of county-level-and-above division codes (县级以上行政区划代码) as at 2024-12-31; its
header states the source. It holds only what the rules read: code, name, level, and the
code of the city-level unit (市级单位) that contains the division.

City-level units are the municipalities directly under the central government (北京市
110000 ...), the prefecture-level cities (深圳市 440300 ...) and the county-level cities
(乐昌市 440281 ...). A district or county belongs to the city-level unit above it: its
prefecture-level city, or, for the districts and counties of a municipality, the
municipality itself (110105 朝阳区 -> 110000 北京市; a municipality's code is its only
code in the list: there is no 110100). A county-level city counts for itself. Provinces,
and the prefecture-level units that are not cities (地区, 自治州, 盟), are in no
city-level unit, and neither are their counties outside a city (e.g. 469021 定安县,
under 海南省 directly).

The levels are derived (`derive`) from the list alone: a code's prefecture is its first
four digits + "00" and its province its first two + "0000", each only if the list has
that code; the kind of unit is read from the name's ending (市 a city, 区 a district,
县/旗 a county, 地区/自治州/盟 a prefecture that is not a city). Regenerate the table with
`python -m ledger_service.regions SOURCE.txt > ledger_service/regions.tsv`, where
SOURCE.txt holds lines "code name".
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

PROVINCE = "province"                # 省, 自治区, 特别行政区
MUNICIPALITY = "municipality"        # 直辖市: province-level, and a city-level unit
PREFECTURE_CITY = "prefecture_city"  # 地级市
PREFECTURE = "prefecture"            # 地区, 自治州, 盟: prefecture-level, not a city
DISTRICT = "district"                # 市辖区
COUNTY = "county"                    # 县, 自治县, 旗, 自治旗, 特区, 林区
COUNTY_CITY = "county_city"          # 县级市
LEVELS = (PROVINCE, MUNICIPALITY, PREFECTURE_CITY, PREFECTURE, DISTRICT, COUNTY, COUNTY_CITY)
CITY_LEVELS = frozenset({MUNICIPALITY, PREFECTURE_CITY, COUNTY_CITY})

# How a level reads in a sentence ("440305 南山区 is a district of ...").
LEVEL_WORDS = {
    PROVINCE: "a province-level unit",
    MUNICIPALITY: "a municipality",
    PREFECTURE_CITY: "a prefecture-level city",
    PREFECTURE: "a prefecture-level unit that is not a city",
    DISTRICT: "a district",
    COUNTY: "a county",
    COUNTY_CITY: "a county-level city",
}

TABLE = "regions.tsv"
TABLE_DATE = "2024-12-31"  # the Ministry of Civil Affairs' list the table is made from


@dataclass(frozen=True, slots=True)
class Division:
    code: str
    name: str
    level: str
    city: str | None  # the city-level unit containing it (itself for one); None when none does
    parent: str | None  # the unit directly above it in the list (None for a province-level unit)

    @property
    def is_city(self) -> bool:
        return self.level in CITY_LEVELS


def derive(listing: Iterable[tuple[str, str]]) -> list[Division]:
    """Every (code, name) of the source list with its level, parent and city-level unit."""
    names = dict(listing)
    levels: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    for code, name in names.items():
        if len(code) != 6 or not code.isdigit():
            raise ValueError(f"not a 6-digit division code: {code!r}")
        province, prefecture = code[:2] + "0000", code[:4] + "00"
        if code == province:
            levels[code] = MUNICIPALITY if name.endswith("市") else PROVINCE
            parents[code] = None
        elif code == prefecture:
            levels[code] = PREFECTURE_CITY if name.endswith("市") else PREFECTURE
            parents[code] = province
        else:
            parent = prefecture if prefecture in names else province
            parents[code] = parent
            levels[code] = _county_level(name, under_province=parent == province)
    out = []
    for code, name in names.items():
        above = parents[code]
        if above is not None and above not in names:
            raise ValueError(f"{code} {name}: its province {above} is not in the list")
        out.append(Division(code, name, levels[code], _city(code, levels, parents), above))
    return out


def _county_level(name: str, *, under_province: bool) -> str:
    if name.endswith("市"):
        return COUNTY_CITY
    if name.endswith("区") and not name.endswith("特区") and not (under_province and name.endswith("林区")):
        return DISTRICT  # 六枝特区 and 神农架林区 (directly under 湖北省) are county-level, not 市辖区
    return COUNTY


def _city(code: str, levels: dict[str, str], parents: dict[str, str | None]) -> str | None:
    node: str | None = code
    while node is not None:
        if levels[node] in CITY_LEVELS:
            return node
        if levels[node] in (PREFECTURE, PROVINCE):
            return None  # above the county level only a city-level unit contains what is below it
        node = parents[node]
    return None


@functools.cache
def table() -> dict[str, Division]:
    """The shipped table, read once: code -> Division."""
    text = resources.files("ledger_service").joinpath(TABLE).read_text("utf-8")
    out: dict[str, Division] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        code, name, level, city, parent = line.split("\t")
        out[code] = Division(code, name, level, city or None, parent or None)
    return out


def division(code: str) -> Division | None:
    return table().get(code)


def city_of(code: str) -> str | None:
    """The code of the city-level unit containing `code` (None: unknown code, or no city contains it)."""
    found = table().get(code)
    return found.city if found is not None else None


def label(code: str) -> str:
    """"440300 深圳市" for a known code, the bare code otherwise."""
    found = table().get(code)
    return f"{code} {found.name}" if found is not None else code


def cities_within(code: str) -> list[Division]:
    """The city-level units directly or indirectly below `code`, in code order."""
    return [d for d in table().values() if d.is_city and d.code != code and _below(d, code)]


def _below(found: Division, code: str) -> bool:
    node = found.parent
    while node is not None:
        if node == code:
            return True
        node = table()[node].parent
    return False


HEADER = """\
# GB/T 2260 administrative division codes (中华人民共和国县级以上行政区划代码), as the Ministry of
# Civil Affairs (民政部) lists them at 2024-12-31: file data/2024.txt of the GitHub repository
# yescallop/areacodes (CC0 1.0; commit eed219a0678d36bacaa717f62443b10e869f0291, 2025-11-04),
# which collects the ministry's yearly lists. 3,213 codes: 34 province-level, 333
# prefecture-level, 2,846 county-level. Levels and city-level units derived by
# ledger_service.regions.derive (see its docstring); regenerate with
# `python -m ledger_service.regions data/2024.txt > ledger_service/regions.tsv`.
# Columns (tab-separated): code, name, level, city (the city-level unit containing it:
# itself for a city-level unit, empty when none), parent (the unit directly above it).
"""


def render(divisions: Iterable[Division]) -> str:
    rows = [f"{d.code}\t{d.name}\t{d.level}\t{d.city or ''}\t{d.parent or ''}" for d in divisions]
    return HEADER + "\n".join(rows) + "\n"


def _main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m ledger_service.regions SOURCE.txt  (lines: code name)", file=sys.stderr)
        return 2
    listing: list[tuple[str, str]] = []
    with open(argv[0], encoding="utf-8") as source:
        for line in source:
            if line.strip():
                code, name = line.split(None, 1)
                listing.append((code, name.strip()))
    sys.stdout.write(render(derive(listing)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
