"""The layout: a function folder is its deploy unit. Its modules import by the same top-level
names in the repository (tools/__init__.py puts each folder on sys.path) and in its bundle (the
folder plus a copy of lib/, which functions-framework puts on sys.path), so those names must be
unique across functions and shadowed by nothing installed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tools import FUNCTION_DIRS, ROOT, bundle
from tools import stack as local_stack
from tools.samples import leadgen_delivery, meta_headers, new_leadgen_id

SHARED = {"main"}  # every function has one; functions-framework loads it by path


def own_modules(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if p.is_dir()}


def test_function_module_names_unique_across_functions() -> None:
    seen: dict[str, str] = {}
    for folder in FUNCTION_DIRS:
        for name in own_modules(folder) - SHARED - {"__pycache__"}:
            assert name not in seen, f"{name} is in functions/{seen[name]} and {folder.name}"
            assert name not in {"lib", "tools", "tests"}
            seen[name] = folder.name


@pytest.mark.parametrize("folder", FUNCTION_DIRS, ids=lambda folder: folder.name)
def test_function_modules_shadowed_by_nothing_installed(folder: Path) -> None:
    for name in own_modules(folder) - SHARED - {"__pycache__"}:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        assert Path(spec.origin).parent == folder, f"{name} resolves to {spec.origin}"


def test_bundle_holds_the_function_and_lib_compiled(tmp_path: Path) -> None:
    built = bundle.build("meta_webhook", tmp_path / "meta_webhook")
    assert (built / "main.py").is_file() and (built / "leadgen.py").is_file()
    assert (built / "lib" / "signatures.py").is_file()
    assert list((built / "__pycache__").glob("main.*.pyc"))
    assert not (built / "tests").exists() and not (built / "tools").exists()


@pytest.fixture
def bundle_server(stack: local_stack.Stack, tmp_path: Path) -> Iterator[str]:
    """meta_webhook served by functions-framework from a copy of its bundle outside the
    repository, with nothing of the repository on sys.path (``python -I``)."""
    built = bundle.build("meta_webhook", tmp_path / "bundle")
    port = local_stack.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    command = [sys.executable, "-I", "-m", "functions_framework", "--target", "meta_webhook"]
    with (tmp_path / "bundle.log").open("wb") as out:
        process = subprocess.Popen(
            [*command, "--source", "main.py", "--host", "127.0.0.1", "--port", str(port)],
            cwd=built,
            env={**env, **stack.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        verify = f"{base}/?hub.mode=subscribe&hub.challenge=7&hub.verify_token=x"
        local_stack.wait_until(
            lambda: _answers(verify), what="meta_webhook from its bundle", timeout=30
        )
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert str(ROOT) not in (tmp_path / "bundle.log").read_text(errors="replace")


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def test_bundle_copy_serves_handshake_and_delivery(
    bundle_server: str, stack: local_stack.Stack
) -> None:
    handshake = httpx.get(
        bundle_server,
        params={
            "hub.mode": "subscribe",
            "hub.challenge": "42",
            "hub.verify_token": stack.env["META_VERIFY_TOKEN"],
        },
    )
    assert (handshake.status_code, handshake.text) == (200, "42")
    lid = new_leadgen_id()
    body = leadgen_delivery(lid)
    response = httpx.post(
        bundle_server,
        content=body,
        headers=meta_headers(body, secret=stack.env["META_APP_SECRET"]),
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["fetched"] == 1
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        row = conn.execute("select status from leads where meta_leadgen_id = %s", (lid,)).fetchone()
    assert row == ("call_queued",)


def test_calendly_webhook_loads_without_phonenumbers(tmp_path: Path) -> None:
    # A cold start imports what every request needs and no more: phonenumbers (~40 ms) waits for
    # the first booking that carries a phone.
    folder = bundle.build("calendly_webhook", tmp_path / "calendly_webhook")
    code = "import sys, main; print('phonenumbers' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, '.'); {code}"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr
