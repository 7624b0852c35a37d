"""Private MariaDB and PostgreSQL servers for fault tests: their own data directory and
spare loopback port, so a test can kill and restart them without touching the shared ones.

Needs the Debian server packages (``scripts/services.sh`` installs them) and root (the servers
run as their own system users).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, up: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not come {'up' if up else 'down'} in {timeout} s")


class PrivateServer:
    """A server process that the test can kill (SIGKILL: a crash) and start again."""

    def __init__(
        self, name: str, port: int, command: list[str], log: Path, user: str | None = None
    ) -> None:
        self.name = name
        self.port = port
        self._command = command
        self._user = user
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            # The server itself is the child (no runuser in between), so SIGKILL reaches it.
            self._process = subprocess.Popen(self._command, stdout=log, stderr=log, user=self._user)
        wait_port(self.port, up=True)

    def kill(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._process = None
        wait_port(self.port, up=False)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None


def _as(user: str, *command: str) -> list[str]:
    return ["runuser", "-u", user, "--", *command]


def _postgres_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name} (Debian package postgresql) is missing")
    return str(found[-1])


@contextlib.contextmanager
def _server_dir() -> Iterator[Path]:
    """A directory the servers' own users can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="llmcache-faults-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[tuple[PrivateServer, str]]:
    with _server_dir() as workdir:
        yield from _postgres(workdir)


@contextlib.contextmanager
def private_mariadb() -> Iterator[tuple[PrivateServer, str]]:
    with _server_dir() as workdir:
        yield from _mariadb(workdir)


def _postgres(workdir: Path) -> Iterator[tuple[PrivateServer, str]]:
    data = workdir / "pg"
    data.mkdir(parents=True)
    shutil.chown(data, "postgres")
    os.chmod(data, 0o700)
    subprocess.run(
        _as("postgres", _postgres_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = PrivateServer(
        "postgres",
        port,
        [
            _postgres_bin("postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=on",
        ],
        workdir / "pg.log",
        user="postgres",
    )
    server.start()
    try:
        yield server, f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.stop()


def _mariadb(workdir: Path) -> Iterator[tuple[PrivateServer, str]]:
    data = workdir / "mariadb"
    data.mkdir(parents=True)
    shutil.chown(data, "mysql")
    subprocess.run(
        [
            "mariadb-install-db",
            f"--datadir={data}",
            "--user=mysql",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = PrivateServer(
        "mariadb",
        port,
        [
            "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={data}",
            f"--port={port}",
            f"--socket={data}/mariadb.sock",
            f"--pid-file={data}/mariadb.pid",
            "--bind-address=127.0.0.1",
            "--user=mysql",
            "--skip-grant-tables",
            "--innodb-flush-log-at-trx-commit=1",
        ],
        workdir / "mariadb.log",
    )
    server.start()
    try:
        yield server, f"mysql+pymysql://root@127.0.0.1:{port}/mysql"
    finally:
        server.stop()
