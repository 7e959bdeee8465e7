"""What a supervisor is handed: the checked command, the cwd as opened, bwrap's arguments, the caps."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from providers.errors import InvalidInput, ProviderError, Unavailable
from providers.local.ids import PROVIDER
from providers.local.network import Network
from providers.local.processes import child_env
from providers.local.sandbox import Sandbox
from providers.local.supervisor import channel
from providers.local.supervisor import records as sv
from providers.local.tables import SessionRow

STOP_GRACE_S = 2.0
PIPE_BYTES = 65_536  # what a pipe holds: an interactive run's first stdin must fit
DISK_SETTING = "local.limits.disk_mb"
QUIET_START_S = 0.05
MAX_ARGUMENT = 128 * 1024 - 1  # Linux refuses a longer argument or variable (MAX_ARG_STRLEN, with its NUL)


@dataclass(frozen=True)
class SessionSettings:
    output_cap: int
    max_timeout_s: float
    max_output_bytes: int
    on_exit: str
    sandbox: Sandbox | None = None
    disk_bytes: int = 0  # what a run's own directory may take while it runs (0: not measured)
    cgroups: bool = False
    cgroup_parent: str | None = None
    network: Network = field(default_factory=Network)
    serving_lock: str | None = None  # held shared by every serving server (see launchers.py)


@dataclass(frozen=True)
class Cwd:
    """A caller's cwd as opened: its real path, and the descriptor (an unconfined run's supervisor goes there)."""

    path: str
    fd: int


@dataclass(frozen=True)
class WorkDir:
    """A run's own directory (the session's, or a workspace): writable inside the sandbox, and measured while
    the run runs against `max_bytes` (named by `setting` when it is passed)."""

    path: str
    max_bytes: int
    setting: str
    workspace: str | None = None


@dataclass(frozen=True)
class Request:
    env: Mapping[str, str] | None
    stdin: str | None
    interactive: bool
    on_exit: str
    lock_fd: int | None
    place: Cwd | None  # a caller's cwd, as opened
    network: str | None = None  # its network mode, where it differs from the server's
    ports: tuple[int, ...] = ()


def check_start(
    command: str, cwd: str | None, env: Mapping[str, str] | None, timeout_s: float | None, max_timeout_s: float
) -> None:
    """Refuse, as invalid input with what to send instead, what no process could be started with."""
    if not command.strip():
        raise InvalidInput(PROVIDER, "command is empty", hint="Pass a shell command line, e.g. 'echo hello'.")
    texts = {"command": command, "cwd": cwd, **{f"env value {k!r}": v for k, v in (env or {}).items()}}
    for what, value in {**texts, **{f"env name {k!r}": k for k in env or {}}}.items():
        if value is None:
            continue
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise InvalidInput(
                PROVIDER,
                f"{what[:200]} holds text that is not valid Unicode (a lone surrogate)",
                hint="Send valid UTF-8 text; to pass binary data, use base64 in stdin or a file.",
            ) from None
        if "\0" in value:
            raise InvalidInput(
                PROVIDER,
                f"{what} contains a NUL character (\\0), which no command line, variable or path can hold",
                hint="Remove the NUL character; to pass binary data, use stdin or a file.",
            )
        if size > MAX_ARGUMENT:
            raise InvalidInput(
                PROVIDER,
                f"{what} is too large for the operating system to start ({size} bytes; Linux takes "
                f"up to {MAX_ARGUMENT} per argument or variable)",
                hint="Pass a long script on stdin instead, e.g. command='sh' with the script as stdin.",
            )
    for name in env or {}:
        if not name or "=" in name:  # (a NUL in it is refused above)
            raise InvalidInput(
                PROVIDER,
                f"env name {name!r} cannot be a variable name",
                hint="Use names such as MY_VAR: not empty, without '=' or NUL characters.",
            )
    if timeout_s is not None and not 0 < timeout_s <= max_timeout_s:
        raise InvalidInput(
            PROVIDER,
            f"timeout_s must be more than 0 and at most {max_timeout_s:g} (the local.max_timeout_s cap), got "
            f"{timeout_s:g}",
            hint=f"Give timeout_s from 0.001 to {max_timeout_s:g}; for a longer run, the operator can raise "
            "local.max_timeout_s.",
        )


def open_cwd(cwd: str, sandbox: Sandbox | None) -> Cwd:
    """Open a caller's cwd once and judge what was opened (its real path), never the path again. Sandboxed, it
    must be a directory the sandbox shows as it is on the host: not one it hides, and not one in a directory it
    makes private (/tmp, /run, /dev/shm), where binding the host's directory in would bring its sockets too."""
    path = os.path.expanduser(cwd)
    if not os.path.isabs(path):
        raise InvalidInput(
            PROVIDER, f"cwd {cwd!r} is not an absolute path", hint="Give an absolute path, or leave cwd out."
        )
    if sandbox is not None:
        _refuse_unshown(cwd, sandbox.shows(os.path.normpath(path)))  # before any look at it: no hint of what exists
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        why = "is too long" if exc.errno == errno.ENAMETOOLONG else "is not an existing directory"
        raise InvalidInput(
            PROVIDER, f"cwd {cwd[:200]!r} {why}", hint="Give an existing directory, or leave cwd out."
        ) from None
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        if not real.startswith("/"):  # "/x (deleted)", or outside our mount namespace
            raise InvalidInput(PROVIDER, f"cwd {cwd!r} is not an existing directory", hint="Give another one.")
        if sandbox is not None:
            _refuse_unshown(cwd, sandbox.shows(real))
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise InvalidInput(
                PROVIDER, f"cwd {cwd[:200]!r} cannot be used ({exc.strerror})", hint="Give another one."
            ) from None
        raise
    return Cwd(real, fd)


