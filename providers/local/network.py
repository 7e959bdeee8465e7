"""A run's network (local.sandbox.network): none, allowlist (through the egress proxy) or host; its ports.

In `none` and `allowlist` modes the sandbox has a network namespace of its own, with loopback only. In
`allowlist` its only way out is the egress proxy its supervisor runs outside it (supervisor/egress/), which
the relay inside (supervisor/relay.py) puts on the sandbox's 127.0.0.1; published ports go the other way,
from the host's loopback (the supervisor listens there) to the relay and the run's own 127.0.0.1:PORT. In
`host` mode the sandbox shares the host's network, and its ports are the host's.

Worked out once per server here; the supervisors get the policy (secrets included) from their zygote.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from providers.errors import InvalidInput
from providers.local.config import MAX_PORTS, LocalConfig
from providers.local.ids import PROVIDER
from providers.local.run_as import RunAs, can_reach
from providers.local.sandbox import Sandbox
from providers.local.supervisor import relay
from providers.local.supervisor.egress.policy import DEFAULT_PORTS, Policy
from providers.local.supervisor.records import write_new

INSIDE = "/run/runtimes-mcp"  # in the sandbox's private /run
RELAY, BUNDLE = f"{INSIDE}/relay.py", f"{INSIDE}/ca.pem"
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")


class NetworkError(Exception):
    """A network setting that cannot work; the message names it."""


@dataclass(frozen=True)
class Network:
    default: str = "none"
    policy: dict[str, Any] | None = None  # for the zygote: allow, hosts, secrets with their values
    environment: dict[str, str] = field(default_factory=dict)  # an allowlist run's: the CA bundle, placeholders
    ca_dir: str | None = None
    bundle: str | None = None
    python: str | None = sys.executable  # None: the run_as user can run none (a run that needs the relay fails)
    relay_file: str = relay.__file__  # its code, where bubblewrap (as the run_as user) can read it
    python_prefix: str | None = None  # bound into a sandbox that would not show the interpreter
    ca_file: str | None = None  # the operator's CAs for allowed hosts (an internal CA)
    # Host ports no run publishes on (its inside port then gets one the kernel picks): those the proxy may
    # connect to on the host's loopback, and the server's own.
    reserved: frozenset[int] = frozenset()

    def zygote_message(self) -> dict[str, Any]:
        """What the zygote passes on to every supervisor: the policy, and where the proxy's packages are."""
        paths = sorted({str(Path(_origin(name)).parent.parent) for name in ("h11", "cryptography")})
        return {"op": "network", "policy": self.policy, "ca_dir": self.ca_dir, "paths": paths, "ca_file": self.ca_file}

    def for_run(
        self, mode: str | None, ports: list[int], sandbox: Sandbox | None
    ) -> tuple[dict[str, Any], list[str], dict[str, str], list[str] | None]:
        """(the job's `network`, bwrap options, variables, the command's prefix) of one run."""
        mode = "host" if sandbox is None else mode or self.default  # unconfined, a run has the host's network
        spec: dict[str, Any] = {"mode": mode, "ports": ports}
        if sandbox is None or mode == "host" or (mode == "none" and not ports):
            return spec, [], {}, None
        assert self.python is not None  # see check
        if ports:
            spec["reserved"] = sorted(self.reserved)
        inside = relay.descriptors(mode == "allowlist", ports)  # what the supervisor hands it, no file
        options = ["--ro-bind", self.relay_file, RELAY]
        environment: dict[str, str] = {}
        if mode == "allowlist":
            options += ["--ro-bind", str(self.bundle), BUNDLE]
            environment = self.environment
        if self.python_prefix is not None:
            options += ["--ro-bind", self.python_prefix, self.python_prefix]
        prefix = [self.python, "-I", "-S", RELAY, inside, "--"]
        return spec, options, environment, prefix

    def check(self, mode: str | None, ports: Sequence[int], sandbox: Sandbox | None) -> None:
        """Refuse, as invalid input, a run whose network cannot be: too many ports, or a relay its user cannot
        run."""
        if len(ports) > MAX_PORTS:
            raise InvalidInput(
                PROVIDER,
                f"ports names {len(ports)} ports; a run publishes at most {MAX_PORTS}",
                hint=f"Publish only the ports a client on the host must reach (at most {MAX_PORTS}), e.g. "
                "ports=[8080].",
            )
        mode = mode or self.default
        if self.python is None and sandbox is not None and (mode == "allowlist" or (mode == "none" and ports)):
            raise InvalidInput(
                PROVIDER,
                f"this run's network ({mode}{' with ports' if ports else ''}) needs a Python 3.9 or later that "
                "the local.sandbox.run_as user can run, and the server's is out of that user's reach",
                hint="Ask the operator to install /usr/bin/python3; or run without ports, in network mode none.",
            )


