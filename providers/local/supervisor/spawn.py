"""Starting a run's process: in a process group of its own (a stop reaches everything it starts), in the
supervisor's cgroup, with exactly the descriptors it is given, as the operator's `run_as` user if one is set.

posix_spawn (vfork and exec, no Python in the child) is the usual way. Changing user needs code between fork
and exec, so a run as another user is forked (about half a millisecond more).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource

from .limits import Cgroup

HIGH_FD = 64  # descriptors are moved above this first, so that placing one never overwrites another


Rlimits = list[tuple[int, tuple[int, int]]]


def spawn(
    argv: list[str],
    env: dict[str, str],
    fds: list[int],
    cgroup: Cgroup | None,
    user: list[int] | None,
    rlimits: Rlimits,
) -> int:
    """Start `argv` with `fds` as its descriptors 0, 1, 2, 3… and no other (everything the supervisor holds
    is close-on-exec), with `rlimits` of its own. `user`: [uid, gid] to run as. The given descriptors are
    closed, whatever happens."""
    try:
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD) for fd in fds]
    finally:
        for fd in fds:
            os.close(fd)
    try:
        if user is not None:
            return _fork_exec(argv, env, high, cgroup, user, rlimits)
        # The child is born in the cgroup and with the run's soft rlimits; the supervisor leaves both at once.
        # (Only soft limits: a hard one could not be raised back. A run that raises its own is still ended
        # by the supervisor's watch, which counts what the kernel does not.)
        if cgroup is not None:
            cgroup.move(os.getpid(), inside=True)
        ours = [(which, resource.getrlimit(which)) for which, _ in rlimits]
        try:
            for (which, (soft, _)), (_, (_, hard)) in zip(rlimits, ours, strict=True):
                with contextlib.suppress(OSError, ValueError):
                    resource.setrlimit(which, (soft, hard))
            return os.posix_spawn(
                argv[0],
                argv,
                env,
                file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(high)],
                setpgroup=0,
            )
        finally:
            for which, limit in ours:
                with contextlib.suppress(OSError, ValueError):
                    resource.setrlimit(which, limit)
            if cgroup is not None:
                cgroup.move(os.getpid(), inside=False)
    finally:
        for fd in high:
            os.close(fd)


def _fork_exec(
    argv: list[str], env: dict[str, str], fds: list[int], cgroup: Cgroup | None, user: list[int], rlimits: Rlimits
) -> int:
    errors_r, errors_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: only system calls from here to exec
        try:
            os.setpgid(0, 0)
            if cgroup is not None:
                cgroup.move(os.getpid(), inside=True)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for which, limit in rlimits:
                resource.setrlimit(which, limit)
            uid, gid = user
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.execve(argv[0], argv, env)
        except OSError as exc:
            os.write(errors_w, str(exc.errno or 0).encode())
        finally:
            os._exit(127)
    os.close(errors_w)
    try:
        said = os.read(errors_r, 32)
    finally:
        os.close(errors_r)
    if said:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        code = int(said)
        raise OSError(code, os.strerror(code))
    return pid


def spawn_sandbox(
    options: list[str],
    command: list[str],
    fds: list[int],
    cgroup: Cgroup | None,
    user: list[int] | None,
    rlimits: Rlimits,
) -> int:
    """Start bubblewrap (`options[0]`) with its `options` and `command`, on the host with an empty environment:
    what the command is to get is set inside the sandbox by the options. They reach bwrap through a descriptor
    placed after `fds` (`--args`), not its command line, which every user of the host can read."""
    args = os.memfd_create("bwrap-args", os.MFD_CLOEXEC)
    try:
        data = memoryview(b"".join(arg.encode() + b"\0" for arg in options[1:]))
        while data:
            data = data[os.write(args, data) :]
        os.lseek(args, 0, os.SEEK_SET)
    except OSError:
        os.close(args)
        for fd in fds:
            os.close(fd)
        raise
    bwrap = [options[0], "--args", str(len(fds)), "--", *command]
    return spawn(bwrap, {}, [*fds, args], cgroup, user, rlimits)
