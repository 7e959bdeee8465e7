"""Every use of Ray's API, in this one module: Ray is typed only in part, so what it hands back is Any here and
typed at this module's edge. The rest of providers/ray sees nodes, agents (by node id) and reservations.

Imported by the server (to connect and call agents) and by the agents on the nodes (to know their node)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

AGENT_PROTOCOL = 2  # in the agents' names: a server never talks to an agent of another protocol
NODES_FRESH_S = 0.5  # how long a look at the cluster's nodes is reused
CONNECT_TIMEOUT_S = 30.0
GCS_ATTEMPTS = 3
PROBE_TIMEOUT_S = 5.0  # a TCP connection to the address first: Ray itself retries an absent cluster for minutes
# Ray rewrites a loopback address to this machine's routable IP before connecting (services.
# resolve_ip_for_localhost), where a cluster started on 127.0.0.1 does not listen; this keeps loopback loopback.
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class Unreachable(Exception):
    """An agent (or the cluster) did not answer; the message says how."""


class Gone(Exception):
    """The agent that runs a session (or keeps a workspace) is no more (its node has left the cluster, or it was
    removed): `why`."""

    def __init__(self, why: str, node_left: bool) -> None:
        super().__init__(why)
        self.why = why
        self.node_left = node_left


class TokenRefused(Unreachable):
    """The cluster's token authentication refused this server."""


class AgentGone(Unreachable):
    """The named agent does not exist (any more): killed, or its node has gone; its sessions ended with it."""


class NoRoom(Exception):
    """No node has (or had in time) the resources a run asked for; the message says which."""


@dataclass(frozen=True)
class AgentRef:
    """One node agent: where it is found (a session's record keeps its agent's, so it is always reached)."""

    namespace: str
    name: str
    node_id: str


@dataclass(frozen=True)
class Node:
    id: str
    ip: str
    resources: dict[str, float]
    labels: dict[str, str]


def this_node_id() -> str:
    """Inside a Ray worker: the node it runs on."""
    import ray

    node_id: str = ray.get_runtime_context().get_node_id()
    return node_id


def release_reservation(name: str) -> None:
    """Remove a placement group by name (nothing happens when it has gone already). Blocking: call in a thread."""
    import ray.util

    try:
        ray.util.remove_placement_group(ray.util.get_placement_group(name))
    except ValueError:
        pass  # not found: released already


def _quiet_ray_logs() -> None:
    """Ray's Python logs go through the server's own handler (which redacts credentials), warnings and above; the
    warning that its SIGTERM handler was not installed is ours by design (we connect from a worker thread, so the
    server keeps its own handler)."""
    ray_logger = logging.getLogger("ray")
    ray_logger.handlers.clear()
    ray_logger.propagate = True
    ray_logger.setLevel(logging.WARNING)
    logging.getLogger("ray._private.worker").addFilter(
        lambda record: "SIGTERM handler is not set" not in record.getMessage()
    )


