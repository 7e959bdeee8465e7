"""The shared base of every remote client: one long-lived httpx client, auth, timeouts, error mapping."""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Self
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from providers.answers import Redactor, TooDeep, parse_answer, valid_text
from providers.endpoints import Endpoint
from providers.errors import (
    NotFound,
    ProtocolError,
    ProviderError,
    RateLimited,
    Timeout,
    Unavailable,
    error_for_status,
)
from providers.models import ProviderRecord

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 2
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
RETRY_AFTER_CAP_S = 30.0  # a longer Retry-After is reported to the agent instead of waited out
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a larger answer is refused, not read: one call, bounded memory
MAX_ERROR_CHARS = 500  # of a provider's error message, in results and logs


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None

        return max(0.0, when.timestamp() - time.time())


class HttpProvider:
    """Subclasses set `name` and may override `error_message` for their error body."""

    name = "remote"
    credential_env = ""
    _declared_credentials: tuple[str, ...] = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        """Every client knows the values of the credentials its provider declares (Provider.credentials), from
        the keyword arguments they arrive in (Setting.arg), however it is built and whatever header, parameter
        or line then carries them: none may appear in a result or an error. The first declared credential is
        the one a rejected request names (`credential_env`), unless the call names another."""
        from providers.registry import PROVIDERS  # the registry imports the provider packages, not their clients

        client = super().__new__(cls)
        declaration = PROVIDERS.get(cls.name)
        credentials = declaration.credentials if declaration is not None else ()
        client.credential_env = credentials[0].env if credentials else cls.credential_env
        client._declared_credentials = tuple(v for s in credentials if isinstance(v := kwargs.get(s.arg), str) and v)
        return client

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = without_userinfo(self.base_url)
        self.timeout_s = timeout_s
        self.retries = retries
        # the whole call, every attempt and every wait included
        self.deadline_s = timeout_s * 2
        # values that must never appear in a result or an error: the declared credentials (see __new__),
        # credentials in the client's headers, URL userinfo
        secrets, basic = _secret_parts(headers, self.base_url)
        self.redact = Redactor([*secrets, *self._declared_credentials], basic)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=dict(headers),
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def record(self, answer: Any) -> ProviderRecord:
        """An answer passed through as it came (a non-object answer is wrapped as {"value": ...}); an empty one
        is no record (a success that says nothing is not one)."""
        if answer in (None, {}, [], ""):
            raise ProtocolError(self.name, "the answer is empty where a record was expected")
        return ProviderRecord(provider=self.name, record=answer if isinstance(answer, dict) else {"value": answer})

    async def send(
        self,
        endpoint: Endpoint,
        *,
        path: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        credential_env: str | None = None,
        retry_safe: bool | None = None,
    ) -> httpx.Response:
        """Send one documented request; any failure becomes a ProviderError that says what to do.
        Requests that are safe to repeat (reads; writes with an idempotency key, via `retry_safe`) are retried
        on connection failures, 5xx and 429 with exponential backoff and jitter; others are sent once."""
        safe = endpoint.retry_safe if retry_safe is None else retry_safe
        deadline = time.monotonic() + self.deadline_s
        where = f"{endpoint.method} {endpoint.path}"
        url = endpoint.url_path(**(path or {}))
        params = {k: v for k, v in (query or {}).items() if v is not None}
        request = self._http.build_request(
            endpoint.method, url, params=params or None, headers=headers, json=body, content=content
        )

        async def bounded() -> httpx.Response:
            # httpx's timeout is per read: a provider trickling bytes could hold a call for ever without this.
            left = min(self.timeout_s, deadline - time.monotonic())
            with anyio.move_on_after(max(0.0, left)) as scope:
                return await self._send_once(request, where, path or {}, credential_env or self.credential_env)
            assert scope.cancel_called
            raise Timeout(
                self.name, f"{where} did not complete within {self.timeout_s:g} s (RUNTIMES_MCP_HTTP_TIMEOUT)"
            )

        def wait(state: RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            assert failure is not None, "tenacity waits only after a failed attempt"
            asked = failure.retry_after_s if isinstance(failure, RateLimited) else None
            delay = float(_jittered(state)) if asked is None else asked
            if time.monotonic() + delay >= deadline:  # no time left for another try: report this failure
                raise failure
            return delay

        retrying = AsyncRetrying(
            stop=stop_after_attempt(1 + (self.retries if safe else 0)),
            retry=retry_if_exception(_transient),
            wait=wait,
            sleep=anyio.sleep,
            reraise=True,
        )
        response: httpx.Response = await retrying(bounded)
        return response

    async def _send_once(
        self, request: httpx.Request, where: str, ids: Mapping[str, str], credential_env: str
    ) -> httpx.Response:
        try:
            response = await self._read_capped(request, where)
        except httpx.TimeoutException:
            raise Timeout(self.name, f"{where} got no answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise Unavailable(
                self.name,
                f"could not reach {self.shown_url} ({type(exc).__name__})",
                hint="Check the network and the provider's base URL setting, then retry.",
            ) from None
        if response.status_code >= 400:
            raise self.error_for(response, where, ids, credential_env)
        if 300 <= response.status_code < 400:
            raise self._redirected(response, where)
        return response

    def _redirected(self, response: httpx.Response, where: str) -> ProtocolError:
        """A redirect is never followed: the credential would go wherever it points."""
        target = response.headers.get("location")
        to = f" to {self.clean(without_userinfo(target.split('?')[0]))}" if target else ""
        return ProtocolError(
            self.name,
            f"{where} answered {response.status_code}, a redirect{to}, which is not followed",
            status=response.status_code,
            hint="Point the provider's base URL setting at its API itself (the address it redirects to, if that is "
            "the API), then restart the server.",
        )

    async def _read_capped(self, request: httpx.Request, where: str) -> httpx.Response:
        """Send and read the answer, refusing one larger than MAX_RESPONSE_BYTES as it streams in."""
        response = await self._http.send(request, stream=True)
        try:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
                raise self._too_large(where)
            chunks, size = [], 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise self._too_large(where)
                chunks.append(chunk)
        finally:
            await response.aclose()
        return httpx.Response(response.status_code, headers=response.headers, content=b"".join(chunks), request=request)

    def _too_large(self, where: str) -> ProtocolError:
        return ProtocolError(
            self.name,
            f"{where} answered more than {MAX_RESPONSE_BYTES // (1024 * 1024)} MB; the answer was not read",
            hint="Ask for less: a smaller limit or page, or a narrower filter.",
        )

    def clean(self, text: str) -> str:
        """A provider's text made safe to show: valid, no credential, no URL userinfo, at most MAX_ERROR_CHARS."""
        text = self.redact(valid_text(text))
        return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + f"… ({len(text)} chars)"

    def read_json(self, data: bytes | str) -> Any:
        """A provider's JSON made safe (providers.answers.parse_answer, with this provider's credentials
        redacted). Raises ValueError when it is not JSON, a ProtocolError when it is nested too deep."""
        try:
            return parse_answer(data, self.redact)
        except TooDeep as exc:
            raise ProtocolError(
                self.name,
                f"the answer is {exc}, more than any record needs",
                hint="The provider answered in a shape no client can read; retry later, or report it to the provider.",
            ) from None

    async def call_json(self, endpoint: Endpoint, **kwargs: Any) -> Any:
        response = await self.send(endpoint, **kwargs)
        if not response.content:
            return None
        try:
            return self.read_json(response.content)
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise ProtocolError(
                self.name,
                f"{endpoint.method} {endpoint.path} answered {response.status_code} with a body that "
                f"is not JSON ({kind}, {len(response.content)} bytes)",
            ) from None

    # --- the contract of an answer: what a success must hold, or it is a ProtocolError ------------------
    def entries(self, answer: Any, key: str, what: str) -> list[dict[str, Any]]:
        """The objects of a list answer: `{key: [...]}` or a bare list (providers document both shapes)."""
        items = answer.get(key) if isinstance(answer, dict) else answer
        if not isinstance(items, list):
            raise ProtocolError(self.name, f"{what} is neither {{{key}: [...]}} nor a list")
        return [item for item in items if isinstance(item, dict)]

    def identity(self, record: Any, what: str, *keys: str) -> str:
        """The record's id (the first of `keys` it holds, default "id"): a success without one is no success."""
        names = keys or ("id",)
        if isinstance(record, dict):
            for key in names:
                value = record.get(key)
                if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                    return self.clean(str(value))
        raise ProtocolError(self.name, f"{what} has no {' or '.join(names)}")

    def error_message(self, body: Any) -> tuple[str | None, str | None]:
        """(message, code) from a provider's error body; the common shapes are understood here."""
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                return _str(error.get("message")), _str(error.get("code"))
            message = _str(body.get("message")) or _str(error)
            code = _str(body.get("code")) or (_str(error) if body.get("message") else None)
            return message, code
        return None, None

    def error_for(
        self, response: httpx.Response, where: str, ids: Mapping[str, str], credential_env: str
    ) -> ProviderError:
        try:
            body = self.read_json(response.content)
        except (ValueError, ProtocolError):  # not JSON, or nested too deep to read: the status still says enough
            body = None
        message, code = self.error_message(body)
        message = self.clean(message) if message else message
        code = self.clean(code) if code else code
        if not message:
            message = f"{where} failed"
            if body is None and response.content:
                message += " (the error body is not JSON)"
        error = error_for_status(
            self.name,
            response.status_code,
            message,
            code=code,
            credential_env=credential_env,
            retry_after_s=retry_after_seconds(response),
        )
        if isinstance(error, NotFound) and ids:
            named = ", ".join(f"{k}={v!r}" for k, v in ids.items())
            error.message = f"{message} ({named})"
            error.hint = f"Check {', '.join(ids)}: list the resources first to find a valid one."
        return error


def _transient(exc: BaseException) -> bool:
    """Worth another try: the provider was unreachable, failed on its side, or asked us to slow down."""
    if isinstance(exc, RateLimited):
        return exc.retry_after_s is None or exc.retry_after_s <= RETRY_AFTER_CAP_S
    if isinstance(exc, Unavailable):
        return exc.status is None or exc.status >= 500
    return False


_jittered = wait_random_exponential(multiplier=BACKOFF_BASE_S, max=BACKOFF_MAX_S)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _secret_parts(headers: Mapping[str, str], base_url: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Credential values in the client's headers (the token after `Bearer `, too) and in the base URL, and the
    base URL's (user, password), which httpx sends as HTTP Basic credentials."""
    found: set[str] = set()
    for name, value in headers.items():
        if name.lower() in ("authorization", "x-api-key", "api-key", "x-access-token", "cookie") and value:
            found.add(value)
            token = value.partition(" ")[2]
            if token:
                found.add(token)
    parts = urlsplit(base_url)
    for piece in (parts.username, parts.password):
        if piece:
            found |= {piece, unquote(piece)}
    basic = [(unquote(parts.username or ""), unquote(parts.password or ""))] if parts.username else []
    return sorted(found), basic


def text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def compact(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
