"""The HTTP API: cities and countries by country code through the Redis cache, images from the S3 store, health."""
from __future__ import annotations

from flask import Flask

from citycache.settings import get_settings


def create_app(test_config: dict | None = None) -> Flask:
    settings = get_settings()
    app = Flask(__name__)
    app.config.from_mapping(SETTINGS=settings, JSON_SORT_KEYS=False)
    if test_config:
        app.config.update(test_config)

    from web import cities, countries, docs, errors, health, images, metrics, page, request_id, resources

    request_id.init_app(app)
    metrics.init_app(app)
    resources.init_app(app)
    errors.init_app(app)
    app.register_blueprint(cities.bp)
    app.register_blueprint(countries.bp)
    app.register_blueprint(images.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(page.bp)
    return app
