"""A session's output as tool results read it: whole or head and tail, from an offset, its newest line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Output:
    text: str
    size: int
    truncated: bool


EMPTY = Output("", 0, False)


def read_capped(path: Path, cap: int) -> Output:
    """The whole file when it fits in `cap` bytes, else its head and tail with the gap said."""
    try:
        size = path.stat().st_size
    except OSError:
        return Output("", 0, False)
    if size == 0:
        return Output("", 0, False)
    with path.open("rb") as f:
        if size <= cap:
            return Output(f.read().decode("utf-8", "replace"), size, False)
        half = cap // 2
        head = f.read(half)
        f.seek(size - half)
        tail = f.read(half)
    gap = size - 2 * half
    text = head.decode("utf-8", "replace") + f"\n[… {gap} bytes omitted …]\n" + tail.decode("utf-8", "replace")
    return Output(text, size, True)


def read_from(path: Path, offset: int, limit: int) -> tuple[str, int, int]:
    """(text, next offset, size): up to `limit` bytes from `offset`, cut before a split UTF-8 character."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            chunk = f.read(limit)
    except OSError:
        return "", offset, 0
    if offset + len(chunk) < size:  # more follows: do not end inside a character
        for back in range(1, min(4, len(chunk)) + 1):
            lead = chunk[-back]
            if lead & 0xC0 != 0x80:  # the first byte of the last character
                width = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
                if width > back:
                    chunk = chunk[:-back]
                break
    return chunk.decode("utf-8", "replace"), offset + len(chunk), size


def last_line(path: Path, limit: int = 200) -> str:
    """The newest complete-or-not line of an output file, at most `limit` characters."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - 4096))
            tail = f.read()
    except OSError:
        return ""
    return newest_line(tail.decode("utf-8", "replace"))[-limit:]


def newest_line(text: str) -> str:
    """The last line of `text` that is not blank ("" when there is none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
