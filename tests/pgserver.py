"""A real, throwaway PostgreSQL server for the test suite.

``PgServer`` creates a fresh cluster with ``initdb`` in a temporary directory and
starts it with ``pg_ctl``, listening only on a Unix socket inside that directory
(no TCP port is opened, so parallel runs never collide). Durability is switched
off (fsync, synchronous_commit, full_page_writes) because the data is disposable.

PostgreSQL refuses to run as root. When the test process is root (as in CI), the
cluster is owned by an unprivileged system user (``lora-pg-test``, created with
``useradd`` if missing, else ``nobody``) and ``initdb``/``pg_ctl`` run as that user;
root can still connect to the socket. The database superuser role is ``lora`` and
local connections use ``trust`` authentication.

This module only needs the standard library at import time (psycopg is imported
lazily), so ``.ci/run`` can call ``python3 tests/pgserver.py --bindir`` with the
system interpreter to find out whether PostgreSQL binaries must be installed.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "REQUIRE_ENV",
    "PgServer",
    "PgServerError",
    "PostgresUnavailable",
    "find_pg_bindir",
    "postgres_required",
]

#: When this environment variable is set to a true value (CI sets it to 1),
#: PostgreSQL tests must fail instead of being skipped when no server is available.
REQUIRE_ENV = "LORA_REQUIRE_POSTGRES"

#: Unprivileged OS user that owns the cluster when the tests run as root.
DEFAULT_OS_USER = "lora-pg-test"

_PORT = 5432  # only used to name the socket file (.s.PGSQL.5432) in our private dir
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; keep a margin for "/.s.PGSQL.5432"


class PgServerError(RuntimeError):
    """The server could not be created, started or stopped."""


class PostgresUnavailable(PgServerError):
    """No PostgreSQL server binaries (initdb, pg_ctl, postgres) were found."""


def postgres_required() -> bool:
    """True when ``LORA_REQUIRE_POSTGRES`` asks for PostgreSQL tests to fail, not skip."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,) ; /usr/lib/postgresql/9.6/bin -> (9, 6)
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_pg_bindir() -> Path | None:
    """Directory holding initdb/pg_ctl/postgres, or None.

    Search order: ``pg_config --bindir``, then ``/usr/lib/postgresql/*/bin`` (highest
    version first), then ``initdb`` on PATH (symlinks resolved, so that a
    ``/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb`` finds its siblings).
    """
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _has_server_binaries(Path(out)):
            return Path(out)

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_server_binaries(Path(candidate)):
            return Path(candidate)

    initdb = shutil.which("initdb")
    if initdb:
        for bindir in (Path(initdb).parent, Path(initdb).resolve().parent):
            if _has_server_binaries(bindir):
                return bindir
    return None


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """Return an unprivileged user to own the cluster (root only): ``name``, else ``nobody``."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    if os.access(useradd, os.X_OK):
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "--user-group", name],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
        # Re-read even if useradd failed: a concurrent run may have created it.
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        raise PgServerError(
            f"running as root, and neither could user {name!r} be created nor does 'nobody' exist; "
            "PostgreSQL refuses to run as root"
        ) from None


def _traversable_by_others(path: Path) -> bool:
    path = path.resolve()
    for p in (path, *path.parents):
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _clean_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST, PGUSER... in the caller's environment must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    return env


class PgServer:
    """A temporary PostgreSQL cluster on a private Unix socket.

    >>> server = PgServer().start()
    >>> url = server.create_database("mydb")   # 'postgresql+psycopg://lora@/mydb?host=/tmp/...'
    >>> server.stop()

    Also usable as a context manager. ``stop()`` is idempotent and is registered
    with ``atexit`` so an aborted run does not leave a server behind.
    """

    def __init__(
        self,
        *,
        superuser: str = "lora",
        bindir: str | os.PathLike[str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        os_user: str = DEFAULT_OS_USER,
        start_timeout: int = 60,
    ) -> None:
        self.superuser = superuser
        self._bindir_arg = Path(bindir) if bindir is not None else None
        self._base_dir_arg = Path(base_dir) if base_dir is not None else None
        self._os_user_name = os_user
        self.start_timeout = start_timeout

        self.bindir: Path | None = None
        self.tmpdir: Path | None = None
        self._run_as: pwd.struct_passwd | None = None  # set when we are root
        self._started = False

    # -- paths -------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        return self._require_tmpdir()

    @property
    def datadir(self) -> Path:
        return self._require_tmpdir() / "data"

    @property
    def logfile(self) -> Path:
        return self._require_tmpdir() / "postgres.log"

    @property
    def running(self) -> bool:
        return self._started

    def _require_tmpdir(self) -> Path:
        if self.tmpdir is None:
            raise PgServerError("server has not been started")
        return self.tmpdir

    def _pick_base_dir(self) -> Path:
        if self._base_dir_arg is not None:
            return self._base_dir_arg
        base = Path(tempfile.gettempdir())
        too_long = len(str(base)) > _SOCKET_PATH_MAX - 40
        not_reachable = self._run_as is not None and not _traversable_by_others(base)
        if (too_long or not_reachable) and Path("/tmp").is_dir():
            base = Path("/tmp")
        return base

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> PgServer:
        if self._started:
            return self
        bindir = self._bindir_arg or find_pg_bindir()
        if bindir is None or not _has_server_binaries(bindir):
            raise PostgresUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: looked at "
                "`pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH. "
                "Install them, e.g. `apt-get install postgresql`."
            )
        self.bindir = bindir
        if os.geteuid() == 0:
            self._run_as = _ensure_os_user(self._os_user_name)

        self.tmpdir = Path(tempfile.mkdtemp(prefix="lora-pg-", dir=self._pick_base_dir()))
        try:
            if len(str(self.tmpdir)) > _SOCKET_PATH_MAX - len("/.s.PGSQL.5432"):
                raise PgServerError(f"socket directory path too long for a Unix socket: {self.tmpdir}")
            os.chmod(self.tmpdir, 0o700)
            if self._run_as is not None:
                os.chown(self.tmpdir, self._run_as.pw_uid, self._run_as.pw_gid)

            self._run(
                [str(bindir / "initdb"), "-D", str(self.datadir), "-U", self.superuser,
                 "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"],
                what="initdb",
            )  # fmt: skip
            options = " ".join(
                [
                    "-c listen_addresses=''",
                    f"-c unix_socket_directories={shlex.quote(str(self.socket_dir))}",
                    f"-c port={_PORT}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ]
            )
            # Registered before starting, so even a half-started server gets stopped.
            atexit.register(self.stop)
            self._started = True
            self._run(
                [str(bindir / "pg_ctl"), "start", "-D", str(self.datadir), "-l", str(self.logfile),
                 "-w", "-t", str(self.start_timeout), "-s", "-o", options],
                what="pg_ctl start",
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its directory. Safe to call twice."""
        tmpdir, self.tmpdir = self.tmpdir, None
        started, self._started = self._started, False
        atexit.unregister(self.stop)
        if tmpdir is None:
            return
        try:
            if started and self.bindir is not None and (tmpdir / "data" / "postmaster.pid").exists():
                try:
                    self._run(
                        [str(self.bindir / "pg_ctl"), "stop", "-D", str(tmpdir / "data"),
                         "-m", "immediate", "-w", "-t", "30", "-s"],
                        what="pg_ctl stop", cwd=tmpdir, timeout=60,
                    )  # fmt: skip
                except PgServerError:
                    self._kill_postmaster(tmpdir / "data" / "postmaster.pid")
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    @staticmethod
    def _kill_postmaster(pidfile: Path) -> None:
        """Last resort when pg_ctl stop fails: SIGKILL the postmaster we started."""
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) for ``dbname`` on this server's socket."""
        return f"postgresql+psycopg://{self.superuser}@/{dbname}?host={self.socket_dir}&port={_PORT}"

    def conninfo(self, dbname: str = "postgres") -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``."""
        return {"host": str(self.socket_dir), "port": _PORT, "user": self.superuser, "dbname": dbname}

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name`` (a copy of template1) and return its SQLAlchemy URL."""
        # PostgreSQL 15+ defaults to STRATEGY WAL_LOG, which writes the whole template
        # to WAL (~50 ms); FILE_COPY is ~8x faster with fsync off, and fine for tests.
        self._admin_execute("CREATE DATABASE {}", name, pg15_suffix=" STRATEGY FILE_COPY")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name``, terminating any connections still open to it."""
        self._admin_execute("DROP DATABASE IF EXISTS {}", name, pg13_suffix=" WITH (FORCE)")

    def _admin_execute(self, template: str, name: str, *, pg13_suffix: str = "", pg15_suffix: str = "") -> None:
        import psycopg
        from psycopg import sql

        if not self._started:
            raise PgServerError("server is not running")
        with psycopg.connect(**self.conninfo("postgres"), autocommit=True) as conn:
            version = conn.info.server_version
            suffix = (pg13_suffix if version >= 130000 else "") + (pg15_suffix if version >= 150000 else "")
            conn.execute(sql.SQL(template + suffix).format(sql.Identifier(name)))

    # -- helpers -----------------------------------------------------------
    def _run(self, cmd: list[str], *, what: str, cwd: Path | None = None, timeout: float = 120) -> None:
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
        try:
            proc = subprocess.run(
                cmd,
                cwd=cwd or self.tmpdir,  # our cwd (e.g. /root) may be unreadable for the pg user
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                **kwargs,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise PgServerError(f"{what} failed: {exc}") from exc
        if proc.returncode != 0:
            raise PgServerError(
                f"{what} failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
                f"{proc.stdout}{proc.stderr}{self._log_tail(cwd)}"
            )

    def _log_tail(self, tmpdir: Path | None = None) -> str:
        base = tmpdir or self.tmpdir
        if base is None:
            return ""
        try:
            lines = (base / "postgres.log").read_text(errors="replace").splitlines()[-30:]
        except OSError:
            return ""
        return "\n--- postgres.log (tail) ---\n" + "\n".join(lines)


def _main(argv: list[str]) -> int:
    if argv[1:] == ["--bindir"]:
        bindir = find_pg_bindir()
        if bindir is None:
            return 1
        print(bindir)
        return 0
    print(f"usage: {argv[0]} --bindir   (print PostgreSQL server bindir; exit 1 if none)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv))
