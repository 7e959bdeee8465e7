"""Workspaces: named, persistent, writable directories that local runs share, and the files in them.

A workspace is `DATA_DIR/workspaces/local/NAME/`, made on first use. A run given `workspace` works in it, with
the sandbox's usual profile, and what it writes there is there for the next run, after a restart, and for
every server on the data directory. Its record (`.meta/NAME.json`: made, last used, size) is small and
rewritten whole. Several runs may use one workspace at once, as two shells may share a directory.

Files go in and out beneath the workspace's directory only (providers/local/files.py), whatever a path holds.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import posixpath
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import anyio.to_thread

from providers.errors import InvalidInput, NotFound
from providers.local.files import (
    Outside,
    as_text,
    list_beneath,
    open_beneath,
    read_page,
    write_atomically,
)
from providers.local.ids import PROVIDER
from providers.local.supervisor.trees import remove_tree, tree_bytes
from providers.models import (
    FileContent,
    FileEntry,
    FileList,
    FileWritten,
    WorkspaceDeleted,
    WorkspaceInfo,
    WorkspaceList,
)
from providers.values import iso_time

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
OWNER = "local"  # the owner of every workspace until sign-in names owners
READ_DEFAULT = 64 * 1024  # bytes a readFile returns unless asked for more
READ_MOST = 4 * 1024 * 1024
LIST_MOST = 1000
MIB = 1024 * 1024
Busy = Callable[[str], Awaitable[bool]]  # is a running session working in this directory?


class Workspaces:
    def __init__(
        self,
        data_dir: Path,
        *,
        max_mb: int,
        max_count: int,
        retention_days: float,
        busy: Busy,
        max_data_mb: int | None = None,
        owner_ids: tuple[int, int] | None = None,
    ) -> None:
        self.root = data_dir / "workspaces" / OWNER
        self.meta = data_dir / "workspaces" / OWNER / ".meta"
        self.max_bytes = max_mb * MIB
        self.max_mb, self.max_count = max_mb, max_count
        self.max_data_bytes = max_data_mb * MIB if max_data_mb else None  # all workspaces count toward it
        self.retention_s = retention_days * 86_400
        self.busy = busy
        self.owner_ids = owner_ids  # local.sandbox.run_as: what runs and writes make belongs to that user

    # --- the workspaces -------------------------------------------------------------------------------
    def check_name(self, name: str) -> str:
        if not NAME.fullmatch(name) or name in (".", ".."):
            raise InvalidInput(
                PROVIDER,
                f"workspace {name[:80]!r} is not a workspace name",
                hint="Use letters, digits, '-', '_' and '.', starting with a letter or digit, up to 64 characters.",
            )
        return name

    def path(self, name: str) -> Path:
        return self.root / self.check_name(name)

    def name_of(self, directory: str) -> str | None:
        """The workspace a run's directory is, if it is one."""
        path = Path(directory)
        return path.name if path.parent == self.root and NAME.fullmatch(path.name) else None

    def ensure(self, name: str) -> Path:
        """The workspace's directory, made on first use (within local.max_workspaces); marked as used now."""
        path = self.path(name)
        if not path.is_dir():
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            count = sum(1 for entry in os.scandir(self.root) if entry.is_dir() and not entry.name.startswith("."))
            if count >= self.max_count:
                raise InvalidInput(
                    PROVIDER,
                    f"there are {count} workspaces already, the most local.max_workspaces={self.max_count} allows",
                    hint="Reuse one (listWorkspaces) or delete one you no longer need (deleteWorkspace).",
                )
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)
                if self.owner_ids is not None:
                    os.chown(path, *self.owner_ids)
            self._save(name, created_at=time.time())
        self._save(name, last_used_at=time.time())
        return path

    def _record(self, name: str) -> dict[str, float]:
        try:
            data = json.loads((self.meta / f"{name}.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, name: str, **values: float) -> None:
        """Update the workspace's record (a small file, written to a temporary name and renamed over)."""
        with contextlib.suppress(OSError):
            self.meta.mkdir(parents=True, exist_ok=True, mode=0o700)
            record = self._record(name) | values
            temporary = self.meta / f".{name}.{os.getpid()}.tmp"
            temporary.write_text(json.dumps(record))
            temporary.replace(self.meta / f"{name}.json")

    async def measure(self, name: str) -> int:
        """Measure a workspace (after a run in it ended): its record keeps the size."""
        size = await anyio.to_thread.run_sync(tree_bytes, str(self.path(name)))
        self._save(name, size_bytes=size, last_used_at=time.time())
        return size

    async def list_workspaces(self) -> WorkspaceList:
        names = sorted(
            entry.name for entry in (os.scandir(self.root) if self.root.is_dir() else []) if NAME.fullmatch(entry.name)
        )
        infos = []
        for name in names:
            record = self._record(name)
            infos.append(
                WorkspaceInfo(
                    name=name,
                    size_bytes=int(record.get("size_bytes", 0)),
                    created_at=_iso(record.get("created_at")),
                    last_used_at=_iso(record.get("last_used_at")),
                    in_use=await self.busy(str(self.path(name))),
                    path=str(self.path(name)),
                )
            )
        return WorkspaceList(
            provider=PROVIDER, workspaces=infos, count=len(infos), max_workspaces=self.max_count, max_mb=self.max_mb
        )

    async def delete_workspace(self, workspace: str) -> WorkspaceDeleted:
        path = self.path(workspace)
        if not path.is_dir():
            return WorkspaceDeleted(provider=PROVIDER, workspace=workspace, deleted=False, message="no such workspace")
        if await self.busy(str(path)):
            raise InvalidInput(
                PROVIDER,
                f"workspace {workspace!r} is in use by a running session",
                hint="Stop its sessions first (listSessions status=running, stopSession), then delete it.",
            )
        await anyio.to_thread.run_sync(remove_tree, str(path))
        with contextlib.suppress(OSError):
            (self.meta / f"{workspace}.json").unlink()
        return WorkspaceDeleted(provider=PROVIDER, workspace=workspace, deleted=True)

    async def prune(self) -> list[str]:
        """Delete the workspaces unused for local.workspace_retention_days (never one in use)."""
        cutoff = time.time() - self.retention_s
        deleted = []
        for info in (await self.list_workspaces()).workspaces:
            used = self._record(info.name).get("last_used_at") or self._record(info.name).get("created_at") or 0
            if used < cutoff and not info.in_use:
                await self.delete_workspace(info.name)
                deleted.append(info.name)
        return deleted

    def total_bytes(self) -> int:
        """What all workspaces take, as last measured (retention counts it toward local.max_data_mb)."""
        names = (e.name for e in (os.scandir(self.root) if self.root.is_dir() else []) if NAME.fullmatch(e.name))
        return sum(int(self._record(name).get("size_bytes", 0)) for name in names)

    # --- files ----------------------------------------------------------------------------------------
    def _open(self, workspace: str) -> int:
        path = self.path(workspace)
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(
                PROVIDER,
                f"no workspace {workspace!r}",
                hint="Write a file into it (writeFile) or run in it (execRun workspace=...) to make it.",
            ) from None

    def relative(self, workspace: str, path: str) -> str:
        """`path` relative to the workspace: an absolute path inside it is taken as such; one outside is refused."""
        if "\0" in path:
            raise InvalidInput(PROVIDER, "path contains a NUL character", hint="Remove it.")
        if path.startswith("/"):
            root = str(self.path(workspace))
            if path != root and not path.startswith(root + "/"):
                raise _outside(workspace, path)
            path = path[len(root) :]
        relative = posixpath.normpath(path.strip("/") or ".")
        if relative == ".." or relative.startswith("../"):
            raise _outside(workspace, path)  # before any directory of it is made
        return relative

    async def write_file(
        self, workspace: str, path: str, content: str, encoding: str | None = None, mode: int | None = None
    ) -> FileWritten:
        data = _decode(content, encoding or "utf-8")
        self.ensure(workspace)
        relative = self.relative(workspace, path)
        root = self._open(workspace)
        try:
            with _path_errors(workspace, path, "file"):
                written, old = await anyio.to_thread.run_sync(
                    lambda: self._write(workspace, root, relative, data, 0o644 if mode is None else mode)
                )
        finally:
            os.close(root)
        return FileWritten(
            provider=PROVIDER,
            workspace=workspace,
            path=relative,
            size=written,
            sha256=hashlib.sha256(data).hexdigest(),
            replaced=old is not None,
            uri=uri_of(workspace, relative),
        )

    def _write(self, workspace: str, root: int, relative: str, data: bytes, mode: int) -> tuple[int, int | None]:
        """Check the bounds and write, holding the workspace's lock: writes at once (from any server) are
        counted one after the other, not each against the size before all of them."""
        self.meta.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = os.open(self.meta / f"{workspace}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = int(self._record(workspace).get("size_bytes", 0))
            self._check_room(workspace, used, len(data))
            written, old = write_atomically(root, relative, data, mode, self.owner_ids)
            self._save(workspace, size_bytes=max(0, used + written - (old or 0)), last_used_at=time.time())
            return written, old
        finally:
            os.close(lock)

    def _check_room(self, workspace: str, used: int, more: int) -> None:
        if used + more > self.max_bytes:
            raise InvalidInput(
                PROVIDER,
                f"workspace {workspace!r} would pass local.workspace_max_mb={self.max_mb} ({used // MIB} MiB used, "
                f"{more} bytes more)",
                hint="Delete files you no longer need (execRun rm ...), or write less.",
            )
        if self.max_data_bytes is not None and self.total_bytes() + more > self.max_data_bytes:
            raise InvalidInput(
                PROVIDER,
                f"the workspaces would pass local.max_data_mb={self.max_data_bytes // MIB} "
                f"({self.total_bytes() // MIB} MiB in all workspaces, {more} bytes more)",
                hint="Delete a workspace you no longer need (deleteWorkspace), or ask the operator to raise it.",
            )

    def run_room(self, workspace: str) -> tuple[int, str]:
        """How large a run may make the workspace, and the setting that says so: local.workspace_max_mb, or
        less when the other workspaces leave less of local.max_data_mb."""
        if self.max_data_bytes is None:
            return self.max_bytes, "local.workspace_max_mb"
        others = self.total_bytes() - int(self._record(workspace).get("size_bytes", 0))
        room = max(0, self.max_data_bytes - others)
        return (
            (self.max_bytes, "local.workspace_max_mb")
            if self.max_bytes <= room
            else (room, "local.max_data_mb, less the other workspaces")
        )

    async def read_file(
        self, workspace: str, path: str, offset: int | None = None, length: int | None = None
    ) -> FileContent:
        offset, length = offset or 0, READ_DEFAULT if length is None else length
        if offset < 0 or not 1 <= length <= READ_MOST:
            raise InvalidInput(
                PROVIDER, f"offset must be >= 0 and length 1 to {READ_MOST}", hint="Read large files in pages."
            )
        relative = self.relative(workspace, path)
        root = self._open(workspace)
        try:
            with _path_errors(workspace, path, "file"):
                fd = open_beneath(root, relative, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the server
                try:
                    chunk, size, digest = await anyio.to_thread.run_sync(read_page, fd, offset, length)
                finally:
                    os.close(fd)
        finally:
            os.close(root)
        text, encoding, chunk = as_text(chunk, more=offset + len(chunk) < size)
        end = offset + len(chunk)
        self._save(workspace, last_used_at=time.time())
        return FileContent(
            provider=PROVIDER,
            workspace=workspace,
            path=relative,
            content=text,
            encoding=encoding,
            offset=offset,
            size=size,
            sha256=digest,
            next_offset=end if end < size else None,
            uri=uri_of(workspace, relative),
        )

    async def list_files(self, workspace: str, path: str | None = None, depth: int | None = None) -> FileList:
        depth = 1 if depth is None else depth
        if not 1 <= depth <= 10:
            raise InvalidInput(PROVIDER, f"depth must be 1 to 10, got {depth}", hint="List deeper in steps.")
        relative = self.relative(workspace, path or ".")
        root = self._open(workspace)
        try:
            with _path_errors(workspace, path or ".", "directory"):
                entries, cut = await anyio.to_thread.run_sync(list_beneath, root, relative, depth, LIST_MOST)
        finally:
            os.close(root)
        return FileList(
            provider=PROVIDER,
            workspace=workspace,
            path=relative,
            entries=[FileEntry(path=e.path, type=e.type, size=e.size, mtime=iso_time(e.mtime)) for e in entries],
            count=len(entries),
            truncated=cut,
        )


def _decode(content: str, encoding: str) -> bytes:
    if encoding == "utf-8":
        return content.encode("utf-8", "replace")
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                PROVIDER, "content is not valid base64", hint='Send base64 (RFC 4648) or use encoding "utf-8".'
            ) from None
    raise InvalidInput(PROVIDER, f"encoding {encoding!r} is not known", hint='Use "utf-8" or "base64".')


def uri_of(workspace: str, relative: str) -> str:
    return f"workspace://{workspace}/{quote(relative, safe='/')}"


@contextlib.contextmanager
def _path_errors(workspace: str, path: str, expected: Literal["file", "directory"]) -> Iterator[None]:
    """What went wrong with a path, as the agent's error (the lookup is the kernel's: see files.py)."""
    try:
        yield
    except Outside:
        raise _outside(workspace, path) from None
    except FileNotFoundError:
        hint = "listFiles shows what is there." if expected == "file" else "List its parent."
        raise NotFound(PROVIDER, f"no {expected} {path!r} in workspace {workspace!r}", hint=hint) from None
    except IsADirectoryError:
        raise InvalidInput(
            PROVIDER, f"{path!r} is not a regular file", hint="Give a file's path; listFiles lists a directory."
        ) from None
    except NotADirectoryError:
        if expected == "directory":
            raise InvalidInput(PROVIDER, f"{path!r} is a file", hint="readFile reads a file.") from None
        hint = "Give a path whose parents are directories."
        raise InvalidInput(PROVIDER, f"a part of {path!r} is a file, not a directory", hint=hint) from None
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        hint = "Keep each name under 256 bytes and the whole path under 4096."
        raise InvalidInput(PROVIDER, f"path {path[:80]!r}... is too long", hint=hint) from None


def _outside(workspace: str, path: str) -> InvalidInput:
    return InvalidInput(
        PROVIDER,
        f"path {path[:200]!r} leads out of workspace {workspace!r}",
        hint="Give a path relative to the workspace, without '..' or links that leave it.",
    )


def _iso(value: float | None) -> str | None:
    return iso_time(value) if value else None
