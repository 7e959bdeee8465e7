"""Directory trees a run wrote, measured and removed whatever their shape: any depth (a path past PATH_MAX),
any width, hard links counted once, symlinks never followed.

The walk holds one directory descriptor at a time (it goes back up through ".."), and keeps only the names
still to visit, so neither the depth nor the recursion limit of Python bounds it. A run may still be moving
directories about as the walk goes (or did, into a workspace being deleted): ".." is then another directory
than the one the walk came down from, so each step up is checked against that one's identity, and a walk that
finds the tree moved under it starts again from the top, never going on from wherever ".." led.

A directory its owner cannot read or search (a run's `chmod 300`) would hide what it holds from the limits and
from removal: the server is its owner (or root), so it is opened up to u+rwx when met (and, when only
measured, given its mode back when left).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
ATTEMPTS = 3  # walks of a tree that keeps moving under them, before giving up on it


class TooMany(Exception):
    """A tree has more entries than the caller would look at."""


class Moved(Exception):
    """A directory of the tree was moved while the walk was in it: ".." is no longer where the walk came from."""

    def __init__(self, path: str, counted: tuple[int, int] = (0, 0)) -> None:
        super().__init__(path)
        self.counted = counted


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _open_directory(name: str, parent: int | None = None) -> tuple[int, int | None]:
    """`name` (below `parent`) opened as a directory, made readable and searchable by its owner if need be; and
    its mode before, when it was changed."""
    try:
        return os.open(name, DIRECTORY, dir_fd=parent), None
    except PermissionError:
        held = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            mode = stat.S_IMODE(os.fstat(held).st_mode)
            os.chmod(f"/proc/self/fd/{held}", mode | stat.S_IRWXU)
            return os.open(f"/proc/self/fd/{held}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), mode  # that one
        finally:
            os.close(held)


def _walk(path: str, on_entry: Callable[[int, os.DirEntry[str]], None], remove: bool) -> None:
    """Visit every entry below `path` (`on_entry(parent_fd, entry)`); with `remove`, unlink each file once
    visited and each directory once emptied (but not `path` itself). Raises Moved (see the module's doc).
    Measuring, a directory opened up gets its mode back as the walk leaves it: the run may be testing it."""
    try:
        current, mode = _open_directory(path)
    except OSError:
        return
    modes = [mode]  # per level: the mode to put back on leaving it (None: unchanged)
    names: list[str] = []  # the directories we are in, below `path`
    above: list[tuple[int, int]] = []  # the identity of each directory we came down from
    pending: list[list[str]] = []  # per level: its subdirectories still to visit
    try:
        pending.append(_scan(current, on_entry, remove))
        while pending:
            if pending[-1]:
                name = pending[-1].pop()
                try:
                    below, mode = _open_directory(name, current)
                except OSError:
                    continue
                above.append(_identity(current))
                os.close(current)
                current = below
                names.append(name)
                modes.append(mode)
                pending.append(_scan(current, on_entry, remove))
                continue
            pending.pop()
            if not names:
                break
            up = os.open("..", DIRECTORY, dir_fd=current)
            if _identity(up) != above.pop():  # before anything is done to it: it is not ours
                os.close(up)
                raise Moved(path)
            if (mode := modes.pop()) is not None and not remove:
                os.fchmod(current, mode)
            os.close(current)
            current = up
            left = names.pop()
            if remove:
                with contextlib.suppress(OSError):
                    os.rmdir(left, dir_fd=current)
    finally:
        if modes and (mode := modes[-1]) is not None and not remove:
            with contextlib.suppress(OSError):
                os.fchmod(current, mode)
        os.close(current)


def _scan(directory: int, on_entry: Callable[[int, os.DirEntry[str]], None], remove: bool) -> list[str]:
    """Visit a directory's entries; its subdirectories' names, to go into."""
    if remove and stat.S_IMODE(os.fstat(directory).st_mode) & stat.S_IRWXU != stat.S_IRWXU:
        os.fchmod(directory, stat.S_IRWXU)  # readable is not enough to empty it
    subdirectories = []
    with os.scandir(directory) as entries:
        for entry in entries:
            on_entry(directory, entry)
            try:
                is_directory = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_directory:
                subdirectories.append(entry.name)
            elif remove:
                with contextlib.suppress(OSError):
                    os.unlink(entry.name, dir_fd=directory)
    return subdirectories


def tree_size(path: str, most: int | None = None) -> tuple[int, int]:
    """(bytes on disk, entries) of the tree at `path`: allocated blocks, so a sparse file counts as what it
    uses, and a file with several links once. Raises TooMany past `most` entries, and Moved (with what it
    counted) when the tree kept moving under every walk: a run that moves its directories as they are measured
    could otherwise choose what is counted."""
    counted = (0, 0)
    for _ in range(ATTEMPTS):
        total = [0, 0]
        try:
            _count(path, most, total)
        except Moved:
            counted = max(counted, (total[0], total[1]))
            continue
        return total[0], total[1]
    raise Moved(path, counted)


def _count(path: str, most: int | None, total: list[int]) -> None:
    linked: set[tuple[int, int]] = set()

    def count(_: int, entry: os.DirEntry[str]) -> None:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            return
        total[1] += 1
        if most is not None and total[1] > most:
            raise TooMany(f"more than {most} files")
        if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) in linked:
                return
            linked.add((info.st_dev, info.st_ino))
        total[0] += info.st_blocks * 512

    with contextlib.suppress(OSError):
        total[0] += os.stat(path).st_blocks * 512  # the root's own blocks
    _walk(path, count, remove=False)


def tree_bytes(path: str) -> int:
    """tree_size's bytes; of a tree that kept moving, as many as the walks saw."""
    try:
        return tree_size(path)[0]
    except Moved as moved:
        return moved.counted[0]


def remove_tree(path: str) -> bool:
    """Remove `path` and everything below it; False when some of it is still there (what cannot be removed is
    left)."""
    for _ in range(ATTEMPTS):
        with contextlib.suppress(Moved):
            _walk(path, lambda _directory, _entry: None, remove=True)
            break
    with contextlib.suppress(OSError):
        os.rmdir(path)
    with contextlib.suppress(OSError):
        os.unlink(path)  # a file, or a link, where a directory was expected
    return not os.path.lexists(path)
