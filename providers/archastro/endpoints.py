"""ArchAstro: every endpoint the client calls, described once (client, docs topic, tests)."""

from __future__ import annotations

from providers.endpoints import Endpoint, body_param, path_param, query_param

ROUTINE = path_param("routine", "Routine id (arn_...) or lookup_key.")
MAX_LIMIT = 100  # every ArchAstro list takes at most this many per page
MAX_ROUTINE_RUNS = 100  # routine_run ids one session list may filter on
AGENT_SESSION = path_param("session_id", "Agent session id (ase_...).")
ARCHASTRO_INVOKE = Endpoint(
    "archastro",
    "POST",
    "/api/v1/agent_routines/{routine}/invoke",
    "invokeRoutine",
    "Start an on-demand run of an active routine whose event type is agentroutine.invoked. "
    "409: a completed run already has this idempotency_key. 402: plan not entitled.",
    (
        ROUTINE,
        body_param("message", "string", "Message for the agent.", required=True),
        body_param("idempotency_key", "string", "Makes retries safe."),
        body_param("metadata", "object", "Free-form metadata."),
        body_param("session_key", "string", "Session key when the routine's session_scope is per_key."),
        body_param("thread_id", "string", "Thread (thr_...) to post the output into."),
        body_param("user", "string", "User for per_user session scope."),
    ),
    example={"message": "Summarise today's tickets", "idempotency_key": "daily-2026-11-23"},
)
ARCHASTRO_GET_RUN = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_routines/runs/{run_id}",
    "getRoutineRun",
    "One routine run: status, payload, result, duration.",
    (path_param("run_id", "Routine run id (arr_...)."),),
)
ARCHASTRO_LIST_RUNS = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_routines/{routine}/runs",
    "listRoutineRuns",
    "Runs of a routine, newest first, cursor paged.",
    (
        ROUTINE,
        query_param("status", "enum", "One of pending, running, completed, failed, skipped."),
        query_param("limit", "integer", "Page size, at most 100.", 50),
        query_param("before_cursor", "string", "Older page cursor."),
        query_param("after_cursor", "string", "Newer page cursor."),
    ),
)
ARCHASTRO_LIST_ROUTINES = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_routines",
    "listRoutines",
    "Routines of the app, unpaged.",
    (query_param("agent", "string", "Agent id filter."), query_param("event_type", "string", "Event type filter.")),
)
ARCHASTRO_GET_ROUTINE = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_routines/{routine}",
    "getRoutine",
    "One routine's configuration and status.",
    (ROUTINE,),
)
ARCHASTRO_PRESETS = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_routines/presets",
    "listRoutinePresets",
    "Routine presets available to the app.",
)
ARCHASTRO_ACTIVATE = Endpoint(
    "archastro",
    "POST",
    "/api/v1/agent_routines/{routine}/activate",
    "activateRoutine",
    "Set a routine active (422 when it has no config or an over-frequent schedule).",
    (ROUTINE,),
)
ARCHASTRO_PAUSE = Endpoint(
    "archastro",
    "POST",
    "/api/v1/agent_routines/{routine}/pause",
    "pauseRoutine",
    "Pause a routine without deleting it.",
    (ROUTINE,),
)
ARCHASTRO_LIST_SESSIONS = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_sessions",
    "listSessions",
    "Agent sessions, newest first.",
    (
        query_param("agent", "string", "Agent id filter (agi_...)."),
        query_param("status", "enum", "One or more of pending, running, waiting, completed, failed, cancelled."),
        query_param("routine_run", "string", "One or more routine run ids (at most 100)."),
        query_param("exclude_system", "boolean", "true: leave out sessions the platform started itself.", False),
        query_param("limit", "integer", "Page size, at most 100.", 25),
        query_param("before_cursor", "string", "Cursor from the previous page."),
    ),
)
ARCHASTRO_GET_SESSION = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_sessions/{session_id}",
    "getSession",
    "One agent session.",
    (AGENT_SESSION,),
)
ARCHASTRO_CANCEL_SESSION = Endpoint(
    "archastro",
    "POST",
    "/api/v1/agent_sessions/{session_id}/cancel",
    "stopSession",
    "Cancel an agent session; calling it on a finished session is harmless.",
    (AGENT_SESSION,),
)
ARCHASTRO_MESSAGE_SESSION = Endpoint(
    "archastro",
    "POST",
    "/api/v1/agent_sessions/{session_id}/message",
    "sendSessionMessage",
    "Append a message to a session's inbox; a waiting session resumes.",
    (
        AGENT_SESSION,
        body_param("content", "string", "Message text.", required=True),
        body_param("metadata", "object", "Free-form metadata."),
        body_param("role", "string", "Sender role.", default="user"),
    ),
)
ARCHASTRO_DELETE_SESSION = Endpoint(
    "archastro",
    "DELETE",
    "/api/v1/agent_sessions/{session_id}",
    "deleteSession",
    "Delete a finished agent session for good (422 while it is active).",
    (AGENT_SESSION,),
)

