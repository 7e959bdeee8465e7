"""Workspaces: an agent's work carries from one call to the next, files go in and out, a running program gets
its input from a later call, and no path leads out of its workspace."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from providers.errors import InvalidInput
from server.config import load_settings
from tests.conftest import connect, error_text, stdio_params, structured
from tests.test_sandbox import PYTHON

APP_BROKEN = "def add(a, b):\n    return a - b\n"
APP_FIXED = "def add(a, b):\n    return a + b\n"
TEST_APP = "from app import add\n\nassert add(2, 3) == 5, add(2, 3)\nprint('tests pass')\n"
PNG_SCRIPT = (
    "import struct, zlib\n"
    "def chunk(kind, data):\n"
    "    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))\n"
    "rows = b''.join(b'\\x00' + bytes((x * 7 + y * 3) % 256 for x in range(48)) for y in range(32))\n"
    "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 48, 32, 8, 0, 0, 0, 0))\n"
    "png += chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b'')\n"
    "open('plot.png', 'wb').write(png)\n"
)


def png_bytes() -> bytes:
    """What PNG_SCRIPT writes, made here to compare with what comes back."""
    scope: dict[str, Any] = {"struct": struct, "zlib": zlib}
    exec(PNG_SCRIPT.replace("open('plot.png', 'wb').write(png)\n", ""), scope)
    data: bytes = scope["png"]
    return data


async def test_the_coding_loop_over_stdio_with_the_default_tools_across_a_restart() -> None:
    env = {"RUNTIMES_MCP_ON_EXIT": "keep"}
    async with Client(stdio_params(env=env)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"execRun", "writeFile", "readFile"} <= names and "listFiles" not in names
        structured(await client.call_tool("writeFile", {"workspace": "w", "path": "app.py", "content": APP_BROKEN}))
        structured(await client.call_tool("writeFile", {"workspace": "w", "path": "test_app.py", "content": TEST_APP}))
        failing = structured(await client.call_tool("execRun", {"command": f"{PYTHON} test_app.py", "workspace": "w"}))
        assert failing["state"] == "failed" and "AssertionError" in failing["stderr"]
        structured(await client.call_tool("writeFile", {"workspace": "w", "path": "app.py", "content": APP_FIXED}))
        venv = structured(
            await client.call_tool(
                "execRun", {"command": f"{PYTHON} -m venv .venv", "workspace": "w", "timeout_s": 120}
            )
        )
        assert venv["exit_code"] == 0, venv
    async with Client(stdio_params(env=env)) as client:  # a new server on the same data directory
        passing = structured(
            await client.call_tool("execRun", {"command": ".venv/bin/python test_app.py", "workspace": "w"})
        )
        assert (passing["exit_code"], passing["stdout"]) == (0, "tests pass\n"), passing
        plot = structured(
            await client.call_tool(
                "execRun", {"command": f'{PYTHON} -c "$S" && ls', "workspace": "w", "env": {"S": PNG_SCRIPT}}
            )
        )
        assert "plot.png" in plot["stdout"]
        read = structured(await client.call_tool("readFile", {"workspace": "w", "path": "plot.png"}))
    expected = png_bytes()
    assert read["encoding"] == "base64" and base64.b64decode(read["content"]) == expected
    assert read["sha256"] == hashlib.sha256(expected).hexdigest() and read["size"] == len(expected)
    assert "next_offset" not in read  # the end


async def test_a_prompting_program_gets_its_answer_from_a_later_call_through_another_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "sessions")
    monkeypatch.setenv("RUNTIMES_MCP_ON_EXIT", "keep")
    command = 'printf "name? "; read n; echo "hi $n"; read m; echo "bye $m"'
    async with connect() as first:
        started = structured(await first.call_tool("execRun", {"command": command, "interactive": True, "wait": False}))
        await wait_for_output(first, started["session_id"], "name? ")
    async with connect() as second:  # another server on the same data directory answers it
        sent = structured(await second.call_tool("sendInput", {"session_id": started["session_id"], "text": "Ada\n"}))
        assert sent["bytes"] == 4 and sent["closed"] is False
        await wait_for_output(second, started["session_id"], "hi Ada\n")
        closed = structured(await second.call_tool("sendInput", {"session_id": started["session_id"], "eof": True}))
        assert closed["closed"] is True
        done = structured(await second.call_tool("getSession", {"session_id": started["session_id"], "wait_s": 20}))
    assert done["state"] == "completed" and done["stdout"] == "name? hi Ada\nbye \n", done


async def wait_for_output(client: Client, session_id: str, text: str) -> None:
    for _ in range(500):
        got = structured(await client.call_tool("getSession", {"session_id": session_id}))
        if text in (got["stdout"] or ""):
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"{text!r} never came: {got}")


async def test_input_to_a_session_that_cannot_take_it_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "sessions")
    async with connect() as client:
        plain = structured(await client.call_tool("execRun", {"command": "sleep 30", "wait": False}))
        not_interactive = error_text(
            await client.call_tool("sendInput", {"session_id": plain["session_id"], "text": "x"})
        )
        await client.call_tool("stopSession", {"session_id": plain["session_id"]})
        ended = error_text(await client.call_tool("sendInput", {"session_id": plain["session_id"], "text": "x"}))
        missing = error_text(await client.call_tool("sendInput", {"session_id": "ses_000000000000", "text": "x"}))
    assert "interactive=true" in not_interactive and "Next:" in not_interactive
    assert "has ended" in ended and "no local session" in missing


ESCAPES = ["../x", "../../etc/passwd", "a/../../x", "/etc/passwd", "up/x", "root/etc/passwd", "data/local.sqlite3"]


async def test_no_path_leads_out_of_its_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "workspaces")
    data = load_settings().data_dir
    async with connect() as client:
        structured(await client.call_tool("writeFile", {"workspace": "w", "path": "inside.txt", "content": "in"}))
        made = structured(
            await client.call_tool(
                "execRun",
                {"command": f"ln -s .. up; ln -s / root; ln -s {data} data; ls", "workspace": "w"},
            )
        )
        assert made["exit_code"] == 0, made
        for path in ESCAPES:
            for tool, arguments in (
                ("readFile", {"path": path}),
                ("writeFile", {"path": path, "content": "escaped"}),
                ("listFiles", {"path": path.rsplit("/", 1)[0] or path}),
            ):
                result = await client.call_tool(tool, {"workspace": "w", **arguments})
                assert result.is_error, (tool, path, result)
                text = result.content[0].text  # type: ignore[union-attr]
                assert "out of workspace" in text or "no " in text or "not" in text, (tool, path, text)
    assert not Path("/etc/passwd").read_text().startswith("escaped")
    assert not (data.parent / "x").exists() and not (data / "workspaces" / "x").exists()


async def test_a_symlink_a_concurrent_run_swaps_in_never_leads_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run flips `d` between a directory in the workspace and a link to /etc while files are read through
    it: each read gets the workspace's file or is refused, never /etc's."""
    async with connect() as client:
        structured(await client.call_tool("writeFile", {"workspace": "w", "path": "real/hostname", "content": "ws"}))
        flipper = (
            "i=0; while [ $i -lt 4000 ]; do i=$((i+1)); ln -sfn /etc d.new && mv -T d.new d; "
            "ln -sfn real d.new && mv -T d.new d; done"
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "execRun", {"command": flipper, "workspace": "w", "timeout_s": 60})
            reads = [await client.call_tool("readFile", {"workspace": "w", "path": "d/hostname"}) for _ in range(80)]
    host = Path("/etc/hostname").read_text() if Path("/etc/hostname").exists() else "\0"
    contents = [structured(r)["content"] for r in reads if not r.is_error]
    assert all(c == "ws" for c in contents) and host not in contents


