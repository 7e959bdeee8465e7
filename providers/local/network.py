"""A run's network (local.sandbox.network): none, allowlist (through the egress proxy) or host; its ports.

In `none` and `allowlist` modes the sandbox has a network namespace of its own, with loopback only. In
`allowlist` its only way out is the egress proxy its supervisor runs outside it (supervisor/egress/), which
the relay inside (supervisor/relay.py) puts on the sandbox's 127.0.0.1; published ports go the other way,
from the host's loopback (the supervisor listens there) to the relay and the run's own 127.0.0.1:PORT. In
`host` mode the sandbox shares the host's network, and its ports are the host's.

Worked out once per server here; the supervisors get the policy (secrets included) from their zygote.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cryptography
import h11

from providers.local.config import LocalConfig
from providers.local.sandbox import Sandbox
from providers.local.supervisor import relay
from providers.local.supervisor.egress import Policy, proxy_environment, write_trust_bundle
from providers.local.supervisor.egress.ca import CertificateAuthority

INSIDE = "/run/runtimes-mcp"  # in the sandbox's private /run
RELAY, NET, BUNDLE = f"{INSIDE}/relay.py", f"{INSIDE}/net", f"{INSIDE}/ca.pem"
NET_DIR = "net"  # in the session's directory: the proxy's socket and the ports' sockets


class NetworkError(Exception):
    """A network setting that cannot work; the message names it."""


@dataclass(frozen=True)
class Network:
    default: str = "none"
    policy: dict[str, Any] | None = None  # for the zygote: allow, hosts, secrets with their values
    environment: dict[str, str] = field(default_factory=dict)  # an allowlist run's: the CA bundle, placeholders
    ca_dir: str | None = None
    bundle: str | None = None
    python: str = sys.executable
    python_prefix: str | None = None  # bound into a sandbox that would not show the interpreter
    ca_file: str | None = None  # the operator's CAs for allowed hosts (an internal CA)

    def zygote_message(self) -> dict[str, Any]:
        """What the zygote passes on to every supervisor: the policy, and where the proxy's packages are."""
        paths = sorted({str(Path(module.__file__ or "").parent.parent) for module in (h11, cryptography)})
        message = {"op": "network", "policy": self.policy, "ca_dir": self.ca_dir, "paths": paths}
        return message | {"ca_file": self.ca_file}

    def for_run(
        self, mode: str | None, ports: list[int], session_dir: Path, sandbox: Sandbox | None
    ) -> tuple[dict[str, Any], list[str], dict[str, str], list[str] | None]:
        """(the job's `network`, bwrap options, variables, the command's prefix) of one run."""
        mode = "host" if sandbox is None else mode or self.default  # unconfined, a run has the host's network
        spec: dict[str, Any] = {"mode": mode, "ports": ports}
        if sandbox is None or mode == "host" or (mode == "none" and not ports):
            return spec, [], {}, None
        net = session_dir / NET_DIR
        inside: dict[str, Any] = {"ports": {str(port): f"{NET}/port-{port}.sock" for port in ports}}
        options = ["--ro-bind", relay.__file__, RELAY, "--bind", str(net), NET]
        environment: dict[str, str] = {}
        if mode == "allowlist":
            inside["egress"] = f"{NET}/egress.sock"
            options += ["--ro-bind", str(self.bundle), BUNDLE]
            environment = self.environment
        if self.python_prefix is not None:
            options += ["--ro-bind", self.python_prefix, self.python_prefix]
        prefix = [self.python, "-I", "-S", RELAY, json.dumps(inside), "--"]
        return spec, options, environment, prefix


def prepare(config: LocalConfig, data_dir: Path, sandbox: Sandbox | None) -> Network:
    """The server's network set-up: the policy with the secrets' values (read from its environment), the CA
    and the trust bundle a sandbox gets. Raises NetworkError naming what is wrong."""
    overrides = [launcher.network for launcher in config.launchers.values()]
    overrides += [routine.network for routine in config.routines.values()]
    modes = {config.sandbox.network, *(mode for mode in overrides if mode)}
    python = os.path.realpath(sys.executable)
    prefix = None
    if sandbox is not None and sandbox.shows(python) not in ("ro", "rw"):
        prefix = os.path.realpath(sys.base_prefix)  # a Python in the hidden home or /tmp: shown for the relay
    if "allowlist" not in modes:
        return Network(config.sandbox.network, python=python, python_prefix=prefix)
    secrets: dict[str, Any] = {}
    for name, secret in config.secrets.items():
        value = os.environ.get(secret.value_env)
        if not value:
            raise NetworkError(
                f"local.secrets.{name}: {secret.value_env} is not set in the server's environment; set it, or "
                "remove the secret"
            )
        secrets[name] = {**secret.model_dump(exclude_none=True), "value": value}
    try:
        policy = Policy.parse(config.sandbox.allow, config.sandbox.hosts, secrets)
    except ValueError as exc:
        raise NetworkError(str(exc)) from None
    data = {
        "allow": config.sandbox.allow,
        "hosts": config.sandbox.hosts,
        "secrets": {
            secret.name: {**secrets[secret.name], "placeholder": secret.placeholder} for secret in policy.secrets
        },
    }
    ca_dir = data_dir / "egress"
    CertificateAuthority.load_or_create(ca_dir)
    extra = [config.sandbox.ca_file] if config.sandbox.ca_file else []
    bundle = write_trust_bundle(ca_dir, ca_dir / "bundle.pem", extra)
    environment = {k: v for k, v in proxy_environment(0, BUNDLE, policy).items() if not k.lower().endswith("_proxy")}
    return Network(
        config.sandbox.network, data, environment, str(ca_dir), str(bundle), python, prefix, config.sandbox.ca_file
    )
