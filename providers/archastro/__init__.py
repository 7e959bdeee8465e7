"""ArchAstro: agent routines (invoke, runs) and agent sessions."""

from providers import capabilities as c
from providers.archastro.endpoints import ENDPOINTS
from providers.provider import Provider, Serves, Setting

API_KEY = Setting("ARCHASTRO_API_KEY", "api_key", "ArchAstro secret key (sk_...).")
BASE_URL = Setting("ARCHASTRO_BASE_URL", "base_url", "ArchAstro API base URL.", "https://platform.archastro.ai")

PROVIDER = Provider(
    name="archastro",
    title="ArchAstro",
    summary="Agent routines (invoke, runs) and agent sessions.",
    client="providers.archastro.client:ArchAstroClient",
    capabilities={
        c.LIST_SESSIONS: Serves(("agent?", "status?", "routine_run?", "exclude_system?", "limit?", "cursor?"), API_KEY),
        c.GET_SESSION: Serves(("session_id",), API_KEY),
        c.STOP_SESSION: Serves(("session_id",), API_KEY),
        c.INVOKE_ROUTINE: Serves(
            ("routine", "message", "idempotency_key?", "metadata?", "session_key?", "thread_id?", "user?"), API_KEY
        ),
        c.SEND_SESSION_MESSAGE: Serves(("session_id", "content", "metadata?", "role?"), API_KEY),
        c.DELETE_SESSION: Serves(("session_id",), API_KEY),
        c.LIST_ROUTINES: Serves(("agent?", "event_type?"), API_KEY),
        c.GET_ROUTINE: Serves(("routine",), API_KEY),
        c.LIST_ROUTINE_PRESETS: Serves((), API_KEY),
        c.ACTIVATE_ROUTINE: Serves(("routine",), API_KEY),
        c.PAUSE_ROUTINE: Serves(("routine",), API_KEY),
        c.GET_ROUTINE_RUN: Serves(("run_id",), API_KEY),
        c.LIST_ROUTINE_RUNS: Serves(("routine", "status?", "limit?", "cursor?", "after_cursor?"), API_KEY),
        c.UPDATE_ROUTINE: Serves(
            (
                "routine",
                "name?",
                "description?",
                "lookup_key?",
                "schedule?",
                "handler_type?",
                "script?",
                "preset_name?",
                "preset_config?",
                "config?",
                "steps?",
                "template?",
                "event_config?",
                "trigger_context?",
                "metadata?",
            ),
            API_KEY,
        ),
        c.DELETE_ROUTINE: Serves(("routine",), API_KEY),
        c.CREATE_AGENT_SESSION: Serves(
            (
                "agent",
                "instructions",
                "name?",
                "metadata?",
                "max_turns?",
                "max_tokens?",
                "max_runs_per_turn?",
                "start_idle?",
                "team?",
                "thread?",
                "user?",
            ),
            API_KEY,
        ),
        c.UPDATE_AGENT_SESSION: Serves(("session_id", "metadata"), API_KEY),
    },
    settings=(API_KEY, BASE_URL),
    endpoints=ENDPOINTS,
)
