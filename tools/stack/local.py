"""The embedded local stack: what `make dev` and the tests run on when there is no Docker.

- a throwaway PostgreSQL from the machine's server binaries (run as the ``postgres`` user when
  the caller is root, since initdb refuses root);
- the Supabase roles (``anon``, ``authenticated``, ``service_role``, ``authenticator``), their
  limits and default privileges as Supabase creates them (nothing granted on new objects);
- ``supabase/migrations`` applied by the pinned Supabase CLI (``supabase db push --db-url``);
- the PostgREST RPC stand-in (tools/stack/rest_standin.py) and the Graph API fake
  (tools/fakes/graph_fake.py).

``start()`` returns a :class:`Stack` whose ``env`` holds SUPABASE_URL, the API keys (the legacy
JWTs SUPABASE_SERVICE_ROLE_KEY and SUPABASE_ANON_KEY, and the opaque SUPABASE_SECRET_KEY and
SUPABASE_PUBLISHABLE_KEY), DATABASE_URL, META_GRAPH_URL and the local secrets; ``stop()`` ends
everything it started.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tools.stack import jwt

ROOT = Path(__file__).resolve().parents[2]
SUPABASE_CLI = ROOT / "node_modules" / ".bin" / "supabase"
AUTHENTICATOR_PASSWORD = "authenticator-local"  # loopback-only throwaway database

# The Supabase roles as a project created since 2026-05-30 has them (docs/PROVIDERS.md,
# section 4): new objects in public grant the API roles nothing, so every table, function and
# sequence the API uses needs an explicit grant in a migration, and a missing one fails here as
# it fails there. The revokes undo the default grants of clusters made by earlier versions of this
# file. Default privileges on functions granted to PUBLIC are global: revoking them `in schema
# public` alone would change nothing (ALTER DEFAULT PRIVILEGES, "Notes"). Migrations run as
# `postgres` (`supabase db push --db-url postgresql://postgres:…`). The per-role limits are
# Supabase's; the stand-in applies the impersonated role's own, as PostgREST does.
ROLES_SQL = f"""
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit password '{AUTHENTICATOR_PASSWORD}';
  end if;
end $$;
grant anon, authenticated, service_role to authenticator;
create schema if not exists extensions;
grant usage on schema public, extensions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke all on tables from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke all on functions from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke all on sequences from anon, authenticated, service_role;
alter default privileges for role postgres revoke execute on functions from public;
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
"""


class StackError(RuntimeError):
    """A part of the local stack could not be started; the message says which and why."""


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free, else any free loopback port.

    A port that only connections of a stopped server still hold (TIME_WAIT after a kill) counts
    as free: the servers of the stack bind with SO_REUSEADDR too (uvicorn, werkzeug and Postgres
    all do), so the next run takes the same port rather than a random one.
    """
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise StackError("no free TCP port on 127.0.0.1")


