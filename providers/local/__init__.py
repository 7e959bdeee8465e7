"""The built-in local provider: real processes, SQLite state, routines, launchers and events."""

from providers import capabilities as c
from providers.provider import Provider

PROVIDER = Provider(
    name="local",
    title="Local runtime",
    summary="Real processes, routines, launchers and events on this machine; no account needed.",
    client="providers.local.runtime:LocalRuntime",
    capabilities=dict.fromkeys(
        (
            c.LIST_SESSIONS,
            c.EXEC_RUN,
            c.GET_SESSION,
            c.STOP_SESSION,
            c.INVOKE_ROUTINE,
            c.GET_LAUNCHERS,
            c.STORE_EVENT,
            c.GET_EVENTS,
            c.LIST_ROUTINES,
            c.GET_ROUTINE_RUN,
            c.GET_LAUNCHER,
        )
    ),
)
