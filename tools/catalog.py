"""Every tool of the server, one ToolSpec each: the six headline tools, then the opt-in toolsets."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Le, MaxLen
from pydantic import StringConstraints

from providers import capabilities as c
from providers.models import MAX_EVENT_TYPE_CHARS, MAX_SESSIONS_PAGE, SANDBOX_ID_PATTERN
from tools.schema import JSON_SAFE_MAX as MAX_INT
from tools.spec import Arg, ToolSpec

# --- arguments, described once and shared by the tools that take them ---------------------------
SPRITE = Arg("sprite", str, "Sprite name.")
PROJECT_ID = Arg("project_id", str, "Xano project UUID.")
RUN_ID = Arg("run_id", str, "Run id: a Xano saved run, or a routine run.")
PAGE = Arg("page", Annotated[int, Ge(1), Le(MAX_INT)], "Page number, from 1.")
AGENT = Arg("agent", str, "Agent id filter (agi_...).")
STATUS = Arg("status", str, "State filter, e.g. running or running,failed.")
LIMIT = Arg("limit", Annotated[int, Ge(1), Le(1000)], "Page size.")
PAGE_LIMIT = Arg("limit", Annotated[int, Ge(1), Le(MAX_SESSIONS_PAGE)], "Page size, up to 500 (archastro: 100).")
RUNS_LIMIT = Arg("limit", Annotated[int, Ge(1), Le(100)], "Page size.")
CURSOR = Arg("cursor", str, "A page's next_cursor.")
INCLUDE_LAUNCHERS = Arg("include_launchers", bool, "true: launchers' runs too.")
AFTER_CURSOR = Arg("after_cursor", str, "A page's after_cursor: the page of newer runs.")
RUN_STATUS = Arg("status", Literal["pending", "running", "completed", "failed", "skipped"], "Only runs in this state.")
ROUTINE_RUNS = Arg("routine_run", list[str], "Only sessions of these routine runs (up to 100).")
EXCLUDE_SYSTEM = Arg("exclude_system", bool, "true: omit sessions the platform started.")
COMMAND = Arg("command", str, "Shell command (/bin/sh -c).")
CWD = Arg("cwd", str, "Working directory (default: a new writable one).")
WORKSPACE = Arg("workspace", str, "Run here: a named directory kept across runs.")
FILE_WORKSPACE = Arg("workspace", str, "Workspace name.")
INTERACTIVE = Arg("interactive", bool, "true: stdin open for sendInput (toolset sessions).")
PORTS = Arg("ports", list[Annotated[int, Ge(1), Le(65535)]], "Ports it serves, reachable on the host's 127.0.0.1.")
FILE_PATH = Arg("path", str, "Path in the workspace.")
DIR_PATH = Arg("path", str, "Directory in the workspace (default: its top).")
FILE_CONTENT = Arg("content", str, "The file's content.")
ENCODING = Arg("encoding", Literal["utf-8", "base64"], "utf-8 (default), or base64 for bytes.")
MODE = Arg("mode", Annotated[str, StringConstraints(pattern=r"^0?[0-7]{3}$")], 'Octal permissions, e.g. "755".')
FILE_OFFSET = Arg("offset", Annotated[int, Ge(0), Le(MAX_INT)], "Start here (a page's next_offset).")
READ_LENGTH = Arg("length", Annotated[int, Ge(1), Le(4 * 1024 * 1024)], "Bytes to read (default 65536).")
DEPTH = Arg("depth", Annotated[int, Ge(1), Le(10)], "Levels to list (default 1).")
INPUT_TEXT = Arg("text", str, "Text for its stdin; end a line with \\n.")
EOF = Arg("eof", bool, "true: then close its stdin.")
ENV = Arg("env", dict[str, Any], "Variables to add.")
STDIN = Arg("stdin", str, "Text for its stdin.")
TIMEOUT = Arg("timeout_s", Annotated[float, Ge(0.001)], "Seconds before it is ended (default 60).")
WAIT = Arg("wait", bool, "false: return at once.")
WAIT_S = Arg("wait_s", Annotated[float, Ge(0), Le(600)], "Longest wait for the end (default 30).")
FOLLOW_WAIT_S = Arg("wait_s", Annotated[float, Ge(0), Le(600)], "Wait up to this long for its end (default 0).")
NUM_CPUS = Arg("num_cpus", Annotated[float, Ge(0)], "CPUs the cluster holds for it while it runs; none if left out.")
MEMORY_MB = Arg("memory_mb", Annotated[int, Ge(1), Le(MAX_INT)], "Memory the cluster holds for it, in MiB.")
RESOURCES = Arg("resources", dict[str, float], 'Custom resources it needs, e.g. {"gpu": 1}.')
LABELS = Arg("labels", dict[str, str], "Only on a node with these labels.")
STDOUT_OFFSET = Arg("stdout_offset", Annotated[int, Ge(0), Le(MAX_INT)], "Return stdout from this byte on.")
STDERR_OFFSET = Arg("stderr_offset", Annotated[int, Ge(0), Le(MAX_INT)], "Return stderr from this byte on.")
DOC = Arg("doc", str, "XanoScript document.")
ARGS = Arg("args", dict[str, Any], "Run arguments (JSON object).")
SESSION_ID = Arg("session_id", str, "Session id.")
SIGNAL = Arg("signal", str, "Signal to send (default SIGTERM).")
KILL_TIMEOUT = Arg("timeout_s", Annotated[float, Ge(0.001)], "Seconds to wait for the exit (default 10).")
ROUTINE = Arg("routine", str, "Routine name, id or lookup_key.")
MESSAGE = Arg("message", str, "Message (local: stdin and $ROUTINE_MESSAGE).")
IDEMPOTENCY_KEY = Arg("idempotency_key", str, "The same key returns the same run.")
METADATA = Arg("metadata", dict[str, Any], "Free-form metadata.")
SESSION_KEY = Arg("session_key", str, "Session key for per_key session scope.")
THREAD_ID = Arg("thread_id", str, "Thread (thr_...) to post the output into.")
USER = Arg("user", str, "User id for per_user session scope.")
OFFSET = Arg("offset", Annotated[int, Ge(0), Le(MAX_INT)], "Items to skip.")
IDS = Arg("ids", list[str], "Only these ids.")
SEARCH_NAME = Arg("search_name", str, "Name contains this text.")
SORT = Arg("sort", str, "createdAt (default), name or id.")
SORT_DIRECTION = Arg("sort_direction", Literal["asc", "desc"], "Sort direction.")
EVENT_TYPE = Arg("type", Annotated[str, MaxLen(MAX_EVENT_TYPE_CHARS)], "Event type, e.g. build.finished.")
DATA = Arg("data", dict[str, Any], "Event payload.")
SANDBOX_ID = Arg(
    "sandbox_id", Annotated[str, StringConstraints(pattern=SANDBOX_ID_PATTERN)], "Sandbox id (default: local)."
)
SINCE = Arg("since", Annotated[int, Ge(0), Le(MAX_INT)], "Only events after this unix time in ms.")
LAUNCHER_ID = Arg("launcher_id", str, "Launcher id.")
CONTENT = Arg("content", str, "Message text.")
ROLE = Arg("role", str, "Sender role (default user).")
ACCESS = Arg("access", Literal["public", "private"], "Access level.")
EVENT_TYPE_FILTER = Arg("event_type", str, "Event type filter.")
XANO_TEMPLATE = Arg("template", str, "Machine template for a new doc run, e.g. small.")
RUN_NAME = Arg("name", str, "New run name.")
# ArchAstro routine settings (updateRoutine) and agent sessions (createAgentSession)
DISPLAY_NAME = Arg("name", str, "Display name.")
DESCRIPTION = Arg("description", str, "What it does.")
LOOKUP_KEY = Arg("lookup_key", str, "Stable key, unique in the app.")
SCHEDULE = Arg("schedule", str, "Cron expression, at most hourly (e.g. 0 9 * * 1).")
HANDLER_TYPE = Arg("handler_type", Literal["workflow_graph", "script", "preset", "chain"], "Execution model.")
SCRIPT = Arg("script", str, "Inline script (handler_type script).")
PRESET_NAME = Arg("preset_name", str, "Preset (handler_type preset).")
PRESET_CONFIG = Arg("preset_config", dict[str, Any], "Preset configuration.")
CONFIG_ID = Arg("config", str, "Workflow config id cfg_... (handler_type workflow_graph).")
STEPS = Arg("steps", list[dict[str, Any]], "Chain steps, the whole list (handler_type chain).")
ROUTINE_TEMPLATE = Arg("template", str, "Template config id or lookup key to re-resolve the routine from.")
EVENT_CONFIG = Arg("event_config", dict[str, Any], "Event type -> {filters, dedupe_key_path?}.")
TRIGGER_CONTEXT = Arg("trigger_context", Literal["chat_session", "event"], "What triggers it.")
REPLACED_METADATA = Arg("metadata", dict[str, Any], "Free-form metadata; replaces the old.")
INSTRUCTIONS = Arg("instructions", str, "The task, in plain text.")
MAX_TURNS = Arg("max_turns", Annotated[int, Ge(1), Le(MAX_INT)], "Turns before it ends (default 100).")
MAX_TOKENS = Arg("max_tokens", Annotated[int, Ge(1), Le(MAX_INT)], "Token budget (default 20000).")
MAX_RUNS_PER_TURN = Arg("max_runs_per_turn", Annotated[int, Ge(1), Le(MAX_INT)], "Tool calls per turn (default 25).")
START_IDLE = Arg("start_idle", bool, "true: wait for a first message (sendSessionMessage).")
TEAM = Arg("team", str, "Team id (tea_...).")
THREAD = Arg("thread", str, "Thread id (thr_...) to link.")
AGENT_ID = Arg("agent", str, "Agent id (agi_...).")

HEADLINE: tuple[ToolSpec, ...] = (
    ToolSpec(
        "listSessions",
        "Sessions (runs), newest first, with status and command.",
        c.LIST_SESSIONS,
        (
            SPRITE,
            PROJECT_ID,
            RUN_ID,
            PAGE,
            AGENT,
            STATUS,
            ROUTINE_RUNS,
            EXCLUDE_SYSTEM,
            PAGE_LIMIT,
            CURSOR,
            INCLUDE_LAUNCHERS,
        ),
    ),
    ToolSpec(
        "execRun",
        "Run code.",
        c.EXEC_RUN,
        (
            COMMAND,
            CWD,
            WORKSPACE,
            ENV,
            STDIN,
            INTERACTIVE,
            PORTS,
            TIMEOUT,
            WAIT,
            WAIT_S,
            PROJECT_ID,
            DOC,
            ARGS,
            RUN_ID,
            SESSION_ID,
            XANO_TEMPLATE,
            NUM_CPUS,
            MEMORY_MB,
            RESOURCES,
            LABELS,
        ),
        read_only=False,
        idempotent=False,
        progress=True,
        runs_code=True,
        task=True,
        task_start={"wait": False},
        task_follow=(c.GET_SESSION, "session_id"),
        notes={
            "local": "local: a shell command, sandboxed (writable: its own dir or a workspace, kept); waits up to "
            "wait_s, then answers with it still running.",
            "xano": "xano: a XanoScript doc, a saved run_id, or a doc inside an existing session_id.",
            "ray": "ray: a shell command on a cluster node (its workspace's, else one with what it asks for).",
        },
    ),
    ToolSpec(
        "getSession",
        "A session's state and output; wait_s waits for its end, offsets give new output only.",
        c.GET_SESSION,
        (SESSION_ID, FOLLOW_WAIT_S, STDOUT_OFFSET, STDERR_OFFSET),
        progress=True,
    ),
    ToolSpec(
        "stopSession",
        "Stop a session; stopping a finished one is harmless.",
        c.STOP_SESSION,
        (SESSION_ID, PROJECT_ID, RUN_ID, SPRITE, SIGNAL, KILL_TIMEOUT),
        read_only=False,
        destructive=True,
    ),
    ToolSpec(
        "invokeRoutine",
        "Run a named routine with a message; idempotency_key makes retries safe.",
        c.INVOKE_ROUTINE,
        (ROUTINE, MESSAGE, IDEMPOTENCY_KEY, METADATA, SESSION_KEY, THREAD_ID, USER, WAIT_S, WORKSPACE),
        read_only=False,
        idempotent=False,
        progress=True,
        runs_code=True,
        task=True,
        task_start={"wait_s": 0},
        task_follow=(c.GET_ROUTINE_RUN, "run_id"),
    ),
    ToolSpec(
        "getLaunchers",
        "Long-lived services (launchers): state and what runs under each.",
        c.GET_LAUNCHERS,
        (OFFSET, LIMIT, IDS, SEARCH_NAME, SORT, SORT_DIRECTION),
    ),
    ToolSpec(
        "storeEvent",
        "Record an event {type, data} for a sandbox.",
        c.STORE_EVENT,
        (EVENT_TYPE, DATA, SANDBOX_ID),
        read_only=False,
        idempotent=False,
    ),
    ToolSpec(
        "getEvents",
        "Stored events of a sandbox, oldest first; filter by type and time.",
        c.GET_EVENTS,
        (SANDBOX_ID, EVENT_TYPE, SINCE, LIMIT),
    ),
)

FILES: tuple[ToolSpec, ...] = (
    ToolSpec(
        "writeFile",
        "Write a whole file into a workspace (made on first use).",
        c.WRITE_FILE,
        (FILE_WORKSPACE, FILE_PATH, FILE_CONTENT, ENCODING, MODE),
        read_only=False,
        destructive=True,
    ),
    ToolSpec(
        "readFile",
        "Read a file in a workspace by pages, with its size and sha256.",
        c.READ_FILE,
        (FILE_WORKSPACE, FILE_PATH, FILE_OFFSET, READ_LENGTH),
    ),
)

TOOLSETS: tuple[ToolSpec, ...] = (
    # sessions
    ToolSpec(
        "setSessionAccess",
        "Make a Xano session public or private.",
        c.SET_SESSION_ACCESS,
        (SESSION_ID, ACCESS),
        toolset="sessions",
        read_only=False,
    ),
    ToolSpec(
        "updateSessionRun",
        "Rename the run behind a Xano session.",
        c.UPDATE_SESSION_RUN,
        (SESSION_ID, RUN_NAME),
        toolset="sessions",
        read_only=False,
    ),
    ToolSpec(
        "listRuns",
        "A Xano project's run history: the run_id execRun re-executes and stopSession needs.",
        c.LIST_RUNS,
        (PROJECT_ID, PAGE),
        toolset="sessions",
    ),
    ToolSpec(
        "createAgentSession",
        "Start an ArchAstro agent session on a task.",
        c.CREATE_AGENT_SESSION,
        (
            AGENT_ID,
            INSTRUCTIONS,
            DISPLAY_NAME,
            METADATA,
            MAX_TURNS,
            MAX_TOKENS,
            MAX_RUNS_PER_TURN,
            START_IDLE,
            TEAM,
            THREAD,
            USER,
        ),
        toolset="sessions",
        read_only=False,
        idempotent=False,
        runs_code=True,
    ),
    ToolSpec(
        "updateAgentSession",
        "Replace an ArchAstro agent session's metadata.",
        c.UPDATE_AGENT_SESSION,
        (SESSION_ID, REPLACED_METADATA),
        toolset="sessions",
        read_only=False,
    ),
    ToolSpec(
        "getSessionSink",
        "Export all data of a hibernated Xano session.",
        c.GET_SESSION_SINK,
        (SESSION_ID,),
        toolset="sessions",
    ),
    ToolSpec(
        "checkXanoDoc",
        "Validate a XanoScript document before running it.",
        c.CHECK_XANO_DOC,
        (PROJECT_ID, DOC),
        toolset="sessions",
    ),
    ToolSpec(
        "sendSessionMessage",
        "Add a message to an ArchAstro agent session's inbox; a waiting session resumes.",
        c.SEND_SESSION_MESSAGE,
        (SESSION_ID, CONTENT, METADATA, ROLE),
        toolset="sessions",
        read_only=False,
        idempotent=False,
    ),
    ToolSpec(
        "deleteSession",
        "Delete a finished ArchAstro agent session for good.",
        c.DELETE_SESSION,
        (SESSION_ID,),
        toolset="sessions",
        read_only=False,
        destructive=True,
    ),
    ToolSpec(
        "sendInput",
        "Write to a running interactive session's stdin (execRun interactive=true).",
        c.SEND_INPUT,
        (SESSION_ID, INPUT_TEXT, EOF),
        toolset="sessions",
        read_only=False,
        idempotent=False,
    ),
    # workspaces
    ToolSpec(
        "listFiles",
        "A workspace's files: type, size, mtime.",
        c.LIST_FILES,
        (FILE_WORKSPACE, DIR_PATH, DEPTH),
        toolset="workspaces",
    ),
    ToolSpec(
        "listWorkspaces",
        "Workspaces with their size and last use.",
        c.LIST_WORKSPACES,
        (),
        toolset="workspaces",
    ),
    ToolSpec(
        "deleteWorkspace",
        "Delete a workspace and all its files (refused while a session runs in it).",
        c.DELETE_WORKSPACE,
        (FILE_WORKSPACE,),
        toolset="workspaces",
        read_only=False,
        destructive=True,
    ),
    # routines
    ToolSpec(
        "listRoutines",
        "List the routines that invokeRoutine can run.",
        c.LIST_ROUTINES,
        (AGENT, EVENT_TYPE_FILTER),
        toolset="routines",
    ),
    ToolSpec(
        "getRoutine",
        "One ArchAstro routine's configuration and status.",
        c.GET_ROUTINE,
        (ROUTINE,),
        toolset="routines",
    ),
    ToolSpec(
        "listRoutinePresets",
        "Routine presets available to the ArchAstro app.",
        c.LIST_ROUTINE_PRESETS,
        (),
        toolset="routines",
    ),
    ToolSpec(
        "activateRoutine",
        "Set an ArchAstro routine active.",
        c.ACTIVATE_ROUTINE,
        (ROUTINE,),
        toolset="routines",
        read_only=False,
    ),
    ToolSpec(
        "pauseRoutine",
        "Pause an ArchAstro routine without deleting it.",
        c.PAUSE_ROUTINE,
        (ROUTINE,),
        toolset="routines",
        read_only=False,
    ),
    ToolSpec(
        "updateRoutine",
        "Change an ArchAstro routine's settings; what you leave out stays.",
        c.UPDATE_ROUTINE,
        (
            ROUTINE,
            DISPLAY_NAME,
            DESCRIPTION,
            LOOKUP_KEY,
            SCHEDULE,
            HANDLER_TYPE,
            SCRIPT,
            PRESET_NAME,
            PRESET_CONFIG,
            CONFIG_ID,
            STEPS,
            ROUTINE_TEMPLATE,
            EVENT_CONFIG,
            TRIGGER_CONTEXT,
            REPLACED_METADATA,
        ),
        toolset="routines",
        read_only=False,
    ),
    ToolSpec(
        "deleteRoutine",
        "Delete an ArchAstro routine for good.",
        c.DELETE_ROUTINE,
        (ROUTINE,),
        toolset="routines",
        read_only=False,
        destructive=True,
    ),
    ToolSpec(
        "getRoutineRun",
        "One routine run: status, output, session.",
        c.GET_ROUTINE_RUN,
        (RUN_ID,),
        toolset="routines",
    ),
    ToolSpec(
        "listRoutineRuns",
        "Runs of an ArchAstro routine, newest first.",
        c.LIST_ROUTINE_RUNS,
        (ROUTINE, RUN_STATUS, RUNS_LIMIT, CURSOR, AFTER_CURSOR),
        toolset="routines",
    ),
    # launchers
    ToolSpec(
        "getLauncher",
        "One launcher in full: state, previous exit, running items.",
        c.GET_LAUNCHER,
        (LAUNCHER_ID,),
        toolset="launchers",
    ),
)

ALL: tuple[ToolSpec, ...] = HEADLINE + FILES + TOOLSETS
