"""Every remote tool x provider against a fake that records requests: method, path, query, headers and body
are exactly what the provider documents, and realistic answers map to our shapes."""

from __future__ import annotations

from typing import Any

from providers.decthings.client import decode_response
from tests.conftest import TOKENS, connect, error_text, structured
from tests.fakes import FakeAPI, Recorded, Reply, decthings_frame


def assert_request(
    rec: Recorded,
    method: str,
    path: str,
    *,
    auth: tuple[str, str],
    query: dict[str, list[str]] | None = None,
    json_body: Any = None,
    no_body: bool = False,
) -> None:
    assert (rec.method, rec.path) == (method, path)
    assert rec.query == (query or {})
    assert rec.headers.get(auth[0].lower()) == auth[1]
    if json_body is not None:
        assert rec.headers["content-type"] == "application/json"
        assert rec.json() == json_body
    if no_body:
        assert rec.body == b""


BEARER = {name: ("Authorization", f"Bearer {value}") for name, value in TOKENS.items()}
ARCH_KEY = ("x-archastro-api-key", TOKENS["ARCHASTRO_API_KEY"])


async def call(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with connect() as client:
        return structured(await client.call_tool(tool, args))


# --- Sprites ---------------------------------------------------------------------------------------
async def test_sprites_list_sessions(api: FakeAPI) -> None:
    api.routes[("GET", "/sprites/v1/sprites/box/exec")] = Reply(
        body={
            "sessions": [
                {
                    "id": 7,
                    "command": "python server.py",
                    "workdir": "/app",
                    "created": "2026-01-15T10:30:00Z",
                    "is_active": True,
                    "tty": False,
                },
                {"id": 8, "command": "", "created": "2026-01-15T10:25:00Z", "is_active": False},
            ]
        }
    )
    out = await call("listSessions", {"provider": "sprites", "sprite": "box"})
    assert_request(api.last(), "GET", "/sprites/v1/sprites/box/exec", auth=BEARER["SPRITES_TOKEN"], no_body=True)
    assert out["count"] == 2
    first, second = out["sessions"]
    assert (first["id"], first["status"], first["started_at"], first["command"]) == (
        "7",
        "active",
        "2026-01-15T10:30:00Z",
        "python server.py",
    )
    assert (second["id"], second["status"], second.get("command")) == ("8", "completed", None)
    assert first["raw"]["workdir"] == "/app"


async def test_sprites_list_accepts_a_bare_array(api: FakeAPI) -> None:
    api.routes[("GET", "/sprites/v1/sprites/box/exec")] = Reply(body=[{"id": 1, "is_active": True}])
    out = await call("listSessions", {"provider": "sprites", "sprite": "box"})
    assert [s["id"] for s in out["sessions"]] == ["1"]


async def test_sprites_kill_reads_the_ndjson_stream_and_410_is_calm(api: FakeAPI) -> None:
    route = ("POST", "/sprites/v1/sprites/box/exec/7/kill")
    api.routes[route] = Reply(
        body='{"type":"signal","data":"SIGTERM"}\n{"type":"complete","exit_code":143}\n',
        headers={"Content-Type": "application/x-ndjson"},
    )
    out = await call("stopSession", {"provider": "sprites", "sprite": "box", "session_id": "7"})
    assert_request(
        api.last(), "POST", "/sprites/v1/sprites/box/exec/7/kill", auth=BEARER["SPRITES_TOKEN"], no_body=True
    )
    assert out["stopped"] is True and out["exit_code"] == 143

    out = await call(
        "stopSession",
        {"provider": "sprites", "sprite": "box", "session_id": "7", "signal": "SIGKILL", "timeout_s": 2.5},
    )
    assert_request(
        api.last(),
        "POST",
        "/sprites/v1/sprites/box/exec/7/kill",
        auth=BEARER["SPRITES_TOKEN"],
        query={"signal": ["SIGKILL"], "timeout": ["2.5s"]},
        no_body=True,
    )
    assert "SIGKILL" in out["message"]

    api.routes[("POST", "/sprites/v1/sprites/box/exec/sess_123/kill")] = Reply(
        body='{"type":"complete","exit_code":0}\n'
    )
    out = await call("stopSession", {"provider": "sprites", "sprite": "box", "session_id": "sess_123"})
    assert out["session_id"] == "sess_123" and out["exit_code"] == 0  # ids are strings, as the contract shows

    api.routes[route] = Reply(410, {"error": "gone", "message": "session already exited"})
    out = await call("stopSession", {"provider": "sprites", "sprite": "box", "session_id": "7"})
    assert out["stopped"] is False and "already exited" in out["message"]


# --- Xano ------------------------------------------------------------------------------------------
XANO_PAGE = {
    "itemsReceived": 1,
    "curPage": 1,
    "nextPage": 2,
    "items": [{"id": "s-1", "run_id": "r-1", "state": "running", "created_at": 1763900000000, "label": "nightly"}],
}


async def test_xano_list_sessions_of_project_and_of_run(api: FakeAPI) -> None:
    api.routes[("GET", "/xano/api:run/project/p-1/run/session")] = Reply(body=XANO_PAGE)
    out = await call("listSessions", {"provider": "xano", "project_id": "p-1", "page": 1})
    assert_request(
        api.last(),
        "GET",
        "/xano/api:run/project/p-1/run/session",
        auth=BEARER["XANO_ACCESS_TOKEN"],
        query={"page": ["1"]},
    )
    assert out["sessions"][0]["id"] == "s-1" and out["sessions"][0]["status"] == "running"
    assert out["next_cursor"] == "2"

    api.routes[("GET", "/xano/api:run/project/p-1/run/r-1/session")] = Reply(body=XANO_PAGE)
    await call("listSessions", {"provider": "xano", "project_id": "p-1", "run_id": "r-1"})
    assert_request(api.last(), "GET", "/xano/api:run/project/p-1/run/r-1/session", auth=BEARER["XANO_ACCESS_TOKEN"])


async def test_xano_exec_three_ways(api: FakeAPI) -> None:
    answer = {"session_id": "s-9", "state": "complete", "response": "Hello"}
    doc = 'job hello {\n  response = "Hello"\n}'
    api.routes[("POST", "/xano/api:run/project/p-1/run/exec")] = Reply(body=answer)
    out = await call(
        "execRun", {"provider": "xano", "project_id": "p-1", "doc": doc, "args": {"n": 1}, "template": "small"}
    )
    assert_request(
        api.last(),
        "POST",
        "/xano/api:run/project/p-1/run/exec",
        auth=BEARER["XANO_ACCESS_TOKEN"],
        json_body={"doc": doc, "args": {"n": 1}, "template": "small"},
    )
    assert (out["session_id"], out["state"], out["response"]) == ("s-9", "complete", "Hello")

    api.routes[("POST", "/xano/api:run/project/p-1/run/r-1/exec")] = Reply(body=answer)
    await call("execRun", {"provider": "xano", "project_id": "p-1", "run_id": "r-1", "env": {"MODE": "x"}})
    assert_request(
        api.last(),
        "POST",
        "/xano/api:run/project/p-1/run/r-1/exec",
        auth=BEARER["XANO_ACCESS_TOKEN"],
        json_body={"env": {"MODE": "x"}},
    )

    api.routes[("POST", "/xano/api:run/session/s-9/exec")] = Reply(body=answer)
    await call("execRun", {"provider": "xano", "session_id": "s-9", "doc": doc})
    assert_request(
        api.last(), "POST", "/xano/api:run/session/s-9/exec", auth=BEARER["XANO_ACCESS_TOKEN"], json_body={"doc": doc}
    )


async def test_xano_exec_with_an_impossible_combination_sends_nothing(api: FakeAPI) -> None:
    async with connect() as client:
        result = await client.call_tool("execRun", {"provider": "xano", "doc": "job x {}"})
        assert "doc needs project_id" in error_text(result)
        result = await client.call_tool(
            "execRun", {"provider": "xano", "project_id": "p-1", "run_id": "r-1", "template": "small"}
        )
        assert "template goes with a new doc only" in error_text(result)
    assert api.requests == []


async def test_xano_run_history_gives_the_run_ids_other_tools_need(api: FakeAPI) -> None:
    api.routes[("GET", "/xano/api:run/project/p-1/run")] = Reply(
        body={"itemsReceived": 1, "curPage": 2, "nextPage": 3, "items": [{"id": "r-1", "name": "nightly"}]}
    )
    out = await call("listRuns", {"project_id": "p-1", "page": 2})
    assert_request(
        api.last(), "GET", "/xano/api:run/project/p-1/run", auth=BEARER["XANO_ACCESS_TOKEN"], query={"page": ["2"]}
    )
    assert (out["items"][0]["id"], out["next_cursor"]) == ("r-1", "3")


async def test_xano_stop_and_session_extras(api: FakeAPI) -> None:
    api.routes[("POST", "/xano/api:run/project/p-1/run/r-1/session/s-1/stop")] = Reply(body={"state": "complete"})
    out = await call("stopSession", {"provider": "xano", "project_id": "p-1", "run_id": "r-1", "session_id": "s-1"})
    assert_request(
        api.last(),
        "POST",
        "/xano/api:run/project/p-1/run/r-1/session/s-1/stop",
        auth=BEARER["XANO_ACCESS_TOKEN"],
        no_body=True,
    )
    assert out["stopped"] is True

    api.routes[("GET", "/xano/api:run/session/s-1")] = Reply(body={"id": "s-1", "state": "error", "error_msg": "boom"})
    got = await call("getSession", {"provider": "xano", "session_id": "s-1"})
    assert (got["state"], got["message"]) == ("error", "boom")

    api.routes[("POST", "/xano/api:run/session/s-1/access")] = Reply(body={"id": "s-1", "access": "public"})
    await call("setSessionAccess", {"session_id": "s-1", "access": "public"})
    assert api.last().json() == {"access": "public"}

    api.routes[("PATCH", "/xano/api:run/session/s-1")] = Reply(body={"id": "s-1"})
    await call("updateSessionRun", {"session_id": "s-1", "name": "nightly"})
    assert (api.last().method, api.last().json()) == ("PATCH", {"name": "nightly"})

    api.routes[("GET", "/xano/api:run/session/s-1/sink")] = Reply(body={"tables": []})
    assert (await call("getSessionSink", {"session_id": "s-1"}))["record"] == {"tables": []}

    api.routes[("POST", "/xano/api:run/project/p-1/doc/info")] = Reply(body={"valid": True})
    await call("checkXanoDoc", {"project_id": "p-1", "doc": "job x {}"})
    assert api.last().json() == {"doc": "job x {}"}


# --- ArchAstro -------------------------------------------------------------------------------------
RUN = {"id": "arr_1", "status": "pending", "agent_session": "ase_1", "created_at": "2026-11-23T10:00:00Z"}


async def test_archastro_invoke_sends_exactly_the_given_fields(api: FakeAPI) -> None:
    api.routes[("POST", "/archastro/api/v1/agent_routines/arn_1/invoke")] = Reply(body=RUN)
    out = await call(
        "invokeRoutine",
        {
            "provider": "archastro",
            "routine": "arn_1",
            "message": "go",
            "idempotency_key": "k-1",
            "metadata": {"a": 1},
            "user": "usr_1",
        },
    )
    assert_request(
        api.last(),
        "POST",
        "/archastro/api/v1/agent_routines/arn_1/invoke",
        auth=ARCH_KEY,
        json_body={"message": "go", "idempotency_key": "k-1", "metadata": {"a": 1}, "user": "usr_1"},
    )
    assert "authorization" not in api.last().headers
    assert (out["run_id"], out["status"], out["session_id"], out["routine"]) == ("arr_1", "pending", "ase_1", "arn_1")


async def test_archastro_sessions_list_cancel_message_delete(api: FakeAPI) -> None:
    api.routes[("GET", "/archastro/api/v1/agent_sessions")] = Reply(
        body={
            "data": [{"id": "ase_1", "status": "running", "created_at": "2026-11-23T10:00:00Z", "name": "triage"}],
            "before_cursor": "cur_2",
        }
    )
    out = await call(
        "listSessions",
        {"provider": "archastro", "agent": "agi_1", "status": "running,waiting", "limit": 10, "cursor": "cur_1"},
    )
    assert_request(
        api.last(),
        "GET",
        "/archastro/api/v1/agent_sessions",
        auth=ARCH_KEY,
        query={"agent": ["agi_1"], "status": ["running", "waiting"], "limit": ["10"], "before_cursor": ["cur_1"]},
    )
    assert out["sessions"][0]["command"] == "triage" and out["next_cursor"] == "cur_2"

    api.routes[("POST", "/archastro/api/v1/agent_sessions/ase_1/cancel")] = Reply(
        body={"id": "ase_1", "status": "cancelled"}
    )
    stop = await call("stopSession", {"provider": "archastro", "session_id": "ase_1"})
    assert_request(api.last(), "POST", "/archastro/api/v1/agent_sessions/ase_1/cancel", auth=ARCH_KEY, no_body=True)
    assert stop["stopped"] is True

    api.routes[("POST", "/archastro/api/v1/agent_sessions/ase_2/cancel")] = Reply(
        body={"id": "ase_2", "status": "completed"}
    )
    calm = await call("stopSession", {"provider": "archastro", "session_id": "ase_2"})
    assert calm["stopped"] is False and "already completed" in calm["message"]

    api.routes[("POST", "/archastro/api/v1/agent_sessions/ase_1/message")] = Reply(body={"id": "ase_1"})
    await call("sendSessionMessage", {"session_id": "ase_1", "content": "continue", "role": "user"})
    assert api.last().json() == {"content": "continue", "role": "user"}

    api.routes[("DELETE", "/archastro/api/v1/agent_sessions/ase_1")] = Reply(204)
    deleted = await call("deleteSession", {"session_id": "ase_1"})
    assert deleted["record"] == {"id": "ase_1", "deleted": True}

    api.routes[("GET", "/archastro/api/v1/agent_sessions/ase_1")] = Reply(body={"id": "ase_1", "status": "waiting"})
    assert (await call("getSession", {"provider": "archastro", "session_id": "ase_1"}))["state"] == "waiting"


async def test_archastro_routine_toolset(api: FakeAPI) -> None:
    api.routes[("GET", "/archastro/api/v1/agent_routines/runs/arr_1")] = Reply(body={**RUN, "status": "completed"})
    run = await call("getRoutineRun", {"provider": "archastro", "run_id": "arr_1"})
    assert run["status"] == "completed"

    api.routes[("GET", "/archastro/api/v1/agent_routines/arn_1/runs")] = Reply(
        body={"data": [RUN], "before_cursor": None}
    )
    runs = await call("listRoutineRuns", {"routine": "arn_1", "status": "failed", "limit": 5, "cursor": "c"})
    assert api.last().query == {"status": ["failed"], "limit": ["5"], "before_cursor": ["c"]}
    assert runs["count"] == 1

    api.routes[("GET", "/archastro/api/v1/agent_routines/arn_1/runs")] = Reply(
        body={"data": [RUN], "before_cursor": "old_1", "after_cursor": "new_1"}
    )
    runs = await call("listRoutineRuns", {"routine": "arn_1", "after_cursor": "new_0"})
    assert api.last().query == {"after_cursor": ["new_0"]}
    assert (runs["next_cursor"], runs["newer_cursor"]) == ("old_1", "new_1")

    api.routes[("GET", "/archastro/api/v1/agent_routines")] = Reply(body={"data": [{"id": "arn_1"}]})
    await call("listRoutines", {"provider": "archastro", "event_type": "agentroutine.invoked"})
    assert api.last().query == {"event_type": ["agentroutine.invoked"]}

    for method, path, tool in (
        ("GET", "/archastro/api/v1/agent_routines/arn_1", "getRoutine"),
        ("POST", "/archastro/api/v1/agent_routines/arn_1/activate", "activateRoutine"),
        ("POST", "/archastro/api/v1/agent_routines/arn_1/pause", "pauseRoutine"),
    ):
        api.routes[(method, path)] = Reply(body={"id": "arn_1", "status": "active"})
        assert (await call(tool, {"routine": "arn_1"}))["record"]["id"] == "arn_1"
        assert (api.last().method, api.last().path) == (method, path)

    api.routes[("GET", "/archastro/api/v1/agent_routines/presets")] = Reply(body=[{"name": "chat"}])
    assert (await call("listRoutinePresets", {}))["items"] == [{"name": "chat"}]


async def test_archastro_session_filters_go_on_the_wire_as_the_contract_names_them(api: FakeAPI) -> None:
    api.routes[("GET", "/archastro/api/v1/agent_sessions")] = Reply(body={"data": []})
    await call(
        "listSessions",
        {"provider": "archastro", "routine_run": ["arr_1", "arr_2"], "exclude_system": True, "limit": 100},
    )
    assert_request(
        api.last(),
        "GET",
        "/archastro/api/v1/agent_sessions",
        auth=ARCH_KEY,
        query={"routine_run": ["arr_1", "arr_2"], "exclude_system": ["true"], "limit": ["100"]},
    )


async def test_archastro_routine_update_and_delete(api: FakeAPI) -> None:
    route = ("PATCH", "/archastro/api/v1/agent_routines/arn_1")
    api.routes[route] = Reply(body={"id": "arn_1", "schedule": "0 9 * * 1"})
    out = await call(
        "updateRoutine",
        {"routine": "arn_1", "schedule": "0 9 * * 1", "handler_type": "chain", "steps": [{"kind": "a"}]},
    )
    assert_request(
        api.last(),
        "PATCH",
        "/archastro/api/v1/agent_routines/arn_1",
        auth=ARCH_KEY,
        json_body={"schedule": "0 9 * * 1", "handler_type": "chain", "steps": [{"kind": "a"}]},
    )
    assert out["record"]["schedule"] == "0 9 * * 1"

    api.routes[("DELETE", "/archastro/api/v1/agent_routines/arn_1")] = Reply(204)
    gone = await call("deleteRoutine", {"routine": "arn_1"})
    assert_request(api.last(), "DELETE", "/archastro/api/v1/agent_routines/arn_1", auth=ARCH_KEY, no_body=True)
    assert gone["record"] == {"id": "arn_1", "deleted": True}

    before = len(api.requests)
    async with connect() as client:
        assert "nothing to change" in error_text(await client.call_tool("updateRoutine", {"routine": "arn_1"}))
    assert len(api.requests) == before


async def test_archastro_agent_session_create_and_update(api: FakeAPI) -> None:
    api.routes[("POST", "/archastro/api/v1/agent_sessions")] = Reply(
        201, {"id": "ase_9", "status": "waiting", "agent": "agi_1"}
    )
    made = await call(
        "createAgentSession",
        {"agent": "agi_1", "instructions": "Triage", "max_turns": 5, "start_idle": True, "thread": "thr_1"},
    )
    assert_request(
        api.last(),
        "POST",
        "/archastro/api/v1/agent_sessions",
        auth=ARCH_KEY,
        json_body={"agent": "agi_1", "instructions": "Triage", "max_turns": 5, "start_idle": True, "thread": "thr_1"},
    )
    assert made["record"]["id"] == "ase_9"

    api.routes[("PATCH", "/archastro/api/v1/agent_sessions/ase_9")] = Reply(body={"id": "ase_9", "metadata": {"a": 1}})
    await call("updateAgentSession", {"session_id": "ase_9", "metadata": {"a": 1}})
    assert_request(
        api.last(), "PATCH", "/archastro/api/v1/agent_sessions/ase_9", auth=ARCH_KEY, json_body={"metadata": {"a": 1}}
    )


async def test_archastro_bounds_are_checked_before_any_request(api: FakeAPI) -> None:
    """The contract's page maximum is 100, routine-run status is one value, and a session list filters on at
    most 100 routine runs: each is an invalid-input error that says what to send, and nothing is sent."""
    async with connect() as client:
        cases = [
            ("listSessions", {"provider": "archastro", "limit": 101}, "limit 101 is over ArchAstro's page maximum"),
            ("listRoutineRuns", {"routine": "arn_1", "limit": 500}, "limit: input should be less than or equal to 100"),
            ("listRoutineRuns", {"routine": "arn_1", "status": "running,failed"}, "status"),
            ("listRoutineRuns", {"routine": "arn_1", "cursor": "a", "after_cursor": "b"}, "not both"),
            (
                "listSessions",
                {"provider": "archastro", "routine_run": [f"arr_{i}" for i in range(101)]},
                "at most 100",
            ),
        ]
        for tool, args, expected in cases:
            text = error_text(await client.call_tool(tool, args))
            assert expected in text and "Next:" in text, (tool, args, text)
    assert api.requests == []


# --- Decthings -------------------------------------------------------------------------------------
LAUNCHER = {
    "id": "pl-1",
    "name": "gpu box",
    "createdAt": 1763900000000,
    "spec": {"type": "gpu"},
    "state": {"type": "recreating", "previous": "exit"},
    "running": [{"id": "t-1", "type": "terminal"}],
}


def framed(payload: dict[str, Any]) -> Reply:
    return Reply(body=decthings_frame(payload), headers={"Content-Type": "application/octet-stream"})


async def test_decthings_get_launchers_framed_request_and_response(api: FakeAPI) -> None:
    route = ("POST", "/decthings/v0/PersistentLauncher/getPersistentLaunchers")
    api.routes[route] = framed({"result": {"persistentLaunchers": [LAUNCHER], "total": 7, "offset": 2, "limit": 1}})
    out = await call(
        "getLaunchers",
        {
            "provider": "decthings",
            "offset": 2,
            "limit": 1,
            "ids": ["pl-1"],
            "search_name": "gpu",
            "sort": "name",
            "sort_direction": "desc",
        },
    )
    rec = api.last()
    assert_request(rec, "POST", route[1], auth=BEARER["DECTHINGS_API_KEY"])
    assert rec.headers["content-type"] == "application/octet-stream"
    params = decode_response(rec.body[1:])
    assert rec.body[0] == 0  # the blob count
    assert params == {
        "offset": 2,
        "limit": 1,
        "filter": {"ids": ["pl-1"], "searchName": "gpu"},
        "sort": "name",
        "sortDirection": "desc",
    }
    assert (out["total"], out["offset"], out["limit"]) == (7, 2, 1)
    launcher = out["launchers"][0]
    assert (launcher["id"], launcher["state"], launcher["previous"]) == ("pl-1", "recreating", "exit")
    assert launcher["running"] == [{"id": "t-1", "type": "terminal"}]
    assert launcher["raw"]["spec"] == {"type": "gpu"}


async def test_decthings_defaults_send_an_empty_object_and_get_launcher_filters_by_id(api: FakeAPI) -> None:
    route = ("POST", "/decthings/v0/PersistentLauncher/getPersistentLaunchers")
    api.routes[route] = framed({"result": {"persistentLaunchers": [], "total": 0, "offset": 0, "limit": 20}})
    await call("getLaunchers", {"provider": "decthings"})
    assert api.last().body == b"\x00\x02{}"
    async with connect() as client:
        missing = await client.call_tool("getLauncher", {"provider": "decthings", "launcher_id": "pl-9"})
    assert missing.is_error and "no persistent launcher 'pl-9'" in missing.content[0].text  # type: ignore[union-attr]
    assert decode_response(api.last().body[1:]) == {"filter": {"ids": ["pl-9"]}}


# --- ComputeSDK ------------------------------------------------------------------------------------
async def test_computesdk_store_and_get_events(api: FakeAPI) -> None:
    api.routes[("POST", "/computesdk/events")] = Reply(
        body={
            "success": True,
            "data": {
                "eventId": "ev_1",
                "sandboxId": "sbx_1",
                "type": "execution.completed",
                "timestamp": 1763900000123,
            },
        }
    )
    stored = await call(
        "storeEvent", {"provider": "computesdk", "type": "execution.completed", "data": {"exitCode": 0}}
    )
    assert_request(
        api.last(),
        "POST",
        "/computesdk/events",
        auth=BEARER["COMPUTESDK_ACCESS_TOKEN"],
        json_body={"type": "execution.completed", "data": {"exitCode": 0}},
    )
    assert "x-api-key" not in api.last().headers
    assert stored == {
        "provider": "computesdk",
        "event_id": "ev_1",
        "sandbox_id": "sbx_1",
        "type": "execution.completed",
        "timestamp": 1763900000123,
    }

    # The SDK's own example answer is the bare object, without the {success, data} envelope.
    bare = {"eventId": "ev_2", "sandboxId": "sbx_1", "type": "custom.event", "timestamp": 1763900000456}
    api.routes[("POST", "/computesdk/events")] = Reply(body=bare)
    stored = await call("storeEvent", {"provider": "computesdk", "type": "custom.event", "data": {}})
    assert (stored["event_id"], stored["timestamp"]) == ("ev_2", 1763900000456)

    api.routes[("GET", "/computesdk/events/sbx_1")] = Reply(
        body={
            "success": True,
            "data": {
                "sandboxId": "sbx_1",
                "count": 1,
                "events": [
                    {
                        "id": "ev_1",
                        "sandboxId": "sbx_1",
                        "workspaceId": 3,
                        "type": "x",
                        "data": {"k": "v"},
                        "timestamp": 5,
                    }
                ],
            },
        }
    )
    got = await call(
        "getEvents", {"provider": "computesdk", "sandbox_id": "sbx_1", "type": "x", "since": 1, "limit": 10}
    )
    assert_request(
        api.last(),
        "GET",
        "/computesdk/events/sbx_1",
        auth=("X-API-Key", TOKENS["COMPUTESDK_API_KEY"]),
        query={"type": ["x"], "since": ["1"], "limit": ["10"]},
    )
    assert "authorization" not in api.last().headers
    assert got["events"][0] == {
        "id": "ev_1",
        "sandbox_id": "sbx_1",
        "type": "x",
        "data": {"k": "v"},
        "timestamp": 5,
        "workspace_id": 3,
    }
