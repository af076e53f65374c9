"""Developer and operator tools: never deployed.

Each function is a folder of ``functions/`` holding ``main.py`` and one package named after the
function (``functions/place_call/place_call/``). In a deployed bundle functions-framework puts
the folder on ``sys.path``; here the same folders are on the import path by configuration, never
by code: ``pythonpath`` for pytest and ``mypy_path`` for mypy in pyproject.toml, ``PYTHONPATH``
exported by the Makefile, and :data:`PYTHONPATH` for the processes the tools and tests start
(tests/test_layout.py keeps the four equal).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_DIRS = sorted(p.parent for p in (ROOT / "functions").glob("*/main.py"))

# The import path of a process started from the repository: the root (lib, tools) and each
# function's folder (its package).
PYTHONPATH = os.pathsep.join(str(path) for path in (ROOT, *FUNCTION_DIRS))