def _origin(package: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise NetworkError(f"local.sandbox.network: the egress proxy needs {package}; reinstall runtimes-mcp")
    return spec.origin


def loopback_targets(policy: Policy) -> frozenset[int]:
    """The ports the proxy may connect to on the host's loopback: every port `allow` names (80 and 443 for an
    entry without one) once any loopback address is named (literally or as a `hosts` target), since a listed
    name may then lead there, through DNS too. A run must not serve on them: the proxy would bring it what the
    sandboxes send to that host."""
    if not any(address.is_loopback for address in policy.named_addresses):
        return frozenset()
    return frozenset(port for entry in policy.allow for port in ((entry.port,) if entry.port else DEFAULT_PORTS))


def relay_python(sandbox: Sandbox | None, run_as: RunAs | None) -> tuple[str | None, str | None]:
    """The Python the relay runs with (None: none its user can run) and a directory to show for it (None: the
    sandbox shows it). Ours, unless the run_as user cannot reach it (a pyenv under a 0700 /root): then the
    system's, which the relay's standard library code runs with too (3.9 or later)."""
    python = os.path.realpath(sys.executable)
    prefix = None
    if sandbox is not None and sandbox.shows(python) not in ("ro", "rw"):
        prefix = os.path.realpath(sys.base_prefix)  # a Python in the hidden home or /tmp: shown for the relay
    if run_as is None or can_reach(run_as, Path(prefix or python) / "x"):
        return python, prefix
    for system in SYSTEM_PYTHONS:
        found = os.path.realpath(system)
        shown = sandbox is None or sandbox.shows(found) in ("ro", "rw")
        if shown and os.path.isfile(found) and can_reach(run_as, Path(found)) and _recent(found):
            return found, None
    return None, None


def _copy_relay(data_dir: Path) -> Path:
    """The relay's code in the data directory (which the run_as user can pass), named by its content: servers
    of other versions on the same directory each bind their own."""
    code = Path(relay.__file__).read_bytes()
    target = data_dir / f"relay-{hashlib.sha256(code).hexdigest()[:16]}.py"
    if not target.exists():
        write_new(target, code, 0o644)
    return target


def _recent(python: str) -> bool:
    check = "import sys; sys.exit(sys.version_info < (3, 9))"
    try:
        return subprocess.run([python, "-I", "-S", "-c", check], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def prepare(
    config: LocalConfig,
    data_dir: Path,
    sandbox: Sandbox | None,
    listening: Iterable[int] = (),
    run_as: RunAs | None = None,
) -> Network:
    """The server's network set-up: the policy with the secrets' values (read from its environment), the CA
    and the trust bundle a sandbox gets. Raises NetworkError naming what is wrong."""
    python, prefix = relay_python(sandbox, run_as)
    relay_file = str(_copy_relay(data_dir)) if run_as is not None else relay.__file__
    network = Network(
        config.sandbox.network,
        python=python,
        relay_file=relay_file,
        python_prefix=prefix,
        reserved=frozenset(listening),
    )
    if not config.allowlist_used:
        return network
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
    # Here, not at the top: only an allow-list server pays for loading cryptography and h11.
    from providers.local.supervisor.egress.ca import write_trust_bundle
    from providers.local.supervisor.egress.service import sandbox_environment

    ca_dir = data_dir / "egress"
    extra = [config.sandbox.ca_file] if config.sandbox.ca_file else []
    # Beside the CA's private directory, not in it: bubblewrap binds it as the run's user (run_as) may be.
    bundle = write_trust_bundle(ca_dir, data_dir / "egress-bundle.pem", extra)
    environment = sandbox_environment(BUNDLE, policy)
    return replace(
        network,
        policy=data,
        environment=environment,
        ca_dir=str(ca_dir),
        bundle=str(bundle),
        ca_file=config.sandbox.ca_file,
        reserved=loopback_targets(policy) | network.reserved,
    )
