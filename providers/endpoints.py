"""Every remote endpoint we call, described once: the clients, the docs topics and the tests read this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Location = Literal["path", "query", "body", "header", "frame"]


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    description: str
    required: bool = False
    location: Location = "path"
    default: Any = None


@dataclass(frozen=True)
class Endpoint:
    provider: str
    method: str
    path: str
    tool_name: str
    description: str
    params: tuple[Param, ...] = ()
    example: dict[str, Any] | None = field(default=None, compare=False)
    read_only: bool | None = None  # None: a GET is a read; set True for a POST that only reads

    @property
    def retry_safe(self) -> bool:
        """Safe to send again after a failure: it changes nothing."""
        return self.read_only if self.read_only is not None else self.method == "GET"

    def url_path(self, **path_params: str) -> str:
        """The path with its `{placeholders}` filled; values are percent-encoded by the caller's client."""
        from urllib.parse import quote

        return self.path.format(**{k: quote(str(v), safe="") for k, v in path_params.items()})

    @property
    def body_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.location == "body")


def _path(name: str, description: str, type_: str = "string") -> Param:
    return Param(name, type_, description, required=True, location="path")


def _query(name: str, type_: str, description: str, default: Any = None) -> Param:
    return Param(name, type_, description, location="query", default=default)


def _body(name: str, type_: str, description: str, required: bool = False, default: Any = None) -> Param:
    return Param(name, type_, description, required=required, location="body", default=default)


# --- Sprites -------------------------------------------------------------------------------------
SPRITE = _path("name", "Sprite name.")
SPRITES_LIST_EXEC = Endpoint(
    "sprites",
    "GET",
    "/v1/sprites/{name}/exec",
    "listSessions",
    "Exec sessions of a sprite, active and finished.",
    (SPRITE,),
    example={
        "sessions": [{"id": 7, "command": "python server.py", "created": "2026-01-15T10:30:00Z", "is_active": True}]
    },
)
SPRITES_KILL_EXEC = Endpoint(
    "sprites",
    "POST",
    "/v1/sprites/{name}/exec/{id}/kill",
    "stopSession",
    "Signal an exec session; the answer is an NDJSON stream ending in a `complete` event. "
    "410 means it had already exited.",
    (
        SPRITE,
        _path("id", "Exec session id.", "integer"),
        # The official Python SDK sends these as a JSON body; we send one only when a signal is chosen,
        # so the provider's own defaults apply otherwise.
        _body("signal", "string", "Signal to send.", default="SIGTERM"),
        _body("timeout", "integer", "Seconds to wait before a forced kill.", default=10),
    ),
)

# --- Xano Run API --------------------------------------------------------------------------------
PROJECT = _path("project_id", "Project UUID.", "uuid")
RUN = _path("run_id", "Saved run UUID.", "uuid")
SESSION = _path("session_id", "Session UUID.", "uuid")
PAGE = _query("page", "integer", "Page number, from 1.", 1)
XANO_DOC = _body("doc", "text", "XanoScript document to execute.", required=True)
XANO_ARGS = _body("args", "json", "Arguments for the run.", default={})
XANO_ENV = _body("env", "json", "Environment overrides.", default={})

