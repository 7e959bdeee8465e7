"""The `runtimes-mcp` command: serve over stdio or HTTP, list the tools, or call one tool."""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:  # for annotations only: the commands import the server when they run
    from mcp.server.mcpserver import MCPServer

    from server.state import AppState

DESCRIPTION = """\
An MCP server over code-execution runtimes: sessions, runs, routines, launchers, events.

With no command it serves MCP over stdio (what Claude Desktop and IDEs launch).
The `local` provider works with no account; remote providers switch on when their
credentials are set in the environment (see `runtimes-mcp call getDocs '{"topic": "overview"}'`).
"""

EPILOG = """\
examples:
  runtimes-mcp                                       serve over stdio
  runtimes-mcp --transport http --port 8000          serve Streamable HTTP at http://127.0.0.1:8000/mcp
  runtimes-mcp tools                                 list the tools this configuration offers
  runtimes-mcp call execRun '{"command": "echo hello"}'
  runtimes-mcp call getDocs '{}'                     the documentation's table of contents

configuration: environment variables (RUNTIMES_MCP_DATA_DIR, RUNTIMES_MCP_DEFAULT_PROVIDER,
RUNTIMES_MCP_TOOLSETS, RUNTIMES_MCP_READ_ONLY, provider credentials and base URLs) and an
optional TOML file (--config or RUNTIMES_MCP_CONFIG). docs/configuration.md has the full table.
"""


def parser() -> argparse.ArgumentParser:
    from server.app import version

    p = argparse.ArgumentParser(
        prog="runtimes-mcp",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"runtimes-mcp {version()}")
    p.add_argument("--config", metavar="PATH", help="TOML config file (default: $RUNTIMES_MCP_CONFIG)")
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="how to serve (default stdio)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument(
        "--stateless",
        action="store_true",
        help="HTTP without server-side sessions, so any replica can answer any request",
    )
    p.add_argument("--json-response", action="store_true", help="HTTP answers as plain JSON instead of SSE")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="HTTP with --stateless: N server processes on one port, sharing the state (default 1)",
    )
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve HTTP without a bearer token (only behind your own authentication); tools that run commands "
        "on this machine are then off",
    )
    p.add_argument(
        "--unauthenticated-local-exec",
        action="store_true",
        help="with --insecure-no-auth: offer the tools that run commands on this machine all the same",
    )
    # --config is also taken after the command (`runtimes-mcp tools --config x.toml`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="TOML config file")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("tools", parents=[common], help="print the tools this configuration offers")
    call = sub.add_parser(
        "call", parents=[common], help="call one tool through an in-process MCP client and print the result"
    )
    call.add_argument("tool", help="tool name, e.g. execRun")
    call.add_argument("arguments", nargs="?", default="{}", help="JSON object of arguments (default {})")
    return p


