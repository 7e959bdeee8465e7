"""The ray provider without a cluster: off by default (the default surface does not change), its settings and their
sources, the address check that refuses an open cluster, the token kept out of every output, its records in the
shared state (SQLite and PostgreSQL), and how a node's answers are worded as this provider's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from providers.ray.config import AddressError, check_address
from providers.ray.records import RaySession, Records
from providers.ray.results import on_ray
from providers.services import ADMIN, LOCAL_OWNER, RUN, Caller, with_implied
from server.config import load_settings
from tests.conftest import connect, error_text, structured

ROOT = Path(__file__).resolve().parent.parent
RAY_ONLY = ("num_cpus", "memory_mb", "resources", "labels")


async def tools_list() -> dict[str, Any]:
    async with connect() as client:
        tools = (await client.list_tools()).tools
    return {t.name: t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools}


async def test_ray_is_off_by_default_and_leaves_the_default_surface_as_it_was() -> None:
    tools = await tools_list()
    wire = json.dumps(tools)
    assert not re.search(r'"ray"|\bray\b', wire), "the default tools/list names ray"
    assert not any(name in wire for name in RAY_ONLY)


async def test_an_address_offers_ray_and_its_arguments_for_ray_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_RAY_ADDRESS", "127.0.0.1:6379")
    tools = await tools_list()
    run = tools["execRun"]["inputSchema"]["properties"]
    assert run["provider"]["enum"] == ["local", "ray"]
    for name in RAY_ONLY:
        assert run[name]["description"].endswith("(ray)"), name
    assert run["resources"]["type"] == "object"
    for tool in ("getSession", "stopSession", "listSessions"):
        assert tools[tool]["inputSchema"]["properties"]["provider"]["enum"] == ["local", "ray"]
    assert "ray" in tools["getDocs"]["inputSchema"]["properties"]["topic"]["enum"]


def test_the_address_comes_from_its_variable_ray_s_own_or_the_config_file(
    monkeypatch: pytest.MonkeyPatch, config_file: Any
) -> None:
    from providers.registry import PROVIDERS

    ray = PROVIDERS["ray"]
    path = config_file('[ray]\naddress = "10.0.0.1:6379"\nnamespace = "team"\nplacement_timeout_s = 3\n')
    settings = load_settings(path)
    assert settings.provider_arguments(ray) == {"address": "10.0.0.1:6379", "token": None, "namespace": "team"}
    assert settings.ray.placement_timeout_s == 3  # type: ignore[attr-defined]
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    assert load_settings(path).provider_arguments(ray)["address"] == "10.0.0.2:6379"
    monkeypatch.setenv("RUNTIMES_MCP_RAY_ADDRESS", "10.0.0.3:6379")
    assert load_settings(path).provider_arguments(ray)["address"] == "10.0.0.3:6379"


def test_node_settings_refuse_what_does_not_run_on_nodes(config_file: Any) -> None:
    from server.config import ConfigError

    with pytest.raises(ConfigError, match="routines and launchers run on the server"):
        load_settings(config_file('[ray.node.routines.r]\ncommand = "true"\n'))
    with pytest.raises(ConfigError, match="on_exit is fixed on nodes"):
        load_settings(config_file('[ray.node]\non_exit = "keep"\n'))


def test_only_a_loopback_address_goes_without_a_token() -> None:
    for loopback in ("127.0.0.1:6379", "localhost:6379", "[::1]:6379"):
        assert check_address(loopback, None).loopback
    for remote in ("10.0.0.5:6379", "ray-head:6379", "head.internal:6379"):
        with pytest.raises(AddressError, match="RUNTIMES_MCP_RAY_TOKEN") as refused:
            check_address(remote, None)
        assert "untrusted networks" in str(refused.value) and "Next:" in str(refused.value)
        assert not check_address(remote, "t0ken").loopback
    for wrong in ("auto", "local", "head", "head:port"):
        with pytest.raises(AddressError, match="not host:port"):
            check_address(wrong, None)
    with pytest.raises(AddressError, match="a Ray Client address") as client:
        check_address("ray://head.internal:10001", "t0ken")
    assert "Next: set it to the head's GCS address" in str(client.value)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_open_cluster_is_refused_at_start_and_the_token_never_shows(tmp_path: Path) -> None:
    refused = cli("call", "listSessions", '{"provider": "ray"}', env={"RUNTIMES_MCP_RAY_ADDRESS": "10.9.8.7:6379"})
    said = refused.stderr.strip().splitlines()[-1]  # (after the local runtime's warning when run as root)
    assert refused.returncode == 2 and said.startswith("runtimes-mcp: ray: the cluster at 10.9.8.7:6379"), said
    assert "RUNTIMES_MCP_RAY_TOKEN" in said and "Traceback" not in refused.stderr

    token = "marker-ray-token-5e61"
    env = {"RUNTIMES_MCP_RAY_ADDRESS": "10.9.8.7:6379", "RAY_AUTH_TOKEN": token, "RUNTIMES_MCP_LOG_LEVEL": "DEBUG"}
    docs = cli("call", "getDocs", '{"topic": "ray", "detail": "full"}', env=env)
    tools = cli("tools", env=env)
    assert docs.returncode == 0, docs.stderr
    assert "Token authentication: on" in docs.stdout
    for done in (docs, tools):
        assert token not in done.stdout + done.stderr


async def test_without_ray_installed_the_server_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from providers.ray import service
    from providers.services import StartError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("RUNTIMES_MCP_RAY_ADDRESS", "127.0.0.1:6379")
    settings = load_settings()
    from providers.registry import PROVIDERS
    from server.state import AppState

    with pytest.raises(BaseException) as raised:
        async with AppState.open(settings):
            pass
    errors = [raised.value]
    while isinstance(errors[-1], BaseExceptionGroup):
        errors += errors[-1].exceptions
    assert any(isinstance(e, StartError) and "runtimes-mcp[ray]" in str(e) for e in errors), errors
    assert service.open_ray and PROVIDERS["ray"].extra == "ray"


def session(session_id: str, node: str = "n1", owner: str | None = None) -> RaySession:
    return RaySession(
        id=session_id,
        node_id=node,
        node_ip="10.0.0.7",
        state="running",
        command="true",
        owner=owner,
        started_at=time.time(),
    )


async def check_records(records: Records) -> None:
    """Reads are made for a caller: its own records (a record of no owner is the earlier owner's), or all for an
    admin or the server's own work (None)."""
    alice, bob = (Caller(name, with_implied({RUN})) for name in ("alice", "bob"))
    admin = Caller("root", with_implied({ADMIN}))
    for n in range(3):
        await records.add(session(f"ses_{n}", node="n1" if n < 2 else "n2", owner="alice" if n else "bob"))
    await records.add(session("ses_old", node="n2"))  # made before owners were recorded: the earlier owner's
    assert await records.running_per_node() == {"n1": 2, "n2": 2}
    newest = await records.page([], 2, None, None)
    assert [s.id for s in newest] == ["ses_old", "ses_2"]
    older = await records.page([], 3, newest[-1].seq, admin)
    assert [s.id for s in older] == ["ses_1", "ses_0"]
    assert [s.id for s in await records.page([], 10, None, bob)] == ["ses_0"]
    assert [s.id for s in await records.page([], 10, None, Caller(LOCAL_OWNER, alice.scopes))] == ["ses_old"]
    assert await records.get("ses_0", alice) is None and await records.get("ses_0", bob) is not None
    assert await records.get("ses_0", admin) is not None
    ended = session("ses_1")
    ended.state, ended.exit_code, ended.ended_at = "completed", 0, time.time()
    assert await records.end(ended) is True
    assert await records.end(ended) is False  # another server recorded it first
    assert [s.id for s in await records.page(["completed"], 10, None, alice)] == ["ses_1"]
    await records.place_workspace("w", "alice", "n2", "10.0.0.8", time.time())
    await records.place_workspace("w", "alice", "n1", "10.0.0.7", time.time())  # the first place stays
    await records.place_workspace("w", "bob", "n1", "10.0.0.7", time.time())  # names are per owner
    assert await records.workspace_node("w", "alice") == ("n2", "10.0.0.8")
    assert await records.workspaces(bob) == [("w", "bob", "n1", "10.0.0.7")]
    assert [owner for _, owner, _, _ in await records.workspaces(admin)] == ["alice", "bob"]
    await records.forget_workspace("w", "bob")
    assert await records.workspace_node("w", "bob") is None


async def test_records_in_the_data_directory(tmp_path: Path) -> None:
    records = await Records.open(tmp_path / "data", None, "test")
    try:
        await check_records(records)
    finally:
        await records.close()
    assert (tmp_path / "data" / "ray.sqlite3").exists()


async def test_records_in_postgresql_beside_the_local_tables(state_url: str, tmp_path: Path) -> None:
    import psycopg

    from providers.local.store import Store

    local = await Store.open_url(state_url, "test-local")  # the local runtime's tables and migration, first
    records = await Records.open(tmp_path, state_url, "test")
    try:
        await check_records(records)
    finally:
        await records.close()
        await local.close()
    with psycopg.connect(state_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    assert {"ray_sessions", "ray_workspaces", "sessions", "schema_version"} <= tables
    assert version is not None and version[0] >= 2  # the local store's own migration, untouched by ours


def test_a_node_s_words_become_this_provider_s() -> None:
    local = (
        "still running after 1 s; it will be ended at timeout_s=60 (in 59 s); for longer, start it with a larger "
        "timeout_s (up to 3600, local.max_timeout_s). Follow it with getSession session_id=ses_1 wait_s=30 "
        "stdout_offset=0; end it with stopSession."
    )
    said = on_ray(local) or ""
    assert "getSession provider=ray session_id=ses_1" in said and "stopSession provider=ray." in said
    assert "ray.node.max_timeout_s" in said and "local." not in said
    cut = on_ray("output cut; read on with getSession stdout_offset, or all of it at local://sessions/ses_1/stdout")
    assert cut == "output cut; read on with getSession stdout_offset"


async def test_an_unreachable_cluster_is_a_clear_error_and_the_server_answers_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RUNTIMES_MCP_RAY_ADDRESS", f"127.0.0.1:{port}")
    async with connect() as client:
        started = time.monotonic()
        for _ in range(2):  # and again: no attempt is left hanging in Ray
            result = await client.call_tool("execRun", {"provider": "ray", "command": "true"})
            said = error_text(result)
            assert "ray: provider unavailable: the Ray cluster did not answer" in said, said
            assert f"127.0.0.1:{port} refused the connection (Connection refused)" in said and "Next:" in said
            assert "RUNTIMES_MCP_RAY_ADDRESS" in said
        assert time.monotonic() - started < 10  # not Ray's own minutes of retries
        # the records are in the shared state: listing needs no cluster (running ones as last seen)
        assert structured(await client.call_tool("listSessions", {"provider": "ray"}))["count"] == 0
        records = await Records.open(Path(os.environ["RUNTIMES_MCP_DATA_DIR"]), None, "test")
        await records.add(session("ses_away"))
        await records.close()
        listed = structured(await client.call_tool("listSessions", {"provider": "ray", "status": "running"}))
        assert [s["id"] for s in listed["sessions"]] == ["ses_away"]
        local = structured(await client.call_tool("execRun", {"command": "echo still here"}))
        assert local["stdout"] == "still here\n"
