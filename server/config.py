"""Settings from the environment and an optional TOML file, validated once at start."""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from providers.provider import Provider, Setting, load
from providers.registry import PROVIDERS
from providers.values import comma_list
from server.sign_in_settings import OAUTH_ENV, OAuthSettings, env_name, http_url

TOOLSETS = ("sessions", "routines", "launchers", "workspaces")
OFFERED_BY_DEFAULT = ("events",)  # toolsets of earlier releases whose tools are now offered by default
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]")
LOOPBACK_ORIGINS = tuple(f"http://{host}" for host in LOOPBACK_HOSTS)


class ConfigError(Exception):
    """A setting is missing or wrong; the message names it."""


def _env(variable: str, key: str, default: Any = None, **constraints: Any) -> Any:
    if "default_factory" not in constraints:
        constraints["default"] = default
    return Field(validation_alias=AliasChoices(variable, key), **constraints)


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("runtimes-mcp", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", populate_by_name=True)

    data_dir: Path = _env("RUNTIMES_MCP_DATA_DIR", "data_dir", default_factory=default_data_dir)
    default_provider: str = _env("RUNTIMES_MCP_DEFAULT_PROVIDER", "default_provider", "local")
    toolsets: Annotated[list[str], NoDecode] = _env("RUNTIMES_MCP_TOOLSETS", "toolsets", default_factory=list)
    read_only: bool = _env("RUNTIMES_MCP_READ_ONLY", "read_only", False)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = _env(
        "RUNTIMES_MCP_LOG_LEVEL", "log_level", "WARNING"
    )
    http_token: SecretStr | None = _env("RUNTIMES_MCP_HTTP_TOKEN", "http_token")
    # Secret: a PostgreSQL URL may hold a password.
    state_url: SecretStr | None = _env("RUNTIMES_MCP_STATE_URL", "state_url")
    allowed_origins: Annotated[list[str], NoDecode] = _env(
        "RUNTIMES_MCP_ALLOWED_ORIGINS", "allowed_origins", default_factory=lambda: list(LOOPBACK_ORIGINS)
    )
    allowed_hosts: Annotated[list[str], NoDecode] = _env(
        "RUNTIMES_MCP_ALLOWED_HOSTS", "allowed_hosts", default_factory=lambda: list(LOOPBACK_HOSTS)
    )
    max_request_bytes: int = _env("RUNTIMES_MCP_MAX_REQUEST_BYTES", "max_request_bytes", 4 * 1024 * 1024, ge=1024)
    max_concurrent_calls: int = _env("RUNTIMES_MCP_MAX_CONCURRENT_CALLS", "max_concurrent_calls", 64, ge=1)
    queue_timeout_s: float = _env("RUNTIMES_MCP_QUEUE_TIMEOUT", "queue_timeout_s", 10, ge=0)
    provider_concurrency: int = _env("RUNTIMES_MCP_PROVIDER_CONCURRENCY", "provider_concurrency", 16, ge=1)
    retries: int = _env("RUNTIMES_MCP_RETRIES", "retries", 2, ge=0, le=10)
    header_timeout_s: float = _env("RUNTIMES_MCP_HEADER_TIMEOUT", "header_timeout_s", 10, gt=0)
    body_timeout_s: float = _env("RUNTIMES_MCP_BODY_TIMEOUT", "body_timeout_s", 30, gt=0)
    max_connections: int | None = _env("RUNTIMES_MCP_MAX_CONNECTIONS", "max_connections", ge=1)
    max_sessions: int = _env("RUNTIMES_MCP_MAX_SESSIONS", "max_sessions", 1000, ge=1)
    session_idle_timeout_s: float = _env("RUNTIMES_MCP_SESSION_IDLE_TIMEOUT", "session_idle_timeout_s", 600, gt=0)
    shutdown_grace_s: int = _env("RUNTIMES_MCP_SHUTDOWN_GRACE", "shutdown_grace_s", 10, ge=0)
    http_timeout_s: float = _env("RUNTIMES_MCP_HTTP_TIMEOUT", "http_timeout_s", 30, gt=0)
    # This server's canonical URL as clients reach it (e.g. https://mcp.example.com/mcp): OAuth's default audience
    # and the `resource` of its protected-resource metadata.
    public_url: str | None = _env("RUNTIMES_MCP_PUBLIC_URL", "public_url")
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)

    _config_file: Path | None = PrivateAttr(None)

    @property
    def config_file(self) -> Path | None:
        """The TOML file these settings came from (it may hold credentials: sandboxed commands never see it)."""
        return self._config_file

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the config file, which arrives as init arguments.
        return (env_settings, init_settings)

    @field_validator("toolsets", mode="before")
    @classmethod
    def _parse_toolsets(cls, value: Any) -> list[str]:
        names = [name for name in comma_list(value) if name not in OFFERED_BY_DEFAULT]
        if "all" in names:
            return list(TOOLSETS)
        unknown = sorted(set(names) - set(TOOLSETS))
        if unknown:
            raise ValueError(f"unknown toolset(s) {', '.join(unknown)}; choose from {', '.join(TOOLSETS)} or all")
        return names

    @field_validator("state_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value().strip() if value is not None else ""
        if not url:
            return None
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (leave it unset for SQLite in the data directory)")
        return SecretStr(url)

    @field_validator("http_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        """RUNTIMES_MCP_HTTP_TOKEN= (say, `docker run -e RUNTIMES_MCP_HTTP_TOKEN` with the variable unset on the
        host) means no token, not a token nobody can send."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return http_url(value) if value is not None and value.strip() else None

    @field_validator("allowed_origins", "allowed_hosts", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> list[str]:
        return comma_list(value)

    @field_validator("default_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; choose from {', '.join(PROVIDERS)}")
        return value

    @model_validator(mode="after")
    def _default_provider_is_configured(self) -> Settings:
        provider = PROVIDERS[self.default_provider]
        switches = [s.needs for s in provider.capabilities.values() if s.needs is not None]
        credentials = [s for s in switches if s.key in type(self).model_fields]
        if credentials and not any(self.is_set(s) for s in credentials):
            raise ValueError(
                f"RUNTIMES_MCP_DEFAULT_PROVIDER is {provider.name}, which has no credentials: set "
                f"{provider.credential_env}, or choose a configured provider (local needs none)"
            )
        return self

    @model_validator(mode="after")
    def _sign_in_settings_fit(self) -> Settings:
        """The [oauth] settings that only make sense together, and the audience and resource URL they need."""
        oauth = self.oauth

        def name(key: str) -> str:
            return f"{env_name(key)} (config file: oauth.{key})"

        if oauth.issuer is None:
            keys = ("audience", "introspection_url", "client_id", "client_secret", "shared_providers")
            given = [k for k in keys if getattr(oauth, k)]
            if given:
                raise ValueError(
                    f"{name(given[0])} is set but {name('issuer')} is not. Next: set the issuer to sign users in "
                    f"with OAuth, or unset {env_name(given[0])}"
                )
            return self
        if oauth.audience is None and self.public_url is None:
            raise ValueError(
                f"{name('issuer')} needs an audience, and neither RUNTIMES_MCP_PUBLIC_URL nor "
                f"{env_name('audience')} is set. Next: set RUNTIMES_MCP_PUBLIC_URL (config file: public_url) to this "
                "server's URL as clients reach it (e.g. https://mcp.example.com/mcp)"
            )
        if self.resource_url is None:
            raise ValueError(
                f"{name('audience')} is not a URL, so it cannot name this server in its protected-resource metadata. "
                "Next: set RUNTIMES_MCP_PUBLIC_URL (config file: public_url) to this server's URL as clients reach it"
            )
        if oauth.introspection_url is not None and (oauth.client_id is None or oauth.client_secret is None):
            missing = "client_id" if oauth.client_id is None else "client_secret"
            raise ValueError(
                f"{name('introspection_url')} needs {name(missing)}, the credentials this server authenticates "
                f"with at the introspection endpoint. Next: set {env_name(missing)}"
            )
        return self

    @property
    def audience(self) -> str | None:
        """What access tokens must name in `aud`."""
        return self.oauth.audience or self.public_url

    @property
    def resource_url(self) -> str | None:
        """This server as a protected resource (RFC 9728): the public URL, else an audience that is a URL."""
        if self.public_url is not None:
            return self.public_url
        try:
            return http_url(self.oauth.audience) if self.oauth.audience else None
        except ValueError:
            return None

    def is_set(self, setting: Setting | None) -> bool:
        return setting is None or getattr(self, setting.key) is not None

    def provider_arguments(self, provider: Provider) -> dict[str, Any]:
        """A provider client's keyword arguments from its settings (credentials unwrapped; unset ones None)."""
        values = {s.arg: getattr(self, s.key) for s in provider.settings}
        return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in values.items()}

    def section(self, provider: Provider) -> Any:
        """The provider's config-file section ([local]), validated; None for a provider without one."""
        return getattr(self, provider.name) if provider.section else None

    def secret_values(self) -> list[str]:
        """Every credential's value, so callers can make sure none leaks."""
        values = [getattr(self, name) for name in type(self).model_fields] + [self.oauth.client_secret]
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()]


def _provider_field(setting: Setting) -> Any:
    kind: Any = SecretStr | None if setting.secret else int if isinstance(setting.default, int) else str
    bounds: dict[str, Any] = {"ge": setting.minimum, "le": setting.maximum} if kind is int else {}
    alias = AliasChoices(setting.env, *setting.aliases, setting.key)
    return (kind, Field(setting.default, validation_alias=alias, description=setting.description, **bounds))


def _section_field(provider: Provider) -> Any:
    model = load(str(provider.section))
    return (model, Field(default_factory=model))


# Settings with every registered provider's settings as fields (SPRITES_TOKEN is `sprites_token`, ...), and its
# config-file section, if it has one, under its name ([local] is `local`).
WithProviders: type[Settings] = create_model(
    "Settings",
    __base__=Settings,
    **{s.key: _provider_field(s) for p in PROVIDERS.values() for s in p.settings},
    **{p.name: _section_field(p) for p in PROVIDERS.values() if p.section},
)


def _setting_name(field: str) -> str:
    info = WithProviders.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str) and alias.choices[0] != field:
        return f"{alias.choices[0]} (config file: {field})"
    return field


