"""The ray provider's face: sessions on the cluster's nodes, each run by its node's agent with the local runtime, and
recorded in the shared state so that every server on it lists, follows and stops every session."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from typing import Any

import anyio

from providers import capabilities as c
from providers import services
from providers.errors import InvalidInput, NotFound, ProviderError, Unavailable
from providers.models import (
    InputSent,
    SessionList,
    page_arguments,
    wait_seconds,
)
from providers.ray.cluster import AgentRef, Cluster, Gone, Unreachable
from providers.ray.config import RayConfig
from providers.ray.placement import bundle_of, labels_of
from providers.ray.records import RaySession, Records
from providers.ray.results import (
    RayExecResult,
    RayStopResult,
    agent_of,
    cluster_away,
    exec_result,
    from_record,
    input_sent,
    node_name,
    stop_result,
    summary,
)
from providers.ray.workspaces import RayWorkspaces
from providers.services import caller

PROVIDER = "ray"
logger = logging.getLogger(__name__)
# A waited run is recorded once this has passed (or at its end, if sooner): other servers see it from then on.
FIRST_WAIT_S = 1.0


class RayRuntime(
    RayWorkspaces,
    c.ListSessions,
    c.ExecRun,
    c.GetSession,
    c.StopSession,
    c.SendInput,
    services.DescribesItself,
):
    name = PROVIDER

    def __init__(
        self,
        *,
        address: str,
        token: str | None = None,
        namespace: str = "runtimes-mcp",
        cluster: Cluster,
        records: Records,
        config: RayConfig,
    ) -> None:
        super().__init__(cluster, records, config)
        self.address = address
        self.namespace = namespace
        self._token_set = bool(token)

    def this_server(self) -> dict[str, str]:
        return {
            "Ray namespace": self.namespace,
            "Token authentication": "on" if self._token_set else "off (a loopback cluster)",
        }

    async def _session(self, session_id: str) -> RaySession:
        session = await self._records.get(session_id, caller())
        if session is None:
            raise NotFound(PROVIDER, f"no ray session {session_id!r}", hint="Call listSessions provider=ray.")
        return session

    async def _ended(self, session: RaySession, state: dict[str, Any]) -> None:
        """Record how a running session ended (once, whichever server sees it first) and free its resources."""
        session.state = str(state["state"])
        session.exit_code = state.get("exit_code")
        session.ended_at = state.get("ended_at") or time.time()
        session.end_reason = state.get("end_reason")
        session.message = state.get("message")
        await self._records.end(session)
        if session.reservation is not None:
            # The cluster may be away: its agent releases it too, and so does the next server to look.
            with contextlib.suppress(Unreachable):
                await self.cluster.release(session.reservation)

    async def _lost(self, session: RaySession, gone: Gone | None = None) -> RayExecResult:
        """What the shared record says of a session whose agent is no more (by default: its node has left)."""
        gone = gone or Gone(f"its node {node_name(session.node_id, session.node_ip)} has left the cluster", True)
        if session.state == "running":
            reason = "node_lost" if gone.node_left else "lost"
            await self._ended(session, {"state": "lost", "end_reason": reason, "message": gone.why})
        output = ", and its output with it" if gone.node_left else "; its output stays in the node's data directory"
        return from_record(
            session, f"{session.state}; {gone.why}{output}. State and exit code are from the shared record."
        )

    # --- headline capabilities ----------------------------------------------------------------------------------
    async def exec_run(
        self,
        command: str,
        cwd: str | None = None,
        workspace: str | None = None,
        env: dict[str, Any] | None = None,
        stdin: str | None = None,
        interactive: bool | None = None,
        timeout_s: float | None = None,
        wait: bool | None = None,
        wait_s: float | None = None,
        num_cpus: float | None = None,
        memory_mb: int | None = None,
        resources: dict[str, Any] | None = None,
        labels: dict[str, Any] | None = None,
    ) -> RayExecResult:
        """Run a command on a node; wait for its end at most `wait_s` (30), as the local runtime does. Placed on
        its workspace's node, else by the resources it asks for, else on the least busy node."""
        waiting = wait_seconds(PROVIDER, wait_s)  # checked even when the call does not wait
        if cwd is not None and workspace is not None:
            raise InvalidInput(PROVIDER, "cwd and workspace both name where to run", hint="Pass one of them.")
        owner = caller().owner
        bundle, wanted = bundle_of(num_cpus, memory_mb, resources), labels_of(labels) | self._node_labels
        waiting = 0.0 if wait is False else waiting
        first_wait = min(waiting, FIRST_WAIT_S)
        arguments = {
            "command": command,
            "cwd": cwd,
            "workspace": workspace,
            "env": env,
            "stdin": stdin,
            "interactive": interactive,
            "timeout_s": timeout_s,
            "wait": first_wait > 0,
            "wait_s": first_wait if first_wait > 0 else None,
        }
        started_at = time.time()
        try:
            place = await self._placer.place(bundle, wanted, workspace, owner)
        except Unreachable as exc:
            raise cluster_away(exc) from None
        node = place.node
        agent = self.cluster.ours(node.id)
        try:
            try:
                answer = await self._call(agent, node.ip, "exec_run", arguments, place.reservation)
            except BaseException as exc:
                if place.reservation is not None:  # (the agent releases it too, and Ray when the cluster restarts)
                    with anyio.CancelScope(shield=True), contextlib.suppress(Unreachable):
                        await self.cluster.release(place.reservation)
                if isinstance(exc, Gone):
                    where = node_name(node.id, node.ip)
                    raise Unavailable(
                        PROVIDER, f"node {where} left the cluster as the run started", hint="Retry."
                    ) from None
                raise
            ended = answer["state"] != "running"  # recorded as it ended, in one write
            session = RaySession(
                id=str(answer["session_id"]),
                node_id=node.id,
                node_ip=node.ip,
                namespace=agent.namespace,
                agent=agent.name,
                state=str(answer["state"]),
                command=command,
                workspace=workspace,
                reservation=place.reservation,
                owner=owner,
                started_at=started_at,
                ended_at=time.time() if ended else None,
                exit_code=answer.get("exit_code"),
            )
            await self._records.add(session)
        finally:
            self._placer.started(node.id)
        if ended and place.reservation is not None:  # its agent releases it too; freed before the answer
            with contextlib.suppress(Unreachable):
                await self.cluster.release(place.reservation)
        if place.new_workspace and workspace is not None:
            await self._records.place_workspace(workspace, owner, node.id, node.ip, started_at)
        if not ended and waiting > first_wait:
            return await self.get_session(session.id, wait_s=waiting - (time.time() - started_at))
        return exec_result(answer, session)

    async def get_session(
        self,
        session_id: str,
        wait_s: float | None = None,
        stdout_offset: int | None = None,
        stderr_offset: int | None = None,
    ) -> RayExecResult:
        """A session's state and output, from its node; with `wait_s`, once it has ended or `wait_s` has passed."""
        session = await self._session(session_id)
        if session.node_id not in await self._nodes(fresh=session.state == "running"):
            return await self._lost(session)
        wait = max(0.0, wait_s) if wait_s is not None else None
        try:
            answer = await self._call(
                agent_of(session), session.node_ip, "get_session", session_id, wait, stdout_offset, stderr_offset
            )
        except Gone as gone:
            return await self._lost(session, gone)
        except NotFound:
            if session.state != "running":
                raise
            await self._ended(session, {"state": "lost", "end_reason": "lost", "message": "its node has no record"})
            return from_record(session, "lost: its node's agent has no record of it (its data directory was lost)")
        if session.state == "running" and answer["state"] != "running":
            await self._ended(session, {"state": answer["state"], "exit_code": answer.get("exit_code")})
        return exec_result(answer, session)

    async def stop_session(self, session_id: str) -> RayStopResult:
        session = await self._session(session_id)
        try:
            answer = await self._call(agent_of(session), session.node_ip, "stop_session", session_id)
        except Gone as gone:
            result = await self._lost(session, gone)
            return RayStopResult(
                provider=PROVIDER,
                session_id=session_id,
                stopped=False,
                state=result.state,
                exit_code=result.exit_code,
                message=result.message or "",
                node_id=session.node_id,
                node_ip=session.node_ip,
            )
        if session.state == "running" and answer["state"] != "running":
            await self._ended(session, {"state": answer["state"], "exit_code": answer.get("exit_code")})
        return stop_result(answer, session)

    async def list_sessions(
        self, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> SessionList:
        states, limit, before = page_arguments(PROVIDER, status, limit, cursor)
        rows = await self._records.page(states, limit + 1, before, caller())
        more = len(rows) > limit
        rows = rows[:limit]
        await self._refresh([r for r in rows if r.state == "running"])
        shown = [r for r in rows if not states or r.state in states]
        return SessionList(
            provider=PROVIDER,
            sessions=[summary(r) for r in shown],
            count=len(shown),
            next_cursor=str(rows[-1].seq) if more else None,
        )

    async def _refresh(self, running: list[RaySession]) -> None:
        """Bring running records up to date: one call to each of their nodes' agents; gone nodes' sessions are lost."""
        if not running:
            return
        try:
            nodes = await self._nodes(fresh=True)
        except Unavailable as exc:  # the records as last seen: a listing does not need the cluster
            logger.warning("runtimes-mcp: listing ray sessions as last recorded: %s", exc.message)
            return
        by_agent: dict[AgentRef, list[RaySession]] = defaultdict(list)
        for session in running:
            by_agent[agent_of(session)].append(session)

        async def refresh(agent: AgentRef, sessions: list[RaySession]) -> None:
            if agent.node_id not in nodes:
                for session in sessions:
                    await self._lost(session)
                return
            try:
                states = await self._call(agent, sessions[0].node_ip, "states", [s.id for s in sessions])
            except Gone as gone:
                for session in sessions:
                    await self._lost(session, gone)
                return
            except ProviderError:
                return  # it could not say now; the next look will
            for session in sessions:
                state = states.get(session.id)
                if state is None:
                    state = {"state": "lost", "end_reason": "lost", "message": "its node's agent has no record of it"}
                if state["state"] != "running":
                    await self._ended(session, state)

        async with anyio.create_task_group() as tg:
            for agent, sessions in by_agent.items():
                tg.start_soon(refresh, agent, sessions)

    # --- input --------------------------------------------------------------------------------------------------
    async def send_input(self, session_id: str, text: str | None = None, eof: bool | None = None) -> InputSent:
        session = await self._session(session_id)
        try:
            return input_sent(await self._call(agent_of(session), session.node_ip, "send_input", session_id, text, eof))
        except Gone as gone:
            await self._lost(session, gone)
            raise Unavailable(
                PROVIDER,
                f"session {session_id} is lost: {gone.why}",
                hint="Start it again with execRun provider=ray.",
            ) from None
