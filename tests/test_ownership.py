"""Shared deployments: each signed-in user sees only their own runs, workspaces, events and tasks; an admin sees
everyone's. Two server processes serve the same users (tokens from a real oidc-provider, `identity_provider`):
on one PostgreSQL database as two replicas with data directories of their own, and on one SQLite data directory.
Another user's ids answer exactly as ids that do not exist, through tools and resources/read alike."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.oidc_server import JSON_HEADERS, IdentityProvider, Served, call, message, rpc, serve, stop_server
from tests.test_tasks_e2e import Wire

AUDIENCE = "https://runtimes.team.example/mcp"  # the deployment's one URL (behind its load balancer)
ROUTINES = '[local.routines.echo]\ncommand = "cat"\n'


@pytest.fixture(params=["postgres", "sqlite"])
def replicas(
    request: pytest.FixtureRequest, identity_provider: IdentityProvider, tmp_path: Path
) -> Iterator[tuple[Served, Served]]:
    base_env = {"RUNTIMES_MCP_TOOLSETS": "all", "RUNTIMES_MCP_ON_EXIT": "stop"}
    if request.param == "postgres":
        state_url: str = request.getfixturevalue("state_url")
        envs = [
            {**base_env, "RUNTIMES_MCP_STATE_URL": state_url, "RUNTIMES_MCP_DATA_DIR": str(tmp_path / name)}
            for name in ("a", "b")
        ]
    else:
        envs = [{**base_env, "RUNTIMES_MCP_DATA_DIR": str(tmp_path / "shared")}] * 2
    oauth = f'audience = "{AUDIENCE}"'
    first = serve(identity_provider, tmp_path, "--stateless", env=envs[0], oauth=oauth, config=ROUTINES)
    try:
        second = serve(identity_provider, tmp_path, "--stateless", env=envs[1], oauth=oauth, config=ROUTINES)
    except BaseException:
        stop_server(first.process)
        raise
    try:
        yield first, second
    finally:
        stop_server(first.process)
        stop_server(second.process)


class WireAs(Wire):
    """The 2026-07-28 wire of test_tasks_e2e, as the holder of `token`."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(base)
        self.token = token

    def envelope(self, method: str, params: dict[str, Any], name: str | None) -> tuple[dict[str, Any], dict[str, str]]:
        body, headers = super().envelope(method, params, name)
        return body, {**headers, "Authorization": f"Bearer {self.token}"}


def same_answer(hidden: str, missing: str, hidden_id: str, missing_id: str) -> None:
    """Two answers that differ in nothing but the id asked for."""
    assert hidden.replace(hidden_id, "<id>") == missing.replace(missing_id, "<id>"), (hidden, missing)


def like(known: str) -> str:
    """An id of the same form that nothing has."""
    prefix, _, rest = known.partition("_")
    return f"{prefix}_{'0' * len(rest)}"


def read_resource(url: str, token: str, uri: str) -> str:
    body = message(rpc(url, token, "resources/read", {"uri": uri}))
    if "error" in body:
        return str(body["error"]["message"])
    return str(body["result"]["contents"][0]["text"])


def ids(listed: dict[str, Any]) -> list[str]:
    return [s["id"] for s in listed["sessions"]]


