"""Local sessions as tool results: output (whole, head and tail, or from an offset), when a running one will
be ended, and, for a run the sandbox stopped from doing something, which setting would have let it."""

from __future__ import annotations

import time
from collections.abc import Callable

from providers.errors import InvalidInput
from providers.local.ids import PROVIDER
from providers.local.output import EMPTY, read_from, size_of
from providers.local.session_records import SessionRecords
from providers.local.supervisor.records import WORKDIR
from providers.local.tables import SessionRow
from providers.models import ExecResult, SessionSummary
from providers.values import iso_time

FOLLOW_HINT = "Follow it with getSession session_id={id} wait_s=30 stdout_offset={out}; end it with stopSession."
# What a command prints when the sandbox stopped it, and the line that says why.
NETWORK_WORDS = (
    "Could not resolve host",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "No address associated with hostname",
    "getaddrinfo",
    "ENOTFOUND",
    "EAI_AGAIN",
)
NETWORK_HINTS = {
    "none": 'sandbox: this run has no network (local.sandbox.network = "none"); the operator can let hosts out '
    'with network = "allowlist" and allow = [...]',
    "allowlist": "sandbox: this run reaches only the local.sandbox.allow hosts, by HTTP and HTTPS through its "
    "proxy (no other protocol, no direct connection, no DNS of its own)",
}
REFUSED_WORDS = ("Connection refused", "Couldn't connect to server", "ECONNREFUSED")
LOOPBACK_HINT = (
    "sandbox: 127.0.0.1 and localhost in a run are the run's own, not the host's; the operator lets runs reach a "
    'service on the host by a name: network = "allowlist", hosts = { "host.internal" = "127.0.0.1" } and '
    'allow = ["host.internal:PORT"]'
)
READ_ONLY_HINT = (
    "sandbox: it writes only to its own directory (or workspace), its private /tmp (gone after the run) and "
    "local.sandbox.writable_paths; the rest of the host is read-only"
)


def summary(row: SessionRow, sessions_dir: str, workspace_of: Callable[[str], str | None]) -> SessionSummary:
    """A listing's row. What every plain run has (origin exec, its own directory under `sessions_dir`) is left
    out, as is every empty field: an agent pays for each token of every row of every listing. A run in a
    workspace shows the workspace's name (`workspace_of` its directory), not its path."""
    cwd = row.cwd if row.cwd != f"{sessions_dir}/{row.id}/{WORKDIR}" else None
    workspace = workspace_of(cwd) if cwd else None
    raw = {
        "origin": row.origin if row.origin != "exec" else None,
        "exit_code": row.exit_code,
        "end_reason": row.end_reason,
        "ended_at": iso_time(row.ended_at) if row.ended_at is not None else None,
        "cwd": None if workspace else cwd,
        "workspace": workspace,
        "message": row.message,
    }
    raw = {key: value for key, value in raw.items() if value is not None}
    return SessionSummary(
        id=row.id, status=row.state, started_at=iso_time(row.started_at), command=row.command, raw=raw or None
    )


def ending(row: SessionRow, max_timeout_s: float) -> str:
    """When a running session will be ended, and how to allow longer."""
    if row.timeout_s is None:
        return "it runs until it ends or is stopped."
    end = row.started_at + row.timeout_s
    left = max(0.0, end - time.time())
    longer = f" (up to {max_timeout_s:g}, local.max_timeout_s)" if row.timeout_s < max_timeout_s else ""
    return (
        f"it will be ended at timeout_s={row.timeout_s:g} (in {left:.0f} s, {iso_time(end)}); "
        f"for longer, start it with a larger timeout_s{longer}."
    )


def sandbox_hint(mode: str, row: SessionRow, stderr: str) -> str | None:
    """For a failed run whose stderr shows the sandbox's hand: the setting that would allow it (`mode`: the
    network mode it ran with)."""
    if row.state != "failed" or not stderr:
        return None
    hints = []
    unreachable = any(word in stderr for word in NETWORK_WORDS)
    refused = any(word in stderr for word in REFUSED_WORDS)
    if unreachable:
        hints.append(NETWORK_HINTS.get(mode, ""))
    if refused and mode != "host":  # its own loopback: the only thing it could have tried
        hints.append(LOOPBACK_HINT)
    if "Read-only file system" in stderr:
        hints.append(READ_ONLY_HINT)
    return "; ".join(hint for hint in hints if hint) or None


