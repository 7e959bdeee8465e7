"""`local.sandbox.run_as`: the unprivileged host user a root server's runs belong to.

A server started by hand as root runs its commands as root, so what they write (setuid binaries in a shared
writable path included) belongs to root on the host. With `run_as`, each command is started as that user, and
its session directory is made for it. The user must be able to reach the data directory's session
directories (a root server's default data directory, under a 0700 /root, is out of its reach) and read the
toolchains it is to use.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

ROOT_WARNING = (
    "runtimes-mcp: this server runs as root, and so do the commands it runs (what they write belongs to root); "
    'set local.sandbox.run_as = "USER" to run them as an unprivileged user'
)


class RunAsError(Exception):
    """A `run_as` set-up that cannot work; the message says why, in one line."""


@dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int

    def ids(self) -> list[int]:
        return [self.uid, self.gid]


def resolve(name: str | None) -> RunAs | None:
    if name is None:
        return None
    if os.geteuid() != 0:
        raise RunAsError(
            f"local.sandbox.run_as = {name!r} needs a server started as root to change user (this one runs as uid "
            f"{os.geteuid()}, and its commands run as that user already): remove run_as"
        )
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise RunAsError(f"local.sandbox.run_as = {name!r}: there is no such user on this host") from None
    if entry.pw_uid == 0:
        raise RunAsError(f"local.sandbox.run_as = {name!r} is root; name an unprivileged user")
    return RunAs(name, entry.pw_uid, entry.pw_gid)


def can_pass(user: RunAs, info: os.stat_result) -> bool:
    """May `user` (no supplementary groups: runs get none) pass through a directory with this status?"""
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == user.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def can_reach(user: RunAs, path: Path) -> bool:
    try:
        return all(can_pass(user, parent.stat()) for parent in path.parents)
    except OSError:
        return False


def open_the_way(user: RunAs, data_dir: Path) -> None:
    """Let `user` reach its session directories: the data directory and `sessions` become passable (0711: no
    listing), and every directory above must be already; else RunAsError says which is not."""
    data_dir = data_dir.resolve()
    for parent in reversed(data_dir.parents):
        info = parent.stat()
        if not can_pass(user, info):
            raise RunAsError(
                f"local.sandbox.run_as = {user.name!r}: that user cannot reach the data directory {data_dir} "
                f"({parent} is mode {stat.S_IMODE(info.st_mode):o}, owner uid {info.st_uid}); set "
                f"RUNTIMES_MCP_DATA_DIR to a directory it can reach, e.g. /var/lib/runtimes-mcp"
            )
    for directory in (data_dir, data_dir / "sessions", data_dir / "workspaces", data_dir / "workspaces" / "local"):
        directory.mkdir(mode=0o711, exist_ok=True)
        directory.chmod(0o711)
