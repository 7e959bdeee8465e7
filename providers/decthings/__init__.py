"""Decthings: persistent launchers."""

from providers import capabilities as c
from providers.decthings.endpoints import ENDPOINTS
from providers.provider import Provider, Serves, Setting

API_KEY = Setting("DECTHINGS_API_KEY", "api_key", "Decthings API key.")
BASE_URL = Setting("DECTHINGS_BASE_URL", "base_url", "Decthings API base URL.", "https://api.decthings.com/v0")

PROVIDER = Provider(
    name="decthings",
    title="Decthings",
    summary="Persistent launchers: list, filter, inspect.",
    client="providers.decthings.client:DecthingsClient",
    capabilities={
        c.GET_LAUNCHERS: Serves(("offset?", "limit?", "ids?", "search_name?", "sort?", "sort_direction?"), API_KEY),
        c.GET_LAUNCHER: Serves(("launcher_id",), API_KEY),
    },
    settings=(API_KEY, BASE_URL),
    endpoints=ENDPOINTS,
)
