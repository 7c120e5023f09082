"""One country, as GET /countries/<code> sends it (cached under `country_<CODE>`): its name, continent
and population from `country`, its capital's name from the `city` row that `country.capital` points
to (as in the world database), its languages from `countrylanguage`. A write to any of the three
tables deletes the key (invalidation.toml)."""
from __future__ import annotations

import json

from citycache.read.resource import Resource

COUNTRY_SQL = """
SELECT c.code, c.name, c.continent, c.population, capital.name,
       array(SELECT l.language FROM countrylanguage l WHERE l.countrycode = c.code ORDER BY l.language COLLATE "C")
FROM country c LEFT JOIN city capital ON capital.id = c.capital
WHERE c.code = %s
"""


def fetch_country(conn, code: str) -> tuple | None:
    with conn.cursor() as cur:
        cur.execute(COUNTRY_SQL, (code,))
        return cur.fetchone()


def render_country(row: tuple | None) -> bytes:
    """The `data` object exactly as it goes on the wire; `null` when there is no such country."""
    if row is None:
        return b"null"
    code, name, continent, population, capital, languages = row
    return json.dumps({"code": code.strip(), "name": name, "continent": continent, "population": population,
                       "capital": capital, "languages": languages},
                      ensure_ascii=False, separators=(",", ":")).encode()


def load(conn, code: str) -> bytes:
    return render_country(fetch_country(conn, code))


COUNTRIES = Resource("countries", "country_{code}", load, missing=b"null")
key = COUNTRIES.key
