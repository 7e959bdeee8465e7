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
    end: int  # where reading on starts: the size, less a character still being written at the end


EMPTY = Output("", 0, False, 0)


def decode(data: bytes, final: bool) -> tuple[str, int]:
    """(text, bytes it holds): an incomplete character at the end is left out, unless `final` says no more
    comes (then it is U+FFFD, as is every invalid byte)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(data, final=final)
    return text, len(data) - len(decoder.getstate()[0])


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # no file: no output


def read_capped(path: Path, cap: int, ended: bool) -> Output:
    """The whole file when it fits in `cap` bytes, else its head and tail with the gap said (`ended`: its run
    has ended, so nothing more will be written)."""
    size = size_of(path)
    if size == 0:
        return EMPTY
    with path.open("rb") as f:
        if size <= cap:
            text, used = decode(f.read(size), ended)
            return Output(text, size, False, used)
        half = cap // 2
        head = f.read(half)
        f.seek(size - half)
        tail, used = decode(f.read(half), ended)
    gap = size - 2 * half
    text = head.decode("utf-8", "replace") + f"\n[… {gap} bytes omitted …]\n" + tail
    return Output(text, size, True, size - half + used)


def read_from(path: Path, offset: int, limit: int, ended: bool) -> tuple[str, int, int]:
    """(text, next offset, size): up to `limit` bytes from `offset`, cut before a split UTF-8 character (at the
    end too while its run goes on: the rest of it may come)."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            chunk = f.read(limit)
    except OSError:
        return "", offset, 0
    text, used = decode(chunk, final=ended and offset + len(chunk) >= size)
    return text, offset + used, size


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
