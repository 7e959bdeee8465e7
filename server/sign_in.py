"""Users sign in with the team's identity provider: over HTTP this server is an OAuth 2.1 resource server (MCP
authorization, 2026-07-28).

- It publishes its protected-resource metadata (RFC 9728, the SDK's route) naming the issuer.
- Every request to /mcp needs `Authorization: Bearer <token>`: an access token from the issuer for this server
  (server/tokens.py), or the static RUNTIMES_MCP_HTTP_TOKEN when one is set (the `local` owner, every scope).
  Without one: 401 with `WWW-Authenticate` naming the metadata and the scopes to ask for; with an invalid one:
  401 `invalid_token`; a request beyond the token's scopes: 403 `insufficient_scope` naming the scope needed.
- The request then carries its caller (server/callers.py), as the SDK's own middleware would carry the token.

Why not the SDK's RequireAuthMiddleware and BearerAuthBackend: the scope a request needs depends on its JSON-RPC
method and tool (tools/scopes.py), not on the endpoint; a request without any token must be challenged without
an error code (RFC 6750 section 3.1) and with the scopes to ask for; and a refused token's reason (expired,
another audience) is worth telling the client that presented it. Nothing about a token is logged.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from providers.services import LOCAL, READ, RUN, SCOPES, Caller, owner_of
from server.bodies import hold_body
from server.callers import CallerToken
from server.tokens import Refused, TokenChecker, Unavailable
from tools import sdk
from tools.scopes import needed_by_body

STATIC_CLIENT = "static-token"  # the client id of the static RUNTIMES_MCP_HTTP_TOKEN
ASKED_SCOPES = (READ, RUN)  # what a client asks for at first; ADMIN is the operator's to grant


class Verifier:
    """Takes a bearer token: the static token, or one the issuer made for this server. (Not the SDK's TokenVerifier,
    whose None for a refused token would lose why it was refused.)"""

    def __init__(self, checker: TokenChecker | None, static_token: str | None) -> None:
        self.checker = checker
        self._static = static_token.encode() if static_token else None

    async def caller_token(self, token: str) -> CallerToken:
        """The token as this server takes it; Refused (or Unavailable) says why not."""
        # latin-1 gives back the header's exact bytes (_bearer decoded them so): a UTF-8 static token matches too.
        if self._static is not None and hmac.compare_digest(token.encode("latin-1", "replace"), self._static):
            return _token(STATIC_CLIENT, None, None, LOCAL)
        if self.checker is None:
            raise Refused("it is not RUNTIMES_MCP_HTTP_TOKEN")
        identity = await self.checker.check(token)
        who = Caller(owner_of(identity.issuer, identity.subject), identity.scopes)
        return _token(identity.client_id, identity.issuer, identity.subject, who, self.checker.audience)


def _token(
    client_id: str, issuer: str | None, subject: str | None, who: Caller, audience: str | None = None
) -> CallerToken:
    # The raw token goes no further than the verifier: nothing downstream needs it, and what is not held cannot leak.
    return CallerToken(
        token="",
        client_id=client_id,
        scopes=sorted(who.scopes),
        resource=audience,
        subject=subject,
        claims={"iss": issuer} if issuer else None,
        caller=who,
    )


def _challenge(
    metadata_url: str | None, error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """What a refusal says in `WWW-Authenticate`: where to sign in (the protected-resource metadata), or with the
    static token alone (no issuer) only the realm."""
    parts = [] if metadata_url else ['realm="runtimes-mcp"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        quotable = description.replace("\\", "").replace('"', "'")
        parts.append(f'error_description="{quotable}"')
    if scope and metadata_url:
        parts.append(f'scope="{scope}"')
    if metadata_url:
        parts.append(f'resource_metadata="{metadata_url}"')
    return "Bearer " + ", ".join(parts)


def sign_in_requests(app: ASGIApp, verifier: Verifier, metadata_url: str | None, path: str, max_body: int) -> ASGIApp:
    """ASGI middleware in front of /mcp: a request signs in with its bearer token (see the module's docstring)."""
    app = sdk.with_access_token_context(app)

    async def signed_in(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(path):
            await app(scope, receive, send)
            return
        bearer = _bearer(scope)
        if bearer is None:
            header = _challenge(metadata_url, scope=" ".join(ASKED_SCOPES))
            wanted = "access token" if metadata_url else "RUNTIMES_MCP_HTTP_TOKEN"
            body = {"error": "unauthorized", "error_description": f"send Authorization: Bearer <{wanted}>"}
            await _answer(send, 401, header, body)
            return
        try:
            token = await verifier.caller_token(bearer)
        except Refused as exc:
            again = "sign in again" if metadata_url else "send the server's RUNTIMES_MCP_HTTP_TOKEN"
            description = f"the bearer token is not valid: {exc}. Next: {again}"
            header = _challenge(metadata_url, "invalid_token", description)
            await _answer(send, 401, header, _body("invalid_token", description))
            return
        except Unavailable as exc:
            description = f"the bearer token cannot be checked now: {exc}. Next: retry in a moment"
            await _answer(send, 503, None, _body("temporarily_unavailable", description), retry_after=5)
            return
        sdk.sign_in(scope, token)
        if READ in token.caller.scopes and RUN in token.caller.scopes:
            await app(scope, receive, send)  # every request is allowed: its body is not read here
            return
        await within_scopes(scope, receive, send, token.caller)

    async def within_scopes(scope: Scope, receive: Receive, send: Send, who: Caller) -> None:
        """Answer 403 to a request its caller's scopes do not allow; pass the others on with their body."""
        request = await hold_body(receive, max_body)
        raw = request.body
        try:
            needs = needed_by_body(json.loads(raw)) if raw and not request.more else []
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read: the SDK answers for it
            needs = []
        missing = [s for s in needs if s not in who.scopes]
        if missing:
            granted = " ".join(s for s in SCOPES if s in who.scopes) or "none of runtimes-mcp's"
            description = (
                f"this request needs scope {' '.join(needs)}; the token grants {granted}. "
                f"Next: sign in again asking for {' '.join(needs)}"
            )
            header = _challenge(metadata_url, "insufficient_scope", description, " ".join(needs))
            await _answer(send, 403, header, _body("insufficient_scope", description))
            return
        await app(scope, request.replay(receive), send)

    return signed_in


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None


def _body(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


async def _answer(send: Send, status: int, challenge: str | None, body: dict[str, str], retry_after: int = 0) -> None:
    content = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    if challenge is not None:
        headers.append((b"www-authenticate", challenge.encode("latin-1", "replace")))
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
