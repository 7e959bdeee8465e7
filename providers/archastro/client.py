"""ArchAstro: invoke agent routines, follow their runs, list and cancel agent sessions."""

from __future__ import annotations

from typing import Any

from providers import capabilities as c
from providers.archastro import PROVIDER
from providers.archastro import endpoints as e
from providers.errors import Conflict, InvalidInput, ProviderError
from providers.http import HttpProvider, compact, text_or_none
from providers.models import ExecResult, ProviderRecord, RecordList, RoutineRun, SessionList, SessionSummary, StopResult
from providers.values import comma_list


class ArchAstroClient(
    HttpProvider,
    c.ListSessions,
    c.StopSession,
    c.InvokeRoutine,
    c.GetSession,
    c.SendSessionMessage,
    c.DeleteSession,
    c.ListRoutines,
    c.GetRoutine,
    c.ListRoutinePresets,
    c.ActivateRoutine,
    c.PauseRoutine,
    c.GetRoutineRun,
    c.ListRoutineRuns,
    c.UpdateRoutine,
    c.DeleteRoutine,
    c.CreateAgentSession,
    c.UpdateAgentSession,
):
    name = PROVIDER.name

    def __init__(self, *, base_url: str, api_key: str, **options: Any) -> None:
        super().__init__(base_url=base_url, headers={"x-archastro-api-key": api_key}, **options)

    def error_message(self, body: Any) -> tuple[str | None, str | None]:
        message, code = super().error_message(body)
        error = body.get("error") if isinstance(body, dict) else None
        fields = error.get("fields") if isinstance(error, dict) else None
        if isinstance(fields, dict) and fields:
            detail = "; ".join(
                f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in fields.items()
            )
            message = f"{message or 'invalid request'} ({detail})"
        return message, code

    # --- routines ---------------------------------------------------------------------------------
    async def invoke_routine(
        self,
        routine: str,
        message: str,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        session_key: str | None = None,
        thread_id: str | None = None,
        user: str | None = None,
    ) -> RoutineRun:
        body = compact(
            message=message,
            idempotency_key=idempotency_key,
            metadata=metadata,
            session_key=session_key,
            thread_id=thread_id,
            user=user,
        )
        try:
            answer = await self.call_json(
                e.ARCHASTRO_INVOKE, path={"routine": routine}, body=body, retry_safe=idempotency_key is not None
            )
        except Conflict as error:
            error.hint = (
                "A completed run already holds this idempotency_key (ArchAstro does not say which): do not "
                "invoke again; find it with listRoutineRuns status=completed, then read it with getRoutineRun."
            )
            raise
        return self._run(answer, routine)

    async def get_routine_run(self, run_id: str) -> RoutineRun:
        return self._run(await self.call_json(e.ARCHASTRO_GET_RUN, path={"run_id": run_id}), None)

    async def list_routine_runs(
        self,
        routine: str,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        after_cursor: str | None = None,
    ) -> RecordList:
        if cursor and after_cursor:
            raise InvalidInput(
                self.name,
                "cursor and after_cursor page in opposite directions",
                hint="Pass cursor for older runs or after_cursor for newer ones, not both.",
            )
        query = {"status": status, "limit": _limit(limit), "before_cursor": cursor, "after_cursor": after_cursor}
        return self._records(await self.call_json(e.ARCHASTRO_LIST_RUNS, path={"routine": routine}, query=query))

    async def list_routines(self, agent: str | None = None, event_type: str | None = None) -> RecordList:
        answer = await self.call_json(e.ARCHASTRO_LIST_ROUTINES, query={"agent": agent, "event_type": event_type})
        return self._records(answer)

    async def get_routine(self, routine: str) -> ProviderRecord:
        return self.record(await self.call_json(e.ARCHASTRO_GET_ROUTINE, path={"routine": routine}))

    async def list_routine_presets(self) -> RecordList:
        return self._records(await self.call_json(e.ARCHASTRO_PRESETS))

    async def activate_routine(self, routine: str) -> ProviderRecord:
        return self.record(await self.call_json(e.ARCHASTRO_ACTIVATE, path={"routine": routine}))

    async def pause_routine(self, routine: str) -> ProviderRecord:
        return self.record(await self.call_json(e.ARCHASTRO_PAUSE, path={"routine": routine}))

    async def update_routine(
        self,
        routine: str,
        name: str | None = None,
        description: str | None = None,
        lookup_key: str | None = None,
        schedule: str | None = None,
        handler_type: str | None = None,
        script: str | None = None,
        preset_name: str | None = None,
        preset_config: dict[str, Any] | None = None,
        config: str | None = None,
        steps: list[dict[str, Any]] | None = None,
        template: str | None = None,
        event_config: dict[str, Any] | None = None,
        trigger_context: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ProviderRecord:
        changes = compact(
            name=name,
            description=description,
            lookup_key=lookup_key,
            schedule=schedule,
            handler_type=handler_type,
            script=script,
            preset_name=preset_name,
            preset_config=preset_config,
            config=config,
            steps=steps,
            template=template,
            event_config=event_config,
            trigger_context=trigger_context,
            metadata=metadata,
        )
        if not changes:
            raise InvalidInput(
                self.name,
                "updateRoutine was given nothing to change",
                hint="Pass at least one field, e.g. schedule or description.",
            )
        return self.record(await self.call_json(e.ARCHASTRO_UPDATE_ROUTINE, path={"routine": routine}, body=changes))

    async def delete_routine(self, routine: str) -> ProviderRecord:
        await self.send(e.ARCHASTRO_DELETE_ROUTINE, path={"routine": routine})
        return ProviderRecord(provider=self.name, record={"id": routine, "deleted": True})

    # --- agent sessions ---------------------------------------------------------------------------
    async def list_sessions(
        self,
        agent: str | None = None,
        status: str | None = None,
        routine_run: list[str] | None = None,
        exclude_system: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SessionList:
        runs = comma_list(routine_run) or None
        if runs and len(runs) > e.MAX_ROUTINE_RUNS:
            raise InvalidInput(
                self.name,
                f"routine_run holds {len(runs)} ids; ArchAstro filters on at most {e.MAX_ROUTINE_RUNS}",
                hint=f"Split the ids into calls of at most {e.MAX_ROUTINE_RUNS}.",
            )
        answer = await self.call_json(
            e.ARCHASTRO_LIST_SESSIONS,
            query={
                "agent": agent,
                "status": comma_list(status) or None,
                "routine_run": runs,
                "exclude_system": None if exclude_system is None else str(exclude_system).lower(),
                "limit": _limit(limit),
                "before_cursor": cursor,
            },
        )
        page = self._records(answer)
        sessions = [
            SessionSummary(
                id=self.identity(item, "an agent session"),
                status=str(item.get("status", "unknown")),
                started_at=text_or_none(item.get("created_at") or item.get("inserted_at")),
                command=text_or_none(item.get("name") or item.get("instructions") or None),
                raw=item,
            )
            for item in page.items
        ]
        return SessionList(provider=self.name, sessions=sessions, count=len(sessions), next_cursor=page.next_cursor)

    async def create_agent_session(
        self,
        agent: str,
        instructions: str,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        max_turns: int | None = None,
        max_tokens: int | None = None,
        max_runs_per_turn: int | None = None,
        start_idle: bool | None = None,
        team: str | None = None,
        thread: str | None = None,
        user: str | None = None,
    ) -> ProviderRecord:
        body = compact(
            agent=agent,
            instructions=instructions,
            name=name,
            metadata=metadata,
            max_turns=max_turns,
            max_tokens=max_tokens,
            max_runs_per_turn=max_runs_per_turn,
            start_idle=start_idle,
            team=team,
            thread=thread,
            user=user,
        )
        answer = await self.call_json(e.ARCHASTRO_CREATE_SESSION, body=body)
        self.identity(answer, "the new agent session")  # its id is what every later call needs
        return self.record(answer)

    async def update_agent_session(self, session_id: str, metadata: dict[str, Any]) -> ProviderRecord:
        path = {"session_id": session_id}
        return self.record(await self.call_json(e.ARCHASTRO_UPDATE_SESSION, path=path, body={"metadata": metadata}))

    async def stop_session(self, session_id: str) -> StopResult:
        answer = await self.call_json(e.ARCHASTRO_CANCEL_SESSION, path={"session_id": session_id})
        status = self.identity(answer, "the cancelled session", "status")  # no status, no word on what happened
        stopped = status == "cancelled"
        message = "cancelled" if stopped else f"already {status}; nothing to cancel"
        return StopResult(
            provider=self.name,
            session_id=session_id,
            stopped=stopped,
            state=status,
            message=message,
            raw=answer if isinstance(answer, dict) else None,
        )

    async def get_session(self, session_id: str) -> ExecResult:
        answer = await self.call_json(e.ARCHASTRO_GET_SESSION, path={"session_id": session_id})
        found = self.identity(answer, "the agent session")
        return ExecResult(
            provider=self.name,
            session_id=found,
            state=str(answer.get("status", "unknown")),
            response=answer.get("result"),
            raw=answer,
        )

    async def send_session_message(
        self, session_id: str, content: str, metadata: dict[str, Any] | None = None, role: str | None = None
    ) -> ProviderRecord:
        body = compact(content=content, metadata=metadata, role=role)
        return self.record(
            await self.call_json(e.ARCHASTRO_MESSAGE_SESSION, path={"session_id": session_id}, body=body)
        )

    async def delete_session(self, session_id: str) -> ProviderRecord:
        try:
            await self.send(e.ARCHASTRO_DELETE_SESSION, path={"session_id": session_id})
        except ProviderError as error:
            if error.status == 422:
                error.hint = "Only finished sessions can be deleted: cancel it with stopSession first."
            raise
        return ProviderRecord(provider=self.name, record={"id": session_id, "deleted": True})

    # --- shapes -----------------------------------------------------------------------------------
    def _records(self, answer: Any) -> RecordList:
        items = self.entries(answer, "data", "the page")
        cursor = newer = None
        if isinstance(answer, dict):
            cursor = answer.get("before_cursor") or answer.get("next_cursor")
            newer = answer.get("after_cursor")
        return RecordList(
            provider=self.name,
            items=items,
            count=len(items),
            next_cursor=text_or_none(cursor or None),
            newer_cursor=newer if isinstance(newer, str) and newer else None,
        )

    def _run(self, answer: Any, routine: str | None) -> RoutineRun:
        run_id = self.identity(answer, "the routine run")
        data: dict[str, Any] = answer
        session = data.get("agent_session") or data.get("agent_session_id") or data.get("session")
        return RoutineRun(
            provider=self.name,
            run_id=run_id,
            routine=str(data.get("routine") or data.get("agent_routine") or routine or ""),
            status=str(data.get("status", "pending")),
            session_id=session if isinstance(session, str) else None,
            created_at=text_or_none(data.get("created_at") or data.get("inserted_at")),
            raw=data,
        )


def _limit(limit: int | None) -> int | None:
    """A page size ArchAstro takes (1 to 100), or an invalid-input error before any request."""
    if limit is not None and limit > e.MAX_LIMIT:
        raise InvalidInput(
            PROVIDER.name,
            f"limit {limit} is over ArchAstro's page maximum of {e.MAX_LIMIT}",
            hint=f"Pass limit {e.MAX_LIMIT} or less and follow next_cursor for more.",
        )
    return limit