def test_one_users_things_are_invisible_to_another_and_the_admin_sees_both(
    replicas: tuple[Served, Served], identity_provider: IdentityProvider
) -> None:
    a, b = replicas
    alice, bob, admin = (identity_provider.token(who, AUDIENCE) for who in ("alice", "bob", "admin"))

    # alice, on the first server: a session waiting for input, a workspace, an event, a routine run, a task
    session = call(a.resource, alice, "execRun", {"command": "cat", "interactive": True, "wait": False})["session_id"]
    call(a.resource, alice, "writeFile", {"workspace": "app", "path": "who.txt", "content": "alice"})
    call(a.resource, alice, "storeEvent", {"type": "note", "data": {"by": "alice"}, "sandbox_id": "shared"})
    run = call(a.resource, alice, "invokeRoutine", {"routine": "echo", "message": "a", "idempotency_key": "k1"})
    # a run that is still going when the task is made (one that ended by then is answered directly)
    task = WireAs(a.base, alice).call("execRun", {"command": "sleep 120"})["taskId"]

    # bob, on the other server, sees none of it, and asking for it answers as for an id that does not exist
    url, fake = b.resource, like(session)
    assert session not in ids(call(url, bob, "listSessions", {"include_launchers": True}))
    for tool, extra in (("getSession", {}), ("stopSession", {}), ("sendInput", {"text": "hi\n"})):
        hidden = call(url, bob, tool, {"session_id": session, **extra})["error"]
        missing = call(url, bob, tool, {"session_id": fake, **extra})["error"]
        same_answer(hidden, missing, session, fake)
    for uri in ("local://sessions/{}/stdout", "local://sessions/{}/stderr"):
        same_answer(
            read_resource(url, bob, uri.format(session)), read_resource(url, bob, uri.format(fake)), session, fake
        )
    hidden = call(url, bob, "getRoutineRun", {"run_id": run["run_id"]})["error"]
    same_answer(
        hidden,
        call(url, bob, "getRoutineRun", {"run_id": like(run["run_id"])})["error"],
        run["run_id"],
        like(run["run_id"]),
    )
    hidden_task = WireAs(b.base, bob).task("tasks/get", task)["error"]["message"]
    missing_task = WireAs(b.base, bob).task("tasks/get", like(task))["error"]["message"]
    same_answer(hidden_task, missing_task, task, like(task))
    assert WireAs(b.base, bob).task("tasks/cancel", task)["error"]["message"] == hidden_task

    assert call(url, bob, "listWorkspaces", {})["workspaces"] == []
    same_answer(
        read_resource(url, bob, "workspace://app/who.txt"),
        read_resource(url, bob, "workspace://zzz/who.txt"),
        "app",
        "zzz",
    )
    for tool, args in (("readFile", {"path": "who.txt"}), ("listFiles", {})):
        same_answer(
            call(url, bob, tool, {"workspace": "app", **args})["error"],
            call(url, bob, tool, {"workspace": "zzz", **args})["error"],
            "'app'",
            "'zzz'",
        )
    assert call(url, bob, "getEvents", {"sandbox_id": "shared"})["events"] == []
    assert '"events":[]' in read_resource(url, bob, "events://shared").replace(" ", "")

    # names are per owner: bob's "app" is his own; his idempotency key "k1" is not alice's
    call(url, bob, "writeFile", {"workspace": "app", "path": "who.txt", "content": "bob"})
    assert call(url, bob, "readFile", {"workspace": "app", "path": "who.txt"})["content"] == "bob"
    assert call(a.resource, alice, "readFile", {"workspace": "app", "path": "who.txt"})["content"] == "alice"
    bobs_run = call(url, bob, "invokeRoutine", {"routine": "echo", "message": "b", "idempotency_key": "k1"})
    assert bobs_run["run_id"] != run["run_id"] and not bobs_run["deduplicated"]

    # the admin sees both, wherever it asks
    for server in (a, b):
        seen = ids(call(server.resource, admin, "listSessions", {"limit": 100}))
        assert session in seen and bobs_run["session_id"] in seen and run["session_id"] in seen
    assert call(url, admin, "getSession", {"session_id": session})["state"] == "running"
    owners = {  # workspaces are directories: each machine's are there (both, on one SQLite data directory)
        w["owner"]
        for server in (a, b)
        for w in call(server.resource, admin, "listWorkspaces", {})["workspaces"]
        if w["name"] == "app"
    }
    assert owners == {f"{identity_provider.issuer}#alice", f"{identity_provider.issuer}#bob"}
    assert len(call(url, admin, "getEvents", {"sandbox_id": "shared"})["events"]) == 1
    assert WireAs(b.base, admin).task("tasks/get", task)["result"]["taskId"] == task

    # alice still has all of it, and ends her session and her task
    assert "result" in WireAs(a.base, alice).task("tasks/cancel", task)
    assert session in ids(call(a.resource, alice, "listSessions", {}))
    assert call(a.resource, alice, "sendInput", {"session_id": session, "eof": True})["closed"] is True
    deadline = time.monotonic() + 20
    while call(a.resource, alice, "getSession", {"session_id": session, "wait_s": 5})["state"] == "running":
        assert time.monotonic() < deadline
    assert [e["data"]["by"] for e in call(b.resource, alice, "getEvents", {"sandbox_id": "shared"})["events"]] == [
        "alice"
    ]
    assert re.fullmatch(r"ses_[0-9a-f]+", session)


