"""Start and stop a server as a child process group: `bentoml serve service:API` above all.

One launcher for `s2f demo`, the tests and `make bench`, so all three start the service the same
way: in its own session (BentoML forks a worker per service, and stopping the group stops them
all), output to a log file or the terminal, ready when a path answers 200, SIGTERM then SIGKILL.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
"""Where service.py is: `bentoml serve service:API` runs from here."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def bentoml_command(host: str, port: int) -> list[str]:
    """`bentoml serve service:API` of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("bentoml")), "serve", "service:API", "--host", host,
            "--port", str(port)]


class ServerProcess:
    """`command` in its own process group, serving on `url`; a context manager that stops it.

    `log_path` None leaves its output on this process's terminal (the demo); `env` None inherits
    this environment.
    """

    def __init__(self, command: Sequence[str], url: str, *, cwd: Path = REPO_ROOT,
                 env: Mapping[str, str] | None = None, log_path: Path | None = None) -> None:
        self.command = list(command)
        self.url = url
        self.cwd = cwd
        self.env = None if env is None else dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server has not been started")
        return self.process.pid

    def start(self) -> ServerProcess:
        self._log = self.log_path.open("wb") if self.log_path is not None else None
        self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT if self._log else None, start_new_session=True)
        return self

    def exited(self) -> int | None:
        """The exit code once the server has stopped, None while it runs."""
        return self.process.poll() if self.process is not None else None

    def wait(self) -> int:
        """Until the server exits by itself (or a signal stops it); its exit code."""
        if self.process is None:
            raise RuntimeError("the server has not been started")
        return self.process.wait()

    def wait_ready(self, path: str = "/readyz", timeout: float = 300.0) -> None:
        """Until `path` answers 200; RuntimeError (with the log's tail) if the server exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited() is not None:
                raise RuntimeError(f"{self.command[0]} exited with {self.exited()}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"{self.url}{path} not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 6000) -> str:
        if self.log_path is None:
            return "(output on the terminal)"
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the whole process group, SIGKILL after `grace` seconds."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BentoServe(ServerProcess):
    """`bentoml serve service:API` for the project at `project_root` (S2F_PROJECT_ROOT), not yet
    started. `env` is the whole environment (None: this one) and gets S2F_PROJECT_ROOT added."""

    def __init__(self, project_root: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 env: Mapping[str, str] | None = None, log_path: Path | None = None,
                 cwd: Path = REPO_ROOT) -> None:
        self.port = port or free_port(host)
        environment = dict(os.environ if env is None else env)
        environment["S2F_PROJECT_ROOT"] = str(project_root)
        environment.setdefault("BENTOML_DO_NOT_TRACK", "True")
        super().__init__(bentoml_command(host, self.port), f"http://{host}:{self.port}", cwd=cwd, env=environment,
                         log_path=log_path)
