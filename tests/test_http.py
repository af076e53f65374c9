"""lib.http: the route table, and the one place where errors become answers."""

from __future__ import annotations

import json

import pytest
from flask import Flask, Request, Response

from lib.db import get_db
from lib.errors import BadRequest, PayloadTooLarge
from lib.http import (
    Handler,
    Route,
    Routes,
    endpoint,
    read_body,
    subpath,
    text_response,
    trace_id,
)
from lib.settings import reload_settings


@pytest.fixture(autouse=True)
def _fresh_config() -> None:
    reload_settings()
    get_db.cache_clear()


def serve(handler: Handler, path: str = "/", method: str = "POST", **kwargs: object) -> Response:
    """``handler`` called inside a request context, as functions-framework calls it."""
    with Flask(__name__).test_request_context(path, method=method, **kwargs):  # type: ignore[arg-type]
        from flask import request

        return handler(request)


def one_route(handler: Handler) -> Handler:
    @endpoint(provider="meta")
    def demo() -> Routes:
        return {("POST", "/"): Route(handler)}

    return demo


def test_endpoint_unexpected_exception_generic_500_without_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def handler(request: Request) -> Response:
        raise RuntimeError("secret internals at /srv/app.py line 3")

    response = serve(one_route(handler))
    assert response.status_code == 500
    body = json.loads(response.get_data())
    assert body == {
        "error": {
            "code": "internal_error",
            "message": "Internal error; the function's logs have the details.",
        }
    }
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert logged[0]["severity"] == "ERROR"
    assert logged[0]["function"] == "demo"
    assert "RuntimeError: secret internals" in logged[0]["stack_trace"]


def test_endpoint_app_error_answers_its_status_and_code() -> None:
    def handler(request: Request) -> Response:
        raise BadRequest("Body is not valid JSON.", code="malformed_json")

    response = serve(one_route(handler))
    assert response.status_code == 400
    assert json.loads(response.get_data())["error"]["code"] == "malformed_json"


def handled(name: str) -> Handler:
    def handler(request: Request) -> Response:
        return text_response(name)

    return handler


def deny(request: Request) -> None:
    from lib.errors import Unauthorized

    raise Unauthorized("no")


@endpoint(provider="meta")
def routed() -> Routes:
    return {
        ("GET", "/"): Route(handled("handshake")),
        ("POST", "/"): Route(handled("delivery")),
        ("POST", "/sweep"): Route(handled("sweep"), auth=deny),
    }


@pytest.mark.parametrize(
    ("method", "path", "answer"),
    [("GET", "/", "handshake"), ("POST", "/", "delivery")],
)
def test_endpoint_route_table_dispatches_on_method_and_subpath(
    method: str, path: str, answer: str
) -> None:
    response = serve(routed, path, method)
    assert (response.status_code, response.get_data(as_text=True)) == (200, answer)


@pytest.mark.parametrize(("method", "path"), [("POST", "/anything"), ("GET", "/sweep/x")])
def test_endpoint_unknown_subpath_404(method: str, path: str) -> None:
    response = serve(routed, path, method)
    assert response.status_code == 404
    assert json.loads(response.get_data())["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("PUT", "/", "GET, POST"), ("GET", "/sweep", "POST"), ("DELETE", "/sweep/", "POST")],
)
def test_endpoint_known_subpath_other_method_405_with_allow(
    method: str, path: str, allow: str
) -> None:
    response = serve(routed, path, method)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert json.loads(response.get_data())["error"]["code"] == "method_not_allowed"


def test_endpoint_route_auth_runs_before_its_handler() -> None:
    response = serve(routed, "/sweep", "POST")
    assert response.status_code == 401


def test_endpoint_function_name_comes_from_the_decorated_function() -> None:
    assert routed.__name__ == "routed"


def test_read_body_over_limit_without_content_length_413() -> None:
    environ_overrides = {"wsgi.input_terminated": True}
    with Flask(__name__).test_request_context(
        "/",
        method="POST",
        data=b"x" * 101,
        environ_overrides=environ_overrides,
        headers={"Transfer-Encoding": "chunked"},
    ):
        from flask import request

        with pytest.raises(PayloadTooLarge):
            read_body(request, limit=100)


def test_read_body_at_limit_returned_whole() -> None:
    with Flask(__name__).test_request_context("/", method="POST", data=b"x" * 100):
        from flask import request

        assert read_body(request, limit=100) == b"x" * 100


@pytest.mark.parametrize(
    ("path", "expected"), [("/", "/"), ("/sweep", "/sweep"), ("/sweep/", "/sweep"), ("//", "/")]
)
def test_subpath_below_function_url(path: str, expected: str) -> None:
    with Flask(__name__).test_request_context(path):
        from flask import request

        assert subpath(request) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "4bf92f35"),
        ({"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}, "105445aa"),
        ({"traceparent": "garbage", "X-Cloud-Trace-Context": "x" * 5000}, None),
        ({}, None),
    ],
)
def test_trace_id_from_w3c_or_google_header(headers: dict[str, str], expected: str | None) -> None:
    with Flask(__name__).test_request_context("/", headers=headers):
        from flask import request

        found = trace_id(request)
    assert (found[:8] if found else None) == expected


@pytest.mark.parametrize(
    ("given", "accepted"),
    [("new-token", True), ("old-token", True), ("other", False), ("", False)],
)
def test_internal_token_accepts_either_of_a_rotated_pair(
    monkeypatch: pytest.MonkeyPatch, given: str, accepted: bool
) -> None:
    from lib.errors import Unauthorized
    from lib.http import internal_token

    monkeypatch.setenv("INTERNAL_TOKEN", "new-token, old-token")
    reload_settings()
    headers = {"Authorization": f"Bearer {given}"}
    with Flask(__name__).test_request_context("/sweep", method="POST", headers=headers):
        from flask import request

        if accepted:
            internal_token(request)
        else:
            with pytest.raises(Unauthorized):
                internal_token(request)
