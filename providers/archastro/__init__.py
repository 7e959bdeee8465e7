"""ArchAstro: agent routines (invoke, runs) and agent sessions."""

from providers import capabilities as c
from providers.archastro.endpoints import ENDPOINTS
from providers.provider import Provider, Setting

API_KEY = Setting("ARCHASTRO_API_KEY", "api_key", "ArchAstro secret key (sk_...).")
BASE_URL = Setting("ARCHASTRO_BASE_URL", "base_url", "ArchAstro API base URL.", "https://platform.archastro.ai")

PROVIDER = Provider(
    name="archastro",
    title="ArchAstro",
    summary="Agent routines (invoke, runs) and agent sessions.",
    client="providers.archastro.client:ArchAstroClient",
    capabilities=dict.fromkeys(
        (
            c.LIST_SESSIONS,
            c.STOP_SESSION,
            c.INVOKE_ROUTINE,
            c.GET_SESSION,
            c.SEND_SESSION_MESSAGE,
            c.DELETE_SESSION,
            c.LIST_ROUTINES,
            c.GET_ROUTINE,
            c.LIST_ROUTINE_PRESETS,
            c.ACTIVATE_ROUTINE,
            c.PAUSE_ROUTINE,
            c.GET_ROUTINE_RUN,
            c.LIST_ROUTINE_RUNS,
        ),
        API_KEY,
    ),
    settings=(API_KEY, BASE_URL),
    endpoints=ENDPOINTS,
)
