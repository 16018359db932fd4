"""The PostgreSQL programs a local cluster runs, and the user they run as.

``initdb`` and ``postgres`` refuse to run as root, so when the caller is root every server
program and every file it must own goes to the ``postgres`` user instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import ClusterError, ClusterTimeoutError

DEFAULT_PG_BIN_DIR = "/usr/lib/postgresql/15/bin"


def pg_bin_dir(chosen: Optional[str] = None) -> str:
    """The PostgreSQL server binaries: ``chosen``, else ``$REPLIKIT_PG_BIN_DIR``, else 15's."""
    return chosen or os.environ.get("REPLIKIT_PG_BIN_DIR") or DEFAULT_PG_BIN_DIR


class ServerTools:
    """Paths of postgres, pg_ctl, initdb and psql, and how to run them."""

    def __init__(self, bin_dir: str):
        self.bin_dir = bin_dir
        self.postgres = os.path.join(bin_dir, "postgres")
        self.pg_ctl = os.path.join(bin_dir, "pg_ctl")
        self.initdb = os.path.join(bin_dir, "initdb")
        for tool in (self.postgres, self.pg_ctl, self.initdb):
            if not os.access(tool, os.X_OK):
                raise ClusterError(
                    f"PostgreSQL server binary {tool} not found: install PostgreSQL 15 "
                    "(`apt-get install postgresql-15`) or point REPLIKIT_PG_BIN_DIR / "
                    "pg_bin_dir at its bin directory")
        candidates = [os.path.join(bin_dir, "psql"), "/usr/bin/psql", shutil.which("psql") or ""]
        psql = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
        if psql is None:
            raise ClusterError("psql not found (looked in the PostgreSQL bin dir and "
                               "/usr/bin): apt-get install postgresql-client-15")
        self.psql: str = psql
        self.run_as: Optional[Tuple[int, int]] = None  # (uid, gid) when we are root
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise ClusterError("running as root but there is no `postgres` user to "
                                   "run the PostgreSQL servers as") from None
            self.run_as = (entry.pw_uid, entry.pw_gid)
            self.run_as_name = "postgres"
        else:
            try:
                self.run_as_name = pwd.getpwuid(os.geteuid()).pw_name
            except KeyError:
                self.run_as_name = str(os.geteuid())
        self.home: Optional[str] = None  # HOME for server programs run as postgres

    @property
    def owner_uid(self) -> int:
        """The uid that owns the data directories."""
        return self.run_as[0] if self.run_as is not None else os.geteuid()

    def popen_kwargs(self) -> Dict[str, Any]:
        """subprocess keyword arguments that run a program as the server user."""
        if self.run_as is None:
            return {}
        return dict(user=self.run_as[0], group=self.run_as[1], extra_groups=[])

    def env(self) -> Dict[str, str]:
        """Environment for server and client programs.

        libpq reads PG* variables (PGOPTIONS, PGSSLMODE, PGSERVICE...): they are dropped so
        the caller's environment cannot redirect or alter our connections.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "5"
        env.setdefault("LC_ALL", "C")
        if self.run_as is not None and self.home:
            env["HOME"] = self.home  # never the postgres user's real home
        return env

    def run(self, args: Sequence[str], *, timeout_s: float = 60.0, check: bool = True,
            cwd: Optional[str] = None) -> "subprocess.CompletedProcess[bytes]":
        """Run a server program (as the postgres user when we are root)."""
        if cwd is None or not os.path.isdir(cwd):
            cwd = "/"
        try:
            proc = subprocess.run(list(args), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=self.env(), cwd=cwd, timeout=timeout_s,
                                  **self.popen_kwargs())
        except subprocess.TimeoutExpired as exc:
            raise ClusterTimeoutError(f"{os.path.basename(args[0])} did not finish within "
                                      f"{timeout_s:g} s: {' '.join(args)}") from exc
        if check and proc.returncode != 0:
            raise ClusterError(
                f"{' '.join(args)} failed with exit code {proc.returncode}:\n"
                f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}")
        return proc

    def chown(self, path: str) -> None:
        if self.run_as is not None:
            os.chown(path, *self.run_as)

    def write_file(self, path: str, text: str, mode: int = 0o600) -> None:
        """Write ``text`` atomically, owned by the server user."""
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        self.chown(tmp)
        os.replace(tmp, path)

    def copy_trees(self, source: str, targets: List[Tuple[str, str]], cwd: str) -> None:
        """``cp -a source target`` for every (label, target) at once, as the server user."""
        procs = [subprocess.Popen(["cp", "-a", source, target], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd,
                                  **self.popen_kwargs())
                 for _, target in targets]
        errors = []
        for (label, _), proc in zip(targets, procs):
            try:
                _, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                errors.append(f"{label}: copying the template timed out")
                continue
            if proc.returncode != 0:
                errors.append(f"{label}: {err.decode(errors='replace').strip()}")
        if errors:
            raise ClusterError("could not copy the template data directory: "
                               + "; ".join(errors))
