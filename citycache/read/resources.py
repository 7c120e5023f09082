"""Every resource the API serves, in one list: the check and the page go through it too."""
from citycache.read.cities import CITIES
from citycache.read.countries import COUNTRIES

RESOURCES = (CITIES, COUNTRIES)
