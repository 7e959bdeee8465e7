"""Multi-step recipes that cut across providers, and how errors read."""

from docs_topics.model import Pattern, Topic

RUN_AND_WATCH = Topic(
    topic="run-and-watch",
    title="Run code and watch it",
    description="Start work, follow it while it runs, read its output, and stop it when needed.",
    ai_hints=[
        "execRun waits at most wait_s (default 30 s, below the 60 s most clients allow a call), then answers "
        "with the run still running and its session_id; the run goes on up to timeout_s.",
        "Follow with getSession session_id wait_s=... stdout_offset=<stdout_next_offset>: it waits for the end "
        "(progress notifications carry the newest line) and returns only new output. Repeat until state is "
        "not running.",
        "Clients that speak MCP Tasks (the io.modelcontextprotocol/tasks extension, or the 2025-11-25 tasks "
        "capability) may run execRun and invokeRoutine as tasks and poll tasks/get; the task follows the run "
        "and survives server restarts.",
        "Events of sandbox `local` tell you when local sessions start and end.",
    ],
    patterns=[
        Pattern(
            name="Local: follow a long run with the default tools",
            description="A loop of cheap calls; each returns within wait_s.",
            steps=[
                "execRun command=... wait=false timeout_s=900 → session_id",
                "getSession session_id wait_s=25 stdout_offset=0 → new output, stdout_next_offset, state",
                "while state is running: getSession again with stdout_offset=stdout_next_offset",
                "stopSession session_id to end it early",
            ],
            example='execRun {"command": "make test", "wait": false, "timeout_s": 900}\n'
            'getSession {"session_id": "ses_…", "wait_s": 25, "stdout_offset": 0}',
        ),
        Pattern(
            name="Any provider: MCP Tasks",
            description="For clients that declare the Tasks extension (per connection or per request).",
            steps=[
                "tools/call execRun or invokeRoutine → resultType task, taskId, pollIntervalMs",
                "tasks/get taskId every pollIntervalMs: working (statusMessage: newest line) → completed with "
                "the tool result inlined (a failed command is completed too; read exit_code)",
                "or subscriptions/listen notifications.taskIds=[taskId]: notifications/tasks on each change",
                "tasks/cancel taskId stops the run; tasks/get then says cancelled",
            ],
        ),
        Pattern(
            name="Local: long job with events",
            description="No polling loop needed if you can subscribe.",
            steps=[
                "execRun command=... wait=false timeout_s=900 → session_id",
                "subscribe to resource events://local (or call getEvents type=session.completed)",
                "on session.completed / session.failed: getSession session_id for exit_code and output",
            ],
            example='getEvents {"sandbox_id": "local", "type": "session.completed"}',
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
        "retry without running it twice. What a retry answers depends on the provider: local hands back the "
        "run that holds the key; ArchAstro refuses the duplicate (409) without saying which run it was."
    ),
    ai_hints=[
        "Derive the key from the work (e.g. 'report-2026-11-23'), not from the attempt.",
        "local: the same key returns the same run (deduplicated=true) while it runs or after it completed; "
        "a failed run releases its key so a retry runs again.",
        "archastro: when a completed run already holds the key, invokeRoutine fails with a conflict error "
        "(HTTP 409) that carries no run id. The work is done: find that run with listRoutineRuns "
        "status=completed (routines toolset), newest first, and read it with getRoutineRun. Keep the run_id "
        "of your first attempt when you get one, so that you need not search.",
        "archastro: while the first run is still pending or running, a retry may start another run: retry "
        "only after a timeout or a network error, not to poll.",
    ],
    patterns=[
        Pattern(
            name="Retry with the same key",
            description="Safe under timeouts and crashes.",
            steps=[
                "invokeRoutine routine message idempotency_key=K",
                "on a timeout or network error: invokeRoutine again with the same K",
                "local: the answer is the original run, with deduplicated=true",
                "archastro: a conflict error means it ran; listRoutineRuns routine=R status=completed, then "
                "getRoutineRun run_id=…",
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
        "configured, not supported, busy (too many calls in flight: retry shortly).\n\n"
        "Mistakes in the call itself come before any provider is asked, and end with a `Next:` too: "
        "`invalid arguments: NAME: what it needs (got VALUE). Next: …` for a wrong JSON type or a value "
        "out of range, `unknown argument(s) NAME. Next: …` with the arguments the tool takes, `PROVIDER: not "
        "configured on this server. Next: set VARIABLE …` when the arguments belong to a provider without "
        "credentials, and `Unknown tool NAME: …` with the toolset or setting that offers it."
    ),
    ai_hints=[
        "Do not retry invalid input or credentials errors unchanged; fix the named argument or setting.",
        "Rate limited and unavailable errors are worth a retry after the stated wait.",
    ],
    related_topics=["overview"],
)

WORKSPACES = Topic(
    topic="workspaces",
    title="Workspaces: files and work that carry from one call to the next",
    description=(
        "A workspace is a named directory (letters, digits, `-`, `_`, `.`; up to 64) that runs share: "
        "`execRun workspace=NAME` works in it, under the same sandbox as any run, and what it writes there "
        "(source files, a `.venv`, build outputs) is there for the next run, after a server restart, and for every "
        "server on the data directory. It is made on first use. Several runs may use one workspace at once, as "
        "two shells may share a directory. A run without `workspace` gets a fresh directory of its own. Where users "
        "sign in, names are per user: each has their own workspaces.\n\n"
        '- **Files in and out**: writeFile (text, or `encoding: base64` for bytes; `mode` like "755"; parent '
        "directories made; a file is replaced whole, never left half-written) and readFile (a page of "
        "`length` bytes, 64 KiB by default, from `offset`; base64 when the bytes are not UTF-8 text; the whole "
        "file's `size` and `sha256`; `next_offset` until the end). Paths are relative to the workspace; one "
        "that leads out of it (`..`, a link) is refused. Results link the file as a resource "
        "(`workspace://NAME/PATH`); resources/read gives it whole, up to 4 MiB.\n"
        "- **Toolsets**: `workspaces` adds listFiles (type, size, mtime; `depth`), listWorkspaces (size, last use) "
        "and deleteWorkspace (refused while a session runs in it); `sessions` adds sendInput.\n"
        "- **Input while it runs**: `execRun interactive=true` keeps the run's stdin open; sendInput writes to it "
        "(end lines with \\n) and `eof: true` closes it. Any server on the machine can send it.\n"
        "- **Bounds**: a workspace holds at most `local.workspace_max_mb` (1024 MiB; a run that passes it is "
        "ended, a write that would is refused); each owner has at most `local.max_workspaces` (100); one unused for "
        "`local.workspace_retention_days` (30) is deleted, never one in use; all of them count toward "
        "`local.max_data_mb`."
    ),
    ai_hints=[
        "Keep a project in one workspace: write files, run, fix, run again; install dependencies once into a "
        ".venv or node_modules there and reuse them in later runs.",
        "Read large files in pages: readFile offset=next_offset until a page has no next_offset; check sha256.",
        "A program that asks questions (a REPL, npm init, Continue? [y/N]): execRun interactive=true wait=false, "
        'getSession to read the prompt, sendInput text="y\\n", then getSession wait_s to follow it.',
    ],
    patterns=[
        Pattern(
            name="The coding loop",
            description="Write, run, read the output, fix, run again, fetch the artifact.",
            steps=[
                "writeFile workspace=w path=app.py content=...; writeFile workspace=w path=test_app.py content=...",
                'execRun workspace=w command="python3 -m venv .venv && .venv/bin/pip install -r requirements.txt" '
                '(once; installing needs a network: the operator sets local.sandbox.network = "allowlist" with '
                'allow = ["@packages"])',
                'execRun workspace=w command=".venv/bin/python -m pytest -q" → failures in stdout',
                "writeFile workspace=w path=app.py content=<fixed>; execRun again → passes",
                'execRun workspace=w command="python3 plot.py"; readFile workspace=w path=plot.png → base64 + sha256',
            ],
            example='writeFile {"workspace": "w", "path": "app.py", "content": "print(42)"}\n'
            'execRun {"workspace": "w", "command": "python3 app.py"}\n'
            'readFile {"workspace": "w", "path": "app.py"}',
        ),
        Pattern(
            name="Answer a prompt",
            description="A program that waits for input while it runs.",
            steps=[
                'execRun command="npm init" interactive=true wait=false workspace=w → session_id',
                "getSession session_id → the question in stdout",
                'sendInput session_id text="my-package\\n" (repeat per question; eof=true when done)',
                "getSession session_id wait_s=25 → the end",
            ],
        ),
    ],
    related_topics=["local", "run-and-watch"],
)

TOPICS = (RUN_AND_WATCH, IDEMPOTENT_ROUTINES, ERRORS, WORKSPACES)
