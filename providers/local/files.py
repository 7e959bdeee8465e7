"""Files beneath a root directory, whatever the path holds: `..`, absolute links, a link swapped in meanwhile.

Every path is resolved by the kernel beneath the root's descriptor (openat2 with RESOLVE_BENEATH: a symlink
or `..` that would leave the root fails the call) and the file is used through what was opened, never
looked up again by name. Where the kernel has no openat2 (before Linux 5.6), each component is opened in
turn with O_NOFOLLOW beneath the one before, so no symlink is followed at all.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import hashlib
import itertools
import os
import secrets
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

SYS_OPENAT2 = 437  # the same number on every architecture that has it (x86_64, aarch64, ...)
RESOLVE_NO_MAGICLINKS, RESOLVE_BENEATH = 0x02, 0x08
AT_FDCWD, RENAME_NOREPLACE = -100, 1
_libc = ctypes.CDLL(None, use_errno=True)
_openat2_works: bool | None = None


def rename_no_replace(source: str, target: str) -> None:
    """os.rename, but what is at `target` is never replaced (FileExistsError)."""
    if _libc.renameat2(AT_FDCWD, source.encode(), AT_FDCWD, target.encode(), RENAME_NOREPLACE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


class Outside(Exception):
    """The path leads out of the root (or through a link the fallback does not follow)."""


def open_beneath(root: int, path: str, flags: int, mode: int = 0) -> int:
    """A descriptor for `path` (relative) beneath the directory `root`. Raises Outside, or OSError."""
    global _openat2_works
    if _openat2_works is not False:
        how = struct.pack("QQQ", flags | os.O_CLOEXEC, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(SYS_OPENAT2, root, path.encode(), how, len(how))
        if fd >= 0:
            _openat2_works = True
            return int(fd)
        code = ctypes.get_errno()
        if code == errno.EXDEV:
            raise Outside(path)
        if code != errno.ENOSYS or _openat2_works:
            raise OSError(code, os.strerror(code), path)
        _openat2_works = False
    return _walk(root, path, flags, mode)


def _walk(root: int, path: str, flags: int, mode: int) -> int:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Outside(path)
    current = os.dup(root)
    try:
        for part in parts[:-1]:
            following = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current = following
        if not parts:
            return os.open(".", flags | os.O_CLOEXEC, dir_fd=current)
        try:
            return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=current)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Outside(path) from None
            raise
    finally:
        os.close(current)


def make_dirs(root: int, path: str, owner: tuple[int, int] | None = None) -> int:
    """Open the directory `path` beneath `root`, making what is missing (0755, given to `owner`)."""
    current = os.dup(root)
    try:
        for part in [p for p in path.split("/") if p not in ("", ".")]:
            try:
                following = open_beneath(current, part, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):  # made meanwhile by someone else: use theirs
                    os.mkdir(part, 0o755, dir_fd=current)
                    if owner is not None:
                        os.chown(part, *owner, dir_fd=current, follow_symlinks=False)
                following = open_beneath(current, part, os.O_RDONLY | os.O_DIRECTORY)
            os.close(current)
            current = following
        return current
    except BaseException:
        os.close(current)
        raise


def write_atomically(
    root: int, path: str, data: bytes, mode: int, owner: tuple[int, int] | None = None
) -> tuple[int, int | None]:
    """Write `data` to `path` beneath `root` through a temporary file renamed over it, so that a reader sees
    the old file or the new one, never a part; (bytes written, the size of the file it replaced or None)."""
    parent, _, name = path.rstrip("/").rpartition("/")
    if name in ("", ".", ".."):
        raise IsADirectoryError(errno.EISDIR, "a directory, not a file", path)
    directory = make_dirs(root, parent, owner)
    try:
        old: int | None = None
        old_mtime = 0.0
        with contextlib.suppress(FileNotFoundError):
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "a directory, not a file", path)
            old = info.st_size if stat.S_ISREG(info.st_mode) else 0
            old_mtime = info.st_mtime
        temporary = f".{name[:100]}.rtmcp-{secrets.token_hex(4)}"
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=directory
        )
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode & 0o777)  # never setuid, setgid or sticky
            if int(time.time()) <= int(old_mtime):
                # Tools that judge a file by its size and mtime in whole seconds (Python's .pyc, make) would
                # take a file rewritten within the same second, to the same size, for the old one.
                os.utime(fd, (old_mtime + 1, old_mtime + 1))
            if owner is not None:
                os.fchown(fd, *owner)
            os.close(fd)
            fd = -1
            os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=directory)
            raise
        return len(data), old
    finally:
        os.close(directory)


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the listed directory's root
    type: str  # file, directory, symlink or other
    size: int
    mtime: float


def list_beneath(root: int, path: str, depth: int, most: int) -> tuple[list[Entry], bool]:
    """Entries below `path` (beneath `root`) down to `depth` levels, sorted; at most `most` (True: cut)."""
    top = path.strip("/") in ("", ".")
    start = os.dup(root) if top else open_beneath(root, path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = list(itertools.islice(_scan(start, "", depth), most + 1))  # one more tells it was cut
    finally:
        os.close(start)
    return sorted(found[:most], key=lambda e: e.path), len(found) > most


KINDS = {stat.S_IFDIR: "directory", stat.S_IFREG: "file", stat.S_IFLNK: "symlink"}


def _scan(directory: int, prefix: str, depth: int) -> Iterator[Entry]:
    with os.scandir(directory) as entries:
        children = sorted(entries, key=lambda e: e.name)
    for child in children:
        info = child.stat(follow_symlinks=False)
        kind = KINDS.get(stat.S_IFMT(info.st_mode), "other")
        relative = f"{prefix}{child.name}"
        yield Entry(relative, kind, info.st_size if kind == "file" else 0, info.st_mtime)
        if kind == "directory" and depth > 1:
            try:
                below = os.open(
                    child.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory
                )
            except OSError:
                continue
            try:
                yield from _scan(below, relative + "/", depth - 1)
            finally:
                os.close(below)


# A file read page by page is hashed once: its digest is kept while it stays the same file, unchanged.
_digests: dict[tuple[int, int, int, int], str] = {}


def read_page(fd: int, offset: int, length: int) -> tuple[bytes, int, str]:
    """(the bytes asked for, the file's size, the whole file's sha256), from one open descriptor."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "not a regular file")
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    digest = _digests.get(key)
    if digest is None:
        hasher = hashlib.sha256()
        while block := os.read(fd, 1024 * 1024):
            hasher.update(block)
        digest = hasher.hexdigest()
        if len(_digests) > 256:
            _digests.clear()
        _digests[key] = digest
    return os.pread(fd, length, offset), info.st_size, digest


def as_text(chunk: bytes, more: bool) -> tuple[str, str, bytes]:
    """(content, encoding, the bytes it holds): UTF-8 text when the bytes are, cut before a character split at
    the end of a page; base64 otherwise."""
    for cut in range(4 if more else 1):
        piece = chunk[: len(chunk) - cut] if cut else chunk
        try:
            return piece.decode("utf-8"), "utf-8", piece
        except UnicodeDecodeError:
            continue
    return base64.b64encode(chunk).decode(), "base64", chunk
