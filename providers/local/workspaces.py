"""Workspaces: named, persistent, writable directories that local runs share, and the files in them.

A workspace is `DATA_DIR/workspaces/OWNER/NAME/` (OWNER: its owner's folder, see folder_of), made on first use. A
run given `workspace` works in it, with the sandbox's usual profile, and what it writes there stays for the next
run, after a restart, and for every server on the data directory. Its record (`OWNER/.meta/NAME.json`: made, last
used, size, whose) is small and rewritten whole. Several runs may share a workspace, as shells share a directory.
Files go in and out beneath the workspace's directory only (providers/local/files.py), whatever a path holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread

from providers.errors import InvalidInput, NotFound, Unavailable
from providers.local.files import as_text, list_beneath, open_beneath, read_page, rename_no_replace, write_atomically
from providers.local.ids import PROVIDER
from providers.local.supervisor.records import write_new
from providers.local.supervisor.trees import remove_tree, tree_bytes
from providers.local.workspace_errors import decode, in_use, path_errors, relative_path
from providers.models import (
    FileContent,
    FileEntry,
    FileList,
    FileWritten,
    WorkspaceDeleted,
    WorkspaceInfo,
    WorkspaceList,
)
from providers.services import LOCAL_OWNER, caller
from providers.values import iso_time

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EARLIER = "local"  # the folder of the workspaces made before owners were recorded (and of their owner's new ones)
READ_DEFAULT = 64 * 1024  # bytes a readFile returns unless asked for more
READ_MOST = 4 * 1024 * 1024
LIST_MOST = 1000
META = ".meta"
DELETING = ".deleting-"  # a workspace being deleted, out of reach by its name
LEFTOVER_S = 600  # how old what a deletion left must be before retention removes it
MIB = 1024 * 1024
Busy = Callable[[str], Awaitable[bool]]  # is a running session working in this directory?


def folder_of(owner: str, earlier_owner: str) -> str:
    """The folder of an owner's workspaces under DATA_DIR/workspaces: EARLIER for the owner of the records made
    before owners were recorded (their workspaces are there), else a digest of the owner, so that no part of a
    path comes from what a caller can choose."""
    if owner == earlier_owner:
        return EARLIER
    return "o-" + hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Workspaces:
    """The caller's workspaces (providers.services.caller): names are per owner, each owner's in a folder of its
    own. An admin lists every owner's; files are read and written in the caller's own."""

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
        earlier_owner: str = LOCAL_OWNER,
    ) -> None:
        self.base = data_dir / "workspaces"
        self.earlier_owner = earlier_owner
        self.max_bytes = max_mb * MIB
        self.max_mb, self.max_count = max_mb, max_count
        self.max_data_bytes = max_data_mb * MIB if max_data_mb else None  # all workspaces count toward it
        self.retention_s = retention_days * 86_400
        self.busy = busy
        self.owner_ids = owner_ids  # local.sandbox.run_as: what runs and writes make belongs to that user

    @property
    def root(self) -> Path:
        """The caller's folder."""
        return self.base / folder_of(caller().owner, self.earlier_owner)

    def _roots(self) -> list[Path]:
        """Every owner's folder."""
        if not self.base.is_dir():
            return []
        return sorted(Path(e.path) for e in os.scandir(self.base) if e.is_dir(follow_symlinks=False))

    # --- the workspaces -------------------------------------------------------------------------------
    def check_name(self, name: str) -> str:
        if not NAME.fullmatch(name):  # (it starts with a letter or digit: never . or ..)
            raise InvalidInput(
                PROVIDER,
                f"workspace {name[:80]!r} is not a workspace name",
                hint="Use letters, digits, '-', '_' and '.', starting with a letter or digit, up to 64 characters.",
            )
        return name

    def path(self, name: str) -> Path:
        return self.root / self.check_name(name)

    def name_of(self, directory: str) -> tuple[Path, str] | None:
        """The workspace a run's directory is, if it is one: (its owner's folder, its name)."""
        path = Path(directory)
        if path.parent.parent == self.base and NAME.fullmatch(path.name):
            return path.parent, path.name
        return None

    def ensure(self, name: str) -> Path:
        """The caller's workspace's directory, made on first use (within local.max_workspaces); marked as used."""
        path = self.path(name)
        root, made = path.parent, dict[str, float | str]()
        if not path.is_dir():
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            count = sum(1 for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
            if count >= self.max_count:
                raise InvalidInput(
                    PROVIDER,
                    f"you have {count} workspaces already, the most local.max_workspaces={self.max_count} allows",
                    hint="Reuse one (listWorkspaces) or delete one you no longer need (deleteWorkspace).",
                )
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)
                if self.owner_ids is not None:
                    os.chown(path, *self.owner_ids)
            made = {"created_at": time.time(), "principal": caller().owner}
        self._save(root, name, **made, last_used_at=time.time())  # one write of the record
        return path

    def _record(self, root: Path, name: str) -> dict[str, Any]:
        try:
            data = json.loads((root / META / f"{name}.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, root: Path, name: str, **values: float | str) -> None:
        """Update the workspace's record (a small file, written to a temporary name and renamed over)."""
        meta = root / META
        with contextlib.suppress(OSError):
            meta.mkdir(parents=True, exist_ok=True, mode=0o700)
            record = self._record(root, name) | values
            write_new(meta / f"{name}.json", json.dumps(record).encode(), 0o600, durable=False)  # on the loop

    async def measure(self, root: Path, name: str) -> None:
        """Measure a workspace (after a run in it ended): its record keeps the size, unless the workspace was
        deleted meanwhile (its record would come back) or made anew (it would get the old one's size)."""
        made = self._record(root, name).get("created_at")  # the directory's inode number may be used again
        size = await anyio.to_thread.run_sync(tree_bytes, str(root / name))
        if (root / name).is_dir() and self._record(root, name).get("created_at") == made:
            self._save(root, name, size_bytes=size, last_used_at=time.time())

    def _owner(self, root: Path, record: dict[str, Any]) -> str | None:
        if root.name == EARLIER:
            return self.earlier_owner
        principal = record.get("principal")
        return principal if isinstance(principal, str) else None

    async def list_workspaces(self) -> WorkspaceList:
        """The caller's workspaces; an admin's list has every owner's, each with its owner."""
        everyone = caller().admin
        infos = []
        for root in self._roots() if everyone else [self.root]:
            for name in _names(root):
                record = self._record(root, name)
                infos.append(
                    WorkspaceInfo(
                        name=name,
                        size_bytes=int(record.get("size_bytes", 0)),
                        created_at=_iso(record.get("created_at")),
                        last_used_at=_iso(record.get("last_used_at")),
                        in_use=await self.busy(str(root / name)),
                        path=str(root / name),
                        owner=self._owner(root, record) if everyone else None,
                    )
                )
        return WorkspaceList(
            provider=PROVIDER, workspaces=infos, count=len(infos), max_workspaces=self.max_count, max_mb=self.max_mb
        )

    async def delete_workspace(self, workspace: str) -> WorkspaceDeleted:
        path = self.path(workspace)
        if not path.is_dir():
            return WorkspaceDeleted(provider=PROVIDER, workspace=workspace, deleted=False, message="no such workspace")
        await self._delete(path.parent, workspace)
        return WorkspaceDeleted(provider=PROVIDER, workspace=workspace, deleted=True)

    async def _delete(self, root: Path, name: str) -> None:
        if await self.busy(str(root / name)):
            raise in_use(name)
        # Out of reach first: a run started from now on makes a new workspace of that name, so none works in what
        # is being removed; one recorded as starting meanwhile gets it back.
        doomed = root / f"{DELETING}{name}-{secrets.token_hex(4)}"
        try:
            os.rename(root / name, doomed)
        except FileNotFoundError:  # another server has just deleted it
            return
        if await self.busy(str(root / name)):
            try:
                rename_no_replace(str(doomed), str(root / name))
            except OSError:  # and a run has made it anew meanwhile: both stay
                raise Unavailable(PROVIDER, f"workspace {name!r} is in use; its files are in {doomed}") from None
            raise in_use(name)
        with contextlib.suppress(OSError):
            (root / META / f"{name}.json").unlink()
        if not await anyio.to_thread.run_sync(remove_tree, str(doomed)):
            left = f"workspace {name!r} is gone, but some of its files are left in {doomed}"
            raise Unavailable(PROVIDER, left, hint="Retention tries again; what it cannot remove needs the operator.")

    async def prune(self) -> list[str]:
        """Delete the workspaces (every owner's) unused for local.workspace_retention_days (never one in use)."""
        cutoff = time.time() - self.retention_s
        deleted = []
        for root in self._roots():
            for leftover in root.glob(f"{DELETING}*"):  # what a deletion left (not one it may still put back)
                with contextlib.suppress(FileNotFoundError):  # another server's retention was first
                    if time.time() - leftover.lstat().st_ctime > LEFTOVER_S:
                        await anyio.to_thread.run_sync(remove_tree, str(leftover))
            for name in _names(root):
                record = self._record(root, name)
                used = record.get("last_used_at") or record.get("created_at") or 0
                if used < cutoff and not await self.busy(str(root / name)):
                    with contextlib.suppress(InvalidInput, Unavailable):  # in use after all; or left in part
                        await self._delete(root, name)
                        deleted.append(name)
        return deleted

    def total_bytes(self) -> int:
        """What all workspaces (every owner's) take, as last measured (counted toward local.max_data_mb)."""
        return sum(
            int(self._record(root, name).get("size_bytes", 0)) for root in self._roots() for name in _names(root)
        )

    # --- files ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _open(self, workspace: str) -> Iterator[int]:
        path = self.path(workspace)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(
                PROVIDER,
                f"no workspace {workspace!r}",
                hint="Write a file into it (writeFile) or run in it (execRun workspace=...) to make it.",
            ) from None
        try:
            yield fd
        finally:
            os.close(fd)

    def relative(self, workspace: str, path: str) -> str:
        return relative_path(str(self.path(workspace)), workspace, path)

    async def write_file(
        self, workspace: str, path: str, content: str, encoding: str | None = None, mode: int | None = None
    ) -> FileWritten:
        if path.endswith("/"):
            raise InvalidInput(PROVIDER, f"path {path[:200]!r} names a directory", hint="Give the file's path.")
        data = decode(content, encoding or "utf-8")
        self.ensure(workspace)
        relative = self.relative(workspace, path)
        folder = self.root  # the caller's folder: the thread below has no caller
        with self._open(workspace) as root, path_errors(workspace, path, "file"):
            written, old = await anyio.to_thread.run_sync(
                lambda: self._write(folder, workspace, root, relative, data, 0o644 if mode is None else mode)
            )
        return FileWritten(
            provider=PROVIDER,
            workspace=workspace,
            path=relative,
            size=written,
            sha256=hashlib.sha256(data).hexdigest(),
            replaced=old is not None,
            uri=uri_of(workspace, relative),
        )

    def _write(
        self, folder: Path, workspace: str, root: int, relative: str, data: bytes, mode: int
    ) -> tuple[int, int | None]:
        """Check the bounds and write, holding the workspace's lock: writes at once (from any server) are
        counted one after the other, not each against the size before all of them."""
        (folder / META).mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = os.open(folder / META / f"{workspace}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = int(self._record(folder, workspace).get("size_bytes", 0))
            self._check_room(workspace, used, len(data))
            written, old = write_atomically(root, relative, data, mode, self.owner_ids)
            self._save(folder, workspace, size_bytes=max(0, used + written - (old or 0)), last_used_at=time.time())
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
        if self.max_data_bytes is None:
            return
        total = self.total_bytes()  # every workspace's record: read once
        if total + more > self.max_data_bytes:
            raise InvalidInput(
                PROVIDER,
                f"the workspaces would pass local.max_data_mb={self.max_data_bytes // MIB} "
                f"({total // MIB} MiB in all workspaces, {more} bytes more)",
                hint="Delete a workspace you no longer need (deleteWorkspace), or ask the operator to raise it.",
            )

    def run_room(self, workspace: str) -> tuple[int, str]:
        """How large a run may make the workspace, and the setting that says so: local.workspace_max_mb, or
        less when the other workspaces leave less of local.max_data_mb."""
        if self.max_data_bytes is not None:
            others = self.total_bytes() - int(self._record(self.root, workspace).get("size_bytes", 0))
            room = max(0, self.max_data_bytes - others)
            if room < self.max_bytes:
                return room, "local.max_data_mb, less the other workspaces"
        return self.max_bytes, "local.workspace_max_mb"

    async def read_file(
        self, workspace: str, path: str, offset: int | None = None, length: int | None = None
    ) -> FileContent:
        offset, length = offset or 0, READ_DEFAULT if length is None else length
        if offset < 0 or not 1 <= length <= READ_MOST:
            raise InvalidInput(
                PROVIDER, f"offset must be >= 0 and length 1 to {READ_MOST}", hint="Read large files in pages."
            )
        relative = self.relative(workspace, path)
        with self._open(workspace) as root, path_errors(workspace, path, "file"):
            fd = open_beneath(root, relative, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the server
            try:
                chunk, size, digest = await anyio.to_thread.run_sync(read_page, fd, offset, length)
            finally:
                os.close(fd)
        text, encoding, chunk = as_text(chunk, more=offset + len(chunk) < size)
        end = offset + len(chunk)
        self._save(self.root, workspace, last_used_at=time.time())
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
        with self._open(workspace) as root, path_errors(workspace, path or ".", "directory"):
            entries, cut = await anyio.to_thread.run_sync(list_beneath, root, relative, depth, LIST_MOST)
        return FileList(
            provider=PROVIDER,
            workspace=workspace,
            path=relative,
            entries=[FileEntry(path=e.path, type=e.type, size=e.size, mtime=iso_time(e.mtime)) for e in entries],
            count=len(entries),
            truncated=cut,
        )


def uri_of(workspace: str, relative: str) -> str:
    return f"workspace://{workspace}/{quote(relative, safe='/')}"


def _names(root: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(root) if NAME.fullmatch(entry.name) and entry.is_dir())
    except OSError:
        return []


def _iso(value: float | None) -> str | None:
    return iso_time(value) if value else None
