"""Sprites: exec sessions inside Sprites sandboxes (list, kill)."""

from providers import capabilities as c
from providers.provider import Provider, Serves, Setting
from providers.sprites.endpoints import ENDPOINTS

TOKEN = Setting("SPRITES_TOKEN", "token", "Sprites API token.")
BASE_URL = Setting("SPRITES_BASE_URL", "base_url", "Sprites API base URL.", "https://api.sprites.dev")

PROVIDER = Provider(
    name="sprites",
    title="Sprites",
    summary="Exec sessions inside Sprites sandboxes: list and kill.",
    client="providers.sprites.client:SpritesClient",
    capabilities={
        c.LIST_SESSIONS: Serves(("sprite",), TOKEN),
        c.STOP_SESSION: Serves(("sprite", "session_id", "signal?", "timeout_s?"), TOKEN),
    },
    settings=(TOKEN, BASE_URL),
    endpoints=ENDPOINTS,
)