async def test_another_owners_id_costs_the_same_work_as_an_id_that_does_not_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not only the same text: the same database queries and the same file reads, whether the id is someone else's
    (a session this server follows, or one only recorded) or nobody's."""
    from providers.local import session_records
    from providers.services import READ, RUN, Caller, acting_as
    from server.config import load_settings
    from server.state import AppState

    alice = Caller("https://idp.test#alice", frozenset({READ, RUN}))
    bob = Caller("https://idp.test#bob", frozenset({READ, RUN}))
    async with AppState.open(load_settings()) as state:
        runtime = state.opened["local"]
        with acting_as(alice):
            followed = (await runtime.exec_run("sleep 30", interactive=True, wait=False)).session_id
            recorded = (await runtime.exec_run("true")).session_id
            task = (await runtime.remember_task("task_" + "a" * 24, "get_session", recorded, recorded)).id
        work: list[str] = []
        real_rows, real_read = runtime._store.db.rows, session_records.sv.read_json

        async def rows(sql: str, *args: Any, **kwargs: Any) -> Any:
            work.append("query")
            return await real_rows(sql, *args, **kwargs)

        def read_json(path: str) -> Any:
            work.append("file")
            return real_read(path)

        monkeypatch.setattr(runtime._store.db, "rows", rows)
        monkeypatch.setattr(session_records.sv, "read_json", read_json)

        async def attempt(operation: Any, ident: str) -> tuple[list[str], str]:
            work.clear()
            try:
                outcome = repr(await operation(ident))
            except Exception as exc:
                outcome = str(exc).replace(ident, "<id>")
            return list(work), outcome

        operations = (
            runtime.get_session,
            runtime.stop_session,
            lambda ident: runtime.send_input(ident, "hi\n"),
            lambda ident: runtime.read_output(ident, "stdout", 0, 100),
            lambda ident: runtime.get_session(ident, wait_s=1),
        )
        with acting_as(bob):
            for hidden in (followed, recorded):
                for operation in operations:
                    assert await attempt(operation, hidden) == await attempt(operation, like(hidden))
            assert await attempt(runtime.recall_task, task) == await attempt(runtime.recall_task, like(task))
        with acting_as(alice):
            assert (await runtime.stop_session(followed)).stopped


