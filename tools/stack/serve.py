"""Serve every function at ``/functions/v1/<name>`` on one port, as `make dev` does.

Each function is loaded by functions-framework's own ``create_app`` (the same loader Cloud
Functions uses) from ``functions/<name>/main.py``; ``GET /health`` answers 200 once all loaded.
The access log keeps each request's method, path, query parameter names and status, never a
query value: Meta's handshake sends the verify token in ``hub.verify_token``.

    python -m tools.stack.serve --port 8080
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"


def build_app() -> object:
    import functions_framework
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.wrappers import Response

    # functions-framework puts each function's folder on sys.path as it loads its main.py; lib/
    # and tools/ are on it by configuration (PYTHONPATH).
    from tools.build.functions import function_names

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


_QUERY = re.compile(r"\?([^\s\"']*)")


def redact_query(text: str) -> str:
    """``text`` with the value of every query parameter replaced by ``***``."""

    def names_only(match: re.Match[str]) -> str:
        names = [part.partition("=")[0] for part in match.group(1).split("&") if part]
        return "?" + "&".join(f"{name}=***" for name in names)

    return _QUERY.sub(names_only, text)


def request_handler() -> type:
    """werkzeug's request handler, its log lines (access and errors) without query values."""
    from werkzeug.serving import WSGIRequestHandler

    class RedactingRequestHandler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:
            text = message % args if args else message
            super().log(type, "%s", redact_query(text))

    return RedactingRequestHandler


def main() -> None:
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args()
    run_simple(
        args.host,
        args.port,
        build_app(),  # type: ignore[arg-type]
        threaded=True,
        request_handler=request_handler(),
    )


if __name__ == "__main__":
    main()
