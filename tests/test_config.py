"""Settings: zero-config start, environment and TOML sources, and messages that name the bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import TOOLSETS, ConfigError, load_settings


def test_starts_with_zero_configuration() -> None:
    settings = load_settings()
    assert settings.default_provider == "local"
    assert settings.toolsets == []
    assert settings.read_only is False
    assert settings.sprites_token is None
    assert settings.http_timeout_s == 30


def test_environment_sets_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "sessions, events")
    monkeypatch.setenv("RUNTIMES_MCP_READ_ONLY", "1")
    monkeypatch.setenv("XANO_ACCESS_TOKEN", "tok")
    monkeypatch.setenv("XANO_RUN_BASE_URL", "http://127.0.0.1:9/api:run")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "elsewhere"
    assert settings.toolsets == ["sessions"]  # events: offered by default now, still accepted
    assert settings.read_only is True
    assert settings.xano_access_token is not None and settings.xano_access_token.get_secret_value() == "tok"
    assert settings.xano_run_base_url == "http://127.0.0.1:9/api:run"


def test_toolsets_all_enables_every_toolset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    assert load_settings().toolsets == list(TOOLSETS)


def test_config_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, config_file) -> None:
    path = config_file(
        """
        default_provider = "local"
        toolsets = ["routines"]
        sprites_token = "from-file"

        [local.routines.greet]
        command = "cat"
        description = "echo the message"
        """
    )
    monkeypatch.setenv("SPRITES_TOKEN", "from-env")
    settings = load_settings(path)
    assert settings.toolsets == ["routines"]
    assert settings.local.routines["greet"].command == "cat"
    assert settings.sprites_token is not None and settings.sprites_token.get_secret_value() == "from-env"


def test_config_path_from_environment(monkeypatch: pytest.MonkeyPatch, config_file) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_CONFIG", str(config_file('toolsets = "routines"\n')))
    assert load_settings().toolsets == ["routines"]


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("RUNTIMES_MCP_TOOLSETS", "sessions,bogus", "RUNTIMES_MCP_TOOLSETS"),
        ("RUNTIMES_MCP_DEFAULT_PROVIDER", "nowhere", "RUNTIMES_MCP_DEFAULT_PROVIDER"),
        ("RUNTIMES_MCP_READ_ONLY", "perhaps", "RUNTIMES_MCP_READ_ONLY"),
        ("RUNTIMES_MCP_HTTP_TIMEOUT", "-1", "RUNTIMES_MCP_HTTP_TIMEOUT"),
        ("COMPUTESDK_PUBSUB_PORT", "99999", "COMPUTESDK_PUBSUB_PORT"),
    ],
)
def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert named in str(raised.value)


def test_unknown_key_in_file_is_named(config_file) -> None:
    with pytest.raises(ConfigError, match="tool_sets: unknown setting"):
        load_settings(config_file('tool_sets = ["events"]\n'))


def test_a_misspelt_key_in_file_gets_the_setting_it_may_mean_and_a_setting_is_named_once(config_file) -> None:
    for body, said in (
        ("[local]\nmax_timout_s = 5\n", "local.max_timout_s: unknown setting (did you mean max_timeout_s?)"),
        (
            '[local.routines.r]\ncommand = "cat"\ntimout_s = 5\n',
            "routines.r.timout_s: unknown setting (did you mean timeout_s?)",
        ),
        ('[local.sandbox]\nnetwork = "allowlist"\nallow = ["*.com"]\n', "): local.sandbox.allow: '*.com' is too broad"),
    ):
        with pytest.raises(ConfigError) as refused:
            load_settings(config_file(body))
        assert said in str(refused.value), refused.value


def test_bad_routine_in_file_is_named(config_file) -> None:
    with pytest.raises(ConfigError, match=r"local\.routines\.x\.command"):
        load_settings(config_file("[local.routines.x]\ndescription = 'no command'\n"))


@pytest.mark.parametrize(
    ("line", "named", "expected"),
    [
        ('read_only = "yes"', "read_only", "true or false"),
        ('max_sessions = "100"', "max_sessions", "a whole number"),
        ("max_sessions = 1.5", "max_sessions", "a whole number"),
        ('max_connections = "5"', "max_connections", "a whole number"),
        ('http_timeout_s = "30"', "http_timeout_s", "a number"),
        ("default_provider = 1", "default_provider", "a string"),
        ('[local]\nmax_timeout_s = "100"', "local.max_timeout_s", "a number"),
        ("[local]\noutput_cap_bytes = true", "local.output_cap_bytes", "a whole number"),
        ('[local.limits]\ncgroups = "no"', "local.limits.cgroups", "true or false"),
        ('[local.sandbox]\nnetwork = "yes"', "local.sandbox.network", "'none', 'allowlist' or 'host'"),
        ('[local.routines.r]\ncommand = "cat"\nenv = {A = 1}', "local.routines.r.env.A", "a string"),
    ],
)
def test_file_values_are_taken_as_strictly_as_tool_arguments(config_file, line: str, named: str, expected: str) -> None:
    """A string where a boolean or number belongs stops start-up with one line naming the key and the type
    (`network = "yes"` once turned the network on, `max_timeout_s = "100"` was taken)."""
    with pytest.raises(ConfigError) as raised:
        load_settings(config_file(line + "\n"))
    message = str(raised.value)
    assert "\n" not in message
    assert f"{named}: expected {expected}" in message or (named in message and expected in message), message


def test_environment_strings_are_still_converted(monkeypatch: pytest.MonkeyPatch, config_file) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_MAX_SESSIONS", "7")
    monkeypatch.setenv("RUNTIMES_MCP_ON_EXIT", "stop")
    settings = load_settings(config_file("read_only = true\n[local]\nmax_timeout_s = 100\n"))
    assert (settings.max_sessions, settings.read_only, settings.local.max_timeout_s) == (7, True, 100.0)
    assert settings.local.on_exit == "stop"


def test_missing_and_malformed_files(tmp_path: Path, config_file) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file("this is = = not toml"))


def test_secret_values_lists_every_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHASTRO_API_KEY", "sk_one")
    monkeypatch.setenv("COMPUTESDK_API_KEY", "two")
    assert sorted(load_settings().secret_values()) == ["sk_one", "two"]


# --- signing in with the team's identity provider ([oauth], RUNTIMES_MCP_OAUTH_*) ---------------------------
def test_oauth_from_the_file_and_the_environment(monkeypatch: pytest.MonkeyPatch, config_file) -> None:
    path = config_file(
        """
        public_url = "https://mcp.example.com/mcp"
        [oauth]
        issuer = "https://idp.example.com/realms/team"
        earlier_owner = "https://idp.example.com/realms/team#f00d"
        """
    )
    settings = load_settings(path)
    assert settings.oauth.issuer == "https://idp.example.com/realms/team"
    assert settings.audience == settings.resource_url == "https://mcp.example.com/mcp"
    assert settings.oauth.earlier_owner == "https://idp.example.com/realms/team#f00d"
    monkeypatch.setenv("RUNTIMES_MCP_OAUTH_AUDIENCE", "api://runtimes")
    monkeypatch.setenv("RUNTIMES_MCP_OAUTH_INTROSPECTION_URL", "https://idp.example.com/introspect")
    monkeypatch.setenv("RUNTIMES_MCP_OAUTH_CLIENT_ID", "runtimes-mcp")
    monkeypatch.setenv("RUNTIMES_MCP_OAUTH_CLIENT_SECRET", "introspection-SECRET")
    settings = load_settings(path)
    assert settings.audience == "api://runtimes" and settings.resource_url == "https://mcp.example.com/mcp"
    assert "introspection-SECRET" in settings.secret_values()  # so the log redacts it
    assert settings.oauth.shared_providers == []
    monkeypatch.setenv("RUNTIMES_MCP_OAUTH_SHARED_PROVIDERS", " xano, sprites ")
    assert load_settings(path).oauth.shared_providers == ["xano", "sprites"]


@pytest.mark.parametrize(
    ("env", "named", "says"),
    [
        ({"RUNTIMES_MCP_OAUTH_ISSUER": "https://idp.example"}, "RUNTIMES_MCP_OAUTH_ISSUER", "RUNTIMES_MCP_PUBLIC_URL"),
        ({"RUNTIMES_MCP_OAUTH_ISSUER": "http://idp.example"}, "RUNTIMES_MCP_OAUTH_ISSUER", "https://"),
        ({"RUNTIMES_MCP_OAUTH_ISSUER": "https://idp.example#x"}, "RUNTIMES_MCP_OAUTH_ISSUER", "fragment"),
        ({"RUNTIMES_MCP_OAUTH_AUDIENCE": "https://m.example"}, "RUNTIMES_MCP_OAUTH_AUDIENCE", "ISSUER"),
        (
            {"RUNTIMES_MCP_OAUTH_ISSUER": "https://idp.example", "RUNTIMES_MCP_OAUTH_AUDIENCE": "api-x"},
            "RUNTIMES_MCP_OAUTH_AUDIENCE",
            "RUNTIMES_MCP_PUBLIC_URL",
        ),
        (
            {
                "RUNTIMES_MCP_OAUTH_ISSUER": "https://idp.example",
                "RUNTIMES_MCP_PUBLIC_URL": "https://m.example/mcp",
                "RUNTIMES_MCP_OAUTH_INTROSPECTION_URL": "https://idp.example/introspect",
            },
            "RUNTIMES_MCP_OAUTH_CLIENT_ID",
            "introspection",
        ),
        ({"RUNTIMES_MCP_OAUTH_EARLIER_OWNER": "alice"}, "RUNTIMES_MCP_OAUTH_EARLIER_OWNER", "ISSUER#SUBJECT"),
        (
            {
                "RUNTIMES_MCP_OAUTH_ISSUER": "https://idp.example",
                "RUNTIMES_MCP_PUBLIC_URL": "https://m.example/mcp",
                "RUNTIMES_MCP_OAUTH_SHARED_PROVIDERS": "xano,local",
            },
            "RUNTIMES_MCP_OAUTH_SHARED_PROVIDERS",
            "'local' is not a remote provider",
        ),
        ({"RUNTIMES_MCP_OAUTH_SHARED_PROVIDERS": "xano"}, "RUNTIMES_MCP_OAUTH_SHARED_PROVIDERS", "ISSUER"),
        ({"RUNTIMES_MCP_PUBLIC_URL": "mcp.example.com"}, "RUNTIMES_MCP_PUBLIC_URL", "https://"),
    ],
)
def test_a_wrong_or_missing_oauth_combination_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str, says: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert named in message and says in message and "Next: " in message and "\n" not in message


def test_the_oauth_table_is_as_strict_as_the_rest_of_the_file(config_file) -> None:
    path = config_file('public_url = "https://m.example/mcp"\n[oauth]\nissuer = 5\nscopes = ["a"]\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert "oauth.issuer: expected a string (in quotes), got 5" in str(refused.value)
    assert "oauth.scopes: unknown setting" in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("RUNTIMES_MCP_READONLY", "1", "RUNTIMES_MCP_READONLY: not a setting (did you mean RUNTIMES_MCP_READ_ONLY?)"),
        ("RUNTIMES_MCP_TOOLSET", "workspaces", "(did you mean RUNTIMES_MCP_TOOLSETS?)"),
        ("RUNTIMES_MCP_READ_ONLY", "maybe", "RUNTIMES_MCP_READ_ONLY: expected 1, 0, true or false, got 'maybe'"),
        ("RUNTIMES_MCP_MAX_SESSIONS", "many", "expected a whole number, got 'many'"),
    ],
)
def test_a_misspelt_or_unreadable_variable_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert said in str(caught.value) and "\n" not in str(caught.value)
