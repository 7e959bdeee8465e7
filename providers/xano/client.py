"""Xano Run API: run XanoScript, list/inspect/stop sessions, and the session extras of the toolset."""

from __future__ import annotations

from typing import Any

from providers import capabilities as c
from providers.errors import InvalidInput, ProviderError
from providers.http import HttpProvider, compact, text_or_none
from providers.models import ExecResult, ProviderRecord, RecordList, SessionList, SessionSummary, StopResult
from providers.xano import PROVIDER
from providers.xano import endpoints as e


class XanoRunClient(
    HttpProvider,
    c.ListSessions,
    c.ExecRun,
    c.StopSession,
    c.GetSession,
    c.SetSessionAccess,
    c.UpdateSessionRun,
    c.ListRuns,
    c.GetSessionSink,
    c.CheckXanoDoc,
):
    name = PROVIDER.name

    def __init__(self, *, base_url: str, token: str, **options: Any) -> None:
        super().__init__(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, **options)

    async def list_sessions(self, project_id: str, run_id: str | None = None, page: int | None = None) -> SessionList:
        endpoint, path = e.XANO_PROJECT_SESSIONS, {"project_id": project_id}
        if run_id is not None:
            endpoint, path = e.XANO_RUN_SESSIONS, path | {"run_id": run_id}
        body = await self.call_json(endpoint, path=path, query={"page": page})
        items = self.entries(body, "items", "the session page")
        sessions = [_summary(self.identity(item, "a session"), item) for item in items]
        return SessionList(provider=self.name, sessions=sessions, count=len(sessions), next_cursor=_next_page(body))

    async def exec_run(
        self,
        project_id: str | None = None,
        doc: str | None = None,
        args: dict[str, Any] | None = None,
        env: dict[str, Any] | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
        template: str | None = None,
    ) -> ExecResult:
        body = compact(doc=doc, args=args, env=env)
        if template is not None and (doc is None or run_id is not None or session_id is not None):
            raise _exec_usage("template goes with a new doc only (not with run_id or session_id)")
        if session_id is not None:
            if doc is None or run_id is not None:
                raise _exec_usage("session_id needs doc (and no run_id)")
            answer = await self.call_json(e.XANO_EXEC_SESSION, path={"session_id": session_id}, body=body)
        elif run_id is not None:
            if project_id is None or doc is not None:
                raise _exec_usage("run_id needs project_id (and no doc)")
            answer = await self.call_json(e.XANO_EXEC_RUN, path={"project_id": project_id, "run_id": run_id}, body=body)
        elif doc is not None:
            if project_id is None:
                raise _exec_usage("doc needs project_id")
            body = compact(**body, template=template)
            answer = await self.call_json(e.XANO_EXEC_DOC, path={"project_id": project_id}, body=body)
        else:
            raise _exec_usage("got none of doc, run_id, session_id")
        return self._exec_result(answer)

    async def stop_session(self, project_id: str, run_id: str, session_id: str) -> StopResult:
        path = {"project_id": project_id, "run_id": run_id, "session_id": session_id}
        try:
            answer = await self.call_json(e.XANO_STOP, path=path)
        except ProviderError as error:
            if error.status in (400, 409, 422):
                error.hint = (
                    "Sessions in error or complete state cannot be stopped; check the state with "
                    "getSession. Otherwise fix the named id."
                )
            raise
        state = text_or_none(answer.get("state")) if isinstance(answer, dict) else None
        return StopResult(
            provider=self.name,
            session_id=session_id,
            stopped=True,
            state=state or "stopped",
            message="stopped; Xano keeps a backup of the session",
            raw=answer if isinstance(answer, dict) else None,
        )

    async def get_session(self, session_id: str) -> ExecResult:
        return self._exec_result(await self.call_json(e.XANO_GET_SESSION, path={"session_id": session_id}))

    def _exec_result(self, answer: Any) -> ExecResult:
        session_id = self.identity(answer, "the session", "session_id", "id")
        data: dict[str, Any] = answer
        return ExecResult(
            provider=self.name,
            session_id=session_id,
            state=str(data.get("state", "unknown")),
            response=data.get("response"),
            message=text_or_none(data.get("error_msg") or None),
            raw=data,
        )

    async def set_session_access(self, session_id: str, access: str) -> ProviderRecord:
        answer = await self.call_json(e.XANO_SET_ACCESS, path={"session_id": session_id}, body={"access": access})
        return self.record(answer)

    async def update_session_run(self, session_id: str, name: str) -> ProviderRecord:
        if not name.strip():
            raise InvalidInput(self.name, "name is empty", hint="Pass the run's new name (at least one character).")
        return self.record(await self.call_json(e.XANO_RENAME, path={"session_id": session_id}, body={"name": name}))

    async def list_runs(self, project_id: str, page: int | None = None) -> RecordList:
        body = await self.call_json(e.XANO_RUNS, path={"project_id": project_id}, query={"page": page})
        records = self.entries(body, "items", "the run history")
        return RecordList(provider=self.name, items=records, count=len(records), next_cursor=_next_page(body))

    async def get_session_sink(self, session_id: str) -> ProviderRecord:
        return self.record(await self.call_json(e.XANO_SINK, path={"session_id": session_id}))

    async def check_xano_doc(self, project_id: str, doc: str) -> ProviderRecord:
        return self.record(await self.call_json(e.XANO_DOC_INFO, path={"project_id": project_id}, body={"doc": doc}))


def _exec_usage(problem: str) -> InvalidInput:
    return InvalidInput(
        "xano",
        f"execRun takes one of: doc with project_id, run_id with project_id, or session_id with doc; {problem}",
    )


def _next_page(body: Any) -> str | None:
    next_page = body.get("nextPage") if isinstance(body, dict) else None
    return str(next_page) if next_page else None


def _summary(session_id: str, item: dict[str, Any]) -> SessionSummary:
    return SessionSummary(
        id=session_id,
        status=str(item.get("state", "unknown")),
        started_at=text_or_none(item.get("created_at")),
        command=text_or_none(item.get("label") or None),
        raw=item,
    )