async def test_files_in_and_out_with_their_bounds(config_file: Any) -> None:
    settings = load_settings(
        config_file('toolsets = ["workspaces"]\n[local]\nworkspace_max_mb = 1\nmax_workspaces = 2\n')
    )
    async with connect(settings) as client:
        binary = bytes(range(256)) * 40
        written = structured(
            await client.call_tool(
                "writeFile",
                {
                    "workspace": "w",
                    "path": "deep/er/bin.dat",
                    "content": base64.b64encode(binary).decode(),
                    "encoding": "base64",
                    "mode": "755",
                },
            )
        )
        again = structured(
            await client.call_tool("writeFile", {"workspace": "w", "path": "deep/er/bin.dat", "content": "t"})
        )
        pages, offset = [], 0
        structured(
            await client.call_tool(
                "writeFile",
                {
                    "workspace": "w",
                    "path": "big.bin",
                    "content": base64.b64encode(binary).decode(),
                    "encoding": "base64",
                },
            )
        )
        while offset is not None:
            page = structured(
                await client.call_tool(
                    "readFile", {"workspace": "w", "path": "big.bin", "offset": offset, "length": 3000}
                )
            )
            pages.append(base64.b64decode(page["content"]))
            offset = page.get("next_offset")
        listing = structured(await client.call_tool("listFiles", {"workspace": "w", "depth": 3}))
        errors = {
            "too big": await client.call_tool(
                "writeFile", {"workspace": "w", "path": "huge", "content": "x" * 1_100_000}
            ),
            "base64": await client.call_tool(
                "writeFile", {"workspace": "w", "path": "b", "content": "%%%", "encoding": "base64"}
            ),
            "directory": await client.call_tool("writeFile", {"workspace": "w", "path": "deep", "content": "x"}),
            "read a directory": await client.call_tool("readFile", {"workspace": "w", "path": "deep"}),
            "missing file": await client.call_tool("readFile", {"workspace": "w", "path": "nope"}),
            "missing workspace": await client.call_tool("readFile", {"workspace": "none", "path": "x"}),
            "bad name": await client.call_tool("writeFile", {"workspace": "../w", "path": "x", "content": "x"}),
            "setuid": await client.call_tool(
                "writeFile", {"workspace": "w", "path": "s", "content": "x", "mode": "4755"}
            ),
        }
        structured(await client.call_tool("writeFile", {"workspace": "second", "path": "x", "content": "x"}))
        errors["count"] = await client.call_tool("writeFile", {"workspace": "third", "path": "x", "content": "x"})
        listed = structured(await client.call_tool("listWorkspaces", {}))
    assert written["size"] == len(binary) and written["replaced"] is False and again["replaced"] is True
    assert written["uri"] == "workspace://w/deep/er/bin.dat"
    assert b"".join(pages) == binary and len(pages) == 4
    paths = {e["path"]: e for e in listing["entries"]}
    assert paths["deep/er/bin.dat"]["type"] == "file" and paths["deep"]["type"] == "directory"
    assert (
        settings.data_dir / "workspaces" / "local" / "w" / "deep" / "er" / "bin.dat"
    ).stat().st_mode & 0o777 == 0o644
    for name, result in errors.items():
        assert result.is_error and "Next:" in result.content[0].text, (name, result)  # type: ignore[union-attr]
    assert "workspace_max_mb" in errors["too big"].content[0].text  # type: ignore[union-attr]
    assert "max_workspaces" in errors["count"].content[0].text  # type: ignore[union-attr]
    leftovers = [p.name for p in (settings.data_dir / "workspaces" / "local" / "w").rglob("*") if "rtmcp" in p.name]
    assert leftovers == []  # nothing partial: a write goes through a temporary file, renamed over
    assert {w["name"] for w in listed["workspaces"]} == {"w", "second"} and listed["max_workspaces"] == 2


