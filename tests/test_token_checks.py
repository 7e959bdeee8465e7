"""server/tokens.py on its own, against an issuer made of httpx.MockTransport (no network): discovery, the key
cache (an unknown kid fetches the keys again, at most every REFETCH_S), the algorithm allow-list and the key type it
must match, `typ`, introspection, and nothing about a token in the logs."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from server import tokens
from server.tokens import Keys, Refused, TokenChecker, Unavailable, discover_jwks_uri, well_known_urls

ISSUER = "https://idp.test/realms/team"
AUDIENCE = "https://mcp.test/mcp"


class Issuer:
    """An identity provider's HTTP side: its metadata, its keys (swappable) and an introspection endpoint."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, Any]] = []  # (kid, private key)
        self.fetches = 0
        self.active: dict[str, dict[str, Any]] = {}

    def add_key(self, kid: str, key: Any | None = None) -> Any:
        key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys.append((kid, key))
        return key

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/oauth-authorization-server/realms/team":
            return httpx.Response(404)
        if path == "/.well-known/openid-configuration/realms/team":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": "https://idp.test/realms/team/keys"})
        if path == "/realms/team/keys":
            self.fetches += 1
            return httpx.Response(200, json={"keys": [_jwk(kid, key) for kid, key in self.keys]})
        if path == "/realms/team/introspect":
            token = dict(x.split("=", 1) for x in request.content.decode().split("&"))["token"]
            return httpx.Response(200, json=self.active.get(token, {"active": False}))
        return httpx.Response(404)


def _jwk(kid: str, key: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig"}


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "exp": now + 300, "scope": "runtimes:read", **changes}


def sign(key: Any, kid: str | None, alg: str = "RS256", **header: Any) -> Callable[..., str]:
    def make(**changes: Any) -> str:
        headers = {"typ": "at+jwt", **header} | ({"kid": kid} if kid else {})
        return jwt.encode(claims(**changes), key, algorithm=alg, headers=headers)

    return make


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


def checker(issuer: Issuer, introspection: bool = False) -> TokenChecker:
    client = httpx.AsyncClient(transport=httpx.MockTransport(issuer.handler))
    keys = Keys("https://idp.test/realms/team/keys", client)
    secret = ("https://idp.test/realms/team/introspect", "runtimes-mcp", "s3cret") if introspection else None
    return TokenChecker(ISSUER, AUDIENCE, keys, client, secret)


async def test_discovery_tries_the_well_known_urls_in_order_and_checks_the_issuer(issuer: Issuer) -> None:
    assert well_known_urls(ISSUER) == [
        "https://idp.test/.well-known/oauth-authorization-server/realms/team",
        "https://idp.test/.well-known/openid-configuration/realms/team",
        "https://idp.test/realms/team/.well-known/openid-configuration",
    ]
    client = httpx.AsyncClient(transport=httpx.MockTransport(issuer.handler))
    assert await discover_jwks_uri(ISSUER, client) == "https://idp.test/realms/team/keys"
    with pytest.raises(Unavailable, match="names issuer"):
        await discover_jwks_uri("https://idp.test/realms/team/", client)  # not exactly the issuer it names


async def test_a_valid_token_gives_its_subject_and_scopes_with_the_ones_they_imply(issuer: Issuer) -> None:
    key = issuer.add_key("k1")
    identity = await checker(issuer).check(sign(key, "k1")(scope="runtimes:admin openid"))
    assert (identity.issuer, identity.subject) == (ISSUER, "alice")
    assert identity.scopes == {"runtimes:admin", "runtimes:run", "runtimes:read", "openid"}
    listed = await checker(issuer).check(sign(key, "k1")(scope=None, scp=["runtimes:run"]))
    assert listed.scopes == {"runtimes:run", "runtimes:read"}


async def test_an_unknown_kid_fetches_the_keys_again_at_most_every_refetch_s(issuer: Issuer) -> None:
    first = issuer.add_key("k1")
    check = checker(issuer)
    assert check.keys is not None
    await check.check(sign(first, "k1")())
    assert issuer.fetches == 1
    rotated = issuer.add_key("k2")  # the issuer rotates its keys
    with pytest.raises(Refused, match="unknown key id"):
        await check.check(sign(rotated, "k2")())  # within REFETCH_S of the last fetch: not fetched again
    assert issuer.fetches == 1
    check.keys._tried_at -= tokens.REFETCH_S  # REFETCH_S later
    assert (await check.check(sign(rotated, "k2")())).subject == "alice"
    assert issuer.fetches == 2
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for n in range(5):  # a flood of unknown kids costs one fetch per REFETCH_S, not one each
        with pytest.raises(Refused, match="unknown key id"):
            await check.check(sign(stranger, f"k-{n}")())
    assert issuer.fetches == 2


