"""The official conformance suite for the 2026-07-28 revision (@modelcontextprotocol/conformance 0.2.0-alpha.12):
every protocol-level check against the product server, and every Tasks check against a test server that mounts
the product's Tasks code with the suite's fixture tools (tests/tasks_fixture_server.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load_http import launch_http_server
from tests.test_external_clients import ROOT, npm_env, pytestmark  # noqa: F401  (skips without node)
from tests.test_http import http_server

CONFORMANCE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"
NPX_CONFORMANCE = ("npx", "-y", "-p", "node@22", "-p", CONFORMANCE, "--", "conformance")
EXPECTED = ROOT / "tests" / "conformance-2026-07-28-expected-failures.yml"
# Protocol scenarios that pass but for checks calling a fixture: check id -> the fixture it needs.
FIXTURE_CHECKS = {
    "server-stateless": {
        "sep-2575-server-rejects-undeclared-capability": "fixture tool test_missing_capability",
        "sep-2575-missing-capability-http-400": "fixture tool test_missing_capability",
    },
    "tasks-capability-negotiation": {"tasks-per-request-meta-opt-in": "fixture slow_compute"},
    "tasks-dispatch-and-envelope": {
        "tasks-server-directed-creation-no-hint": "fixture failing_job",
        "sep-2663-durable-create-strong-consistency": "fixture slow_compute",
    },
}
MUST_PASS = (
    "server-stateless",
    "caching",
    "http-header-validation",
    "sep-2164-resource-not-found",
    "dns-rebinding-protection",
    "tools-list",
    "completion-complete",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "tasks-capability-negotiation",
    "tasks-dispatch-and-envelope",
)
TASK_SCENARIOS = (
    "tasks-lifecycle",
    "tasks-capability-negotiation",
    "tasks-wire-fields",
    "tasks-request-state-removal",
    "tasks-mrtr-input",
    "tasks-request-headers",
    "tasks-dispatch-and-envelope",
    "tasks-required-task-error",
    "tasks-mrtr-composition",
)


def run_suite(url: str, out: Path) -> dict[str, list[dict[str, str]]]:
    """Every scenario of the 2026-07-28 requirements: scenario -> its checks (id, status, errorMessage)."""
    subprocess.run(
        [*NPX_CONFORMANCE, "server", "--url", url, "--requirements", "2026-07-28", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=npm_env(),
    )
    checks: dict[str, list[dict[str, str]]] = {}
    for path in out.glob("*/checks.json"):
        scenario = re.sub(r"^server-|-\d{4}-\d\d-\d\dT.*$", "", path.parent.name)
        checks[scenario] = json.loads(path.read_text())
    assert checks, "the conformance suite wrote no results"
    return checks


def failures(checks: list[dict[str, str]]) -> dict[str, str]:
    return {c["id"]: c.get("errorMessage", "") for c in checks if c["status"] == "FAILURE"}


def test_product_server_passes_every_protocol_check(tmp_path: Path) -> None:
    fixture_only = set(re.findall(r"^\s+- ([\w-]+)", EXPECTED.read_text(), re.M))
    with http_server("--insecure-no-auth") as (base, _):  # the suite sends no credentials
        results = run_suite(f"{base}/mcp", tmp_path)
    for scenario in MUST_PASS:
        assert scenario in results, f"{scenario} did not run"
    for scenario, checks in results.items():
        if scenario in fixture_only:
            continue
        unexplained = {k: v for k, v in failures(checks).items() if k not in FIXTURE_CHECKS.get(scenario, {})}
        assert not unexplained, f"{scenario}: {unexplained}"


@pytest.fixture
def tasks_fixture_server() -> object:
    process, base = launch_http_server(lambda port: [sys.executable, "-m", "tests.tasks_fixture_server", str(port)])
    try:
        yield base
    finally:
        process.terminate()
        process.wait(15)


def test_every_tasks_check_passes_against_the_fixture_server(tasks_fixture_server: str, tmp_path: Path) -> None:
    results = run_suite(f"{tasks_fixture_server}/mcp", tmp_path)
    for scenario in TASK_SCENARIOS:
        checks = results.get(scenario)
        assert checks, f"{scenario} did not run"
        assert not failures(checks), f"{scenario}: {failures(checks)}"
        assert all(c["status"] in ("SUCCESS", "INFO") for c in checks), checks
