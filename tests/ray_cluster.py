"""A real Ray cluster on this machine for the tests and the bench: a head and a second node with a custom resource
(`special`) and a label (`pool: special`), on loopback, with token authentication (RAY_AUTH_MODE=token), in a
temporary directory of its own. Shut down by its own handle (never `ray stop`, which ends every Ray process on the
machine), and checked: no process started in that directory outlives it."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.ray.cluster import LOOPBACK_ONLY_ENV
from tests.conftest import processes_matching

# Health checks every 0.5 s: a node whose raylet dies is declared dead within ~2 s, not ~30 s.
HEALTH_CHECKS = {"health_check_period_ms": 500, "health_check_failure_threshold": 3, "health_check_initial_delay_ms": 0}


@dataclass
class RayCluster:
    handle: Any  # ray.cluster_utils.Cluster
    special: Any  # the second node, with resource `special` and label pool=special
    base: Path  # RAY_TMPDIR, and the agents' node directories (base / "nodes")
    token: str  # its token authentication's (RAY_AUTH_MODE=token)

    @property
    def address(self) -> str:
        return str(self.handle.address)

    @property
    def special_id(self) -> str:
        return str(self.special.node_id)

    @property
    def env(self) -> dict[str, str]:
        """What a server needs to run sessions on it."""
        return {
            "RAY_TMPDIR": str(self.base),
            LOOPBACK_ONLY_ENV: "0",
            "RUNTIMES_MCP_RAY_ADDRESS": self.address,
            "RUNTIMES_MCP_RAY_NODE_DATA_DIR": str(self.base / "nodes"),
            "RUNTIMES_MCP_RAY_TOKEN": self.token,
        }


@contextmanager
def ray_cluster(num_cpus: int = 1) -> Iterator[RayCluster]:
    base = Path(tempfile.mkdtemp(prefix="rt-ray-", dir="/tmp"))  # short: Ray's socket paths live under it
    token = secrets.token_hex(16)
    ours = {"RAY_TMPDIR": str(base), LOOPBACK_ONLY_ENV: "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    saved = {name: os.environ.get(name) for name in ours}
    os.environ.update(ours)  # the cluster's processes take them (and a driver in this process, the bench's)
    try:
        from ray.cluster_utils import Cluster

        head = {"node_ip_address": "127.0.0.1", "num_cpus": num_cpus, "_system_config": HEALTH_CHECKS}
        cluster = Cluster(initialize_head=True, head_node_args=head)
        try:
            special = cluster.add_node(
                node_ip_address="127.0.0.1", num_cpus=num_cpus, resources={"special": 1}, labels={"pool": "special"}
            )
            yield RayCluster(cluster, special, base, token)
        finally:
            cluster.shutdown()
            deadline = time.monotonic() + 30
            while processes_matching(str(base)) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = processes_matching(str(base))
            shutil.rmtree(base, ignore_errors=True)
            assert not left, f"processes of the test cluster outlived it: {left}"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
