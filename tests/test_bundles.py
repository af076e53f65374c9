"""Bundles (tools/build/bundle.py, `make build`) and the lock (tools/build/lock.py, `make lock`):
what a bundle holds, and that each one runs on its own — copied outside the repository, its
requirements.txt installed into a fresh virtual environment, served by functions-framework with
exactly the variables `make deploy` gives it, and answering real requests."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.test_deploy import EXAMPLE
from tools import ROOT
from tools.build import bundle, lock
from tools.build.functions import imports
from tools.deploy import plan
from tools.deploy.settings import Settings
from tools.fakes.calendly_samples import calendly_headers, calendly_invitee_event
from tools.fakes.calendly_samples import encode as calendly_encode
from tools.fakes.elevenlabs_samples import encode as elevenlabs_encode
from tools.fakes.elevenlabs_samples import (
    new_conversation_id,
    post_call_transcription,
    signed_headers,
)
from tools.fakes.samples import leadgen_delivery, meta_headers, new_leadgen_id
from tools.stack import local as local_stack

LEAD_ID = "7b0d3c4e-2f1a-4c5d-9e8f-0a1b2c3d4e5f"
# What a bundle may hold besides the copies of its function's folder and of lib/.
GENERATED = {"requirements.txt", "constraints.txt", ".gcloudignore"}
DEV_ONLY = {"pytest", "ruff", "mypy", "hypothesis", "psycopg", "asyncpg", "uvloop", "httptools"}


def _requirements(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith(("#", "-c "))]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every bundle, built by this Python (fast) under a temporary folder."""
    return tmp_path_factory.mktemp("bundles")


def test_bundle_holds_its_folder_lib_bytecode_and_pins_nothing_else(built: Path) -> None:
    for path in bundle.build_all(dest=built):
        name = path.name
        files = {p.relative_to(path) for p in path.rglob("*") if p.is_file()}
        sources = {p for p in files if "__pycache__" not in p.parts and p.name not in GENERATED}
        expected = {
            p.relative_to(ROOT / "functions" / name)
            for p in (ROOT / "functions" / name).rglob("*")
            if p.is_file()
            and "__pycache__" not in p.parts
            and p.name != "requirements.txt"
            and not p.name.startswith(".")
        } | {
            Path("lib") / p.relative_to(ROOT / "lib")
            for p in (ROOT / "lib").rglob("*.py")
            if "__pycache__" not in p.parts
        }
        assert sources == expected, name
        for source in sources:  # copies, byte for byte
            original = ROOT / "functions" / name / source
            if source.parts[0] == "lib":
                original = ROOT / source
            assert (path / source).read_bytes() == original.read_bytes()
        bytecode = {p for p in files if "__pycache__" in p.parts}
        tag = sys.implementation.cache_tag
        assert bytecode == {
            p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc" for p in sources if p.suffix == ".py"
        }
        assert {p.name for p in files if p.parent == Path(".")} >= GENERATED
        for part in ("tests", "tools", "supabase", "node_modules", ".env", ".git", "build"):
            assert not any(part in p.parts for p in files), (name, part)


def test_bundle_leaves_out_caches_dotfiles_and_env_files(tmp_path: Path) -> None:
    folder = tmp_path / "functions" / "meta_webhook"
    shutil.copytree(ROOT / "functions" / "meta_webhook", folder)
    decoys = [
        ".env",
        "local.env",
        ".secrets/token",
        "__pycache__/stale.cpython-311.pyc",
        "__pycache__/main.cpython-39.pyc",
        ".mypy_cache/x.json",
        "leadgen.pyc",
    ]
    for decoy in decoys:
        (folder / decoy).parent.mkdir(parents=True, exist_ok=True)
        (folder / decoy).write_text("not for the bundle")
    built = bundle.build("meta_webhook", tmp_path / "bundle", source=folder)
    files = {str(p.relative_to(built)) for p in built.rglob("*") if p.is_file()}
    assert not files & set(decoys)
    assert not any("not for the bundle" in (built / f).read_text(errors="replace") for f in files)
    assert "main.py" in files and "lib/db.py" in files