class Cluster:
    """The server's connection to one Ray cluster, made on first use."""

    def __init__(
        self,
        address: str,
        loopback: bool,
        namespace: str,
        token: str | None,
        agent: type,
        agent_arguments: tuple[Any, ...],
    ) -> None:
        """`agent`: the class each node's agent actor is made of (providers.ray.agent.NodeAgent), with
        `agent_arguments`."""
        self.address = address
        self._loopback = loopback
        self.namespace = namespace
        self._token = token
        self._agent_type = agent
        self._agent_arguments = agent_arguments
        self._ray: Any = None
        self._connecting = threading.Lock()
        self._connected_here = False
        self._agents: dict[AgentRef, Any] = {}
        self._agent_class: Any = None
        self._agent_locks: dict[AgentRef, anyio.Lock] = {}
        self._nodes: tuple[float, dict[str, Node]] = (0.0, {})

    # --- the connection ---------------------------------------------------------------------------------------
    async def connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        await self._probe()
        if self._connecting.locked():  # an earlier attempt still hangs in Ray: no second thread behind it
            raise Unreachable("an earlier attempt to connect has not finished yet")
        try:
            with anyio.fail_after(CONNECT_TIMEOUT_S):
                await anyio.to_thread.run_sync(self._connect, abandon_on_cancel=True)
        except TimeoutError:
            raise Unreachable(f"no answer within {CONNECT_TIMEOUT_S:g} s") from None
        except Exception as exc:  # Ray's ConnectionError, AuthenticationError, ...
            if _refused_token(exc):
                given = "the token set" if self._token else "no token (none is set)"
                raise TokenRefused(f"its token authentication refused {given}") from None
            raise Unreachable(_first_line(exc)) from None
        return self._ray

    async def _probe(self) -> None:
        """Unreachable at once when nothing listens at the address (Ray would retry for minutes)."""
        host, _, port = self.address.rpartition(":")
        try:
            with anyio.fail_after(PROBE_TIMEOUT_S):
                stream = await anyio.connect_tcp(host.strip("[]"), int(port))
        except TimeoutError:
            raise Unreachable(f"{self.address} did not accept a connection within {PROBE_TIMEOUT_S:g} s") from None
        except OSError as exc:  # anyio's "All connection attempts failed", from the last attempt's error
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            said = os.strerror(cause.errno) if cause.errno else str(cause)
            raise Unreachable(f"{self.address} refused the connection ({said})") from None
        await stream.aclose()

    def _connect(self) -> None:
        with self._connecting:
            if self._ray is not None:
                return
            if self._loopback:
                os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
            if self._token:
                os.environ["RAY_AUTH_MODE"] = "token"
                os.environ["RAY_AUTH_TOKEN"] = self._token
            # Attempts at the cluster's GCS before Ray gives up (default 20, one a second): a refused token or a
            # GCS that does not answer is said in seconds (the address answered the probe already).
            os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(GCS_ATTEMPTS))
            import ray

            _quiet_ray_logs()
            if not ray.is_initialized():
                ray.init(
                    address=self.address,
                    namespace=self.namespace,
                    log_to_driver=False,
                    configure_logging=False,
                )
                self._connected_here = True
            self._ray = ray

    def close(self) -> None:
        """Disconnect, if this server connected (agents and their sessions live on)."""
        if self._connected_here and self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    # --- nodes ------------------------------------------------------------------------------------------------
    async def nodes(self, fresh: bool = False) -> dict[str, Node]:
        """The live nodes, by id (looked at again after NODES_FRESH_S, or now with `fresh`)."""
        seen_at, nodes = self._nodes
        if not fresh and time.monotonic() - seen_at < NODES_FRESH_S:
            return nodes
        ray = await self.connect()
        listed = await anyio.to_thread.run_sync(ray.nodes)
        nodes = {
            str(n["NodeID"]): Node(
                str(n["NodeID"]),
                str(n["NodeManagerAddress"]),
                {str(k): float(v) for k, v in (n.get("Resources") or {}).items()},
                {str(k): str(v) for k, v in (n.get("Labels") or {}).items()},
            )
            for n in listed
            if n.get("Alive")
        }
        self._nodes = (time.monotonic(), nodes)
        return nodes

    # --- agents -----------------------------------------------------------------------------------------------
    def ours(self, node_id: str) -> AgentRef:
        """This server's agent on a node: named by the protocol, the node and a digest of what it is made with
        (`[ray.node]`), so that servers with other node settings run theirs beside it, each run under the settings
        of the server that started it, as on `local`."""
        made_with = json.dumps(self._agent_arguments, sort_keys=True, default=str).encode()
        digest = hashlib.sha256(made_with).hexdigest()[:12]
        return AgentRef(self.namespace, f"runtimes-mcp-agent-v{AGENT_PROTOCOL}-{node_id}-{digest}", node_id)

    async def call(self, agent: AgentRef, method: str, *arguments: Any) -> dict[str, Any]:
        """Call an agent (this server's own is started on its node on first use): its answer, `{"ok": …}` or
        `{"error": …}`. AgentGone when another's no longer exists; Unreachable when it (or its node) does not
        answer."""
        handle = await self._agent(agent)
        errors = self._ray.exceptions
        try:
            answer: dict[str, Any] = await getattr(handle, method).remote(*arguments)
        except (errors.RayActorError, errors.ActorUnschedulableError, errors.NodeDiedError) as exc:
            self._agents.pop(agent, None)
            raise Unreachable(_first_line(exc)) from None
        return answer

    async def _agent(self, agent: AgentRef) -> Any:
        handle = self._agents.get(agent)
        if handle is not None:
            return handle
        ray = await self.connect()
        async with self._agent_locks.setdefault(agent, anyio.Lock()):
            handle = self._agents.get(agent)
            if handle is None:
                create = agent == self.ours(agent.node_id)
                try:
                    handle = await anyio.to_thread.run_sync(self._find_agent, ray, agent, create)
                except ValueError:  # ray.get_actor: no actor of that name
                    raise AgentGone(f"agent {agent.name} no longer exists") from None
                except Exception as exc:
                    raise Unreachable(_first_line(exc)) from None
                self._agents[agent] = handle
        return handle

    def _find_agent(self, ray: Any, agent: AgentRef, create: bool) -> Any:
        """The agent's handle; made on its node first when `create` (only this server's own are made here, with
        its own settings)."""
        if not create:
            return ray.get_actor(agent.name, namespace=agent.namespace)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self._agent_class is None:
            self._agent_class = ray.remote(self._agent_type)
        return self._agent_class.options(
            name=agent.name,
            namespace=agent.namespace,
            get_if_exists=True,
            lifetime="detached",
            num_cpus=0,
            max_restarts=-1,
            max_concurrency=1000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(agent.node_id, soft=False),
        ).remote(*self._agent_arguments)

    # --- reservations: a placement group holds a run's resources while it runs -----------------------------------
    async def reserve(
        self, bundle: dict[str, float], labels: dict[str, str] | None, timeout_s: float, near: str | None
    ) -> tuple[str, str]:
        """(name, node id) of a placement group holding `bundle` on one node (labels: a node with them; `near`: that
        node if it can). NoRoom when no node could hold it within `timeout_s`."""
        await self.connect()
        import ray.util

        name = f"runtimes-mcp-run-{uuid.uuid4().hex}"

        def create() -> Any:
            return ray.util.placement_group(
                [bundle],
                strategy="STRICT_PACK",
                name=name,
                lifetime="detached",
                bundle_label_selector=[labels] if labels else None,
                _soft_target_node_id=near,
            )

        group = await anyio.to_thread.run_sync(create)
        table = functools.partial(ray.util.placement_group_table, group)
        deadline = time.monotonic() + timeout_s
        pause = 0.005
        while (state := await anyio.to_thread.run_sync(table))["state"] != "CREATED":
            if time.monotonic() >= deadline:
                await anyio.to_thread.run_sync(release_reservation, name)
                raise NoRoom(f"no node had {bundle} free within {timeout_s:g} s")
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.1)
        return name, str(state["bundles_to_node_id"][0])

    async def release(self, name: str) -> None:
        await self.connect()
        await anyio.to_thread.run_sync(release_reservation, name)


def _refused_token(exc: BaseException) -> bool:
    """Did Ray's token authentication refuse us? (Ray says so only deep in the chain of its ConnectionError.)"""
    seen: BaseException | None = exc
    while seen is not None:
        if "InvalidAuthToken" in str(seen) or "Unauthenticated" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
