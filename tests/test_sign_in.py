"""Signing in over HTTP against a real OAuth 2.0 / OIDC authorization server (npm oidc-provider on 127.0.0.1, the
`identity_provider` fixture): the protected-resource metadata, 401 challenges, every kind of bad token refused,
scopes that decide what tools/list shows and what a call may do (403 insufficient_scope), introspection of
opaque tokens, the static token beside OAuth, and no token in the logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import DEFAULT_TOOLS
from tests.oidc_server import (
    CLIENTS,
    IdentityProvider,
    Served,
    call,
    hs256_with_public_key,
    rpc,
    serve,
    stop_server,
    unsigned,
)
from tests.test_external_clients import npm_env, ts_sdk_script

STATIC = "static-token-SECRET-5e1d"
SERVED = "Terminating session: None"  # the SDK's INFO line at the end of each stateless request
READ_TOOLS = ["listSessions", "getSession", "getLaunchers", "getEvents", "readFile", "getDocs"]
ALL_TOOLS = DEFAULT_TOOLS


@pytest.fixture(scope="module")
def server(identity_provider: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module: stateless JSON, DEBUG logs (to look for tokens in them), introspection on, and
    the static token beside OAuth."""
    work = tmp_path_factory.mktemp("sign-in")
    oauth = (
        f'introspection_url = "{identity_provider.issuer}/token/introspection"\n'
        'client_id = "runtimes-mcp"\nclient_secret = "rs-secret"\n'
    )
    env = {
        "RUNTIMES_MCP_DATA_DIR": str(work / "data"),
        "RUNTIMES_MCP_LOG_LEVEL": "DEBUG",
        "RUNTIMES_MCP_HTTP_TOKEN": STATIC,
        "RUNTIMES_MCP_ON_EXIT": "stop",
    }
    served = serve(identity_provider, work, "--stateless", "--json-response", env=env, oauth=oauth)
    try:
        yield served
    finally:
        stop_server(served.process)


