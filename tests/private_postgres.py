"""A PostgreSQL server of a test's own, in a temporary directory, that the test stops and starts.

Outage tests cannot stop the shared server other tests use, so they start their own with the
installed binaries (``/usr/lib/postgresql/<version>/bin``). PostgreSQL refuses to run as root:
under root the server runs as the ``postgres`` user (as ``scripts/services.sh`` does).
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from imagegate.store.migrate import upgrade_sync

__all__ = ["PrivatePostgres", "private_postgres"]


def _bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(n) for n in p.split("/")[-2].split(".")],
    )
    if not found:
        raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1])


def _free_port() -> int:
    """A free port below the kernel's ephemeral range.

    The server is stopped and started again on the same port; a port from the ephemeral range
    could meanwhile be taken as the source port of any outgoing connection (the test's own
    reconnect attempts make many), and the restart would fail to bind.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(10_000, low), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class PrivatePostgres:
    """One server: ``start()``, ``stop()`` (immediate, like a crash), ``create_database()``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self._bin = _bin_dir()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self._bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "--no-sync", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        """Start the server and wait until it answers; one that is already up is left alone.

        Right after an immediate stop, a start can lose the race for the old postmaster's
        leftovers: it is tried again for a few seconds before the failure is raised.
        """
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off"
        command = ("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o")
        for attempt in range(10):
            try:
                self._run(*command, options, "start")
                return
            except subprocess.CalledProcessError:
                if self.running():
                    return
                if attempt == 9:
                    log = (self.root / "log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"PostgreSQL did not start again:\n{log}") from None
                time.sleep(0.5)

    def running(self) -> bool:
        try:
            self._run("pg_ctl", "-D", str(self.data), "status")
        except subprocess.CalledProcessError:
            return False
        return True

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started, as a crashing host would.

        The children are killed too: a backend outliving its postmaster keeps the shared memory
        attached, and the next start would refuse to run beside it.
        """
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        family = [pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    family.append(int(stat.parent.name))
        for member in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
        # Until reaped, not merely dead: pg_ctl takes a zombie postmaster for a running one, and
        # a start would then leave the server down believing it up.
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{member}").exists() for member in family):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not die")
            time.sleep(0.05)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, migrated database on this server; its SQLAlchemy URL."""
        name = f"imagegate_{uuid.uuid4().hex[:12]}"
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.url(name)
        upgrade_sync(url)
        return url


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private server, stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="imagegate-pg-"))
    os.chmod(root, 0o755)
    server = PrivatePostgres(root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