def pg_bindir() -> Path:
    """Where initdb and pg_ctl are: ``pg_config --bindir``, else the Debian layout."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    raise StackError(
        "PostgreSQL server binaries not found (no initdb from `pg_config --bindir` or under "
        "/usr/lib/postgresql): install them, e.g. `apt-get install postgresql`"
    )


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until it is true; StackError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise StackError(f"{what} did not become ready within {timeout:.0f} s")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@dataclass
class Postgres:
    """A PostgreSQL cluster in ``data_dir``, listening on 127.0.0.1:``port``."""

    data_dir: Path
    port: int
    bindir: Path = field(default_factory=pg_bindir)

    @property
    def url(self) -> str:
        return f"postgresql://postgres:postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"{args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def _reach_data_dir(self) -> None:
        """Let the postgres user reach the data directory through every parent: another pytest
        session resets /tmp/pytest-of-<user> to 0700 when it begins, on a start or a stop alike
        (a stop that cannot reach the directory left the server running, postmaster.pid too)."""
        if os.geteuid() != 0:
            return
        for parent in [self.data_dir.parent, *self.data_dir.parent.parents]:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._reach_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            if os.geteuid() == 0:
                shutil.chown(self.data_dir, "postgres", "postgres")
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            options,
        )

    def stop(self) -> None:
        """Stop the server of ``data_dir``, also one an unclean stop left running (pg_ctl
        detaches it from its caller's session, so killing `make dev` does not end it)."""
        if (self.data_dir / "postmaster.pid").exists():
            self._reach_data_dir()
            with contextlib.suppress(StackError):
                self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")


def shift_clock(db_url: str, shift: str) -> None:
    """Move the call rules' SQL clock (``public.clock_now()``) ``shift`` ahead of now(), an
    interval such as ``30 days``: `STACK_CLOCK_SHIFT='30 days' make test` runs the whole suite a
    month ahead. Production has no such row (public.test_clock is empty)."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.test_clock (shift) values (%s::interval) "
            "on conflict (id) do update set shift = excluded.shift",
            (shift,),
        )


def apply_migrations(db_url: str) -> None:
    """Create the Supabase roles, then ``supabase db push`` every migration (the real CLI)."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(ROLES_SQL)
    if not SUPABASE_CLI.exists():
        raise StackError(f"{SUPABASE_CLI} is missing: run `npm ci` (make install does)")
    result = subprocess.run(
        [
            str(SUPABASE_CLI),
            "db",
            "push",
            "--db-url",
            f"{db_url}?sslmode=disable",
            "--include-all",
            "--yes",
            "--workdir",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise StackError(f"supabase db push failed:\n{result.stderr}\n{result.stdout}")


def spawn(module: str, *args: str, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m module args`` with its output in ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


@contextlib.contextmanager
def serving(
    module: str, *args: str, env: Mapping[str, str], log: Path, timeout: float = 30.0
) -> Iterator[str]:
    """``python -m module --port <free> args`` on loopback, its base URL once ``GET /health``
    answers, stopped when the block ends: every local server (a fake, the stand-in) is started
    this way."""
    port = free_port()
    process = spawn(module, "--port", str(port), *args, env=env, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ok(f"{base}/health"), what=module, timeout=timeout)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Stack:
    state_dir: Path
    postgres: Postgres
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
        self.postgres.stop()


LOCAL_SECRET_NAMES = (
    "META_APP_SECRET",
    "META_VERIFY_TOKEN",
    "META_ACCESS_TOKEN",
    "META_PAGE_ID",
    "INTERNAL_TOKEN",
    "CALENDLY_SIGNING_KEY",
    "ELEVENLABS_API_KEY",
    "ELEVENLABS_AGENT_ID",
    "ELEVENLABS_PHONE_NUMBER_ID",
    "ELEVENLABS_WEBHOOK_SECRET",
)

# Supabase's opaque API keys (not JWTs): the stand-in runs a secret key as service_role and a
# publishable key as anon, as the gateway in front of PostgREST does.
API_KEY_PREFIXES = {
    "SUPABASE_SECRET_KEY": "sb_secret_",
    "SUPABASE_PUBLISHABLE_KEY": "sb_publishable_",
}


def local_secrets(existing: Mapping[str, str]) -> dict[str, str]:
    """Local values for the secrets, unless ``existing`` (the environment) already sets them."""
    generated = {
        "META_APP_SECRET": secrets.token_hex(16),
        "META_VERIFY_TOKEN": "local-verify-" + secrets.token_hex(4),
        "META_ACCESS_TOKEN": "EAAlocal" + secrets.token_hex(24),
        "META_PAGE_ID": "138124712925158",
        "INTERNAL_TOKEN": secrets.token_urlsafe(24),
        "CALENDLY_SIGNING_KEY": secrets.token_urlsafe(32),
        "ELEVENLABS_API_KEY": "sk_local" + secrets.token_hex(20),
        # The runbook's agent "Laura"; the local ElevenLabs fake accepts it.
        "ELEVENLABS_AGENT_ID": "agent_4101kf6gqfgpfrganck3s1m0ap3v",
        "ELEVENLABS_PHONE_NUMBER_ID": "phnum_local_laura",
        "ELEVENLABS_WEBHOOK_SECRET": "wsec_" + secrets.token_hex(16),
    }
    return {key: existing.get(key) or value for key, value in generated.items()}


def local_api_keys(existing: Mapping[str, str]) -> dict[str, str]:
    """A local secret key and publishable key, unless ``existing`` sets keys of that shape."""
    return {
        name: value
        if (value := existing.get(name, "")).startswith(prefix)
        else prefix + secrets.token_urlsafe(24)
        for name, prefix in API_KEY_PREFIXES.items()
    }


def start(
    state_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    pg_port: int | None = None,
    rest_port: int | None = None,
    graph_port: int | None = None,
    elevenlabs_port: int | None = None,
    calendly_port: int | None = None,
) -> Stack:
    """Start Postgres, apply the migrations, start the RPC stand-in and the Graph and
    ElevenLabs fakes."""
    environ = os.environ if environ is None else environ
    state_dir.mkdir(parents=True, exist_ok=True)
    bindir = pg_bindir()
    # A server an unclean stop left running holds the data directory and its port: stop it first
    # so that this run takes that port again.
    Postgres(state_dir / "pg", 0, bindir).stop()
    postgres = Postgres(state_dir / "pg", free_port(pg_port), bindir)
    stack = Stack(state_dir, postgres, {})
    try:
        postgres.start()
        apply_migrations(postgres.url)
        if environ.get("STACK_CLOCK_SHIFT"):
            shift_clock(postgres.url, environ["STACK_CLOCK_SHIFT"])
        env = local_secrets(environ)
        api_keys = local_api_keys(environ)
        rest_port = free_port(rest_port)
        graph_port = free_port(graph_port)
        elevenlabs_port = free_port(elevenlabs_port)
        calendly_port = free_port(calendly_port)
        jwt_secret = environ.get("JWT_SECRET") or jwt.LOCAL_JWT_SECRET
        standin_db = (
            f"postgresql://authenticator:{AUTHENTICATOR_PASSWORD}"
            f"@127.0.0.1:{postgres.port}/postgres"
        )
        stack.processes.append(
            spawn(
                "tools.stack.rest_standin",
                "--port",
                str(rest_port),
                # Keys and passwords go in the environment, not on a command line `ps` shows.
                env={"JWT_SECRET": jwt_secret, "STANDIN_DB_URL": standin_db, **api_keys},
                log=state_dir / "rest.log",
            )
        )
        stack.processes.append(
            spawn(
                "tools.fakes.graph_fake",
                "--port",
                str(graph_port),
                env=env,
                log=state_dir / "graph.log",
            )
        )
        stack.processes.append(
            spawn(
                "tools.fakes.elevenlabs_fake",
                "--port",
                str(elevenlabs_port),
                env=env,
                log=state_dir / "elevenlabs.log",
            )
        )
        stack.processes.append(
            spawn(
                "tools.fakes.calendly_fake",
                "--port",
                str(calendly_port),
                env=env,
                log=state_dir / "calendly.log",
            )
        )
        env.update(
            {
                "SUPABASE_URL": f"http://127.0.0.1:{rest_port}",
                "SUPABASE_SERVICE_ROLE_KEY": jwt.local_key("service_role", secret=jwt_secret),
                "SUPABASE_ANON_KEY": jwt.local_key("anon", secret=jwt_secret),
                **api_keys,
                "DATABASE_URL": postgres.url,
                "META_GRAPH_URL": f"http://127.0.0.1:{graph_port}",
                "ELEVENLABS_API_URL": f"http://127.0.0.1:{elevenlabs_port}",
                "CALENDLY_API_URL": f"http://127.0.0.1:{calendly_port}",
            }
        )
        stack.env = env
        wait_until(http_ok(f"{env['SUPABASE_URL']}/health"), what="the PostgREST stand-in")
        wait_until(http_ok(f"{env['META_GRAPH_URL']}/health"), what="the Graph API fake")
        wait_until(http_ok(f"{env['ELEVENLABS_API_URL']}/health"), what="the ElevenLabs fake")
        wait_until(http_ok(f"{env['CALENDLY_API_URL']}/health"), what="the Calendly API fake")
    except BaseException:
        stack.stop()
        raise
    return stack