def tool_names(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [tool["name"] for tool in answer.json()["result"]["tools"]]


def test_the_protected_resource_metadata_names_the_issuer_and_the_scopes(
    server: Served, identity_provider: IdentityProvider
) -> None:
    answer = httpx.get(f"{server.base}/.well-known/oauth-protected-resource/mcp")
    assert answer.status_code == 200
    metadata = answer.json()
    assert metadata["resource"] == server.resource
    assert metadata["authorization_servers"] == [identity_provider.issuer]  # exactly: no slash added
    assert metadata["scopes_supported"] == ["runtimes:read", "runtimes:run"]
    assert metadata["bearer_methods_supported"] == ["header"]


def test_a_request_without_a_token_is_challenged_with_the_metadata_and_the_scopes(server: Served) -> None:
    answer = rpc(server.resource, None, "tools/list")
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert challenge == (
        f'Bearer scope="runtimes:read runtimes:run", '
        f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"'
    )
    assert "error=" not in challenge  # RFC 6750 3.1: no error code when no credentials came


def bad_tokens(provider: IdentityProvider, resource: str) -> dict[str, str]:
    """Every kind of token that must be refused, each otherwise as valid as can be."""
    real = provider.token("alice", resource)
    header, payload, signature = real.split(".")
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = provider.claims("alice", resource)
    return {
        "another audience": provider.token("alice", "http://127.0.0.1:9/another-server"),
        "expired": provider.sign(provider.claims("alice", resource, exp=int(time.time()) - 120)),
        "not yet valid": provider.sign(provider.claims("alice", resource, nbf=int(time.time()) + 600)),
        "another issuer": provider.sign(provider.claims("alice", resource, iss="http://127.0.0.1:9/other-issuer")),
        "a bad signature": f"{header}.{payload}.{flipped}",
        "another key, the same kid": jwt.encode(claims, other_key, "RS256", headers={"kid": "test-key-1"}),
        "alg none": unsigned(claims),
        "HS256 keyed with the public key": hs256_with_public_key(provider, claims),
        "no subject": provider.sign({k: v for k, v in claims.items() if k != "sub"}),
        "an id token's type": provider.sign(claims, typ="logout+jwt"),
        "garbage": "not-a-token-at-all",
        "an unknown opaque token": "opaque-token-the-issuer-never-made",
    }


def test_each_kind_of_bad_token_is_refused_with_401_invalid_token(
    server: Served, identity_provider: IdentityProvider
) -> None:
    for kind, token in bad_tokens(identity_provider, server.resource).items():
        answer = rpc(server.resource, token, "tools/list")
        assert answer.status_code == 401, f"{kind}: {answer.status_code} {answer.text}"
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"') and "resource_metadata=" in challenge, kind
        assert answer.json()["error"] == "invalid_token"
        assert token not in answer.text
    expired = bad_tokens(identity_provider, server.resource)["expired"]
    assert "expired" in rpc(server.resource, expired, "tools/list").json()["error_description"]


def test_the_clock_may_differ_by_up_to_a_minute(server: Served, identity_provider: IdentityProvider) -> None:
    now = int(time.time())
    just_expired = identity_provider.sign(identity_provider.claims("alice", server.resource, exp=now - 30))
    almost_valid = identity_provider.sign(identity_provider.claims("alice", server.resource, nbf=now + 30))
    assert rpc(server.resource, just_expired, "tools/list").status_code == 200
    assert rpc(server.resource, almost_valid, "tools/list").status_code == 200


def test_tools_list_shows_what_the_scopes_allow(server: Served, identity_provider: IdentityProvider) -> None:
    reader = identity_provider.token("reader", server.resource)
    alice = identity_provider.token("alice", server.resource)
    admin = identity_provider.token("admin", server.resource)
    assert tool_names(rpc(server.resource, reader, "tools/list")) == READ_TOOLS
    assert tool_names(rpc(server.resource, alice, "tools/list")) == ALL_TOOLS
    assert tool_names(rpc(server.resource, admin, "tools/list")) == ALL_TOOLS
    assert tool_names(rpc(server.resource, STATIC, "tools/list")) == ALL_TOOLS
    no_scope = identity_provider.sign(identity_provider.claims("nobody", server.resource, scope="openid"))
    assert tool_names(rpc(server.resource, no_scope, "tools/list")) == []


def test_a_call_beyond_the_scopes_is_403_naming_the_scope(server: Served, identity_provider: IdentityProvider) -> None:
    reader = identity_provider.token("reader", server.resource)
    refused = rpc(server.resource, reader, "tools/call", {"name": "execRun", "arguments": {"command": "echo no"}})
    assert refused.status_code == 403
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope"')
    assert 'scope="runtimes:run"' in challenge and "resource_metadata=" in challenge
    assert "Next:" in refused.json()["error_description"]
    allowed = call(server.resource, reader, "listSessions", {})
    assert allowed["sessions"] == []
    cancel = rpc(server.resource, reader, "tasks/cancel", {"taskId": "task_x"})
    assert cancel.status_code == 403 and 'scope="runtimes:run"' in cancel.headers["www-authenticate"]
    no_scope = identity_provider.sign(identity_provider.claims("nobody", server.resource, scope="openid"))
    docs = rpc(server.resource, no_scope, "tools/call", {"name": "getDocs", "arguments": {}})
    assert docs.status_code == 403 and 'scope="runtimes:read"' in docs.headers["www-authenticate"]
    read = rpc(server.resource, no_scope, "resources/read", {"uri": "events://local"})
    assert read.status_code == 403


def test_a_signed_in_user_runs_code_and_the_static_token_still_works(
    server: Served, identity_provider: IdentityProvider
) -> None:
    alice = identity_provider.token("alice", server.resource)
    ran = call(server.resource, alice, "execRun", {"command": "echo signed-in"})
    assert ran["stdout"] == "signed-in\n"
    by_static = call(server.resource, STATIC, "execRun", {"command": "echo static"})
    assert by_static["stdout"] == "static\n"
    # the static token is the `local` owner: its runs are not alice's, and alice's are not its own
    mine = [s["id"] for s in call(server.resource, alice, "listSessions", {})["sessions"]]
    assert ran["session_id"] in mine and by_static["session_id"] not in mine


def test_an_opaque_token_is_checked_by_introspection(server: Served, identity_provider: IdentityProvider) -> None:
    carol = identity_provider.token("carol", server.resource)
    assert carol.count(".") == 0  # opaque: only the issuer can say what it is
    assert tool_names(rpc(server.resource, carol, "tools/list")) == ALL_TOOLS
    stored = call(server.resource, carol, "storeEvent", {"type": "hello", "data": {}, "sandbox_id": "carols"})
    assert stored["event_id"]
    elsewhere = identity_provider.token("carol", "http://127.0.0.1:9/another-server")
    assert rpc(server.resource, elsewhere, "tools/list").status_code == 401


def test_nothing_about_a_token_is_logged(server: Served, identity_provider: IdentityProvider) -> None:
    """The server logs at DEBUG (httpx, the SDK, ours); no token sent to it, valid or not, nor any part of one,
    appears in what it wrote."""
    tokens = [identity_provider.token(c, server.resource) for c in ("alice", "reader", "carol")]
    tokens += list(bad_tokens(identity_provider, server.resource).values())
    for token in tokens:
        rpc(server.resource, token, "tools/list")
    served = server.stderr().count(SERVED)
    rpc(server.resource, tokens[0], "tools/call", {"name": "listSessions", "arguments": {}})
    deadline = time.monotonic() + 10
    while server.stderr().count(SERVED) <= served and time.monotonic() < deadline:  # the last request's lines are in
        time.sleep(0.02)
    logged = server.stderr()
    assert "DEBUG" in logged
    for token in [*tokens, STATIC]:
        for part in token.split("."):
            if len(part) >= 16:
                assert part not in logged, "a token (or a part of one) was logged"


@pytest.mark.parametrize("workers", [(), ("--stateless", "--workers", "2")])
def test_an_issuer_that_cannot_be_used_stops_start_up_with_one_line(tmp_path: Path, workers: tuple[str, ...]) -> None:
    """Also with --workers: the parent reads the issuer's metadata before it starts any worker."""
    config = tmp_path / "runtimes.toml"
    config.write_text('public_url = "http://127.0.0.1:8000/mcp"\n[oauth]\nissuer = "http://127.0.0.1:9/nothing"\n')
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "--transport", "http", "--port", "0", "--config", str(config), *workers],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RUNTIMES_MCP_OAUTH_ISSUER" in lines[0] and "Next: check the issuer URL" in lines[0]


