"""The built-in local provider: real processes, SQLite state, routines, launchers and events."""

from providers import capabilities as c
from providers.provider import Provider, Resource, Serves

PROVIDER = Provider(
    name="local",
    title="Local runtime",
    summary="Real processes, routines, launchers and events on this machine; no account needed.",
    client="providers.local.runtime:LocalRuntime",
    capabilities={
        c.LIST_SESSIONS: Serves(("status?", "limit?", "cursor?", "include_launchers?")),
        c.EXEC_RUN: Serves(
            (
                "command",
                "cwd?",
                "workspace?",
                "env?",
                "stdin?",
                "interactive?",
                "ports?",
                "timeout_s?",
                "wait?",
                "wait_s?",
            )
        ),
        c.GET_SESSION: Serves(("session_id", "wait_s?", "stdout_offset?", "stderr_offset?")),
        c.STOP_SESSION: Serves(("session_id",)),
        c.INVOKE_ROUTINE: Serves(("routine", "message", "metadata?", "idempotency_key?", "wait_s?", "workspace?")),
        c.GET_LAUNCHERS: Serves(("offset?", "limit?", "ids?", "search_name?", "sort?", "sort_direction?")),
        c.STORE_EVENT: Serves(("type", "data", "sandbox_id?")),
        c.LIST_ROUTINES: Serves(()),
        c.GET_ROUTINE_RUN: Serves(("run_id",)),
        c.GET_LAUNCHER: Serves(("launcher_id",)),
        c.GET_EVENTS: Serves(("sandbox_id?", "type?", "since?", "limit?")),
        c.SEND_INPUT: Serves(("session_id", "text?", "eof?")),
        c.WRITE_FILE: Serves(("workspace", "path", "content", "encoding?", "mode?")),
        c.READ_FILE: Serves(("workspace", "path", "offset?", "length?")),
        c.LIST_FILES: Serves(("workspace", "path?", "depth?")),
        c.LIST_WORKSPACES: Serves(()),
        c.DELETE_WORKSPACE: Serves(("workspace",)),
    },
    section="providers.local.config:LocalConfig",
    section_env={"RUNTIMES_MCP_ON_EXIT": ("on_exit",), "RUNTIMES_MCP_SANDBOX": ("sandbox", "mode")},
    opens="providers.local.service:open_runtime",
    runs_commands=True,
    owners=True,
    resources=(
        Resource(
            "events://{sandbox_id}",
            "events",
            "Events of a local sandbox",
            "The newest 100 events of a sandbox (local provider); subscribe for updates.",
            "application/json",
            "providers.local.service:read_events",
        ),
        Resource(
            "local://sessions/{session_id}/{stream}",
            "session-output",
            "Full output of a local session",
            "stdout or stderr of a local session, in full (up to 8 MiB).",
            "text/plain",
            "providers.local.service:read_output",
        ),
        Resource(
            "workspace://{name}/{+path}",  # workspaces.uri_of makes them
            "workspace-file",
            "A file in a local workspace",
            "A workspace file whole (up to 4 MiB): text, or a blob when not UTF-8.",
            "application/octet-stream",
            "providers.local.service:read_workspace_file",
        ),
    ),
)
