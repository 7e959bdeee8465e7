"""One logging setup for the process: stderr (stdout carries MCP over stdio), the level from
RUNTIMES_MCP_LOG_LEVEL, and no credential in any line."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable

FORMAT = "%(asctime)s runtimes-mcp %(levelname)s %(name)s: %(message)s"


def redact_secrets(secrets: Iterable[str]) -> Callable[[logging.LogRecord], bool]:
    """A log filter that replaces every configured credential's value in a record's text (message, arguments,
    traceback), in every form providers.answers.Redactor knows (percent-encoded in a logged URL, too)."""
    from providers.answers import Redactor

    kept = [s for s in secrets if s]
    clean = Redactor(kept)

    def redacted(record: logging.LogRecord) -> bool:
        if kept:
            record.msg, record.args = clean(record.getMessage()), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = clean(record.exc_text)
        return True

    return redacted


class RateLimit(logging.Filter):
    """At most `burst` records of one kind (logger, level, message template) per `window_s`; the next record of
    that kind after a quiet spell says how many were dropped. A flood of one failure (say, a client storm) costs
    a few lines, not a full disk."""

    def __init__(self, burst: int = 20, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._seen: dict[tuple[str, int, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        started, count, dropped = self._seen.get(key, (now, 0, 0))
        if now - started > self.window_s:
            if dropped:
                record.msg = f"{record.msg} (and {dropped} more like it in the last {self.window_s:g} s, not shown)"
            started, count, dropped = now, 0, 0
        if count >= self.burst:
            self._seen[key] = (started, count, dropped + 1)
            return False
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = (started, count + 1, dropped)
        return True


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Every logger (ours, the SDK's, uvicorn's) writes through one stderr handler at `level`. Run before the
    server is built: the SDK's own setup only applies where nothing is configured yet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RateLimit())
    handler.addFilter(redact_secrets(secrets))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
