"""KEY=VALUE files (supabase/.env, .local/dev.env) and the environment the local tools run with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRETS_FILE = ROOT / "supabase" / ".env"
DEV_ENV_FILE = ROOT / ".local" / "dev.env"


def read(path: Path, *, keep_empty: bool = False) -> dict[str, str]:
    """The non-empty ``KEY=VALUE`` lines of ``path`` (every one with ``keep_empty``; comments and
    blanks skipped)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip().strip('"').strip("'")
        if value or keep_empty:
            values[key.strip()] = value
    return values


def write(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in sorted(values.items())))
    path.chmod(0o600)


def project_env() -> dict[str, str]:
    """What the tools use: .local/dev.env, then supabase/.env, then the environment (it wins)."""
    return {**read(DEV_ENV_FILE), **read(SECRETS_FILE), **os.environ}


def update(path: Path, values: Mapping[str, str]) -> None:
    """Set each of ``values`` in the ``KEY=VALUE`` file ``path``: on the lines that set it now,
    else on a line appended; every other line is kept as it is. The file is created if missing
    and is mode 0600 either way; it is written beside itself and renamed over, so a crash leaves
    either the old file or the new one."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    pending = dict(values)
    for index, line in enumerate(lines):
        key, equals, _ = line.partition("=")
        key = key.strip()
        if equals and key in values and not key.startswith("#"):
            lines[index] = f"{key}={values[key]}\n"
            pending.pop(key, None)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.extend(f"{key}={value}\n" for key, value in pending.items())
    replace(path, "".join(lines))


def replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) through a temporary file renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # left by a crash
    # Created 0600 (O_EXCL: never an existing file's mode), so no one else can read it at any time.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
