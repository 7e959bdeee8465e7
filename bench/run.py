"""Benchmarks of runtimes-mcp against its floors, each ratio measured in the same run (interleaved, so that the
host's noise falls on both sides alike), printed as a table and written to bench/RESULTS.md under a label.
Not a test: numbers, not verdicts (a step that fails is reported and makes the exit status 1).

    python -m bench.run [--label NAME] [--quick] [--only STEP,...] [--list]

Every server is driven by the same raw JSON-RPC client over stdio (or the same httpx loop over HTTP), so the
ratios compare servers, not clients. Everything runs on this machine: stdio pipes and 127.0.0.1. Each step
starts its own servers on data directories of its own and ends them, with whatever they started (see
bench/common.py: Owned); other runtimes-mcp servers on the machine are left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import calls, remote, runs, sessions, stores
from bench.common import HEADER, ROOT, Row, become_subreaper

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PACKAGES = ("server", "tools", "providers", "docs_topics")


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[bool], list[Row]]  # quick -> rows
    about: str


# In the order they run; the scale step last but the remote ones, as it leaves the most behind it (a thousand
# sessions' directories, page cache). A new bench module adds its steps here. (bench/ray.py needs a Ray cluster
# and runs on its own: python -m bench.ray.)
STEPS: list[Step] = [
    Step("context", calls.context_cost, "tools/list and getDocs sizes"),
    Step("cold", calls.cold_start, "cold start over stdio vs bare SDK and raw loop"),
    Step("calls", calls.call_latency, "getDocs / listSessions p50 vs SDK echo; RSS after start and over a soak"),
    Step("exec", runs.exec_run, "execRun `true`: unsandboxed, sandboxed, in a workspace, allow-list network"),
    Step("first-output", runs.first_output, "a printed line to its progress notification"),
    Step("files", runs.workspace_files, "writeFile + readFile of 10 MB vs open()"),
    Step("egress", runs.egress, "HTTPS through the egress proxy vs direct"),
    Step("http", calls.http, "Streamable HTTP, 1 and 32 clients, vs bare SDK"),
    Step("workers", calls.workers, "HTTP --workers 2 vs 1"),
    Step("events", stores.sqlite_events, "storeEvent on SQLite vs plain WAL inserts"),
    Step("postgres", stores.postgres_events, "storeEvent on PostgreSQL vs bare psycopg"),
    Step("sessions", sessions.scale, "1,000 live sessions, 100,000 records, retention (--quick: 100, 10,000)"),
    Step("remote", remote.overhead, "a remote provider call vs bare httpx"),
    Step("sign-in", calls.sign_in, "an HTTP call signed in with a JWT vs the static token (bench/auth.py)"),
    Step("answer-memory", remote.answer_memory, "peak memory while a 100 MB answer is refused"),
]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


def render(rows: list[Row], label: str, elapsed: float, quick: bool) -> str:
    mode = " (--quick)" if quick else ""
    lines = [
        f"## {label}",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}; the whole run{mode} took {elapsed:.0f} s.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


MARKER = "<!-- new runs go below this line, newest first -->"


def write_results(section: str, label: str) -> None:
    """Replace the label's section of RESULTS.md, or add it below the marker (at the end without one)."""
    text = RESULTS.read_text() if RESULTS.exists() else f"# Benchmark results\n\n{MARKER}\n"
    pattern = re.compile(rf"^## {re.escape(label)}\n.*?(?=^##? |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    elif MARKER in text:
        text = text.replace(MARKER, f"{MARKER}\n\n{section.rstrip()}", 1)
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)


def run_steps(steps: list[Step], quick: bool) -> tuple[list[Row], bool]:
    """Every step's rows; a step that fails gives one failing row saying why, and the others still run."""
    rows: list[Row] = []
    failed = False
    for step in steps:
        started = time.perf_counter()
        print(f"bench: {step.name} ...", file=sys.stderr, flush=True)
        try:
            rows += step.run(quick)
        except Exception as exc:
            traceback.print_exc()
            failed = True
            rows.append(
                Row(f"{step.name}: the step failed ({type(exc).__name__}: {exc})"[:300], 0, None, "", "-", False)
            )
        print(f"bench: {step.name} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return rows, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", help="section of RESULTS.md to write (default latest; with --only: none)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sessions (a couple of minutes)")
    parser.add_argument("--only", help="comma-separated steps to run (see --list)")
    parser.add_argument("--list", action="store_true", help="list the steps and exit")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.list:
        for step in STEPS:
            print(f"{step.name:14} {step.about}")
        return 0
    steps = STEPS
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {step.name for step in STEPS})
        if unknown:
            parser.error(f"unknown step(s) {', '.join(unknown)}; --list shows them")
        steps = [step for step in STEPS if step.name in wanted]
    label = args.label or ("latest" if not args.only else None)
    become_subreaper()
    started = time.perf_counter()
    # `pip install` byte-compiles a package, and the SDK we compare with was. Do the same for this tree, so that
    # an environment with PYTHONDONTWRITEBYTECODE does not time our compiling from source on each start.
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)
    rows, failed = run_steps(steps, args.quick)
    section = render(rows, label or "(not written)", time.perf_counter() - started, args.quick)
    print(section)
    if label and not args.no_write:
        write_results(section, label)
    return 1 if failed else 0


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    sys.exit(main())
