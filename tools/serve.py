"""Serve every function at ``/functions/v1/<name>`` on one port, as `make dev` does.

Each function is loaded by functions-framework's own ``create_app`` (the same loader Cloud
Functions uses) from ``functions/<name>/main.py``; ``GET /health`` answers 200 once all loaded.

    python -m tools.serve --port 8080
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"


def build_app() -> object:
    import functions_framework
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.wrappers import Response

    # In a bundle lib/ sits beside main.py; in the repository it sits at the root.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tools.bundle import function_names

    mounts = {
        f"/functions/v1/{name}": functions_framework.create_app(
            name, str(FUNCTIONS / name / "main.py")
        )
        for name in function_names()
    }

    def root(environ: dict[str, object], start_response: object) -> object:
        if environ.get("PATH_INFO") == "/health":
            response = Response(
                f'{{"status":"ok","functions":{len(mounts)}}}', mimetype="application/json"
            )
        else:
            response = Response(
                '{"error":{"code":"not_found","message":"Functions are served '
                'at /functions/v1/<name>."}}',
                status=404,
                mimetype="application/json",
            )
        return response(environ, start_response)  # type: ignore[arg-type]

    dispatcher = DispatcherMiddleware(root, mounts)  # type: ignore[arg-type]

    def app_with_root_slash(environ: dict[str, object], start_response: object) -> object:
        # Cloud Functions hands a function's own URL to it as "/"; do the same (no redirect).
        path = str(environ.get("PATH_INFO", ""))
        if path.rstrip("/") in mounts:
            environ["PATH_INFO"] = path.rstrip("/") + "/"
        return dispatcher(environ, start_response)  # type: ignore[arg-type]

    return app_with_root_slash


def main() -> None:
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args()
    run_simple(args.host, args.port, build_app(), threaded=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
