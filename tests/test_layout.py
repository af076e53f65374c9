"""The layout: a function folder is its deploy unit, holding ``main.py``, ``requirements.txt`` and
one package named after the function. The folder is on the import path in the repository (by
configuration: pyproject.toml, the Makefile, tools.PYTHONPATH) and in its bundle (the folder plus a
copy of lib/, which functions-framework puts on sys.path), so a module is named by its package
(``place_call.calling``) the same way everywhere, and names are unique by construction."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

import tools
from tools import FUNCTION_DIRS, ROOT
from tools.build import bundle
from tools.fakes.samples import leadgen_delivery, meta_headers, new_leadgen_id
from tools.stack import local as local_stack

SOURCES = ("lib", "functions", "tools", "tests")
_CHANGES_A_LIST = {"append", "insert", "extend", "remove", "pop", "clear", "__setitem__"}


@pytest.mark.parametrize("folder", FUNCTION_DIRS, ids=lambda folder: folder.name)
def test_function_folder_is_main_requirements_and_its_package(folder: Path) -> None:
    entries = {p.name for p in folder.iterdir() if p.name != "__pycache__"}
    assert entries == {"main.py", "requirements.txt", folder.name}
    assert (folder / folder.name / "__init__.py").is_file()


@pytest.mark.parametrize("folder", FUNCTION_DIRS, ids=lambda folder: folder.name)
def test_function_package_shadowed_by_nothing_installed(folder: Path) -> None:
    spec = importlib.util.find_spec(folder.name)
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin) == folder / folder.name / "__init__.py", spec.origin


def _sys_path_changes(tree: ast.AST) -> Iterator[int]:
    """Lines of ``tree`` that change ``sys.path`` (a call of a list method on it, an assignment
    to it or to an item of it)."""

    def is_sys_path(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _CHANGES_A_LIST and is_sys_path(node.func.value):
                yield node.lineno
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript):
                    target = target.value
                if is_sys_path(target):
                    yield node.lineno


def test_no_code_changes_sys_path() -> None:
    # The import path is configuration (pyproject.toml, the Makefile, tools.PYTHONPATH), never a
    # side effect of importing something.
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in SOURCES
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line in _sys_path_changes(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert found == []


def test_sys_path_check_finds_each_kind_of_change() -> None:
    code = "import sys\nsys.path.append('x')\nsys.path[0:0] = ['y']\nsys.path += ['z']\n"
    code += "sys.path = []\nsys.path.insert(0, 'w')\nprint(sys.path)\n"
    assert sorted(_sys_path_changes(ast.parse(code))) == [2, 3, 4, 5, 6]


def test_import_path_configured_the_same_everywhere() -> None:
    expected = [str(path) for path in (ROOT, *FUNCTION_DIRS)]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    for listed in (config["pytest"]["ini_options"]["pythonpath"], config["mypy"]["mypy_path"]):
        assert [str((ROOT / p).resolve()) for p in listed] == expected
    assert config["mypy"]["packages"] == ["lib", *(folder.name for folder in FUNCTION_DIRS)]
    assert tools.PYTHONPATH.split(os.pathsep) == expected
    made = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "--eval",
            "show-path:\n\t@echo $(PYTHONPATH)",
            "show-path",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert made.stdout.strip().split(":") == expected


def test_bundle_holds_the_function_and_lib_compiled(tmp_path: Path) -> None:
    built = bundle.build("meta_webhook", tmp_path / "meta_webhook")
    assert (built / "main.py").is_file() and (built / "meta_webhook" / "meta_events.py").is_file()
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


def _module_names() -> dict[str, Path]:
    """Every module of the house by its import name: lib, tools, each function's package."""
    found: dict[str, Path] = {}
    roots = [(ROOT, ("lib", "tools")), *((folder, (folder.name,)) for folder in FUNCTION_DIRS)]
    for base, packages in roots:
        for package in packages:
            for path in sorted((base / package).rglob("*.py")):
                parts = list(path.relative_to(base).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                found[".".join(parts)] = path
    return found


def _imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The house's modules that ``path`` (module ``name``) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([source] if source else [])])
            targets = [f"{source}.{alias.name}" for alias in node.names] + [source]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_circle() -> None:
    modules = _module_names()
    known = set(modules)
    # A package's face (__init__) may name its modules; that is not a circle of the code.
    graph = {
        name: {m for m in _imports_of(path, name, known) if not name.startswith(m + ".")}
        for name, path in modules.items()
    }
    assert _cycles(graph) == []


def test_circle_check_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
