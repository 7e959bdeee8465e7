"""The ray provider against a real two-node Ray cluster made here (the second node has a custom resource), through
real `runtimes-mcp` processes over stdio: placement, following from a second server, a stop that reaches the
process group on the node, a run that outlives its server, workspaces, and a node that dies.

One cluster for the module (a start takes ~11-20 s, a head ~1.6 GB), shut down by its own handle (never `ray stop`:
it ends every Ray process on the machine); its temporary directory, and every process started in it, go with it."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.conftest import appears, error_text, marker, stdio_params, structured, wait_until_gone
from tests.ray_cluster import RayCluster
from tests.ray_cluster import ray_cluster as start_ray_cluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    with start_ray_cluster() as cluster:
        yield cluster


@pytest.fixture
def ray_env(ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> RayCluster:
    """Servers of this test point at the cluster; they share this test's data directory (the shared state)."""
    for name, value in ray_cluster.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "sessions")
    return ray_cluster


@asynccontextmanager
async def server(config: Path | None = None) -> AsyncIterator[Client]:
    """A real `runtimes-mcp` over stdio (with this config file); it ends when the block does."""
    async with Client(stdio_params(*(("--config", str(config)) if config else ()))) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    return structured(await client.call_tool(tool, {"provider": "ray", **arguments}))


async def test_a_run_goes_to_the_node_with_its_resource_and_a_second_server_follows_it_with_offsets(
    ray_env: RayCluster,
) -> None:
    # two lines; then it waits for a go on its stdin (it is followed while it runs, however slow the host); three more
    command = "echo line1; echo line2; read go; for i in 3 4 5; do echo line$i; sleep 0.1; done"
    async with server() as first, server() as second:
        started = await call(first, "execRun", command=command, resources={"special": 1}, interactive=True, wait=False)
        assert (started["node_id"], started["node_ip"], started["state"]) == (
            ray_env.special_id,
            "127.0.0.1",
            "running",
        )
        text, offset, pages = "", 0, []
        while True:
            page = await call(second, "getSession", session_id=started["session_id"], stdout_offset=offset, wait_s=0.5)
            assert page["node_id"] == ray_env.special_id
            text += page["stdout"]
            assert page["stdout_next_offset"] == offset + len(page["stdout"].encode())
            offset = page["stdout_next_offset"]
            pages.append((page["state"], text))
            if page["state"] != "running":
                break
            if text == "line1\nline2\n" and not any(t.endswith("go") for _, t in pages):
                await call(second, "sendInput", session_id=started["session_id"], text="go\n")
                pages.append(("sent", "go"))
        assert text.split() == [f"line{i}" for i in range(1, 6)]
        assert (page["state"], page["exit_code"]) == ("completed", 0)
        assert ("running", "line1\nline2\n") in pages  # followed while it ran, from the offset on
        listed = await call(first, "listSessions", status="completed")
        mine = next(s for s in listed["sessions"] if s["id"] == started["session_id"])
        assert mine["raw"]["node_id"] == ray_env.special_id


async def test_a_stop_from_a_second_server_ends_the_process_group_on_the_node(ray_env: RayCluster) -> None:
    mark = marker()
    async with server() as first, server() as second:
        started = await call(first, "execRun", command=f"sleep {mark} & sleep {mark}; wait", wait=False)
        assert len(await appears(mark, at_least=3)) == 3  # the shell and its two sleeps
        stopped = await call(second, "stopSession", session_id=started["session_id"])
        assert stopped["stopped"] is True and stopped["state"] == "stopped"
        assert stopped["node_id"] == started["node_id"]
        assert await wait_until_gone(mark) == []
        again = await call(first, "getSession", session_id=started["session_id"])
        assert again["state"] == "stopped"


async def test_a_background_run_outlives_the_server_that_started_it(ray_env: RayCluster) -> None:
    async with server() as first:
        started = await call(first, "execRun", command="read line; echo got:$line", interactive=True, wait=False)
    # that server has exited; a new one finds the run in the shared records, feeds it and follows it to its end
    async with server() as later:
        running = await call(later, "listSessions", status="running")
        assert started["session_id"] in [s["id"] for s in running["sessions"]]
        sent = await call(later, "sendInput", session_id=started["session_id"], text="hello\n", eof=True)
        assert sent["bytes"] == 6
        ended = await call(later, "getSession", session_id=started["session_id"], wait_s=30)
    assert (ended["state"], ended["stdout"]) == ("completed", "got:hello\n")


async def test_a_workspace_stays_on_the_node_it_was_made_on(ray_env: RayCluster) -> None:
    async with server() as client:
        made = await call(
            client, "execRun", command="echo kept > notes.txt", workspace="w-ray", resources={"special": 1}
        )
        again = await call(client, "execRun", command="cat notes.txt", workspace="w-ray")
        assert made["node_id"] == again["node_id"] == ray_env.special_id
        assert again["stdout"] == "kept\n" and again["workspace"] == "w-ray"
        refused = await client.call_tool(
            "execRun", {"provider": "ray", "command": "true", "resources": {"no-such-resource": 1}}
        )
        assert "no node of the cluster has" in error_text(refused) and "Next:" in error_text(refused)


