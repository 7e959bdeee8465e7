"""Workspaces on a Ray cluster: each lives on the node of its first use (recorded in the shared state), where that
node's local runtime keeps it; files go in and out through that node's agent, as runs in it go to that node.
RayWorkspaces is the base of RayRuntime (runtime.py, the sessions): the calls to the nodes' agents are here."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from providers import capabilities as c
from providers.errors import NotFound, ProviderError, Unavailable
from providers.models import FileContent, FileList, FileWritten, WorkspaceDeleted, WorkspaceInfo, WorkspaceList
from providers.ray.cluster import AgentGone, AgentRef, Cluster, Gone, Unreachable
from providers.ray.config import RayConfig
from providers.ray.placement import Placer
from providers.ray.records import Records
from providers.ray.results import cluster_away, node_name, provider_error, workspace_node_left
from providers.services import caller

PROVIDER = "ray"


class RayWorkspaces(c.WriteFile, c.ReadFile, c.ListFiles, c.ListWorkspaces, c.DeleteWorkspace):
    def __init__(self, cluster: Cluster, records: Records, config: RayConfig) -> None:
        self.cluster = cluster
        self._records = records
        self._placer = Placer(cluster, records, config.placement_timeout_s)
        self._node_labels = dict(config.node_labels)  # every run's, beside its own
        self._limits = (config.node.max_workspaces, config.node.workspace_max_mb)

    # --- calls to a node's agent ------------------------------------------------------------------------------
    async def _call(self, agent: AgentRef, node_ip: str, method: str, *arguments: Any) -> Any:
        """The agent's answer; its error as ours. Gone when its node has left the cluster or it no longer exists."""
        try:
            who = caller()  # the node's runtime serves the call as the same caller (its records name it too)
            answer = await self.cluster.call(agent, method, [who.owner, sorted(who.scopes)], *arguments)
        except Unreachable as exc:
            where = node_name(agent.node_id, node_ip)
            if agent.node_id not in await self._nodes(fresh=True):
                raise Gone(f"its node {where} has left the cluster", node_left=True) from None
            if isinstance(exc, AgentGone):
                raise Gone(f"its agent on node {where} no longer exists (it was removed)", node_left=False) from None
            raise Unavailable(
                PROVIDER,
                f"the agent on node {where} did not answer ({exc})",
                hint="Retry in a moment; if it persists, see the node's Ray logs.",
            ) from None
        if "error" in answer:
            raise provider_error(answer["error"], agent.node_id[:12])
        return answer["ok"]

    async def _nodes(self, fresh: bool = False) -> dict[str, Any]:
        try:
            return await self.cluster.nodes(fresh=fresh)
        except Unreachable as exc:
            raise cluster_away(exc) from None

    # --- workspaces ------------------------------------------------------------------------------------------
    async def _home(self, workspace: str, make: bool = False) -> tuple[AgentRef, str]:
        """(this server's agent on the node of the caller's workspace, that node's ip); a new workspace is placed
        first when `make`, else NotFound. Names are per owner, as on local (an admin's are its own too)."""
        owner = caller().owner
        home = await self._records.workspace_node(workspace, owner)
        if home is None:
            if not make:
                raise NotFound(
                    PROVIDER,
                    f"no ray workspace {workspace!r}",
                    hint=f"writeFile or execRun provider=ray workspace={workspace} makes it; listWorkspaces "
                    "provider=ray lists them.",
                )
            place = await self._placer.place({}, self._node_labels, workspace, owner)
            try:
                await self._records.place_workspace(workspace, owner, place.node.id, place.node.ip, time.time())
            finally:
                self._placer.started(place.node.id)
            home = await self._records.workspace_node(workspace, owner) or (place.node.id, place.node.ip)
        nodes = await self.cluster.nodes()
        if home[0] not in nodes and home[0] not in await self.cluster.nodes(fresh=True):
            raise workspace_node_left(workspace, home)
        return self.cluster.ours(home[0]), home[1]

    async def write_file(
        self, workspace: str, path: str, content: str, encoding: str | None = None, mode: str | None = None
    ) -> FileWritten:
        with _reaching():
            agent, ip = await self._home(workspace, make=True)
            answer = await self._call(agent, ip, "workspace", "write_file", [workspace, path, content, encoding, mode])
        return FileWritten.model_validate(answer | {"provider": PROVIDER, "uri": ""})

    async def read_file(
        self, workspace: str, path: str, offset: int | None = None, length: int | None = None
    ) -> FileContent:
        with _reaching():
            agent, ip = await self._home(workspace)
            answer = await self._call(agent, ip, "workspace", "read_file", [workspace, path, offset, length])
        return FileContent.model_validate(answer | {"provider": PROVIDER, "uri": ""})

    async def list_files(self, workspace: str, path: str | None = None, depth: int | None = None) -> FileList:
        with _reaching():
            agent, ip = await self._home(workspace)
            answer = await self._call(agent, ip, "workspace", "list_files", [workspace, path, depth])
        return FileList.model_validate(answer | {"provider": PROVIDER})

    async def delete_workspace(self, workspace: str) -> WorkspaceDeleted:
        owner = caller().owner
        with _reaching():
            try:
                agent, ip = await self._home(workspace)
            except Unavailable:  # its node has gone, and its files with it: only the record is left to remove
                await self._records.forget_workspace(workspace, owner)
                return WorkspaceDeleted(
                    provider=PROVIDER, workspace=workspace, deleted=True, message="its node had left the cluster"
                )
            except NotFound:
                return WorkspaceDeleted(
                    provider=PROVIDER, workspace=workspace, deleted=False, message="no such workspace"
                )
            answer = await self._call(agent, ip, "workspace", "delete_workspace", [workspace])
        await self._records.forget_workspace(workspace, owner)
        return WorkspaceDeleted.model_validate(answer | {"provider": PROVIDER})

    async def list_workspaces(self) -> WorkspaceList:
        """Each node's own list, of the workspaces recorded there (those of nodes that have left are not shown):
        the caller's, or every owner's for an admin."""
        who = caller()
        by_node: dict[tuple[str, str], set[tuple[str, str | None]]] = defaultdict(set)
        for name, owner, node_id, node_ip in await self._records.workspaces(who):
            by_node[(node_id, node_ip)].add((name, owner if who.admin else None))
        infos: list[WorkspaceInfo] = []
        with _reaching():
            nodes = await self.cluster.nodes(fresh=True) if by_node else {}
        for (node_id, node_ip), names in sorted(by_node.items()):
            if node_id not in nodes:
                continue
            try:
                listed = WorkspaceList.model_validate(
                    await self._call(self.cluster.ours(node_id), node_ip, "workspace", "list_workspaces", [])
                )
            except (Gone, ProviderError):
                continue  # it left (or does not answer) as we asked: its workspaces cannot be shown now
            infos += [info for info in listed.workspaces if (info.name, info.owner) in names]
        infos.sort(key=lambda info: info.name)
        return WorkspaceList(
            provider=PROVIDER,
            workspaces=infos,
            count=len(infos),
            max_workspaces=self._limits[0],
            max_mb=self._limits[1],
        )


@contextlib.contextmanager
def _reaching() -> Iterator[None]:
    """A workspace call's failure to reach the cluster, or its workspace's agent, as this provider's error."""
    try:
        yield
    except Unreachable as exc:
        raise cluster_away(exc) from None
    except Gone as gone:
        raise Unavailable(PROVIDER, f"the workspace's agent is no more: {gone.why}", hint="Retry.") from None
