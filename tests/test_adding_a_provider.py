"""CONTRIBUTING.md's steps for adding a provider, followed once on a copy of the tree: a new package, its docs
topic and one registry line are all it takes for the provider to be configured, offered, called, documented
and checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fakes import Reply, fake_api

ROOT = Path(__file__).resolve().parent.parent

ENDPOINTS = """
from providers.endpoints import Endpoint, Param

RUNS = Endpoint(
    "pinger", "GET", "/runs", "listSessions", "Runs, newest first.",
    (Param("state", "string", "State filter.", location="query"),),
)
ENDPOINTS = (RUNS,)
"""

DECLARATION = """
from providers import capabilities as c
from providers.pinger.endpoints import ENDPOINTS
from providers.provider import Provider, Serves, Setting

TOKEN = Setting("PINGER_TOKEN", "token", "Pinger API token.")
BASE_URL = Setting("PINGER_BASE_URL", "base_url", "Pinger API base URL.", "https://api.pinger.invalid")

PROVIDER = Provider(
    name="pinger",
    title="Pinger",
    summary="Runs of the Pinger service.",
    client="providers.pinger.client:PingerClient",
    capabilities={c.LIST_SESSIONS: Serves(("status?",), TOKEN)},
    settings=(TOKEN, BASE_URL),
    endpoints=ENDPOINTS,
)
"""

CLIENT = """
from typing import Any

from providers import capabilities as c
from providers.http import HttpProvider, compact
from providers.models import SessionList, SessionSummary
from providers.pinger import PROVIDER, TOKEN
from providers.pinger import endpoints as e


class PingerClient(HttpProvider, c.ListSessions):
    name = PROVIDER.name
    credential_env = TOKEN.env

    def __init__(self, *, base_url: str, token: str, **options: Any) -> None:
        super().__init__(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, **options)

    async def list_sessions(self, status: str | None = None) -> SessionList:
        body = await self.call_json(e.RUNS, query=compact(state=status))
        runs = [SessionSummary(id=str(r["id"]), status=r["state"], raw=r) for r in body["runs"]]
        return SessionList(provider=self.name, sessions=runs, count=len(runs))
"""

DOCS = """
from docs_topics.model import Topic
from providers.pinger import endpoints as e

PINGER = Topic(
    topic="pinger",
    title="Pinger: runs",
    description="Lists the runs of the Pinger service. Set `PINGER_TOKEN`.",
    endpoints=list(e.ENDPOINTS),
    related_topics=["overview"],
)
TOPICS = (PINGER,)
"""


def copy_of_the_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache")
    shutil.copytree(ROOT, tree, ignore=ignore)
    return tree


def follow_contributing(tree: Path) -> list[str]:
    """Steps 1-4 and 6 of CONTRIBUTING.md; returns the files touched."""
    package = tree / "providers" / "pinger"
    package.mkdir()
    files = {
        package / "endpoints.py": ENDPOINTS,
        package / "__init__.py": DECLARATION,
        package / "client.py": CLIENT,
        tree / "docs_topics" / "pinger.py": DOCS,
    }
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    registry = tree / "providers" / "registry.py"
    source = registry.read_text(encoding="utf-8")
    source = source.replace("from providers import archastro,", "from providers import archastro, pinger,")
    source = source.replace(
        "        computesdk.PROVIDER,\n", "        computesdk.PROVIDER,\n        pinger.PROVIDER,\n"
    )
    registry.write_text(source, encoding="utf-8")
    return sorted(str(p.relative_to(tree)) for p in [*files, registry])


def run(tree: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=tree, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_a_new_provider_is_its_package_its_docs_topic_and_one_registry_line(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    touched = follow_contributing(tree)
    assert len(touched) == 5, touched

    with fake_api() as api:
        api.routes[("GET", "/runs")] = Reply(200, {"runs": [{"id": 7, "state": "running"}]})
        env = {"PINGER_TOKEN": "pt-secret", "PINGER_BASE_URL": api.url(), "RUNTIMES_MCP_DATA_DIR": str(tmp_path / "d")}
        called = run(
            tree, "-m", "server.cli", "call", "listSessions", '{"provider": "pinger", "status": "running"}', env=env
        )
        docs = run(tree, "-m", "server.cli", "call", "getDocs", '{"topic": "pinger", "detail": "full"}', env=env)
        request = api.last()
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)
    assert [s["id"] for s in result["sessions"]] == ["7"] and result["provider"] == "pinger"
    assert (request.path, request.query, request.headers["authorization"]) == (
        "/runs",
        {"state": ["running"]},
        "Bearer pt-secret",
    )
    assert docs.returncode == 0 and "`GET /runs` → tool `listSessions`" in docs.stdout

    checks = run(
        tree, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_architecture.py", "tests/test_docs.py", env={}
    )
    # Everything holds but the README's matrix, which step 8 asks to update: its test prints the row to paste.
    assert "1 failed" in checks.stdout, checks.stdout[-3000:]
    assert "test_readme_tables_match_the_registry" in checks.stdout
    assert "| pinger | `PINGER_TOKEN` | ✓ |" in checks.stdout
