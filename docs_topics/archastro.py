"""ArchAstro: agent routines, their runs, and agent sessions."""

from docs_topics.model import Pattern, Topic
from providers.archastro import endpoints as e

ROUTINES = Topic(
    topic="archastro-routines",
    title="ArchAstro: invoke agent routines and follow their runs",
    description=(
        "An ArchAstro routine is an agent workflow. invokeRoutine starts a run at once and returns its record "
        "(status pending, running, completed, failed or skipped); the work goes on asynchronously. The routine "
        "must be active and configured for the `agentroutine.invoked` event. Set `ARCHASTRO_API_KEY` (sent as "
        "the `x-archastro-api-key` header)."
    ),
    ai_hints=[
        "Pass idempotency_key on every invoke you might retry. If a completed run already has the key, "
        "ArchAstro answers 409 and this server reports the conflict (it is never retried blindly).",
        "402 means the plan does not include routine invocation.",
        "session_key is required when the routine's session scope is per_key; user when it is per_user.",
        "Follow a run with getRoutineRun or listRoutineRuns (routines toolset). listRoutineRuns pages older "
        "runs with cursor=next_cursor and newer ones with after_cursor=newer_cursor; status takes one value.",
        "updateRoutine changes only the fields you pass (metadata and steps are replaced whole); a schedule "
        "more frequent than hourly is refused (422). deleteRoutine cannot be undone.",
    ],
    endpoints=[
        e.ARCHASTRO_INVOKE,
        e.ARCHASTRO_GET_RUN,
        e.ARCHASTRO_LIST_RUNS,
        e.ARCHASTRO_LIST_ROUTINES,
        e.ARCHASTRO_GET_ROUTINE,
        e.ARCHASTRO_PRESETS,
        e.ARCHASTRO_ACTIVATE,
        e.ARCHASTRO_PAUSE,
        e.ARCHASTRO_UPDATE_ROUTINE,
        e.ARCHASTRO_DELETE_ROUTINE,
    ],
    patterns=[
        Pattern(
            name="Invoke safely",
            description="An invoke that may be retried without running twice.",
            steps=[
                "invokeRoutine provider=archastro routine message idempotency_key=<stable key>",
                "on a timeout, call again with the same key",
                "a conflict error means a completed run holds the key (its id is not in the answer): "
                "listRoutineRuns status=completed to find it, then getRoutineRun",
            ],
        ),
    ],
    related_topics=["archastro-sessions", "idempotent-routines", "errors"],
)

SESSIONS = Topic(
    topic="archastro-sessions",
    title="ArchAstro: agent sessions",
    description=(
        "An agent session is one agent working on a task, turn by turn: pending, running, waiting (for a "
        "message), then completed, failed or cancelled. listSessions lists them newest first; stopSession "
        "cancels one (harmless on a finished session). The sessions toolset adds createAgentSession, "
        "getSession, sendSessionMessage, updateAgentSession and deleteSession."
    ),
    ai_hints=[
        "Filter listSessions by agent, status (one or more, comma separated), routine_run (the sessions a "
        "routine run started) and exclude_system; at most 100 per page; page with the returned next_cursor.",
        "createAgentSession with start_idle=true waits for its first message (sendSessionMessage) instead of "
        "starting from the instructions alone.",
        "A waiting session resumes when it gets a message (sendSessionMessage).",
        "Only finished sessions can be deleted (422 otherwise); cancel first.",
    ],
    endpoints=[
        e.ARCHASTRO_LIST_SESSIONS,
        e.ARCHASTRO_GET_SESSION,
        e.ARCHASTRO_CANCEL_SESSION,
        e.ARCHASTRO_MESSAGE_SESSION,
        e.ARCHASTRO_DELETE_SESSION,
        e.ARCHASTRO_CREATE_SESSION,
        e.ARCHASTRO_UPDATE_SESSION,
    ],
    related_topics=["archastro-routines", "errors"],
)

TOPICS = (ROUTINES, SESSIONS)