async def test_algorithms_outside_the_list_or_not_matching_the_key_are_refused(issuer: Issuer) -> None:
    rsa_key = issuer.add_key("rsa")
    ec_key = issuer.add_key("ec", ec.generate_private_key(ec.SECP256R1()))
    check = checker(issuer)
    assert (await check.check(sign(ec_key, "ec", "ES256")())).subject == "alice"
    assert (await check.check(sign(rsa_key, "rsa", "PS256")())).subject == "alice"
    with pytest.raises(Refused, match="does not match the issuer's key"):
        await check.check(sign(ec_key, "rsa", "ES256")())  # an EC signature presented as the RSA key's
    with pytest.raises(Refused, match="algorithm is not one of"):
        await check.check(jwt.encode(claims(), "a shared secret of enough length", "HS256", headers={"kid": "rsa"}))
    with pytest.raises(Refused, match="algorithm is not one of"):
        await check.check(jwt.encode(claims(), None, "none", headers={"kid": "rsa"}))


async def test_typ_may_be_an_access_tokens_or_absent_and_nothing_else(issuer: Issuer) -> None:
    key = issuer.add_key("k1")
    check = checker(issuer)
    for typ in ("at+jwt", "JWT", "application/at+jwt"):
        assert (await check.check(sign(key, "k1", typ=typ)(jti=typ))).subject == "alice"
    assert (await check.check(jwt.encode(claims(jti="no-typ"), key, "RS256", headers={"kid": "k1"}))).subject
    with pytest.raises(Refused, match="type"):
        await check.check(sign(key, "k1", typ="dpop+jwt")())


async def test_without_a_kid_the_only_key_is_used_and_with_several_none(issuer: Issuer) -> None:
    key = issuer.add_key("k1")
    assert (await checker(issuer).check(sign(key, None)())).subject == "alice"
    issuer.add_key("k2")
    with pytest.raises(Refused, match="unknown key id"):
        await checker(issuer).check(sign(key, None)())


async def test_the_skew_allowed_is_sixty_seconds(issuer: Issuer) -> None:
    key = issuer.add_key("k1")
    check, now = checker(issuer), int(time.time())
    assert tokens.SKEW_S == 60
    assert (await check.check(sign(key, "k1")(exp=now - 50))).subject == "alice"
    with pytest.raises(Refused, match="expired"):
        await check.check(sign(key, "k1")(exp=now - 70))
    assert (await check.check(sign(key, "k1")(nbf=now + 50))).subject == "alice"
    with pytest.raises(Refused, match="not valid yet"):
        await check.check(sign(key, "k1")(nbf=now + 70))


async def test_introspection_checks_an_opaque_token(issuer: Issuer) -> None:
    issuer.add_key("k1")
    check = checker(issuer, introspection=True)
    now = int(time.time())
    issuer.active["opaque-1"] = {"active": True, "aud": AUDIENCE, "iss": ISSUER, "client_id": "ci", "exp": now + 60}
    issuer.active["opaque-2"] = {"active": True, "aud": "https://elsewhere.test", "sub": "x", "exp": now + 60}
    issuer.active["opaque-3"] = {"active": True, "aud": [AUDIENCE], "sub": "x", "exp": now - 120}
    identity = await check.check("opaque-1")
    assert identity.subject == "ci" and identity.scopes == frozenset()  # a client's own token: it is its subject
    for token, reason in (("opaque-2", "audience"), ("opaque-3", "expired"), ("opaque-4", "not active")):
        with pytest.raises(Refused, match=reason):
            await check.check(token)
    with pytest.raises(Refused, match="not a JWT"):
        await checker(issuer).check("opaque-1")  # without introspection, only JWTs


async def test_keys_that_cannot_be_read_make_the_token_uncheckable_not_invalid() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    client = httpx.AsyncClient(transport=httpx.MockTransport(down))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    check = TokenChecker(ISSUER, AUDIENCE, Keys("https://idp.test/keys", client), client)
    with pytest.raises(Unavailable):
        await check.check(sign(key, "k1")())


async def test_nothing_about_a_token_is_logged(issuer: Issuer, caplog: pytest.LogCaptureFixture) -> None:
    key = issuer.add_key("k1")
    check = checker(issuer, introspection=True)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sent = [sign(key, "k1")(), sign(key, "k1")(exp=1), sign(stranger, "k1")(), sign(key, "k9")(), "opaque-zzz"]
    caplog.set_level(logging.DEBUG)
    for token in sent:
        try:
            await check.check(token)
        except (Refused, Unavailable):
            pass
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for token in sent:
        for part in token.split("."):
            assert part not in logged
    assert "alice" not in logged


async def test_an_identity_provider_that_does_not_answer_is_503_with_retry_after_not_401() -> None:
    """The token may well be valid: the client is told to retry (not to sign in again), and the request goes no
    further."""
    from starlette.types import Receive, Scope, Send

    from server.sign_in import Verifier, sign_in_requests

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("a request whose token could not be checked reached the server")

    client = httpx.AsyncClient(transport=httpx.MockTransport(down))
    checker = TokenChecker(ISSUER, AUDIENCE, Keys("https://idp.test/keys", client), client)
    sign_in = sign_in_requests(app, Verifier(checker, None), f"{AUDIENCE}/metadata", "/mcp", 1 << 20)
    token = sign(rsa.generate_private_key(public_exponent=65537, key_size=2048), "k1")()
    transport = httpx.ASGITransport(app=sign_in)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.test") as http:
        answer = await http.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "www-authenticate" not in answer.headers
    body = answer.json()
    assert body["error"] == "temporarily_unavailable" and "Next: retry" in body["error_description"]
    assert token not in answer.text


