"""Which providers exist, what each can do, and which credential switches each capability on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from providers.errors import Unsupported

# Headline capabilities, one per headline tool; provider classes implement them as methods.
HEADLINE = ("list_sessions", "exec_run", "stop_session", "invoke_routine", "get_launchers", "store_event")


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    title: str
    summary: str
    factory: str  # "module:Class", imported on first use to keep start-up fast
    # capability -> the settings field that must be set for it (None: always available)
    capabilities: dict[str, str | None]
    credential_env: str = ""  # named in auth errors: what the user should set

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


def _all(cred: str | None, *capabilities: str) -> dict[str, str | None]:
    return dict.fromkeys(capabilities, cred)


PROVIDERS: dict[str, ProviderInfo] = {
    p.name: p
    for p in (
        ProviderInfo(
            "local",
            "Local runtime",
            "Real processes, routines, launchers and events on this machine; no account needed.",
            "providers.local.runtime:LocalRuntime",
            _all(
                None,
                *HEADLINE,
                "get_session",
                "get_events",
                "list_routines",
                "get_routine_run",
                "get_launcher",
            ),
        ),
        ProviderInfo(
            "sprites",
            "Sprites",
            "Exec sessions inside Sprites sandboxes: list and kill.",
            "providers.sprites:SpritesClient",
            _all("sprites_token", "list_sessions", "stop_session"),
            "SPRITES_TOKEN",
        ),
        ProviderInfo(
            "xano",
            "Xano Run API",
            "XanoScript runs and sessions: exec, list, stop, inspect.",
            "providers.xano:XanoRunClient",
            _all(
                "xano_access_token",
                "list_sessions",
                "exec_run",
                "stop_session",
                "get_session",
                "set_session_access",
                "rename_session",
                "get_session_sink",
                "check_xano_doc",
            ),
            "XANO_ACCESS_TOKEN",
        ),
        ProviderInfo(
            "archastro",
            "ArchAstro",
            "Agent routines (invoke, runs) and agent sessions.",
            "providers.archastro:ArchAstroClient",
            _all(
                "archastro_api_key",
                "list_sessions",
                "stop_session",
                "invoke_routine",
                "get_session",
                "send_session_message",
                "delete_session",
                "list_routines",
                "get_routine",
                "list_routine_presets",
                "activate_routine",
                "pause_routine",
                "get_routine_run",
                "list_routine_runs",
            ),
            "ARCHASTRO_API_KEY",
        ),
        ProviderInfo(
            "decthings",
            "Decthings",
            "Persistent launchers: list, filter, inspect.",
            "providers.decthings:DecthingsClient",
            _all("decthings_api_key", "get_launchers", "get_launcher"),
            "DECTHINGS_API_KEY",
        ),
        ProviderInfo(
            "computesdk",
            "ComputeSDK events",
            "Sandbox events: store, read back, subscribe.",
            "providers.computesdk:ComputeSDKEventsClient",
            {"store_event": "computesdk_access_token", "get_events": "computesdk_api_key"},
            "COMPUTESDK_ACCESS_TOKEN",
        ),
    )
}


def load_factory(info: ProviderInfo) -> Any:
    """Import a provider's class on first use (provider modules cost start-up time)."""
    import importlib

    module_name, _, attr = info.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise Unsupported(info.name, f"the {info.title} client is not built yet in this version") from exc
    return getattr(module, attr)
