"""A throw-away PostgreSQL cluster for the tests and the node benchmark.

The cluster lives in a temporary folder, listens on no TCP port at all (only
a Unix socket in that folder), runs with fsync off, and is removed when it
stops. PostgreSQL refuses to run as root: as root the server runs as the
``postgres`` user that Debian's package creates.
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import pwd
import shutil
import subprocess
import tempfile

log = logging.getLogger(__name__)

SERVER_USER = "postgres"
DB_USER = "ums"
TEMPLATE = "ums_template"
SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
}


class ClusterError(RuntimeError):
    """The throw-away cluster could not be set up."""


def find_bindir() -> str | None:
    """Return the folder of initdb and pg_ctl (the newest Debian version)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0,
    )
    return os.path.dirname(candidates[-1]) if candidates else None


class PgCluster:
    """initdb, start, create databases, stop and remove one private cluster."""

    def __init__(self, bindir: str | None = None):
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise ClusterError("PostgreSQL is not installed (no initdb found)")
        self.root = tempfile.mkdtemp(prefix="ums-pg-")
        self.data = os.path.join(self.root, "data")
        self.socket_dir = self.root
        self.log_file = os.path.join(self.root, "server.log")
        self.runas = self._server_user()
        self.started = False

    def _server_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise ClusterError(f"running as root, but no {SERVER_USER} user") from None

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.runas is not None:
            command = ["setpriv", "--reuid", str(self.runas.pw_uid), "--regid",
                       str(self.runas.pw_gid), "--clear-groups", *command]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if done.returncode != 0:
            raise ClusterError(f"{args[0]} failed: {done.stderr.strip()[-600:]}")

    def start(self) -> PgCluster:
        """Create the cluster and start the server; return self."""
        if self.runas is not None:
            os.chown(self.root, self.runas.pw_uid, self.runas.pw_gid)
        os.chmod(self.root, 0o700)
        self._run("initdb", "-D", self.data, "-U", DB_USER, "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            for key, value in SETTINGS.items():
                conf.write(f"{key} = {value}\n")
            conf.write(f"unix_socket_directories = '{self.socket_dir}'\n")
        self._run("pg_ctl", "-D", self.data, "-l", self.log_file, "-w", "-t", "60",
                  "start")  # fmt: skip
        self.started = True
        atexit.register(self.stop)  # a session that dies still stops its server
        log.info("test PostgreSQL started in %s", self.root)
        return self

    def restart(self) -> None:
        """Restart the server at once, ending every client connection."""
        # With -l the new server's output goes to the log, not to our pipe.
        self._run("pg_ctl", "-D", self.data, "-l", self.log_file, "-m", "immediate",
                  "-w", "-t", "60", "restart")  # fmt: skip

    def stop(self) -> None:
        """Stop the server and remove the cluster's folder."""
        if self.started:
            try:
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            finally:
                self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str) -> str:
        """Return the URL that reaches database DBNAME over the socket."""
        return f"postgresql://{DB_USER}@/{dbname}?host={self.socket_dir}"

    def admin(self, *statements: str) -> None:
        """Run STATEMENTS one by one in autocommit on the postgres database."""
        import psycopg2

        conn = psycopg2.connect(self.url("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database NAME (a copy of TEMPLATE); return its URL."""
        if template:
            self.admin(
                f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'
            )
        else:
            self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database NAME, ending the connections still open to it."""
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
