"""Access tokens from the team's identity provider, checked as an OAuth 2.1 resource server must: a JWT against the
issuer's keys (JWKS, found by discovery), or any other token by introspection (RFC 7662) when configured.

A JWT must be signed with an algorithm of ALGORITHMS by a key of the issuer's JWKS of the same type (so `none`
and an HMAC keyed with a public key are refused), name the issuer in `iss` and this server in `aud`, carry `sub`
and `exp`, and be within `exp` and `nbf`, with at most SKEW_S of clock difference. `typ` may be `at+jwt`
(RFC 9068) or `JWT`, or be absent. The keys are cached; an unknown `kid` fetches them again, at most once every
REFETCH_S. Nothing here logs a token or anything read from one: a refusal's reason goes to the caller only.

Introspection is bounded, so that a flood of made-up tokens cannot flood the identity provider nor take every
connection of the HTTP client the keys are fetched with: at most INTROSPECTIONS_AT_ONCE calls are in flight (the
others wait their turn), and a token refused is refused again for REFUSED_FOR_S without asking. Both caches are
keyed by the token's SHA-256, never the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import anyio
import httpx
import jwt

from providers.services import with_implied
from server.sign_in_settings import http_url

logger = logging.getLogger(__name__)
SKEW_S = 60  # at most this much clock difference with the issuer, on exp, nbf and iat
ALGORITHMS = {  # -> the key type (JWK kty) that signs with it, and for EC its curve
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}
TYPES = {"jwt", "at+jwt", "application/at+jwt"}
REFETCH_S = 30.0  # an unknown kid fetches the keys again at most this often
KEYS_FRESH_S = 3600.0  # keys older than this are fetched again before use (the old ones serve if that fails)
VERIFIED_KEPT = 4096  # tokens already verified, kept until they expire (a client sends the same one each call)
INTROSPECTED_FOR_S = 30.0  # an active introspection answer is trusted this long (revocation shows after it)
REFUSED_FOR_S = 10.0  # a token introspection refused is refused again this long without asking
INTROSPECTIONS_AT_ONCE = 8  # well below httpx's pool of 100 connections, which the keys' fetch shares
INTROSPECTIONS_WAITING = 256  # more waiting than this are told to come back (503), not queued without end
TIMEOUT = httpx.Timeout(5.0, connect=3.0)
BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
NOT_FOR_US = "it was not issued for this server (its audience is not RUNTIMES_MCP_OAUTH_AUDIENCE)"


class Refused(Exception):
    """The token is not valid here; the message says why (it holds nothing read from the token)."""


class Unavailable(Exception):
    """The token cannot be checked now (the identity provider does not answer); the message says what failed."""


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    client_id: str
    scopes: frozenset[str]  # with the ones they imply


def well_known_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be, in the order MCP clients try them: RFC 8414, then OpenID Connect
    Discovery with the path inserted, then appended."""
    parts = urlsplit(issuer)
    origin, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    urls = [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
    ]
    return list(dict.fromkeys(urls))


async def discover_jwks_uri(issuer: str, client: httpx.AsyncClient) -> str | None:
    """The issuer's jwks_uri from its metadata (None when it names none); Unavailable says why no metadata could be
    read (as the setting's error, at start)."""
    problems = []
    for url in well_known_urls(issuer):
        try:
            answer = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            problems.append(f"{url}: {type(exc).__name__}")
            continue
        if answer.status_code != 200:
            problems.append(f"{url}: HTTP {answer.status_code}")
            continue
        try:
            metadata = answer.json()
        except ValueError:
            problems.append(f"{url}: not JSON")
            continue
        if not isinstance(metadata, dict) or metadata.get("issuer") != issuer:
            found = metadata.get("issuer") if isinstance(metadata, dict) else None
            problems.append(f"{url}: names issuer {found!r}, not {issuer!r}")
            continue
        jwks_uri = metadata.get("jwks_uri")
        try:
            return http_url(jwks_uri) if isinstance(jwks_uri, str) else None
        except ValueError:
            problems.append(f"{url}: its jwks_uri {jwks_uri!r} is not an https:// URL")
    raise Unavailable("; ".join(problems))