async def test_a_header_that_is_not_base64url_json_is_refused_as_malformed(issuer: Issuer) -> None:
    issuer.add_key("k1")
    check = checker(issuer)
    for header in ("!!!!", "W10", "bm90IGpzb24", "e30=", ""):  # not base64url, a list, not JSON, padded, empty
        with pytest.raises(Refused, match="not a well-formed JWT"):
            await check.check(f"{header}.eyJzdWIiOiJhIn0.c2ln")
    with pytest.raises(Refused, match="algorithm is not one of"):
        await check.check("e30.eyJzdWIiOiJhIn0.c2ln")  # {}: well formed, and no algorithm


def introspecting(handler: Callable[[httpx.Request], Any]) -> TokenChecker:
    """A checker with introspection, whose identity provider is `handler`."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    introspection = ("https://idp.test/realms/team/introspect", "runtimes-mcp", "s3cret")
    return TokenChecker(ISSUER, AUDIENCE, Keys("https://idp.test/realms/team/keys", client), client, introspection)


async def test_introspection_calls_in_flight_are_bounded_and_the_keys_still_come(issuer: Issuer) -> None:
    """200 made-up opaque tokens at once: at most INTROSPECTIONS_AT_ONCE reach the identity provider together (so
    the HTTP client's pool keeps connections for the keys), and a JWT checked meanwhile gets the keys it needs."""
    key = issuer.add_key("k1")
    in_flight, most, release = 0, 0, anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        if request.url.path != "/realms/team/introspect":
            return issuer.handler(request)
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        in_flight -= 1
        return httpx.Response(200, json={"active": False})

    check = introspecting(handler)
    refused: list[str] = []

    async def made_up(n: int) -> None:
        with pytest.raises(Refused, match="not active") as exc:
            await check.check(f"made-up-{n}")
        refused.append(str(exc.value))

    async with anyio.create_task_group() as tg:
        for n in range(200):
            tg.start_soon(made_up, n)
        with anyio.fail_after(10):
            while in_flight < tokens.INTROSPECTIONS_AT_ONCE:
                await anyio.sleep(0.01)
            assert (await check.check(sign(key, "k1")())).subject == "alice"  # keys fetched while they wait
        assert most == tokens.INTROSPECTIONS_AT_ONCE
        release.set()
    assert len(refused) == 200 and most == tokens.INTROSPECTIONS_AT_ONCE


async def test_tokens_past_the_introspection_queue_are_told_to_come_back_at_once(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood faster than the identity provider answers does not queue without end (each waiting request holds
    its body in memory): past INTROSPECTIONS_WAITING waiting, a token is Unavailable (a 503) right away."""
    monkeypatch.setattr(tokens, "INTROSPECTIONS_WAITING", 5)
    release = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"active": False})

    check = introspecting(handler)
    outcomes: list[str] = []

    async def made_up(n: int) -> None:
        try:
            await check.check(f"made-up-{n}")
        except (Refused, Unavailable) as exc:
            outcomes.append(type(exc).__name__)

    async with anyio.create_task_group() as tg:
        for n in range(tokens.INTROSPECTIONS_AT_ONCE + 5 + 20):
            tg.start_soon(made_up, n)
        with anyio.fail_after(10):
            while len(outcomes) < 20:
                await anyio.sleep(0.01)
        assert outcomes == ["Unavailable"] * 20  # before any answer came
        release.set()
    assert outcomes.count("Refused") == tokens.INTROSPECTIONS_AT_ONCE + 5


async def test_a_token_introspection_refused_is_refused_again_for_a_while_without_asking(issuer: Issuer) -> None:
    asked = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal asked
        asked += request.url.path == "/realms/team/introspect"
        return issuer.handler(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    introspection = ("https://idp.test/realms/team/introspect", "runtimes-mcp", "s3cret")
    check = TokenChecker(ISSUER, AUDIENCE, None, client, introspection)

    async def refused() -> None:
        with pytest.raises(Refused, match="not active"):
            await check.check("opaque-revoked")

    async with anyio.create_task_group() as tg:  # the same token 50 times at once: asked once
        for _ in range(50):
            tg.start_soon(refused)
    assert asked == 1
    assert list(check._refused) == [hashlib.sha256(b"opaque-revoked").digest()]  # its hash, not the token
    issuer.active["opaque-revoked"] = {"active": True, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 600}
    await refused()  # within REFUSED_FOR_S: still refused, not asked
    assert asked == 1
    digest = hashlib.sha256(b"opaque-revoked").digest()
    reason, until = check._refused[digest]
    check._refused[digest] = (reason, until - tokens.REFUSED_FOR_S)  # REFUSED_FOR_S later
    assert (await check.check("opaque-revoked")).subject == "x"
    assert asked == 2
