"""A session's output as tool results read it: whole or head and tail, from an offset, its newest line."""

from __future__ import annotations

import codecs
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
        size = 0  # no file: no output
    if size == 0:
        return EMPTY
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
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(chunk, final=offset + len(chunk) >= size)  # more follows: keep a split character back
    return text, offset + len(chunk) - len(decoder.getstate()[0]), size


def last_line(path: Path, limit: int = 200) -> str:
    """The newest line of an output file that is not blank, complete or not, at most `limit` characters."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - 4096))
            tail = f.read()
    except OSError:
        return ""
    lines = [line for line in tail.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][-limit:] if lines else ""
