"""lib.http: the one place where errors become answers."""

from __future__ import annotations

import json

import pytest
from flask import Flask, Request, Response

from lib.config import get_config
from lib.db import get_db
from lib.errors import BadRequest, PayloadTooLarge
from lib.http import endpoint, read_body, subpath


@pytest.fixture(autouse=True)
def _fresh_config() -> None:
    get_config.cache_clear()
    get_db.cache_clear()


def test_endpoint_unexpected_exception_generic_500_without_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @endpoint("demo", provider="meta")
    def handler(request: Request) -> Response:
        raise RuntimeError("secret internals at /srv/app.py line 3")

    with Flask(__name__).test_request_context("/", method="POST"):
        from flask import request

        response = handler(request)
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
    assert "RuntimeError: secret internals" in logged[0]["stack_trace"]


def test_endpoint_app_error_answers_its_status_and_code() -> None:
    @endpoint("demo", provider="meta")
    def handler(request: Request) -> Response:
        raise BadRequest("Body is not valid JSON.", code="malformed_json")

    with Flask(__name__).test_request_context("/", method="POST"):
        from flask import request

        response = handler(request)
    assert response.status_code == 400
    assert json.loads(response.get_data())["error"]["code"] == "malformed_json"


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
    ("path", "expected"), [("/", "/"), ("/sweep", "/sweep"), ("/sweep/", "/sweep"), ("", "/")]
)
def test_subpath_below_function_url(path: str, expected: str) -> None:
    with Flask(__name__).test_request_context(path or "/"):
        from flask import request

        assert subpath(request) == expected