# What a config file must give where a strict type check failed (the environment's strings are converted).
EXPECTED = {
    "bool_type": "true or false (no quotes)",
    "int_type": "a whole number (no quotes)",
    "float_type": "a number (no quotes)",
    "string_type": "a string (in quotes)",
}
PARSED = {
    "bool_parsing": "1, 0, true or false",
    "int_parsing": "a whole number",
    "float_parsing": "a number",
}
_FITS: dict[type, tuple[str, tuple[type, ...]]] = {
    bool: ("bool_type", (bool,)),
    int: ("int_type", (int,)),
    float: ("float_type", (int, float)),
    str: ("string_type", (str,)),
    Path: ("string_type", (str,)),
    SecretStr: ("string_type", (str,)),
}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f'"{value}" (a string)'
    return f"{value} (a number)" if isinstance(value, int | float) else "a table or a list"


def _file_type_problems(file_values: dict[str, Any]) -> list[str]:
    """The config file's top-level values as strictly as tool arguments (`read_only = "yes"` is refused), while
    the same settings from the environment are converted from their strings. Sections check themselves (their
    models are strict)."""
    problems = []
    for key, value in file_values.items():
        info = WithProviders.model_fields.get(key)
        kind = info.annotation if info else None
        kinds = [k for k in get_args(kind) if k is not type(None)] if isinstance(kind, UnionType) else [kind]
        if len(kinds) != 1 or kinds[0] not in _FITS:
            continue  # unknown keys, sections and lists are left to the model
        wanted, fits = _FITS[kinds[0]]
        if type(value) not in fits:
            problems.append(f"{key}: expected {EXPECTED[wanted]}, got {_shown(value)}")
    return problems


