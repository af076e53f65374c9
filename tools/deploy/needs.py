"""What a function needs, read from its code with ``ast`` (the code is neither imported nor
run): its entry point, its route table, the modules of its bundle it uses, the third-party
packages they import, and the variables it reads.

A function is its folder's ``main.py`` plus what it imports, followed transitively through the
folder's own modules and ``lib/`` — at the level of functions and classes, not whole modules, so
calendly_webhook, which imports ``lib.http`` but none of its private routes, does not need
``INTERNAL_TOKEN`` that ``lib.http.internal_token`` reads. A variable is read when reachable code
calls ``<config>.require("NAME", …)`` or ``<config>.secrets("NAME")``, or reads a field of
:class:`lib.config.Config` as an attribute (``config.place_call_url``). What the analysis
cannot see (``getattr(config, name)``) it does not count: read variables as above.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path

from lib.config import Config
from tools import ROOT

# (module, top-level name), or (module, None) for the code a module runs when imported.
Unit = tuple[str, str | None]

_CONFIG_FIELDS = {f.name: f for f in fields(Config)}
_CONFIG_METHODS = {"require", "secrets"}
_STDLIB = set(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Variable:
    """A variable of :class:`lib.config.Config`: ``required`` when it has no default (the
    function fails without it), ``secret`` when it never appears in ``repr``."""

    name: str
    required: bool
    secret: bool


def variable(name: str) -> Variable:
    f = _CONFIG_FIELDS[name.lower()]
    return Variable(name.upper(), required=f.default is None, secret=not f.repr)


def config_variables() -> list[Variable]:
    """Every variable :class:`lib.config.Config` reads."""
    return [variable(name) for name in _CONFIG_FIELDS]


@dataclass(frozen=True)
class Needs:
    name: str
    entry_point: str
    routes: tuple[tuple[str, str], ...]
    modules: tuple[str, ...]  # of its bundle, used: ``main``, ``leadgen``, ``lib.db`` …
    imports: tuple[str, ...]  # third-party modules imported: ``flask``, ``phonenumbers`` …
    variables: tuple[Variable, ...]

    @property
    def required(self) -> list[str]:
        return [v.name for v in self.variables if v.required]

    def has_route(self, method: str, path: str) -> bool:
        return (method, path) in self.routes


@dataclass
class _Module:
    name: str
    tree: ast.Module
    defs: dict[str, ast.AST] = field(default_factory=dict)
    # local name -> (module, attribute or None for the module itself), for local imports
    bindings: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    # every non-local module imported, anywhere in the module (lazy imports too)
    third_party: set[str] = field(default_factory=set)
    star: set[str] = field(default_factory=set)


def _sources(folder: Path) -> dict[str, Path]:
    """Module name -> file, for a function's bundle: the folder's modules at the top level and
    ``lib`` as a package, as functions-framework sees them."""
    found: dict[str, Path] = {}
    for base, prefix in ((folder, ""), (ROOT / "lib", "lib.")):
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts.pop()
            name = prefix + ".".join(parts) if parts else prefix.rstrip(".")
            found[name] = path
    return found


def _parse(name: str, path: Path, local: set[str]) -> _Module:
    module = _Module(name, ast.parse(path.read_text(), filename=str(path)))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in module.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            module.defs[node.name] = node
    for found in ast.walk(module.tree):
        if isinstance(found, ast.Import):
            for alias in found.names:
                if alias.name in local or alias.name.split(".")[0] in local:
                    target = alias.name if alias.asname else alias.name.split(".")[0]
                    module.bindings[alias.asname or target] = (target, None)
                else:
                    module.third_party.add(alias.name)
        elif isinstance(found, ast.ImportFrom):
            source = found.module or ""
            if found.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (found.level - 1)] if found.level > 1 else base
                source = ".".join([*base, *([source] if source else [])])
            if source not in local:
                if source.split(".")[0] not in local:
                    module.third_party.add(source)
                continue
            for alias in found.names:
                if alias.name == "*":
                    module.star.add(source)
                elif f"{source}.{alias.name}" in local:
                    module.bindings[alias.asname or alias.name] = (f"{source}.{alias.name}", None)
                else:
                    module.bindings[alias.asname or alias.name] = (source, alias.name)
    return module


class _Graph:
    """The reachable units of one function's bundle, and what they read."""

    def __init__(self, folder: Path) -> None:
        sources = _sources(folder)
        local = set(sources)
        self.modules = {name: _parse(name, path, local) for name, path in sources.items()}
        self.reached: set[Unit] = set()
        self.variables: set[str] = set()

    def reach(self, start: list[Unit]) -> None:
        pending = list(start)
        while pending:
            unit = pending.pop()
            if unit in self.reached or unit[0] not in self.modules:
                continue
            self.reached.add(unit)
            pending.extend(self._visit(unit))

    def _visit(self, unit: Unit) -> Iterator[Unit]:
        name, symbol = unit
        module = self.modules[name]
        if symbol is None:
            yield from ((star, None) for star in module.star)
            for node in module.tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    for part in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
                        if part is not None:
                            yield from self._scan(module, part)
                elif not isinstance(node, ast.ClassDef):
                    yield from self._scan(module, node)
            return
        definition = module.defs.get(symbol)
        if definition is not None:
            yield (name, None)
            yield from self._scan(module, definition)
        elif symbol in module.bindings:  # re-exported: ``from lib.x import y`` then ``m.y``
            yield from self._resolve(module, symbol)
        else:
            yield (name, None)  # a module-level constant: the module's own code holds it

    def _resolve(self, module: _Module, name: str) -> Iterator[Unit]:
        if name in module.defs:
            yield (module.name, name)
        elif name in module.bindings:
            target, attr = module.bindings[name]
            yield (target, attr)

    def _chain(self, module: _Module, node: ast.Attribute) -> str | None:
        """The local module an attribute is read on (``lead_fetch`` in ``lead_fetch.sweep``)."""
        parts: list[str] = []
        base: ast.expr = node.value
        while isinstance(base, ast.Attribute):
            parts.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in module.bindings:
            return None
        target, attr = module.bindings[base.id]
        if attr is not None:
            return None
        dotted = ".".join([target, *parts])
        return dotted if dotted in self.modules else None

    def _scan(self, module: _Module, root: ast.AST) -> Iterator[Unit]:
        for node in ast.walk(root):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                yield from self._resolve(module, node.id)
            elif isinstance(node, ast.Attribute):
                owner = self._chain(module, node)
                if owner is not None:
                    yield (owner, node.attr)
                elif isinstance(node.ctx, ast.Load) and node.attr in _CONFIG_FIELDS:
                    self.variables.add(node.attr.upper())
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _CONFIG_METHODS
            ):
                for arg in node.args:
                    value = arg.value if isinstance(arg, ast.Constant) else None
                    if isinstance(value, str) and value.lower() in _CONFIG_FIELDS:
                        self.variables.add(value.upper())


