"""GET /openapi.json (the API's OpenAPI 3 document, web/openapi.json) and GET /docs (it, as HTML)."""
from __future__ import annotations

import functools
import json
from pathlib import Path

from flask import Blueprint, Response, render_template

bp = Blueprint("docs", __name__)
SPEC_PATH = Path(__file__).with_name("openapi.json")


@functools.cache
def spec_bytes() -> bytes:
    return SPEC_PATH.read_bytes()


@bp.get("/openapi.json")
def openapi():
    return Response(spec_bytes(), mimetype="application/json")


@bp.get("/docs")
def docs():
    spec = json.loads(spec_bytes())
    return render_template("docs.html", spec=spec, pretty=json.dumps(spec, indent=2))