def as_2025(url: str, token: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One request of a 2025-11-25 client (stateless: the version rides in its header)."""
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2025-11-25"}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return message(httpx.post(url, json=body, headers=headers, timeout=60))


def test_a_remote_call_made_as_a_task_runs_as_its_creator_and_is_its_creators(
    identity_provider: IdentityProvider, tmp_path: Path
) -> None:
    """A task that is a tool call running in the server (a remote provider's) is seen, here and through the shared
    state, by its creator and an admin only."""
    from tests.fakes import Reply, fake_api
    from tests.test_tasks_shared import ANSWER, SLOW

    with fake_api() as api:
        api.routes[("POST", "/xano/project/slow/run/exec")] = Reply(body=ANSWER, delay_s=60)
        env = {
            "RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data"),
            "XANO_ACCESS_TOKEN": "tok-xano",
            "XANO_RUN_BASE_URL": api.url("/xano"),
        }
        shared = 'shared_providers = ["xano"]'  # every user may use the deployment's Xano account
        server = serve(identity_provider, tmp_path, "--stateless", env=env, oauth=shared)
        try:
            alice, bob, admin = (identity_provider.token(who, server.resource) for who in ("alice", "bob", "admin"))
            task = WireAs(server.base, alice).call("execRun", SLOW)["taskId"]
            assert WireAs(server.base, alice).task("tasks/get", task)["result"]["status"] == "working"
            hidden = WireAs(server.base, bob).task("tasks/get", task)["error"]["message"]
            missing = WireAs(server.base, bob).task("tasks/get", like(task))["error"]["message"]
            same_answer(hidden, missing, task, like(task))
            assert WireAs(server.base, bob).task("tasks/cancel", task)["error"]["message"] == hidden
            assert WireAs(server.base, admin).task("tasks/get", task)["result"]["status"] == "working"
            assert "result" in WireAs(server.base, alice).task("tasks/cancel", task)

            # the same in the 2025-11-25 form of tasks (tools/call with `task`, tasks/get, tasks/result)
            created = as_2025(server.resource, alice, "tools/call", {"name": "execRun", "arguments": SLOW, "task": {}})
            old = created["result"]["task"]["taskId"]
            assert as_2025(server.resource, alice, "tasks/get", {"taskId": old})["result"]["status"] == "working"
            for method in ("tasks/get", "tasks/result", "tasks/cancel"):
                hidden = as_2025(server.resource, bob, method, {"taskId": old})["error"]["message"]
                missing = as_2025(server.resource, bob, method, {"taskId": like(old)})["error"]["message"]
                same_answer(hidden, missing, old, like(old))
            assert as_2025(server.resource, admin, "tasks/get", {"taskId": old})["result"]["status"] == "working"
            assert as_2025(server.resource, alice, "tasks/cancel", {"taskId": old})["result"]["status"] == "cancelled"
        finally:
            stop_server(server.process)


def completions(url: str, token: str, template: str, argument: str, prefix: str) -> list[str]:
    ref = {"type": "ref/resource", "uri": template}
    answer = message(
        rpc(url, token, "completion/complete", {"ref": ref, "argument": {"name": argument, "value": prefix}})
    )
    return list(answer["result"]["completion"]["values"])


def test_launchers_are_the_deployments_and_completions_offer_only_ones_own(
    identity_provider: IdentityProvider, tmp_path: Path
) -> None:
    """Every user lists the operator's launchers (runtimes:read); their runs belong to the deployment (`local`), so
    only an admin sees and stops them. Completing a session or sandbox id offers a user only their own."""
    env = {"RUNTIMES_MCP_TOOLSETS": "all", "RUNTIMES_MCP_ON_EXIT": "stop", "RUNTIMES_MCP_DATA_DIR": str(tmp_path / "d")}
    launcher = '[local.launchers.web]\ncommand = "sleep 300"\n'
    server = serve(
        identity_provider, tmp_path, "--stateless", env=env, oauth=f'audience = "{AUDIENCE}"', config=launcher
    )
    try:
        url = server.resource
        alice, bob, admin = (identity_provider.token(who, AUDIENCE) for who in ("alice", "bob", "admin"))
        deadline = time.monotonic() + 30
        while not (web := call(url, bob, "getLauncher", {"launcher_id": "web"}))["running"]:
            assert time.monotonic() < deadline, web
            time.sleep(0.05)  # polled: the launcher starts with the server
        running = web["running"][0]["id"]
        assert [x["id"] for x in call(url, bob, "getLaunchers", {})["launchers"]] == ["web"]

        assert running not in ids(call(url, bob, "listSessions", {"include_launchers": True}))
        for tool in ("getSession", "stopSession"):
            same_answer(
                call(url, bob, tool, {"session_id": running})["error"],
                call(url, bob, tool, {"session_id": like(running)})["error"],
                running,
                like(running),
            )
        mine = call(url, alice, "execRun", {"command": "true"})["session_id"]
        call(url, alice, "storeEvent", {"type": "note", "data": {}, "sandbox_id": "alices-box"})
        sessions, boxes = "local://sessions/{session_id}/{stream}", "events://{sandbox_id}"
        assert completions(url, alice, sessions, "session_id", "ses_") == [mine]
        assert completions(url, bob, sessions, "session_id", "ses_") == []
        assert completions(url, admin, sessions, "session_id", "ses_") == [mine, running]
        assert completions(url, bob, boxes, "sandbox_id", "alice") == []
        assert completions(url, alice, boxes, "sandbox_id", "alice") == ["alices-box"]

        assert running in ids(call(url, admin, "listSessions", {"include_launchers": True}))
        assert call(url, admin, "stopSession", {"session_id": running})["stopped"] is True
    finally:
        stop_server(server.process)


def test_a_remote_providers_account_is_used_only_by_an_admin_unless_the_operator_shares_it(
    identity_provider: IdentityProvider, tmp_path: Path
) -> None:
    """This server does not divide a remote account between users: a signed-in user without runtimes:admin is told
    so (naming the setting that shares it), and nothing reaches the provider; an admin and the static token use it."""
    from tests.fakes import Reply, fake_api

    with fake_api() as api:
        api.routes[("GET", "/xano/project/p/run/session")] = Reply(body={"items": []})
        env = {
            "RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data"),
            "RUNTIMES_MCP_HTTP_TOKEN": "static-SECRET-token",
            "XANO_ACCESS_TOKEN": "tok-xano",
            "XANO_RUN_BASE_URL": api.url("/xano"),
        }
        server = serve(identity_provider, tmp_path, "--stateless", "--json-response", env=env)
        try:
            alice, admin = (identity_provider.token(who, server.resource) for who in ("alice", "admin"))
            arguments = {"provider": "xano", "project_id": "p"}
            refused = call(server.resource, alice, "listSessions", arguments)["error"]
            assert "xano: not allowed: Xano Run API works with this deployment's account" in refused
            assert "Next: Ask the operator" in refused and "RUNTIMES_MCP_OAUTH_SHARED_PROVIDERS" in refused
            assert api.requests == []
            assert call(server.resource, alice, "listSessions", {})["sessions"] == []  # her own local runs: fine
            assert call(server.resource, admin, "listSessions", arguments)["sessions"] == []
            assert call(server.resource, "static-SECRET-token", "listSessions", arguments)["sessions"] == []
            assert len(api.requests) == 2
        finally:
            stop_server(server.process)
