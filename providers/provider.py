"""How a provider declares itself: its client, capabilities, settings and endpoints (providers/registry.py
lists the declarations)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.capabilities import Capability
from providers.endpoints import Endpoint
from providers.errors import Unsupported


@dataclass(frozen=True)
class Setting:
    """One setting of a provider: an environment variable, also accepted lower-cased in the config file."""

    env: str
    arg: str  # the client's keyword argument that receives the value
    description: str
    default: str | int | None = None  # None: a credential, secret, and unset until given
    minimum: int | None = None
    maximum: int | None = None
    aliases: tuple[str, ...] = ()  # more variables that set it, read after `env` (a tool's own, e.g. RAY_ADDRESS)
    section_key: str | None = None  # also settable as this key of the provider's config-file section

    @property
    def key(self) -> str:
        """Its name in the config file (and on the settings object)."""
        return self.env.lower()

    @property
    def secret(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Serves:
    """How a provider serves one capability: the tool arguments its method takes (exactly its keyword
    parameters; a trailing "?" marks an optional one) and the credential that switches it on (None: always on).
    tests/test_architecture.py checks the arguments against the method's signature."""

    arguments: tuple[str, ...] = ()
    needs: Setting | None = None


@dataclass(frozen=True)
class Resource:
    """An MCP resource (a URI template) a provider serves while it is configured (`needs`): `read` is called with
    the provider's client and the URI's parameters, and returns the resource's text (or bytes: a blob)."""

    uri: str
    name: str
    title: str
    description: str
    mime_type: str
    read: str  # "module:function"
    needs: Setting | None = None


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    summary: str
    client: str  # "module:Class", imported on first use (provider clients cost start-up time)
    capabilities: Mapping[Capability[Any, Any], Serves]
    settings: tuple[Setting, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    # What it offers the server besides tools (providers/services.py); each "module:attr", imported when used.
    section: str | None = None  # the model of its config-file section, [<name>], validated at start
    section_env: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # a variable -> the key it sets there
    opens: str | None = None  # function(Host) -> async context manager of its client, kept for the server's life
    resources: tuple[Resource, ...] = ()
    # It runs agents' commands on machines of this server's operator (this one, a cluster's nodes): a server without
    # authentication offers its code-running tools only when told to (--unauthenticated-local-exec).
    runs_commands: bool = False
    # Its records name their owner (providers.services.Caller): each signed-in user sees and acts on their own (an
    # admin on all), so signed-in users use it without runtimes:admin, unlike a remote account (oauth.shared_providers).
    owners: bool = False
    # An optional install (`pip install 'runtimes-mcp[<extra>]'`): off and out of the default surface unless
    # configured; documented in docs/<name>.md rather than the README.
    extra: str | None = None

    def supports(self, capability: Capability[Any, Any]) -> bool:
        return capability in self.capabilities

    @property
    def credentials(self) -> tuple[Setting, ...]:
        return tuple(s for s in self.settings if s.secret)

    @property
    def credential_env(self) -> str:
        """The variable to name when the provider is not configured: those that switch its capabilities on."""
        switches = dict.fromkeys(s.needs.env for s in self.capabilities.values() if s.needs is not None)
        return " or ".join(switches) or " or ".join(s.env for s in self.credentials)

    def load_client(self) -> type:
        try:
            cls: type = load(self.client)
        except ModuleNotFoundError as exc:
            if self.extra is None or exc.name == self.client.partition(":")[0]:
                raise
            raise Unsupported(
                self.name,
                f"{self.title} needs the `{self.extra}` extra, which is not installed ({exc.name} is missing)",
                hint=f"pip install 'runtimes-mcp[{self.extra}]' and restart the server.",
            ) from exc
        return cls


def load(reference: str) -> Any:
    """What a "module:attr" reference names, imported now."""
    module_name, _, attr = reference.partition(":")
    return getattr(importlib.import_module(module_name), attr)
