"""GET /cities/<code>: the cities of one country (citycache/read/cities.py), most populous first."""
from __future__ import annotations

from flask import Blueprint

from citycache.read.cities import CITIES
from web.cached import answer

bp = Blueprint("cities", __name__)


@bp.get("/cities/<code>")
def get_cities(code: str):
    return answer(CITIES, code, not_found="no cities for country code {code}")
