"""Signature checks: known-answer vectors and properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.signatures import InvalidSignature, appsecret_proof, sign_meta, token_matches, verify_meta

from .conftest import FIXTURES

VECTORS = json.loads((FIXTURES / "signature_vectors.json").read_text())
META = VECTORS["meta_x_hub_signature_256"]


def headers_for(body: bytes, secret: str = "s3cret") -> dict[str, str]:
    return {"X-Hub-Signature-256": sign_meta(body, secret=secret)}


def test_sign_meta_known_vector_matches() -> None:
    body = META["raw_body_as_sent_escaped"].encode()
    assert sign_meta(body, secret=META["app_secret"]) == META["header"]


def test_verify_meta_known_vector_accepted() -> None:
    body = META["raw_body_as_sent_escaped"].encode()
    verify_meta(body, {"X-Hub-Signature-256": META["header"]}, secrets=[META["app_secret"]])


def test_verify_meta_reserialized_body_rejected() -> None:
    unescaped = META["wrong_if_reserialized_unescaped"]["body"].encode()
    with pytest.raises(InvalidSignature):
        verify_meta(
            unescaped, {"X-Hub-Signature-256": META["header"]}, secrets=[META["app_secret"]]
        )


def test_verify_meta_lowercase_header_name_accepted() -> None:
    body = b'{"object":"page"}'
    verify_meta(body, {"x-hub-signature-256": sign_meta(body, secret="k")}, secrets=["k"])


def test_verify_meta_rotated_secret_accepted() -> None:
    body = b'{"object":"page"}'
    verify_meta(body, headers_for(body, "new"), secrets=["old", "new"])


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=" + "zz" * 32,
        "sha256=" + "0" * 63,
        "0" * 64,
        "sha256 = " + "0" * 64,
    ],
)
def test_verify_meta_malformed_header_rejected(value: str | None) -> None:
    headers = {} if value is None else {"X-Hub-Signature-256": value}
    with pytest.raises(InvalidSignature):
        verify_meta(b"{}", headers, secrets=["k"])


def test_verify_meta_no_secret_rejected() -> None:
    body = b"{}"
    with pytest.raises(InvalidSignature):
        verify_meta(body, headers_for(body), secrets=[])


def test_appsecret_proof_known_vector_matches() -> None:
    vector = VECTORS["meta_appsecret_proof"]
    assert (
        appsecret_proof(vector["access_token"], app_secret=vector["app_secret"])
        == (vector["appsecret_proof"])
    )


def test_token_matches_only_exact_token() -> None:
    assert token_matches("abc", expected="abc")
    assert not token_matches("abd", expected="abc")
    assert not token_matches("", expected="abc")
    assert not token_matches(None, expected="abc")


@given(body=st.binary(max_size=2048), secret=st.text(min_size=1, max_size=64))
def test_verify_meta_sign_then_verify_roundtrips(body: bytes, secret: str) -> None:
    verify_meta(body, headers_for(body, secret), secrets=[secret])


@given(
    body=st.binary(min_size=1, max_size=512),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_verify_meta_any_body_mutation_rejected(body: bytes, position: int, flip: int) -> None:
    headers = headers_for(body)
    index = position % len(body)
    mutated = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify_meta(mutated, headers, secrets=["s3cret"])


@given(
    body=st.binary(max_size=256),
    position=st.integers(min_value=0),
    char=st.sampled_from("0123456789abcdef"),
)
def test_verify_meta_any_signature_mutation_rejected(body: bytes, position: int, char: str) -> None:
    header = sign_meta(body, secret="s3cret")
    index = len("sha256=") + position % 64
    if header[index] == char:
        char = "f" if char != "f" else "0"
    mutated = header[:index] + char + header[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify_meta(body, {"X-Hub-Signature-256": mutated}, secrets=["s3cret"])


@given(value=st.text(max_size=100))
def test_verify_meta_garbage_header_raises_only_invalid_signature(value: str) -> None:
    try:
        verify_meta(b"{}", {"X-Hub-Signature-256": value}, secrets=["s3cret"])
    except InvalidSignature:
        return
    pytest.fail("a garbage header was accepted")
