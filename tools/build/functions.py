"""What a function is, read from its own declarations, never from its syntax tree.

A function is a folder of ``functions/`` holding ``main.py`` and a package named after it. Its
entry point is the function of ``main.py`` named after it (``@functions_framework.http``); its
routes are the route table ``lib.http.endpoint`` keeps on that entry point; its variables are the
fields of the one :class:`lib.settings.Settings` class its package's ``settings`` module defines;
its third-party packages are what the standard library's ``modulefinder`` sees its bundle import
(lazy imports too). So a new function deploys with no change to the tools.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import modulefinder
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lib.settings import Settings, Variable
from tools import FUNCTION_DIRS, ROOT

_STDLIB = set(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Function:
    name: str
    folder: Path
    settings: type[Settings]
    routes: tuple[tuple[str, str], ...]
    imports: tuple[str, ...]  # third-party top-level modules: ``flask``, ``phonenumbers`` …
    # The routes whose caller is authenticated before they run (INTERNAL_TOKEN); the others
    # verify their provider's signature themselves.
    private: tuple[tuple[str, str], ...] = ()

    @property
    def entry_point(self) -> str:
        return self.name

    @property
    def variables(self) -> list[Variable]:
        return self.settings.variables()

    @property
    def required(self) -> list[str]:
        return [v.name for v in self.variables if v.required]

    def has_route(self, method: str, path: str) -> bool:
        return (method, path) in self.routes


def function_names() -> list[str]:
    """Every function: each folder of functions/ with a main.py."""
    return [folder.name for folder in FUNCTION_DIRS]


@cache
def function(name: str) -> Function:
    """Function ``name`` (a folder of functions/ with a main.py)."""
    folder = ROOT / "functions" / name
    if not (folder / "main.py").is_file():
        raise ValueError(f"no function {name!r}: functions/{name}/main.py does not exist")
    return describe(folder)


def describe(folder: Path) -> Function:
    """The function in ``folder``, its package importable (its folder on the import path)."""
    name = folder.name
    routes, private = _routes(folder)
    return Function(name, folder, settings_class(name), routes, imports(folder), private)


def settings_class(name: str) -> type[Settings]:
    """The one Settings class that ``<name>.settings`` defines."""
    module = importlib.import_module(f"{name}.settings")
    found = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, Settings)
        and value.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise ValueError(f"{name}/settings.py must define one Settings class (found {len(found)})")
    return found[0]


def _routes(folder: Path) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """The (method, path) keys of the route table of ``folder``'s entry point, and those of its
    private routes (an ``auth`` before the handler)."""
    spec = importlib.util.spec_from_file_location(f"_entry_{folder.name}", folder / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry = getattr(module, folder.name, None)
    routes = getattr(entry, "routes", None)
    if routes is None:
        raise ValueError(
            f"functions/{folder.name}/main.py must define {folder.name}(), an "
            "@functions_framework.http entry point made by lib.http.endpoint"
        )
    private = [key for key, route in routes.items() if getattr(route, "auth", None) is not None]
    return tuple(sorted(routes)), tuple(sorted(private))


def imports(folder: Path) -> tuple[str, ...]:
    """The third-party modules the bundle of ``folder`` imports, lazily or not: what
    ``modulefinder``, looking only in the bundle (the folder and lib/), cannot find and the
    standard library does not hold."""
    finder = modulefinder.ModuleFinder(path=[str(folder), str(ROOT)])
    finder.run_script(str(folder / "main.py"))
    return tuple(sorted({name.split(".")[0] for name in finder.badmodules} - _STDLIB))
