"""place_call's webhook route in process (functions-framework's ``create_app`` test client):
what it reads of a request, and when. The body is a spy stream that counts what is read."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import functions_framework
import pytest

from lib.settings import reload_settings
from lib.signatures import sign_elevenlabs
from tools.stack.local import ROOT

SECRET = "wsec_unit_test"


class SpyStream(io.BytesIO):
    """A request body that records every read (werkzeug's test client only seeks it to learn
    its length)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("ELEVENLABS_WEBHOOK_SECRET", SECRET)
    # A database nobody listens on: these requests must be answered before any database work,
    # or (the large signed body) with one log row whose failure is answered 503.
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "x")
    reload_settings()
    app = functions_framework.create_app("place_call", str(ROOT / "functions/place_call/main.py"))
    yield app.test_client()
    reload_settings()


def test_webhook_over_the_limit_refused_413_by_its_length(client: Any) -> None:
    stream = SpyStream(b"{}")
    response = client.post(
        "/webhook",
        input_stream=stream,
        environ_overrides={"CONTENT_LENGTH": str(64 * 1024 * 1024 + 1)},
        headers={
            "ElevenLabs-Signature": sign_elevenlabs(
                b"{}", secret=SECRET, timestamp=int(time.time())
            )
        },
    )
    assert response.status_code == 413
    assert stream.reads == 0


@pytest.mark.parametrize(
    "lead_id",
    ["not-a-uuid", "x" * 900_000, 42, "12345678-1234-1234-1234-12345678901g"],
    ids=["word", "900_kB", "number", "not_hex"],
)
def test_place_non_uuid_lead_id_is_400_and_clipped(
    client: Any, monkeypatch: pytest.MonkeyPatch, lead_id: Any
) -> None:
    import json

    monkeypatch.setenv("INTERNAL_TOKEN", "t")
    reload_settings()
    response = client.post(
        "/",
        data=json.dumps({"lead_id": lead_id}),
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_payload" and len(error["message"]) < 200