async def test_a_run_in_a_workspace_is_bounded_by_its_size_and_a_workspace_in_use_is_not_deleted(
    config_file: Any,
) -> None:
    settings = load_settings(config_file('toolsets = ["workspaces"]\n[local]\nworkspace_max_mb = 2\n'))
    async with connect(settings) as client:
        filler = await client.call_tool(
            "execRun",
            {
                "command": "i=0; while :; do i=$((i+1)); head -c 262144 /dev/zero > f$i; done",
                "workspace": "w",
                "timeout_s": 60,
            },
        )
        # in a workspace under its cap: a run in w, over it now, is ended once measured
        running = structured(
            await client.call_tool("execRun", {"command": "sleep 30", "workspace": "u", "wait": False})
        )
        refused = await client.call_tool("deleteWorkspace", {"workspace": "u"})
        await client.call_tool("stopSession", {"session_id": running["session_id"]})
        deleted = [structured(await client.call_tool("deleteWorkspace", {"workspace": name})) for name in "uw"]
    result = structured(filler)
    assert result["state"] == "failed" and "over its 2 MiB (local.workspace_max_mb)" in result["message"], result
    assert refused.is_error and "in use" in refused.content[0].text  # type: ignore[union-attr]
    assert [d["deleted"] for d in deleted] == [True, True]
    assert not any((settings.data_dir / "workspaces" / "local" / name).exists() for name in "uw")


