"""KEY=VALUE files (supabase/.env, .local/dev.env) and the environment the local tools run with.

Two targets, chosen explicitly and never mixed (:func:`target`): ``local`` (the default) is what
`make dev` runs, read from ``.local/dev.env`` (``LOCAL_ENV_FILE`` names another), with the
command's environment over it, and refuses any URL that leaves this machine; ``production``
(``ENV=production``) is the deployed project, read from ``supabase/.env`` (the deployer's file,
``PROJECT_ENV_FILE`` names another) with the environment over it, its database from
``SUPABASE_DB_URL``. Nothing of one target is ever read for the other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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


TARGETS = ("local", "production")
# The settings that say where the tools connect: checked against the target.
URL_NAMES = (
    "DATABASE_URL",
    "SUPABASE_URL",
    "META_GRAPH_URL",
    "ELEVENLABS_API_URL",
    "CALENDLY_API_URL",
    "PLACE_CALL_URL",
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WHERE_SET = "ENV=local: `make dev` writes it to .local/dev.env; ENV=production: supabase/.env"
NO_DATABASE = (
    "no database to read: ENV=local needs `make dev` (it writes DATABASE_URL to .local/dev.env), "
    "ENV=production needs SUPABASE_DB_URL in supabase/.env"
)


class TargetError(Exception):
    """The target cannot be used as asked; the message says what to do."""


def is_local(url: str) -> bool:
    """Whether ``url`` (an http or a postgresql URL) stays on this machine."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return False
    return host in _LOOPBACK


def where(url: str) -> str:
    """``url`` without its credentials, for a first line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "?"
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def local_env_file(environ: Mapping[str, str] | None = None) -> Path:
    """`make dev`'s file (.local/dev.env; LOCAL_ENV_FILE names another)."""
    return Path((os.environ if environ is None else environ).get("LOCAL_ENV_FILE") or DEV_ENV_FILE)


def project_env_file(environ: Mapping[str, str] | None = None) -> Path:
    """The deployer's file (supabase/.env; PROJECT_ENV_FILE names another)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("PROJECT_ENV_FILE") or SECRETS_FILE)


@dataclass(frozen=True)
class Target:
    """Where an operator command works: its name, its settings, and where they came from."""

    name: str
    env: dict[str, str]
    source: str

    def line(self) -> str:
        database = self.env.get("DATABASE_URL", "")
        api = self.env.get("SUPABASE_URL", "")
        return (
            f"target: {self.name} ({self.source}): database "
            f"{where(database) if database else 'not set'}, API {where(api) if api else 'not set'}"
        )


def target(name: str | None = None, environ: Mapping[str, str] | None = None) -> Target:
    """The settings of target ``name`` (default: ``ENV``, else local), or TargetError."""
    environ = os.environ if environ is None else environ
    chosen = (name or environ.get("ENV") or "local").strip().lower()
    if chosen == "local":
        path = local_env_file(environ)
        env = {**read(path), **environ}
        leaving = [n for n in URL_NAMES if env.get(n) and not is_local(env[n])]
        if leaving:
            raise TargetError(
                "ENV=local, but "
                + ", ".join(f"{n} ({where(env[n])})" for n in leaving)
                + " leaves this machine (set in your environment?): unset it, or use "
                "ENV=production for the deployed project"
            )
        return Target("local", {**env, "ENV": "local"}, str(path))
    if chosen == "production":
        path = project_env_file(environ)
        if not path.exists():
            raise TargetError(
                f"ENV=production reads {path}, which does not exist: fill it as the README's "
                '"Going live" says'
            )
        env = {**read(path), **environ}
        # Its own database only: never the DATABASE_URL `make dev` writes or a shell exports.
        env["DATABASE_URL"] = env.get("SUPABASE_DB_URL", "")
        local = [n for n in ("DATABASE_URL", "SUPABASE_URL") if env.get(n) and is_local(env[n])]
        if local:
            raise TargetError(
                "ENV=production, but "
                + ", ".join(f"{n} ({where(env[n])})" for n in local)
                + " is this machine: set the project's in "
                + str(path)
            )
        return Target("production", {**env, "ENV": "production"}, str(path))
    raise TargetError(f"ENV={chosen!r} is neither local nor production")


def command_env(command: str) -> dict[str, str] | None:
    """The target's settings for an operator command, its first line printed (to stderr: the
    output may be JSON); None, with the reason printed, when the target cannot be used."""

    try:
        chosen = target()
    except TargetError as err:
        print(f"{command}: {err}", file=sys.stderr)
        return None
    print(chosen.line(), file=sys.stderr, flush=True)
    return chosen.env


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