XANO_PROJECT_SESSIONS = Endpoint(
    "xano",
    "GET",
    "/project/{project_id}/run/session",
    "listSessions",
    "Sessions of a project, paged.",
    (PROJECT, PAGE),
)
XANO_RUN_SESSIONS = Endpoint(
    "xano",
    "GET",
    "/project/{project_id}/run/{run_id}/session",
    "listSessions",
    "Sessions of one saved run (listSessions with run_id).",
    (PROJECT, RUN, PAGE),
)
XANO_GET_SESSION = Endpoint(
    "xano",
    "GET",
    "/session/{session_id}",
    "getSession",
    "One session: state, response, logs and timings.",
    (SESSION,),
)
XANO_EXEC_DOC = Endpoint(
    "xano",
    "POST",
    "/project/{project_id}/run/exec",
    "execRun",
    "Run a XanoScript document in a new session.",
    (PROJECT, XANO_DOC, XANO_ARGS, XANO_ENV),
    example={"doc": 'job hello {\n  response = "hi"\n}', "args": {}},
)
XANO_EXEC_RUN = Endpoint(
    "xano",
    "POST",
    "/project/{project_id}/run/{run_id}/exec",
    "execRun",
    "Run a saved run again (execRun with run_id), optionally with new args.",
    (PROJECT, RUN, XANO_ARGS, XANO_ENV),
)
XANO_EXEC_SESSION = Endpoint(
    "xano",
    "POST",
    "/session/{session_id}/exec",
    "execRun",
    "Run a new document inside an existing service session (execRun with session_id).",
    (SESSION, XANO_DOC, XANO_ARGS, XANO_ENV),
)
XANO_STOP = Endpoint(
    "xano",
    "POST",
    "/project/{project_id}/run/{run_id}/session/{session_id}/stop",
    "stopSession",
    "Stop and tear down a session (a backup is made first). Sessions in error or complete cannot be stopped.",
    (PROJECT, RUN, SESSION),
)
XANO_SET_ACCESS = Endpoint(
    "xano",
    "POST",
    "/session/{session_id}/access",
    "setSessionAccess",
    "Make a session public or private.",
    (SESSION, _body("access", "enum", "public or private.", required=True)),
    example={"access": "public"},
)
XANO_RENAME = Endpoint(
    "xano",
    "PATCH",
    "/session/{session_id}",
    "renameSession",
    "Rename the run behind a session.",
    (SESSION, _body("name", "text", "New run name.", required=True)),
)
XANO_SINK = Endpoint(
    "xano",
    "GET",
    "/session/{session_id}/sink",
    "getSessionSink",
    "Export all data of a hibernated session.",
    (SESSION,),
)
XANO_DOC_INFO = Endpoint(
    "xano",
    "POST",
    "/project/{project_id}/doc/info",
    "checkXanoDoc",
    "Validate a XanoScript document before running it.",
    (PROJECT, XANO_DOC),
)

