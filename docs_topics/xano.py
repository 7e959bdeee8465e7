"""Xano Run API: sessions, exec and stop."""

from docs_topics.model import Pattern, Topic, from_endpoint
from providers.xano import endpoints as e

XANO = Topic(
    topic="xano",
    title="Xano Run API: run XanoScript, watch and stop sessions",
    description=(
        "The Xano Run API executes XanoScript documents. Every execution creates a session that goes "
        "pending → processing → running → complete (or error). A job runs once; a service keeps running in a "
        "tenant until stopped and can take new documents. Set `XANO_ACCESS_TOKEN`; the base URL is fixed "
        "(`XANO_RUN_BASE_URL` overrides it for testing), not your instance URL.\n\n"
        "execRun takes exactly one of: `doc` (with `project_id`, a new session), `run_id` (with `project_id`, "
        "a saved run again) or `session_id` (with `doc`, inside an existing service session)."
    ),
    ai_hints=[
        "Validate a document with checkXanoDoc (sessions toolset) before running it.",
        "stopSession needs project_id, run_id and session_id; sessions in error or complete cannot be stopped.",
        "Only service sessions accept a new document through execRun with session_id.",
        "listSessions with run_id lists one saved run's sessions; `page` pages through (from 1).",
        "Export data with getSessionSink only after the session has hibernated or been stopped.",
    ],
    endpoints=[from_endpoint(x) for x in e.ENDPOINTS],
    patterns=[
        Pattern(
            name="Execute and check",
            description="Run a document and follow its session.",
            steps=[
                "checkXanoDoc project_id doc (optional)",
                "execRun provider=xano project_id doc",
                "getSession session_id until state is complete or error",
            ],
        ),
        Pattern(
            name="Service lifecycle",
            description="Start a service, update it, stop it.",
            steps=[
                "execRun provider=xano project_id doc='service ...'",
                "execRun provider=xano session_id doc=... to deploy new code",
                "stopSession provider=xano project_id run_id session_id",
            ],
        ),
    ],
    related_topics=["overview", "run-and-watch", "errors"],
)

TOPICS = (XANO,)
