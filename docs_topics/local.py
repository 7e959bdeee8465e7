"""The local provider: what runs where, and what survives a restart."""

from docs_topics.model import Example, Pattern, Topic, from_tool, schema_of
from providers import models as m
from tools.catalog import ALL

LOCAL = Topic(
    topic="local",
    title="Local provider: processes, routines, launchers and events on this machine",
    description=(
        "The built-in runtime; needs no account and is the default provider.\n\n"
        "- **Sessions.** execRun starts `/bin/sh -c COMMAND` as its own process group, in a fresh working "
        "directory under the data directory unless `cwd` is given. Output goes to files: results hold the "
        "head and tail (16 KB per stream by default, sizes reported); the whole output stays readable at the "
        "resource `local://sessions/{session_id}/stdout` (or `/stderr`) and with getSessionOutput.\n"
        "- **States.** running, then completed (exit 0), failed, timed_out, stopped, lost (the server that "
        "ran it died first; its leftover processes are stopped at the next start) or detached (left running "
        "at shutdown because `local.keep_processes_on_exit = true`). Records live in SQLite under "
        "`RUNTIMES_MCP_DATA_DIR` and survive restarts.\n"
        "- **Ending.** timeout_s (default 60, capped by `local.max_timeout_s`) and stopSession send SIGTERM to "
        "the whole group, then SIGKILL after 2 s. When a command exits, whatever it left running in its group "
        "is ended too. When the server stops (stdin closed, SIGTERM, SIGINT, SIGHUP), every session it runs "
        "and every launcher is stopped, unless `local.keep_processes_on_exit = true`.\n"
        "- **Environment.** A child sees PATH, HOME, LANG, TMPDIR and the `env` you pass, nothing else: no "
        "credential and no RUNTIMES_MCP_* setting of the server reaches it.\n"
        "- **Routines** are named commands in the config file (`[local.routines.NAME]`). The message arrives on "
        "stdin and as $ROUTINE_MESSAGE (also $ROUTINE_METADATA as JSON, $ROUTINE_NAME, $ROUTINE_RUN_ID).\n"
        "- **Launchers** are long-lived services in the config file (`[local.launchers.NAME]`): started with the "
        "server, restarted with backoff (1 s doubling to 30 s) when they exit, stopped with the server.\n"
        "- **Events** follow the ComputeSDK shape; sandbox `local` also receives the runtime's own lifecycle "
        "events (session.started, session.completed, session.failed, session.timed_out, session.stopped, "
        "launcher.state). Resource `events://{sandbox_id}` lists recent events; subscribe to it to be told of "
        "new ones."
    ),
    ai_hints=[
        "execRun waits for the result by default; use wait=false for anything long, then poll listSessions.",
        "Cancelling a waiting execRun request stops the waiting only; the session keeps running. Use "
        "stopSession to end it.",
        "If `truncated` is true, read the full output from the resource named in `message`.",
        "exit_code below zero means the process was killed by that signal (-15 SIGTERM, -9 SIGKILL).",
        "Give invokeRoutine an idempotency_key when a retry must not run the routine twice; a failed run "
        "does not hold its key, so retrying after a failure runs again.",
    ],
    endpoints=[from_tool(spec, "local") for spec in ALL if "local" in spec.providers],
    schemas={
        "ExecResult": schema_of(m.ExecResult),
        "StopResult": schema_of(m.StopResult),
        "RoutineRun": schema_of(m.RoutineRun),
        "Launcher": schema_of(m.Launcher),
    },
    examples=[
        Example(
            title="Run a command",
            request={"tool": "execRun", "arguments": {"command": "echo hello"}},
            response={"state": "completed", "exit_code": 0, "stdout": "hello\n", "truncated": False},
        ),
        Example(
            title="Config file with a routine and a launcher",
            description="Pass with --config or RUNTIMES_MCP_CONFIG.",
            request={
                "toml": '[local.routines.greet]\ncommand = "read m; echo hi $m"\n\n'
                '[local.launchers.web]\ncommand = "python3 -m http.server 8080"'
            },
        ),
    ],
    patterns=[
        Pattern(
            name="Background job",
            description="Start, watch, stop.",
            steps=[
                "execRun command=... wait=false timeout_s=600 → session_id",
                "listSessions status=running (or getSession) to watch it",
                "stopSession session_id=... when done; it ends the whole process group",
            ],
        ),
    ],
    related_topics=["overview", "run-and-watch", "idempotent-routines", "errors"],
)
