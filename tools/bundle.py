"""A function's deployable bundle: its folder with a copy of ``lib/`` beside ``main.py``, and the
bytecode precompiled, as Cloud Functions runs it. functions-framework puts the bundle's folder on
``sys.path``, so ``lib`` and the function's own modules import by the same names as in the
repository (tools/__init__.py does the same for the tools and the tests).

    python -m tools.bundle meta_webhook DEST
"""

from __future__ import annotations

import argparse
import compileall
import shutil
from pathlib import Path

from tools import FUNCTION_DIRS, ROOT

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def function_names() -> list[str]:
    """Every function: each folder of functions/ with a main.py."""
    return [folder.name for folder in FUNCTION_DIRS]


def build(name: str, dest: Path) -> Path:
    """Write the bundle of function ``name`` to ``dest`` (replaced if it exists); ``dest``."""
    source = ROOT / "functions" / name
    if not (source / "main.py").is_file():
        raise ValueError(f"no function {name!r}: functions/{name}/main.py does not exist")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=_SKIP)
    shutil.copytree(ROOT / "lib", dest / "lib", ignore=_SKIP)
    compileall.compile_dir(dest, quiet=1)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=function_names())
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    print(build(args.name, args.dest))


if __name__ == "__main__":
    main()
