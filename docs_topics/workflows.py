"""Multi-step recipes that cut across providers, and how errors read."""

from docs_topics.model import Pattern, Topic

RUN_AND_WATCH = Topic(
    topic="run-and-watch",
    title="Run code and watch it",
    description="Start work, follow it while it runs, read its output, and stop it when needed.",
    ai_hints=[
        "Short commands: execRun and read the result. Long ones: wait=false, then poll.",
        "Progress notifications arrive while execRun waits, if your client sent a progress token.",
        "Events of sandbox `local` tell you when local sessions start and end.",
    ],
    patterns=[
        Pattern(
            name="Local: long job with events",
            description="No polling loop needed if you can subscribe.",
            steps=[
                "execRun command=... wait=false timeout_s=900 → session_id",
                "subscribe to resource events://local (or call getEvents type=session.completed)",
                "on session.completed / session.failed: getSession session_id for exit_code and output",
                "stopSession session_id to end it early",
            ],
            example='execRun {"command": "make test", "wait": false, "timeout_s": 900}\n'
            'getEvents {"sandbox_id": "local", "since": 1795426000000}',
        ),
        Pattern(
            name="Xano: document run",
            description="Validate, run, follow the session.",
            steps=[
                "checkXanoDoc project_id doc",
                "execRun provider=xano project_id doc",
                "getSession provider=xano session_id until complete or error",
            ],
        ),
    ],
    related_topics=["local", "xano", "computesdk"],
)

IDEMPOTENT_ROUTINES = Topic(
    topic="idempotent-routines",
    title="Invoke a routine safely with an idempotency key",
    description=(
        "A routine invocation can fail in transit after the routine started. An idempotency key lets you "
        "retry without running it twice: the provider recognises the key and hands back the same run."
    ),
    ai_hints=[
        "Derive the key from the work (e.g. 'report-2026-11-23'), not from the attempt.",
        "local: the same key returns the same run (deduplicated=true) while it runs or after it completed; "
        "a failed run releases its key so a retry runs again.",
        "archastro: a completed run with the key answers 409, reported as a conflict error; read the run with "
        "getRoutineRun instead of retrying.",
    ],
    patterns=[
        Pattern(
            name="Retry with the same key",
            description="Safe under timeouts and crashes.",
            steps=[
                "invokeRoutine routine message idempotency_key=K",
                "on a timeout or network error: invokeRoutine again with the same K",
                "check `deduplicated` (local) or a conflict error (archastro)",
            ],
        ),
    ],
    related_topics=["local", "archastro-routines"],
)

ERRORS = Topic(
    topic="errors",
    title="Errors and what to do about them",
    description=(
        "Every failure comes back as a tool error that names the provider, the cause and what to do next.\n\n"
        "The text reads `provider: cause: message. Next: action`. Causes: invalid input (HTTP 400/422, with "
        "the provider's own field message), credentials rejected "
        "(401/403, names the variable to set), not entitled (402), not found (404, names the id), conflict "
        "(409, e.g. a duplicate idempotent invoke), rate limited (429, says when to retry), provider "
        "unavailable (5xx), timeout, protocol error (an answer that is not what the provider documents), not "
        "configured, not supported, busy (too many calls in flight: retry shortly). Argument mistakes "
        "(a missing argument, one the provider does not use) are "
        "named with the list of arguments that provider takes."
    ),
    ai_hints=[
        "Do not retry invalid input or credentials errors unchanged; fix the named argument or setting.",
        "Rate limited and unavailable errors are worth a retry after the stated wait.",
    ],
    related_topics=["overview"],
)
