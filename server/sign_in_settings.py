"""Settings for signing in with the team's identity provider (HTTP only): the `[oauth]` table of the config file
and the RUNTIMES_MCP_OAUTH_* variables. Checked once at start; a wrong or missing combination is a one-line
error naming the setting (Settings._sign_in_settings_fit)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from providers.services import LOCAL_OWNER
from providers.values import comma_list

# Variable -> key of [oauth] it sets (the environment wins over the config file).
OAUTH_ENV = {
    "RUNTIMES_MCP_OAUTH_ISSUER": "issuer",
    "RUNTIMES_MCP_OAUTH_AUDIENCE": "audience",
    "RUNTIMES_MCP_OAUTH_INTROSPECTION_URL": "introspection_url",
    "RUNTIMES_MCP_OAUTH_CLIENT_ID": "client_id",
    "RUNTIMES_MCP_OAUTH_CLIENT_SECRET": "client_secret",
    "RUNTIMES_MCP_OAUTH_EARLIER_OWNER": "earlier_owner",
    "RUNTIMES_MCP_OAUTH_SHARED_PROVIDERS": "shared_providers",
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def env_name(key: str) -> str:
    """The variable of an [oauth] key, as error messages name it."""
    return next(name for name, k in OAUTH_ENV.items() if k == key)


def http_url(value: str) -> str:
    """An http(s) URL without query or fragment; plain http only on loopback (a token must not cross a network in
    the clear). A ValueError says what is wrong."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an https:// URL. Next: give the whole URL, starting with https://")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ValueError(f"{value!r} is plain http on a network. Next: use https:// (http is for loopback only)")
    if parts.query or parts.fragment or "#" in value:
        raise ValueError(f"{value!r} has a query (?) or fragment (#). Next: give the URL without it")
    return value


class OAuthSettings(BaseModel):
    """`[oauth]`: users sign in with an OAuth 2.0 / OIDC identity provider; this server is its resource server."""

    model_config = ConfigDict(extra="forbid", strict=True)
    issuer: str | None = Field(
        None, description="The identity provider's issuer URL (OIDC or RFC 8414 discovery at its well-known URL)."
    )
    audience: str | None = Field(
        None, description="What access tokens must name in `aud` (default: RUNTIMES_MCP_PUBLIC_URL)."
    )
    introspection_url: str | None = Field(
        None, description="RFC 7662 token introspection, for tokens that are not JWTs (with client_id/secret)."
    )
    client_id: str | None = Field(None, description="This server's client id at the introspection endpoint.")
    client_secret: SecretStr | None = Field(None, description="Its secret at the introspection endpoint.")
    earlier_owner: str = Field(
        LOCAL_OWNER,
        description="Who owns the sessions, runs, events, tasks and workspaces made before owners were recorded: "
        "`local` (stdio and the static token) or a signed-in user as ISSUER#SUBJECT.",
    )

    shared_providers: list[str] = Field(
        default_factory=list,
        description="Remote providers whose account every signed-in user may use (e.g. xano,sprites): this server "
        "does not divide a remote account between users, so without this only runtimes:admin uses them.",
    )

    @field_validator("shared_providers", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return comma_list(value) if isinstance(value, str) else value

    @field_validator("shared_providers")
    @classmethod
    def _remote_providers(cls, value: list[str]) -> list[str]:
        from providers.registry import PROVIDERS

        remote = sorted(name for name, provider in PROVIDERS.items() if not provider.owners)
        for name in value:
            if name not in remote:
                raise ValueError(f"{name!r} is not a remote provider. Next: list some of {', '.join(remote)}")
        return value

    @field_validator("issuer", "introspection_url", "audience", "client_id", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("issuer", "introspection_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value) if value is not None else None

    @field_validator("earlier_owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if value == LOCAL_OWNER:
            return value
        issuer, hash_sign, subject = value.partition("#")
        if not hash_sign or not subject:
            raise ValueError(
                f"{value!r} is neither `local` nor a user. Next: give `local`, or ISSUER#SUBJECT as tokens name the "
                "user (e.g. https://idp.example#a1b2)"
            )
        http_url(issuer)
        return value
