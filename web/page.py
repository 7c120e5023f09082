"""GET /: the page for people: a country picker, that country (capital, continent, languages) and its
cities, each with its source and age, the images in the bucket, and the last minutes of invalidation
(the sampler's consistency and the commit->DEL latency, web/trends.py). Server-rendered
(templates/page.html), no script, no build step."""
from __future__ import annotations

import json
import logging

import redis
from flask import Blueprint, render_template, request
from minio.error import S3Error

from citycache.read.cities import CITIES
from citycache.read.codes import BadCode, normalize_code
from citycache.read.countries import COUNTRIES
from citycache.read.resource import Resource
from web import trends
from web.cached import read
from web.resources import Resources, get_resources

log = logging.getLogger(__name__)
bp = Blueprint("page", __name__)
DEFAULT_COUNTRY = "BGR"
# The picker: every code with cities, named from the country table where it has the code.
COUNTRIES_SQL = ("SELECT c.countrycode, k.name, count(*) FROM city c LEFT JOIN country k ON k.code = c.countrycode"
                 " GROUP BY c.countrycode, k.name ORDER BY c.countrycode")
MAX_IMAGES = 200


def countries(r: Resources) -> list[dict]:
    rows = r.query(lambda conn: _fetch(conn, COUNTRIES_SQL))
    return [{"code": code.strip(), "name": name or code.strip(), "cities": n} for code, name, n in rows]


def _fetch(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def cache_age(r: Resources, resource: Resource, code: str, source: str) -> int | None:
    """Seconds since the cached value was stored (TTL given minus TTL left); 0 when just loaded."""
    if source == "db":
        return 0
    try:
        left = r.cache.redis.ttl(resource.key(code))
    except redis.RedisError:
        return None
    return max(0, r.settings.cache_ttl_seconds - left) if left >= 0 else None


def images(r: Resources) -> tuple[list[dict], str | None]:
    try:
        objects = []
        for obj in r.s3.list_objects(r.settings.s3_bucket):
            objects.append({"name": obj.object_name, "size": obj.size,
                            "modified": obj.last_modified.strftime("%Y-%m-%d %H:%M") if obj.last_modified else ""})
            if len(objects) >= MAX_IMAGES:
                break
        return objects, None
    except (S3Error, OSError) as exc:
        log.warning("bucket not listed for the page", extra={"error": str(exc)})
        return [], "the image store is unavailable"


@bp.get("/")
def page():
    r = get_resources()
    raw = request.args.get("country", DEFAULT_COUNTRY)
    context = {"countries": countries(r), "country": None, "cities": [], "error": None}
    context["images"], context["images_error"] = images(r)
    context["trends"], context["step"] = trends.get().panel(), trends.STEP_SECONDS
    status = 200
    try:
        code = normalize_code(raw)
    except BadCode as exc:
        context["error"], status = str(exc), 400
    else:
        found, source = read(CITIES, code)
        cities = json.loads(found.data)
        country, country_source = read(COUNTRIES, code)
        facts = json.loads(country.data)
        context.update(country={"code": code, "name": facts["name"] if facts else code}, cities=cities,
                       source=source, age=cache_age(r, CITIES, code, source), facts=facts,
                       facts_source=country_source, facts_age=cache_age(r, COUNTRIES, code, country_source))
        if not cities:
            context["error"], status = f"no cities for country code {code}", 404
    return render_template("page.html", **context), status
