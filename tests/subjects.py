"""The rules' tables the guarantee tests write to: each with the writes a test makes under a test code,
and the resource whose key those writes must delete (city -> cities_<CODE>, and country_<CODE> too;
countrylanguage -> country_<CODE>)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from citycache.read.cities import CITIES
from citycache.read.countries import COUNTRIES
from citycache.read.resource import Resource

_fresh = itertools.count(1)


@dataclass(frozen=True)
class Subject:
    table: str
    resource: Resource  # the one the tests read and watch
    insert_sql: str  # each takes %(code)s; move takes %(src)s and %(dst)s
    update_sql: str
    move_sql: str
    delete_sql: str
    burst_sql: str  # one single-row write under %(code)s, the %(n)s-th of its rows, to %(value)s

    def key(self, code: str) -> str:
        return self.resource.key(code)

    def write(self, cur, kind: str, **params) -> None:
        cur.execute(getattr(self, f"{kind}_sql"), {"fresh": f"t{next(_fresh)}", **params})

    def __str__(self) -> str:  # the test id
        return self.table


CITY = Subject(
    "city", CITIES,
    insert_sql="INSERT INTO city (name, countrycode, district, population) VALUES (%(fresh)s, %(code)s, '', 1)",
    update_sql="UPDATE city SET population = population + 1 WHERE countrycode = %(code)s",
    move_sql="UPDATE city SET countrycode = %(dst)s WHERE countrycode = %(src)s",
    delete_sql="DELETE FROM city WHERE countrycode = %(code)s",
    burst_sql="UPDATE city SET population = %(value)s WHERE id = (SELECT id FROM city WHERE countrycode = %(code)s"
              " ORDER BY id LIMIT 1 OFFSET %(n)s)")
LANGUAGES = Subject(
    "countrylanguage", COUNTRIES,
    insert_sql="INSERT INTO countrylanguage (countrycode, language) VALUES (%(code)s, %(fresh)s)",
    update_sql="UPDATE countrylanguage SET language = language || '-x' WHERE countrycode = %(code)s",
    move_sql="UPDATE countrylanguage SET countrycode = %(dst)s WHERE countrycode = %(src)s",
    delete_sql="DELETE FROM countrylanguage WHERE countrycode = %(code)s",
    # A language renamed to a new tag: a change of the table's key, as a real edit would be.
    burst_sql="UPDATE countrylanguage SET language = %(fresh)s WHERE (countrycode, language) = (SELECT countrycode,"
              " language FROM countrylanguage WHERE countrycode = %(code)s ORDER BY language LIMIT 1 OFFSET %(n)s)")
SUBJECTS = (CITY, LANGUAGES)


def seed(subject: Subject, test_cities, test_countries, code: str, rows: int = 3) -> None:
    """Rows under `code` that the subject's writes change, and what its resource reads."""
    test_cities(code, *[(f"{code}-town-{i}", 1000 * i) for i in range(1, rows + 1)])
    test_countries(code, name=f"Test {code}", languages=tuple(f"l{i}" for i in range(1, rows + 1)),
                   capital=f"{code}-town-1")
