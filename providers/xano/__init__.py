"""Xano Run API: XanoScript runs and their sessions."""

from providers import capabilities as c
from providers.provider import Provider, Serves, Setting
from providers.xano.endpoints import ENDPOINTS

TOKEN = Setting("XANO_ACCESS_TOKEN", "token", "Xano access token.")
BASE_URL = Setting("XANO_RUN_BASE_URL", "base_url", "Run API base URL.", "https://app.dev.xano.com/api:run")

PROVIDER = Provider(
    name="xano",
    title="Xano Run API",
    summary="XanoScript runs and sessions: exec, list, stop, inspect.",
    client="providers.xano.client:XanoRunClient",
    capabilities={
        c.LIST_SESSIONS: Serves(("project_id", "run_id?", "page?"), TOKEN),
        c.EXEC_RUN: Serves(("project_id?", "doc?", "args?", "env?", "run_id?", "session_id?", "template?"), TOKEN),
        c.GET_SESSION: Serves(("session_id",), TOKEN),
        c.STOP_SESSION: Serves(("project_id", "run_id", "session_id"), TOKEN),
        c.SET_SESSION_ACCESS: Serves(("session_id", "access"), TOKEN),
        c.UPDATE_SESSION_RUN: Serves(("session_id", "name"), TOKEN),
        c.LIST_RUNS: Serves(("project_id", "page?"), TOKEN),
        c.GET_SESSION_SINK: Serves(("session_id",), TOKEN),
        c.CHECK_XANO_DOC: Serves(("project_id", "doc"), TOKEN),
    },
    settings=(TOKEN, BASE_URL),
    endpoints=ENDPOINTS,
)
