"""The local provider: what runs where, and what survives a restart."""

from docs_topics.model import Example, Pattern, Topic, from_tool, schema_of
from providers import models as m
from tools.catalog import ALL

LOCAL = Topic(
    topic="local",
    title="Local provider: processes, routines, launchers and events on this machine",
    description=(
        "The built-in runtime; needs no account and is the default provider.\n\n"
        "- **Sessions belong to the data directory**, not to the server that started them. Each run has its own "
        "supervisor process, which starts `/bin/sh -c COMMAND` in its own process group (in a fresh working "
        "directory under the data directory unless `cwd` is given), enforces `timeout_s` and the output cap, and "
        "records how the run ended. A run keeps going when its server exits or crashes (unless "
        '`local.on_exit = "stop"`), and every server on the same data directory (stdio, HTTP, `runtimes-mcp '
        "call`, several at once) lists it, reads its output and stops it.\n"
        "- **Output** goes to files: results hold the head and tail (16 KB per stream by default, sizes reported); "
        "the whole output stays readable at `local://sessions/{session_id}/stdout` (or `/stderr`) and through "
        "getSession's stdout_offset. A stream that passes `local.max_output_mb` (64) fails the run (ended if it "
        "still runs); the kept output says where it was cut.\n"
        "- **States**: running (its process is alive), then completed (exit 0), failed (a non-zero exit, or the "
        'output cap), timed_out, stopped (stopSession from any server, or `on_exit = "stop"`) or lost (its '
        "supervisor was killed; what it left running is ended). Each record says why it ended: `end_reason` is "
        "exit, timeout, stop, server_shutdown, output_limit, a limit (below) or lost.\n"
        "- **Ending.** timeout_s (default 60, capped by `local.max_timeout_s`) and stopSession send SIGTERM to "
        "everything the run started, then SIGKILL after 2 s. When a command exits, what it left running (even "
        "after setsid or a double fork) is ended too.\n"
        "- **Sandbox** (bubblewrap; `local.sandbox.mode` auto by default, see 'This server' below). A command "
        "sees the host filesystem read-only; its own working directory (or workspace) writable; private /tmp, "
        "/dev/shm, /run and home directory (each `local.limits.tmp_mb`, 512 MiB, gone after the run), in which "
        "only the toolchains (pyenv, nvm, cargo, rustup, go, .local/bin, sdkman, bun...) and the operator's "
        "`local.sandbox.readable_paths` are shown; nothing of the data directory or of credential locations. "
        "Its network (`local.sandbox.network`, see 'This server'): none (loopback only), allowlist (HTTP and "
        "HTTPS through a proxy outside it, to the `allow` hosts only; refusals are in stderr and the result's "
        "`network_denied`; operator secrets are added on the way out, to HTTPS only, so the sandbox holds only "
        "a placeholder), or host. `execRun ports=[8080]` (up to 16; a launcher's `ports` too) makes a service "
        "inside reachable on the host's 127.0.0.1 (the result's `ports` says where: another port for one below "
        "1024, the server's own or one the proxy connects to). It has its own PID namespace: it sees and "
        "signals no other process, and everything it starts ends with the session. It writes only to its "
        "directory, its private directories and the operator's `writable_paths`. A `cwd` must be a directory "
        "the sandbox shows as it is on the host (not in /tmp, /run or the home): use a workspace to keep files. "
        "A blocked write says Read-only file system; a blocked name lookup, Could not resolve host.\n"
        "- **Limits** (`local.limits`): memory_mb (4096), cpu_s (3600; none for launchers), processes (512), "
        "file_size_mb (4096), open_files (4096), disk_mb (1024: what a run's own directory may take, at most "
        "`local.max_data_mb`), files (200,000 in that directory). A run that hits one is failed, and "
        "`end_reason` says which (memory_limit, cpu_limit, process_limit, file_size_limit, disk_limit). The "
        "directory is measured while the run runs (every 0.1 s after a change, at most 2 s apart): a run that "
        "writes fast passes the cap by what it writes in between.\n"
        "- **Environment.** A child sees PATH, HOME, LANG, TMPDIR and the `env` you pass, nothing else: no "
        "credential and no RUNTIMES_MCP_* setting of the server reaches it.\n"
        "- **Routines** are named commands in the config file (`[local.routines.NAME]`). The message arrives on "
        "stdin and as $ROUTINE_MESSAGE (also $ROUTINE_METADATA as JSON, $ROUTINE_NAME, $ROUTINE_RUN_ID). An "
        "idempotency_key maps to exactly one run that has not failed, across concurrent calls and servers.\n"
        "- **Launchers** are long-lived services in the config file (`[local.launchers.NAME]`), shared by every "
        "server on the data directory: a serving server (stdio or HTTP, not `runtimes-mcp call`) starts one that "
        "is not running yet, restarts it with backoff (1 s doubling to 30 s) when it exits, and its run lives "
        "while any serving server is on the data directory; the last one to go ends it. A launcher never runs "
        "twice on one data directory. getLaunchers lists every configured one with its state; listSessions "
        "leaves their runs out unless include_launchers=true.\n"
        "- **Retention.** Finished sessions and events older than `local.retention_days` (7) are deleted, and the "
        "oldest go first when the data directory passes `local.max_data_mb` (1024). Running sessions are never "
        "deleted.\n"
        "- **Events** follow the ComputeSDK shape; sandbox `local` also receives the runtime's own lifecycle "
        "events (session.started, session.completed, session.failed, session.timed_out, session.stopped, "
        "session.lost, launcher.state). Resource `events://{sandbox_id}` lists recent events; subscribe to it to "
        "be told of new ones."
    ),
    ai_hints=[
        "execRun waits for the result up to wait_s (30 s); a longer run comes back running with its session_id. "
        "Follow it with getSession wait_s and stdout_offset, and stop it with stopSession.",
        "A background run survives the server (a client that starts a server per call loses nothing): list it "
        "again later with listSessions status=running.",
        "Cancelling a waiting execRun request stops the waiting only; the session keeps running. Use "
        "stopSession to end it.",
        "If `truncated` is true, read the full output from the resource named in `message`.",
        "exit_code below zero means the process was killed by that signal (-15 SIGTERM, -9 SIGKILL).",
        "Give invokeRoutine an idempotency_key when a retry must not run the routine twice; a failed run "
        "does not hold its key, so retrying after a failure runs it again (once, however many retry at once). "
        "Reusing a key with a different message is refused.",
        "Behind several replicas sharing PostgreSQL (RUNTIMES_MCP_STATE_URL), events, routine keys and session "
        "records are shared; a session runs on the machine that started it, and another replica answers with its "
        "state and says where it runs (its output and stopSession are there).",
    ],
    endpoints=[from_tool(spec, "local") for spec in ALL if "local" in spec.providers],
    schemas={
        "ExecResult": schema_of(m.ExecResult),
        "StopResult": schema_of(m.StopResult),
        "RoutineRun": schema_of(m.RoutineRun),
        "Launcher": schema_of(m.Launcher),
        "RunningItem": schema_of(m.RunningItem),
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
                "getSession session_id wait_s=25 stdout_offset=N to follow it; it keeps running if the server restarts",
                "stopSession session_id=... when done; it ends everything the run started",
            ],
        ),
    ],
    related_topics=["overview", "run-and-watch", "idempotent-routines", "errors"],
)

TOPICS = (LOCAL,)
