"""What a new user relies on outside the code: the README's commands, CI, the Dockerfile, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_TOOLS

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [line for block in blocks[:2] for line in block.strip().splitlines()]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one_verbatim() -> None:
    main_job, test_command = readme_commands()
    assert "runtimes-mcp call execRun" in main_job
    assert test_command.endswith("pytest")
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_dockerfile_is_slim_non_root_and_serves_stdio_by_default() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    instructions = [line.split()[0] for line in lines if line.split()[0].isupper()]
    assert instructions[0] == "FROM" and lines[0].endswith("-slim")
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] != "USER root"
    assert instructions.index("USER") > instructions.index("RUN")
    # An init reaps what outlives the server (session supervisors); the server is not PID 1.
    assert json.loads(lines[-1].removeprefix("ENTRYPOINT ")) == ["dumb-init", "--", "runtimes-mcp"]
    assert "RUN pip install --require-hashes -r requirements.lock" in lines
    assert "RUN pip install --no-deps . && pip check" in lines
    for package in ("server", "tools", "docs_topics", "providers"):
        assert any(line.startswith(f"COPY {package} ") for line in lines), package


def locked(lock: str) -> dict[str, str]:
    """name -> version of every requirement a lock file pins, each with its hashes."""
    pins = {}
    for entry in re.split(r"\n(?=\S)", (ROOT / lock).read_text()):  # a pin and its indented lines
        pinned = re.match(r"([A-Za-z0-9_.-]+)==([^\s;]+)", entry)
        if pinned:
            assert "--hash=sha256:" in entry, f"{lock}: {pinned.group()} has no hash"
            pins[_normal(pinned.group(1))] = pinned.group(2)
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize(("lock", "extra"), [("requirements.lock", "docker"), ("requirements-test.lock", "test")])
def test_each_lock_file_pins_every_requirement_within_pyproject_s_ranges(lock: str, extra: str) -> None:
    """So a missing or stale pin cannot let the README's install bring in a version nobody locked (CI installs
    the lock, then runs that command). CONTRIBUTING.md says how to update the locks."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked(lock)
    for line in project["dependencies"] + project["optional-dependencies"][extra]:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = pins.get(_normal(requirement.name))
        assert version is not None, f"{lock} does not pin {requirement.name}: update the lock (CONTRIBUTING.md)"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {requirement.name}=={version}, outside pyproject's {requirement}: update the lock"
        )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_cli_version_help_and_bad_input() -> None:
    assert run_cli("--version").stdout.startswith("runtimes-mcp ")
    help_text = run_cli("--help").stdout
    assert "--transport" in help_text and "call" in help_text and "RUNTIMES_MCP_TOOLSETS" in help_text
    bad_json = run_cli("call", "execRun", "{not json")
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
    not_object = run_cli("call", "execRun", "[1]")
    assert not_object.returncode == 2 and "JSON object" in not_object.stderr


def test_cli_call_prints_result_and_fails_on_tool_error() -> None:
    ok = run_cli("call", "execRun", '{"command": "echo from-the-cli"}')
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["stdout"] == "from-the-cli\n"
    toc = run_cli("call", "getDocs", "{}")
    assert toc.returncode == 0 and toc.stdout.startswith("# Documentation topics")
    failed = run_cli("call", "stopSession", '{"session_id": "ses_missing"}')
    assert failed.returncode == 1 and "no local session 'ses_missing'" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_cli_reports_bad_configuration_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("toolsets = ['nope']\n")
    result = run_cli("--config", str(bad), "tools")
    assert result.returncode == 2
    assert "toolsets" in result.stderr and "nope" in result.stderr and "Traceback" not in result.stderr


def test_cli_tools_lists_the_surface() -> None:
    out = run_cli("tools").stdout
    names = re.findall(r"^(\w+)  \(", out, re.M)
    assert names == DEFAULT_TOOLS


GC_PROBE = """
import gc, sys
full = []
gc.callbacks.append(lambda phase, info: full.append(1) if phase == "stop" and info["generation"] == 2 else None)
from server.cli import main
code = main(["tools"])
print(len(full), gc.isenabled(), gc.get_freeze_count(), file=sys.stderr)
sys.exit(code)
"""


def test_start_up_runs_no_full_garbage_collection_and_leaves_the_collector_on() -> None:
    # A full collection over the ~90k objects of start-up costs 30-50 ms: none while starting, and those
    # objects are frozen out of later ones.
    done = subprocess.run([sys.executable, "-c", GC_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    collections, enabled, frozen = done.stderr.split()[-3:]
    assert (collections, enabled) == ("0", "True")
    assert int(frozen) > 20_000


def test_start_up_rough_edges_are_one_line_errors_or_just_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "x.toml"
    config.write_text('[local]\non_exit = "stop"\n')
    after_command = run_cli("tools", "--config", str(config))
    assert after_command.returncode == 0 and "listSessions" in after_command.stdout

    monkeypatch.setenv("RUNTIMES_MCP_DEFAULT_PROVIDER", "xano")
    no_credentials = run_cli("tools")
    assert no_credentials.returncode == 2 and len(no_credentials.stderr.strip().splitlines()) == 1
    assert (
        "RUNTIMES_MCP_DEFAULT_PROVIDER is xano" in no_credentials.stderr
        and "XANO_ACCESS_TOKEN" in no_credentials.stderr
    )
    monkeypatch.delenv("RUNTIMES_MCP_DEFAULT_PROVIDER")

    piped = subprocess.run(
        f"{sys.executable} -m server.cli tools | head -1", shell=True, capture_output=True, text=True, cwd=ROOT
    )
    assert piped.stdout.strip() and "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr


def test_a_port_in_use_is_one_line_and_loopback_stays_allowed_with_named_hosts() -> None:
    import httpx

    from tests.test_http import INIT, JSON_HEADERS, TOKEN, http_server

    env = {"RUNTIMES_MCP_HTTP_TOKEN": TOKEN, "RUNTIMES_MCP_ALLOWED_HOSTS": "mcp.internal.example"}
    with http_server(env=env) as (base, _):
        port = base.rsplit(":", 1)[1]
        taken = run_cli("--transport", "http", "--port", port)
        answer = httpx.post(f"{base}/mcp", json=INIT, headers={**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}"})
        foreign = httpx.post(
            f"{base}/mcp",
            json=INIT,
            headers={**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}", "Host": "evil.example"},
        )
    assert taken.returncode == 2 and len(taken.stderr.strip().splitlines()) == 1
    assert "Address already in use" in taken.stderr and "--port" in taken.stderr
    assert answer.status_code == 200 and foreign.status_code == 421


def test_the_tools_command_gives_each_argument_its_json_type_allowed_values_and_hints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    out = run_cli("tools")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "storeEvent  (changes things)" in lines
    assert "stopSession  (destructive, idempotent)" in lines
    assert "execRun  (destructive)" in lines and "listSessions  (read-only)" in lines
    assert "    - sort_direction (one of asc, desc, optional): Sort direction." in lines
    assert "    - command (string, required): Shell command (/bin/sh -c)." in lines
    assert "    - wait_s (number 0–600, optional): Longest wait for the end (default 30)." in lines
    assert "    - ids (array of string, optional): Only these ids." in lines
    assert not any(line.startswith("    - provider ") for line in lines)  # one provider: nothing to choose
    assert not any(line.endswith("()") for line in lines)