ARCHASTRO_UPDATE_ROUTINE = Endpoint(
    "archastro",
    "PATCH",
    "/api/v1/agent_routines/{routine}",
    "updateRoutine",
    "Change a routine's settings; fields left out keep their value, metadata and steps are replaced whole.",
    (
        ROUTINE,
        body_param("name", "string", "Display name."),
        body_param("description", "string", "What the routine does."),
        body_param("lookup_key", "string", "Stable key, unique in the app."),
        body_param("schedule", "string", "Cron expression, at most hourly."),
        body_param("handler_type", "enum", "workflow_graph, script, preset or chain."),
        body_param("script", "string", "Inline script (handler_type script)."),
        body_param("preset_name", "string", "Preset to use (handler_type preset)."),
        body_param("preset_config", "object", "Preset configuration."),
        body_param("config", "string", "Workflow config id cfg_... (handler_type workflow_graph)."),
        body_param("steps", "array", "Chain steps, the whole list (handler_type chain)."),
        body_param("template", "string", "Routine template config id or lookup key to re-resolve from."),
        body_param("event_config", "object", "Event type -> {filters, dedupe_key_path?}."),
        body_param("trigger_context", "enum", "chat_session or event."),
        body_param("metadata", "object", "Free-form metadata, replaced whole."),
    ),
    example={"schedule": "0 9 * * 1", "description": "Monday triage"},
)
ARCHASTRO_DELETE_ROUTINE = Endpoint(
    "archastro",
    "DELETE",
    "/api/v1/agent_routines/{routine}",
    "deleteRoutine",
    "Delete a routine for good (204); runs already under way may still finish.",
    (ROUTINE,),
)
ARCHASTRO_CREATE_SESSION = Endpoint(
    "archastro",
    "POST",
    "/api/v1/agent_sessions",
    "createAgentSession",
    "Start an agent session on a task (201); it runs at once, or waits for a message with start_idle.",
    (
        body_param("agent", "string", "Agent id (agi_...).", required=True),
        body_param("instructions", "string", "The task, in plain text.", required=True),
        body_param("name", "string", "Display name."),
        body_param("metadata", "object", "Free-form metadata."),
        body_param("max_turns", "integer", "Turns before it ends.", default=100),
        body_param("max_tokens", "integer", "Token budget over all turns.", default=20000),
        body_param("max_runs_per_turn", "integer", "Tool calls per turn.", default=25),
        body_param("start_idle", "boolean", "true: wait for the first message.", default=False),
        body_param("team", "string", "Team id (tea_...)."),
        body_param("thread", "string", "Thread id (thr_...) to link."),
        body_param("user", "string", "User id for attribution."),
    ),
    example={"agent": "agi_1", "instructions": "Triage today's tickets"},
)
ARCHASTRO_UPDATE_SESSION = Endpoint(
    "archastro",
    "PATCH",
    "/api/v1/agent_sessions/{session_id}",
    "updateAgentSession",
    "Replace an agent session's metadata.",
    (AGENT_SESSION, body_param("metadata", "object", "Free-form metadata, replaced whole.")),
)

ENDPOINTS: tuple[Endpoint, ...] = tuple(v for v in globals().values() if isinstance(v, Endpoint))
