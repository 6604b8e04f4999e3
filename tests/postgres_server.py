"""A throwaway PostgreSQL server for the tests: its own cluster in a temp folder, on a free loopback port.

The tests of chatrec.store_postgres and the two-replica test run against this real server, not a mock:
locking, transactions and VACUUM are what they check. Without the server binaries (Debian:
``apt-get install postgresql``) they are skipped with that reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"  # initdb refuses to run as root: as root the server runs as this system user
ROLE = "chatrec"  # the role chatrec connects as, with a password over TCP (scram-sha-256)


@dataclass(frozen=True)
class PostgresServer:
    folder: Path  # the cluster (data/), its log and its unix socket
    port: int
    password: str  # of ROLE

    def url(self, database: str, password: str | None = None, port: int | None = None) -> str:
        """The URL chatrec is given for ``database`` (``password``/``port``: a wrong one, for error tests)."""
        pw = self.password if password is None else password
        return f"postgresql://{ROLE}:{pw}@127.0.0.1:{port or self.port}/{database}"

    def admin(self):
        """A superuser connection over the unix socket (trust), in autocommit."""
        import psycopg

        return psycopg.connect(host=str(self.folder), port=self.port, user=SERVER_USER, dbname="postgres",
                               autocommit=True)

    def create_database(self) -> str:
        """A fresh, empty database owned by ROLE (PostgreSQL 15 lets only the owner create tables in it); its URL."""
        name = "chatrec_" + secrets.token_hex(6)
        with self.admin() as db:
            db.execute(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """Create, start, and at the end stop and remove a cluster; skips the calling tests when it cannot."""
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as "
                        "(apt-get install postgresql creates it)")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing (util-linux), so PostgreSQL cannot be started")
        as_user = ["runuser", "-u", SERVER_USER, "--"]
    # Not under pytest's tmp_path: its folders are private to root, and the server's user must reach this one.
    folder = Path(tempfile.mkdtemp(prefix="chatrec-pg-"))
    if as_user:
        shutil.chown(folder, SERVER_USER)

    def run(*cmd: str) -> None:
        out = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            log = folder / "server.log"
            raise RuntimeError(f"{' '.join(cmd[:1])} failed: {out.stderr.strip()[-1500:]}"
                               + (f"\n{log.read_text()[-1500:]}" if log.exists() else ""))

    data, port = folder / "data", _free_port()
    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", SERVER_USER, "--auth-local=trust",
            "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C")
        # Durability off: a test cluster is thrown away, and fsync on a shared machine is slow.
        options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
            "-o", options, "start")
        started = True
        server = PostgresServer(folder, port, secrets.token_urlsafe(12))
        with server.admin() as db:
            db.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{server.password}'")
        yield server
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