async def test_files_go_in_and_out_of_a_workspace_on_its_node_from_any_server(
    ray_env: RayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "sessions,workspaces")
    async with server() as first, server() as second:
        # made on the special node by its first run; files written later land there
        await call(first, "execRun", command="true", workspace="w-files", labels={"pool": "special"})
        written = await call(second, "writeFile", workspace="w-files", path="app/run.sh", content="echo ran >> log\n")
        assert (written["provider"], written["path"], written["size"]) == ("ray", "app/run.sh", 16)
        ran = await call(first, "execRun", command="sh app/run.sh && sh app/run.sh", workspace="w-files")
        assert (ran["state"], ran["node_id"]) == ("completed", ray_env.special_id)
        log = await call(second, "readFile", workspace="w-files", path="log")
        assert log["content"] == "ran\nran\n"
        listed = await call(first, "listFiles", workspace="w-files", depth=2)
        assert {e["path"] for e in listed["entries"]} >= {"app", "app/run.sh", "log"}
        mine = await call(second, "listWorkspaces")
        assert "w-files" in [w["name"] for w in mine["workspaces"]]
        # a workspace that does not exist yet is made by writeFile, on a node of the cluster
        await call(first, "writeFile", workspace="w-new", path="x", content="1")
        assert (await call(second, "execRun", command="cat x", workspace="w-new"))["stdout"] == "1"
        assert (await call(second, "deleteWorkspace", workspace="w-files"))["deleted"] is True
        gone = await first.call_tool("readFile", {"provider": "ray", "workspace": "w-files", "path": "log"})
        assert "no ray workspace 'w-files'" in error_text(gone) and "Next:" in error_text(gone)


