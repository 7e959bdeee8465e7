"""The agent on one Ray node: a detached, named actor that runs that node's sessions with the local runtime (its
supervisors, sandbox and limits, opened on a data directory of the node). Servers anywhere on the cluster reach a
session's output, input and stop through it; the output never leaves the node but in the answers.

It answers every call with `{"ok": result}` or `{"error": {"kind", "message", "hint"}}` (a ProviderError does not
survive pickling: its constructor takes more than its message). Its sessions end with it (`on_exit = "stop"`): an
agent ends with its node, and a session nobody can reach any more must not run on."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from providers.errors import ProviderError
from providers.local.config import LocalConfig
from providers.local.runtime import LocalRuntime
from providers.local.startup import open_runtime
from providers.local.supervisor import records
from providers.local.tables import SessionRow
from providers.ray import cluster
from providers.services import LOCAL, Caller, acting_as

logger = logging.getLogger(__name__)
Answer = dict[str, Any]
Who = list[Any]  # the caller, as the server sends it: [owner, [scopes]]
WORKSPACE_CALLS = ("write_file", "read_file", "list_files", "list_workspaces", "delete_workspace")


def default_data_root() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("runtimes-mcp", appauthor=False)) / "ray-nodes"


def pss_kib(pid: int) -> int:
    """The process's proportional set size: its share of the memory it maps (0 when it has gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            return next((int(line.split()[1]) for line in rollup if line.startswith("Pss:")), 0)
    except OSError:
        return 0


class NodeAgent:
    def __init__(self, node_config: dict[str, Any], data_root: str | None, namespace: str) -> None:
        self._node_config = node_config
        self._data_root = Path(data_root) if data_root else default_data_root()
        self._namespace = namespace
        self._runtime: LocalRuntime | None = None
        self._opening: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()
        self._failure: ProviderError | None = None
        self._reservations: dict[str, str] = {}  # session id -> its placement group's name
        self._releasing: set[asyncio.Task[None]] = set()

    # --- opening: the local runtime lives as long as the actor, in its event loop ---------------------------
    async def _hold(self) -> None:
        try:
            config = LocalConfig.model_validate(self._node_config | {"on_exit": "stop"})
            data_dir = self._data_root / self._namespace / cluster.this_node_id()
            # Hidden from every run: the other nodes' directories, where several nodes share a machine.
            hidden = (str(self._data_root),)
            async with open_runtime(config, data_dir, run_launchers=False, hidden=hidden) as runtime:
                runtime.sessions.ended_listeners.append(self._ended)
                self._runtime = runtime
                self._opened.set()
                await asyncio.get_running_loop().create_future()  # held until the actor ends and cancels it
        except ProviderError as exc:
            self._failure = exc
        except Exception as exc:  # a bad [ray.node] on this node, an unusable directory: said to every caller
            logger.exception("runtimes-mcp agent: the local runtime did not open")
            self._failure = ProviderError("ray", f"the node's local runtime did not open: {exc}")
        finally:
            self._runtime = None
            self._opened.set()

    async def _ready(self) -> LocalRuntime:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._hold())
        await self._opened.wait()
        if self._runtime is None:
            raise self._failure or ProviderError("ray", "the node's local runtime has closed")
        return self._runtime

    async def _answer(self, call: Callable[[LocalRuntime], Awaitable[Any]], who: Who | None = None) -> Answer:
        """The call's answer, made as `who` (the server's caller: the node's runtime records and checks whose each
        session and workspace is, as on the server's own machine); None: the server's own work."""
        try:
            runtime = await self._ready()
            with acting_as(LOCAL if who is None else Caller(str(who[0]), frozenset(who[1]))):
                result = await call(runtime)
        except ProviderError as exc:
            return {"error": {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint}}
        return {"ok": result.model_dump() if hasattr(result, "model_dump") else result}

    # --- what servers call ----------------------------------------------------------------------------------
    async def exec_run(self, who: Who, arguments: dict[str, Any], reservation: str | None) -> Answer:
        async def run(runtime: LocalRuntime) -> Any:
            try:
                result = await runtime.exec_run(**arguments)
            except BaseException:
                self._release(reservation)
                raise
            if reservation is not None:
                if result.state == "running":
                    self._reservations[result.session_id] = reservation
                else:
                    self._release(reservation)
            return result

        return await self._answer(run, who)

    async def get_session(
        self, who: Who, session_id: str, wait_s: float | None, stdout_offset: int | None, stderr_offset: int | None
    ) -> Answer:
        return await self._answer(
            lambda runtime: runtime.get_session(
                session_id, wait_s=wait_s, stdout_offset=stdout_offset, stderr_offset=stderr_offset
            ),
            who,
        )

    async def stop_session(self, who: Who, session_id: str) -> Answer:
        return await self._answer(lambda runtime: runtime.stop_session(session_id), who)

    async def send_input(self, who: Who, session_id: str, text: str | None, eof: bool | None) -> Answer:
        return await self._answer(lambda runtime: runtime.send_input(session_id, text=text, eof=eof), who)

    async def workspace(self, who: Who, method: str, arguments: list[Any]) -> Answer:
        """A workspace call of the node's runtime (its files in and out, its list, a delete)."""
        if method not in WORKSPACE_CALLS:
            return {"error": {"kind": "InvalidInput", "message": f"no workspace call {method!r}", "hint": None}}
        return await self._answer(lambda runtime: getattr(runtime, method)(*arguments), who)

    async def states(self, who: Who, session_ids: list[str]) -> Answer:
        """How each of these sessions stands (those this node does not know are left out)."""

        async def look(runtime: LocalRuntime) -> dict[str, dict[str, Any]]:
            found = {}
            for session_id in session_ids:
                try:
                    row = await runtime.sessions.reconcile(await runtime.sessions.get_row(session_id))
                except ProviderError:
                    continue
                found[session_id] = {
                    "state": row.state,
                    "exit_code": row.exit_code,
                    "ended_at": row.ended_at,
                    "end_reason": row.end_reason,
                    "message": row.message,
                }
            return found

        return await self._answer(look, who)

    async def memory(self) -> Answer:
        """This agent's PSS and that of what it runs (its zygote, the supervisors, their sandboxes and commands)."""

        async def measure(runtime: LocalRuntime) -> dict[str, Any]:
            descendants = records.descendants(os.getpid())
            return {
                "agent_pss_kib": pss_kib(os.getpid()),
                "descendants_pss_kib": sum(pss_kib(pid) for pid in descendants),
                "descendants": len(descendants),
                "running": len(runtime.sessions.live),
            }

        return await self._answer(measure)

    # --- reservations end with their session ----------------------------------------------------------------
    def _ended(self, row: SessionRow) -> None:
        self._release(self._reservations.pop(row.id, None))

    def _release(self, reservation: str | None) -> None:
        if reservation is None:
            return
        task = asyncio.ensure_future(asyncio.to_thread(cluster.release_reservation, reservation))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)
