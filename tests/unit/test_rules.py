"""The rules file (citycache/rules.py): its form, the keys it renders, and the refusals (no services)."""
from __future__ import annotations

import pytest

from citycache import rules
from citycache.rules import BadRules, Template, Unusable
from tests.support import ROOT

SHIPPED = (ROOT / "invalidation.toml").read_text()


def parse(text: str):
    return rules.parse(text, "test.toml")


def test_the_shipped_rules_cover_cities_and_countries():
    found = rules.parse(SHIPPED)
    assert found.tables == ("city", "country", "countrylanguage")
    city = found.rule_for("city")
    assert [t.text for t in city.keys] == ["cities_{countrycode}", "country_{countrycode}"]
    assert city.columns == ("countrycode",) and found.prefixes == ("cities_", "country_")


@pytest.mark.parametrize("template, values, key", [
    ("cities_{countrycode}", {"countrycode": "BGR"}, "cities_BGR"),
    ("district_{countrycode}_{district}", {"countrycode": "BGR", "district": "40"}, "district_BGR_40"),
    ("city_{name}", {"name": "Plovdiv Пловдив"}, "city_Plovdiv Пловдив"),  # Unicode goes in as it is
    ("all_cities", {}, "all_cities"),  # a constant key: any change deletes it
    ("a*[b]_{x}", {"x": "?"}, "a*[b]_?"),  # glob characters are plain text in a key
])
def test_templates_render_the_rows_values(template, values, key):
    assert Template.parse(template).render(values) == key


@pytest.mark.parametrize("values, why", [
    ({"x": None}, "NULL"), ({"x": ""}, "empty"), ({"x": "a\x00b"}, "control"), ({"x": "a\nb"}, "control"),
    ({"x": "z" * 600}, "512 bytes"), ({"x": "a}b"}, "brace"), ({}, "NULL"),
])
def test_a_value_that_makes_no_usable_key_is_refused_with_why(values, why):
    with pytest.raises(Unusable, match=why):
        Template.parse("k_{x}").render(values)


def test_a_rule_renders_what_it_can_and_says_why_not_for_the_rest():
    rule = parse('[[rule]]\ntable = "t"\nkeys = ["a_{x}", "b_{x}_{y}"]').rules[0]
    assert rule.columns == ("x", "y")
    assert rule.render(["1", "2"]) == (["a_1", "b_1_2"], [])
    keys, problems = rule.render(["1", None])
    assert keys == ["a_1"] and problems == ["y is NULL"]


def test_prefixes_match_literally_in_a_scan_glob():
    assert rules.key_pattern("a*[b]?_") == r"a\*\[b\]\?_*"
    assert rules.lease_pattern("cities_") == "{cities_*}:lease"
    assert rules.lease_key("cities_BGR") == "{cities_BGR}:lease"


def test_the_near_cache_tracks_the_shorter_of_overlapping_prefixes():
    found = parse('[[rule]]\ntable = "a"\nkeys = ["country_{x}", "cities_{x}"]\n'
                  '[[rule]]\ntable = "b"\nkeys = ["country_lang_{x}", "cit{x}"]')
    assert set(found.prefixes) == {"country_", "cities_", "country_lang_", "cit"}
    assert found.tracking_prefixes == ("cit", "country_")


def test_a_resource_finds_the_template_of_its_shape_whatever_the_column_is_called():
    found = rules.parse(SHIPPED)
    assert found.template("country_{code}").prefix == "country_"
    with pytest.raises(BadRules, match="no rule makes keys like 'stats_{code}'"):
        found.template("stats_{code}")


@pytest.mark.parametrize("text, says", [
    ("[[rule]\ntable = 1", "is not valid TOML"),
    ("", "has no [[rule]]"),
    ('[[rule]]\ntable = "city"\nkeys = []', "rule 1 (table city): keys is empty"),
    ('[[rule]]\ntable = "city"', "rule 1 (table city): keys is missing"),
    ('[[rule]]\ntable = "city"\nkeys = ["{countrycode}"]', "must start with a literal prefix"),
    ('[[rule]]\ntable = "city"\nkeys = ["cities_{countrycode"]', "without its '}'"),
    ('[[rule]]\ntable = "city"\nkeys = ["cities_{Country Code}"]', "is not a column name"),
    ('[[rule]]\ntable = "Bad Table"\nkeys = ["x_{a}"]', "is not a table name"),
    ('[[rule]]\ntable = "a"\nkeys = ["x_{a}"]\n[[rule]]\ntable = "a"\nkeys = ["y_{a}"]', "a second rule for a"),
    ('[[rule]]\ntable = "a"\nkeys = ["x_{a}"]\nttl = 5', "unknown field 'ttl'"),
    ('[[rules]]\ntable = "a"', "unknown top-level entry 'rules'"),
])
def test_a_bad_file_is_one_line_that_names_the_rule_and_the_fix(text, says):
    with pytest.raises(BadRules) as refused:
        parse(text)
    line = str(refused.value)
    assert says in line and "\n" not in line and line.startswith("rules: test.toml")


def test_a_missing_file_names_the_setting(tmp_path):
    with pytest.raises(BadRules, match="INVALIDATION_RULES"):
        rules.load(tmp_path / "absent.toml")
