"""Sprites: list a sprite's exec sessions, kill one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers import capabilities as c
from providers.errors import ProviderError
from providers.http import HttpProvider, text_or_none
from providers.models import SessionList, SessionSummary, StopResult
from providers.sprites import PROVIDER
from providers.sprites import endpoints as e


class SpritesClient(HttpProvider, c.ListSessions, c.StopSession):
    name = PROVIDER.name

    def __init__(self, *, base_url: str, token: str, **options: Any) -> None:
        super().__init__(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, **options)

    async def list_sessions(self, sprite: str) -> SessionList:
        body = await self.call_json(e.SPRITES_LIST_EXEC, path={"sprite": sprite})
        # The SDKs read {"sessions": [...]}; some docs show a bare array. Accept both.
        entries = self.entries(body, "sessions", "the exec session list")
        sessions = [_session(self.identity(entry, "an exec session"), entry) for entry in entries]
        return SessionList(provider=self.name, sessions=sessions, count=len(sessions))

    async def stop_session(
        self, sprite: str, session_id: str, signal: str | None = None, timeout_s: float | None = None
    ) -> StopResult:
        try:
            response = await self.send(
                e.SPRITES_KILL_EXEC,
                path={"sprite": sprite, "session_id": session_id},
                query={"signal": signal, "timeout": None if timeout_s is None else f"{timeout_s:g}s"},
            )
        except ProviderError as error:
            if error.status == 410:  # already exited: nothing to stop, and that is fine
                return StopResult(
                    provider=self.name,
                    session_id=session_id,
                    stopped=False,
                    state="completed",
                    message="the session had already exited; nothing to stop",
                )
            raise
        events = _ndjson(response.content, self.read_json)
        complete = next((ev for ev in reversed(events) if ev.get("type") == "complete"), None)
        exit_code = _exit_code(complete)
        return StopResult(
            provider=self.name,
            session_id=session_id,
            stopped=True,
            state="terminated",
            exit_code=exit_code,
            message=f"killed with {signal or 'SIGTERM'}"
            + (f"; exit code {exit_code}" if exit_code is not None else ""),
            raw={"events": events},
        )


def _session(session_id: str, entry: dict[str, Any]) -> SessionSummary:
    return SessionSummary(
        id=session_id,
        status="active" if entry.get("is_active") else "completed",
        started_at=text_or_none(entry.get("created")),
        command=text_or_none(entry.get("command") or None),
        raw=entry,
    )


def _ndjson(content: bytes, parse: Callable[[bytes], Any]) -> list[dict[str, Any]]:
    events = []
    for line in content.splitlines():
        try:
            value = parse(line)
        except ValueError:  # a blank line too
            continue
        if isinstance(value, dict):
            events.append(value)
    return events


def _exit_code(event: dict[str, Any] | None) -> int | None:
    if event is None:
        return None
    data = event.get("data")
    for source in (event, data if isinstance(data, dict) else {}):
        code = source.get("exit_code")
        if isinstance(code, int):
            return code
    return None
