"""The second baseline for cache hits: a bare Flask route doing one Redis GET and sending its bytes.

What any app that keeps its answers in Redis pays per hit: no request id, access fields, metrics or
ETag of ours. Run by gunicorn with the app's own config file, like the floor (bench/floor_app.py).
The response body is the project's cache-hit body, so the bytes on the wire are the same.
"""
import redis
from flask import Flask, Response
from redis.cluster import RedisCluster

from citycache.read.cities import key as cache_key
from citycache.read.entry import Entry
from citycache.settings import get_settings


def create_app() -> Flask:
    settings = get_settings()
    # One GET routed by slot on a Redis Cluster (bench/cluster_hits.py), as any cluster client does.
    client = (RedisCluster if settings.redis_cluster else redis.Redis).from_url(settings.redis_url)
    app = Flask(__name__)

    @app.get("/cities/<code>")
    def cities(code: str):
        value = client.get(cache_key(code))
        return Response(Entry.from_cached(value).body("cache"), mimetype="application/json")

    return app
