"""Clients we did not write: the official MCP conformance suite and the official TypeScript SDK.
Their npm packages are installed into a cache directory; the tests skip only when node is missing."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_TOOLS
from tests.test_http import TOKEN, http_server

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("RUNTIMES_MCP_TEST_CACHE", Path.home() / ".cache" / "runtimes-mcp-tests"))
CONFORMANCE = "@modelcontextprotocol/conformance@0.1.16"
TS_SDK = "@modelcontextprotocol/sdk@1.32.2"
# The scenarios that test the protocol itself; each must pass. (tools-call-simple-text and tools-call-error
# pass on any server through the unknown-tool error, so they prove nothing and are not counted.)
PROTOCOL_SCENARIOS = (
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
    "logging-set-level",
    "completion-complete",
    "resources-subscribe",
    "resources-unsubscribe",
)

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npx") is None,
    reason="node/npx not found: install Node.js to run the external-client checks",
)


def npm_env() -> dict[str, str]:
    return {**os.environ, "npm_config_cache": str(CACHE / "npm"), "npm_config_update_notifier": "false"}


def test_official_conformance_suite_passes_every_protocol_scenario() -> None:
    with http_server("--insecure-no-auth") as (base, _):  # the suite sends no credentials
        result = subprocess.run(
            [
                "npx",
                "-y",
                "-p",
                "node@22",
                "-p",
                CONFORMANCE,
                "--",
                "conformance",
                "server",
                "--url",
                f"{base}/mcp",
                "--suite",
                "all",
                "--expected-failures",
                str(ROOT / "tests" / "conformance-expected-failures.yml"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=npm_env(),
        )
    summary = result.stdout[result.stdout.find("=== SUMMARY ===") :]
    for scenario in PROTOCOL_SCENARIOS:
        assert f"✓ {scenario}:" in summary, f"{scenario} did not pass:\n{summary}"
    assert result.returncode == 0, summary + result.stderr[-2000:]


def ts_sdk_script(name: str) -> Path:
    """tests/clients/NAME beside the official TypeScript SDK (installed in the cache once), to run with node."""
    prefix = CACHE / "ts-sdk"
    prefix.mkdir(parents=True, exist_ok=True)
    # Test processes share the cache (xdist workers, three modules): one installs, the others wait and find it.
    with open(prefix / ".install-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (prefix / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), TS_SDK],
                check=True,
                capture_output=True,
                timeout=600,
                env=npm_env(),
            )
    script = prefix / name
    shutil.copyfile(ROOT / "tests" / "clients" / name, script)
    return script


@pytest.fixture(scope="module")
def ts_client() -> Path:
    return ts_sdk_script("ts_client.mjs")


def check_session(output: str) -> None:
    report = json.loads(output.strip().splitlines()[-1])
    assert report["server"]["name"] == "runtimes-mcp"
    names = [t["name"] for t in report["tools"]]
    assert names == DEFAULT_TOOLS
    assert all(t["hasOutputSchema"] for t in report["tools"])
    # a tool that runs a command has every hint at its default (destructive, not idempotent): none is sent
    assert [t["name"] for t in report["tools"] if not t["annotations"]] == ["execRun", "invokeRoutine"]
    assert "local" in report["docsTopics"] and "computesdk" in report["docsTopics"]
    assert report["execStdout"] == "from-typescript\n" and not report["execIsError"]
    assert report["badIsError"] and "command" in report["badText"] and "Traceback" not in report["badText"]


def test_typescript_sdk_client_over_stdio(ts_client: Path) -> None:
    result = subprocess.run(
        ["node", str(ts_client), "stdio", sys.executable, "-m", "server.cli"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    check_session(result.stdout)


def test_typescript_sdk_client_over_http(ts_client: Path) -> None:
    with http_server(env={"RUNTIMES_MCP_HTTP_TOKEN": TOKEN}) as (base, _):
        result = subprocess.run(
            ["node", str(ts_client), "http", f"{base}/mcp", TOKEN],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
        )
    assert result.returncode == 0, result.stderr[-2000:]
    check_session(result.stdout)
