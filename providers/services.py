"""What a provider offers the server besides its tools' capabilities: a client opened for the server's whole life
(Provider.opens, given a Host), MCP resources (Provider.resources), completions, facts for its docs topic, and
where MCP tasks are kept; and who is calling (`caller()`). server/ and tools/ reach a provider's package only
through the registry and these interfaces."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from anyio.abc import TaskGroup

# --- who is calling ---------------------------------------------------------------------------------
READ = "runtimes:read"  # list, get, docs, read files
RUN = "runtimes:run"  # run commands and routines, send input, write files, store events (and all of READ)
ADMIN = "runtimes:admin"  # see and act on everyone's runs, workspaces, events and tasks (and all of RUN)
SCOPES = (READ, RUN, ADMIN)
LOCAL_OWNER = "local"  # stdio, the static HTTP token, and records made before owners were recorded (by default)


@dataclass(frozen=True)
class Caller:
    """Who a call is made for: `owner` names whose runs, workspaces, events and tasks it sees and makes (`local`,
    or a signed-in user as `owner_of(iss, sub)`); `scopes` are what its token grants, implied ones included (RUN
    brings READ, ADMIN brings both)."""

    owner: str
    scopes: frozenset[str]

    @property
    def admin(self) -> bool:
        """Sees and acts on every owner's things, not only its own."""
        return ADMIN in self.scopes

    def sees(self, principal: str) -> bool:
        """May this caller see a record of `principal`?"""
        return self.admin or principal == self.owner


LOCAL = Caller(LOCAL_OWNER, frozenset(SCOPES))
_CALLER: ContextVar[Caller] = ContextVar("runtimes_mcp_caller", default=LOCAL)


def caller() -> Caller:
    """The caller of the tool call (or resource read, or task) being served; LOCAL outside any (stdio, the static
    token, the server's own work such as launchers and retention)."""
    return _CALLER.get()


@contextmanager
def acting_as(who: Caller) -> Iterator[Caller]:
    """Serve what runs inside as `who` (work started inside, such as an MCP task, keeps it)."""
    token = _CALLER.set(who)
    try:
        yield who
    finally:
        _CALLER.reset(token)


def owner_of(issuer: str, subject: str) -> str:
    """A signed-in user's owner: `ISSUER#SUBJECT`. Unambiguous: an issuer URL has no fragment (RFC 8414, OIDC
    Discovery), so the first `#` ends it; and it never equals LOCAL_OWNER, which has none."""
    if "#" in issuer:
        raise ValueError("an issuer URL has no fragment ('#')")
    return f"{issuer}#{subject}"


def with_implied(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes with the ones they imply: ADMIN brings RUN, RUN brings READ."""
    granted = set(scopes)
    if ADMIN in granted:
        granted.add(RUN)
    if RUN in granted:
        granted.add(READ)
    return frozenset(granted)


class StartError(Exception):
    """A provider cannot start (an unusable data directory, a required sandbox that cannot run): the server does
    not start either, and says this one line (it names what to set)."""


@dataclass(frozen=True)
class Host:
    """What the server hands a provider it opens for its whole life."""

    section: Any  # its validated config-file section (Provider.section), or None
    arguments: dict[str, Any]  # its client's keyword arguments: its settings, timeout_s and retries
    data_dir: Path
    state_url: str | None  # PostgreSQL to keep the state in, shared with other replicas (None: the data directory)
    background: TaskGroup  # work that lives as long as the server
    changed: Callable[[str], Awaitable[None]]  # a resource's content changed: its subscribers are told
    hidden: tuple[str, ...] = ()  # more paths no command may see (the server's config file)
    services: bool = True  # False for one-shot commands: no long-lived services (launchers)
    earlier_owner: str = LOCAL_OWNER  # who owns the records made before owners were recorded
    listening: tuple[int, ...] = ()  # the TCP ports the server serves on (none of its runs may take one)


@runtime_checkable
class Completes(Protocol):
    async def complete(self, argument: str, prefix: str) -> list[str]:
        """Values an agent may mean for an argument of one of the provider's resources."""
        ...


@runtime_checkable
class DescribesItself(Protocol):
    def this_server(self) -> dict[str, str]:
        """Facts about it on this server, for its docs topic (e.g. whether the sandbox is on)."""
        ...


class RunTask(Protocol):
    """An MCP task that follows a run: `follow` names the capability that reads `ref`."""

    id: str
    follow: str
    ref: str
    session_id: str
    created_at: float
    cancelled_at: float | None
    ended_at: float | None  # its run's


class CallTaskRecord(NamedTuple):
    view: Any  # as last recorded by the process running it
    stopped: str | None  # who ran it, when that process has stopped (else None)
    cancel_asked_at: float | None  # when a client asked, while it was going, to cancel it


class CallTasks(Protocol):
    """MCP tasks that are tool calls, each running in one server process, recorded where every server on the same
    state reads them. A task's `view` is what tasks/get shows, as JSON."""

    async def record(self, task_id: str, status: str, created_at: float, expires_at: float, view: Any) -> None:
        """Committed before it returns: from then on any server answers for the task (run by this process)."""
        ...

    async def update(self, task_id: str, status: str, view: Any) -> None: ...

    async def read(self, task_id: str) -> CallTaskRecord | None:
        """The task as last recorded (None once it has expired)."""
        ...

    async def ask_cancel(self, task_id: str) -> None: ...

    async def beat(self) -> list[str]:
        """This process still runs its tasks; returns those a client asked (on any server) to cancel."""
        ...


@runtime_checkable
class TaskStorage(Protocol):
    """A provider that keeps MCP tasks where every server on its state answers for them, restarts included."""

    call_tasks: CallTasks

    @property
    def task_ttl_ms(self) -> int:
        """How long a task that follows a run is kept."""
        ...

    async def remember_task(self, task_id: str, follow: str, ref: str, session_id: str) -> RunTask: ...

    async def recall_task(self, task_id: str) -> RunTask | None: ...

    async def cancel_task(self, task: RunTask) -> None:
        """Mark the task cancelled and stop its run (harmless when it has already ended)."""
        ...
