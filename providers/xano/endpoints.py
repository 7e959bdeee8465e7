"""Xano Run API: every endpoint the client calls, described once (client, docs topic, tests)."""

from __future__ import annotations

from providers.endpoints import Endpoint, body_param, path_param, query_param

PROJECT = path_param("project_id", "Project UUID.", "uuid")
RUN = path_param("run_id", "Saved run UUID.", "uuid")
SESSION = path_param("session_id", "Session UUID.", "uuid")
PAGE = query_param("page", "integer", "Page number, from 1.", 1)
XANO_DOC = body_param("doc", "text", "XanoScript document to execute.", required=True)
XANO_ARGS = body_param("args", "json", "Arguments for the run.", default={})
XANO_ENV = body_param("env", "json", "Environment overrides.", default={})

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
    (PROJECT, XANO_DOC, XANO_ARGS, XANO_ENV, body_param("template", "text", "Machine template, e.g. small.")),
    example={"doc": 'job hello {\n  response = "hi"\n}', "args": {}, "template": "small"},
)
XANO_RUNS = Endpoint(
    "xano",
    "GET",
    "/project/{project_id}/run",
    "listRuns",
    "Run history of a project: the saved runs, whose run_id execRun re-executes and stopSession needs.",
    (PROJECT, PAGE),
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
    (SESSION, body_param("access", "enum", "public or private.", required=True)),
    example={"access": "public"},
)
XANO_RENAME = Endpoint(
    "xano",
    "PATCH",
    "/session/{session_id}",
    "updateSessionRun",
    "Rename the run behind a session.",
    (SESSION, body_param("name", "text", "New run name.", required=True)),
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

ENDPOINTS: tuple[Endpoint, ...] = tuple(v for v in globals().values() if isinstance(v, Endpoint))
