"""The ProviderError family: every provider failure, classified once, with what to do next."""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed. `str()` is safe to show an agent: it never holds a secret."""

    kind = "provider error"
    default_hint = "Check the arguments and try again."

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.message = message
        self.status = status
        self.code = code
        self.hint = hint or self.default_hint

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else self.kind
        code = f" ({self.code})" if self.code else ""
        return f"{self.provider}: {where}{code}: {self.message}. Next: {self.hint}"


class InvalidInput(ProviderError):
    kind = "invalid input"
    default_hint = "Fix the named argument and call again."


class AuthError(ProviderError):
    kind = "credentials rejected"
    default_hint = "Set a valid credential in the environment and restart the server."


class PaymentRequired(ProviderError):
    kind = "not entitled"
    default_hint = "The account's plan does not include this feature; upgrade it or use another provider."


class NotFound(ProviderError):
    kind = "not found"
    default_hint = "Check the id; list the resources first to find a valid one."


class Conflict(ProviderError):
    kind = "conflict"
    default_hint = "The request duplicates existing work; fetch the existing resource instead of retrying."


class RateLimited(ProviderError):
    kind = "rate limited"

    def __init__(self, provider: str, message: str, *, retry_after_s: float | None = None, **kw: object) -> None:
        self.retry_after_s = retry_after_s
        when = f"in {retry_after_s:g} s" if retry_after_s is not None else "after a short pause"
        kw.setdefault("hint", f"Wait and retry {when}.")
        super().__init__(provider, message, **kw)  # type: ignore[arg-type]


class Unavailable(ProviderError):
    kind = "provider unavailable"
    default_hint = "The provider failed on its side; retry later or use another provider."


class Timeout(ProviderError):
    kind = "timeout"
    default_hint = "The provider did not answer in time; retry, or check the provider's status."


class ProtocolError(ProviderError):
    kind = "protocol error"
    default_hint = "The provider answered in an unexpected format; check the base URL setting."


class Busy(ProviderError):
    kind = "busy"
    default_hint = "Too many calls are in flight; retry in a moment."


class NotConfigured(ProviderError):
    kind = "not configured"
    default_hint = "Set the provider's credentials in the environment and restart the server."


class NotAllowed(ProviderError):
    kind = "not allowed"
    default_hint = "Ask the server's operator for the access this needs."


class Unsupported(ProviderError):
    kind = "not supported"
    default_hint = "Use a provider that supports this operation (see getDocs topic 'overview')."


# The HTTP statuses whose error needs nothing but the provider's message (the others are worked out below).
BY_STATUS = {400: InvalidInput, 402: PaymentRequired, 404: NotFound, 409: Conflict, 422: InvalidInput}


def error_for_status(
    provider: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    credential_env: str = "",
    retry_after_s: float | None = None,
) -> ProviderError:
    if status in (401, 403):
        hint = f"Set a valid {credential_env} and restart the server." if credential_env else None
        if status == 403:
            hint = "The credential lacks access to this resource; use one scoped to it."
        return AuthError(provider, message, status=status, code=code, hint=hint)
    if status == 429:
        return RateLimited(provider, message, status=status, code=code, retry_after_s=retry_after_s)
    cls = BY_STATUS.get(status, Unavailable if status >= 500 else ProviderError)
    return cls(provider, message, status=status, code=code)
