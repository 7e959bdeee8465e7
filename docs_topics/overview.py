"""Where to start: which tool for which job, which provider does what, how to configure."""

from docs_topics.model import Topic
from providers.registry import PROVIDERS
from tools.catalog import ALL, HEADLINE


def _matrix() -> str:
    names = list(PROVIDERS)
    rows = ["| tool | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for spec in HEADLINE:
        rows.append(f"| {spec.name} | " + " | ".join("✓" if p in spec.providers else "" for p in names) + " |")
    rows += ["", *(f"- `{p.name}`: {p.summary}" for p in PROVIDERS.values())]
    return "\n".join(rows)


def _variables(secret: bool) -> str:
    return ", ".join(s.env for p in PROVIDERS.values() for s in p.settings if s.secret == secret)


def _toolsets() -> str:
    sets: dict[str, list[str]] = {}
    for spec in ALL:
        if spec.toolset:
            sets.setdefault(spec.toolset, []).append(spec.name)
    return "\n".join(f"- `{name}`: {', '.join(tools)}" for name, tools in sets.items())


OVERVIEW = Topic(
    topic="overview",
    title="runtimes-mcp: one tool surface over code-execution runtimes",
    description=(
        "Eight tools cover the jobs; the `provider` argument picks the runtime. `local` (this machine) is the "
        "default and needs no account; remote providers appear once their credentials are set. writeFile and "
        "readFile move files in and out of local workspaces.\n\n"
        "| job | tool |\n|---|---|\n"
        "| run code, a script or a saved run | execRun |\n"
        "| follow a run: its state and new output | getSession |\n"
        "| see what is running or ran | listSessions |\n"
        "| end a run | stopSession |\n"
        "| run a named routine with a message | invokeRoutine |\n"
        "| see long-lived services | getLaunchers |\n"
        "| record an event | storeEvent |\n"
        "| read events back | getEvents |\n\n"
        "## Providers\n" + _matrix() + "\n\n"
        "## Optional toolsets (RUNTIMES_MCP_TOOLSETS=name,name or all)\n" + _toolsets() + "\n\n"
        "## Configuration\n"
        "Environment variables (a TOML file given by --config or RUNTIMES_MCP_CONFIG may set the same, "
        "lower-cased; the environment wins): RUNTIMES_MCP_DATA_DIR, RUNTIMES_MCP_DEFAULT_PROVIDER, "
        "RUNTIMES_MCP_TOOLSETS, RUNTIMES_MCP_READ_ONLY=1 (hides tools that change anything); credentials "
        + _variables(secret=True)
        + "; endpoints "
        + _variables(secret=False)
        + ". Routines and launchers of the local provider live in "
        "the TOML file under [local.routines.NAME] and [local.launchers.NAME]."
    ),
    ai_hints=[
        "Leave `provider` out to use the default (usually local).",
        "Arguments are flat; each tool's schema says which provider uses which argument. Passing an argument "
        "the chosen provider does not use is an error that lists what it takes.",
        "Errors say the provider, the cause and what to do next; see topic `errors`.",
    ],
    related_topics=[
        "local",
        "sprites",
        "xano",
        "archastro-routines",
        "archastro-sessions",
        "decthings",
        "computesdk",
        "run-and-watch",
        "idempotent-routines",
        "errors",
    ],
)
