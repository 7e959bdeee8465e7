"""Every fenced code block of README.md and docs/*.md is run or parsed, as its info string says:

- ```toml: loaded by the server's own config loader (a first line `# NAME.toml` also writes it to a temp
  directory under that name, for the commands of the same page that pass `--config NAME.toml`);
- ```json: an MCP client config: a `runtimes-mcp` command with arguments the CLI accepts and settings the
  server knows (they must load), or an HTTP entry at `/mcp`;
- ```sh / ```bash: every `runtimes-mcp` command line is parsed with the CLI's own argparse parser (inside
  `pip`, `claude mcp add`, `uvx` lines too; a `docker run` behind the Dockerfile's ENTRYPOINT), with the tool
  and argument names of a `call` and the settings of `VAR=value`; the quick, harmless ones (--help, tools,
  reads, workspace files, a short `echo` or `python3 FILE.py` run) also run, in a temp directory with a temp
  data directory; serving commands, docker and pip are never run;
- ```yaml: a compose file: each service of the `runtimes-mcp` image has its argv (the Dockerfile's ENTRYPOINT,
  then `command`) accepted by the CLI parser, and only settings the server knows;
- ```python: compiles; names imported from an installed package exist, and so do the keyword arguments
  passed to them.

No test sends traffic beyond 127.0.0.1, starts a server that stays up, or sleeps.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from server.cli import parser as cli_parser
from server.config import ConfigError, load_settings, setting_variables
from tools.catalog import ALL

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
KINDS = {"toml": "toml", "json": "json", "sh": "sh", "bash": "sh", "yaml": "yaml", "yml": "yaml", "python": "python"}
HOW_TO_MARK = (
    "give it one of the info strings toml, json, sh (or bash), yaml or python: tests/test_docs_examples.py "
    "checks each kind (its docstring says how)"
)
# Programs of shell examples that are not run here; a `runtimes-mcp` command line inside them is parsed.
NOT_RUN = {"python3", "python", "pip", "pipx", "uvx", "docker", "claude", "openssl", "pytest", "git", "cd", "ray"}
# Calls that may run here, in a temp data directory: quick, and nothing is left behind.
HARMLESS_CALLS = {"listSessions", "getDocs", "getLaunchers", "getSession", "writeFile", "readFile"}
TOOLS = {spec.name: spec for spec in ALL}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with their info string and first line number."""
    found, lines = [], page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(`{3,}|~{3,})(.*)$", lines[i])
        if fence is None:
            i += 1
            continue
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].startswith(fence.group(1)) and not lines[j].strip("`~")),
            None,
        )
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: a code block is never closed"
        found.append(Block(page, i + 1, fence.group(2).strip(), "\n".join(lines[i + 1 : end]) + "\n"))
        i = end + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]


def kind_of(block: Block) -> str:
    kind = KINDS.get(block.info.split(" ")[0].lower()) if block.info else None
    if kind is None:
        pytest.fail(f"{block.where}: a code block with info string {block.info!r} is checked by no test; {HOW_TO_MARK}")
    return kind


# --- the CLI, as the Dockerfile and the console script start it ----------------------------------------------


def console_script() -> str:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts.get("runtimes-mcp") == "server.cli:main"
    return "runtimes-mcp"


def entrypoint() -> list[str]:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()]
    entry = [line for line in lines if line.startswith("ENTRYPOINT ")]
    assert len(entry) == 1, "the Dockerfile has one exec-form ENTRYPOINT"
    argv: list[str] = json.loads(entry[0].removeprefix("ENTRYPOINT "))
    return argv


def cli_problem(args: list[str]) -> str | None:
    """Why the CLI's own parser refuses these arguments (what follows `runtimes-mcp`), or None."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parsed = cli_parser().parse_args(args)
        except SystemExit as exc:
            why = err.getvalue().strip().splitlines()[-1:] or ["refused"]
            return None if exc.code == 0 else f"runtimes-mcp {shlex.join(args)}: {why[0]}"
    if parsed.command == "call":
        return call_problem(parsed.tool, parsed.arguments)
    return None


def call_problem(tool: str, arguments: str) -> str | None:
    """A `call TOOL JSON` names a tool of the server and only arguments it takes."""
    if tool != "getDocs" and tool not in TOOLS:
        return f"call {tool}: there is no such tool"
    try:
        given = json.loads(arguments)
    except json.JSONDecodeError as exc:
        return f"call {tool}: the arguments are not JSON ({exc})"
    takes = {"topic", "detail"} if tool == "getDocs" else {"provider", *(a.name for a in TOOLS[tool].args)}
    if not isinstance(given, dict) or set(given) - takes:
        return f"call {tool}: {tool} takes none of {sorted(set(given) - takes) if isinstance(given, dict) else given}"
    return None


def container_argv_problem(command: list[str]) -> str | None:
    """A container of the image runs the Dockerfile's ENTRYPOINT with `command` after it."""
    argv = [*entrypoint(), *command]
    script = argv.index(console_script())
    problem = cli_problem(argv[script + 1 :])
    return None if problem is None else f"the container would run {shlex.join(argv)}: {problem}"


