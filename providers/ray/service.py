"""The ray provider as the server opens it (providers/services.py): the address checked before anything connects,
its records opened in the shared state, and the cluster connected on first use (a server starts, and answers
about other providers, while the cluster is away)."""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread

from providers.local.database import StoreError
from providers.ray.agent import NodeAgent
from providers.ray.cluster import Cluster
from providers.ray.config import RayConfig, check_address
from providers.ray.records import Records
from providers.ray.runtime import RayRuntime
from providers.services import Host, StartError


@asynccontextmanager
async def open_ray(host: Host) -> AsyncIterator[RayRuntime]:
    if importlib.util.find_spec("ray") is None:  # the provider's own modules import Ray only once connecting
        raise StartError(
            "ray: RUNTIMES_MCP_RAY_ADDRESS is set but Ray is not installed. Next: pip install 'runtimes-mcp[ray]' "
            "(the same Ray version as the cluster's), or unset the address"
        )
    arguments = host.arguments
    token = arguments.get("token") or None
    address = check_address(str(arguments["address"]), token)
    config: RayConfig = host.section if isinstance(host.section, RayConfig) else RayConfig()
    try:
        replica = f"runtimes-mcp-ray:{secrets.token_hex(4)}"
        records = await Records.open(host.data_dir, host.state_url, replica, host.earlier_owner)
    except StoreError as exc:
        raise StartError(str(exc)) from None
    node_settings = config.node.model_dump(mode="json", exclude={"routines", "launchers", "on_exit"})
    namespace = str(arguments["namespace"])
    agent_arguments = (node_settings, config.node_data_dir, namespace)
    cluster = Cluster(address.text, address.loopback, namespace, token, NodeAgent, agent_arguments)
    runtime = RayRuntime(
        address=address.text, token=token, namespace=namespace, cluster=cluster, records=records, config=config
    )
    try:
        yield runtime
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(cluster.close)
            await records.close()
