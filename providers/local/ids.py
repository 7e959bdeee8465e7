"""Names shared by the local runtime's modules."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

PROVIDER = "local"


def place_of(data_dir: Path) -> str:
    """Where a session runs: this machine and its data directory (host:/path). Sessions of another place
    are read from the shared record; their processes and output are on that machine."""
    return f"{socket.gethostname()}:{data_dir.resolve()}"


def new_id(prefix: str) -> str:
    """An unguessable id such as ses_3f9a0c1d2e4b."""
    return f"{prefix}_{secrets.token_hex(6)}"
