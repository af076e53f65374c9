"""KEY=VALUE files (supabase/.env, .local/dev.env) and the environment the local tools run with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRETS_FILE = ROOT / "supabase" / ".env"
DEV_ENV_FILE = ROOT / ".local" / "dev.env"


def read(path: Path) -> dict[str, str]:
    """The non-empty ``KEY=VALUE`` lines of ``path`` (comments and blanks skipped)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip().strip('"').strip("'")
        if value:
            values[key.strip()] = value
    return values


def write(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in sorted(values.items())))
    path.chmod(0o600)


def project_env() -> dict[str, str]:
    """What the tools use: .local/dev.env, then supabase/.env, then the environment (it wins)."""
    return {**read(DEV_ENV_FILE), **read(SECRETS_FILE), **os.environ}