async def test_a_run_that_passes_the_workspace_cap_before_its_first_measure_is_held_to_it_after(
    config_file: Any,
) -> None:
    """A run may end before its workspace is first measured; the size is recorded after it, and what comes next
    is held to the cap until files go: a write is refused, a run is ended once it is measured (a run that ends
    before then is not failed for what others left, but when that is depends on the machine's load)."""
    settings = load_settings(config_file('toolsets = ["workspaces"]\n[local]\nworkspace_max_mb = 2\n'))
    writer = "for i in 1 2 3; do head -c 1048576 /dev/zero > f$i; done"  # over in a few ms
    async with connect(settings) as client:
        wrote = structured(await client.call_tool("execRun", {"command": writer, "workspace": "w"}))

        async def recorded() -> int:
            listed = structured(await client.call_tool("listWorkspaces", {}))["workspaces"]
            return int(listed[0]["size_bytes"])

        with anyio.fail_after(10):
            while await recorded() < 3 * 1024 * 1024:
                await anyio.sleep(0.05)
        refused = error_text(await client.call_tool("writeFile", {"workspace": "w", "path": "x", "content": "x"}))
        looked = structured(await client.call_tool("execRun", {"command": "sleep 30; ls", "workspace": "w"}))
        deleted = structured(await client.call_tool("deleteWorkspace", {"workspace": "w"}))
        again = await client.call_tool("writeFile", {"workspace": "w", "path": "x", "content": "x"})
    assert wrote["state"] == "completed", wrote
    assert "would pass local.workspace_max_mb=2" in refused, refused
    assert looked["state"] == "failed" and "over its 2 MiB (local.workspace_max_mb)" in looked["message"], looked
    assert deleted["deleted"] is True and not again.is_error, again


async def test_a_file_is_a_resource_and_the_results_that_name_one_link_it() -> None:
    async with connect() as client:
        path = "notes/a b#?é.txt"
        written = await client.call_tool("writeFile", {"workspace": "w", "path": path, "content": "hi ü\n"})
        read = await client.call_tool("readFile", {"workspace": "w", "path": path})
        links = [block for result in (written, read) for block in result.content if block.type == "resource_link"]
        text = await client.read_resource(links[0].uri)
        image = base64.b64encode(png_bytes()).decode()
        png = await client.call_tool(
            "writeFile", {"workspace": "w", "path": "plot.png", "content": image, "encoding": "base64"}
        )
        blob = await client.read_resource(structured(png)["uri"])
        big = f"{PYTHON} -c \"open('big', 'w').write('x' * (4 * 1024 * 1024 + 1))\"; ln -s /etc/hostname out"
        structured(await client.call_tool("execRun", {"command": big, "workspace": "w"}))
        refused = {}
        for name in ("big", "out", "missing", "notes"):
            with pytest.raises(MCPError) as caught:
                await client.read_resource(f"workspace://w/{name}")
            refused[name] = caught.value.error.message
        with pytest.raises(MCPError):
            await client.read_resource("workspace://w/../w/notes/x")
        templates = (await client.list_resource_templates()).resource_templates
    assert [link.uri for link in links] == ["workspace://w/notes/a%20b%23%3F%C3%A9.txt"] * 2
    assert links[0].name == path and links[0].size == len("hi ü\n".encode())
    assert text.contents[0].text == "hi ü\n"  # type: ignore[union-attr]
    assert base64.b64decode(blob.contents[0].blob) == png_bytes()  # type: ignore[union-attr]
    assert "4194305 bytes" in refused["big"] and "readFile" in refused["big"], refused
    assert all("Next:" in message for message in refused.values()), refused
    assert "workspace://{name}/{+path}" in {t.uri_template for t in templates}