class Keys:
    """The issuer's signing keys (its JWKS), fetched when first needed, again when stale, and again (at most every
    REFETCH_S) when a token names a key id not among them: keys rotate."""

    def __init__(self, uri: str, client: httpx.AsyncClient) -> None:
        self.uri = uri
        self._client = client
        self._keys: list[tuple[jwt.PyJWK, dict[str, Any]]] = []
        self._fetched_at = 0.0
        self._tried_at = -REFETCH_S
        self._lock = anyio.Lock()

    async def find(self, kid: str | None) -> tuple[jwt.PyJWK, dict[str, Any]] | None:
        if time.monotonic() - self._fetched_at > KEYS_FRESH_S:
            await self._fetch()
        found = self._pick(kid)
        if found is None and time.monotonic() - self._tried_at >= REFETCH_S:
            await self._fetch()
            found = self._pick(kid)
        return found

    def _pick(self, kid: str | None) -> tuple[jwt.PyJWK, dict[str, Any]] | None:
        if kid is None:  # a token without a kid is only matched when there is no choice
            return self._keys[0] if len(self._keys) == 1 else None
        return next((k for k in self._keys if k[0].key_id == kid), None)

    async def _fetch(self) -> None:
        async with self._lock:  # one fetch at a time; those that waited use its keys
            if time.monotonic() - self._tried_at < REFETCH_S:
                return
            self._tried_at = time.monotonic()
            try:
                answer = await self._client.get(self.uri, headers={"Accept": "application/json"})
                answer.raise_for_status()
                keys = [(jwt.PyJWK(data), data) for data in _signing_keys(answer.json())]
            except (httpx.HTTPError, ValueError, jwt.PyJWKError) as exc:
                logger.warning("runtimes-mcp: the identity provider's keys (%s) could not be read: %s", self.uri, exc)
                if not self._keys:
                    raise Unavailable(
                        f"the identity provider's keys could not be read ({type(exc).__name__})"
                    ) from None
                return
            self._keys, self._fetched_at = keys, time.monotonic()


