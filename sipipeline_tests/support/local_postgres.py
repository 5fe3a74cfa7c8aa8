"""A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql binaries) for deploy tests.

The cluster lives in a fresh folder under the system temp dir, listens on a free loopback port
only (its Unix socket inside the data folder), and requires a password, so the instance really
reads its credentials from the environment. PostgreSQL refuses to run as root: as root the
cluster is owned by and run as the `postgres` system user (created by Debian's package).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sipipeline_tests.support.dagster_dev import free_port

SERVICE_USER = "postgres"


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if postgres_bin_dir() is None:
        return ("PostgreSQL is not installed (no initdb/pg_ctl; `.ci/run` installs Debian's "
                "postgresql package when it can)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root and there is no '{SERVICE_USER}' user to run PostgreSQL as"
    return None


@dataclass
class LocalPostgres:
    """One cluster: start() initialises and starts it, stop() stops it and removes its files."""

    user: str = "sipipeline"
    db_name: str = "dagster"

    def __post_init__(self) -> None:
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.root: Path | None = None

    # ------------------------------------------------------------------ helpers
    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", SERVICE_USER, "--", *command] if os.geteuid() == 0 else command

    def _run(self, command: list[str], timeout_s: float = 120.0) -> None:
        result = subprocess.run(self._as_owner(command), capture_output=True, text=True,
                                timeout=timeout_s, stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}")

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port),
                "DAGSTER_PG_DB": self.db_name, "DAGSTER_PG_USER": self.user,
                "DAGSTER_PG_PASSWORD": self.password}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalPostgres:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError(unavailable_reason())
        self.root = Path(tempfile.mkdtemp(prefix="sipipeline-pg-"))
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n", encoding="utf-8")
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SERVICE_USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        self._run([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                   f"--pwfile={password_file}", "--auth=scram-sha-256", "-E", "UTF8",
                   "--locale=C.UTF-8"])
        password_file.unlink()
        options = (f"-c listen_addresses={self.host} -p {self.port} "
                   f"-c unix_socket_directories={self.data_dir} -c fsync=off")
        self._run([str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", options,
                   "-l", str(self.root / "server.log"), "-w", "-t", "60", "start"])
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                      password=self.password, dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            connection.close()

    def stop(self) -> None:
        if self.root is None:
            return
        bin_dir = postgres_bin_dir()
        try:
            if bin_dir is not None and (self.data_dir / "postmaster.pid").exists():
                self._run([str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                           "-w", "-t", "60", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
