"""A real OAuth 2.0 / OIDC authorization server for the tests: npm's `oidc-provider` (tests/oidc/server.mjs) on
127.0.0.1, with keys the tests make (so that they can also sign the tokens it would never issue: expired ones,
another issuer's). Its npm packages are installed into tests/oidc/node_modules from the lock file when missing."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent / "oidc"
CACHE = Path(os.environ.get("RUNTIMES_MCP_TEST_CACHE", Path.home() / ".cache" / "runtimes-mcp-tests"))
READ_RUN = "runtimes:read runtimes:run"
# client id -> (its secret, the scopes it may have, opaque tokens)
CLIENTS: dict[str, tuple[str, str, bool]] = {
    "alice": ("alice-secret", READ_RUN, False),
    "bob": ("bob-secret", READ_RUN, False),
    "admin": ("admin-secret", READ_RUN + " runtimes:admin", False),
    "reader": ("reader-secret", "runtimes:read", False),
    "carol": ("carol-secret", READ_RUN, True),  # opaque tokens: checked by introspection
    "runtimes-mcp": ("rs-secret", "", False),  # the resource server itself, at the introspection endpoint
}
KID = "test-key-1"


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def install_packages() -> None:
    """tests/oidc/node_modules from package-lock.json, once (npm's cache is the tests' own)."""
    if (HERE / "node_modules" / "oidc-provider").is_dir():
        return
    env = {**os.environ, "npm_config_cache": str(CACHE / "npm"), "npm_config_update_notifier": "false"}
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


@dataclass
class IdentityProvider:
    issuer: str
    key: rsa.RSAPrivateKey
    process: subprocess.Popen[bytes]
    tokens: dict[tuple[str, str, str | None], str] = field(default_factory=dict)

    def token(self, client: str, resource: str, scope: str | None = None) -> str:
        """An access token for `client` (client credentials) for `resource`, as the provider issues it."""
        cached = self.tokens.get((client, resource, scope))
        if cached is not None:
            return cached
        secret, allowed, _ = CLIENTS[client]
        answer = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "scope": scope or allowed, "resource": resource},
            auth=(client, secret),
            timeout=10,
        )
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        self.tokens[(client, resource, scope)] = token
        return token

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """A JWT signed with the provider's own key (what it would issue, or never would)."""
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID, "typ": "at+jwt", **header})

    def claims(self, subject: str, resource: str, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": self.issuer, "sub": subject, "aud": resource, "iat": now, "exp": now + 600, "scope": READ_RUN}
        return {**base, **changes}

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def start(workdir: Path) -> IdentityProvider:
    """Start the provider on a free loopback port; returns once it has said where it listens."""
    install_packages()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    jwk.update(kid=KID, use="sig", alg="RS256")
    clients = [
        {"client_id": name, "client_secret": secret, "scope": scope, "opaque": opaque}
        for name, (secret, scope, opaque) in CLIENTS.items()
    ]
    config = workdir / "oidc-config.json"
    config.write_text(json.dumps({"keys": [jwk], "clients": clients}))
    config.chmod(0o600)
    process = subprocess.Popen(
        ["node", str(HERE / "server.mjs"), str(config)],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)  # its first line says where it listens
    line = process.stdout.readline() if ready else b""
    if not line:
        process.kill()
        detail = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
        raise RuntimeError(f"oidc-provider did not start: {detail}")
    return IdentityProvider(json.loads(line)["issuer"], key, process)


def hs256_with_public_key(provider: IdentityProvider, claims: dict[str, Any]) -> str:
    """The classic confusion attack: HS256 keyed with the issuer's public key (PyJWT refuses to make one)."""
    import hashlib
    import hmac

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'at+jwt', 'kid': KID})}.{part(claims)}"
    signature = hmac.new(provider.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """`alg: none`, no signature."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part(claims)}."


# --- a runtimes-mcp HTTP server whose users sign in with the provider ------------------------------------------
OUR_ENV_PREFIXES = ("RUNTIMES_MCP_", "COMPUTESDK_")


@dataclass
class Served:
    """A server process: its base URL, this server's resource URL (the audience), and what it wrote to stderr."""

    base: str
    process: subprocess.Popen[bytes]
    lines: list[str]

    @property
    def resource(self) -> str:
        return f"{self.base}/mcp"

    def stderr(self) -> str:
        return "".join(self.lines)


def _server_env(extra: dict[str, str]) -> dict[str, str]:
    """This test's environment without any of the developer's settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_ENV_PREFIXES) and not k.endswith("_BASE_URL")}
    return {**env, **extra}


def serve(
    provider: IdentityProvider,
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    oauth: str = "",
    config: str = "",
) -> Served:
    """Start `runtimes-mcp --transport http` signing users in with `provider`: its config file has `config`, and
    an [oauth] table with the issuer and `oauth`. Returns once the server has said where it serves (the socket is
    listening by then). Stop it with `stop_server`."""
    import threading

    from bench.load_http import OUR_HTTP, free_port

    port = free_port()
    path = workdir / f"runtimes-{port}.toml"
    path.write_text(
        f'public_url = "http://127.0.0.1:{port}/mcp"\n{config}\n[oauth]\nissuer = "{provider.issuer}"\n{oauth}\n'
    )
    argv = [*OUR_HTTP, "--port", str(port), "--config", str(path), *args]
    process = subprocess.Popen(
        argv, cwd=HERE.parent.parent, env=_server_env(env or {}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    lines: list[str] = []
    serving = threading.Event()

    def drain() -> None:  # read its stderr all along (a full pipe would stall it)
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            if line.startswith("runtimes-mcp: serving MCP at"):
                serving.set()
        serving.set()  # it ended

    threading.Thread(target=drain, daemon=True).start()
    serving.wait(60)
    if process.poll() is not None or not any(line.startswith("runtimes-mcp: serving") for line in lines):
        stop_server(process)
        raise RuntimeError(f"the server did not start: {''.join(lines)[-2000:]}")
    return Served(f"http://127.0.0.1:{port}", process, lines)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def rpc(url: str, token: str | None, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
    """One JSON-RPC request to a stateless JSON server, as `token`'s holder."""
    headers = {**JSON_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return httpx.post(url, json=body, headers=headers, timeout=60)


def message(answer: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of an answer: plain JSON, or the last event of an SSE stream."""
    assert answer.status_code == 200, f"{answer.status_code} {answer.headers.get('www-authenticate')} {answer.text}"
    text = answer.text
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        text = [line[5:] for line in text.splitlines() if line.startswith("data:")][-1]
    found: dict[str, Any] = json.loads(text)
    return found


def call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """tools/call: its result (structuredContent, or the error text as {"error": ...})."""
    result = message(rpc(url, token, "tools/call", {"name": tool, "arguments": arguments}))["result"]
    if result.get("isError"):
        return {"error": result["content"][0]["text"]}
    structured: dict[str, Any] = result["structuredContent"]
    return structured
