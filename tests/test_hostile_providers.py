"""Every remote tool x provider of the registry against a provider that answers badly on purpose: it echoes the
request (headers, query, body) in its errors and its successes, answers lone surrogates, NaN and Infinity,
nesting deeper than any client reads, a redirect, or `{}`. No declared credential reaches a result or an error,
text and numbers come out valid, and a broken answer is a provider error that names the provider."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import quote, quote_plus

import pytest

from providers.computesdk.client import ComputeSDKEventsClient
from providers.registry import PROVIDERS
from tests.conftest import connect
from tests.fakes import FakeAPI, Recorded, Reply, decthings_frame, fake_api
from tests.test_computesdk_pubsub import FakePubSub, read_line, serve, until
from tools.catalog import ALL

# Each credential of every provider, with characters that change when percent-encoded.
CREDENTIALS = {
    setting.env: f"{setting.env.lower()}+Sec/ret=9"
    for provider in PROVIDERS.values()
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
            if provider == "local":
                continue
            required, _ = spec.takes(provider)
            arguments = {name: sample(spec.arg(name).type) for name in sorted(required)}
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
