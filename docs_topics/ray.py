"""The ray provider: sessions on the nodes of a Ray cluster, run there by the local runtime."""

from docs_topics.model import Example, Pattern, Topic, from_tool, schema_of
from providers.ray.results import RayExecResult
from tools.catalog import ALL

RAY = Topic(
    topic="ray",
    title="Ray provider: sessions on the nodes of a Ray cluster",
    description=(
        "Runs shell commands on the nodes of a Ray cluster, with the same tools and guarantees as `local`. "
        "On when the server has `RUNTIMES_MCP_RAY_ADDRESS` (or `RAY_ADDRESS`, `[ray] address`); installed with "
        "`pip install 'runtimes-mcp[ray]'` on the server and on every node.\n\n"
        "- **What runs where.** Each node has one agent (a detached, named Ray actor) that runs that node's "
        "sessions with the local runtime: the same supervisor per run, bubblewrap sandbox, limits and output caps "
        "(`[ray.node]` takes `[local]`'s keys). A run's output, input and processes stay on its node; results "
        "name it (`node_id`, `node_ip`).\n"
        "- **Placement.** A run with a `workspace` goes where that workspace lives (its first use made it there; "
        "writeFile, readFile and listFiles with provider=ray reach it there). "
        'Else `num_cpus`, `memory_mb` and `resources` (custom resources, e.g. `{"gpu": 1}`) are held for it by '
        "a Ray placement group while it runs, on a node Ray picks; `labels` narrows it to nodes with those "
        "labels. Without them a run holds nothing (Ray's accounting never caps how many run) and goes to the live "
        "node with the fewest running sessions.\n"
        "- **Shared.** Sessions are recorded in the server's state (the data directory, or PostgreSQL): every "
        "server on that state lists, follows (offsets, wait_s), feeds and stops every session, whoever started "
        "it (with sign-in: each user their own, an admin all), and a restarted server finds them again. A run "
        "outlives the server that started it; it ends with the agent that runs it (each server's runs follow its "
        "own `[ray.node]`). A node that leaves the cluster ends its sessions as `lost`, naming the node.\n"
        "- **Security.** Ray runs whatever a client that reaches the cluster sends: keep it off untrusted "
        "networks. The server refuses a non-loopback address without a token (`RUNTIMES_MCP_RAY_TOKEN`, the "
        "cluster started with `RAY_AUTH_MODE=token`). The sandbox isolates a run from its node as `local` does; "
        "the agent and Ray itself are not sandboxed, and commands on one node share its kernel."
    ),
    ai_hints=[
        "Pass provider=ray on every call: getSession, stopSession, sendInput and listSessions with provider=ray "
        "reach sessions on any node.",
        "Ask for num_cpus or resources only when the run needs them: a run that holds them waits for a node that "
        "has them free (up to [ray] placement_timeout_s, 10 s) or fails saying so.",
        "A workspace lives on one node: later runs in it go there, and fail if that node has left the cluster.",
    ],
    endpoints=[from_tool(spec, "ray") for spec in ALL if "ray" in spec.providers],
    schemas={"ExecResult": schema_of(RayExecResult)},
    examples=[
        Example(
            title="A run on a node with a custom resource",
            request={"tool": "execRun", "arguments": {"provider": "ray", "command": "nproc", "resources": {"gpu": 1}}},
            response={"state": "completed", "exit_code": 0, "stdout": "8\n", "node_id": "9f1c…", "node_ip": "10.0.0.7"},
        ),
    ],
    patterns=[
        Pattern(
            name="Background job on the cluster",
            description="Start it anywhere, follow and stop it from any server.",
            steps=[
                "execRun provider=ray command=... wait=false timeout_s=3600 → session_id, node_id",
                "getSession provider=ray session_id=... wait_s=25 stdout_offset=N to follow it",
                "stopSession provider=ray session_id=... ends its whole process group on its node",
            ],
        ),
    ],
    related_topics=["local", "overview", "run-and-watch"],
)

TOPICS = (RAY,)
