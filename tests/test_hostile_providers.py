"""Every remote tool x provider of the registry against a provider that answers badly on purpose: it echoes the
request (headers, query, body) in its errors and its successes, answers lone surrogates, NaN and Infinity,
nesting deeper than any client reads, a redirect, or `{}`. No declared credential reaches a result or an error,
text and numbers come out valid, and a broken answer is a provider error that names the provider."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import quote, quote_plus

import httpx
import pytest

from providers.computesdk.client import ComputeSDKEventsClient
from providers.registry import PROVIDERS
from tests.conftest import RawStdio, connect
from tests.fakes import FakeAPI, Recorded, Reply, decthings_frame, fake_api
from tests.test_computesdk_pubsub import FakePubSub, read_line, serve, until
from tools.catalog import ALL

# The providers reached over HTTP (ray's agents are reached through Ray: tests/test_ray.py).
HTTP_PROVIDERS = {name for name, provider in PROVIDERS.items() if provider.endpoints}
# Each credential of every HTTP provider, with characters that change when percent-encoded.
CREDENTIALS = {
    setting.env: f"{setting.env.lower()}+Sec/ret=9"
    for provider in PROVIDERS.values()
    if provider.name in HTTP_PROVIDERS
    for setting in provider.credentials
}
BASE_URLS = {
    "SPRITES_BASE_URL": "/sprites",
    "XANO_RUN_BASE_URL": "/xano",
    "ARCHASTRO_BASE_URL": "/archastro",
    "DECTHINGS_BASE_URL": "/decthings",
    "COMPUTESDK_GATEWAY_URL": "/computesdk",
}
# Arguments a call needs beyond the required ones to reach the provider at all.
REACHING = {
    ("execRun", "xano"): {"project_id": "p-1", "doc": "job x {}"},
    ("updateRoutine", "archastro"): {"name": "renamed"},
}


def sample(annotation: Any) -> Any:
    """A valid value of an argument's type."""
    if get_origin(annotation) is Annotated:
        return sample(get_args(annotation)[0])
    if get_origin(annotation) is Literal:
        return get_args(annotation)[0]
    if get_origin(annotation) is list:
        return [sample(get_args(annotation)[0])]
    if get_origin(annotation) is dict:
        return {"k": "v"}
    return {str: "x-1", int: 1, float: 1.0, bool: True}.get(annotation, "x-1")


def remote_calls() -> list[tuple[str, str, dict[str, Any]]]:
    """(tool, provider, arguments) for every remote provider of every tool: the registry decides."""
    calls = []
    for spec in ALL:
        for provider in spec.providers:
            if provider not in HTTP_PROVIDERS:
                continue
            required, _ = spec.takes(provider)
            arguments = {name: sample(next(a for a in spec.args if a.name == name).type) for name in sorted(required)}
            arguments.update(REACHING.get((spec.name, provider), {}))
            calls.append((spec.name, provider, {"provider": provider, **arguments}))
    return calls


CALLS = remote_calls()


def echo_of(request: Recorded) -> dict[str, Any]:
    """The request as a careless API echoes it: raw, as text, percent-encoded, and as object keys."""
    values = [*request.headers.values(), *(v for vs in request.query.values() for v in vs)]
    return {
        "headers": request.headers,
        "query": request.query,
        "body": request.body.decode("utf-8", "replace"),
        "text": f"{request.method} {request.path} {request.headers} {request.query}",
        "encoded": [quote(v, safe="") for v in values] + [quote_plus(v) for v in values],
        "keys": {v: 1 for v in values},
    }


def said(request: Recorded) -> str:
    """The request's header and query values as one short line (what an error message would quote)."""
    return "you sent " + " ".join([*request.headers.values(), *(v for vs in request.query.values() for v in vs)])