def test_oauth_and_no_authentication_contradict_each_other(tmp_path: Path) -> None:
    config = tmp_path / "runtimes.toml"
    config.write_text('public_url = "http://127.0.0.1:8000/mcp"\n[oauth]\nissuer = "http://127.0.0.1:9"\n')
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "--transport", "http", "--insecure-no-auth", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--insecure-no-auth and RUNTIMES_MCP_OAUTH_ISSUER" in result.stderr


@pytest.fixture(scope="module")
def ts_sign_in() -> Path:
    return ts_sdk_script("ts_sign_in.mjs")


def test_the_official_typescript_client_signs_in_by_itself(
    identity_provider: IdentityProvider, ts_sign_in: Path, tmp_path: Path
) -> None:
    """Given only the URL and its client credentials, the official SDK client finds where to sign in (401, the
    protected-resource metadata the challenge names, the issuer's metadata), gets a token for this server and keeps
    a stateful MCP session with it. A reader's execRun meets 403 insufficient_scope naming runtimes:run; the client
    signs in again (step-up), is still a reader, and nothing runs."""
    served = serve(identity_provider, tmp_path, env={"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data")})
    try:
        reports = {}
        for who in ("alice", "reader"):
            secret, scope, _ = CLIENTS[who]
            argv = ["node", str(ts_sign_in), served.resource, who, secret, identity_provider.issuer, scope]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=npm_env())
            assert result.returncode == 0, result.stderr[-2000:]
            reports[who] = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        stop_server(served.process)
    alice, reader = reports["alice"], reports["reader"]
    asked = [(r["method"], r["path"], r["status"], r.get("scope")) for r in alice["requests"]]
    assert asked[:4] == [
        ("POST", "/mcp", 401, "runtimes:read runtimes:run"),
        ("GET", "/.well-known/oauth-protected-resource/mcp", 200, None),
        ("GET", "/.well-known/oauth-authorization-server", 200, None),
        ("POST", "/token", 200, None),
    ]
    assert all(status < 400 for _, _, status, _ in asked[4:]), alice
    assert alice["sessionId"] and set(alice["scope"].split()) == {"runtimes:read", "runtimes:run"}
    assert alice["tools"] == ALL_TOOLS and alice["execStdout"] == "signed-in-by-itself\n"
    assert len(alice["sessions"]) == 1
    assert reader["scope"] == "runtimes:read" and reader["tools"] == READ_TOOLS
    assert "execStdout" not in reader and "403" in reader["execThrew"]
    refused = [(r["path"], r["status"], r.get("scope")) for r in reader["requests"] if r["status"] == 403]
    assert refused[0] == ("/mcp", 403, "runtimes:run")
    assert ("POST", "/token", 200, None) in [
        (r["method"], r["path"], r["status"], r.get("scope")) for r in reader["requests"][-4:]
    ], "the client signed in again (step-up)"


def test_workers_each_check_tokens_and_keep_users_apart(identity_provider: IdentityProvider, tmp_path: Path) -> None:
    """`--workers 2`: whichever worker answers, a user signs in, sees their own runs only, and a bad token is
    refused."""
    from tests.test_workers import ROOT, health_pid, wait_for

    installed = subprocess.run(
        [sys.executable, "-I", "-c", "import server; print(server.__file__)"], capture_output=True, text=True, cwd="/"
    )
    if not installed.stdout.startswith(str(ROOT)):  # e.g. a git worktree beside an editable install of another
        pytest.skip(f"workers run the installed package ({installed.stdout.strip()}), which is not this tree")
    env = {"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data"), "RUNTIMES_MCP_ON_EXIT": "stop"}
    served = serve(identity_provider, tmp_path, "--stateless", "--json-response", "--workers", "2", env=env)
    try:
        wait_for(lambda: len({health_pid(served.base) for _ in range(20)} - {None}) == 2)
        alice, bob = (identity_provider.token(who, served.resource) for who in ("alice", "bob"))
        mine = {call(served.resource, alice, "execRun", {"command": "true"})["session_id"] for _ in range(4)}
        for _ in range(4):  # each answered by either worker
            assert {s["id"] for s in call(served.resource, alice, "listSessions", {})["sessions"]} == mine
            assert call(served.resource, bob, "listSessions", {})["sessions"] == []
            assert rpc(served.resource, alice[:-4] + "AAAA", "tools/list").status_code == 401
    finally:
        stop_server(served.process)
    assert "users sign in with" in served.stderr() and "2 worker processes" in served.stderr()