async def test_each_user_sees_and_acts_on_their_own_sessions_and_workspaces_an_admin_on_all(
    ray_env: RayCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Ownership as on local (signed-in users, #35): the records name the owner and the node's runtime serves each
    call as its caller, so another user's session or workspace reads as one that does not exist, on the server and
    on the node; an admin sees and acts on all. (In process: the callers are set as sign-in sets them.)"""
    from providers.errors import NotFound
    from providers.ray.config import RayConfig
    from providers.ray.results import agent_of
    from providers.ray.service import open_ray
    from providers.services import ADMIN, RUN, Caller, Host, acting_as, with_implied

    for name, value in ray_env.env.items():
        monkeypatch.setenv(name, value)
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):  # what connecting sets in this process, put back after
        monkeypatch.setenv(name, os.environ.get(name, ""))
    alice, bob = (Caller(f"https://idp.example#{who}", with_implied({RUN})) for who in ("alice", "bob"))
    admin = Caller("https://idp.example#admin", with_implied({ADMIN}))
    mark = marker()

    async def changed(uri: str) -> None:
        pass

    async with anyio.create_task_group() as tg:
        host = Host(
            section=RayConfig.model_validate({"node_data_dir": str(ray_env.base / "nodes")}),
            arguments={"address": ray_env.address, "token": ray_env.token, "namespace": "runtimes-mcp"},
            data_dir=tmp_path / "data",
            state_url=None,
            background=tg,
            changed=changed,
        )
        async with open_ray(host) as ray:
            with acting_as(alice):
                started = await ray.exec_run(command=f"sleep {mark}", wait=False)
                await ray.write_file("w-own", "who", "alice")
            with acting_as(bob):
                await ray.write_file("w-own", "who", "bob")  # the same name, his own
                assert (await ray.read_file("w-own", "who")).content == "bob"
                assert started.session_id not in [s.id for s in (await ray.list_sessions()).sessions]
                for act in (ray.get_session, ray.stop_session, ray.send_input):
                    with pytest.raises(NotFound, match=f"no ray session '{started.session_id}'"):
                        await act(started.session_id)
                assert [w.name for w in (await ray.list_workspaces()).workspaces] == ["w-own"]
                # and on the node: its runtime serves bob as bob
                session = await ray._records.get(started.session_id, None)
                assert session is not None
                with pytest.raises(NotFound):
                    await ray._call(agent_of(session), session.node_ip, "get_session", session.id, 0, None, None)
            with acting_as(admin):
                assert (await ray.get_session(started.session_id)).state == "running"
                everyone = (await ray.list_workspaces()).workspaces
                assert sorted((w.name, w.owner) for w in everyone) == [("w-own", alice.owner), ("w-own", bob.owner)]
            with acting_as(alice):
                assert (await ray.read_file("w-own", "who")).content == "alice"
                assert started.session_id in [s.id for s in (await ray.list_sessions()).sessions]
                assert (await ray.stop_session(started.session_id)).state == "stopped"
        tg.cancel_scope.cancel()
    assert await wait_until_gone(mark) == []


async def test_each_server_s_runs_keep_its_own_node_settings_on_a_shared_node(
    ray_env: RayCluster, config_file: Any
) -> None:
    """[ray.node] is the local runtime's config on the nodes: a server's runs get its own (its own agent, beside
    those of servers with other settings), as a local run gets its server's [local]."""
    strict = config_file("[ray.node]\nmax_timeout_s = 5\n[ray.node.limits]\nfile_size_mb = 1\n")
    write = "head -c 2000000 /dev/zero > big && echo wrote"
    async with server(strict) as capped, server() as default:
        refused = await capped.call_tool("execRun", {"provider": "ray", "command": "true", "timeout_s": 10})
        assert "ray.node.max_timeout_s" in error_text(refused) and "local." not in error_text(refused)
        limited = await call(capped, "execRun", command=write, labels={"pool": "special"}, timeout_s=5)
        assert limited["exit_code"] != 0 and "File too large" in limited["stderr"]
        free = await call(default, "execRun", command=write, labels={"pool": "special"}, timeout_s=10)
        assert (free["state"], free["stdout"], free["node_id"]) == ("completed", "wrote\n", ray_env.special_id)
        assert limited["node_id"] == ray_env.special_id
        # each server follows the other's run, through the agent that runs it
        seen = await call(default, "getSession", session_id=limited["session_id"])
        assert seen["state"] == limited["state"]


async def test_resources_are_held_while_a_run_runs_and_freed_when_it_ends(
    ray_env: RayCluster, config_file: Any
) -> None:
    impatient = config_file("[ray]\nplacement_timeout_s = 3\n")
    mark = marker()
    both = {"num_cpus": 1, "resources": {"special": 1}}  # the special node has 1 CPU: one such run at a time
    async with server(impatient) as client:
        holder = await call(client, "execRun", command=f"sleep {mark}", wait=False, **both)
        assert holder["node_id"] == ray_env.special_id
        waited = await client.call_tool("execRun", {"provider": "ray", "command": "true", **both})
        said = error_text(waited)
        assert "within 3 s" in said and "placement_timeout_s" in said and "Next:" in said, said
        await call(client, "stopSession", session_id=holder["session_id"])
        again = await call(client, "execRun", command="echo placed", **both)
        assert (again["state"], again["stdout"], again["node_id"]) == ("completed", "placed\n", ray_env.special_id)
        # a run that asks for nothing holds nothing: it runs beside a holder
        holder = await call(client, "execRun", command=f"sleep {mark}", wait=False, **both)
        beside = await call(client, "execRun", command="echo beside", labels={"pool": "special"})
        assert (beside["stdout"], beside["node_id"]) == ("beside\n", ray_env.special_id)
        await call(client, "stopSession", session_id=holder["session_id"])


async def test_a_wrong_token_is_said_plainly_and_at_once(ray_env: RayCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_RAY_TOKEN", "not-" + ray_env.token)
    async with server() as client:
        started = time.monotonic()
        refused = error_text(await client.call_tool("execRun", {"provider": "ray", "command": "true"}))
        assert time.monotonic() - started < 15  # not Ray's twenty attempts
    assert "did not let this server in: its token authentication refused the token set" in refused, refused
    assert "Next: Set RUNTIMES_MCP_RAY_TOKEN" in refused
    assert ray_env.token not in refused


async def test_killing_a_node_s_raylet_ends_its_sessions_as_lost_naming_the_node(ray_env: RayCluster) -> None:
    """Last in the module: the special node does not come back."""
    mark = marker()
    async with server() as client:
        started = await call(client, "execRun", command=f"sleep {mark}", resources={"special": 1}, wait=False)
        assert started["node_id"] == ray_env.special_id and await appears(mark)
        ray_env.special.kill_raylet()
        deadline = time.monotonic() + 60
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            result = await client.call_tool("getSession", {"provider": "ray", "session_id": started["session_id"]})
            if not result.is_error:
                state = structured(result)
                if state["state"] == "lost":
                    break
            await anyio.sleep(0.2)  # the cluster declares the node dead after its missed health checks
        assert state.get("state") == "lost", state
        assert ray_env.special_id[:12] in state["message"] and "left the cluster" in state["message"]
        listed = await call(client, "listSessions", status="lost")
        assert started["session_id"] in [s["id"] for s in listed["sessions"]]
    # its supervisor ends the run once the node's agent has gone (nothing runs on for nobody)
    assert await wait_until_gone(mark, within_s=30) == []
    with contextlib.suppress(Exception):
        ray_env.handle.remove_node(ray_env.special, allow_graceful=False)
