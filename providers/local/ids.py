"""Names shared by the local runtime's modules."""

from __future__ import annotations

import secrets

PROVIDER = "local"


def new_id(prefix: str) -> str:
    """An unguessable id such as ses_3f9a0c1d2e4b."""
    return f"{prefix}_{secrets.token_hex(6)}"
