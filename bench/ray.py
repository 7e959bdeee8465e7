"""Bench (not a test): the ray provider on a real two-node Ray cluster made here (tests/ray_cluster.py), printed.

- execRun `true` p50 over stdio with provider=ray (sandboxed as by default, and unsandboxed), against the engine's
  floor measured in the same run, interleaved: a bare Ray actor call that runs the same command (`/bin/sh -c
  true`), and that plus a bare SDK tool call; local on the same servers (A/B), sandboxed and not.
- 100 concurrent `sleep 5` runs (execRun waiting for each, one MCP session), local and ray in turns: all complete?,
  wall time, memory per live session (what runs them: the server for local, the node agents for ray; and the
  sessions' own processes), what ray adds per session beyond local, and the server's RSS.

    python -m bench.ray [--calls N] [--sessions N] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from bench.common import OURS, PY, ROOT, SDK_FLOOR, StdioPeer, timed_calls
from bench.load_http import rss_kib
from tests.ray_cluster import RayCluster, ray_cluster

NAMESPACE = "runtimes-mcp"
PLAIN_NAMESPACE = "bench-unsandboxed"  # agents of their own, with [ray.node.sandbox] mode = "off"


class Runner:
    """The floor: a bare actor that runs a command and waits for it."""

    def run(self, argv: list[str]) -> int:
        return subprocess.run(argv, check=False).returncode


def floor_calls(cluster: RayCluster, node_id: str, n: int, warmup: int = 5) -> list[float]:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
    runner = ray.remote(Runner).options(num_cpus=0, scheduling_strategy=strategy).remote()
    argv = ["/bin/sh", "-c", "true"]
    for _ in range(warmup):
        ray.get(runner.run.remote(argv))
    out = []
    for _ in range(n):
        started = time.perf_counter()
        ray.get(runner.run.remote(argv))
        out.append((time.perf_counter() - started) * 1000)
    ray.kill(runner)
    return out


def agents_memory(cluster: RayCluster, namespace: str) -> dict[str, dict[str, Any]]:
    import ray

    found = {}
    alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    for named in ray.util.list_named_actors(all_namespaces=True):
        node_id = named["name"].removeprefix("runtimes-mcp-agent-v2-").rpartition("-")[0]
        if named["namespace"] == namespace and node_id in alive:
            agent = ray.get_actor(named["name"], namespace=namespace)
            found[node_id] = ray.get(agent.memory.remote())["ok"]
    return found


def exec_figures(cluster: RayCluster, env: dict[str, str], calls: int) -> None:
    plain_config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    plain_config.write('[ray.node.sandbox]\nmode = "off"\n')
    plain_config.close()
    ours = StdioPeer(OURS, env)
    plain_env = {**env, "RUNTIMES_MCP_RAY_NAMESPACE": PLAIN_NAMESPACE, "RUNTIMES_MCP_SANDBOX": "off"}
    plain = StdioPeer([*OURS, "--config", plain_config.name], plain_env)
    sdk = StdioPeer(SDK_FLOOR, env)
    for peer in (ours, plain, sdk):
        peer.initialize()
    ray_true = {"provider": "ray", "command": "true"}
    first = ours.call("execRun", ray_true)["result"]["structuredContent"]  # starts the agent of its node
    plain.call("execRun", ray_true)
    node_id = first["node_id"]
    rounds = 10
    sandboxed: list[float] = []
    unsandboxed: list[float] = []
    local: list[float] = []
    local_plain: list[float] = []
    echo: list[float] = []
    floor: list[float] = []
    for _ in range(rounds):  # interleaved, so the machine's noise falls on all alike
        sandboxed += timed_calls(ours, "execRun", ray_true, calls // rounds, 3)
        unsandboxed += timed_calls(plain, "execRun", ray_true, calls // rounds, 3)
        local += timed_calls(ours, "execRun", {"command": "true"}, calls // rounds, 3)
        local_plain += timed_calls(plain, "execRun", {"command": "true"}, calls // rounds, 3)
        echo += timed_calls(sdk, "echo", {"text": "hi"}, calls // rounds, 3)
        floor += floor_calls(cluster, node_id, calls // rounds)
    for peer in (ours, plain, sdk):
        peer.close()
    p50 = statistics.median
    bare, call = p50(floor), p50(echo)
    print(f"execRun `true` p50 over stdio, {calls} calls each:")
    show("ray, sandboxed (default)", p50(sandboxed), "ms", f"{p50(sandboxed) / bare:.2f}x the bare actor call")
    show("ray, unsandboxed", p50(unsandboxed), "ms", f"{p50(unsandboxed) / bare:.2f}x the bare actor call")
    show("local, sandboxed (same server)", p50(local), "ms")
    show(
        "local, unsandboxed",
        p50(local_plain),
        "ms",
        f"ray unsandboxed adds {p50(unsandboxed) - p50(local_plain):.2f} ms",
    )
    show("floor: bare Ray actor call", bare, "ms", "runs /bin/sh -c true on the same node")
    show("floor + bare SDK tool call", bare + call, "ms", f"ray unsandboxed: {p50(unsandboxed) / (bare + call):.2f}x")


def show(label: str, value: float, unit: str, note: str = "") -> None:
    print(f"  {label:<32}{value:8.2f} {unit}" + (f"  ({note})" if note else ""))


def local_memory(server_pid: int) -> dict[str, Any]:
    """The local runtime's side, as agents_memory gives an agent's: the server's PSS and its descendants'."""
    from providers.local.supervisor.records import descendants
    from providers.ray.agent import pss_kib

    below = descendants(server_pid)
    return {
        "agent_pss_kib": pss_kib(server_pid),
        "descendants_pss_kib": sum(pss_kib(pid) for pid in below),
        "running": sum(1 for pid in below if _program(pid).endswith(b"sleep")),
    }


def _program(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().split(b"\0")[0]
    except OSError:
        return b""


async def concurrent_sleeps(cluster: RayCluster, env: dict[str, str], sessions: int, provider: str) -> dict[str, Any]:
    """`sessions` concurrent `sleep 5` runs through one MCP session: how they end, the wall time, and memory per
    live session of what runs them (the agents for ray, the server for local; their processes beside)."""
    params = StdioServerParameters(command=PY, args=["-m", "server.cli"], env=env, cwd=str(ROOT))
    async with Client(params) as client:
        # both nodes' agents are up: a run held on the special node sends the next to the other (the least busy)
        warmups = (
            [{"resources": {"special": 1}, "command": "sleep 1", "wait": False}, {}] if provider == "ray" else [{}]
        )
        for warm in warmups:
            await client.call_tool("execRun", {"provider": provider, "command": "true", **warm})
        await anyio.sleep(1.5)
        server_pid = _server_pid()

        def memory() -> dict[str, dict[str, Any]]:
            return agents_memory(cluster, NAMESPACE) if provider == "ray" else {"server": local_memory(server_pid)}

        idle = memory()
        rss_before = rss_kib(server_pid)
        results: list[dict[str, Any]] = []
        live: dict[str, dict[str, Any]] = {}

        async def run_one() -> None:
            result = await client.call_tool("execRun", {"provider": provider, "command": "sleep 5", "wait_s": 60})
            results.append(result.structured_content or {})

        async def measure_while_running() -> None:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                if sum(m["running"] for m in (await anyio.to_thread.run_sync(memory)).values()) >= sessions:
                    break
                await anyio.sleep(0.1)
            live.update(await anyio.to_thread.run_sync(memory))

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(sessions):
                tg.start_soon(run_one)
            tg.start_soon(measure_while_running)
        wall = time.perf_counter() - started
        rss_after = rss_kib(server_pid)
    running = sum(m["running"] for m in live.values()) or 1
    return {
        "completed": sum(1 for r in results if r.get("state") == "completed"),
        "per_node": sorted(
            sum(1 for r in results if r.get("node_id") == n) for n in {r.get("node_id") for r in results}
        ),
        "wall_s": wall,
        "live": running,
        "host_mib": sum(live[n]["agent_pss_kib"] - idle[n]["agent_pss_kib"] for n in live) / running / 1024,
        "processes_mib": sum(live[n]["descendants_pss_kib"] - idle[n]["descendants_pss_kib"] for n in live)
        / running
        / 1024,
        "idle_host_mib": sum(m["agent_pss_kib"] for m in idle.values()) / max(len(idle), 1) / 1024,
        "rss_before_mib": rss_before / 1024,
        "rss_after_mib": rss_after / 1024,
    }


def concurrent_figures(cluster: RayCluster, env: dict[str, str], sessions: int, rounds: int) -> None:
    """Local and ray in turn (A/B, `rounds` times): the medians."""
    got: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
    for _ in range(rounds):
        for provider in ("local", "ray"):
            got[provider].append(anyio.run(concurrent_sleeps, cluster, env, sessions, provider))

    def mid(provider: str, key: str) -> float:
        return statistics.median(r[key] for r in got[provider])

    print(f"{sessions} concurrent `sleep 5` runs, one MCP session, local then ray, {rounds} rounds (medians):")
    for provider in ("local", "ray"):
        done = [r["completed"] for r in got[provider]]
        print(f"  {provider}: completed {done} of {sessions} per round; per node {got[provider][-1]['per_node']}")
        show(f"{provider}: wall time", mid(provider, "wall_s"), "s", "the floor is 5 s")
        show(f"{provider}: live when measured", mid(provider, "live"), "sessions")
        host = "the agents' PSS" if provider == "ray" else "the server's PSS"
        show(f"{provider}: {host} per session", mid(provider, "host_mib"), "MiB")
        show(f"{provider}: processes per session", mid(provider, "processes_mib"), "MiB", "supervisor, sandbox, sh")
    ray_total = mid("ray", "host_mib") + mid("ray", "processes_mib")
    local_total = mid("local", "host_mib") + mid("local", "processes_mib")
    show("ray beyond local, per session", ray_total - local_total, "MiB", "target <= 5 MiB")
    show("agent PSS, idle", mid("ray", "idle_host_mib"), "MiB", "per node")
    show("server RSS, ray, before/after", mid("ray", "rss_before_mib"), "MiB", f"{mid('ray', 'rss_after_mib'):.1f}")


def _server_pid() -> int:
    import os

    from tests.conftest import processes_matching

    ours = [pid for pid in processes_matching("server.cli") if _parent(pid) == os.getpid()]
    assert len(ours) == 1, ours
    return ours[0]


def _parent(pid: int) -> int:
    stat = open(f"/proc/{pid}/stat", "rb").read()
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="local/ray turns of the concurrent runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, ray_cluster() as cluster:
        import os

        import ray

        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False, configure_logging=False)
        env = {
            **os.environ,
            **cluster.env,
            "RUNTIMES_MCP_DATA_DIR": data,
            "RUNTIMES_MCP_MAX_CONCURRENT_CALLS": str(args.sessions * 2),
        }
        try:
            exec_figures(cluster, env, args.calls)
            concurrent_figures(cluster, env, args.sessions, args.rounds)
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
