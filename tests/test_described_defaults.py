"""Every default a tool description states is what the code does (getSession's wait_s once said "default 30"
and answered at once). Local defaults are checked by behaviour; a remote provider's by its contract, which
applies it when we leave the argument out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from docs_topics import TOPICS
from providers import models
from server.config import load_settings
from tests.conftest import connect, structured
from tools.catalog import ALL

DEFAULT = re.compile(r"\(default:? ([^)]+)\)|(\S+) \(default\)")


def described_defaults() -> dict[tuple[str, str], str]:
    """(tool, argument) -> the default its description states."""
    found = {}
    for spec in ALL:
        for arg in spec.args:
            match = DEFAULT.search(arg.description)
            if match:
                found[(spec.name, arg.name)] = (match.group(1) or match.group(2)).split(";")[0].strip()
    return found


def contract_default(tool: str, arg: str) -> Any:
    """The default the provider's contract gives the wire parameter `arg` stands for (timeout_s: timeout)."""
    for topic in TOPICS.values():
        for endpoint in topic.endpoints:
            if endpoint.tool_name != tool:
                continue
            params = {p.name: p.default for p in endpoint.params}
            for name in (arg, arg.removesuffix("_s")):
                if params.get(name) is not None:
                    return params[name]
    raise AssertionError(f"no contract default for {tool}.{arg}")


REMOTE = {
    ("createAgentSession", "max_turns"),
    ("createAgentSession", "max_tokens"),
    ("createAgentSession", "max_runs_per_turn"),
    ("sendSessionMessage", "role"),
    ("stopSession", "signal"),
    ("stopSession", "timeout_s"),
}
LOCAL = {
    ("execRun", "cwd"),
    ("execRun", "timeout_s"),
    ("execRun", "wait_s"),
    ("getSession", "wait_s"),
    ("invokeRoutine", "wait_s"),
    ("storeEvent", "sandbox_id"),
    ("getEvents", "sandbox_id"),
    ("getLaunchers", "sort"),
    ("listFiles", "depth"),
    ("listFiles", "path"),
    ("readFile", "length"),
    ("writeFile", "encoding"),
}


def test_every_described_default_has_a_check() -> None:
    """A new "(default …)" in a description needs a check here; one that is gone leaves the lists."""
    assert set(described_defaults()) == REMOTE | LOCAL


@pytest.mark.parametrize(("tool", "arg"), sorted(REMOTE))
def test_a_remote_default_is_the_contracts(tool: str, arg: str) -> None:
    stated = described_defaults()[(tool, arg)]
    assert re.fullmatch(rf"{re.escape(stated)}s?", str(contract_default(tool, arg))), (stated, tool, arg)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, config_file: Any) -> Any:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    path: Path = config_file(
        """
        [local.routines.nap]
        command = "sleep 5"
        [local.launchers.b]
        command = "sleep 60"
        [local.launchers.a]
        command = "sleep 60"
        """
    )
    return load_settings(path)


async def test_local_defaults_are_what_the_descriptions_say(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stated = described_defaults()
    assert float(stated[("execRun", "wait_s")]) == float(stated[("invokeRoutine", "wait_s")]) == models.DEFAULT_WAIT_S
    # The waits themselves, shortened so the test does not sit out 30 s: leaving wait_s out uses this constant.
    monkeypatch.setattr(models, "DEFAULT_WAIT_S", 0.2)
    async with connect(settings) as client:

        async def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
            return structured(await client.call_tool(tool, arguments))

        first, second = [await call("execRun", {"command": "pwd"}) for _ in range(2)]
        assert first["stdout"] != second["stdout"]  # cwd: a new one each time

        running = await call("execRun", {"command": "sleep 5"})
        assert running["state"] == "running" and "still running after 0.2 s" in running["message"]
        timeout = stated[("execRun", "timeout_s")]
        assert f"timeout_s={timeout} " in running["message"]

        now = await call("getSession", {"session_id": running["session_id"]})
        assert stated[("getSession", "wait_s")] == "0" and now["state"] == "running"  # it answered at once
        await call("stopSession", {"session_id": running["session_id"]})

        routine = await call("invokeRoutine", {"routine": "nap", "message": "m"})
        assert routine["status"] == "running"
        await call("stopSession", {"session_id": routine["session_id"]})

        event = await call("storeEvent", {"type": "t", "data": {}})
        assert event["sandbox_id"] == stated[("storeEvent", "sandbox_id")] == stated[("getEvents", "sandbox_id")]
        events = await call("getEvents", {})
        assert events["sandbox_id"] == event["sandbox_id"] and events["events"][-1]["id"] == event["event_id"]

        launchers = await call("getLaunchers", {})
        by_stated = await call("getLaunchers", {"sort": stated[("getLaunchers", "sort")]})
        assert launchers["launchers"] == by_stated["launchers"]

        written = await call("writeFile", {"workspace": "w", "path": "d/e/f.txt", "content": "é"})
        assert written["size"] == len("é".encode(stated[("writeFile", "encoding")])) == 2
        await call("writeFile", {"workspace": "w", "path": "d/big.txt", "content": "x" * 80_000})
        page = await call("readFile", {"workspace": "w", "path": "d/big.txt"})
        length = int(stated[("readFile", "length")])
        assert (len(page["content"]), page["next_offset"], page["size"]) == (length, length, 80_000)

        top = await call("listFiles", {"workspace": "w"})
        assert stated[("listFiles", "path")] == "its top" and stated[("listFiles", "depth")] == "1"
        assert [entry["path"] for entry in top["entries"]] == ["d"]
