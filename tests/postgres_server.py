"""A real PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder, on a Unix socket.

The server listens on no TCP port (``listen_addresses = ''``), only on a socket in its
own folder, so tests on one machine never collide. It runs with fsync off (a test
database need not survive a power cut; ``durable=True`` keeps it on, for timings), and it
is stopped and its folder removed when the session ends. PostgreSQL refuses to run as
root: as root the server runs as the ``postgres`` system user that Debian's package
creates (``runuser``).

Where the binaries are missing the tests are skipped with the reason, unless
``LENET_REQUIRE_POSTGRES=1`` (as tox sets it), which turns the skip into a failure.
Binaries are looked up on PATH, then under ``/usr/lib/postgresql/<version>/bin``
(Debian installs them there, off PATH); ``scripts/system_deps.sh`` installs them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRE_ENV = "LENET_REQUIRE_POSTGRES"
SUPERUSER = "postgres"


class Unavailable(RuntimeError):
    """Why no server can be started here."""


def find_bin_dir() -> Path:
    """The folder holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned folders."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise Unavailable(
        "PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql, "
        "or run scripts/system_deps.sh)"
    )


def server_user() -> str | None:
    """The user to run the server as: None (ourselves) unless we are root, then ``postgres``."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise Unavailable(
            "running as root, and there is no 'postgres' system user to run the server as "
            "(PostgreSQL refuses root; Debian's postgresql package creates that user)"
        ) from None
    if shutil.which("runuser") is None and shutil.which("su") is None:
        raise Unavailable("running as root, and neither runuser nor su is there to start the server as 'postgres'")
    return SUPERUSER


@dataclass
class PostgresServer:
    root: Path  # data/, the socket and the log live here
    bin_dir: Path
    run_as: str | None
    durable: bool = False  # fsync and synchronous commits as a production server has them (for timings)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{user}{secret}@/{dbname}?host={self.root}"

    def _command(self, *args: str) -> list[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as is None:
            return command
        if shutil.which("runuser"):
            return ["runuser", "-u", self.run_as, "--", *command]
        return ["su", "-s", "/bin/sh", self.run_as, "-c", shlex.join(command)]

    def _run(self, *args: str) -> None:
        result = subprocess.run(self._command(*args), capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            log = self.log.read_text(errors="replace").strip().splitlines()[-3:] if self.log.exists() else []
            raise Unavailable(f"{args[0]} failed ({result.returncode}): {' / '.join(detail[-3:] + log)}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync")
        (self.data / "pg_hba.conf").write_text(
            # the superuser by trust over our private socket; everyone else must give a password
            f"local all {SUPERUSER} trust\nlocal all all scram-sha-256\n"
        )
        settings = {"unix_socket_directories": f"'{self.root}'", "listen_addresses": "''", "max_connections": "60"}
        if not self.durable:  # a test database need not survive a power cut
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @contextlib.contextmanager
    def fresh_database(self, name: str) -> Iterator[str]:
        """An empty database ``name`` (dropped first if a past run left it), as the superuser's URL; dropped after."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            with psycopg.connect(self.url(), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_server(durable: bool = False) -> PostgresServer:
    """A started server in a fresh folder; Unavailable (with the reason) when none can be started here."""
    bin_dir = find_bin_dir()
    run_as = server_user()
    # Short and under /tmp: a socket path must fit in 107 bytes, and the server's user must reach it.
    root = Path(tempfile.mkdtemp(prefix="lenet-pg-", dir="/tmp"))
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(root, bin_dir, run_as, durable)
    try:
        server.start()
    except (Unavailable, OSError, subprocess.SubprocessError) as error:
        with contextlib.suppress(Unavailable, OSError, subprocess.SubprocessError):
            server.stop()  # a server that started but did not answer in time
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(str(error)) from None
    return server


def unavailable(reason: str) -> None:
    """Skip with the reason, or fail where the environment requires the database tests to run."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but no PostgreSQL server could be started: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {reason} (set {REQUIRE_ENV}=1 to make this a failure)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        import psycopg  # noqa: F401 - only to say clearly when the driver is what is missing
    except ImportError:
        unavailable("the psycopg driver is not installed (pip install 'lenet-bench[db]')")
    try:
        server = start_server()
    except Unavailable as error:
        unavailable(str(error))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for one test, as the superuser's URL; dropped afterwards."""
    readable = "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40]
    name = f"t_{readable}_{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]}"  # unique per parameter set
    with postgres_server.fresh_database(name) as url:
        yield url