def success_body(request: Recorded, payload: Any) -> Reply:
    """A success in the provider's own shape, with `payload` wherever the contract lets a value pass through."""
    item = {"id": "it-1", "state": "running", "status": "running", "is_active": True, "echo": payload}
    if request.path.startswith("/decthings"):
        launcher = {"id": "pl-1", "name": "n", "state": {"type": "active"}, "echo": payload}
        frame = {"result": {"persistentLaunchers": [launcher], "total": 1, "offset": 0, "limit": 20}}
        return Reply(body=decthings_frame(frame), headers={"Content-Type": "application/octet-stream"})
    if request.path.startswith("/computesdk"):
        event = {"id": "ev-1", "sandboxId": "sb", "type": "t", "data": {"echo": payload}, "timestamp": 1}
        data = {"eventId": "ev-1", "sandboxId": "sb", "type": "t", "timestamp": 1, "events": [event]}
        return Reply(body={"success": True, "data": data})
    if request.path.endswith("/kill"):
        return Reply(body=json.dumps({"type": "complete", "exit_code": 0, "echo": payload}) + "\n")
    body = {"id": "rec-1", "session_id": "ses-1", "state": "complete", "status": "completed", "echo": payload}
    return Reply(body={**body, "items": [item], "data": [item], "sessions": [item], "response": payload})


def error_body(request: Recorded, status: int) -> Reply:
    message = said(request)
    if request.path.startswith("/decthings") and status == 200:
        error = {"code": message, "parameterName": message, "reason": message}
        return Reply(body=decthings_frame({"error": error}), headers={"Content-Type": "application/octet-stream"})
    error = {"message": message, "code": message, "fields": {"auth": [message]}}
    return Reply(status, {"error": error, "message": message, "success": False, "echo": echo_of(request)})


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    with fake_api() as fake:
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        for name, prefix in BASE_URLS.items():
            monkeypatch.setenv(name, fake.url(prefix))
        monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
        monkeypatch.setenv("RUNTIMES_MCP_RETRIES", "0")
        yield fake


async def call_everything(api: FakeAPI, answer: Callable[[Recorded], Reply]) -> list[tuple[str, str, Any]]:
    """Call every remote tool of every provider against `answer`; (tool, provider, result) of each."""
    api.fallback = answer
    results = []
    async with connect() as client:
        for tool, provider, arguments in CALLS:
            results.append((tool, provider, await client.call_tool(tool, arguments)))
    return results


def shown(result: Any) -> str:
    """Everything a client gets from a tool result, as text."""
    return "\n".join([*(getattr(b, "text", "") for b in result.content), json.dumps(result.structured_content)])


def credential_forms(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value), value.lower()}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda r: success_body(r, echo_of(r)), id="200-echo"),
        pytest.param(lambda r: error_body(r, 401), id="401-echo"),
        pytest.param(lambda r: error_body(r, 422), id="422-echo"),
        pytest.param(lambda r: error_body(r, 500), id="500-echo"),
        pytest.param(lambda r: error_body(r, 200), id="decthings-200-error-echo"),
    ],
)
async def test_no_declared_credential_reaches_a_result_or_an_error_whatever_the_provider_echoes(
    hostile: FakeAPI, answer: Callable[[Recorded], Reply]
) -> None:
    results = await call_everything(hostile, answer)
    reached = {r.path.split("/")[1] for r in hostile.requests}
    assert reached == {prefix.strip("/") for prefix in BASE_URLS.values()}
    sent = "\n".join(f"{r.headers} {r.query}" for r in hostile.requests)
    for name, value in CREDENTIALS.items():
        assert value in sent, f"{name} never reached the fake: the test would prove nothing"
        for tool, provider, result in results:
            text = shown(result)
            for form in credential_forms(value):
                assert form not in text, f"{name} leaked by {tool} with {provider}: {text[:300]}"