def _entry_point(main: ast.Module, name: str) -> ast.FunctionDef:
    """The function of main.py decorated with ``@functions_framework.http``."""
    found = []
    for node in main.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            dotted = ast.unparse(target)
            if dotted in {"functions_framework.http", "http"}:
                found.append(node)
    if len(found) != 1:
        raise ValueError(
            f"functions/{name}/main.py must have exactly one @functions_framework.http "
            f"function (found {len(found)})"
        )
    return found[0]


def _routes(entry: ast.FunctionDef) -> tuple[tuple[str, str], ...]:
    """The ``(method, path)`` keys of the route table the entry point returns."""
    routes = []
    for node in ast.walk(entry):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
            for key in node.value.keys:
                if isinstance(key, ast.Tuple) and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in key.elts
                ):
                    method, path = (e.value for e in key.elts)  # type: ignore[attr-defined]
                    routes.append((method, path))
    return tuple(routes)


@cache
def needs(name: str) -> Needs:
    """What function ``name`` (a folder of functions/ with a main.py) needs."""
    folder = ROOT / "functions" / name
    if not (folder / "main.py").is_file():
        raise ValueError(f"no function {name!r}: functions/{name}/main.py does not exist")
    return analyze(folder)


def analyze(folder: Path) -> Needs:
    """What the function in ``folder`` (its main.py and modules, with ROOT's lib/) needs."""
    graph = _Graph(folder)
    entry = _entry_point(graph.modules["main"].tree, folder.name)
    graph.reach([("main", None), ("main", entry.name)])
    modules = sorted({module for module, _ in graph.reached})
    imports = {
        imported
        for module in modules
        for imported in graph.modules[module].third_party
        if imported.split(".")[0] not in _STDLIB
    }
    return Needs(
        name=folder.name,
        entry_point=entry.name,
        routes=_routes(entry),
        modules=tuple(modules),
        imports=tuple(sorted(imports)),
        variables=tuple(variable(v) for v in sorted(graph.variables)),
    )
