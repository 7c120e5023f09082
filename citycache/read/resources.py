"""Every resource the API serves, in one list: the check and the page go through it too."""
from __future__ import annotations

from citycache.read.cities import CITIES
from citycache.read.countries import COUNTRIES
from citycache.read.resource import Resource

RESOURCES = (CITIES, COUNTRIES)


def resource_of(key: str) -> Resource | None:
    """The resource whose key `key` is, or None."""
    return next((resource for resource in RESOURCES if resource.code_of(key) is not None), None)
