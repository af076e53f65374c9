"""lib.db's error mapping, against answers shaped as Supabase's API serves them (docs/PROVIDERS.md
section 4), faked at the HTTP boundary with httpx.MockTransport."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from lib.db import Database
from lib.errors import DatabaseError, DatabaseUnavailable

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"


def database(handler: Callable[[httpx.Request], httpx.Response]) -> Database:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return Database("https://project.supabase.co", "sb_secret_x", http_client=client)


def answering(status: int, **kwargs: object) -> Database:
    return database(lambda request: httpx.Response(status, **kwargs))  # type: ignore[arg-type]


def postgrest_error(code: str, message: str = "m") -> dict[str, object]:
    return {"code": code, "message": message, "details": None, "hint": None}


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 502, "text": HTML_502, "headers": {"content-type": "text/html"}},
        {"status": 503, "text": "<html>503</html>", "headers": {"content-type": "text/html"}},
        {"status": 504, "text": ""},
        {"status": 520, "text": "<html>520: Web server is returning an unknown error</html>"},
        {"status": 522, "text": "<html>522: Connection timed out</html>"},
        {"status": 504, "json": postgrest_error("PGRST003", "Timed out acquiring connection")},
        {"status": 503, "json": postgrest_error("PGRST001")},
        {"status": 503, "json": postgrest_error("08006")},
        {"status": 500, "json": postgrest_error("57014", "canceling statement due to timeout")},
    ],
)
def test_rpc_unavailable_answers_are_database_unavailable(answer: dict[str, object]) -> None:
    status = answer.pop("status")
    with pytest.raises(DatabaseUnavailable) as caught:
        answering(status, **answer).rpc("meta_ingest", {})  # type: ignore[arg-type]
    assert caught.value.status == 503
    assert "nothing was written" in caught.value.message


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 401, "json": {"message": "Invalid API key"}},
        {"status": 401, "json": postgrest_error("PGRST303", "JWT expired")},
        {"status": 401, "json": postgrest_error("PGRST301", "JWSError")},
        {"status": 401, "json": postgrest_error("42501", "permission denied")},
    ],
)
def test_rpc_key_refused_names_the_key(answer: dict[str, object]) -> None:
    status = answer.pop("status")
    with pytest.raises(DatabaseError) as caught:
        answering(status, **answer).rpc("meta_ingest", {})  # type: ignore[arg-type]
    assert "SUPABASE_SERVICE_ROLE_KEY" in caught.value.message
    assert "migrations" not in caught.value.message


def test_rpc_unknown_function_points_at_migrations() -> None:
    db = answering(404, json=postgrest_error("PGRST202", "Could not find the function"))
    with pytest.raises(DatabaseError) as caught:
        db.rpc("meta_ingest", {})
    assert "migrations" in caught.value.message


def test_rpc_bare_500_is_not_blamed_on_migrations() -> None:
    with pytest.raises(DatabaseError) as caught:
        answering(500, text="Internal Server Error").rpc("meta_ingest", {})
    assert "migrations" not in caught.value.message
    assert "SUPABASE_SERVICE_ROLE_KEY" not in caught.value.message


def test_rpc_read_timeout_never_says_nothing_was_written() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(DatabaseUnavailable) as caught:
        database(slow).rpc("meta_ingest", {})
    assert caught.value.code == "database_timeout"
    assert "may have completed" in caught.value.message
    assert "nothing was written" not in caught.value.message


def test_rpc_connect_error_says_nothing_was_written() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(DatabaseUnavailable) as caught:
        database(refused).rpc("meta_ingest", {})
    assert caught.value.code == "database_unavailable"
    assert "nothing was written" in caught.value.message


def test_rpc_sends_the_key_in_apikey_and_bearer() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    assert database(record).rpc("meta_ingest", {"p_leads": []}) == {"ok": True}
    (request,) = seen
    assert request.headers["apikey"] == "sb_secret_x"
    assert request.headers["authorization"] == "Bearer sb_secret_x"
    assert request.url.path == "/rest/v1/rpc/meta_ingest"


@pytest.mark.parametrize("code", ["40P01", "40001"])
def test_rpc_deadlock_or_serialization_failure_is_tried_again(code: str) -> None:
    answers = [httpx.Response(500, json=postgrest_error(code))] * 2 + [
        httpx.Response(200, json={"ok": True})
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    assert database(handler).rpc("calendly_record", {}) == {"ok": True}
    assert len(seen) == 3


def test_rpc_conflict_every_time_is_unavailable_503() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500, json=postgrest_error("40P01", "deadlock detected"))

    with pytest.raises(DatabaseUnavailable) as caught:
        database(handler).rpc("calendly_record", {})
    assert (caught.value.status, caught.value.code) == (503, "database_conflict")
    assert len(seen) == 3