def check_offsets(records: SessionRecords, row: SessionRow, offsets: tuple[int | None, int | None]) -> None:
    """Refuse an offset past the end of a stream: what is written below it would be skipped, unsaid."""
    if records.elsewhere(row):
        return  # its output is on another machine
    for stream, offset in zip(("stdout", "stderr"), offsets, strict=True):
        if offset is None:
            continue
        size = size_of(records.path(row.id, stream))
        if offset > size:
            so_far = " so far" if row.state == "running" else ""
            if row.end_reason == "output_limit":  # offsets given while it ran may lie past where it was cut
                so_far = ", cut there at local.max_output_mb when it ended"
            raise InvalidInput(
                PROVIDER,
                f"{stream}_offset={offset} is past the end of its {stream} ({size} bytes{so_far})",
                hint=f"Pass {stream}_offset={size} to read on from its end, or less to read again (0: all of it).",
            )


def exec_result(
    records: SessionRecords,
    row: SessionRow,
    note: str | None = None,
    *,
    waited: float | None = None,
    offsets: tuple[int | None, int | None] = (None, None),
    max_timeout_s: float,
) -> ExecResult:
    """A session as a tool result. Output: head and tail of each stream, or, from an offset on, as much as a
    result holds; `*_next_offset` is where to read on for what comes after."""
    streams: dict[str, tuple[str | None, int | None, int | None]] = {}
    truncated = False
    ended = row.ended_at is not None
    for stream, offset in zip(("stdout", "stderr"), offsets, strict=True):
        if offset is None:
            ended_empty = ended and (row.stdout_bytes if stream == "stdout" else row.stderr_bytes) == 0
            out = EMPTY if ended_empty else records.output(row.id, stream, ended)  # no file to open
            streams[stream] = (out.text, out.size, out.end)
            truncated = truncated or out.truncated
        else:
            path = records.path(row.id, stream)
            text, next_offset, size = read_from(path, offset, records.settings.output_cap, ended)
            streams[stream] = (text, size, next_offset)
            truncated = truncated or offset + records.settings.output_cap < size  # by the page size
    duration = int((row.ended_at - row.started_at) * 1000) if row.ended_at else None
    elsewhere = records.elsewhere(row)
    ports, denied, mode = records.network_of(row.id) if not elsewhere else (None, None, "")
    hint = sandbox_hint(mode, row, streams["stderr"][0] or "") if not elsewhere else None
    message = "; ".join(m for m in (row.message, note, hint) if m) or None
    if elsewhere:
        streams = {"stdout": (None, row.stdout_bytes, None), "stderr": (None, row.stderr_bytes, None)}
        message = (
            f"{row.state}; it runs on {row.place}, and its output is on that machine: read it (or stop the "
            "session) through a server there. State and exit code are from the shared record."
        )
    elif row.state == "running":
        still = f"still running after {waited:g} s" if waited else "running"
        follow = FOLLOW_HINT.format(id=row.id, out=streams["stdout"][2])
        message = f"{still}; {ending(row, max_timeout_s)} {follow}"
    elif truncated:
        message = (f"{message}; " if message else "") + (
            f"output cut; read on with getSession stdout_offset, or all of it at local://sessions/{row.id}/stdout"
        )
    return ExecResult(
        provider=PROVIDER,
        session_id=row.id,
        state=row.state,
        exit_code=row.exit_code,
        stdout=streams["stdout"][0],
        stderr=streams["stderr"][0],
        stdout_bytes=streams["stdout"][1],
        stderr_bytes=streams["stderr"][1],
        stdout_next_offset=streams["stdout"][2],
        stderr_next_offset=streams["stderr"][2],
        truncated=truncated,
        duration_ms=duration,
        message=message,
        ports=ports if row.state == "running" else None,
        network_denied=denied,
    )
