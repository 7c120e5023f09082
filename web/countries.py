"""GET /countries/<code>: one country with its capital and languages (citycache/read/countries.py)."""
from __future__ import annotations

from flask import Blueprint

from citycache.read.countries import COUNTRIES
from web.cached import answer

bp = Blueprint("countries", __name__)


@bp.get("/countries/<code>")
def get_country(code: str):
    return answer(COUNTRIES, code, not_found="no country with code {code}")
