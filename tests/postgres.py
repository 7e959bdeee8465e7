"""A real PostgreSQL server for the tests: initdb + pg_ctl in a temporary directory (as the `postgres` user
when the tests run as root, since initdb refuses root)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    found = next((d for d in BIN_DIRS if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)
    on_path = shutil.which("pg_ctl")
    return found or (Path(on_path).resolve().parent if on_path else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    bin: Path
    base: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.getuid() == 0:  # runuser lives in sbin, which a bare PATH leaves out
            runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"
            command = [runuser, "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=check)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.base / "data"), "-o", options, "-l", str(self.base / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "-w", "stop", check=False)

    def database(self, name: str) -> str:
        """A fresh database; its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def start_postgres() -> Postgres:
    binaries = server_binaries()
    if binaries is None:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl)")
    base = Path(tempfile.mkdtemp(prefix="runtimes-mcp-pg-"))
    base.chmod(0o755)
    if os.getuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    pg = Postgres(binaries, base, _free_port())
    pg._run("initdb", "-D", str(base / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    pg.start()
    return pg


def remove(pg: Postgres) -> None:
    pg.stop()
    shutil.rmtree(pg.base, ignore_errors=True)