def test_bundle_requirements_are_its_imports_pinned_from_the_lock(built: Path) -> None:
    pins = lock.read()
    for name in bundle.function_names():
        path = built / name
        if not path.exists():
            bundle.build(name, path)
        requirements = (path / "requirements.txt").read_text()
        assert "-c constraints.txt" in requirements.splitlines()
        roots = lock.roots(imports(ROOT / "functions" / name))
        assert _requirements(requirements) == [f"{r}=={pins[r].version}" for r in roots]
        assert "functions-framework" in roots
        constraints = _requirements((path / "constraints.txt").read_text())
        closure = lock.closure(pins, roots)
        assert constraints == [f"{p.name}=={p.version}" for p in closure]
        installed = {line.split("==")[0] for line in constraints}
        assert not installed & DEV_ONLY, name
    place_call = _requirements((built / "place_call" / "requirements.txt").read_text())
    assert not any(line.startswith("phonenumbers==") for line in place_call)  # not imported
    meta = _requirements((built / "meta_webhook" / "requirements.txt").read_text())
    assert {line.split("==")[0] for line in meta} == {
        "flask",
        "functions-framework",
        "httpx",
        "phonenumbers",
        "postgrest",
        "pydantic",
        "pydantic-settings",
    }


def test_lock_and_function_requirements_are_current() -> None:
    """requirements.lock and functions/*/requirements.txt are what `make lock` writes from
    .venv and the code: a new import, or an upgrade without `make lock`, fails here."""
    for path, text in lock.expected_files().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run `make lock`"


def test_lock_closure_follows_extras_and_requirements() -> None:
    pins = lock.read()
    names = {pin.name for pin in lock.closure(pins, ["postgrest"])}
    assert {"httpx", "h2", "hpack", "pydantic", "pydantic-core"} <= names  # httpx[http2]
    assert "flask" not in names and "phonenumbers" not in names
    with pytest.raises(lock.LockError, match="make lock"):
        lock.closure(pins, ["not-a-locked-package"])


# --- Each bundle on its own ------------------------------------------------------------------


@dataclass
class Served:
    url: str
    env: dict[str, str]
    log: Path


def _wheelhouse(cache: Path, python: str) -> Path:
    """Every locked package as a file, downloaded from PyPI once per lock and Python (a pip
    cache that also spares the index queries); each bundle's own requirements are then
    resolved from it, dependencies included."""
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    key = hashlib.sha256((lock.LOCK_FILE.read_text() + version).encode()).hexdigest()[:16]
    target = cache / key
    if target.is_dir():
        return target
    partial = cache / f".{key}.{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [
            *_pip(python),
            *("download", "--quiet", "--no-deps", "--dest", str(partial)),
            *("--requirement", str(lock.LOCK_FILE)),
        ],
        check=True,
        timeout=600,
    )
    try:
        partial.rename(target)
    except OSError:  # another session got there first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _pip(python: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python]


def _install(folder: Path, venv: Path, python: str, wheelhouse: Path) -> None:
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            *_pip(str(venv / "bin" / "python")),
            *("install", "--quiet", "--no-compile", "--no-index", "--find-links", str(wheelhouse)),
            *("--requirement", str(folder / "requirements.txt")),
        ],
        check=True,
        timeout=600,
    )


def _answers(url: str, process: subprocess.Popen[bytes], log: Path) -> Callable[[], bool]:
    """Whether the server answers; its log, at once, when it died (a missing package or file)."""

    def answered() -> bool:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"exited {process.returncode} before answering:\n{tail}")
        try:
            httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    return answered


