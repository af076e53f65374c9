"""meta_webhook served as production serves it: ``python -m functions_framework`` (gunicorn) from
the function's bundle, cwd the bundle, nothing of the repository on ``sys.path``, on 127.0.0.1.

The process runs in its own session, so that :meth:`FunctionServer.kill` ends the gunicorn
arbiter and its worker together with SIGKILL, as when an instance dies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tools.stack.local import StackError

# What the function process keeps of this process's environment: enough to run Python; the
# settings come from the stack only, and PYTHONPATH (`make` exports the repository) is dropped.
_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


def function_env(
    stack_env: Mapping[str, str], *, http_timeout: float, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The function's environment: the stack's settings and ``HTTP_TIMEOUT_SECONDS``."""
    environ = os.environ if environ is None else environ
    kept = {name: environ[name] for name in _KEPT if name in environ}
    return {**kept, **stack_env, "HTTP_TIMEOUT_SECONDS": f"{http_timeout:g}"}


@dataclass
class FunctionServer:
    """meta_webhook from ``bundle`` on 127.0.0.1:``port``, its output appended to ``log``."""

    bundle: Path
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60.0) -> float:
        """Start the function; the seconds until it answered the subscription handshake."""
        started = time.monotonic()
        command = [sys.executable, "-m", "functions_framework", "--target", "meta_webhook"]
        command += ["--source", str(self.bundle / "main.py"), "--host", "127.0.0.1"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=self.bundle,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_ready(started + timeout)
        return time.monotonic() - started

    def _wait_ready(self, deadline: float) -> None:
        challenge = {
            "hub.mode": "subscribe",
            "hub.verify_token": self.env["META_VERIFY_TOKEN"],
            "hub.challenge": "soak",
        }
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise StackError(f"meta_webhook exited ({self.process.returncode}); see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url, params=challenge, timeout=2).status_code == 200:
                    return
            time.sleep(0.02)
        raise StackError(f"meta_webhook did not answer within the time allowed; see {self.log}")

    def kill(self) -> None:
        """SIGKILL the arbiter and its worker at once (their own process group)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the function gracefully, killing it after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
