"""GET /cities/<code> against the running stack: shape, cache-aside, order, bad input."""
import pytest

from citycache.read.cities import key as cache_key


def test_second_get_is_served_from_the_cache(base_url, http, redis, test_cities):
    test_cities("QQA", ("Alpha", 300), ("Beta", 200))
    first = http.get(f"{base_url}/cities/QQA")
    assert first.status_code == 200
    assert first.json() == {"source": "db", "data": [{"name": "Alpha", "population": 300},
                                                     {"name": "Beta", "population": 200}]}
    assert redis.exists(cache_key("QQA"))
    second = http.get(f"{base_url}/cities/QQA")
    assert second.json() == {"source": "cache", "data": first.json()["data"]}
    assert second.headers["Content-Type"] == "application/json"


def test_cached_key_has_the_contract_ttl(base_url, http, redis, settings, test_cities):
    test_cities("QQA", ("Alpha", 1))
    http.get(f"{base_url}/cities/QQA")
    assert 0 < redis.ttl(cache_key("QQA")) <= settings.cache_ttl_seconds == 320


def test_codes_are_case_insensitive(base_url, http, test_cities):
    test_cities("QQB", ("Gamma", 5))
    assert http.get(f"{base_url}/cities/qqb").json()["data"] == [{"name": "Gamma", "population": 5}]


def test_order_is_population_then_name(base_url, http, test_cities):
    test_cities("QQC", ("b-town", 10), ("A-town", 10), ("Zed", 99), ("a-town", 10))
    names = [city["name"] for city in http.get(f"{base_url}/cities/QQC").json()["data"]]
    assert names == ["Zed", "A-town", "a-town", "b-town"]


def test_bulgaria_from_the_seed_data(base_url, http):
    response = http.get(f"{base_url}/cities/BGR")
    assert response.status_code == 200
    names = [city["name"] for city in response.json()["data"]]
    assert "Dobric" in names and "Sofia" in names
    populations = [city["population"] for city in response.json()["data"]]
    assert populations == sorted(populations, reverse=True)


def test_unicode_names_survive(base_url, http, test_cities):
    test_cities("QQD", ("Zürich-Ω", 3), ("東京", 2))
    assert [c["name"] for c in http.get(f"{base_url}/cities/QQD").json()["data"]] == ["Zürich-Ω", "東京"]


@pytest.mark.parametrize("code", ["BG", "BGRX", "B1R", "12", "%C3%84BC", "B%20R", "B.R", "x" * 300])
def test_bad_codes_get_400_json(base_url, http, code):
    response = http.get(f"{base_url}/cities/{code}")
    assert response.status_code == 400
    assert "three letters" in response.json()["error"]


def test_unknown_code_gets_404_json(base_url, http):
    response = http.get(f"{base_url}/cities/QQZ")
    assert response.status_code == 404
    assert response.json() == {"error": "no cities for country code QQZ", "status": 404}


def test_unknown_route_is_json_too(base_url, http):
    response = http.get(f"{base_url}/nope")
    assert response.status_code == 404 and response.json()["status"] == 404