# --- ArchAstro -----------------------------------------------------------------------------------
ROUTINE = _path("routine", "Routine id (arn_...) or lookup_key.")
AGENT_SESSION = _path("agent_session", "Agent session id (ase_...).")
ARCHASTRO_INVOKE = Endpoint(
    "archastro",
    "POST",
    "/api/v1/agent_routines/{routine}/invoke",
    "invokeRoutine",
    "Start an on-demand run of an active routine whose event type is agentroutine.invoked. "
    "409: a completed run already has this idempotency_key. 402: plan not entitled.",
    (
        ROUTINE,
        _body("message", "string", "Message for the agent.", required=True),
        _body("idempotency_key", "string", "Makes retries safe."),
        _body("metadata", "object", "Free-form metadata."),
        _body("session_key", "string", "Session key when the routine's session_scope is per_key."),
        _body("thread_id", "string", "Thread (thr_...) to post the output into."),
        _body("user", "string", "User for per_user session scope."),
    ),
    example={"message": "Summarise today's tickets", "idempotency_key": "daily-2026-11-23"},
)
ARCHASTRO_GET_RUN = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_routines/runs/{run}",
    "getRoutineRun",
    "One routine run: status, payload, result, duration.",
    (_path("run", "Routine run id (arr_...)."),),
)
ARCHASTRO_LIST_RUNS = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_routines/{routine}/runs",
    "listRoutineRuns",
    "Runs of a routine, newest first, cursor paged.",
    (
        ROUTINE,
        _query("status", "enum", "pending, running, completed, failed or skipped."),
        _query("limit", "integer", "Page size, at most 100.", 50),
        _query("before_cursor", "string", "Older page cursor."),
        _query("after_cursor", "string", "Newer page cursor."),
    ),
)
ARCHASTRO_LIST_ROUTINES = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_routines",
    "listRoutines",
    "Routines of the app, unpaged.",
    (_query("agent", "string", "Agent id filter."), _query("event_type", "string", "Event type filter.")),
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
        _query("agent", "string", "Agent id filter (agi_...)."),
        _query("status", "enum", "pending, running, waiting, completed, failed or cancelled."),
        _query("limit", "integer", "Page size, at most 100.", 25),
        _query("before_cursor", "string", "Cursor from the previous page."),
    ),
)
ARCHASTRO_GET_SESSION = Endpoint(
    "archastro",
    "GET",
    "/api/v1/agent_sessions/{agent_session}",
    "getSession",
    "One agent session.",
    (AGENT_SESSION,),
)
ARCHASTRO_CANCEL_SESSION = Endpoint(
    "archastro",
    "POST",
    "/api/v1/agent_sessions/{agent_session}/cancel",
    "stopSession",
    "Cancel an agent session; calling it on a finished session is harmless.",
    (AGENT_SESSION,),
)
ARCHASTRO_MESSAGE_SESSION = Endpoint(
    "archastro",
    "POST",
    "/api/v1/agent_sessions/{agent_session}/message",
    "sendSessionMessage",
    "Append a message to a session's inbox; a waiting session resumes.",
    (
        AGENT_SESSION,
        _body("content", "string", "Message text.", required=True),
        _body("metadata", "object", "Free-form metadata."),
        _body("role", "string", "Sender role.", default="user"),
    ),
)
ARCHASTRO_DELETE_SESSION = Endpoint(
    "archastro",
    "DELETE",
    "/api/v1/agent_sessions/{agent_session}",
    "deleteSession",
    "Delete a finished agent session for good (422 while it is active).",
    (AGENT_SESSION,),
)

# --- Decthings -----------------------------------------------------------------------------------
DECTHINGS_GET_LAUNCHERS = Endpoint(
    "decthings",
    "POST",
    "/PersistentLauncher/getPersistentLaunchers",
    "getLaunchers",
    "Persistent launchers, paged and filtered. Binary-framed RPC; errors come inside HTTP 200.",
    (
        Param("offset", "integer", "Items to skip.", location="frame", default=0),
        Param("limit", "integer", "Items to return.", location="frame", default=20),
        Param("filter.ids", "string[]", "Only these launcher ids.", location="frame"),
        Param("filter.searchName", "string", "Name search.", location="frame"),
        Param("sort", "string", "Field to sort by.", location="frame", default="createdAt"),
        Param("sortDirection", "enum", "asc or desc.", location="frame"),
    ),
    read_only=True,
)

# --- ComputeSDK events ---------------------------------------------------------------------------
COMPUTESDK_STORE_EVENT = Endpoint(
    "computesdk",
    "POST",
    "/events",
    "storeEvent",
    "Store an event for the sandbox named by the access token.",
    (
        _body("type", "string", "Event type, e.g. execution.completed.", required=True),
        _body("data", "object", "Event payload.", required=True),
    ),
    example={"type": "execution.completed", "data": {"exitCode": 0}},
)
COMPUTESDK_GET_EVENTS = Endpoint(
    "computesdk",
    "GET",
    "/events/{sandbox_id}",
    "getEvents",
    "Stored events of a sandbox (needs the API key).",
    (
        _path("sandbox_id", "Sandbox id."),
        _query("type", "string", "Event type filter."),
        _query("since", "integer", "Only events after this unix time in ms."),
        _query("limit", "integer", "1 to 1000.", 100),
    ),
)

ALL: tuple[Endpoint, ...] = tuple(v for v in globals().values() if isinstance(v, Endpoint))


def for_provider(provider: str) -> tuple[Endpoint, ...]:
    return tuple(e for e in ALL if e.provider == provider)