@pytest.fixture(scope="module")
def standalone(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Served]]:
    """Each bundle, built for the runtime's Python when this machine has it, copied outside the
    repository, installed into a fresh venv from its requirements.txt alone (bundles with the
    same pins share one: the same packages), and served by functions-framework with the
    variables `make deploy` gives it (SUPABASE_URL: a closed port)."""
    started = time.perf_counter()
    python = bundle.python(lock.TARGET_PYTHON) or sys.executable
    tmp = tmp_path_factory.mktemp("standalone")
    assert not tmp.is_relative_to(ROOT)
    cache_root = getattr(request.config, "cache", None)
    cache = cache_root.mkdir("bundle-wheelhouse") if cache_root else tmp / "wheelhouse"
    cache.mkdir(exist_ok=True)
    wheelhouse = _wheelhouse(cache, python)
    fetched = time.perf_counter()

    names = bundle.function_names()
    built = bundle.build_all(names, tmp_path_factory.mktemp("built"), python=python)
    folders = {}
    for path in built:
        folders[path.name] = tmp / "functions" / path.name
        shutil.copytree(path, folders[path.name])
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, folder in folders.items():
        pins = _requirements((folder / "requirements.txt").read_text())
        pins += _requirements((folder / "constraints.txt").read_text())
        groups.setdefault(tuple(pins), []).append(name)
    venv_of = {}
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        jobs = []
        for index, members in enumerate(groups.values()):
            venv = tmp / f"venv{index}"
            venv_of.update(dict.fromkeys(members, venv))
            jobs.append(pool.submit(_install, folders[members[0]], venv, python, wheelhouse))
        for job in jobs:
            job.result()
    installed = time.perf_counter()

    settings = Settings(EXAMPLE)
    dead = f"http://127.0.0.1:{local_stack.free_port()}"
    processes: dict[str, subprocess.Popen[bytes]] = {}
    served = {}
    try:
        for name, folder in folders.items():
            env = {**plan.function(settings, name, names).env, "SUPABASE_URL": dead}
            port = local_stack.free_port()
            log = tmp / f"{name}.log"
            with log.open("wb") as out:
                processes[name] = subprocess.Popen(
                    [
                        str(venv_of[name] / "bin" / "functions-framework"),
                        *("--target", name, "--source", "main.py"),
                        *("--host", "127.0.0.1", "--port", str(port)),
                    ],
                    cwd=folder,
                    env={"PATH": f"{venv_of[name] / 'bin'}:/usr/bin:/bin", "HOME": str(tmp), **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            served[name] = Served(f"http://127.0.0.1:{port}", env, log)
        for name, server in served.items():
            answers = _answers(server.url, processes[name], server.log)
            local_stack.wait_until(answers, what=f"{name} from its bundle", timeout=60)
        ready = time.perf_counter()
        print(
            f"\nstandalone bundles on Python {python}: wheelhouse {fetched - started:.1f} s, "
            f"{len(groups)} venvs installed {installed - fetched:.1f} s, served "
            f"{ready - installed:.1f} s"
        )
        yield served
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    for name, server in served.items():
        assert str(ROOT) not in server.log.read_text(errors="replace"), name


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_meta_webhook_bundle_answers_on_its_own(standalone: dict[str, Served]) -> None:
    meta = standalone["meta_webhook"]
    handshake = httpx.get(
        meta.url,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": meta.env["META_VERIFY_TOKEN"],
            "hub.challenge": "1158201444",
        },
    )
    assert (handshake.status_code, handshake.text) == (200, "1158201444")
    wrong = httpx.get(
        meta.url, params={"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"}
    )
    assert wrong.status_code == 403
    body = leadgen_delivery(new_leadgen_id())
    forged = httpx.post(meta.url, content=body, headers=meta_headers(body, secret="not-it"))
    assert _error(forged) == (401, "invalid_signature")
    secret = meta.env["META_APP_SECRET"].split(",")[1]  # either key of a rotation
    signed = httpx.post(meta.url, content=body, headers=meta_headers(body, secret=secret))
    assert _error(signed) == (503, "database_unavailable")  # verified, then the database
    assert httpx.post(f"{meta.url}/sweep").status_code == 401


def test_calendly_webhook_bundle_answers_on_its_own(standalone: dict[str, Served]) -> None:
    calendly = standalone["calendly_webhook"]
    body = calendly_encode(calendly_invitee_event(email="lead@example.com"))
    now = int(time.time())
    forged = httpx.post(
        calendly.url, content=body, headers=calendly_headers(body, secret="no", timestamp=now)
    )
    assert _error(forged) == (401, "invalid_signature")
    key = calendly.env["CALENDLY_SIGNING_KEY"]
    signed = httpx.post(
        calendly.url, content=body, headers=calendly_headers(body, secret=key, timestamp=now)
    )
    assert _error(signed) == (503, "database_unavailable")


def test_place_call_bundle_answers_on_its_own(standalone: dict[str, Served]) -> None:
    place = standalone["place_call"]
    body = elevenlabs_encode(post_call_transcription(new_conversation_id(), lead_id=LEAD_ID))
    forged = httpx.post(f"{place.url}/webhook", content=body, headers=signed_headers(body, "no"))
    assert _error(forged) == (401, "invalid_signature")
    secret = place.env["ELEVENLABS_WEBHOOK_SECRET"]
    signed = httpx.post(f"{place.url}/webhook", content=body, headers=signed_headers(body, secret))
    assert _error(signed) == (503, "database_unavailable")
    call = {"lead_id": LEAD_ID}
    assert _error(httpx.post(place.url, json=call)) == (401, "unauthorized")
    assert httpx.post(f"{place.url}/sweep").status_code == 401
    bearer = {"Authorization": f"Bearer {place.env['INTERNAL_TOKEN']}"}
    placed = httpx.post(place.url, json=call, headers=bearer)
    assert _error(placed) == (503, "database_unavailable")