# --- settings ---------------------------------------------------------------------------------------------------


def setting_names() -> set[str]:
    return setting_variables()


def settings_problem(env: dict[str, str], tmp_path: Path) -> str | None:
    """Settings the server does not know, or that do not load."""
    unknown = sorted(name for name in env if name.startswith("RUNTIMES_MCP_") and name not in setting_names())
    if unknown:
        return f"unknown setting(s) {', '.join(unknown)}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNTIMES_MCP_DATA_DIR", str(tmp_path / "data"))
        for name, value in env.items():
            if name in setting_names() and "$" not in value and "…" not in value:
                patch.setenv(name, value)
        try:
            load_settings()
        except ConfigError as exc:
            return str(exc)
    return None


# --- toml -------------------------------------------------------------------------------------------------------


def check_toml(block: Block, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(block.text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNTIMES_MCP_DATA_DIR", str(tmp_path / "data"))
        try:
            load_settings(config)
        except ConfigError as exc:
            pytest.fail(f"{block.where}: the config loader refuses this TOML: {exc}")


def named_tomls(page: Path) -> dict[str, str]:
    """The TOML blocks of a page that name their file in a first-line comment (`# runtimes.toml`)."""
    named = {}
    for block in blocks(page):
        first = block.text.splitlines()[0] if block.text.strip() else ""
        if block.info == "toml" and re.fullmatch(r"#\s*[\w.-]+\.toml\s*", first):
            named[first.lstrip("#").strip()] = block.text
    return named


# --- json -------------------------------------------------------------------------------------------------------


def check_json(block: Block, tmp_path: Path) -> None:
    try:
        config = json.loads(block.text)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{block.where}: not JSON: {exc}")
    servers = config.get("mcpServers", config.get("servers")) if isinstance(config, dict) else None
    if not isinstance(servers, dict) or not servers:
        pytest.fail(f"{block.where}: a json block is an MCP client config with `mcpServers` (or `servers`)")
    for name, entry in servers.items():
        if "url" in entry:
            url = urlsplit(entry["url"])
            assert url.scheme in ("http", "https") and url.path == "/mcp", f"{block.where}: {name}: url {url}"
            auth = entry.get("headers", {}).get("Authorization", "")
            assert auth.startswith("Bearer "), f"{block.where}: {name}: the server wants Authorization: Bearer"
            continue
        assert entry.get("command") == console_script(), f"{block.where}: {name} runs {entry.get('command')!r}"
        problem = cli_problem([str(a) for a in entry.get("args", [])])
        problem = problem or settings_problem(entry.get("env", {}), tmp_path)
        assert problem is None, f"{block.where}: {name}: {problem}"


# --- sh ---------------------------------------------------------------------------------------------------------


@dataclass
class Command:
    env: dict[str, str]
    argv: list[str]


def commands(script: str) -> Iterator[Command]:
    """The simple commands of a shell example: lines joined, comments dropped, `$(...)` a plain word, split
    at `&&`, `||`, `;` and `|`, leading VAR=value taken as its environment."""
    script = re.sub(r"\$\([^()]*\)", "SUBSTITUTED", script.replace("\\\n", " "))
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set(";&|"):
                if words:
                    env = {}
                    while words and re.match(r"[A-Za-z_]\w*=", words[0]):
                        name, _, value = words.pop(0).partition("=")
                        env[name] = value
                    yield Command(env, words)
                words = []
            else:
                words.append(token)


def check_sh(block: Block, tmp_path: Path) -> None:
    for command in commands(block.text):
        problem = settings_problem(command.env, tmp_path)
        assert problem is None, f"{block.where}: {shlex.join(command.argv)}: {problem}"
        if not command.argv:
            continue
        program = Path(command.argv[0]).name
        args = command.argv[1:]
        if program == console_script():
            problem = cli_problem(args)
            assert problem is None, f"{block.where}: {problem}"
            if runnable(args):
                run_here(block, command, tmp_path)
        elif program == "docker":
            if args[:1] == ["run"]:
                assert console_script() in args, f"{block.where}: docker run names the image {console_script()}"
                problem = container_argv_problem(args[args.index(console_script()) + 1 :])
                assert problem is None, f"{block.where}: {problem}"
        elif program in NOT_RUN:
            if console_script() in args:
                problem = cli_problem(args[args.index(console_script()) + 1 :])
                assert problem is None, f"{block.where}: {problem}"
        else:
            pytest.fail(
                f"{block.where}: no test knows what `{program}` does: run `runtimes-mcp` itself, or add "
                f"{program} to NOT_RUN in tests/test_docs_examples.py if it is safe to leave unchecked"
            )


def runnable(args: list[str]) -> bool:
    """Quick, harmless and self-contained: help, the tool list, reads, files in a workspace, a short run."""
    parsed = cli_parser().parse_args([a for a in args if a not in ("--help", "-h", "--version")])
    if "--help" in args or "-h" in args or "--version" in args:
        return True
    if parsed.command == "tools":
        return True
    if parsed.command != "call" or "…" in parsed.arguments:
        return False
    if parsed.tool in HARMLESS_CALLS:
        return True
    # A run with the default wait (30 s) and timeout, ended with the `call` (on_exit = "stop"), of a command that
    # reaches no network: `echo`, or python3 on a file of the workspace.
    arguments = json.loads(parsed.arguments)
    if parsed.tool != "execRun" or not set(arguments) <= {"command", "workspace"}:
        return False
    return re.fullmatch(r"echo [\w .,-]+|python3 [\w-]+\.py( > [\w.-]+)?", arguments["command"]) is not None


def run_here(block: Block, command: Command, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    for name, text in named_tomls(block.page).items():
        (work / name).write_text(text, encoding="utf-8")
    parsed = cli_parser().parse_args([a for a in command.argv[1:] if a not in ("--help", "-h", "--version")])
    config = getattr(parsed, "config", None)
    if config is not None and not (work / config).is_file():
        pytest.fail(
            f"{block.where}: --config {config}: name a TOML block of this page so, with a first line # {config}"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIMES_MCP_")}
    env |= {"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data"), "RUNTIMES_MCP_ON_EXIT": "stop", "PYTHONPATH": str(ROOT)}
    env |= command.env
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *command.argv[1:]],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{block.where}: {shlex.join(command.argv)} failed: {done.stderr[-2000:]}"


# --- yaml -------------------------------------------------------------------------------------------------------


def load_yaml(text: str) -> Any:
    """PyYAML when it is installed; else `mini_yaml`, enough for a compose file."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        return mini_yaml(text)
    return yaml.safe_load(text)


def mini_yaml(text: str) -> Any:
    """A YAML subset: block mappings and sequences by indentation, flow `[...]` and `{...}`, quoted and plain
    scalars, comments, anchors, aliases and `<<` merges."""
    lines = []
    for raw in text.splitlines():
        line = _strip_comment(raw).rstrip()
        if line.strip():
            lines.append((len(line) - len(line.lstrip(" ")), line.strip()))
    anchors: dict[str, Any] = {}
    value, end = _block(lines, 0, lines[0][0] if lines else 0, anchors)
    assert end == len(lines), f"YAML: cannot read line {lines[end][1]!r}"
    return value


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i]
    return line


def _block(lines: list[tuple[int, str]], i: int, indent: int, anchors: dict[str, Any]) -> tuple[Any, int]:
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("-"):
            rest = lines[i][1][1:].strip()
            if rest:
                items.append(_scalar_or_flow(rest, anchors))
                i += 1
            else:
                value, i = _block(lines, i + 1, lines[i + 1][0], anchors)
                items.append(value)
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        key, sep, rest = lines[i][1].partition(":")
        assert sep, f"YAML: expected `key: value`, got {lines[i][1]!r}"
        rest = rest.strip()
        anchor = None
        if rest.startswith("&"):
            anchor, _, rest = rest.partition(" ")
            rest = rest.strip()
        if rest:
            value = _scalar_or_flow(rest, anchors)
            i += 1
        elif i + 1 < len(lines) and lines[i + 1][0] > indent:
            value, i = _block(lines, i + 1, lines[i + 1][0], anchors)
        else:
            value, i = None, i + 1
        if anchor:
            anchors[anchor[1:]] = value
        key = _unquote(key.strip())
        if key == "<<":
            mapping = {**value, **mapping}
        else:
            mapping[key] = value
    return mapping, i


def _scalar_or_flow(text: str, anchors: dict[str, Any]) -> Any:
    if text.startswith("*"):
        return anchors[text[1:]]
    if text[0] in "[{":
        value, end = _flow(text, 0)
        assert not text[end:].strip(), f"YAML: trailing text after {text[:end]!r}"
        return value
    return _plain(text)


def _flow(text: str, i: int) -> tuple[Any, int]:
    close = {"[": "]", "{": "}"}[text[i]]
    items: list[Any] = []
    i += 1
    while True:
        while text[i] == " ":
            i += 1
        if text[i] == close:
            break
        if text[i] in "[{":
            item, i = _flow(text, i)
        elif text[i] in "'\"":
            end = text.index(text[i], i + 1)
            item, i = text[i + 1 : end], end + 1
        else:
            end = i
            while text[end] not in ",]}" and not (close == "}" and text[end] == ":" and text[end + 1] == " "):
                end += 1
            item, i = _plain(text[i:end].strip()), end
        while text[i] == " ":
            i += 1
        if close == "}" and text[i] == ":":
            value, i = _flow_value(text, i + 1)
            items.append((item, value))
        else:
            items.append(item)
        while text[i] == " ":
            i += 1
        if text[i] == ",":
            i += 1
    return (dict(items) if close == "}" else items), i + 1


def _flow_value(text: str, i: int) -> tuple[Any, int]:
    while text[i] == " ":
        i += 1
    if text[i] in "[{":
        return _flow(text, i)
    if text[i] in "'\"":
        end = text.index(text[i], i + 1)
        return text[i + 1 : end], end + 1
    end = i
    while text[end] not in ",]}":
        end += 1
    return _plain(text[i:end].strip()), end


def _plain(text: str) -> Any:
    if text[:1] in "'\"" and text[-1:] == text[:1] and len(text) > 1:
        return text[1:-1]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return {"true": True, "false": False, "null": None, "~": None}.get(text, text)


def _unquote(text: str) -> str:
    return text[1:-1] if text[:1] in "'\"" and text[-1:] == text[:1] and len(text) > 1 else text


def compose_problems(text: str) -> list[str]:
    """What would stop a compose file's runtimes-mcp services: an argv the CLI refuses, a setting it does not know."""
    compose = load_yaml(text)
    assert isinstance(compose, dict) and isinstance(compose.get("services"), dict), "a yaml block is a compose file"
    problems, ours = [], 0
    for name, service in compose["services"].items():
        if service.get("image") != console_script() and "build" not in service:
            continue
        ours += 1
        command = service.get("command", [])
        command = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
        if "entrypoint" in service:
            problems.append(f"{name}: sets its own entrypoint; keep the image's (dumb-init reaps the supervisors)")
            continue
        problem = container_argv_problem(command)
        if problem:
            problems.append(f"{name}: {problem}")
        env = service.get("environment", {})
        env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
        unknown = sorted(k for k in env if k.startswith("RUNTIMES_MCP_") and k not in setting_names())
        if unknown:
            problems.append(f"{name}: unknown setting(s) {', '.join(unknown)}")
    if not ours:
        problems.append(f"no service runs the {console_script()} image")
    return problems


def check_yaml(block: Block, tmp_path: Path) -> None:
    problems = compose_problems(block.text)
    assert not problems, f"{block.where}: " + "; ".join(problems)


# --- python -----------------------------------------------------------------------------------------------------


def python_problems(source: str) -> list[str]:
    """Compile; then, for packages installed here, the imported names and the keyword arguments given to them."""
    tree = compile(source, "<snippet>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    compile(tree, "<snippet>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    imported: dict[str, Any] = {}
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if importlib.util.find_spec(node.module.split(".")[0]) is None:
                continue  # not installed here: compiling is all we can do
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    problems.append(f"{node.module} has no {alias.name}")
                else:
                    imported[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
            try:
                parameters = inspect.signature(imported[node.func.id]).parameters
            except (TypeError, ValueError):
                continue
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
                continue
            for keyword in node.keywords:
                if keyword.arg is not None and keyword.arg not in parameters:
                    problems.append(f"{node.func.id}() takes no argument {keyword.arg}")
    return problems


def check_python(block: Block, tmp_path: Path) -> None:
    try:
        problems = python_problems(block.text)
    except SyntaxError as exc:
        pytest.fail(f"{block.where}: does not compile: {exc}")
    assert not problems, f"{block.where}: " + "; ".join(problems)


CHECKS = {"toml": check_toml, "json": check_json, "sh": check_sh, "yaml": check_yaml, "python": check_python}


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.where for b in ALL_BLOCKS])
def test_every_example_runs_or_parses(block: Block, tmp_path: Path) -> None:
    CHECKS[kind_of(block)](block, tmp_path)


def test_the_readme_is_short_and_links_every_page_once() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 200
    read_on = readme[readme.index("## Where to read on") :]
    for page in PAGES[1:]:
        lines = [line for line in read_on.splitlines() if f"]({page.relative_to(ROOT)})" in line]
        assert len(lines) == 1, f"README's `Where to read on` gives {page.relative_to(ROOT)} one line"


def test_every_setting_is_in_the_configuration_table() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(name for name in setting_names() if f"`{name}`" not in table)
    assert not missing, f"docs/configuration.md's table lacks {', '.join(missing)}"


def test_the_pages_have_examples_of_every_kind() -> None:
    kinds = {KINDS.get(b.info.split(" ")[0]) for b in ALL_BLOCKS if b.info}
    assert {"toml", "json", "sh", "yaml", "python"} <= kinds


# --- the checks catch what they are for ---------------------------------------------------------------------------

# The compose example as the README had it: `command` repeats the ENTRYPOINT's runtimes-mcp (#34.5).
REPEATED_ENTRYPOINT = """\
services:
  replica-a: &replica
    image: runtimes-mcp
    command: [runtimes-mcp, --transport, http, --host, 0.0.0.0, --stateless, --json-response, --workers, "2"]
    environment:
      RUNTIMES_MCP_STATE_URL: postgresql://postgres:example@db:5432/postgres
  replica-b:
    <<: *replica
"""


def test_a_compose_command_that_repeats_the_entrypoint_is_refused() -> None:
    problems = compose_problems(REPEATED_ENTRYPOINT)
    assert len(problems) == 2 and all("dumb-init -- runtimes-mcp runtimes-mcp --transport" in p for p in problems)
    assert "invalid choice: 'runtimes-mcp'" in problems[0]
    fixed = REPEATED_ENTRYPOINT.replace("[runtimes-mcp, --transport", "[--transport")
    assert compose_problems(fixed) == []


def test_the_mini_yaml_reader_reads_compose_as_yaml_does() -> None:
    text = REPEATED_ENTRYPOINT + (
        "  db:\n    image: postgres:15  # a comment\n    environment: {POSTGRES_PASSWORD: example}\n"
        "    healthcheck:\n      test: [CMD, python, -c, \"print('a, b: c')\"]\n"
        '    ports:\n      - "8000:8000"\n      - 5432\n'
        "volumes: {a-data: {}, b-data: {}}\n"
    )
    read = mini_yaml(text)
    assert read["services"]["replica-b"] == read["services"]["replica-a"]
    assert read["services"]["replica-a"]["command"][-1] == "2"
    assert read["services"]["db"]["environment"] == {"POSTGRES_PASSWORD": "example"}
    assert read["services"]["db"]["healthcheck"]["test"] == ["CMD", "python", "-c", "print('a, b: c')"]
    assert read["services"]["db"]["ports"] == ["8000:8000", 5432]
    assert read["volumes"] == {"a-data": {}, "b-data": {}}


def test_the_checks_refuse_wrong_commands_settings_and_arguments(tmp_path: Path) -> None:
    assert cli_problem(["--transport", "http", "--stateless"]) is None
    assert "invalid choice" in str(cli_problem(["serve"]))
    assert "no such tool" in str(cli_problem(["call", "runCode", "{}"]))
    assert "takes none of ['timeout']" in str(cli_problem(["call", "execRun", '{"command": "x", "timeout": 5}']))
    assert "unknown setting(s) RUNTIMES_MCP_TOOLSET" in str(settings_problem({"RUNTIMES_MCP_TOOLSET": "x"}, tmp_path))
    assert "unknown toolset(s) nope" in str(settings_problem({"RUNTIMES_MCP_TOOLSETS": "nope"}, tmp_path))
    sh = list(commands("A=1 B=$(openssl rand -hex 4) \\\n  runtimes-mcp --port 1 && pip install . # note\n"))
    assert [(c.env, c.argv) for c in sh] == [
        ({"A": "1", "B": "SUBSTITUTED"}, ["runtimes-mcp", "--port", "1"]),
        ({}, ["pip", "install", "."]),
    ]
    assert python_problems("from mcp import Client\nClient('x', read_timeout=1)\n") == [
        "Client() takes no argument read_timeout"
    ]
    assert python_problems("from mcp import NoSuchThing\n") == ["mcp has no NoSuchThing"]
