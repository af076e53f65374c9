"""A function's deployable bundle: its folder with a copy of ``lib/`` beside ``main.py``, the
bytecode precompiled, and its packages pinned from the lock, as Cloud Functions runs it.
functions-framework puts the bundle's folder on ``sys.path``, so ``lib`` and the function's
package import by the same names as in the repository (where the folders are on the import path
by configuration: tools/__init__.py).

    python -m tools.build.bundle                    # every function: build/functions/<name>/
    python -m tools.build.bundle meta_webhook DEST  # one function, into DEST

A bundle holds:

- the function's folder and ``lib/``, without caches or dotfiles (``.env``…);
- ``requirements.txt``: exactly the packages its code imports (directly or through ``lib/``,
  tools/build/functions.py) and functions-framework, pinned from ``requirements.lock``, and
  ``-c constraints.txt``; ``constraints.txt`` pins what those install in turn (tools/build/lock.py);
- ``__pycache__/``: the bytecode, hash-checked (valid whatever the files' times after upload),
  compiled by ``python`` (the runtime's version, when the deploy finds that interpreter);
- ``.gcloudignore``, so that ``gcloud functions deploy --source`` uploads all of it (gcloud's
  default skips ``__pycache__/``).
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from tools import ROOT
from tools.build import lock
from tools.build.functions import function_names, imports

BUILD_DIR = ROOT / "build" / "functions"
GENERATED = ("requirements.txt", "constraints.txt", ".gcloudignore")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*.env", *GENERATED)
GCLOUDIGNORE = """\
# Written by tools/build/bundle.py: upload the bundle as it is (gcloud's default skips __pycache__/,
# the precompiled bytecode).
.gcloudignore
"""


def build(
    name: str,
    dest: Path,
    *,
    python: str | None = None,
    precompile: bool = True,
    source: Path | None = None,
) -> Path:
    """Write the bundle of function ``name`` to ``dest`` (replaced if it exists); ``dest``.
    ``python``: the interpreter that compiles the bytecode (default: this one); ``source``: the
    function's folder (default: functions/<name>)."""
    if source is None:
        source = ROOT / "functions" / name
        if not (source / "main.py").is_file():
            raise ValueError(f"no function {name!r}: functions/{name}/main.py does not exist")
    imported = imports(source)
    pins = lock.read()
    requirements = lock.requirements(name, pins, imported, constraints=True)
    constraints = "".join(
        f"{pin.name}=={pin.version}\n" for pin in lock.closure(pins, lock.roots(imported))
    )
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=_SKIP)
    shutil.copytree(ROOT / "lib", dest / "lib", ignore=_SKIP)
    (dest / "requirements.txt").write_text(requirements)
    (dest / "constraints.txt").write_text(
        f"# What {name}'s requirements install in turn, pinned from requirements.lock.\n"
        + constraints
    )
    (dest / ".gcloudignore").write_text(GCLOUDIGNORE)
    if precompile:
        _compile([dest], python)
    return dest


def _compile(folders: list[Path], python: str | None) -> None:
    """Precompile every module of ``folders``, hash-checked, by ``python`` (None: this one)."""
    if python is None or python == sys.executable:
        for folder in folders:
            if not compileall.compile_dir(
                folder, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH
            ):
                raise ValueError(f"{folder}: a module does not compile")
        return
    command = [python, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash"]
    subprocess.run([*command, *map(str, folders)], check=True)


@cache
def python(version: str) -> str | None:
    """An interpreter of Python ``version`` (``"3.12"``): this one, else GCF_PYTHON, else
    ``python3.12`` on PATH, else one installed by pyenv; each tried, as a pyenv shim may name a
    version that is not selected. None when there is none."""
    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [os.environ.get("GCF_PYTHON"), shutil.which(f"python{version}")]
    candidates += [str(p) for p in sorted(pyenv.glob(f"{version}.*/bin/python{version}"))[::-1]]
    for candidate in filter(None, candidates):
        try:
            answer = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if answer.returncode == 0 and answer.stdout.strip() == version:
            return candidate
    return None


def build_all(
    names: list[str] | None = None, dest: Path = BUILD_DIR, *, python: str | None = None
) -> list[Path]:
    """The bundles of ``names`` (default: every function) under ``dest``."""
    built = [build(name, dest / name, precompile=False) for name in names or function_names()]
    _compile(built, python)
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", choices=function_names(), help="default: all")
    parser.add_argument("dest", nargs="?", type=Path, help=f"default: {BUILD_DIR}/<name>")
    args = parser.parse_args()
    runtime = python(lock.TARGET_PYTHON)  # the bytecode of the Cloud Functions runtime's Python
    if runtime is None:
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        print(f"note: no Python {lock.TARGET_PYTHON} here: bytecode compiled by Python {here}")
    if args.name is None:
        for path in build_all(python=runtime):
            print(path.relative_to(ROOT))
        return
    print(build(args.name, args.dest or BUILD_DIR / args.name, python=runtime))


if __name__ == "__main__":
    main()
