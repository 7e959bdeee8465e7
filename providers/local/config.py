"""What the config file can say about the local provider."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from providers.local.supervisor.egress.policy import Policy
from providers.local.supervisor.relay import DIRECT

NetworkMode = Literal["none", "allowlist", "host"]
Port = Annotated[int, Field(ge=1, le=65535)]
MAX_PORTS = 16  # published ports per run or launcher
DEFAULT_TIMEOUT_S = 60.0  # a run's timeout_s when none is given (and local.max_timeout_s allows it)
# `allow = ["@packages"]`: what installing packages needs (PyPI, npm, crates.io, the Go module proxy).
PRESETS = {
    "@packages": (
        "pypi.org",
        "files.pythonhosted.org",
        "registry.npmjs.org",
        "registry.yarnpkg.com",
        "crates.io",
        "static.crates.io",
        "index.crates.io",
        "proxy.golang.org",
        "sum.golang.org",
        "storage.googleapis.com",
    )
}


def _network(value: Any) -> Any:
    """`network = true/false` as before: the host's network, or none."""
    if value is True:
        return "host"
    if value is False:
        return "none"
    return value


def _real_command(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty; give a shell command line")
    return value


def _existing_dir(value: str | None) -> str | None:
    if value is not None and not Path(value).expanduser().is_dir():
        raise ValueError(f"{value!r} is not an existing directory")
    return value


class RoutineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    command: str = Field(description="Shell command; gets the message on stdin and as $ROUTINE_MESSAGE.")
    description: str = ""
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, description="At most local.max_timeout_s (default 60, or less).")
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    network: NetworkMode | None = Field(None, description="Its network, where it differs from local.sandbox's.")

    _command = field_validator("command")(_real_command)
    _cwd = field_validator("cwd")(_existing_dir)
    _network = field_validator("network", mode="before")(_network)


class LauncherConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    command: str = Field(description="Shell command of a long-lived service.")
    description: str = ""
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    network: NetworkMode | None = Field(None, description="Its network, where it differs from local.sandbox's.")
    ports: list[Port] = Field(
        default_factory=list, max_length=MAX_PORTS, description="Its ports, reachable on the host's loopback."
    )

    _command = field_validator("command")(_real_command)
    _cwd = field_validator("cwd")(_existing_dir)
    _network = field_validator("network", mode="before")(_network)

    @field_validator("ports")
    @classmethod
    def _distinct(cls, ports: list[int]) -> list[int]:
        twice = sorted({port for port in ports if ports.count(port) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(map(str, twice))} more than once")
        return ports


class SandboxConfig(BaseModel):
    """How an agent's command is confined (see providers/local/sandbox.py)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    mode: Literal["auto", "required", "off"] = Field(
        "auto", description="auto: sandboxed where the kernel allows it; required: refuse to start otherwise."
    )
    network: NetworkMode = Field(
        "none", description="none, allowlist (only `allow`, through a proxy) or host (all of the host's network)."
    )
    allow: list[str] = Field(
        default_factory=list, description='Hosts allowlist mode lets out: "host", "*.domain", ":port", "@packages".'
    )
    hosts: dict[str, str] = Field(default_factory=dict, description="Fixed name -> address, used before DNS.")
    ca_file: str | None = Field(
        None, description="More CA certificates (PEM) to trust for allowed hosts: the proxy's and the sandbox's."
    )
    readable_paths: list[str] = Field(
        default_factory=list, description="More paths commands may read (in the hidden home, for instance)."
    )
    writable_paths: list[str] = Field(default_factory=list, description="Directories commands may write to.")
    hidden_paths: list[str] = Field(default_factory=list, description="More paths commands must not see.")
    bwrap: str | None = Field(None, description="The bwrap binary (default: the bundled one, else bwrap on PATH).")
    run_as: str | None = Field(
        None, description="An unprivileged host user that runs (and their files) belong to, when the server is root."
    )

    @field_validator("writable_paths")
    @classmethod
    def _writable_exist(cls, paths: list[str]) -> list[str]:
        for path in paths:
            _existing_dir(path)
        return [str(Path(p).expanduser().resolve()) for p in paths]

    _network = field_validator("network", mode="before")(_network)

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).expanduser().is_file():
            raise ValueError(f"{path!r} is not a file")
        return str(Path(path).expanduser().resolve()) if path is not None else None

    @field_validator("allow")
    @classmethod
    def _expand_presets(cls, entries: list[str]) -> list[str]:
        expanded: list[str] = []
        for entry in entries:
            if entry.startswith("@") and entry not in PRESETS:
                raise ValueError(f"{entry!r} is not a preset; presets: {', '.join(PRESETS)}")
            expanded += PRESETS.get(entry, (entry,))
        return list(dict.fromkeys(expanded))

    @model_validator(mode="after")
    def _policy(self) -> SandboxConfig:
        policy = Policy.parse(self.allow, self.hosts)  # ValueError names the entry
        loopback = [entry.text for entry in policy.allow if entry.host in DIRECT]
        if loopback:  # a run's NO_PROXY: clients go straight to its own loopback, never to the proxy
            raise ValueError(
                f"allow: {loopback[0]!r}: inside a run localhost and 127.0.0.1 are the run's own; to let runs reach "
                'a service on the host\'s loopback, give it a name: hosts = { "host.internal" = "127.0.0.1" } and '
                'allow = ["host.internal:PORT"]'
            )
        return self

    @field_validator("readable_paths")
    @classmethod
    def _readable_exist(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not Path(path).expanduser().exists():
                raise ValueError(f"{path!r} does not exist")
        return [str(Path(p).expanduser().resolve()) for p in paths]

    @field_validator("hidden_paths")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        return [str(Path(p).expanduser().absolute()) for p in paths]


class SecretConfig(BaseModel):
    """A credential added on the way out (allowlist mode): the sandbox gets a placeholder in its variable."""

    model_config = ConfigDict(extra="forbid", strict=True)
    value_env: str = Field(description="The server's environment variable with the real value (the same name inside).")
    hosts: list[str] = Field(min_length=1, description="The hosts it is for (forms of local.sandbox.allow).")
    header: str | None = Field(None, description="Also set this header for those hosts.")
    format: str = Field("{value}", description="The header's value, with {value}.")
    body: bool = Field(False, description="Replace the placeholder in request bodies too.")


class LimitsConfig(BaseModel):
    """Upper bounds for every local session (rlimits always; cgroups where the host lets us make them)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    memory_mb: int = Field(4096, ge=64, description="Memory of a session (per process without cgroups).")
    cpu_s: int = Field(3600, ge=1, description="CPU seconds of a session (launchers: none).")
    processes: int = Field(512, ge=8, description="Processes a session may run at once.")
    file_size_mb: int = Field(4096, ge=1, description="Largest file a session may write.")
    open_files: int = Field(4096, ge=64, description="Open files per process.")
    disk_mb: int = Field(
        1024, ge=1, description="Disk a run's own directory may take while it runs (at most local.max_data_mb)."
    )
    tmp_mb: int = Field(
        512, ge=1, description="Size of each of a sandboxed run's private /tmp, /dev/shm, /run and home."
    )
    files: int = Field(200_000, ge=100, description="Files and directories a run's own directory may hold.")
    min_free_mb: int = Field(
        512, ge=0, description="A run growing its directory is ended when its disk has less free than this (0: off)."
    )
    cgroups: bool = Field(True, description="Use cgroups when the host lets us create them.")
    cgroup_parent: str | None = Field(None, description="A delegated cgroup v2 directory to create session cgroups in.")


class LocalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    routines: dict[str, RoutineConfig] = Field(default_factory=dict)
    launchers: dict[str, LauncherConfig] = Field(default_factory=dict)
    max_timeout_s: float = Field(
        3600, gt=0, description="Largest timeout_s a run may have; one given none gets 60 s, or this if less."
    )
    output_cap_bytes: int = Field(16_384, ge=256, description="Per stream, how much output a tool result holds.")
    on_exit: Literal["keep", "stop"] = Field(
        "keep",
        description="What a server does to the sessions it started when it exits: keep them running (to their "
        "timeout_s; any later server follows them) or stop them.",
    )
    retention_days: float = Field(7, gt=0, description="Finished sessions and events older than this are deleted.")
    max_data_mb: int = Field(1024, ge=1, description="The data directory is kept under this, oldest runs first.")
    max_output_mb: int = Field(64, ge=1, description="Per stream, the output a session may write before it is ended.")
    workspace_max_mb: int = Field(1024, ge=1, description="Largest size of one workspace (writes and runs).")
    max_workspaces: int = Field(100, ge=1, description="How many workspaces each owner may have.")
    workspace_retention_days: float = Field(
        30, gt=0, description="A workspace unused this long is deleted (never one a running session uses)."
    )
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    secrets: dict[str, SecretConfig] = Field(default_factory=dict)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @property
    def allowlist_used(self) -> bool:
        """Does any run have the allow-list network: the sandbox's default, or a routine's or launcher's own?"""
        runs: list[RoutineConfig | LauncherConfig] = [*self.routines.values(), *self.launchers.values()]
        return "allowlist" in {self.sandbox.network, *(run.network for run in runs)}

    @property
    def default_timeout_s(self) -> float:
        """A run's timeout_s when none is given: 60 s, or less when local.max_timeout_s is."""
        return min(DEFAULT_TIMEOUT_S, self.max_timeout_s)

    @model_validator(mode="after")
    def _timeouts(self) -> LocalConfig:
        for name, routine in self.routines.items():
            if "timeout_s" not in routine.model_fields_set:
                routine.timeout_s = self.default_timeout_s
            elif routine.timeout_s > self.max_timeout_s:
                raise ValueError(
                    f"routines.{name}.timeout_s ({routine.timeout_s:g}) is more than max_timeout_s "
                    f"({self.max_timeout_s:g}); lower it, or raise max_timeout_s"
                )
        return self

    @model_validator(mode="after")
    def _allowlist_used(self) -> LocalConfig:
        """What only the allow-list network reads, set where no run has that network, is a mistake to say."""
        if self.allowlist_used:
            return self
        unused = [f"sandbox.{name}" for name in ("allow", "hosts") if getattr(self.sandbox, name)]
        unused += ["secrets"] if self.secrets else []
        if unused:
            them = "it" if len(unused) == 1 else "them"
            raise ValueError(
                f'{" and ".join(unused)}: no run has network = "allowlist" (sandbox.network is '
                f'"{self.sandbox.network}", and no routine or launcher sets it), so nothing reads {them}; set '
                f"sandbox.network = \"allowlist\" (or a routine's or launcher's network), or remove {them}"
            )
        return self
