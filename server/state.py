"""What lives as long as the server: the providers it opens (the local runtime), remote clients, resource
watchers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from providers.capabilities import Capability
from providers.errors import Busy, NotAllowed, NotConfigured, Unavailable
from providers.provider import Provider, load
from providers.registry import PROVIDERS
from providers.services import LOCAL_OWNER, Host, TaskStorage, caller
from server.config import Settings
from server.watchers import ResourceWatchers


def available_capabilities(settings: Settings) -> dict[str, set[Capability[Any, Any]]]:
    return {
        name: {cap for cap, serves in provider.capabilities.items() if settings.is_set(serves.needs)}
        for name, provider in PROVIDERS.items()
    }


def configured_providers(settings: Settings) -> set[str]:
    return {name for name, capabilities in available_capabilities(settings).items() if capabilities}


class AppState:
    """Open once per server process; tools reach providers through `provider(name)`."""

    def __init__(
        self, settings: Settings, opened: dict[str, Any], task_group: TaskGroup, watchers: ResourceWatchers
    ) -> None:
        self.settings = settings
        self.watchers = watchers
        self.opened = dict(opened)  # the providers' clients kept open for the server's life (Provider.opens)
        self._clients: dict[str, Any] = {}  # remote clients, made on first use
        self.background = task_group  # work that outlives the request that started it (tool calls as MCP tasks)
        # fast_acquire: a free slot is taken without yielding to the loop (a release still serves waiters first)
        self._calls = anyio.Semaphore(settings.max_concurrent_calls, fast_acquire=True)
        self._provider_gates: dict[str, anyio.Semaphore] = {}
        self._in_flight: set[anyio.CancelScope] = set()
        self.stopping = False

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings, *, services: bool = True, listening: tuple[int, ...] = ()
    ) -> AsyncIterator[AppState]:
        """Open every configured provider that is kept open for the server's life; `services=False` for one-shot
        commands, which must not start long-lived services (the local launchers). `listening`: the ports this
        server serves on."""
        watchers = ResourceWatchers()
        state_url = settings.state_url.get_secret_value() if settings.state_url else None
        hidden = (str(settings.config_file),) if settings.config_file else ()
        async with anyio.create_task_group() as kept:  # what the providers run for the server's life
            async with AsyncExitStack() as stack:
                opened = {}
                configured = configured_providers(settings)
                for provider in PROVIDERS.values():
                    if provider.opens and provider.name in configured:
                        host = Host(
                            section=settings.section(provider),
                            arguments=_arguments(settings, provider),
                            data_dir=settings.data_dir,
                            state_url=state_url,
                            background=kept,
                            changed=watchers.changed,
                            hidden=hidden,
                            services=services,
                            earlier_owner=settings.oauth.earlier_owner,
                            listening=listening,
                        )
                        opened[provider.name] = await stack.enter_async_context(load(provider.opens)(host))
                async with anyio.create_task_group() as tg:  # tool calls made as MCP tasks: they end first
                    state = cls(settings, opened, tg, watchers)
                    try:
                        yield state
                    finally:
                        tg.cancel_scope.cancel()
                        with anyio.CancelScope(shield=True):
                            for client in state._clients.values():
                                await client.aclose()
            kept.cancel_scope.cancel()

    @property
    def task_storage(self) -> TaskStorage:
        """Where MCP tasks are kept (the local provider's store): every server on the same state answers for them."""
        return next(client for client in self.opened.values() if isinstance(client, TaskStorage))

    def stop_calls(self) -> None:
        """The server is shutting down: every tool call still running ends now with a clear error (instead of
        being cut off by the HTTP server when its grace period is over)."""
        self.stopping = True
        for scope in list(self._in_flight):
            scope.cancel()

    @asynccontextmanager
    async def call_slot(self, provider: str) -> AsyncIterator[None]:
        """Admission for one tool call, stoppable by stop_calls: a server-wide cap, and for remote providers a
        per-provider cap so that one slow provider cannot starve the others. A call waits for a slot for a bounded
        time (a burst of short calls is served, not refused), then gets a clear busy error."""
        settings = self.settings
        with anyio.CancelScope() as scope:
            self._in_flight.add(scope)
            try:
                async with self._slot(
                    self._calls,
                    settings.queue_timeout_s,
                    "server",
                    f"{settings.max_concurrent_calls} tool calls are in flight (RUNTIMES_MCP_MAX_CONCURRENT_CALLS)",
                ):
                    # Providers that run commands on our own machines (the local runtime, Ray's node agents) are
                    # not remote APIs to shield the others from, and their calls wait for runs by design (wait_s).
                    if provider in PROVIDERS and PROVIDERS[provider].runs_commands:
                        yield
                    else:
                        gate = self._provider_gates.setdefault(
                            provider, anyio.Semaphore(settings.provider_concurrency, fast_acquire=True)
                        )
                        async with self._slot(
                            gate,
                            settings.http_timeout_s,
                            provider,
                            f"{settings.provider_concurrency} calls to {provider} are in flight "
                            "(RUNTIMES_MCP_PROVIDER_CONCURRENCY)",
                        ):
                            yield
            finally:
                self._in_flight.discard(scope)
        if scope.cancelled_caught and self.stopping:
            raise Unavailable(
                provider,
                "the server is shutting down, so this call ended before its answer (a local run it started carries "
                "on or stops as [local] on_exit says)",
                hint="Retry in a moment, on another replica if there is one; follow a run with getSession.",
            )

    @staticmethod
    @asynccontextmanager
    async def _slot(gate: anyio.Semaphore, wait_s: float, who: str, what: str) -> AsyncIterator[None]:
        try:
            gate.acquire_nowait()  # the usual case, without a timer
        except anyio.WouldBlock:
            with anyio.move_on_after(wait_s) as waited:
                await gate.acquire()
            if waited.cancelled_caught:
                raise Busy(who, f"{what}; waited {wait_s:g} s for a slot") from None
        try:
            yield
        finally:
            gate.release()

    async def provider(self, name: str) -> Any:
        """The client of a configured provider, for the caller (providers.services.caller)."""
        self._check_shared(name)
        client = self.opened.get(name) or self._clients.get(name)
        if client is None:
            provider = PROVIDERS[name]
            if name not in configured_providers(self.settings):
                raise NotConfigured(
                    name,
                    f"{provider.title} has no credentials",
                    hint=f"Set {provider.credential_env} and restart the server.",
                )
            client = provider.load_client()(**_arguments(self.settings, provider))
            self._clients[name] = client
        return client

    def _check_shared(self, name: str) -> None:
        """A remote provider's account is the deployment's, and this server does not keep who made what in it: a
        signed-in user without runtimes:admin uses it only when the operator shares it (oauth.shared_providers).
        The local runtime (and ray) keeps each user's own; stdio and the static token are the operator."""
        who = caller()
        if (
            PROVIDERS[name].owners
            or who.admin
            or who.owner == LOCAL_OWNER
            or name in self.settings.oauth.shared_providers
        ):
            return
        raise NotAllowed(
            name,
            f"{PROVIDERS[name].title} works with this deployment's account, which this server does not divide "
            "between users, so a signed-in user uses it only with runtimes:admin",
            hint=f"Ask the operator for runtimes:admin, or to add {name} to RUNTIMES_MCP_OAUTH_SHARED_PROVIDERS "
            "(config file: oauth.shared_providers) if every user may see and act on everything in that account",
        )


def _arguments(settings: Settings, provider: Provider) -> dict[str, Any]:
    """A provider client's keyword arguments: its settings, and how long and how often to try a remote call."""
    return {**settings.provider_arguments(provider), "timeout_s": settings.http_timeout_s, "retries": settings.retries}
