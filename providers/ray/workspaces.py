"""Workspaces on a Ray cluster: each lives on the node of its first use (recorded in the shared state), where that
node's local runtime keeps it; files go in and out through that node's agent, as runs in it go to that node."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from providers.errors import NotFound, ProviderError, Unavailable
from providers.models import FileContent, FileList, FileWritten, WorkspaceDeleted, WorkspaceInfo, WorkspaceList
from providers.ray.cluster import AgentRef, Cluster, Gone
from providers.ray.placement import Placer
from providers.ray.records import Records
from providers.ray.results import workspace_node_left
from providers.services import caller

PROVIDER = "ray"
# Calls an agent: (agent, node ip, method, arguments...) -> its answer's "ok" (errors raised as ours).
Call = Callable[..., Awaitable[Any]]


class RayWorkspaces:
    def __init__(
        self,
        cluster: Cluster,
        records: Records,
        placer: Placer,
        call: Call,
        node_labels: dict[str, str],
        limits: tuple[int, int],
    ) -> None:
        self._cluster = cluster
        self._records = records
        self._placer = placer
        self._call = call
        self._node_labels = node_labels
        self._limits = limits  # [ray.node] max_workspaces, workspace_max_mb

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
        nodes = await self._cluster.nodes()
        if home[0] not in nodes and home[0] not in await self._cluster.nodes(fresh=True):
            raise workspace_node_left(workspace, home)
        return self._cluster.ours(home[0]), home[1]

    async def write_file(
        self, workspace: str, path: str, content: str, encoding: str | None, mode: str | None
    ) -> FileWritten:
        agent, ip = await self._home(workspace, make=True)
        answer = await self._call(agent, ip, "workspace", "write_file", [workspace, path, content, encoding, mode])
        return FileWritten.model_validate(answer | {"provider": PROVIDER, "uri": ""})

    async def read_file(self, workspace: str, path: str, offset: int | None, length: int | None) -> FileContent:
        agent, ip = await self._home(workspace)
        answer = await self._call(agent, ip, "workspace", "read_file", [workspace, path, offset, length])
        return FileContent.model_validate(answer | {"provider": PROVIDER, "uri": ""})

    async def list_files(self, workspace: str, path: str | None, depth: int | None) -> FileList:
        agent, ip = await self._home(workspace)
        answer = await self._call(agent, ip, "workspace", "list_files", [workspace, path, depth])
        return FileList.model_validate(answer | {"provider": PROVIDER})

    async def delete_workspace(self, workspace: str) -> WorkspaceDeleted:
        owner = caller().owner
        try:
            agent, ip = await self._home(workspace)
        except Unavailable:  # its node has gone, and its files with it: only the record is left to remove
            await self._records.forget_workspace(workspace, owner)
            return WorkspaceDeleted(
                provider=PROVIDER, workspace=workspace, deleted=True, message="its node had left the cluster"
            )
        except NotFound:
            return WorkspaceDeleted(provider=PROVIDER, workspace=workspace, deleted=False, message="no such workspace")
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
        nodes = await self._cluster.nodes(fresh=True) if by_node else {}
        for (node_id, node_ip), names in sorted(by_node.items()):
            if node_id not in nodes:
                continue
            try:
                listed = WorkspaceList.model_validate(
                    await self._call(self._cluster.ours(node_id), node_ip, "workspace", "list_workspaces", [])
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
