"""One logging setup: stderr, RUNTIMES_MCP_LOG_LEVEL for every logger, no credential in any line."""

from __future__ import annotations

import logging

import pytest

from server.logs import configure_logging
from tests.test_packaging import run_cli


@pytest.fixture
def restore_root_logger() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_every_logger_writes_at_the_configured_level_with_credentials_redacted(
    restore_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", ["sk_live_123", ""])
    logging.getLogger("providers.sprites").debug("hidden at INFO")
    logging.getLogger("mcp.server").info("token %s sent", "sk_live_123")
    try:
        raise RuntimeError("failed with sk_live_123")
    except RuntimeError:
        logging.getLogger("tools.build").exception("call failed")
    err = capsys.readouterr().err
    assert "hidden at INFO" not in err
    assert "runtimes-mcp INFO mcp.server: token [redacted] sent" in err
    assert "RuntimeError: failed with [redacted]" in err
    assert "sk_live_123" not in err


def test_a_credential_is_redacted_from_log_lines_in_any_form_a_request_carries_it(
    restore_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    from urllib.parse import quote, quote_plus

    secret = "sk+live/123="
    configure_logging("INFO", [secret])
    logging.getLogger("httpx").info(f'HTTP Request: GET http://api/x?key={quote_plus(secret)} "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").info(f"path /keys/{quote(secret)}, upper {secret.upper()}")
    err = capsys.readouterr().err
    assert "sk" not in err.replace("[redacted]", "").lower().replace("ask", ""), err
    assert err.count("[redacted]") == 3


def test_the_cli_logs_to_stderr_at_runtimes_mcp_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SPRITES_TOKEN", "tok-never-shown")
    debug = run_cli("call", "listSessions", "{}")
    monkeypatch.setenv("RUNTIMES_MCP_LOG_LEVEL", "WARNING")
    quiet = run_cli("call", "listSessions", "{}")
    assert debug.returncode == 0 and quiet.returncode == 0
    assert " runtimes-mcp DEBUG " in debug.stderr and '"sessions"' in debug.stdout
    assert "DEBUG" not in quiet.stderr
    assert "tok-never-shown" not in debug.stderr + debug.stdout


def test_a_flood_of_one_message_is_cut_to_a_few_lines_with_a_count(
    restore_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("WARNING")
    handler = logging.getLogger().handlers[0]
    limit = next(f for f in handler.filters if type(f).__name__ == "RateLimit")
    now = [1000.0]
    limit.clock = lambda: now[0]  # type: ignore[attr-defined]
    log = logging.getLogger("uvicorn.error")
    for _ in range(5000):
        log.warning("accept failed: %s", "Too many open files")
    now[0] += 9.9  # still within the 10 s window: dropped, and counted
    log.warning("accept failed: %s", "Too many open files")
    now[0] += 0.2  # the window is over
    log.warning("accept failed: %s", "Too many open files")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 21, len(lines)
    assert "(and 4981 more like it in the last 10 s, not shown)" in lines[-1]
