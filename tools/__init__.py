"""Developer and operator tools: never deployed.

Importing this package puts each function's folder on ``sys.path``, as functions-framework does
for a deployed function (the folder is the bundle's root, ``lib/`` copied beside ``main.py``), so
the tools and the tests import a function's modules (``leadgen``, ``graph`` …) by the same names
as the deployed bundle. Module names are therefore unique across function folders
(tests/test_layout.py checks it).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_DIRS = sorted(p.parent for p in (ROOT / "functions").glob("*/main.py"))

for _folder in FUNCTION_DIRS:
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))
