"""Where a run goes: the node its workspace lives on, a node Ray finds with the resources it asks for (held for it
by a placement group while it runs), or else the live node with the fewest running sessions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from providers.errors import InvalidInput, Unavailable
from providers.ray.cluster import Cluster, Node, NoRoom
from providers.ray.records import Records
from providers.ray.results import node_name, workspace_node_left

PROVIDER = "ray"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Place:
    node: Node
    reservation: str | None  # the placement group holding its resources, to release when it ends
    new_workspace: bool = False


def bundle_of(num_cpus: float | None, memory_mb: int | None, resources: Mapping[str, Any] | None) -> dict[str, float]:
    """The resources a run asks Ray for (none: it holds nothing, so Ray's accounting never caps how many run)."""
    bundle: dict[str, float] = {}
    if num_cpus is not None:
        if num_cpus < 0:
            raise InvalidInput(PROVIDER, f"num_cpus must be >= 0, got {num_cpus:g}")
        if num_cpus:
            bundle["CPU"] = float(num_cpus)
    if memory_mb is not None:
        if memory_mb < 1:
            raise InvalidInput(PROVIDER, f"memory_mb must be >= 1, got {memory_mb}")
        bundle["memory"] = float(memory_mb * MIB)
    for name, amount in (resources or {}).items():
        if not isinstance(amount, int | float) or isinstance(amount, bool) or amount <= 0:
            raise InvalidInput(PROVIDER, f"resources[{name!r}] must be a positive number, got {amount!r}")
        if name in ("CPU", "memory") or name.startswith("node:"):
            raise InvalidInput(
                PROVIDER, f"resources[{name!r}] is not a custom resource", hint="Use num_cpus or memory_mb for those."
            )
        bundle[name] = float(amount)
    return bundle


def labels_of(labels: Mapping[str, Any] | None) -> dict[str, str]:
    bad = sorted(k for k, v in (labels or {}).items() if not isinstance(v, str))
    if bad:
        raise InvalidInput(PROVIDER, f"label values must be strings; not so for {', '.join(bad)}")
    return {str(k): str(v) for k, v in (labels or {}).items()}


def _fits(node: Node, bundle: Mapping[str, float], labels: Mapping[str, str]) -> bool:
    return all(node.resources.get(k, 0.0) >= v for k, v in bundle.items()) and all(
        node.labels.get(k) == v for k, v in labels.items()
    )


class Placer:
    def __init__(self, cluster: Cluster, records: Records, timeout_s: float) -> None:
        self._cluster = cluster
        self._records = records
        self._timeout_s = timeout_s
        self._placing: Counter[str] = Counter()  # runs this server is starting, per node (not recorded yet)

    def started(self, node_id: str) -> None:
        """A run placed by `place` is recorded (or failed): it no longer counts as being placed."""
        self._placing[node_id] -= 1

    async def place(self, bundle: dict[str, float], labels: dict[str, str], workspace: str | None, owner: str) -> Place:
        """Where to run; the caller calls `started(node.id)` once the run is recorded or has failed."""
        nodes = await self._cluster.nodes()
        home = await self._records.workspace_node(workspace, owner) if workspace is not None else None
        if home is not None:
            place = await self._at_home(workspace or "", home, bundle, labels, nodes)
        elif bundle:
            place = await self._reserve(bundle, labels, nodes)
        else:
            place = await self._least_busy(labels, nodes)
        self._placing[place.node.id] += 1
        return replace(place, new_workspace=workspace is not None and home is None)

    async def _at_home(
        self,
        workspace: str,
        home: tuple[str, str],
        bundle: dict[str, float],
        labels: dict[str, str],
        nodes: dict[str, Node],
    ) -> Place:
        node = nodes.get(home[0]) or (await self._cluster.nodes(fresh=True)).get(home[0])
        if node is None:
            raise workspace_node_left(workspace, home)
        if not _fits(node, bundle, labels):
            raise InvalidInput(
                PROVIDER,
                f"workspace {workspace!r} lives on node {node_name(node.id, node.ip)}, which lacks what the run "
                f"asks for ({bundle or ''} {labels or ''})",
                hint="Ask for what that node has, or use another workspace.",
            )
        if not bundle:
            return Place(node, None)
        name, placed = await self._reserve_on(bundle, labels, near=node.id)
        if placed != node.id:
            await self._cluster.release(name)
            raise Unavailable(
                PROVIDER,
                f"workspace {workspace!r} lives on node {node_name(node.id, node.ip)}, which has no {bundle} free now",
                hint="Retry once its runs have ended, or ask for less.",
            )
        return Place(node, name)

    async def _reserve(self, bundle: dict[str, float], labels: dict[str, str], nodes: dict[str, Node]) -> Place:
        if not any(_fits(node, bundle, labels) for node in nodes.values()):
            offered = "; ".join(f"{node_name(n.id, n.ip)}: {_public(n.resources)}" for n in nodes.values())
            raise InvalidInput(
                PROVIDER,
                f"no node of the cluster has {bundle}{f' with labels {labels}' if labels else ''} (nodes: {offered})",
                hint="Ask for what a node has, or add a node with those resources to the cluster.",
            )
        name, node_id = await self._reserve_on(bundle, labels, near=None)
        node = nodes.get(node_id) or (await self._cluster.nodes(fresh=True)).get(node_id)
        if node is None:
            await self._cluster.release(name)
            raise Unavailable(PROVIDER, f"node {node_id[:12]} left the cluster as the run was placed", hint="Retry.")
        return Place(node, name)

    async def _reserve_on(self, bundle: dict[str, float], labels: dict[str, str], near: str | None) -> tuple[str, str]:
        try:
            return await self._cluster.reserve(bundle, labels or None, self._timeout_s, near)
        except NoRoom as exc:
            raise Unavailable(
                PROVIDER,
                f"{exc} ([ray] placement_timeout_s)",
                hint="Retry once some runs have ended, or ask for less.",
            ) from None

    async def _least_busy(self, labels: dict[str, str], nodes: dict[str, Node]) -> Place:
        candidates = [n for n in nodes.values() if _fits(n, {}, labels)]
        if not candidates:
            raise InvalidInput(
                PROVIDER,
                f"no live node of the cluster has labels {labels}" if labels else "the cluster has no live node",
                hint="Check the labels the nodes were started with (ray start --labels).",
            )
        running = await self._records.running_per_node()
        return Place(min(candidates, key=lambda n: (running.get(n.id, 0) + self._placing[n.id], n.id)), None)


def _public(resources: Mapping[str, float]) -> dict[str, float]:
    """A node's resources, without Ray's bookkeeping ones (node:IP, object store)."""
    return {k: v for k, v in resources.items() if not k.startswith("node:") and k != "object_store_memory"}
