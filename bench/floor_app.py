"""The floor for cache hits: a bare Flask route sending the same bytes from memory.

Run by gunicorn with the app's own config file (workers, threads, keep-alive, access log), so the
only difference from GET /cities/<code> is our code on the hit path. The bytes come from the
BENCH_FLOOR_FILE written by bench.hit_throughput: the exact response body of a cache hit.
"""
import os

from flask import Flask, Response


def create_app() -> Flask:
    with open(os.environ["BENCH_FLOOR_FILE"], "rb") as f:
        body = f.read()
    app = Flask(__name__)

    @app.get("/cities/<code>")
    def cities(code: str):
        return Response(body, mimetype="application/json")

    return app