def _refuse_unshown(cwd: str, shown: str) -> None:
    if shown == "hidden":
        raise InvalidInput(
            PROVIDER,
            f"cwd {cwd[:200]!r} is hidden from sandboxed commands (the home directory, the data directory or a "
            "credential location)",
            hint="Leave cwd out for a fresh working directory, use a workspace, or ask the operator to add the "
            "directory to local.sandbox readable_paths or writable_paths.",
        )
    if shown == "private":
        raise InvalidInput(
            PROVIDER,
            f"cwd {cwd[:200]!r} is in a directory sandboxed commands have a private one of (/tmp, /run, /dev/shm)",
            hint="Use a workspace (execRun workspace=NAME) to keep files across runs, or ask the operator to add "
            "the directory to local.sandbox writable_paths or readable_paths.",
        )


def build_job(
    settings: SessionSettings, request: Request, row: SessionRow, directory: Path, workdir: WorkDir | None, quiet: bool
) -> tuple[dict[str, Any], list[int]]:
    """The message a supervisor gets for the session `row` (its directory; `workdir`: the run's own directory,
    None in a caller's cwd), and the descriptors that go with it. With `quiet`, it says the command started only
    if it is still running after a moment (a short waited-for run costs one message, not two)."""
    if request.stdin:
        (directory / sv.STDIN).write_text(request.stdin, encoding="utf-8")
    sandbox, place, cwd = settings.sandbox, request.place, row.cwd
    job_env = child_env(request.env)
    fds = {"lock": request.lock_fd} if request.lock_fd is not None else {}
    if place is not None and sandbox is None:  # unconfined: the supervisor goes there
        fds["cwd"] = place.fd
    argv, bwrap = ["/bin/sh", "-c", row.command], None
    network, options, net_env, prefix = settings.network.for_run(request.network, list(request.ports), sandbox)
    if sandbox is not None:
        workdir_path = cwd if place is None else None
        share = network["mode"] == "host"
        bwrap, argv = sandbox.argv(
            [*(prefix or []), *argv], cwd, job_env | net_env, workdir=workdir_path, share_net=share, more=options
        )
    disk = None
    if workdir is not None and (workdir.max_bytes or workdir.workspace is not None):  # a workspace's 0: no room
        disk = {"path": workdir.path, "max_bytes": workdir.max_bytes, "setting": workdir.setting}
        disk["at_end"] = workdir.workspace is None  # a workspace holds what runs before left: see Monitor.final
    message: dict[str, Any] = {
        "id": row.id,
        "argv": argv,
        "bwrap": bwrap,
        "fds": list(fds),
        "sandboxed": sandbox is not None,
        "env": job_env if sandbox is None else {},  # a sandbox's variables are in its argv, set inside it
        "stdin": bool(request.stdin),
        "interactive": request.interactive,
        "timeout_s": row.timeout_s,
        "on_server_exit": request.on_exit,
        "grace_s": STOP_GRACE_S,
        "max_output_bytes": settings.max_output_bytes,
        "disk": disk,
        "network": network if network["mode"] != "none" or network["ports"] else None,
        # a launcher's run outlives its server while another serving server holds this lock
        "serving": settings.serving_lock if row.origin.startswith("launcher:") else None,
        "quiet_start_s": QUIET_START_S if quiet else 0,
        "record": {
            "command": row.command,
            "cwd": cwd,
            "origin": row.origin,
            "owner": row.owner,
            "principal": row.principal,
            "timeout_s": row.timeout_s,
            "on_server_exit": request.on_exit,
            "interactive": request.interactive,
            "workspace": workdir.workspace if workdir is not None else None,
            "network": network["mode"],
        },
    }
    if len(json.dumps(message, separators=(",", ":"))) > channel.INLINE_JOB_BYTES:  # (escaped: ASCII)
        sv.write_json(str(directory / sv.REQUEST), message)  # too large for one socket message
        message = {"file": sv.REQUEST, "id": row.id}
    return message, list(fds.values())


def spawn_error(code: int, message: str) -> ProviderError:
    """The supervisor could not start the command (it removed the session's directory and is ready for more)."""
    error: ProviderError
    if code == errno.E2BIG:
        error = InvalidInput(
            PROVIDER,
            "the command (or env) is too large for the operating system to start (Linux takes up to 128 KiB "
            "per argument)",
            hint="Pass a long script on stdin instead, e.g. command='sh' with the script as stdin.",
        )
    else:
        hint = "Free space in RUNTIMES_MCP_DATA_DIR, then retry." if code == errno.ENOSPC else "Check the machine."
        error = Unavailable(PROVIDER, f"could not start the command: {message}", hint=hint)
    setattr(error, "supervisor_intact", True)  # noqa: B010 - a mark read with getattr, not a field
    return error
