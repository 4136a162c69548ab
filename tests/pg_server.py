"""A throwaway PostgreSQL for the tests: its own cluster in a temp dir, no Docker, no service.

``initdb`` + ``pg_ctl`` from Debian's ``postgresql`` package (``/usr/lib/postgresql/*/bin``,
newest version first; ``$BHI_PG_BIN`` names another bin directory). The server listens on
127.0.0.1 on a free port with trust authentication, its socket in the temp dir, durability off
(it is thrown away), and is stopped and removed when the test session ends.

PostgreSQL refuses to run as root, so as root everything runs as the ``postgres`` system user
(``runuser -u postgres --``) in a temp dir handed to that user.

No binaries: the calling tests are skipped with the reason — unless ``BHI_REQUIRE_PG=1`` (CI),
where that is a failure, never a silent skip. A server that is there but will not start is
always an error.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_ENV = "BHI_REQUIRE_PG"
BIN_ENV = "BHI_PG_BIN"
SUPERUSER = "postgres"


def _bin_dir() -> Path | None:
    if os.environ.get(BIN_ENV):
        candidates = [os.environ[BIN_ENV]]
    else:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                            else 0, reverse=True)
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class PgServer:
    port: int
    root: Path

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) of ``database`` on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    print(f"PostgreSQL tier skipped: {reason}")
    pytest.skip(f"PostgreSQL tier skipped: {reason}; install Debian's postgresql package "
                f"(or set {BIN_ENV})")


@contextlib.contextmanager
def running_pg_server() -> Iterator[PgServer]:
    """Start a fresh cluster; stop and delete it on exit. Skips (or fails) when impossible."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _skip_or_fail("the psycopg driver is not installed (pip install -e '.[test]')")
    bin_dir = _bin_dir()
    if bin_dir is None:
        where = os.environ.get(BIN_ENV) or "/usr/lib/postgresql/*/bin"
        _skip_or_fail(f"no PostgreSQL binaries (initdb, pg_ctl) in {where}")
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError:
            _skip_or_fail("running as root and there is no 'postgres' system user to run as")
        runuser = shutil.which("runuser")
        if runuser is None:
            _skip_or_fail("running as root and there is no runuser to drop to 'postgres'")
        prefix = [runuser, "-u", SUPERUSER, "--"]

    root = Path(tempfile.mkdtemp(prefix="bhi-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, log = root / "data", root / "server.log"

    def run(*args: str) -> None:
        result = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120,
                                cwd=root, check=False)
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}{tail}")

    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--no-locale", "--no-sync")
        for attempt in range(5):  # the free port can be taken between probe and bind
            port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=200")
            try:
                run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                    "-w", "-t", "60", "start")
            except RuntimeError:
                if attempt == 4:
                    raise
                continue
            started = True
            break
        yield PgServer(port=port, root=root)
    finally:
        if started:
            with contextlib.suppress(Exception):
                run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
