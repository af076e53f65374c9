"""A program from Debian's packages, installed with apt-get when it is missing: wrk for `make
bench`, chromium for the report's browser test (the way the machine's own tools are set up,
never by hand)."""

from __future__ import annotations

import os
import shutil
import subprocess


class MissingProgram(RuntimeError):
    """The program is missing and cannot be installed here; the message says how to."""


def ensure(program: str, package: str, *, purpose: str) -> str:
    """The path of ``program``; ``package`` installed with apt-get when it is missing and we
    are root (a failed install is retried once after ``apt-get update``)."""
    found = shutil.which(program)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise MissingProgram(
            f"{program} ({purpose}) is not installed and this user cannot install it: "
            f"`sudo apt-get install -y {package}` (Debian/Ubuntu), then run the command again."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"{program} is missing ({purpose}); installing {package} with apt-get ...", flush=True)
    for command in (
        ["apt-get", "install", "-y", "-q", package],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", package],
    ):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if command[1] == "install" and done.returncode == 0:
            break
    found = shutil.which(program)
    if not found:
        raise MissingProgram(
            f"`apt-get install -y {package}` failed; install it by hand and retry."
        )
    return found
