"""Xano Run API: sessions, exec and stop."""

from docs_topics.model import Example, Pattern, Topic
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
        "listRuns (sessions toolset) gives the run ids that execRun with run_id and stopSession take.",
    ],
    endpoints=list(e.ENDPOINTS),
    schemas={
        "Session": {
            "type": "object",
            "properties": {
                "id": {"type": "uuid", "description": "The session; execRun answers it as session_id."},
                "run_id": {"type": "uuid", "description": "The saved run it belongs to (stopSession needs it)."},
                "state": {"type": "enum", "enum": ["pending", "processing", "running", "error", "complete"]},
                "access": {"type": "enum", "enum": ["private", "public"], "description": "setSessionAccess."},
                "doc": {"type": "text", "description": "The XanoScript it ran."},
                "version": {"type": "integer", "description": "Version of that document."},
                "response": {"type": "json", "description": "What the script answered (execRun: response)."},
                "error_msg": {"type": "text", "description": "Why it failed (execRun: message)."},
                "logs": {"type": "json[]", "description": "The run's log entries, for debugging."},
                "label": {"type": "text", "description": "The run's name (updateSessionRun)."},
                "hibernate_at": {"type": "timestamp", "description": "When a service goes to sleep."},
                "boot_time": {"type": "decimal", "description": "Seconds to set up the environment."},
                "main_time": {"type": "decimal", "description": "Seconds of the script itself."},
                "total_time": {"type": "decimal", "description": "Seconds end to end."},
                "created_at": {"type": "timestamp"},
            },
        },
        "ExecRequest": {
            "type": "object",
            "properties": {
                "doc": {"type": "text", "required": True, "description": "A job (runs once) or a service."},
                "args": {"type": "json", "description": "Arguments the script reads."},
                "env": {"type": "json", "description": "Environment overrides."},
                "template": {"type": "text", "description": "Machine template, e.g. small (new doc only)."},
            },
        },
        "SessionPage": {
            "type": "object",
            "properties": {
                "items": {"type": "Session[]"},
                "curPage": {"type": "integer"},
                "nextPage": {"type": "integer|null", "description": "listSessions answers it as next_cursor."},
                "itemsReceived": {"type": "integer"},
            },
        },
    },
    examples=[
        Example(
            title="Run a job",
            description="execRun provider=xano project_id=abc123 doc=... template=small",
            request={
                "method": "POST",
                "path": "/project/abc123/run/exec",
                "body": {"doc": 'job hello {\n  response = "Hello"\n}', "args": {}, "template": "small"},
            },
            response={"session_id": "5b0c…", "state": "complete", "response": "Hello"},
        ),
        Example(
            title="Read a failed session",
            description="getSession provider=xano session_id=5b0c…",
            request={"method": "GET", "path": "/session/5b0c…"},
            response={"id": "5b0c…", "state": "error", "error_msg": "unknown table items", "logs": ["…"]},
        ),
        Example(
            title="Find run ids",
            description="listRuns project_id=abc123 (sessions toolset)",
            request={"method": "GET", "path": "/project/abc123/run", "query": {"page": 1}},
            response={"items": [{"id": "9e1f…", "name": "nightly import"}], "nextPage": None},
        ),
    ],
    patterns=[
        Pattern(
            name="Execute a new script",
            description="Check a document, run it, follow its session to the end.",
            steps=[
                "checkXanoDoc project_id doc (sessions toolset): fix what it reports first",
                "execRun provider=xano project_id doc (template=small to choose the machine)",
                "getSession provider=xano session_id until state is complete or error",
            ],
        ),
        Pattern(
            name="Run a service",
            description="Start a long-running service, change its code, stop it.",
            steps=[
                "execRun provider=xano project_id doc='service ...'",
                "getSession session_id: running means it serves; setSessionAccess access=public to share it",
                "execRun provider=xano session_id doc=... deploys new code into the same session",
                "stopSession provider=xano project_id run_id session_id when done (run_id: listRuns or getSession)",
            ],
        ),
        Pattern(
            name="Export a session's data",
            description="Take everything a session stored once it sleeps.",
            steps=[
                "wait until the session hibernated (hibernate_at passed) or stop it with stopSession",
                "getSessionSink session_id (sessions toolset) returns its tables and records",
            ],
        ),
        Pattern(
            name="Re-execute with other arguments",
            description="Run a saved script again without sending the document.",
            steps=[
                "listRuns project_id (sessions toolset) and pick the run_id",
                "execRun provider=xano project_id run_id args={...} (env={...} to override settings)",
                "getSession on the new session_id",
            ],
        ),
        Pattern(
            name="Monitor sessions",
            description="See what runs in a project and act on it.",
            steps=[
                "listSessions provider=xano project_id (page=next_cursor for more; run_id for one saved run)",
                "getSession session_id for the one that matters",
                "stop it, re-execute it or export it (the patterns above)",
            ],
        ),
        Pattern(
            name="Debug a failed run",
            description="Find out why a session ended in error.",
            steps=[
                "getSession provider=xano session_id: message holds error_msg, raw.logs the log entries",
                "checkXanoDoc project_id doc with the corrected document",
                "execRun again (a new doc, or run_id with new args)",
            ],
        ),
    ],
    related_topics=["overview", "run-and-watch", "errors"],
)

TOPICS = (XANO,)