# Set by the server for its own processes (--workers), or by the tests: not settings, and not refused.
INTERNAL_VARIABLES = {"RUNTIMES_MCP_WORKER_PORT", "RUNTIMES_MCP_WORKER_PARENT", "RUNTIMES_MCP_TEST_CACHE"}


def setting_variables() -> set[str]:
    names = {"RUNTIMES_MCP_CONFIG"}
    for field in WithProviders.model_fields.values():
        alias = field.validation_alias
        names.update(c for c in getattr(alias, "choices", ()) if isinstance(c, str) and c.isupper())
    for provider in PROVIDERS.values():
        names.update(provider.section_env)
    return names | set(OAUTH_ENV)


def _unknown_variables() -> list[str]:
    """RUNTIMES_MCP_* variables that are no setting: a misspelt one (RUNTIMES_MCP_READONLY) would otherwise
    be ignored without a word."""
    known = setting_variables() | INTERNAL_VARIABLES
    problems = []
    for name in sorted(n for n in os.environ if n.startswith("RUNTIMES_MCP_") and n not in known):
        close = difflib.get_close_matches(name, known, n=1)
        problems.append(f"{name}: not a setting" + (f" (did you mean {close[0]}?)" if close else ""))
    return problems


def load_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """Read the TOML file (from the argument or RUNTIMES_MCP_CONFIG), overlay the environment, validate."""
    unknown = _unknown_variables()
    if unknown:
        raise ConfigError("invalid configuration: " + "; ".join(unknown) + ". Next: fix or unset it")
    path = config_path or os.environ.get("RUNTIMES_MCP_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        try:
            file_values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path} (from --config or RUNTIMES_MCP_CONFIG)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    from_env: dict[tuple[str, ...], str] = {}  # a section's key (with the section) -> the variable that set it
    sections = [(p.name, p.section_env) for p in PROVIDERS.values()] + [
        ("oauth", {k: (v,) for k, v in OAUTH_ENV.items()})
    ]
    for table, section_env in sections:  # variables of a section ([local], [oauth]) win over the config file too
        for variable, keys in section_env.items():
            if os.environ.get(variable):
                section = file_values.setdefault(table, {})
                for key in keys[:-1]:
                    section = section.setdefault(key, {}) if isinstance(section, dict) else section
                if isinstance(section, dict):
                    section[keys[-1]] = os.environ[variable]
                    from_env[(table, *keys)] = variable
    for provider in PROVIDERS.values():  # `[ray] address` is the file's runtimes_mcp_ray_address too
        section = file_values.get(provider.name)
        for setting in provider.settings:
            if setting.section_key and isinstance(section, dict) and setting.section_key in section:
                file_values.setdefault(setting.key, section.pop(setting.section_key))
    problems = _file_type_problems(file_values)
    if problems:
        raise ConfigError(f"invalid configuration ({path}): " + "; ".join(problems))
    try:
        settings = WithProviders(**file_values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            msg = err["msg"].removeprefix("Value error, ")
            if not loc:  # a check across settings: its message names them
                problems.append(msg)
                continue
            from_env_name = from_env.get(tuple(loc))
            if from_env_name:
                where = f"{from_env_name} (config file: {'.'.join(loc)})"
            else:
                where = ".".join([_setting_name(loc[0]), *loc[1:]])
            if msg.startswith(f"{where}."):  # it names its setting itself, more precisely
                problems.append(msg)
                continue
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(loc[-1], _known_keys(WithProviders, loc[:-1]), n=1)
                msg = "unknown setting" + (f" (did you mean {close[0]}?)" if close else "")
            elif err["type"] in EXPECTED:
                msg = f"expected {EXPECTED[err['type']]}, got {_shown(err['input'])}"
            elif err["type"] in PARSED:  # a variable's text that is no such value
                msg = f"expected {PARSED[err['type']]}, got {err['input']!r}"
            elif err["type"] == "literal_error":
                msg = f"{msg}, got {_shown(err['input'])}"
            problems.append(f"{where}: {msg}")
        raise ConfigError(f"invalid configuration{f' ({path})' if path else ''}: " + "; ".join(problems)) from None
    if path:
        settings._config_file = Path(path).resolve()
    return settings


def _known_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The keys a config table at `loc` (below `model`) takes; none when that is not a table of settings."""
    parts = iter(loc)
    for part in parts:
        field = model.model_fields.get(part)
        if field is None:
            return []
        if get_origin(field.annotation) is dict:
            next(parts, None)  # a name of the operator's, such as a routine's
        models = [a for a in (field.annotation, *get_args(field.annotation)) if isinstance(a, type)]
        models = [a for a in models if issubclass(a, BaseModel)]
        if not models:
            return []
        model = models[0]
    return list(model.model_fields)