def _signing_keys(document: Any) -> Iterable[dict[str, Any]]:
    """The JWKs of a JWKS document that sign (not `use: enc`) with a key type this server checks."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ValueError("not a JWKS document")
    kinds = {kty for kty, _ in ALGORITHMS.values()}
    for key in keys:
        if isinstance(key, dict) and key.get("kty") in kinds and key.get("use", "sig") == "sig":
            yield key


class TokenChecker:
    """Checks access tokens for one issuer and audience; `check(token)` is the Identity or raises Refused (or
    Unavailable)."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        keys: Keys | None,
        client: httpx.AsyncClient,
        introspection: tuple[str, str, str] | None = None,  # (url, client_id, client_secret)
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self._client = client
        self._introspection = introspection
        # sha256 of a token already found valid -> (who it is for, until when that holds)
        self._verified: OrderedDict[bytes, tuple[Identity, float]] = OrderedDict()
        # sha256 of a token introspection refused -> (why, until when that holds)
        self._refused: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._introspecting = anyio.CapacityLimiter(INTROSPECTIONS_AT_ONCE)

    async def check(self, token: str) -> Identity:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        known = self._known(digest)
        if known is not None:
            return known
        if token.count(".") == 2 and self.keys is not None:
            identity, until = await self._check_jwt(token)
        elif self._introspection is not None:
            if self._introspecting.statistics().tasks_waiting >= INTROSPECTIONS_WAITING:
                raise Unavailable(f"{INTROSPECTIONS_WAITING} tokens are already waiting for the identity provider")
            async with self._introspecting:
                known = self._known(digest)  # the same token, checked while this one waited its turn
                if known is not None:
                    return known
                try:
                    identity, until = await self._introspect(token)
                except Refused as exc:
                    _keep(self._refused, digest, (str(exc), time.time() + REFUSED_FOR_S))
                    raise
        else:
            raise Refused("it is not a JWT, and this server checks no other tokens (no introspection configured)")
        _keep(self._verified, digest, (identity, until))
        return identity

    def _known(self, digest: bytes) -> Identity | None:
        """What a recent check of the same token found: who it is for, or (refused by introspection) Refused."""
        now = time.time()
        verified = self._verified.get(digest)
        if verified is not None and verified[1] > now:
            return verified[0]
        refused = self._refused.get(digest)
        if refused is not None and refused[1] > now:
            raise Refused(refused[0])
        return None

    async def _check_jwt(self, token: str) -> tuple[Identity, float]:
        assert self.keys is not None
        header = _header(token)
        alg, typ, kid = header.get("alg"), header.get("typ"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise Refused(f"its algorithm is not one of {', '.join(ALGORITHMS)}")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in TYPES):
            raise Refused("its type (typ) is not an access token's (at+jwt or JWT)")
        found = await self.keys.find(kid if isinstance(kid, str) else None)
        if found is None:
            raise Refused("it is not signed by a key of the issuer (unknown key id)")
        key, data = found
        kty, curve = ALGORITHMS[alg]
        if data.get("kty") != kty or data.get("alg", alg) != alg or (curve is not None and data.get("crv") != curve):
            raise Refused("its algorithm does not match the issuer's key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=SKEW_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refused("it has expired") from None
        except jwt.ImmatureSignatureError:
            raise Refused("it is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise Refused(NOT_FOR_US) from None
        except jwt.InvalidIssuerError:
            raise Refused("it was not issued by RUNTIMES_MCP_OAUTH_ISSUER") from None
        except jwt.InvalidSignatureError:
            raise Refused("its signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Refused(f"it has no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise Refused("it is not a valid JWT") from None
        return self._identity(claims), float(claims["exp"]) + SKEW_S

    async def _introspect(self, token: str) -> tuple[Identity, float]:
        assert self._introspection is not None
        url, client_id, secret = self._introspection
        try:
            answer = await self._client.post(
                url,
                data={"token": token, "token_type_hint": "access_token"},
                headers={"Accept": "application/json", "Authorization": _basic(client_id, secret)},
            )
            found = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("runtimes-mcp: token introspection at %s failed: %s", url, type(exc).__name__)
            raise Unavailable("the identity provider's introspection endpoint did not answer") from None
        if not isinstance(found, dict):
            logger.warning("runtimes-mcp: token introspection at %s answered HTTP %s", url, answer.status_code)
            raise Unavailable(f"the identity provider's introspection endpoint answered HTTP {answer.status_code}")
        if found.get("active") is not True:
            raise Refused("it is not active (expired, revoked or unknown to the issuer)")
        if found.get("iss", self.issuer) != self.issuer:
            raise Refused("it was not issued by RUNTIMES_MCP_OAUTH_ISSUER")
        audiences = found.get("aud")
        if self.audience not in (audiences if isinstance(audiences, list) else [audiences]):
            raise Refused(NOT_FOR_US)
        now = time.time()
        exp, nbf = found.get("exp"), found.get("nbf")
        if isinstance(exp, int | float) and exp + SKEW_S < now:
            raise Refused("it has expired")
        if isinstance(nbf, int | float) and nbf - SKEW_S > now:
            raise Refused("it is not valid yet (nbf in the future)")
        until = (
            min(exp + SKEW_S, now + INTROSPECTED_FOR_S) if isinstance(exp, int | float) else now + INTROSPECTED_FOR_S
        )
        # the subject of a client-credentials token is the client itself (RFC 9068 section 2.2)
        return self._identity({**found, "sub": found.get("sub") or found.get("client_id")}), until

    def _identity(self, claims: dict[str, Any]) -> Identity:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Refused("it names no subject (sub)")
        client_id = claims.get("client_id") or claims.get("azp") or subject
        return Identity(
            issuer=self.issuer,
            subject=subject,
            client_id=str(client_id),
            scopes=with_implied(_scopes(claims)),
        )


def _keep(cache: OrderedDict[bytes, Any], digest: bytes, value: Any) -> None:
    """Remember `value` for a token's digest; the oldest go past VERIFIED_KEPT."""
    cache[digest] = value
    while len(cache) > VERIFIED_KEPT:
        cache.popitem(last=False)


def _header(token: str) -> dict[str, Any]:
    """A JWT's header, to choose the key by (jwt.decode then checks the whole token, header included). Read here
    rather than with jwt.get_unverified_header, which checks every character of the whole token in Python once
    more: a quarter of what verifying a new token takes."""
    head = token.partition(".")[0]
    if not BASE64URL.fullmatch(head):
        raise Refused("it is not a well-formed JWT")
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:  # binascii.Error and JSONDecodeError are ValueErrors
        raise Refused("it is not a well-formed JWT") from None
    if not isinstance(header, dict):
        raise Refused("it is not a well-formed JWT")
    return header


def _scopes(claims: dict[str, Any]) -> list[str]:
    """Granted scopes: `scope` (a space-separated string, RFC 9068) or `scp` (a list, as some providers send)."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str)]
    return []


def _basic(client_id: str, secret: str) -> str:
    """HTTP Basic client authentication as OAuth defines it (RFC 6749 2.3.1: each part form-encoded first)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode()