async def test_a_fifo_a_long_name_or_a_way_out_is_a_clear_error_that_leaves_nothing(config_file: Any) -> None:
    settings = load_settings(config_file('toolsets = ["workspaces"]\n'))
    async with connect(settings) as client:
        structured(await client.call_tool("execRun", {"command": "mkfifo f", "workspace": "w"}))
        # no writer: an open that waited for one would hold up the whole server, every client
        fifo = error_text(await client.call_tool("readFile", {"workspace": "w", "path": "f"}))
        with pytest.raises(MCPError) as as_resource:
            await client.read_resource("workspace://w/f")
        long = error_text(await client.call_tool("writeFile", {"workspace": "w", "path": "x" * 300, "content": "x"}))
        escape = error_text(
            await client.call_tool("writeFile", {"workspace": "w", "path": "a/../../x", "content": "x"})
        )
        inside = structured(
            await client.call_tool("writeFile", {"workspace": "w", "path": "b/../c.txt", "content": "x"})
        )
        folder = error_text(await client.call_tool("writeFile", {"workspace": "w", "path": "sub/", "content": "x"}))
    assert "names a directory" in folder and "Next:" in folder
    assert "not a regular file" in fifo and "Next:" in fifo
    assert "not a regular file" in as_resource.value.error.message
    assert "too long" in long and "Next:" in long and "bug" not in long
    assert "leads out of workspace" in escape
    assert inside["path"] == "c.txt"
    assert sorted(os.listdir(settings.data_dir / "workspaces" / "local" / "w")) == ["c.txt", "f"]  # no a/, no b/


async def test_writes_at_once_and_all_the_workspaces_stay_within_their_caps(config_file: Any) -> None:
    settings = load_settings(config_file('toolsets = ["workspaces"]\n[local]\nworkspace_max_mb = 2\nmax_data_mb = 5\n'))
    data = base64.b64encode(os.urandom(1_500_000)).decode()

    def write(workspace: str, path: str) -> dict[str, Any]:
        return {"workspace": workspace, "path": path, "content": data, "encoding": "base64"}

    async with connect(settings) as client:
        answers = []

        async def one(i: int) -> None:
            answers.append(await client.call_tool("writeFile", write("cap", f"f{i}")))

        async with anyio.create_task_group() as group:
            for i in range(6):
                group.start_soon(one, i)
        listed = structured(await client.call_tool("listWorkspaces", {}))
        structured(await client.call_tool("writeFile", write("b", "f")))
        structured(await client.call_tool("writeFile", write("c", "f")))
        refused = error_text(await client.call_tool("writeFile", write("d", "f")))
        command = "head -c 1500000 /dev/zero > big && sleep 60"
        run = structured(await client.call_tool("execRun", {"command": command, "workspace": "e", "timeout_s": 90}))
    on_disk = sum(p.stat().st_size for p in (settings.data_dir / "workspaces" / "local" / "cap").iterdir())
    assert sum(not a.is_error for a in answers) == 1 and on_disk == 1_500_000  # 2 MiB holds one, not six
    assert [w["size_bytes"] for w in listed["workspaces"] if w["name"] == "cap"] == [on_disk]
    assert all("local.workspace_max_mb" in a.content[0].text for a in answers if a.is_error)  # type: ignore[union-attr]
    # 4.5 MB in three workspaces: a fourth 1.5 MB would pass max_data_mb, and so does a run that writes it
    assert "local.max_data_mb" in refused and "Next:" in refused
    assert run["state"] == "failed" and "local.max_data_mb, less the other workspaces" in run["message"], run


async def test_a_workspace_record_is_written_under_a_name_nobody_can_plant(tmp_path: Path, config_file: Any) -> None:
    # Two servers on one data directory may share a pid (containers): a pid-named temporary file is no private name
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    async with connect(load_settings(config_file('toolsets = ["workspaces"]\n'))) as client:
        await client.call_tool("execRun", {"command": "echo one > a", "workspace": "w"})
        meta = load_settings().data_dir / "workspaces" / "local" / ".meta"
        (meta / f".w.{os.getpid()}.tmp").symlink_to(victim)  # the name the record was once written through
        await client.call_tool("execRun", {"command": "head -c 5000 /dev/zero > b", "workspace": "w"})
        listed = structured(await client.call_tool("listWorkspaces", {}))["workspaces"]
        runs = structured(await client.call_tool("listSessions", {}))["sessions"]
    assert [run["raw"].get("workspace") for run in runs] == ["w", "w"] and "cwd" not in runs[0]["raw"], runs
    assert victim.read_text() == "untouched"
    assert [(w["name"], w["size_bytes"] >= 5000) for w in listed] == [("w", True)], listed