async def test_base_url_userinfo_sent_as_basic_credentials_is_redacted_when_echoed(
    hostile: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx sends a base URL's user:password as `Authorization: Basic <base64>`; an echo of it is a credential.
    monkeypatch.setenv("SPRITES_BASE_URL", hostile.url("/sprites").replace("http://", "http://ops:pa%2Bss-9@"))
    hostile.fallback = lambda r: success_body(r, echo_of(r))
    async with connect() as client:
        result = await client.call_tool("listSessions", {"provider": "sprites", "sprite": "box"})
    basic = hostile.last().headers["authorization"].removeprefix("Basic ")
    assert basic and basic in hostile.last().headers["authorization"]
    for secret in (basic, "pa+ss-9", "pa%2Bss-9"):
        assert secret not in shown(result)


async def test_a_pubsub_refusal_that_echoes_the_token_shows_it_redacted() -> None:
    async def refuse(stream: Any, n: int, received: list[str]) -> None:
        line = await read_line(stream, received)
        await stream.send(f"-ERR bad token in {line!r}\r\n".encode())

    fake = FakePubSub(refuse)
    token = CREDENTIALS["COMPUTESDK_ACCESS_TOKEN"]
    async with serve(fake) as port:
        client = ComputeSDKEventsClient(gateway_url="http://127.0.0.1:9", access_token=token, pubsub_port=port)
        client.pubsub_host = "127.0.0.1"

        async def ignore(_: Any) -> None:
            pass

        stream = client.stream("sbx", ignore)
        await stream._connect_once()
        await until(lambda: stream.last_error is not None)
        await client.aclose()
    assert token in fake.lines[0][0] and "bad token" in str(stream.last_error)
    assert token not in str(stream.last_error) and "[redacted]" in str(stream.last_error)


# --- answers no client can read: made valid, or a provider error --------------------------------------------
BAD_TEXT = {
    "lone": "a\udcffb",
    "high\ud800": "key with a lone surrogate",
    "pair": "\ud83d\ude00",
    "nan": float("nan"),
    "inf": float("inf"),
    "list": [float("-inf"), "\udfff"],
    "raw": "RAW-BYTES",
}
# Put in the body as bytes: invalid UTF-8, and a surrogate encoded as UTF-8 (Python's JSON reader lets it through).
RAW_BYTES = b"\xff\xfe \xed\xb3\xbf"


def rewritten(reply: Reply, change: Callable[[bytes], bytes]) -> Reply:
    """`reply` with its JSON written as bytes and then changed (a Decthings frame is rebuilt around them)."""
    if isinstance(reply.body, bytes):
        frame = json.loads(reply.body[1:])
        return Reply(body=decthings_frame(change(json.dumps(frame).encode())), headers=reply.headers)
    if isinstance(reply.body, str):  # NDJSON
        return Reply(body=change(reply.body.rstrip("\n").encode()) + b"\n")
    return Reply(reply.status, change(json.dumps(reply.body).encode()), {"Content-Type": "application/json"})


def careless(raw: bool) -> Callable[[bytes], bytes]:
    """JSON as a careless server writes it: surrogates as \\u escapes, NaN, 1e999, and with `raw`, bytes that
    are not UTF-8."""
    return lambda data: data.replace(b"[Infinity, 1]", b"[1e999, 1]").replace(b"RAW-BYTES", RAW_BYTES if raw else b"x")


def with_bad_text(raw: bool) -> Callable[[Recorded], Reply]:
    return lambda r: rewritten(success_body(r, {**BAD_TEXT, "huge": [float("inf"), 1]}), careless(raw))


def error_with_bad_text(raw: bool) -> Callable[[Recorded], Reply]:
    def answer(request: Recorded) -> Reply:
        message = "refused \udcff RAW-BYTES"
        body = {"error": {"message": message, "code": "c\ud800"}, "message": message, "success": False}
        return rewritten(Reply(401, {**body, "n": float("nan")}), careless(raw))

    return answer


def strict_json(line: bytes) -> Any:
    """A line of the wire as strict JSON: UTF-8, no NaN or Infinity, no lone surrogate in any string."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} on the wire: {line[:200]!r}")

    value = json.loads(line.decode("utf-8"), parse_constant=refuse)

    def check(item: Any) -> None:
        if isinstance(item, str):
            item.encode("utf-8")  # a lone surrogate cannot be encoded
        elif isinstance(item, dict):
            for key, inner in item.items():
                check(key)
                check(inner)
        elif isinstance(item, list):
            for inner in item:
                check(inner)

    check(value)
    return value


@pytest.mark.parametrize(
    ("answer", "raw"),
    [(with_bad_text, False), (with_bad_text, True), (error_with_bad_text, False), (error_with_bad_text, True)],
    ids=["success", "success-raw-bytes", "error", "error-raw-bytes"],
)
def test_no_provider_answer_can_end_the_stdio_server_or_put_invalid_json_on_the_wire(
    hostile: FakeAPI, answer: Callable[[bool], Callable[[Recorded], Reply]], raw: bool
) -> None:
    hostile.fallback = answer(raw)
    with RawStdio() as server:
        for n, (tool, _, arguments) in enumerate(CALLS, start=10):
            server.send(
                {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
            )
        replies = [strict_json(line) for line in server.lines(len(CALLS))]
        assert server.alive(), server.stderr()
    assert sorted(r["id"] for r in replies) == list(range(10, 10 + len(CALLS)))
    texts = "\n".join(r["result"]["content"][0]["text"] for r in replies)
    assert "\ufffd" in texts  # the text came through, made valid
    if answer is with_bad_text and not raw:
        assert "\U0001f600" in texts  # a surrogate pair written as two escapes is the character it encodes


def redirect(status: int) -> Callable[[Recorded], Reply]:
    token = CREDENTIALS["SPRITES_TOKEN"]
    return lambda r: Reply(status, b"", {"Location": f"http://127.0.0.1:9/login?next={quote(token)}"})


def nothing(body: bytes) -> Callable[[Recorded], Reply]:
    """A success that says nothing: no body, or `null`."""
    return lambda r: Reply(200, body, {"Content-Type": "application/json"})


def empty(request: Recorded) -> Reply:
    if request.path.startswith("/decthings"):
        return Reply(body=decthings_frame({"result": {}}), headers={"Content-Type": "application/octet-stream"})
    return Reply(body={} if not request.path.endswith("/kill") else "{}\n")


def nested(depth: int) -> Callable[[Recorded], Reply]:
    deep = b"[" * depth + b"]" * depth
    return lambda r: rewritten(success_body(r, "DEEP"), lambda data: data.replace(b'"DEEP"', deep))


# Calls whose success needs no body: an HTTP 2xx is the whole answer (delete), or says it is done (stop).
DONE_BY_STATUS = {("deleteRoutine", "archastro"), ("deleteSession", "archastro")}
STOPPED_BY_STATUS = {("stopSession", "sprites"), ("stopSession", "xano")}


@pytest.mark.parametrize(
    ("answer", "expected", "succeeding"),
    [
        (redirect(302), "answered 302, a redirect to http://127.0.0.1:9/login, which is not followed", set()),
        (redirect(301), "answered 301, a redirect to http://127.0.0.1:9/login, which is not followed", set()),
        (redirect(307), "answered 307, a redirect to http://127.0.0.1:9/login, which is not followed", set()),
        (redirect(308), "answered 308, a redirect to http://127.0.0.1:9/login, which is not followed", set()),
        (empty, "protocol error", DONE_BY_STATUS | STOPPED_BY_STATUS),
        (nothing(b""), "protocol error", DONE_BY_STATUS | STOPPED_BY_STATUS),
        (nothing(b"null"), "protocol error", DONE_BY_STATUS | STOPPED_BY_STATUS),
        (nested(100), "protocol error: the answer is nested deeper than 64 levels", DONE_BY_STATUS),
        (nested(5000), "protocol error: the answer is nested deeper than 64 levels", DONE_BY_STATUS),
    ],
    ids=["302", "301", "307", "308", "empty-object", "empty-body", "null", "nested-100", "nested-5000"],
)
async def test_an_answer_that_is_no_answer_is_a_provider_error_naming_the_provider(
    hostile: FakeAPI, answer: Callable[[Recorded], Reply], expected: str, succeeding: set[tuple[str, str]]
) -> None:
    results = await call_everything(hostile, answer)
    assert len(hostile.requests) == len(CALLS)  # one request each: nothing followed, nothing retried
    for tool, provider, result in results:
        text = shown(result)
        if (tool, provider) in succeeding:
            assert not result.is_error, text
            continue
        assert result.is_error, f"{tool} with {provider} succeeded: {text[:300]}"
        assert text.startswith(f"Error executing tool {tool}: {provider}: ") and "Next: " in text, text
        assert "a bug in runtimes-mcp" not in text and expected in text, text
        assert CREDENTIALS["SPRITES_TOKEN"] not in text and quote(CREDENTIALS["SPRITES_TOKEN"]) not in text


def odd_types(request: Recorded) -> Reply:
    """Every field a client reads, with a type the contract does not give it."""
    odd: dict[str, Any] = {
        **{k: 5 for k in ("created", "created_at", "inserted_at", "label", "name", "command", "instructions")},
        **{k: 7 for k in ("error_msg", "status", "routine", "agent_session", "before_cursor", "after_cursor")},
        **{k: "noon" for k in ("timestamp", "createdAt", "workspaceId", "total", "offset", "limit", "exit_code")},
        "nextPage": {"n": 2},
        "state": {"type": 5, "previous": 7},
        "running": 5,
        "data": {"not": "a list"},
    }
    reply = success_body(request, {})
    if isinstance(reply.body, bytes):
        launcher = {"id": "pl-1", **odd}
        frame = {"result": {"persistentLaunchers": [launcher], "total": "many", "offset": [], "limit": None}}
        return Reply(body=decthings_frame(frame), headers=reply.headers)
    if isinstance(reply.body, str):
        return Reply(body=json.dumps({"type": "complete", **odd}) + "\n")
    assert isinstance(reply.body, dict)
    items = [{"id": "it-1", **odd}]
    if request.path.startswith("/computesdk"):
        data = {"eventId": "e", "sandboxId": "s", "type": "t", "timestamp": "noon", "events": items}
        return Reply(body={"success": True, "data": data})
    return Reply(body={**reply.body, **odd, "items": items, "sessions": items, "data": items})


async def test_fields_of_unexpected_types_are_never_called_a_bug_in_runtimes_mcp(hostile: FakeAPI) -> None:
    results = await call_everything(hostile, odd_types)
    for tool, provider, result in results:
        text = shown(result)
        assert "a bug in runtimes-mcp" not in text, (tool, provider, text[:400])
        assert not result.is_error or f": {provider}: protocol error: " in text, (tool, provider, text[:400])


@pytest.mark.parametrize("mode", [(), ("--json-response",)], ids=["sse", "json"])
def test_no_provider_answer_gets_an_http_caller_a_500_or_an_empty_reply(
    hostile: FakeAPI, mode: tuple[str, ...]
) -> None:
    from tests.test_http import http_server
    from tests.test_tasks_e2e import Wire

    hostile.fallback = lambda r: with_bad_text(False)(r) if r.method == "GET" else error_with_bad_text(False)(r)
    with http_server("--stateless", *mode) as (base, process):
        wire = Wire(base, tasks=False)
        for tool, provider, arguments in CALLS:
            body, headers = wire.envelope("tools/call", {"name": tool, "arguments": arguments}, tool)
            response = httpx.post(wire.url, json=body, headers=headers, timeout=30)
            assert response.status_code == 200, (tool, provider, response.status_code, response.text[:300])
            lines = [line[5:] for line in response.text.splitlines() if line.startswith("data:")] or [response.text]
            reply = strict_json(lines[-1].strip().encode())
            assert reply["id"] == 7 and reply["result"]["content"][0]["text"], (tool, provider, reply)
        assert process.poll() is None


def test_the_last_checks_before_the_wire_mend_what_a_tool_or_message_carries() -> None:
    """Behind the providers' own reading: a result, a tool error and any stdio message with text that is not
    valid Unicode or a number JSON has not come out valid, never as a serializer failure."""
    from mcp.types import JSONRPCResponse

    from providers.models import ExecResult
    from server.stdio_pipes import serialized
    from tools.results import as_tool_result

    model = ExecResult(provider="p", session_id="s\udcff", state="x", response={"n": float("nan")}, raw={"k\ud800": 1})
    result = as_tool_result(model)
    wire = strict_json(result.model_dump_json(by_alias=True).encode())
    assert wire["structuredContent"]["session_id"] == "s\ufffd" and wire["structuredContent"]["response"] == {"n": None}
    assert json.loads(wire["content"][0]["text"])["raw"] == {"k\ufffd": 1}

    message = JSONRPCResponse(jsonrpc="2.0", id=3, result={"text": "a\udfffb", "n": [float("inf")]})
    assert strict_json(serialized(message)) == {"jsonrpc": "2.0", "id": 3, "result": {"text": "a\ufffdb", "n": [None]}}
