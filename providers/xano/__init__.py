"""Xano Run API: XanoScript runs and their sessions."""

from providers import capabilities as c
from providers.provider import Provider, Setting
from providers.xano.endpoints import ENDPOINTS

TOKEN = Setting("XANO_ACCESS_TOKEN", "token", "Xano access token.")
BASE_URL = Setting("XANO_RUN_BASE_URL", "base_url", "Run API base URL.", "https://app.dev.xano.com/api:run")

PROVIDER = Provider(
    name="xano",
    title="Xano Run API",
    summary="XanoScript runs and sessions: exec, list, stop, inspect.",
    client="providers.xano.client:XanoRunClient",
    capabilities=dict.fromkeys(
        (
            c.LIST_SESSIONS,
            c.EXEC_RUN,
            c.STOP_SESSION,
            c.GET_SESSION,
            c.SET_SESSION_ACCESS,
            c.RENAME_SESSION,
            c.GET_SESSION_SINK,
            c.CHECK_XANO_DOC,
        ),
        TOKEN,
    ),
    settings=(TOKEN, BASE_URL),
    endpoints=ENDPOINTS,
)
