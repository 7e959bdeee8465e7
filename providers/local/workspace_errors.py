"""A workspace file's path and content as the agent gives them, and what goes wrong with them as the agent's
error (the lookup is the kernel's: providers/local/files.py)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import posixpath
from collections.abc import Iterator
from typing import Literal

from providers.errors import InvalidInput, NotFound
from providers.local.files import Outside
from providers.local.ids import PROVIDER


def decode(content: str, encoding: str) -> bytes:
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


@contextlib.contextmanager
def path_errors(workspace: str, path: str, expected: Literal["file", "directory"]) -> Iterator[None]:
    try:
        yield
    except Outside:
        raise outside(workspace, path) from None
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


def outside(workspace: str, path: str) -> InvalidInput:
    return InvalidInput(
        PROVIDER,
        f"path {path[:200]!r} leads out of workspace {workspace!r}",
        hint="Give a path relative to the workspace, without '..' or links that leave it.",
    )


def in_use(workspace: str) -> InvalidInput:
    return InvalidInput(
        PROVIDER,
        f"workspace {workspace!r} is in use by a running session",
        hint="Stop its sessions first (listSessions status=running, stopSession), then delete it.",
    )


def relative_path(root: str, workspace: str, path: str) -> str:
    """`path` relative to the workspace at `root`: an absolute path inside it is taken as such; one outside is
    refused."""
    if "\0" in path:
        raise InvalidInput(PROVIDER, "path contains a NUL character", hint="Remove it.")
    if path.startswith("/"):
        if path != root and not path.startswith(root + "/"):
            raise outside(workspace, path)
        path = path[len(root) :]
    relative = posixpath.normpath(path.strip("/") or ".")
    if relative == ".." or relative.startswith("../"):
        raise outside(workspace, path)  # before any directory of it is made
    return relative
