"""What lives as long as the server: the local runtime, remote clients, resource watchers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from providers.capabilities import Capability
from providers.errors import Busy, NotConfigured, Unavailable
from providers.local.runtime import LocalRuntime
from providers.registry import PROVIDERS
from server.config import Settings
from server.watchers import ResourceWatchers


def available_capabilities(settings: Settings) -> dict[str, set[Capability[Any, Any]]]:
    """provider -> the capabilities its configured credentials switch on."""
    return {
        name: {cap for cap, serves in provider.capabilities.items() if settings.is_set(serves.needs)}
        for name, provider in PROVIDERS.items()
    }


class AppState:
    """Open once per server process; tools reach providers through `provider(name)`."""

    def __init__(self, settings: Settings, local: LocalRuntime, task_group: TaskGroup) -> None:
        self.settings = settings
        self.local = local
        self.watchers = ResourceWatchers()
        self._clients: dict[str, Any] = {}
        self._tg = task_group
        self._live_events: Any = None  # providers.computesdk.EventStreams, made on first use
        # fast_acquire: a free slot is taken without yielding to the loop (a release still serves waiters first)
        self._calls = anyio.Semaphore(settings.max_concurrent_calls, fast_acquire=True)
        self._provider_gates: dict[str, anyio.Semaphore] = {}
        self._in_flight: set[anyio.CancelScope] = set()
        self.stopping = False
        local.add_event_listener(lambda sandbox_id: self.watchers.changed(f"events://{sandbox_id}"))

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, *, services: bool = True) -> AsyncIterator[AppState]:
        hidden = (str(settings.config_file),) if settings.config_file else ()
        state_url = settings.state_url.get_secret_value() if settings.state_url else None
        local_runtime = LocalRuntime.open(
            settings.local, settings.data_dir, run_launchers=services, hidden=hidden, state_url=state_url
        )
        async with local_runtime as local, anyio.create_task_group() as tg:
            state = cls(settings, local, tg)
            try:
                yield state
            finally:
                if state._live_events is not None:
                    state._live_events.stop()
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    for client in state._clients.values():
                        await client.aclose()

    @property
    def background(self) -> TaskGroup:
        """Work that outlives the request that started it (tool calls made as MCP tasks)."""
        return self._tg

    async def live_events(self, sandbox_id: str) -> Any:
        """The ComputeSDK pub/sub stream of a sandbox, started on first use and kept while the server runs."""
        if self._live_events is None:
            from providers.computesdk.client import EventStreams

            async def changed(sandbox: str) -> None:
                await self.watchers.changed(f"events://computesdk/{sandbox}")

            self._live_events = EventStreams(await self.provider("computesdk"), self._tg, changed)
        return self._live_events.follow(sandbox_id)

    def stop_calls(self) -> None:
        """The server is shutting down: every tool call still running ends now with a clear error (instead of
        being cut off by the HTTP server when its grace period is over)."""
        self.stopping = True
        for scope in list(self._in_flight):
            scope.cancel()

    @asynccontextmanager
    async def call_slot(self, provider: str) -> AsyncIterator[None]:
        """Admission for one tool call (see _admitted), stoppable by stop_calls."""
        with anyio.CancelScope() as scope:
            self._in_flight.add(scope)
            try:
                async with self._admitted(provider):
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

    @asynccontextmanager
    async def _admitted(self, provider: str) -> AsyncIterator[None]:
        """A server-wide cap, and for remote providers a per-provider cap so that one slow provider cannot
        starve the others. A call waits for a slot for a bounded time (a burst of short calls is served, not
        refused), then gets a clear busy error."""
        settings = self.settings
        async with self._slot(
            self._calls,
            settings.queue_timeout_s,
            "server",
            f"{settings.max_concurrent_calls} tool calls are in flight (RUNTIMES_MCP_MAX_CONCURRENT_CALLS)",
        ):
            if provider == "local":
                yield
                return
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
        if name == "local":
            return self.local
        client = self._clients.get(name)
        if client is None:
            provider = PROVIDERS[name]
            if not any(self.settings.is_set(serves.needs) for serves in provider.capabilities.values()):
                raise NotConfigured(
                    name,
                    f"{provider.title} has no credentials",
                    hint=f"Set {provider.credential_env} and restart the server.",
                )
            options = {"timeout_s": self.settings.http_timeout_s, "retries": self.settings.retries}
            client = provider.load_client()(**self.settings.provider_arguments(provider), **options)
            self._clients[name] = client
        return client