async def test_a_deletion_takes_the_workspace_out_of_reach_first_and_retention_finishes_what_one_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from providers.local import workspaces as module
    from providers.local.workspaces import DELETING, Workspaces

    looked: list[str] = []

    async def busy_once_renamed(directory: str) -> bool:  # a run recorded as starting in "kept" meanwhile
        looked.append(directory)
        return directory.endswith("/kept") and len(looked) > 1

    workspaces = Workspaces(tmp_path, max_mb=10, max_count=10, retention_days=30, busy=busy_once_renamed)
    (workspaces.ensure("w") / "a").write_text("one")
    (workspaces.ensure("kept") / "b").write_text("two")
    left = workspaces.root / f"{DELETING}old-0a1b2c3d"  # what an earlier deletion could not finish
    (left / "deep").mkdir(parents=True)
    (left / "deep" / "f").write_text("x")
    deleted = await workspaces.delete_workspace("w")
    looked.clear()
    with pytest.raises(InvalidInput, match="in use"):
        await workspaces.delete_workspace("kept")
    assert deleted.deleted and sorted(os.listdir(workspaces.root)) == sorted([".meta", left.name, "kept"])
    assert (workspaces.root / "kept" / "b").read_text() == "two"  # put back whole
    assert [w.name for w in (await workspaces.list_workspaces()).workspaces] == ["kept"]
    await workspaces.prune()  # the retention pass: a leftover this young may be one a deletion still decides on
    assert left.exists()
    monkeypatch.setattr(module, "LEFTOVER_S", 0)
    await workspaces.prune()
    assert sorted(os.listdir(workspaces.root)) == [".meta", "kept"]


async def test_a_run_in_a_workspace_with_no_room_left_under_max_data_mb_is_still_measured(config_file: Any) -> None:
    # The other workspaces take all of max_data_mb: a run in a new one has no room at all, not no limit.
    settings = load_settings(config_file('toolsets = ["workspaces"]\n[local]\nworkspace_max_mb = 2\nmax_data_mb = 5\n'))
    sizes = {"a": 2_000_000, "b": 2_000_000, "c": 5 * 1024 * 1024 - 4_000_000}
    async with connect(settings) as client:
        for name, size in sizes.items():
            content = base64.b64encode(os.urandom(size)).decode()
            args = {"workspace": name, "path": "f", "content": content, "encoding": "base64"}
            structured(await client.call_tool("writeFile", args))
        command = "head -c 1048576 /dev/zero > big && sleep 20"
        run = structured(await client.call_tool("execRun", {"command": command, "workspace": "d", "timeout_s": 60}))
    assert run["state"] == "failed" and "local.max_data_mb, less the other workspaces" in run["message"], run


async def test_a_measure_that_outlives_its_workspace_does_not_bring_its_record_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measure after a run walks the workspace in a thread; a deleteWorkspace (and a new workspace of that
    name) may come meanwhile. The old size must not become the new workspace's record."""
    from providers.local import workspaces as module
    from providers.local.workspaces import Workspaces

    async def never_busy(directory: str) -> bool:
        return False

    workspaces = Workspaces(tmp_path, max_mb=10, max_count=10, retention_days=30, busy=never_busy)
    (workspaces.ensure("w") / "big").write_bytes(b"x" * 3_000_000)
    root, walk = workspaces.root, module.tree_bytes

    def walk_then_replace(path: str) -> int:
        size = walk(path)
        anyio.from_thread.run(workspaces.delete_workspace, "w")
        (workspaces.ensure("w") / "small").write_text("new")  # the same name, another workspace
        return size

    def walk_then_delete(path: str) -> int:
        size = walk(path)
        anyio.from_thread.run(workspaces.delete_workspace, "w")
        return size

    monkeypatch.setattr(module, "tree_bytes", walk_then_replace)
    await workspaces.measure(root, "w")
    listed = (await workspaces.list_workspaces()).workspaces
    assert [(w.name, w.size_bytes) for w in listed] == [("w", 0)], listed
    monkeypatch.setattr(module, "tree_bytes", walk_then_delete)
    await workspaces.measure(root, "w")
    assert (await workspaces.list_workspaces()).workspaces == []
    assert os.listdir(root / ".meta") == []  # no record left behind for a workspace made later to inherit
