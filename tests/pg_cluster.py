"""A private PostgreSQL cluster in a temporary folder, for tests that stop the database.

initdb and postgres refuse to run as root, so they run as the `postgres` user (runuser)
when the tests run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2

from tests.redis_server import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


def _folder_postgres_can_reach() -> str:
    """TMPDIR, unless the postgres user could not get through it (a private 0700 TMPDIR, as
    .ci/run makes for Chromium's profiles): then /tmp."""
    here = Path(tempfile.gettempdir()).resolve()
    for folder in (here, *here.parents):
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return "/tmp"
    return str(here)


class PrivatePostgres:
    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="tsem-pg-", dir=_folder_postgres_can_reach())
        self.data = os.path.join(self.folder, "data")
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> PrivatePostgres:
        self._run(_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> None:
        self._run(_bin("pg_ctl"), "-D", self.data, "-w", "-t", "60", "-l",
                  os.path.join(self.folder, "server.log"), "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c full_page_writes=off", "start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg2.connect(self.url, connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("private PostgreSQL did not accept connections")

    def stop(self, mode: str = "fast") -> None:
        self._run(_bin("pg_ctl"), "-D", self.data, "-w", "-m", mode, "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
