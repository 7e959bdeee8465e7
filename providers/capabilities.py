"""What a provider can do: one typed interface per capability.

A provider client subclasses the interfaces it implements, so mypy checks each method's name and result type
(a missing method makes the class abstract; a wrong result type is an incompatible override). Which keyword
arguments a provider takes is the method's own signature; tests/test_architecture.py checks every signature
against the tool specs that call it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from providers import models as m

Client = TypeVar("Client")
Result = TypeVar("Result", bound=BaseModel)
Method = Callable[..., Awaitable[Result]]


@dataclass(frozen=True, eq=False)
class Capability(Generic[Client, Result]):
    """A capability: the interface a provider implements (its one method names the capability), the result it
    returns, and how to reach the method on a client of that interface (a typed accessor, checked by mypy)."""

    interface: type[Client]
    result: type[Result]
    method: Callable[[Client], Method[Result]]

    @property
    def name(self) -> str:
        return next(iter(self.interface.__annotations__))

    def bind(self, client: Any) -> Method[Result]:
        """The capability's method on `client` (the registry lists the providers that implement `interface`,
        and tests/test_architecture.py checks that their clients subclass it)."""
        return self.method(client)

    def __repr__(self) -> str:
        return f"Capability({self.name})"


# Interfaces: one method each. Callable[..., Awaitable[R]] leaves the arguments to each provider.
class ListSessions(Protocol):
    list_sessions: Method[m.SessionList]


class ExecRun(Protocol):
    exec_run: Method[m.ExecResult]


class GetSession(Protocol):
    get_session: Method[m.ExecResult]


class StopSession(Protocol):
    stop_session: Method[m.StopResult]


class InvokeRoutine(Protocol):
    invoke_routine: Method[m.RoutineRun]


class GetLaunchers(Protocol):
    get_launchers: Method[m.LauncherList]


class StoreEvent(Protocol):
    store_event: Method[m.StoredEvent]


class SetSessionAccess(Protocol):
    set_session_access: Method[m.ProviderRecord]


class UpdateSessionRun(Protocol):
    update_session_run: Method[m.ProviderRecord]


class ListRuns(Protocol):
    list_runs: Method[m.RecordList]


class CreateAgentSession(Protocol):
    create_agent_session: Method[m.ProviderRecord]


class UpdateAgentSession(Protocol):
    update_agent_session: Method[m.ProviderRecord]


class UpdateRoutine(Protocol):
    update_routine: Method[m.ProviderRecord]


class DeleteRoutine(Protocol):
    delete_routine: Method[m.ProviderRecord]


class GetSessionSink(Protocol):
    get_session_sink: Method[m.ProviderRecord]


class CheckXanoDoc(Protocol):
    check_xano_doc: Method[m.ProviderRecord]


class SendSessionMessage(Protocol):
    send_session_message: Method[m.ProviderRecord]


class DeleteSession(Protocol):
    delete_session: Method[m.ProviderRecord]


class ListRoutines(Protocol):
    list_routines: Method[m.RecordList]


class GetRoutine(Protocol):
    get_routine: Method[m.ProviderRecord]


class ListRoutinePresets(Protocol):
    list_routine_presets: Method[m.RecordList]


class ActivateRoutine(Protocol):
    activate_routine: Method[m.ProviderRecord]


class PauseRoutine(Protocol):
    pause_routine: Method[m.ProviderRecord]


class GetRoutineRun(Protocol):
    get_routine_run: Method[m.RoutineRun]


class ListRoutineRuns(Protocol):
    list_routine_runs: Method[m.RecordList]


class GetLauncher(Protocol):
    get_launcher: Method[m.Launcher]


class GetEvents(Protocol):
    get_events: Method[m.EventList]


class SendInput(Protocol):
    send_input: Method[m.InputSent]


class WriteFile(Protocol):
    write_file: Method[m.FileWritten]


class ReadFile(Protocol):
    read_file: Method[m.FileContent]


class ListFiles(Protocol):
    list_files: Method[m.FileList]


class ListWorkspaces(Protocol):
    list_workspaces: Method[m.WorkspaceList]


class DeleteWorkspace(Protocol):
    delete_workspace: Method[m.WorkspaceDeleted]


# The capabilities, by the method that serves each.
LIST_SESSIONS = Capability(ListSessions, m.SessionList, lambda c: c.list_sessions)
EXEC_RUN = Capability(ExecRun, m.ExecResult, lambda c: c.exec_run)
GET_SESSION = Capability(GetSession, m.ExecResult, lambda c: c.get_session)
STOP_SESSION = Capability(StopSession, m.StopResult, lambda c: c.stop_session)
INVOKE_ROUTINE = Capability(InvokeRoutine, m.RoutineRun, lambda c: c.invoke_routine)
GET_LAUNCHERS = Capability(GetLaunchers, m.LauncherList, lambda c: c.get_launchers)
STORE_EVENT = Capability(StoreEvent, m.StoredEvent, lambda c: c.store_event)
SET_SESSION_ACCESS = Capability(SetSessionAccess, m.ProviderRecord, lambda c: c.set_session_access)
UPDATE_SESSION_RUN = Capability(UpdateSessionRun, m.ProviderRecord, lambda c: c.update_session_run)
LIST_RUNS = Capability(ListRuns, m.RecordList, lambda c: c.list_runs)
CREATE_AGENT_SESSION = Capability(CreateAgentSession, m.ProviderRecord, lambda c: c.create_agent_session)
UPDATE_AGENT_SESSION = Capability(UpdateAgentSession, m.ProviderRecord, lambda c: c.update_agent_session)
UPDATE_ROUTINE = Capability(UpdateRoutine, m.ProviderRecord, lambda c: c.update_routine)
DELETE_ROUTINE = Capability(DeleteRoutine, m.ProviderRecord, lambda c: c.delete_routine)
GET_SESSION_SINK = Capability(GetSessionSink, m.ProviderRecord, lambda c: c.get_session_sink)
CHECK_XANO_DOC = Capability(CheckXanoDoc, m.ProviderRecord, lambda c: c.check_xano_doc)
SEND_SESSION_MESSAGE = Capability(SendSessionMessage, m.ProviderRecord, lambda c: c.send_session_message)
DELETE_SESSION = Capability(DeleteSession, m.ProviderRecord, lambda c: c.delete_session)
LIST_ROUTINES = Capability(ListRoutines, m.RecordList, lambda c: c.list_routines)
GET_ROUTINE = Capability(GetRoutine, m.ProviderRecord, lambda c: c.get_routine)
LIST_ROUTINE_PRESETS = Capability(ListRoutinePresets, m.RecordList, lambda c: c.list_routine_presets)
ACTIVATE_ROUTINE = Capability(ActivateRoutine, m.ProviderRecord, lambda c: c.activate_routine)
PAUSE_ROUTINE = Capability(PauseRoutine, m.ProviderRecord, lambda c: c.pause_routine)
GET_ROUTINE_RUN = Capability(GetRoutineRun, m.RoutineRun, lambda c: c.get_routine_run)
LIST_ROUTINE_RUNS = Capability(ListRoutineRuns, m.RecordList, lambda c: c.list_routine_runs)
GET_LAUNCHER = Capability(GetLauncher, m.Launcher, lambda c: c.get_launcher)
GET_EVENTS = Capability(GetEvents, m.EventList, lambda c: c.get_events)
SEND_INPUT = Capability(SendInput, m.InputSent, lambda c: c.send_input)
WRITE_FILE = Capability(WriteFile, m.FileWritten, lambda c: c.write_file)
READ_FILE = Capability(ReadFile, m.FileContent, lambda c: c.read_file)
LIST_FILES = Capability(ListFiles, m.FileList, lambda c: c.list_files)
LIST_WORKSPACES = Capability(ListWorkspaces, m.WorkspaceList, lambda c: c.list_workspaces)
DELETE_WORKSPACE = Capability(DeleteWorkspace, m.WorkspaceDeleted, lambda c: c.delete_workspace)
