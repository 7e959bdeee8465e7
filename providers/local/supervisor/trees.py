"""Directory trees a run wrote, measured and removed whatever their shape: any depth (a path past PATH_MAX),
any width, hard links counted once, symlinks never followed.

The walk holds one directory descriptor at a time (it goes back up through ".."), and keeps only the names
still to visit, so neither the depth nor the recursion limit of Python bounds it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class TooMany(Exception):
    """A tree has more entries than the caller would look at."""


def _walk(path: str, on_entry: Callable[[int, os.DirEntry[str]], None], remove: bool) -> None:
    """Visit every entry below `path` (`on_entry(parent_fd, entry)`); with `remove`, unlink each file once
    visited and each directory once emptied (but not `path` itself)."""
    try:
        current = os.open(path, DIRECTORY)
    except OSError:
        return
    names: list[str] = []  # the directories we are in, below `path`
    pending: list[list[str]] = []  # per level: its subdirectories still to visit
    try:
        pending.append(_scan(current, on_entry, remove))
        while pending:
            if pending[-1]:
                name = pending[-1].pop()
                try:
                    below = os.open(name, DIRECTORY, dir_fd=current)
                except OSError:
                    continue
                os.close(current)
                current = below
                names.append(name)
                pending.append(_scan(current, on_entry, remove))
                continue
            pending.pop()
            if not names:
                break
            above = os.open("..", DIRECTORY, dir_fd=current)
            os.close(current)
            current = above
            left = names.pop()
            if remove:
                with contextlib.suppress(OSError):
                    os.rmdir(left, dir_fd=current)
    finally:
        os.close(current)


def _scan(directory: int, on_entry: Callable[[int, os.DirEntry[str]], None], remove: bool) -> list[str]:
    """Visit a directory's entries; its subdirectories' names, to go into."""
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
    uses, and a file with several links once. Raises TooMany past `most` entries."""
    total = [0, 0]
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
    return total[0], total[1]


def tree_bytes(path: str) -> int:
    return tree_size(path)[0]


def remove_tree(path: str) -> None:
    """Remove `path` and everything below it (what cannot be removed is left, silently)."""
    _walk(path, lambda _directory, _entry: None, remove=True)
    with contextlib.suppress(OSError):
        os.rmdir(path)
    with contextlib.suppress(OSError):
        os.unlink(path)  # a file, or a link, where a directory was expected
