"""The local provider as the server uses it besides its tools (providers/services.py): its runtime, opened for the
server's whole life, and its resources."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from providers.errors import InvalidInput
from providers.local.ids import PROVIDER
from providers.local.runtime import LocalRuntime
from providers.local.startup import open_runtime as open_local
from providers.local.workspaces import READ_MOST
from providers.services import Host

RESOURCE_READ_CAP = 8 * 1024 * 1024  # what the session-output resource holds


@asynccontextmanager
async def open_runtime(host: Host) -> AsyncIterator[LocalRuntime]:
    opening = open_local(
        host.section,
        host.data_dir,
        run_launchers=host.services,
        hidden=host.hidden,
        state_url=host.state_url,
        earlier_owner=host.earlier_owner,
        listening=host.listening,
    )
    async with opening as runtime:
        runtime.events.listener = lambda sandbox_id: host.changed(f"events://{sandbox_id}")
        yield runtime


async def read_events(runtime: LocalRuntime, sandbox_id: str) -> str:
    return (await runtime.get_events(sandbox_id=sandbox_id, limit=100)).model_dump_json()


async def read_output(runtime: LocalRuntime, session_id: str, stream: str) -> str:
    if stream not in ("stdout", "stderr"):
        raise InvalidInput(PROVIDER, f"stream must be stdout or stderr, not {stream!r}")
    page = await runtime.read_output(session_id, stream, 0, RESOURCE_READ_CAP)
    if page.next_offset is None:
        return page.text
    return (
        page.text + f"\n[… first {RESOURCE_READ_CAP} of {page.size} bytes; read on with getSession stdout_offset …]\n"
    )


async def read_workspace_file(runtime: LocalRuntime, name: str, path: str) -> str | bytes:
    """A workspace file whole: text when it is UTF-8, bytes otherwise. One larger than a readFile page is refused,
    not cut, since a resource's reader cannot tell a cut file from a whole one."""
    content = await runtime.read_file(name, path, 0, READ_MOST)
    if content.next_offset is not None:
        raise InvalidInput(
            PROVIDER,
            f"{content.path!r} is {content.size} bytes, more than a resource serves ({READ_MOST})",
            hint=f"Read it in pages with readFile (workspace={name}, path={content.path}).",
        )
    return content.content if content.encoding == "utf-8" else base64.b64decode(content.content)