def main(argv: list[str] | None = None) -> int:
    from server.parent_watch import follow_parent

    follow_parent()  # a worker of --workers ends with its parent: first of all, however its start goes
    gc.disable()  # until the server is built: see server.app.freeze_startup_objects
    try:
        return _main(argv)
    finally:
        gc.enable()


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    from server.config import ConfigError, load_settings
    from server.logs import configure_logging

    try:
        settings = load_settings(args.config)
        configure_logging(settings.log_level, settings.secret_values())
        return _dispatch(args, settings)
    except ConfigError as exc:
        print(f"runtimes-mcp: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `runtimes-mcp tools | head`: the reader has gone, and that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the final flush does not fail again
        return 0
    except Exception as exc:  # a start-up failure the user can fix, maybe inside the server's task groups
        reason = _startup_error(exc)
        if reason is None:
            raise
        print(f"runtimes-mcp: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _startup_error(exc: BaseException) -> str | None:
    """The one-line reason of a start-up failure the user can fix (e.g. an unusable data directory)."""
    from providers.services import StartError

    if isinstance(exc, StartError):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (reason := _startup_error(inner)) is not None:
                return reason
    return None


def _dispatch(args: argparse.Namespace, settings: Any) -> int:
    if args.command == "tools":
        return anyio.run(print_tools, settings)
    if args.command == "call":
        try:
            arguments = json.loads(args.arguments)
        except json.JSONDecodeError as exc:
            print(f"runtimes-mcp: arguments are not valid JSON: {exc}", file=sys.stderr)
            return 2
        if not isinstance(arguments, dict):
            print('runtimes-mcp: arguments must be a JSON object, e.g. \'{"command": "ls"}\'', file=sys.stderr)
            return 2
        return anyio.run(call_tool, settings, args.tool, arguments)
    if args.workers != 1:
        return _serve_workers(args, settings)
    if args.transport == "http":
        from server.http import serve_http

        return anyio.run(
            serve_http,
            settings,
            args.host,
            args.port,
            args.stateless,
            args.json_response,
            args.insecure_no_auth,
            args.unauthenticated_local_exec,
        )
    return anyio.run(serve_stdio, settings)


def _serve_workers(args: argparse.Namespace, settings: Any) -> int:
    from server.config import ConfigError
    from server.workers import serve_workers

    if args.transport != "http" or not args.stateless:
        raise ConfigError("--workers needs --transport http --stateless (each request may reach any worker)")
    if not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers must be between 1 and 64, got {args.workers}")
    argv = [a for i, a in enumerate(args.argv) if not _is_workers_option(args.argv, i)]
    return serve_workers(
        settings,
        argv,
        workers=args.workers,
        host=args.host,
        port=args.port,
        insecure_no_auth=args.insecure_no_auth,
        unauthenticated_exec=args.unauthenticated_local_exec,
    )


def _is_workers_option(argv: list[str], i: int) -> bool:
    return argv[i] == "--workers" or argv[i].startswith("--workers=") or (i > 0 and argv[i - 1] == "--workers")


def build_server(settings: Any, *, services: bool = True) -> MCPServer[AppState]:
    """The server, and the end of start-up for the garbage collector (see main). One-shot commands pass
    `services=False`: they must not start (and at once stop) the local launchers."""
    from server.app import create_server, freeze_startup_objects

    server = create_server(settings, services=services)
    freeze_startup_objects()
    return server


async def serve_stdio(settings: Any) -> int:
    """Serve until stdin closes or a signal arrives; either way the lifespan stops what we started."""
    from mcp.server.stdio import stdio_server

    from server.stdio_pipes import AnsweringUnparsable, open_stdio_pipes, pipe_streams
    from tools.sdk import run_on_streams

    server = build_server(settings)
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        async with open_stdio_pipes() as pipes:
            streams = pipe_streams(pipes) if pipes is not None else stdio_server()
            async with streams as (read_stream, write_stream):
                await run_on_streams(server, AnsweringUnparsable(read_stream, write_stream), write_stream)
        tg.cancel_scope.cancel()
    return 0


async def print_tools(settings: Any) -> int:
    """Every offered tool: its hints, description, and each argument with its JSON type and allowed values."""
    from mcp import Client

    from docs_topics.model import describe_schema

    async with Client(build_server(settings, services=False)) as client:
        listed = await client.list_tools()
    for tool in listed.tools:
        flags = _hints(tool.annotations)
        props = tool.input_schema.get("properties", {})
        required = set(tool.input_schema.get("required", []))
        print(f"{tool.name}  ({', '.join(flags)})\n    {tool.description}")
        for name, schema in props.items():
            need = "required" if name in required else "optional"
            about = f": {schema['description']}" if schema.get("description") else ""
            print(f"    - {name} ({describe_schema(schema)}, {need}){about}")
        if not props:
            print("    (no arguments)")
    return 0


def _hints(annotations: Any) -> list[str]:
    """The tool's hints in words, the MCP defaults filled in (an absent destructive hint means destructive).
    open-world is left out: this server never states it (tools/build.annotations_for)."""
    if annotations is None:
        return ["destructive"]
    if annotations.read_only_hint:
        flags = ["read-only"]
    else:
        flags = ["changes things" if annotations.destructive_hint is False else "destructive"]
    if annotations.idempotent_hint:
        flags.append("idempotent")
    return flags


async def call_tool(settings: Any, name: str, arguments: dict[str, Any]) -> int:
    from mcp import Client
    from mcp.types import TextContent

    async with Client(build_server(settings, services=False)) as client:
        result = await client.call_tool(name, arguments)
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    if result.is_error:
        print(text, file=sys.stderr)
        return 1
    try:  # a person reads this: indent JSON results (agents get them compact)
        print(json.dumps(json.loads(text), indent=2, ensure_ascii=False))
    except ValueError:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
