"""What the config file can say about the ray provider (`[ray]`), and the address check made before connecting."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from providers.local.config import LocalConfig
from providers.services import StartError

PROVIDER = "ray"


class RayConfig(BaseModel):
    """`[ray]`: where the node agents keep their sessions, how long a run may wait for resources, and `[ray.node]`,
    the local runtime's settings on every node (sandbox, limits, output caps), as `[local]` takes them."""

    model_config = ConfigDict(extra="forbid", strict=True)
    node_data_dir: str | None = Field(
        None,
        description="On each node, the directory under which its agent keeps sessions (in NAMESPACE/NODE_ID); "
        "default: the node user's data directory, runtimes-mcp/ray-nodes.",
    )
    node_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Runs go only to nodes with these labels (ray start --labels); e.g. to keep them off the "
        "nodes the servers themselves run on.",
    )
    placement_timeout_s: float = Field(
        10, gt=0, le=600, description="How long a run that asks for resources may wait for a node to have them."
    )
    node: LocalConfig = Field(
        default_factory=LocalConfig,
        description="The local runtime on each node: [local]'s keys but routines, launchers and on_exit.",
    )

    @field_validator("node")
    @classmethod
    def _sessions_only(cls, node: LocalConfig) -> LocalConfig:
        if node.routines or node.launchers:
            raise ValueError("routines and launchers run on the server's machine: configure them under [local]")
        if "on_exit" in node.model_fields_set:
            raise ValueError("on_exit is fixed on nodes: a node's sessions end with its agent (see docs/ray.md)")
        return node


class AddressError(StartError):
    """The Ray address cannot be used (or not safely): the server does not start, and says why in one line."""


@dataclass(frozen=True)
class Address:
    text: str  # as Ray takes it
    loopback: bool


def check_address(address: str, token: str | None) -> Address:
    """The address, parsed; refused when it is not one Ray connects to, or when it leaves this machine without a
    token (a Ray cluster runs whatever any client that reaches it sends)."""
    text = address.strip()
    if text.startswith("ray://"):
        raise AddressError(
            f"ray: RUNTIMES_MCP_RAY_ADDRESS (or RAY_ADDRESS, [ray] address) is {text!r}, a Ray Client address: the "
            "server joins the cluster as a driver, through its GCS. Next: set it to the head's GCS address (e.g. "
            "10.0.0.5:6379) and run the server where it reaches the cluster's nodes"
        )
    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit():
        raise AddressError(
            f"ray: RUNTIMES_MCP_RAY_ADDRESS (or RAY_ADDRESS, [ray] address) is {text!r}, not host:port; the server "
            "does not look clusters up by itself. Next: set it to the head's GCS address (e.g. 10.0.0.5:6379)"
        )
    loopback = host == "localhost" or _is_loopback_ip(host)
    if not loopback and not token:
        raise AddressError(
            f"ray: the cluster at {text} is not on this machine's loopback and no token is set: anyone who reaches "
            "an unauthenticated Ray cluster runs code on it. Next: start the cluster with RAY_AUTH_MODE=token and "
            "set RUNTIMES_MCP_RAY_TOKEN to its token (keep the cluster off untrusted networks either way), or use "
            "a loopback address"
        )
    return Address(text, loopback)


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
