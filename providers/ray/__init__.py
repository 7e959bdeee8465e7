"""Sessions on a Ray cluster: one agent actor per node runs them with the local runtime's supervisor, sandbox and
limits; records in the shared state. An optional extra (`pip install 'runtimes-mcp[ray]'`), off unless an address
is set."""

from providers import capabilities as c
from providers.provider import Provider, Serves, Setting

ADDRESS = Setting(
    "RUNTIMES_MCP_RAY_ADDRESS",
    "address",
    "The Ray cluster's address (host:port of its head's GCS); switches the ray provider on.",
    aliases=("RAY_ADDRESS",),
    section_key="address",
)
TOKEN = Setting(
    "RUNTIMES_MCP_RAY_TOKEN",
    "token",
    "The cluster's token (Ray's RAY_AUTH_MODE=token); required for a cluster that is not on loopback.",
    aliases=("RAY_AUTH_TOKEN",),
    section_key="token",
)
NAMESPACE = Setting(
    "RUNTIMES_MCP_RAY_NAMESPACE",
    "namespace",
    "The Ray namespace of the node agents and reservations; servers that share sessions share it.",
    "runtimes-mcp",
    section_key="namespace",
)

RUN_ARGUMENTS = (
    "command",
    "cwd?",
    "workspace?",
    "env?",
    "stdin?",
    "interactive?",
    "timeout_s?",
    "wait?",
    "wait_s?",
    "num_cpus?",
    "memory_mb?",
    "resources?",
    "labels?",
)

PROVIDER = Provider(
    name="ray",
    title="Ray cluster",
    summary="Sessions on the nodes of a Ray cluster, run by the local runtime on each node.",
    client="providers.ray.runtime:RayRuntime",
    capabilities={
        c.LIST_SESSIONS: Serves(("status?", "limit?", "cursor?"), ADDRESS),
        c.EXEC_RUN: Serves(RUN_ARGUMENTS, ADDRESS),
        c.GET_SESSION: Serves(("session_id", "wait_s?", "stdout_offset?", "stderr_offset?"), ADDRESS),
        c.STOP_SESSION: Serves(("session_id",), ADDRESS),
        c.SEND_INPUT: Serves(("session_id", "text?", "eof?"), ADDRESS),
        c.WRITE_FILE: Serves(("workspace", "path", "content", "encoding?", "mode?"), ADDRESS),
        c.READ_FILE: Serves(("workspace", "path", "offset?", "length?"), ADDRESS),
        c.LIST_FILES: Serves(("workspace", "path?", "depth?"), ADDRESS),
        c.LIST_WORKSPACES: Serves((), ADDRESS),
        c.DELETE_WORKSPACE: Serves(("workspace",), ADDRESS),
    },
    settings=(ADDRESS, TOKEN, NAMESPACE),
    section="providers.ray.config:RayConfig",
    section_env={"RUNTIMES_MCP_RAY_NODE_DATA_DIR": ("node_data_dir",)},
    opens="providers.ray.service:open_ray",
    runs_commands=True,
    owners=True,
    extra="ray",
)
